//! Concurrency pools. Each pool allows `level` requests in flight; more wait in
//! FIFO order up to the queue timeout. A borrower uses its lender's pool. A level change
//! applies to the next request at once; requests in flight are never cut off.
//!
//! With a PostgreSQL store the limit holds across every instance: after its local turn, a
//! request also takes one of the pool's `level` slot leases in the database, renewed by a
//! heartbeat and expiring when an instance dies.
//!
//! A slot an instance took stays with it so that back-to-back requests do not each pay two
//! database round trips: when a request ends, its slot goes to the request of this instance
//! that has waited longest for a database slot, or, when none waits, to this instance's next
//! request if one starts within [`SLOT_LINGER`]; otherwise it goes back to the database. A
//! request admitted later therefore never takes a slot ahead of one of its own instance that
//! is already waiting. A slot is still used by one request at a time, so the cluster-wide
//! limit holds exactly.
//!
//! Every [`SLOT_REUSE`] the instance asks the database whether it may go on keeping the slot.
//! A request of another instance that finds no free slot marks the pool as wanted (its mark
//! lasts [`WANT`] and each further miss renews it, so a dead instance's mark runs out by
//! itself). One statement then either extends the slot's lease, when no other instance's mark
//! is live, or frees the slot, after which this instance leaves the database alone for
//! [`YIELD`] so that the waiter gets it. An instance alone in the cluster thus keeps its slots
//! at one round trip per slot every `SLOT_REUSE`, never pausing, while a waiting instance gets
//! a slot within `SLOT_REUSE` plus one request. An instance's own marks never make it give a
//! slot back: its own requests get its slots locally.
//!
//! An application's 429 lowers a pool's effective level (see `latchkey_core::rate_limit`): it
//! halves, never below 1, and climbs back by one per quiet interval up to the configured level.
//! Requests in flight when it drops finish; it applies to the places handed out afterwards.
//! On PostgreSQL the lowered level is a row every instance's slot takes read in the same
//! statement, so it holds across the cluster at once; each instance also learns it (for its
//! local queue and its metrics) from its own 429s and from the heartbeat.

use chrono::Utc;
use latchkey_core::catalog::{BORROW_CONCURRENCY_FROM, CONCURRENCY_LEVEL};
use latchkey_core::model::{AuthMode, ConnectionRecord, DEFAULT_CONCURRENCY_LEVEL};
use latchkey_core::rate_limit::LoweredLevel;
use latchkey_core::store::{SlotKept, Store};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How long a slot lease lasts without renewal: a dead instance's slots return this fast.
pub const SLOT_LEASE: Duration = Duration::from_secs(10);
const HEARTBEAT: Duration = Duration::from_secs(3);
/// How long an instance may keep handing one slot from request to request before it asks the
/// database whether another instance wants the pool (and gives the slot back if so).
pub const SLOT_REUSE: Duration = Duration::from_millis(500);
/// After giving a slot back for that reason, this instance's requests leave the database alone
/// this long, longer than the longest pause of a waiting instance ([`MAX_POLL`]): a waiter on
/// another instance gets the slot instead of this instance taking it straight back.
const YIELD: Duration = Duration::from_millis(25);
/// The longest pause between two tries of a request waiting for a database slot.
const MAX_POLL: Duration = Duration::from_millis(20);
/// How long a miss marks the pool as wanted by this instance: many times [`MAX_POLL`], so a
/// waiting request renews its mark well before it runs out, and short, so a mark left by a
/// request that got its slot (or by a dead instance) soon stops costing the others a slot.
pub const WANT: Duration = Duration::from_millis(200);
/// How long a finished request's slot waits for this instance's next request.
pub const SLOT_LINGER: Duration = Duration::from_millis(20);

/// A database slot between two requests of this instance.
struct IdleSlot {
    slot: i32,
    taken: Instant,
    idle_since: Instant,
}

/// A request of this instance waiting for a database slot, as the pool sees it.
struct SlotWaiter {
    tx: oneshot::Sender<IdleSlot>,
    /// Set while the request is asking the database for a slot: a slot handed to it then would
    /// sit unused until the answer came, so it goes to the next waiter if there is one.
    asking: Arc<AtomicBool>,
}

