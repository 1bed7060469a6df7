//! Concurrency-pool slots: distinct slots below the level, leases that expire and renew, and
//! exactly `level` winners however many acquirers race.

use super::now;
use chrono::{DateTime, Duration, Utc};
use latchkey_core::ids::ConnectionId;
use latchkey_core::store::Store;
use std::collections::BTreeSet;

const LEASE: Duration = Duration::seconds(30);

/// A fresh pool id (pools are named by connection ids).
fn new_pool() -> String {
    ConnectionId::generate().as_str().to_string()
}

async fn acquire(
    store: &dyn Store,
    pool: &str,
    level: i32,
    holder: &str,
    now: DateTime<Utc>,
) -> Option<i32> {
    store
        .try_acquire_slot(pool, level, holder, now + LEASE, now)
        .await
        .expect("acquire slot")
}

async fn held(store: &dyn Store, pool: &str, now: DateTime<Utc>) -> i64 {
    store.held_slots(pool, now).await.expect("held slots")
}

async fn release(store: &dyn Store, pool: &str, slot: i32, holder: &str) {
    store
        .release_slot(pool, slot, holder)
        .await
        .expect("release slot");
}

async fn renew(store: &dyn Store, holder: &str, until: DateTime<Utc>) -> u64 {
    store.renew_slots(holder, until).await.expect("renew slots")
}

/// Distinct slots up to the level, then none; only the holder's release frees a slot; an
/// expired lease is taken over unless renewed; pools do not share slots.
pub async fn slots(store: &dyn Store) {
    let pool = new_pool();
    let t0 = now();
    let mut taken = Vec::new();
    for holder in ["a", "b", "c"] {
        let slot = acquire(store, &pool, 3, holder, t0).await;
        taken.push(slot.expect("a free slot"));
    }
    let distinct: BTreeSet<i32> = taken.iter().copied().collect();
    assert_eq!(distinct, BTreeSet::from([0, 1, 2]), "three distinct slots");
    let [slot_a, slot_b, slot_c] = [taken[0], taken[1], taken[2]];
    assert_eq!(acquire(store, &pool, 3, "d", t0).await, None, "all held");
    assert_eq!(held(store, &pool, t0).await, 3);

    release(store, &pool, slot_a, "d").await;
    assert_eq!(
        acquire(store, &pool, 3, "d", t0).await,
        None,
        "a release by another holder does nothing"
    );
    release(store, &pool, slot_a, "a").await;
    assert_eq!(held(store, &pool, t0).await, 2);
    assert_eq!(
        acquire(store, &pool, 3, "d", t0).await,
        Some(slot_a),
        "the holder's release frees its slot for the next"
    );

    let until = t0 + LEASE;
    assert_eq!(renew(store, "b", until + LEASE).await, 1);
    assert_eq!(renew(store, "nobody", until + LEASE).await, 0);
    assert_eq!(
        acquire(store, &pool, 3, "e", until).await,
        None,
        "a lease is held up to and including its expiry"
    );
    let t1 = until + Duration::seconds(1);
    assert_eq!(
        held(store, &pool, t1).await,
        1,
        "only the renewed lease is live"
    );
    let mut expired = BTreeSet::from([slot_a, slot_c]);
    for holder in ["e", "f"] {
        let slot = acquire(store, &pool, 3, holder, t1)
            .await
            .expect("an expired lease is taken over");
        assert!(expired.remove(&slot), "{holder} took {slot}");
    }
    assert_eq!(
        acquire(store, &pool, 3, "g", t1).await,
        None,
        "a renewed lease is not taken over"
    );
    release(store, &pool, slot_c, "c").await;
    assert_eq!(
        acquire(store, &pool, 3, "g", t1).await,
        None,
        "a former holder's release does not free its successor's slot"
    );
    assert_eq!(
        renew(store, "c", t1 + LEASE).await,
        0,
        "a former holder renews nothing"
    );
    assert_eq!(held(store, &pool, t1).await, 3);

    let other = new_pool();
    assert_eq!(held(store, &other, t1).await, 0, "pools do not share slots");
    assert_eq!(acquire(store, &other, 1, "b", t1).await, Some(0));
    assert_eq!(acquire(store, &other, 1, "g", t1).await, None);
    assert_eq!(
        renew(store, "b", t1 + LEASE * 4).await,
        2,
        "a renewal covers the holder's slots in every pool"
    );
    release(store, &other, slot_b, "b").await;
    release(store, &other, 0, "b").await;
    assert_eq!(
        held(store, &pool, t1).await,
        3,
        "a release stays in its pool"
    );
    assert_eq!(held(store, &other, t1).await, 0);
}

