//! API keys and the event trail.

use super::{all_pages, new_workspace, now, page, sorted_ids, unique};
use latchkey_core::ids::{ApiKeyId, EventId, WorkspaceId};
use latchkey_core::model::{ApiKey, Event, Scope};
use latchkey_core::store::Store;
use latchkey_core::StoreError;

fn api_key(id: ApiKeyId, workspace: Option<&WorkspaceId>, scopes: Vec<Scope>) -> ApiKey {
    ApiKey {
        id,
        name: unique("key"),
        workspace_id: workspace.cloned(),
        user_id: None,
        scopes,
        hash: unique("sha256"),
        prefix: "lk_1234".into(),
        created_at: now(),
        revoked_at: None,
    }
}

/// Insert, look up by hash and id, list (all or per workspace), revoke once, count.
pub async fn api_keys(store: &dyn Store) {
    let ws = new_workspace(store, "keys").await;
    let other = new_workspace(store, "keys-other").await;
    let before = store.count_api_keys().await.expect("count");
    let ids = sorted_ids(4, ApiKeyId::generate);
    let admin = api_key(ids[0].clone(), None, vec![]);
    let reader = api_key(
        ids[1].clone(),
        Some(&ws.id),
        vec![Scope::Read, Scope::Proxy],
    );
    let writer = api_key(
        ids[2].clone(),
        Some(&ws.id),
        vec![Scope::Read, Scope::Write, Scope::Secrets],
    );
    let theirs = api_key(ids[3].clone(), Some(&other.id), vec![Scope::Read]);
    for key in [&admin, &reader, &writer, &theirs] {
        store.insert_api_key(key).await.expect("insert api key");
    }
    assert_eq!(store.count_api_keys().await.expect("count"), before + 4);

    assert_eq!(
        store.api_key_by_hash(&reader.hash).await.expect("by hash"),
        Some(reader.clone())
    );
    assert_eq!(
        store.api_key(&admin.id).await.expect("by id"),
        Some(admin.clone())
    );
    assert_eq!(
        store.api_key_by_hash("not-a-hash").await.expect("by hash"),
        None
    );
    assert!(store
        .api_key(&admin.id)
        .await
        .expect("by id")
        .expect("admin")
        .is_admin());

    let mut copy = api_key(ApiKeyId::generate(), Some(&ws.id), vec![Scope::Read]);
    copy.hash = reader.hash.clone();
    assert!(
        matches!(
            store.insert_api_key(&copy).await,
            Err(StoreError::Duplicate { .. })
        ),
        "two keys cannot share a hash"
    );

    let mine = store
        .list_api_keys(Some(&ws.id), &page(10, None))
        .await
        .expect("list keys");
    assert_eq!(mine, vec![reader.clone(), writer.clone()]);
    let second = store
        .list_api_keys(Some(&ws.id), &page(1, Some(reader.id.as_str())))
        .await
        .expect("list keys");
    assert_eq!(
        second,
        vec![writer.clone()],
        "the cursor continues after the given id"
    );
    let everyone = all_pages(
        2,
        |p| async move { store.list_api_keys(None, &p).await },
        |k| k.id.to_string(),
    )
    .await;
    let ours: Vec<_> = everyone
        .into_iter()
        .filter(|k| ids.contains(&k.id))
        .collect();
    assert_eq!(
        ours,
        vec![admin.clone(), reader.clone(), writer.clone(), theirs]
    );

    let at = now();
    assert!(store.revoke_api_key(&reader.id, at).await.expect("revoke"));
    assert!(!store
        .revoke_api_key(&reader.id, now())
        .await
        .expect("revoke again"));
    assert!(!store
        .revoke_api_key(&ApiKeyId::generate(), now())
        .await
        .expect("revoke missing"));
    let revoked = store
        .api_key_by_hash(&reader.hash)
        .await
        .expect("by hash")
        .expect("kept");
    assert_eq!(
        revoked.revoked_at,
        Some(at),
        "a revoked key is still found, marked revoked"
    );
    assert_eq!(store.count_api_keys().await.expect("count"), before + 4);
}

/// Events list newest first, older pages after a cursor, per workspace, details intact.
pub async fn events(store: &dyn Store) {
    let ws = new_workspace(store, "events").await;
    let other = new_workspace(store, "events-other").await;
    let ids = sorted_ids(5, EventId::generate);
    let mut written = Vec::new();
    // Appended out of order: the list sorts by id, not by arrival.
    for i in [2usize, 0, 4, 1, 3] {
        let event = Event {
            id: ids[i].clone(),
            workspace_id: ws.id.clone(),
            at: now(),
            actor: "system".into(),
            action: format!("connection.step_{i}"),
            target_id: (i % 2 == 0).then(|| format!("conn_{i}")),
            target_name: Some(format!("target {i}")),
            details: serde_json::json!({"step": i, "tags": ["a", "b"], "ok": i != 3}),
        };
        store.append_event(&event).await.expect("append");
        written.push(event);
    }
    let noise = Event {
        id: EventId::generate(),
        workspace_id: other.id.clone(),
        ..written[0].clone()
    };
    store.append_event(&noise).await.expect("append elsewhere");
    written.sort_by(|a, b| b.id.cmp(&a.id));

    let first = store
        .list_events(&ws.id, &page(2, None))
        .await
        .expect("events");
    assert_eq!(first, written[..2], "newest first");
    let second = store
        .list_events(&ws.id, &page(2, Some(first[1].id.as_str())))
        .await
        .expect("events");
    assert_eq!(second, written[2..4], "the cursor gives older events");
    let last = store
        .list_events(&ws.id, &page(2, Some(second[1].id.as_str())))
        .await
        .expect("events");
    assert_eq!(last, written[4..]);
    let all = store
        .list_events(&ws.id, &page(50, None))
        .await
        .expect("events");
    assert_eq!(all, written, "another workspace's events are not listed");
}