#[derive(Default)]
struct PoolState {
    /// The effective level: `ceiling`, or less while a 429 keeps it lowered.
    level: usize,
    /// The configured level.
    ceiling: usize,
    /// Set while rate limits keep the level below the ceiling.
    lowered: Option<LoweredLevel>,
    /// Whether a timer raises the level step by step (queued requests move without a release).
    climbing: bool,
    in_flight: usize,
    queue: VecDeque<oneshot::Sender<()>>,
    idle: Vec<IdleSlot>,
    /// Admitted requests waiting for a database slot, longest-waiting first: a slot this
    /// instance's requests give up goes to them before it goes idle.
    slot_waiters: VecDeque<SlotWaiter>,
    /// Until when this instance leaves the database's free slots to the others.
    yield_until: Option<Instant>,
    /// Whether a task is giving back the slots that stay idle past [`SLOT_LINGER`].
    lingering: bool,
}

struct Pool {
    /// The pool's id (a connection's), kept for the cluster's slots.
    id: Box<str>,
    state: Mutex<PoolState>,
    /// This pool's series, looked up once (a lookup by name and label costs allocations and a
    /// hash on every proxied call).
    queued: metrics::Gauge,
    in_flight: metrics::Gauge,
    wait: metrics::Histogram,
    /// Slots kept past [`SLOT_REUSE`] because no other instance wanted the pool, and slots
    /// given back because one did.
    kept: metrics::Counter,
    yielded: metrics::Counter,
}

impl Pool {
    fn new(pool_id: &str) -> Self {
        let label = || pool_id.to_string();
        Pool {
            id: pool_id.into(),
            state: Mutex::default(),
            queued: metrics::gauge!("latchkey_pool_queued", "pool" => label()),
            in_flight: metrics::gauge!("latchkey_pool_in_flight", "pool" => label()),
            wait: metrics::histogram!("latchkey_pool_wait_seconds", "pool" => label()),
            kept: metrics::counter!("latchkey_pool_slot_kept_total", "pool" => label()),
            yielded: metrics::counter!("latchkey_pool_slot_yielded_total", "pool" => label()),
        }
    }

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
        if st.lowered.is_some() {
            Pool::set_level(&mut st);
        }
        Pool::grant(&mut st);
    }

    /// The effective level from the ceiling and the lowering, if any (forgotten once it is
    /// back at the ceiling). Reads the clock only while lowered.
    fn set_level(st: &mut PoolState) {
        st.level = match &st.lowered {
            None => st.ceiling.max(1),
            Some(l) => {
                let level = l.effective(st.ceiling, Utc::now());
                if level >= st.ceiling.max(1) {
                    st.lowered = None;
                }
                level
            }
        };
    }
}

pub struct Pools {
    pools: Mutex<crate::FastMap<String, Arc<Pool>>>,
    store: Arc<dyn Store>,
    holder: String,
    global: bool,
    /// How long a lowered level waits without a 429 before it climbs by one.
    recovery: Duration,
}

/// A place in a pool, given back when dropped (after the response body is streamed).
pub struct Permit {
    pool: Arc<Pool>,
    /// Whether the request waited for this place: in the queue, or for a database slot (in a
    /// cluster it may have to).
    waited_in_line: bool,
    /// The database slot and when it was taken from the database.
    global_slot: Option<(i32, Instant)>,
    pools: Arc<Pools>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some((slot, taken)) = self.global_slot {
            self.pools.give_slot(&self.pool, slot, taken);
        }
        // After the slot was handed on or put in the idle list, so that a newly admitted
        // request finds only what nobody already waiting took.
        self.pool.release();
        self.pool.in_flight.decrement(1.0);
    }
}

impl Permit {
    /// Whether the request may have waited for its place (the world may have changed
    /// meanwhile), rather than finding one free at once.
    pub fn waited_in_line(&self) -> bool {
        self.waited_in_line
    }
}

/// The pool was full for the whole queue timeout.
#[derive(Debug)]
pub struct Busy;

