//! Concurrency-pool slots: distinct slots below the level, leases that expire and renew, and
//! exactly `level` winners however many acquirers race.

use super::{now, unique};
use chrono::{DateTime, Duration, Utc};
use latchkey_core::ids::ConnectionId;
use latchkey_core::store::Store;
use std::collections::BTreeSet;

const LEASE: Duration = Duration::seconds(30);

/// A fresh pool (named, as pools are, by a connection id) whose holders are named within
/// `run`, so that a second run of the suite on one store meets none of the first's holders.
struct Pool<'a> {
    store: &'a dyn Store,
    id: String,
    run: &'a str,
}

impl<'a> Pool<'a> {
    fn new(store: &'a dyn Store, run: &'a str) -> Self {
        let id = ConnectionId::generate().as_str().to_string();
        Self { store, id, run }
    }

    async fn acquire(&self, level: i32, holder: &str, now: DateTime<Utc>) -> Option<i32> {
        let holder = format!("{}/{holder}", self.run);
        self.store
            .try_acquire_slot(&self.id, level, &holder, now + LEASE, now, None)
            .await
            .expect("acquire slot")
    }

    async fn held(&self, now: DateTime<Utc>) -> i64 {
        self.store
            .held_slots(&self.id, now)
            .await
            .expect("held slots")
    }

    async fn release(&self, slot: i32, holder: &str) {
        let holder = format!("{}/{holder}", self.run);
        self.store
            .release_slot(&self.id, slot, &holder)
            .await
            .expect("release slot");
    }

    async fn renew(&self, holder: &str, until: DateTime<Utc>) -> u64 {
        let holder = format!("{}/{holder}", self.run);
        self.store
            .renew_slots(&holder, until)
            .await
            .expect("renew slots")
    }
}

/// Distinct slots up to the level, then none; only the holder's release frees a slot; an
/// expired lease is taken over unless renewed; pools do not share slots.
pub async fn slots(store: &dyn Store) {
    let run = unique("slots");
    let pool = Pool::new(store, &run);
    let t0 = now();
    let mut taken = Vec::new();
    for holder in ["a", "b", "c"] {
        let slot = pool.acquire(3, holder, t0).await;
        taken.push(slot.expect("a free slot"));
    }
    let distinct: BTreeSet<i32> = taken.iter().copied().collect();
    assert_eq!(distinct, BTreeSet::from([0, 1, 2]), "three distinct slots");
    let [slot_a, slot_b, slot_c] = [taken[0], taken[1], taken[2]];
    assert_eq!(pool.acquire(3, "d", t0).await, None, "all held");
    assert_eq!(pool.held(t0).await, 3);

    pool.release(slot_a, "d").await;
    assert_eq!(
        pool.acquire(3, "d", t0).await,
        None,
        "a release by another holder does nothing"
    );
    pool.release(slot_a, "a").await;
    assert_eq!(pool.held(t0).await, 2);
    assert_eq!(
        pool.acquire(3, "d", t0).await,
        Some(slot_a),
        "the holder's release frees its slot for the next"
    );

    let until = t0 + LEASE;
    assert_eq!(pool.renew("b", until + LEASE).await, 1);
    assert_eq!(pool.renew("nobody", until + LEASE).await, 0);
    assert_eq!(
        pool.acquire(3, "e", until).await,
        None,
        "a lease is held up to and including its expiry"
    );
    let t1 = until + Duration::seconds(1);
    assert_eq!(pool.held(t1).await, 1, "only the renewed lease is live");
    let mut expired = BTreeSet::from([slot_a, slot_c]);
    for holder in ["e", "f"] {
        let slot = pool
            .acquire(3, holder, t1)
            .await
            .expect("an expired lease is taken over");
        assert!(expired.remove(&slot), "{holder} took {slot}");
    }
    assert_eq!(
        pool.acquire(3, "g", t1).await,
        None,
        "a renewed lease is not taken over"
    );
    pool.release(slot_c, "c").await;
    assert_eq!(
        pool.acquire(3, "g", t1).await,
        None,
        "a former holder's release does not free its successor's slot"
    );
    assert_eq!(
        pool.renew("c", t1 + LEASE).await,
        0,
        "a former holder renews nothing"
    );
    assert_eq!(pool.held(t1).await, 3);

    let other = Pool::new(store, &run);
    assert_eq!(other.held(t1).await, 0, "pools do not share slots");
    assert_eq!(other.acquire(1, "b", t1).await, Some(0));
    assert_eq!(other.acquire(1, "g", t1).await, None);
    assert_eq!(
        pool.renew("b", t1 + LEASE * 4).await,
        2,
        "a renewal covers the holder's slots in every pool"
    );
    other.release(slot_b, "b").await;
    other.release(0, "b").await;
    assert_eq!(pool.held(t1).await, 3, "a release stays in its pool");
    assert_eq!(other.held(t1).await, 0);
}

