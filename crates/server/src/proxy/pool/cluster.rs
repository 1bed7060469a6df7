//! Cluster pools: how a request of this instance gets one of the pool's slots in the
//! database after its local turn, and where a slot goes when the request ends (see the parent
//! module for the rules).

use super::*;

/// What became of a slot a request of this instance gave up.
enum Given {
    /// A request of this instance that was waiting for a slot has it.
    Handed,
    /// It waits in the idle list for the next request; `linger` when no task gives this pool's
    /// idle slots back yet (one must be started).
    Idle { linger: bool },
    /// It is above the level now: back to the database.
    Release,
}

/// A request's place among this instance's requests waiting for a database slot. Dropped
/// (the request got a slot from the database, timed out or went away), it gives back a slot
/// that was handed to it meanwhile, so that none is lost in the channel.
struct SlotWait {
    rx: oneshot::Receiver<IdleSlot>,
    asking: Arc<AtomicBool>,
    pool: Arc<Pool>,
    pools: Arc<Pools>,
}

impl SlotWait {
    /// `f`'s output, or (as the error) a slot handed over before `f` completed, in which case
    /// `f` is dropped.
    async fn handed_or<T>(
        &mut self,
        f: impl std::future::Future<Output = T>,
    ) -> Result<T, Result<IdleSlot, oneshot::error::RecvError>> {
        tokio::select! {
            got = &mut self.rx => Err(got),
            out = f => Ok(out),
        }
    }
}

impl Drop for SlotWait {
    fn drop(&mut self) {
        self.rx.close();
        if let Ok(idle) = self.rx.try_recv() {
            self.pools.give_slot(&self.pool, idle.slot, idle.taken);
        }
    }
}

/// Whether a slot of this instance could be used by a request.
enum Adopted {
    Yes,
    /// Given back (another instance wants the pool), or its lease could not be renewed.
    No,
    /// Its lease ran out and it is no longer this instance's.
    NotHeld,
}

