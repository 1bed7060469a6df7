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