/// Slots at or above a lowered level are never handed out, free or expired; a raised level
/// adds slots.
pub async fn slot_levels(store: &dyn Store) {
    let run = unique("levels");
    let pool = Pool::new(store, &run);
    let t0 = now();
    for (holder, slot) in [("a", 0), ("b", 1), ("c", 2)] {
        assert_eq!(pool.acquire(3, holder, t0).await, Some(slot));
    }
    pool.release(2, "c").await;
    assert_eq!(
        pool.acquire(2, "d", t0).await,
        None,
        "a free slot above the lowered level is not handed out"
    );
    pool.release(0, "a").await;
    assert_eq!(pool.acquire(2, "d", t0).await, Some(0));

    for (holder, slot) in [("e", 2), ("f", 3), ("g", 4)] {
        assert_eq!(
            pool.acquire(5, holder, t0).await,
            Some(slot),
            "a raised level adds slots, lowest first"
        );
    }
    assert_eq!(pool.acquire(5, "h", t0).await, None);
    assert_eq!(
        pool.held(t0).await,
        5,
        "held counts every slot, whatever the level"
    );

    let later = t0 + LEASE * 2;
    assert_eq!(pool.acquire(2, "h", later).await, Some(0));
    assert_eq!(pool.acquire(2, "i", later).await, Some(1));
    assert_eq!(
        pool.acquire(2, "j", later).await,
        None,
        "expired slots above the level are not handed out either"
    );
    assert_eq!(pool.acquire(0, "j", later).await, None);
}

/// Racing acquirers, on a new pool and on one whose rows exist, beside a second pool: exactly
/// `level` of each pool's acquirers win, each a distinct slot below the level.
pub async fn concurrent_slots(store: &dyn Store) {
    let run = unique("race");
    let pools = [(Pool::new(store, &run), 5), (Pool::new(store, &run), 3)];
    for round in 0..2 {
        let t0 = now();
        let racers: Vec<(&Pool, i32, String)> = (0..40)
            .flat_map(|i| {
                pools
                    .iter()
                    .enumerate()
                    .map(move |(p, (pool, level))| (pool, *level, format!("{round}-{p}-{i}")))
            })
            .collect();
        let results = futures::future::join_all(
            racers
                .iter()
                .map(|(pool, level, holder)| pool.acquire(*level, holder, t0)),
        )
        .await;
        for (pool, level) in &pools {
            let won: Vec<(i32, &str)> = racers
                .iter()
                .zip(&results)
                .filter(|((p, _, _), _)| std::ptr::eq(*p, pool))
                .filter_map(|((_, _, holder), slot)| slot.map(|s| (s, holder.as_str())))
                .collect();
            let slots: BTreeSet<i32> = won.iter().map(|(s, _)| *s).collect();
            assert_eq!(
                (won.len(), slots),
                (*level as usize, (0..*level).collect()),
                "round {round}: exactly {level} winners, one per slot: {won:?}"
            );
            assert_eq!(pool.held(t0).await, i64::from(*level));
            for (slot, holder) in won {
                pool.release(slot, holder).await;
            }
            assert_eq!(pool.held(t0).await, 0, "round {round}: all released");
        }
    }
}
