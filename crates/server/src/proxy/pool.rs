//! Concurrency pools (see docs/decisions/0003-postgres-pool-slots.md). Each pool allows `level` requests in flight; more wait in
//! FIFO order up to the queue timeout. A borrower uses its lender's pool. A level change
//! applies to the next request at once; requests in flight are never cut off.
//!
//! With a PostgreSQL store the limit holds across every instance: after its local turn, a
//! request also takes one of the pool's `level` slot leases in the database, renewed by a
//! heartbeat and expiring when an instance dies.
//!
//! A slot an instance took stays with it for a short while so that back-to-back requests do not
//! each pay two database round trips: when a request ends, its slot goes to this instance's
//! next request if one starts within [`SLOT_LINGER`] and the slot was taken from the database
//! less than [`SLOT_REUSE`] ago; otherwise it goes back to the database. A slot is still used by
//! one request at a time, so the cluster-wide limit holds exactly; other instances get every
//! slot back within `SLOT_REUSE` plus one request.

use latchkey_core::store::Store;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How long a slot lease lasts without renewal: a dead instance's slots return this fast.
pub const SLOT_LEASE: Duration = Duration::from_secs(10);
const HEARTBEAT: Duration = Duration::from_secs(3);
/// How long an instance may keep handing one slot from request to request before the slot goes
/// back to the database (and other instances get their chance at it).
pub const SLOT_REUSE: Duration = Duration::from_millis(500);
/// After giving a slot back for that reason, this instance's requests leave the database alone
/// this long, longer than the longest pause of a waiting instance ([`MAX_POLL`]): a waiter on
/// another instance gets the slot instead of this instance taking it straight back.
const YIELD: Duration = Duration::from_millis(25);
/// The longest pause between two tries of a request waiting for a database slot.
const MAX_POLL: Duration = Duration::from_millis(20);
/// How long a finished request's slot waits for this instance's next request.
pub const SLOT_LINGER: Duration = Duration::from_millis(20);

/// A database slot between two requests of this instance.
struct IdleSlot {
    slot: i32,
    taken: Instant,
    idle_since: Instant,
}

#[derive(Default)]
struct PoolState {
    level: usize,
    in_flight: usize,
    queue: VecDeque<oneshot::Sender<()>>,
    idle: Vec<IdleSlot>,
    /// Until when this instance leaves the database's free slots to the others.
    yield_until: Option<Instant>,
}

#[derive(Default)]
struct Pool {
    state: Mutex<PoolState>,
}

impl Pool {
    /// Hands free places to the longest waiters.
    fn grant(st: &mut PoolState) {
        while st.in_flight < st.level {
            let Some(w) = st.queue.pop_front() else { break };
            if w.send(()).is_ok() {
                st.in_flight += 1;
            }
        }
    }

    fn release(&self) {
        let mut st = self.state.lock().expect("pool lock");
        st.in_flight = st.in_flight.saturating_sub(1);
        Pool::grant(&mut st);
    }
}

pub struct Pools {
    pools: Mutex<HashMap<String, Arc<Pool>>>,
    store: Arc<dyn Store>,
    holder: String,
    global: bool,
}

/// A place in a pool, given back when dropped (after the response body is streamed).
pub struct Permit {
    pool: Arc<Pool>,
    pool_id: String,
    /// The database slot and when it was taken from the database.
    global_slot: Option<(i32, Instant)>,
    pools: Arc<Pools>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some((slot, taken)) = self.global_slot {
            let keep = {
                let mut st = self.pool.state.lock().expect("pool lock");
                let keep = taken.elapsed() < SLOT_REUSE && (slot as usize) < st.level;
                if keep {
                    st.idle.push(IdleSlot {
                        slot,
                        taken,
                        idle_since: Instant::now(),
                    });
                } else {
                    // Let other instances' waiters have this slot before this one takes it back.
                    st.yield_until = Some(Instant::now() + YIELD);
                }
                keep
            };
            if keep {
                self.pools
                    .release_if_idle_later(&self.pool, &self.pool_id, slot);
            } else {
                self.pools.release_slot(&self.pool_id, slot);
            }
        }
        // After the slot is back in the idle list, so that the next local waiter finds it.
        self.pool.release();
        metrics::gauge!("latchkey_pool_in_flight", "pool" => self.pool_id.clone()).decrement(1.0);
    }
}

/// The pool was full for the whole queue timeout.
#[derive(Debug)]
pub struct Busy;

