//! The conformance suite on both backends.

use latchkey_store::{conformance, open, testing};

#[tokio::test]
async fn sqlite_conforms() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!(
        "sqlite://{}",
        dir.path().join("nested").join("latchkey.db").display()
    );
    let store = open(&url).await.expect("open sqlite");
    assert_eq!(store.backend(), "sqlite");
    conformance::run_all(store.as_ref()).await;
    // Twice on one database: the suite must not depend on an empty store.
    conformance::run_all(store.as_ref()).await;
    drop(store);
    let reopened = open(&url)
        .await
        .expect("reopen: migrations already applied");
    reopened.ping().await.expect("ping");
}

#[tokio::test]
async fn sqlite_in_memory_conforms() {
    let store = open("sqlite::memory:")
        .await
        .expect("open in-memory sqlite");
    conformance::run_all(store.as_ref()).await;
}

#[tokio::test]
async fn postgres_conforms() {
    let Some((url, _guard)) = testing::throwaway_postgres().await else {
        return;
    };
    let store = open(&url).await.expect("open postgres");
    assert_eq!(store.backend(), "postgres");
    conformance::run_all(store.as_ref()).await;
    conformance::run_all(store.as_ref()).await;
    let again = open(&url)
        .await
        .expect("a second instance migrates nothing and works");
    again.ping().await.expect("ping");
}

#[tokio::test]
async fn unsupported_scheme_is_refused_without_the_password() {
    let err = open("mysql://root:hunter2@localhost/latchkey")
        .await
        .err()
        .expect("mysql is not supported")
        .to_string();
    assert!(err.contains("unsupported database URL scheme"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[tokio::test]
async fn connection_failure_hides_the_password() {
    let err = open("postgres://latchkey:hunter2@127.0.0.1:1/latchkey")
        .await
        .err()
        .expect("nothing listens on port 1")
        .to_string();
    assert!(!err.contains("hunter2"), "{err}");
}