/// Slots at or above a lowered level are never handed out, free or expired; a raised level
/// adds slots.
pub async fn slot_levels(store: &dyn Store) {
    let pool = new_pool();
    let t0 = now();
    for (holder, slot) in [("a", 0), ("b", 1), ("c", 2)] {
        assert_eq!(acquire(store, &pool, 3, holder, t0).await, Some(slot));
    }
    release(store, &pool, 2, "c").await;
    assert_eq!(
        acquire(store, &pool, 2, "d", t0).await,
        None,
        "a free slot above the lowered level is not handed out"
    );
    release(store, &pool, 0, "a").await;
    assert_eq!(acquire(store, &pool, 2, "d", t0).await, Some(0));

    for (holder, slot) in [("e", 2), ("f", 3), ("g", 4)] {
        assert_eq!(
            acquire(store, &pool, 5, holder, t0).await,
            Some(slot),
            "a raised level adds slots, lowest first"
        );
    }
    assert_eq!(acquire(store, &pool, 5, "h", t0).await, None);
    assert_eq!(
        held(store, &pool, t0).await,
        5,
        "held counts every slot, whatever the level"
    );

    let later = t0 + LEASE * 2;
    assert_eq!(acquire(store, &pool, 2, "h", later).await, Some(0));
    assert_eq!(acquire(store, &pool, 2, "i", later).await, Some(1));
    assert_eq!(
        acquire(store, &pool, 2, "j", later).await,
        None,
        "expired slots above the level are not handed out either"
    );
    assert_eq!(acquire(store, &pool, 0, "j", later).await, None);
}

/// Racing acquirers, on a new pool and on one whose rows exist, beside a second pool: exactly
/// `level` of each pool's acquirers win, each a distinct slot below the level.
pub async fn concurrent_slots(store: &dyn Store) {
    let (first, second) = (new_pool(), new_pool());
    for round in 0..2 {
        let t0 = now();
        let racers: Vec<(&str, i32, String)> = (0..40)
            .flat_map(|i| {
                [
                    (first.as_str(), 5, format!("first-{round}-{i}")),
                    (second.as_str(), 3, format!("second-{round}-{i}")),
                ]
            })
            .collect();
        let results = futures::future::join_all(racers.iter().map(|(pool, level, holder)| {
            store.try_acquire_slot(pool, *level, holder, t0 + LEASE, t0)
        }))
        .await;
        for (pool, level) in [(&first, 5), (&second, 3)] {
            let won: Vec<(i32, &str)> = racers
                .iter()
                .zip(&results)
                .filter(|((p, _, _), _)| *p == pool.as_str())
                .map(|((_, _, holder), r)| (r.as_ref().expect("acquire slot"), holder))
                .filter_map(|(slot, holder)| slot.map(|s| (s, holder.as_str())))
                .collect();
            let slots: BTreeSet<i32> = won.iter().map(|(s, _)| *s).collect();
            assert_eq!(
                slots,
                (0..level).collect(),
                "round {round}: exactly {level} winners, one per slot: {won:?}"
            );
            assert_eq!(won.len(), level as usize, "round {round}: {won:?}");
            assert_eq!(held(store, pool, t0).await, i64::from(level));
            for (slot, holder) in won {
                release(store, pool, slot, holder).await;
            }
            assert_eq!(held(store, pool, t0).await, 0);
        }
    }
}