/// Slots this instance holds between requests.
impl Pools {
    /// Gives a slot back to the database (in the background).
    fn release_slot(&self, pool_id: &str, slot: i32) {
        let (store, pool, holder) = (self.store.clone(), pool_id.to_string(), self.holder.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = store.release_slot(&pool, slot, &holder).await {
                    tracing::warn!(pool, slot, error = %e, "could not release a pool slot (its lease expires by itself)");
                }
            });
        }
    }

    /// A slot a request of this instance gave up: to the longest-waiting request of this
    /// instance, else to the idle list (and back to the database if it stays idle), or at once
    /// back to the database if it is above the level now.
    pub(super) fn give_slot(self: &Arc<Self>, pool: &Arc<Pool>, slot: i32, taken: Instant) {
        let pool_id: &str = &pool.id;
        let given = {
            let mut st = pool.state.lock().expect("pool lock");
            if (slot as usize) < st.level {
                let mut idle = IdleSlot {
                    slot,
                    taken,
                    idle_since: Instant::now(),
                };
                loop {
                    // The longest-waiting request that is not asking the database right now,
                    // else the longest-waiting one.
                    let next = st
                        .slot_waiters
                        .iter()
                        .position(|w| !w.asking.load(Ordering::Relaxed) && !w.tx.is_closed())
                        .unwrap_or(0);
                    let Some(waiter) = st.slot_waiters.remove(next) else {
                        st.idle.push(idle);
                        // Marked under the same lock that put the slot in the list.
                        let linger = !std::mem::replace(&mut st.lingering, true);
                        break Given::Idle { linger };
                    };
                    match waiter.tx.send(idle) {
                        Ok(()) => break Given::Handed,
                        // That request went away: the next one.
                        Err(back) => idle = back,
                    }
                }
            } else {
                // Let other instances' waiters have this slot before this one takes it back.
                st.yield_until = Some(Instant::now() + YIELD);
                Given::Release
            }
        };
        match given {
            Given::Handed | Given::Idle { linger: false } => {}
            Given::Idle { linger: true } => self.release_if_idle_later(pool, pool_id),
            Given::Release => self.release_slot(pool_id, slot),
        }
    }

    /// Gives the idle slots back to the database that no request of this instance takes within
    /// [`SLOT_LINGER`]. One task per pool does it, while the pool has idle slots (not one per
    /// request: with a slot going idle after every request, that was a task and a timer each).
    /// Called by whoever set the pool's `lingering` mark.
    fn release_if_idle_later(self: &Arc<Self>, pool: &Arc<Pool>, pool_id: &str) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            pool.state.lock().expect("pool lock").lingering = false;
            return;
        };
        let (pools, pool, pool_id) = (self.clone(), pool.clone(), pool_id.to_string());
        rt.spawn(async move {
            loop {
                let next = {
                    let mut st = pool.state.lock().expect("pool lock");
                    let next = st.idle.iter().map(|i| i.idle_since).min();
                    // Cleared with the list seen empty under the lock: a slot that goes idle
                    // after this starts the task again.
                    st.lingering = next.is_some();
                    next
                };
                let Some(since) = next else { break };
                tokio::time::sleep_until((since + SLOT_LINGER).into()).await;
                let expired: Vec<i32> = {
                    let mut st = pool.state.lock().expect("pool lock");
                    let (gone, kept) = std::mem::take(&mut st.idle)
                        .into_iter()
                        .partition(|i| i.idle_since.elapsed() >= SLOT_LINGER);
                    st.idle = kept;
                    gone.into_iter().map(|i: IdleSlot| i.slot).collect()
                };
                for slot in expired {
                    pools.release_slot(&pool_id, slot);
                }
            }
        });
    }

    /// A slot of this instance between requests, if one is still usable at `level`, one within
    /// its reuse window first; the unusable ones go back to the database.
    fn take_idle(&self, pool: &Pool, pool_id: &str, level: usize) -> Option<IdleSlot> {
        let (stale, found) = {
            let mut st = pool.state.lock().expect("pool lock");
            let (usable, stale): (Vec<IdleSlot>, Vec<IdleSlot>) = std::mem::take(&mut st.idle)
                .into_iter()
                .partition(|i| (i.slot as usize) < level);
            st.idle = usable;
            let pick = st
                .idle
                .iter()
                .rposition(|i| i.taken.elapsed() < SLOT_REUSE)
                .or_else(|| st.idle.len().checked_sub(1));
            (stale, pick.map(|k| st.idle.swap_remove(k)))
        };
        for i in stale {
            self.release_slot(pool_id, i.slot);
        }
        found
    }

    /// Gives `permit` a slot this instance already holds, if it has a usable one (see
    /// [`Pools::adopt`]).
    async fn take_local(&self, permit: &mut Permit, pool_id: &str, level: usize) -> bool {
        while let Some(idle) = self.take_idle(&permit.pool, pool_id, level) {
            match self.adopt(permit, pool_id, idle).await {
                Adopted::Yes => return true,
                Adopted::No => return false,
                Adopted::NotHeld => {}
            }
        }
        false
    }

    /// Puts a slot of this instance in `permit`. A slot past its reuse window is kept (its
    /// window restarted) only if no other instance wants the pool; otherwise it is freed and
    /// this instance yields. The slot sits in the permit while the database is asked, so that
    /// a request dropped meanwhile puts it back.
    async fn adopt(&self, permit: &mut Permit, pool_id: &str, idle: IdleSlot) -> Adopted {
        permit.global_slot = Some((idle.slot, idle.taken));
        if idle.taken.elapsed() < SLOT_REUSE {
            return Adopted::Yes;
        }
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(SLOT_LEASE).expect("small duration");
        let kept = self
            .store
            .keep_slot_unless_wanted(pool_id, idle.slot, &self.holder, until, now)
            .await;
        permit.global_slot = None;
        match kept {
            Ok(SlotKept::Kept) => {
                permit.pool.kept.increment(1);
                permit.global_slot = Some((idle.slot, Instant::now()));
                Adopted::Yes
            }
            Ok(SlotKept::Released) => {
                permit.pool.yielded.increment(1);
                let mut st = permit.pool.state.lock().expect("pool lock");
                st.yield_until = Some(Instant::now() + YIELD);
                Adopted::No
            }
            // The lease ran out and another took the slot.
            Ok(SlotKept::NotHeld) => Adopted::NotHeld,
            Err(e) => {
                tracing::warn!(error = %e, "could not keep a pool slot; giving it back");
                self.release_slot(pool_id, idle.slot);
                Adopted::No
            }
        }
    }
}

/// Cluster pools: the database slot a request needs after its local turn.
impl Pools {
    /// One try at a free slot in the database, made by a task of its own: when the request
    /// goes away while the statement runs (its caller hung up), a slot the database gave it is
    /// given back instead of being held, and renewed, by nobody.
    async fn try_take_slot(
        self: &Arc<Self>,
        pool_id: &str,
        level: usize,
        (until, now, wanted): (
            chrono::DateTime<Utc>,
            chrono::DateTime<Utc>,
            chrono::DateTime<Utc>,
        ),
    ) -> latchkey_core::store::StoreResult<Option<i32>> {
        let (tx, rx) = oneshot::channel();
        let (me, pool) = (self.clone(), pool_id.to_string());
        tokio::spawn(async move {
            let taken = me
                .store
                .try_acquire_slot(&pool, level as i32, &me.holder, until, now, Some(wanted))
                .await;
            if let Err(Ok(Some(slot))) = tx.send(taken) {
                me.release_slot(&pool, slot);
            }
        });
        rx.await.unwrap_or(Ok(None))
    }

