//! Marks of holders waiting for a pool's slot: set by a miss that asks for it, seen by every
//! other holder and not by the one that set it, gone once their time has passed.

use super::{now, unique};
use chrono::{DateTime, Duration, Utc};
use latchkey_core::ids::ConnectionId;
use latchkey_core::store::{SlotKept, Store};

const LEASE: Duration = Duration::seconds(30);
const WANT: Duration = Duration::milliseconds(300);

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

    fn holder(&self, name: &str) -> String {
        format!("{}/{name}", self.run)
    }

    /// A take at `at`; `wanting` marks the pool as wanted (for [`WANT`]) if it misses.
    async fn take(
        &self,
        level: i32,
        holder: &str,
        at: DateTime<Utc>,
        wanting: bool,
    ) -> Option<i32> {
        self.store
            .try_acquire_slot(
                &self.id,
                level,
                &self.holder(holder),
                at + LEASE,
                at,
                wanting.then(|| at + WANT),
            )
            .await
            .expect("acquire slot")
    }

    async fn keep(&self, slot: i32, holder: &str, at: DateTime<Utc>) -> SlotKept {
        self.store
            .keep_slot_unless_wanted(&self.id, slot, &self.holder(holder), at + LEASE, at)
            .await
            .expect("keep slot")
    }

    async fn held(&self, at: DateTime<Utc>) -> i64 {
        self.store
            .held_slots(&self.id, at)
            .await
            .expect("held slots")
    }
}

/// A holder keeps its slot while nobody else waits; a holder that missed while asking marks the
/// pool, and then another holder's slot is freed, never its own; the mark lasts up to its time,
/// is renewed by each miss, and is deleted once it has run out.
pub async fn slot_wants(store: &dyn Store) {
    let run = unique("wants");
    let pool = Pool::new(store, &run);
    let t0 = now();
    assert_eq!(pool.take(2, "a", t0, true).await, Some(0));
    assert_eq!(
        pool.take(2, "b", t0, true).await,
        Some(1),
        "a take that gets a slot marks nothing"
    );
    assert_eq!(pool.keep(0, "a", t0).await, SlotKept::Kept, "nobody waits");
    assert_eq!(pool.take(2, "c", t0, false).await, None);
    assert_eq!(
        pool.keep(0, "a", t0).await,
        SlotKept::Kept,
        "a miss that does not ask marks nothing"
    );
    let later = t0 + LEASE * 2;
    assert_eq!(
        pool.keep(0, "a", later).await,
        SlotKept::Kept,
        "the lease is extended"
    );
    assert_eq!(pool.keep(1, "b", later).await, SlotKept::Kept);
    assert_eq!(
        pool.held(later).await,
        2,
        "both leases live after the keeps"
    );
    assert_eq!(pool.take(2, "c", later, false).await, None);

    // b waits for a second slot: a's slot goes, b's stays (b's own mark does not count).
    let t1 = later;
    assert_eq!(pool.take(2, "b", t1, true).await, None);
    assert_eq!(pool.keep(1, "b", t1).await, SlotKept::Kept, "its own mark");
    assert_eq!(pool.keep(0, "a", t1).await, SlotKept::Released, "b's mark");
    assert_eq!(pool.held(t1).await, 1);
    assert_eq!(
        pool.keep(0, "a", t1).await,
        SlotKept::NotHeld,
        "a freed slot is not kept"
    );
    assert_eq!(
        pool.keep(1, "c", t1).await,
        SlotKept::NotHeld,
        "nor another's"
    );
    assert_eq!(
        pool.take(2, "b", t1, true).await,
        Some(0),
        "b takes the freed slot"
    );

    // A mark counts up to and including its time, then stops; a miss renews it.
    assert_eq!(pool.take(2, "a", t1, true).await, None);
    assert_eq!(pool.keep(0, "b", t1 + WANT).await, SlotKept::Released);
    assert_eq!(pool.take(2, "a", t1 + WANT, false).await, Some(0));
    let t2 = t1 + WANT + Duration::milliseconds(1);
    assert_eq!(
        pool.keep(1, "b", t2).await,
        SlotKept::Kept,
        "a's mark ran out"
    );
    assert_eq!(pool.take(2, "b", t2, true).await, None, "b misses again");
    let t3 = t2 + WANT - Duration::milliseconds(1);
    assert_eq!(
        pool.take(2, "b", t3, true).await,
        None,
        "and renews its mark"
    );
    assert_eq!(
        pool.keep(0, "a", t2 + WANT + Duration::milliseconds(1))
            .await,
        SlotKept::Released,
        "the renewed mark still counts"
    );

    // Pools do not share marks.
    let other = Pool::new(store, &run);
    assert_eq!(other.take(1, "a", t3, true).await, Some(0));
    assert_eq!(other.keep(0, "a", t3).await, SlotKept::Kept);

    // Marks that ran out are deleted; a live one is not.
    let t4 = t3 + WANT + Duration::milliseconds(1);
    assert_eq!(pool.take(2, "b", t4, false).await, Some(0));
    assert_eq!(pool.take(2, "c", t4, true).await, None);
    assert!(
        store.forget_slot_wants(t4).await.expect("forget wants") >= 2,
        "a's and b's marks ran out"
    );
    assert_eq!(
        pool.keep(1, "b", t4).await,
        SlotKept::Released,
        "c's mark is live"
    );
}