impl Pools {
    /// `global`: hold the limit across instances through the store (PostgreSQL clusters).
    pub fn new(store: Arc<dyn Store>, global: bool) -> Arc<Self> {
        let pools = Arc::new(Self {
            pools: Mutex::new(HashMap::new()),
            store,
            holder: format!("instance-{}", ulid::Ulid::new()),
            global,
        });
        if global {
            let weak: Weak<Pools> = Arc::downgrade(&pools);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(HEARTBEAT).await;
                    let Some(p) = weak.upgrade() else { break };
                    let until = chrono::Utc::now()
                        + chrono::Duration::from_std(SLOT_LEASE).expect("small duration");
                    if let Err(e) = p.store.renew_slots(&p.holder, until).await {
                        tracing::warn!(error = %e, "could not renew pool slot leases");
                    }
                }
            });
        }
        pools
    }

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

    /// Gives an idle slot back to the database if no request of this instance took it within
    /// [`SLOT_LINGER`].
    fn release_if_idle_later(self: &Arc<Self>, pool: &Arc<Pool>, pool_id: &str, slot: i32) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (pools, pool, pool_id) = (self.clone(), pool.clone(), pool_id.to_string());
        rt.spawn(async move {
            tokio::time::sleep(SLOT_LINGER).await;
            let expired = {
                let mut st = pool.state.lock().expect("pool lock");
                let before = st.idle.len();
                st.idle
                    .retain(|i| !(i.slot == slot && i.idle_since.elapsed() >= SLOT_LINGER));
                before != st.idle.len()
            };
            if expired {
                pools.release_slot(&pool_id, slot);
            }
        });
    }

    /// A slot of this instance between requests, if one is still usable at `level`; the
    /// unusable ones go back to the database.
    fn take_idle(&self, pool: &Pool, pool_id: &str, level: usize) -> Option<(i32, Instant)> {
        let mut stale = Vec::new();
        let found = {
            let mut st = pool.state.lock().expect("pool lock");
            let mut found = None;
            while let Some(i) = st.idle.pop() {
                if i.taken.elapsed() < SLOT_REUSE && (i.slot as usize) < level {
                    found = Some((i.slot, i.taken));
                    break;
                }
                stale.push(i.slot);
            }
            found
        };
        for slot in stale {
            self.release_slot(pool_id, slot);
        }
        found
    }

    /// Waits (FIFO) for a place in `pool_id`, at most `timeout`. Returns the permit and how long
    /// the request waited.
    pub async fn acquire(
        self: &Arc<Self>,
        pool_id: &str,
        level: usize,
        timeout: Duration,
    ) -> Result<(Permit, Duration), Busy> {
        let start = Instant::now();
        let deadline = tokio::time::Instant::now() + timeout;
        let pool = {
            let mut map = self.pools.lock().expect("pools lock");
            map.entry(pool_id.to_string()).or_default().clone()
        };
        let waiter = {
            let mut st = pool.state.lock().expect("pool lock");
            st.level = level.max(1);
            Pool::grant(&mut st);
            if st.in_flight < st.level && st.queue.is_empty() {
                st.in_flight += 1;
                None
            } else {
                let (tx, rx) = oneshot::channel();
                st.queue.push_back(tx);
                Some(rx)
            }
        };
        metrics::gauge!("latchkey_pool_queued", "pool" => pool_id.to_string()).increment(1.0);
        let local = match waiter {
            None => true,
            Some(mut rx) => tokio::select! {
                r = &mut rx => r.is_ok(),
                _ = tokio::time::sleep_until(deadline) => {
                    rx.close();
                    // A place granted in the same instant is ours all the same.
                    rx.try_recv().is_ok()
                }
            },
        };
        metrics::gauge!("latchkey_pool_queued", "pool" => pool_id.to_string()).decrement(1.0);
        if !local {
            return Err(Busy);
        }
        metrics::gauge!("latchkey_pool_in_flight", "pool" => pool_id.to_string()).increment(1.0);
        let mut permit = Permit {
            pool,
            pool_id: pool_id.to_string(),
            global_slot: None,
            pools: self.clone(),
        };
        if self.global {
            permit.global_slot = self.take_idle(&permit.pool, pool_id, level);
            if permit.global_slot.is_none() {
                let yield_until = permit.pool.state.lock().expect("pool lock").yield_until;
                if let Some(t) = yield_until.filter(|t| *t > Instant::now()) {
                    tokio::time::sleep_until(t.into()).await;
                }
            }
            let mut pause = Duration::from_millis(5);
            while permit.global_slot.is_none() {
                let now = chrono::Utc::now();
                let until = now + chrono::Duration::from_std(SLOT_LEASE).expect("small duration");
                match self
                    .store
                    .try_acquire_slot(pool_id, level as i32, &self.holder, until, now)
                    .await
                {
                    Ok(Some(slot)) => {
                        permit.global_slot = Some((slot, Instant::now()));
                        break;
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "pool slot acquisition failed; retrying"),
                }
                if tokio::time::Instant::now() + pause > deadline {
                    return Err(Busy);
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_POLL);
            }
        }
        let waited = start.elapsed();
        metrics::histogram!("latchkey_pool_wait_seconds", "pool" => pool_id.to_string())
            .record(waited.as_secs_f64());
        Ok((permit, waited))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_is_fifo_and_respects_the_level() {
        let mut st = PoolState {
            level: 2,
            in_flight: 2,
            queue: VecDeque::new(),
            idle: Vec::new(),
            yield_until: None,
        };
        let (a, mut ra) = oneshot::channel();
        let (b, mut rb) = oneshot::channel();
        st.queue.push_back(a);
        st.queue.push_back(b);
        Pool::grant(&mut st);
        assert!(ra.try_recv().is_err() && rb.try_recv().is_err());
        st.in_flight = 1;
        Pool::grant(&mut st);
        assert!(ra.try_recv().is_ok());
        assert!(rb.try_recv().is_err(), "the second waiter stays queued");
        assert_eq!(st.in_flight, 2);
    }
}