impl Pools {
    /// `global`: hold the limit across instances through the store (PostgreSQL clusters).
    /// `recovery`: the quiet interval after which a level lowered by 429s climbs by one.
    pub fn new(store: Arc<dyn Store>, global: bool, recovery: Duration) -> Arc<Self> {
        let pools = Arc::new(Self {
            pools: Mutex::default(),
            store,
            holder: format!("instance-{}", ulid::Ulid::new()),
            global,
            recovery,
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
                    if let Err(e) = p.store.forget_slot_wants(chrono::Utc::now()).await {
                        tracing::debug!(error = %e, "could not delete pool marks that ran out");
                    }
                    match p.store.lowered_levels(chrono::Utc::now()).await {
                        Ok(rows) => p.adopt_levels(rows),
                        Err(e) => tracing::warn!(error = %e, "could not read lowered pool levels"),
                    }
                }
            });
        }
        pools
    }

    /// Waits (FIFO) for a place in `pool_id` (configured level `level`), at most `timeout`.
    /// Returns the permit and how long the request waited.
    pub async fn acquire(
        self: &Arc<Self>,
        pool_id: &str,
        level: usize,
        timeout: Duration,
    ) -> Result<(Permit, Duration), Busy> {
        let deadline = tokio::time::Instant::now() + timeout;
        self.acquire_until(pool_id, level, deadline, false).await
    }

    /// Like [`Pools::acquire`] until `deadline`, ahead of every queued request: for a request
    /// that already had its turn and gave the place up while it waited to retry.
    pub async fn reacquire(
        self: &Arc<Self>,
        pool_id: &str,
        level: usize,
        deadline: tokio::time::Instant,
    ) -> Result<(Permit, Duration), Busy> {
        self.acquire_until(pool_id, level, deadline, true).await
    }

    fn pool(&self, pool_id: &str) -> Arc<Pool> {
        let mut map = self.pools.lock().expect("pools lock");
        match map.get(pool_id) {
            Some(p) => p.clone(),
            None => map
                .entry(pool_id.to_string())
                .or_insert_with(|| Arc::new(Pool::new(pool_id)))
                .clone(),
        }
    }

    async fn acquire_until(
        self: &Arc<Self>,
        pool_id: &str,
        level: usize,
        deadline: tokio::time::Instant,
        first: bool,
    ) -> Result<(Permit, Duration), Busy> {
        let start = Instant::now();
        let pool = self.pool(pool_id);
        let (waiter, effective) = {
            let mut st = pool.state.lock().expect("pool lock");
            st.ceiling = level.max(1);
            Pool::set_level(&mut st);
            Pool::grant(&mut st);
            let waiter = if st.in_flight < st.level && st.queue.is_empty() {
                st.in_flight += 1;
                None
            } else {
                let (tx, rx) = oneshot::channel();
                if first {
                    st.queue.push_front(tx);
                } else {
                    st.queue.push_back(tx);
                }
                Some(rx)
            };
            (waiter, st.level)
        };
        let local_now = waiter.is_none();
        let local = match waiter {
            None => true,
            Some(mut rx) => {
                pool.queued.increment(1.0);
                let granted = tokio::select! {
                    r = &mut rx => r.is_ok(),
                    _ = tokio::time::sleep_until(deadline) => {
                        rx.close();
                        // A place granted in the same instant is ours all the same.
                        rx.try_recv().is_ok()
                    }
                };
                pool.queued.decrement(1.0);
                granted
            }
        };
        if !local {
            return Err(Busy);
        }
        pool.in_flight.increment(1.0);
        let mut permit = Permit {
            pool,
            waited_in_line: !local_now || self.global,
            global_slot: None,
            pools: self.clone(),
        };
        if self.global {
            self.take_global_slot(&mut permit, pool_id, (level, effective), deadline, first)
                .await?;
        }
        let waited = start.elapsed();
        permit.pool.wait.record(waited.as_secs_f64());
        Ok((permit, waited))
    }
}

