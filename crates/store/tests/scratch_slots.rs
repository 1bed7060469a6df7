use chrono::{Duration, Utc};
use latchkey_core::store::Store;
use latchkey_store::{conformance, open, testing};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

async fn timing(store: &dyn Store, label: &str) {
    let pool = format!("timing-{}", rand::random::<u32>());
    let n = 2000;
    let now = Utc::now();
    // warm: create rows
    let s = store
        .try_acquire_slot(&pool, 5, "w", now + Duration::seconds(30), now)
        .await
        .unwrap()
        .unwrap();
    store.release_slot(&pool, s, "w").await.unwrap();
    let start = Instant::now();
    for i in 0..n {
        let h = format!("h{i}");
        let now = Utc::now();
        let s = store
            .try_acquire_slot(&pool, 5, &h, now + Duration::seconds(30), now)
            .await
            .unwrap()
            .unwrap();
        store.release_slot(&pool, s, &h).await.unwrap();
    }
    let rt = start.elapsed() / n;
    // full pool misses
    for i in 0..5 {
        store
            .try_acquire_slot(
                &pool,
                5,
                &format!("f{i}"),
                now + Duration::seconds(300),
                now,
            )
            .await
            .unwrap()
            .unwrap();
    }
    let start = Instant::now();
    for _ in 0..n {
        let now = Utc::now();
        assert!(store
            .try_acquire_slot(&pool, 5, "x", now + Duration::seconds(30), now)
            .await
            .unwrap()
            .is_none());
    }
    let miss = start.elapsed() / n;
    let start = Instant::now();
    for i in 0..n {
        store
            .renew_slots(&format!("f{}", i % 5), now + Duration::seconds(300))
            .await
            .unwrap();
    }
    let renew = start.elapsed() / n;
    eprintln!("{label}: acquire+release {rt:?}, miss on full pool {miss:?}, renew {renew:?}");
}

async fn stress(url: &str, label: &str) {
    let stores: Vec<Arc<dyn Store>> = vec![open(url).await.unwrap(), open(url).await.unwrap()];
    let pool = Arc::new(format!("stress-{}", rand::random::<u32>()));
    let level = 4;
    let in_use: Arc<Vec<AtomicBool>> =
        Arc::new((0..level).map(|_| AtomicBool::new(false)).collect());
    let wins = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..32 {
        let store = stores[t % 2].clone();
        let (pool, in_use, wins) = (pool.clone(), in_use.clone(), wins.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                let h = format!("t{t}-{i}");
                let now = Utc::now();
                if let Some(s) = store
                    .try_acquire_slot(&pool, level, &h, now + Duration::seconds(30), now)
                    .await
                    .unwrap()
                {
                    assert!(s < level);
                    assert!(
                        !in_use[s as usize].swap(true, Ordering::SeqCst),
                        "slot {s} double-held"
                    );
                    wins.fetch_add(1, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    in_use[s as usize].store(false, Ordering::SeqCst);
                    store.release_slot(&pool, s, &h).await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    eprintln!("{label}: stress wins {}", wins.load(Ordering::SeqCst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn scratch_pg() {
    let (url, _g) = testing::throwaway_postgres().await.unwrap();
    let store = open(&url).await.unwrap();
    for _ in 0..30 {
        conformance::concurrent_slots(store.as_ref()).await;
    }
    stress(&url, "postgres").await;
    timing(store.as_ref(), "postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn scratch_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let store = open(&url).await.unwrap();
    for _ in 0..30 {
        conformance::concurrent_slots(store.as_ref()).await;
    }
    stress(&url, "sqlite").await;
    timing(store.as_ref(), "sqlite").await;
    let mem = open("sqlite::memory:").await.unwrap();
    timing(mem.as_ref(), "sqlite-memory").await;
}
