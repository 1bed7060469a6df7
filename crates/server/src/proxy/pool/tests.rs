//! The pool's queue and levels, without a server.

use super::*;

#[test]
fn grant_is_fifo_and_respects_the_level() {
    let mut st = PoolState {
        level: 2,
        ceiling: 2,
        in_flight: 2,
        ..Default::default()
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

#[test]
fn a_lowered_pool_grants_up_to_its_effective_level_until_it_is_back_at_the_ceiling() {
    let now = Utc::now();
    let lowered = |last: chrono::DateTime<Utc>| LoweredLevel {
        floor: 1,
        lowered_at: last,
        last_limited_at: last,
        step_ms: 3_600_000,
    };
    let mut st = PoolState {
        ceiling: 4,
        lowered: Some(lowered(now)),
        ..Default::default()
    };
    let mut rx: Vec<_> = (0..3)
        .map(|_| {
            let (tx, rx) = oneshot::channel();
            st.queue.push_back(tx);
            rx
        })
        .collect();
    Pool::set_level(&mut st);
    Pool::grant(&mut st);
    assert_eq!((st.level, st.in_flight), (1, 1));
    assert!(rx[0].try_recv().is_ok());
    assert!(rx[1].try_recv().is_err(), "one place at the lowered level");
    st.lowered = Some(lowered(now - chrono::Duration::hours(4)));
    Pool::set_level(&mut st);
    Pool::grant(&mut st);
    assert_eq!(
        st.level, 4,
        "three quiet steps later the level is back at the ceiling"
    );
    assert!(st.lowered.is_none(), "and the lowering is forgotten");
    assert!(rx[1].try_recv().is_ok() && rx[2].try_recv().is_ok());
    assert_eq!(st.in_flight, 3);
}

/// A cluster pool (slots in the store) at level 2 whose other slot another instance holds.
async fn cluster_pool_with_one_slot_free() -> Arc<Pools> {
    let store = latchkey_store::open("sqlite::memory:").await.unwrap();
    let now = Utc::now();
    let until = now + chrono::Duration::seconds(60);
    let other = store
        .try_acquire_slot("p", 2, "another-instance", until, now, None)
        .await
        .unwrap();
    assert!(other.is_some(), "the other instance holds a slot");
    Pools::new(store, true, Duration::from_secs(60))
}

#[tokio::test]
async fn a_freed_slot_goes_to_the_request_that_waited_longest_for_one() {
    let pools = cluster_pool_with_one_slot_free().await;
    let timeout = Duration::from_secs(5);
    let (first, _) = pools.acquire("p", 2, timeout).await.unwrap();
    assert!(first.global_slot.is_some());
    // The second request is admitted by this instance (level 2) but finds no free slot in the
    // store, so it waits for one; the third waits for its turn in this instance's queue.
    let p = pools.clone();
    let mut second = tokio::spawn(async move { p.acquire("p", 2, timeout).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let p = pools.clone();
    let mut third = tokio::spawn(async move { p.acquire("p", 2, timeout).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!second.is_finished() && !third.is_finished());

    drop(first);
    let (second_permit, _) = tokio::time::timeout(Duration::from_secs(2), &mut second)
        .await
        .expect("the request waiting for a slot got the freed one")
        .unwrap()
        .unwrap();
    assert!(second_permit.global_slot.is_some());
    let overtook = tokio::time::timeout(Duration::from_millis(200), &mut third).await;
    assert!(
        overtook.is_err(),
        "the request admitted after it did not take the slot first"
    );
    drop(second_permit);
    let (third_permit, _) = tokio::time::timeout(Duration::from_secs(2), third)
        .await
        .expect("then the third request had its turn")
        .unwrap()
        .unwrap();
    assert!(third_permit.global_slot.is_some());
}

#[tokio::test]
async fn a_slot_handed_to_a_request_that_went_away_is_not_lost() {
    let pools = cluster_pool_with_one_slot_free().await;
    let timeout = Duration::from_secs(5);
    let (first, _) = pools.acquire("p", 2, timeout).await.unwrap();
    let p = pools.clone();
    let gone = tokio::spawn(async move { p.acquire("p", 2, timeout).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The slot is handed to the waiting request, which goes away (its caller hung up) before
    // it runs again (this test's runtime has one thread: nothing runs between the two lines).
    drop(first);
    gone.abort();
    assert!(gone.await.is_err_and(|e| e.is_cancelled()));
    let (again, _) = tokio::time::timeout(Duration::from_secs(2), pools.acquire("p", 2, timeout))
        .await
        .expect("the slot came back to the pool")
        .unwrap();
    assert!(again.global_slot.is_some());
}
