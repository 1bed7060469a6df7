//! Levels lowered by rate limits: a 429 halves the level slots are taken below, the rest of
//! its burst does not halve it again (even when recorded at once by racing instances), quiet
//! steps raise it back, and the lowered pools are listed until they could have recovered.

use super::{now, unique};
use chrono::{DateTime, Duration, Utc};
use latchkey_core::ids::ConnectionId;
use latchkey_core::store::Store;

const LEASE: Duration = Duration::seconds(30);
const STEP: std::time::Duration = std::time::Duration::from_secs(10);

async fn take(
    store: &dyn Store,
    pool: &str,
    level: i32,
    holder: &str,
    at: DateTime<Utc>,
) -> Option<i32> {
    store
        .try_acquire_slot(pool, level, holder, at + LEASE, at, None)
        .await
        .expect("acquire slot")
}

async fn limited(store: &dyn Store, pool: &str, sent: DateTime<Utc>, at: DateTime<Utc>) -> i64 {
    store
        .record_rate_limited(pool, 4, sent, at, STEP)
        .await
        .expect("record a 429")
        .effective(4, at) as i64
}

fn listed(rows: &[(String, latchkey_core::rate_limit::LoweredLevel)], pool: &str) -> bool {
    rows.iter().any(|(p, _)| p == pool)
}

/// A lowered level bounds the slots taken, and climbs back one slot per quiet step.
pub async fn rate_limited_levels(store: &dyn Store) {
    let run = unique("limited");
    let pool = ConnectionId::generate().as_str().to_string();
    let holder = |h: &str| format!("{run}/{h}");
    let t0 = now();
    assert_eq!(take(store, &pool, 4, &holder("a"), t0).await, Some(0));
    let t1 = t0 + Duration::milliseconds(5);
    assert_eq!(
        limited(store, &pool, t0, t1).await,
        2,
        "a 429 halves the level"
    );
    assert_eq!(
        limited(store, &pool, t0, t1 + Duration::milliseconds(1)).await,
        2,
        "a 429 of a request sent before the lowering does not halve it again"
    );
    let t2 = t1 + Duration::milliseconds(2);
    assert_eq!(take(store, &pool, 4, &holder("b"), t2).await, Some(1));
    assert_eq!(
        take(store, &pool, 4, &holder("c"), t2).await,
        None,
        "two slots at the lowered level, although four are configured"
    );
    let rows = store.lowered_levels(t2).await.expect("lowered levels");
    assert!(listed(&rows, &pool), "a lowered pool is listed");

    assert_eq!(
        limited(store, &pool, t2, t2).await,
        1,
        "a 429 sent at the lowered level halves it again"
    );
    store
        .release_slot(&pool, 0, &holder("a"))
        .await
        .expect("release");
    store
        .release_slot(&pool, 1, &holder("b"))
        .await
        .expect("release");
    assert_eq!(take(store, &pool, 4, &holder("d"), t2).await, Some(0));
    assert_eq!(
        take(store, &pool, 4, &holder("e"), t2).await,
        None,
        "never below one"
    );

    let quiet = t2 + Duration::seconds(10);
    assert_eq!(
        take(store, &pool, 4, &holder("e"), quiet).await,
        Some(1),
        "one quiet step raises the level by one"
    );
    assert_eq!(take(store, &pool, 4, &holder("f"), quiet).await, None);
    let long_after = t2 + Duration::seconds(10 * 30);
    assert!(!listed(
        &store.lowered_levels(long_after).await.expect("lowered"),
        &pool
    ));
    // Every lease has expired by then: all four configured slots are free again.
    for h in ["f", "g", "h", "i"] {
        assert!(
            take(store, &pool, 4, &holder(h), long_after)
                .await
                .is_some(),
            "back at the ceiling"
        );
    }
    assert_eq!(take(store, &pool, 4, &holder("j"), long_after).await, None);
    assert_eq!(
        limited(store, &pool, long_after, long_after).await,
        2,
        "after recovery a 429 halves the ceiling again"
    );
}

/// Instances recording one burst's 429s at the same moment halve the level once.
pub async fn concurrent_rate_limits(store: &dyn Store) {
    let pool = ConnectionId::generate().as_str().to_string();
    let t0 = now();
    let at = t0 + Duration::milliseconds(3);
    let levels = futures::future::join_all(
        (0..8).map(|_| store.record_rate_limited(&pool, 8, t0, at, STEP)),
    )
    .await;
    for l in levels {
        assert_eq!(
            l.expect("record").effective(8, at),
            4,
            "one burst, one halving"
        );
    }
}