    /// Gives `permit` a database slot of `pool_id` (configured level `level`, `effective` at
    /// admission): one this instance holds if it may keep it, one handed over by a request of
    /// this instance that ended (to the longest waiter first), else a free one from the
    /// database, polling until `deadline`. While it polls, its misses mark the pool as wanted
    /// by this instance.
    pub(super) async fn take_global_slot(
        self: &Arc<Self>,
        permit: &mut Permit,
        pool_id: &str,
        (level, effective): (usize, usize),
        deadline: tokio::time::Instant,
        first: bool,
    ) -> Result<(), Busy> {
        let mut pause = Duration::from_millis(5);
        let mut wait: Option<SlotWait> = None;
        // A request that was handed a slot it could not use (given back to another instance,
        // or no longer this instance's) waits again at the front, where it was.
        let mut front = first;
        loop {
            if self.take_local(permit, pool_id, effective).await {
                return Ok(());
            }
            let w = match &mut wait {
                Some(w) => w,
                None => match self.wait_for_slot(permit, front) {
                    Some(w) => wait.insert(w),
                    // A slot went idle meanwhile: take it.
                    None => continue,
                },
            };
            // A slot handed over by a request of this instance while this one leaves the
            // database alone after giving one back for another instance; then a try at a free
            // slot in the database.
            let yield_until = permit.pool.state.lock().expect("pool lock").yield_until;
            if let Some(t) = yield_until.filter(|t| *t > Instant::now()) {
                if let Err(got) = w.handed_or(tokio::time::sleep_until(t.into())).await {
                    (wait, front) = (None, true);
                    if self.adopt_handed(permit, pool_id, got).await {
                        return Ok(());
                    }
                    continue;
                }
            }
            let now = Utc::now();
            let until = now + chrono::Duration::from_std(SLOT_LEASE).expect("small duration");
            let wanted = now + chrono::Duration::from_std(WANT).expect("small duration");
            w.asking.store(true, Ordering::Relaxed);
            let taken = self
                .try_take_slot(pool_id, level, (until, now, wanted))
                .await;
            w.asking.store(false, Ordering::Relaxed);
            match taken {
                Ok(Some(slot)) => {
                    permit.global_slot = Some((slot, Instant::now()));
                    // A slot handed over meanwhile goes on to the next waiter (`SlotWait`).
                    return Ok(());
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "pool slot acquisition failed; retrying"),
            }
            if tokio::time::Instant::now() + pause > deadline {
                return Err(Busy);
            }
            if let Err(got) = w.handed_or(tokio::time::sleep(pause)).await {
                (wait, front) = (None, true);
                if self.adopt_handed(permit, pool_id, got).await {
                    return Ok(());
                }
            }
            pause = (pause * 2).min(MAX_POLL);
        }
    }

    /// Puts the request among this instance's requests waiting for a database slot (at the
    /// front for one that already had its turn, or had waited and was handed a slot it could
    /// not use), unless a slot is idle now.
    fn wait_for_slot(self: &Arc<Self>, permit: &Permit, front: bool) -> Option<SlotWait> {
        let mut st = permit.pool.state.lock().expect("pool lock");
        if !st.idle.is_empty() {
            return None;
        }
        // Requests that stopped waiting (they got a slot from the database, or went away).
        st.slot_waiters.retain(|w| !w.tx.is_closed());
        let (tx, rx) = oneshot::channel();
        let asking = Arc::new(AtomicBool::new(false));
        let waiter = SlotWaiter {
            tx,
            asking: asking.clone(),
        };
        if front {
            st.slot_waiters.push_front(waiter);
        } else {
            st.slot_waiters.push_back(waiter);
        }
        Some(SlotWait {
            rx,
            asking,
            pool: permit.pool.clone(),
            pools: self.clone(),
        })
    }

    /// A slot another request of this instance handed over, if it may be used.
    async fn adopt_handed(
        &self,
        permit: &mut Permit,
        pool_id: &str,
        got: Result<IdleSlot, oneshot::error::RecvError>,
    ) -> bool {
        match got {
            Ok(idle) => matches!(self.adopt(permit, pool_id, idle).await, Adopted::Yes),
            Err(_) => false,
        }
    }
}
