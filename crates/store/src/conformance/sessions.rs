//! Web UI sessions and the instance's own event trail.

use super::{now, page, sorted_ids, unique};
use chrono::Duration;
use latchkey_core::ids::{ApiKeyId, EventId};
use latchkey_core::model::{InstanceEvent, SessionSubject, UiSession};
use latchkey_core::store::Store;

fn session(subject: &SessionSubject, lifetime: Duration) -> UiSession {
    let at = now();
    UiSession {
        id_hash: unique("sha256"),
        subject: subject.clone(),
        csrf_token: unique("csrf"),
        created_at: at,
        expires_at: at + lifetime,
    }
}

/// Sessions are found by hash until they expire, end one at a time or all of a subject's at
/// once, and expired ones are swept.
pub async fn sessions(store: &dyn Store) {
    let key = SessionSubject::ApiKey(ApiKeyId::generate());
    let other = SessionSubject::ApiKey(ApiKeyId::generate());
    let a = session(&key, Duration::hours(1));
    let b = session(&key, Duration::hours(1));
    let theirs = session(&other, Duration::hours(1));
    let expired = session(&key, Duration::seconds(-1));
    for s in [&a, &b, &theirs, &expired] {
        store.insert_session(s).await.expect("insert session");
    }
    assert_eq!(
        store.session(&a.id_hash, now()).await.expect("session"),
        Some(a.clone()),
        "a session reads back exactly"
    );
    assert_eq!(
        store
            .session(&expired.id_hash, now())
            .await
            .expect("session"),
        None,
        "an expired session is not found"
    );
    assert_eq!(
        store
            .session(&a.id_hash, a.expires_at + Duration::seconds(1))
            .await
            .expect("session"),
        None,
        "a session is not found after its expiry"
    );
    assert_eq!(store.session("no-such-hash", now()).await.expect("x"), None);

    assert!(store.delete_session(&a.id_hash).await.expect("delete"));
    assert!(!store.delete_session(&a.id_hash).await.expect("again"));
    assert_eq!(store.session(&a.id_hash, now()).await.expect("x"), None);
    assert!(store.session(&b.id_hash, now()).await.expect("x").is_some());

    assert_eq!(
        store.delete_sessions_of(&key).await.expect("end all"),
        2,
        "the subject's live and expired sessions end"
    );
    assert_eq!(store.session(&b.id_hash, now()).await.expect("x"), None);
    assert!(
        store
            .session(&theirs.id_hash, now())
            .await
            .expect("x")
            .is_some(),
        "another subject's session is untouched"
    );

    let stale = session(&other, Duration::seconds(-5));
    store.insert_session(&stale).await.expect("insert");
    assert!(store.delete_expired_sessions(now()).await.expect("sweep") >= 1);
    assert!(!store.delete_session(&stale.id_hash).await.expect("gone"));
    assert!(store.delete_session(&theirs.id_hash).await.expect("kept"));
}

/// Instance events list newest first, with a cursor for older ones, details intact.
pub async fn instance_events(store: &dyn Store) {
    let ids = sorted_ids(3, EventId::generate);
    let mut written = Vec::new();
    for i in [1usize, 0, 2] {
        let e = InstanceEvent {
            id: ids[i].clone(),
            at: now(),
            actor: "key_test".into(),
            action: format!("api_key.step_{i}"),
            target_id: Some(format!("key_{i}")),
            target_name: (i != 1).then(|| format!("name {i}")),
            details: serde_json::json!({ "admin": i == 0, "scopes": ["read"] }),
        };
        store.append_instance_event(&e).await.expect("append");
        written.push(e);
    }
    written.sort_by(|a, b| b.id.cmp(&a.id));
    // Other runs of the suite may have written newer events: start from just above ours.
    let mut after = ids[2].as_str().to_string();
    after.push('z');
    let first = store
        .list_instance_events(&page(2, Some(&after)))
        .await
        .expect("list");
    assert_eq!(first, written[..2], "newest first");
    let rest = store
        .list_instance_events(&page(1, Some(first[1].id.as_str())))
        .await
        .expect("list");
    assert_eq!(rest, written[2..], "the cursor gives older events");
    let newest = store
        .list_instance_events(&page(500, None))
        .await
        .expect("list");
    assert!(newest.iter().any(|e| e.id == ids[2]));
}