/// Rate limits: the effective level of each pool.
impl Pools {
    /// Records a 429 of `pool_id` (configured level `level`) for a request sent at `sent_at`:
    /// lowers the pool's effective level as the rule says (in the database too, for the whole
    /// cluster) and starts the climb back. Call it before the request's place is given back,
    /// so that the place goes to the next request at the lowered level.
    pub async fn rate_limited(
        self: &Arc<Self>,
        pool_id: &str,
        level: usize,
        sent_at: chrono::DateTime<Utc>,
    ) {
        let pool = self.pool(pool_id);
        let now = Utc::now();
        let shared = if self.global {
            let ceiling = level.max(1) as i32;
            match self
                .store
                .record_rate_limited(pool_id, ceiling, sent_at, now, self.recovery)
                .await
            {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::warn!(pool = pool_id, error = %e, "could not record a rate limit for the cluster; lowering this instance only");
                    None
                }
            }
        } else {
            None
        };
        let mut st = pool.state.lock().expect("pool lock");
        st.ceiling = level.max(1);
        let next = shared.unwrap_or_else(|| {
            LoweredLevel::after_limited(
                st.lowered.as_ref(),
                st.ceiling,
                sent_at,
                now,
                self.recovery,
            )
        });
        if st.lowered.is_none_or(|l| l.lowered_at != next.lowered_at) {
            metrics::counter!("latchkey_pool_level_lowered_total", "pool" => pool_id.to_string())
                .increment(1);
        }
        st.lowered = Some(next);
        self.level_changed(&pool, pool_id, &mut st);
    }

    /// After `lowered` changed: the level, the waiters it lets through, the gauge, the climb.
    fn level_changed(&self, pool: &Arc<Pool>, pool_id: &str, st: &mut PoolState) {
        Pool::set_level(st);
        Pool::grant(st);
        metrics::gauge!("latchkey_pool_effective_level", "pool" => pool_id.to_string())
            .set(st.level as f64);
        if st.lowered.is_none() || st.climbing {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        st.climbing = true;
        let (pool, pool_id) = (pool.clone(), pool_id.to_string());
        rt.spawn(async move {
            loop {
                let next = {
                    let st = pool.state.lock().expect("pool lock");
                    st.lowered.map(|l| l.next_step_at(Utc::now()))
                };
                if let Some(at) = next {
                    let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                    tokio::time::sleep(wait).await;
                }
                let mut st = pool.state.lock().expect("pool lock");
                Pool::set_level(&mut st);
                Pool::grant(&mut st);
                metrics::gauge!("latchkey_pool_effective_level", "pool" => pool_id.clone())
                    .set(st.level as f64);
                if st.lowered.is_none() {
                    st.climbing = false;
                    break;
                }
            }
        });
    }

    /// Takes the cluster's lowered levels (read by the heartbeat) for the pools this instance
    /// uses.
    fn adopt_levels(&self, rows: Vec<(String, LoweredLevel)>) {
        for (pool_id, lowered) in rows {
            let pool = self
                .pools
                .lock()
                .expect("pools lock")
                .get(&pool_id)
                .cloned();
            let Some(pool) = pool else { continue };
            let mut st = pool.state.lock().expect("pool lock");
            if st.ceiling == 0 || st.lowered == Some(lowered) {
                continue;
            }
            st.lowered = Some(lowered);
            self.level_changed(&pool, &pool_id, &mut st);
        }
    }

    /// The effective level of `pool_id` as this instance knows it, under the configured
    /// `level`.
    pub fn effective_level(&self, pool_id: &str, level: usize) -> usize {
        let pool = self.pools.lock().expect("pools lock").get(pool_id).cloned();
        let lowered = pool.and_then(|p| p.state.lock().expect("pool lock").lowered);
        match lowered {
            Some(l) => l.effective(level.max(1), Utc::now()),
            None => level.max(1),
        }
    }

    /// Sets the effective-level gauge of every pool this instance has used (for `/metrics`).
    pub fn publish_levels(&self) {
        let pools: Vec<(String, Arc<Pool>)> = {
            let map = self.pools.lock().expect("pools lock");
            map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        for (pool_id, pool) in pools {
            let mut st = pool.state.lock().expect("pool lock");
            if st.ceiling == 0 {
                continue;
            }
            Pool::set_level(&mut st);
            metrics::gauge!("latchkey_pool_effective_level", "pool" => pool_id)
                .set(st.level as f64);
        }
    }
}

pub(crate) fn level_of(c: &ConnectionRecord) -> usize {
    c.settings
        .get(CONCURRENCY_LEVEL)
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_CONCURRENCY_LEVEL)
        .clamp(1, 25) as usize
}

/// The level a connection's own pool runs at now (as this instance knows it); `None` for a
/// connection that borrows another's pool, and for a database (never proxied).
pub(crate) fn effective_level_of(pools: &Pools, c: &ConnectionRecord) -> Option<usize> {
    (c.auth_mode != AuthMode::Database && !c.settings.contains_key(BORROW_CONCURRENCY_FROM))
        .then(|| pools.effective_level(c.id.as_str(), level_of(c)))
}

mod cluster;
#[cfg(test)]
mod tests;
