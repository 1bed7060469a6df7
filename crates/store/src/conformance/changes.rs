//! A connection change and its events land together or not at all: an event insert that fails
//! undoes the insert, update or delete it accompanied, and a change the store refuses records
//! no event.

use super::{connection_fixture, new_workspace, now};
use latchkey_core::crypto::Sealed;
use latchkey_core::health::Webhook;
use latchkey_core::ids::{EventId, WebhookId};
use latchkey_core::model::{ConnectionRecord, ConnectionStatus, Event, Workspace};
use latchkey_core::store::{ConnectionChange, Page, Store};
use latchkey_core::StoreError;

fn event_of(ws: &Workspace, c: &ConnectionRecord, action: &str) -> Event {
    Event {
        id: EventId::generate(),
        workspace_id: ws.id.clone(),
        at: now(),
        actor: "system".into(),
        action: action.into(),
        target_id: Some(c.id.to_string()),
        target_name: Some(c.name.to_string()),
        details: serde_json::json!({"status": c.status}),
    }
}

async fn actions_of(store: &dyn Store, ws: &Workspace, c: &ConnectionRecord) -> Vec<String> {
    let mut events = store
        .events_of_target(&ws.id, c.id.as_str(), 100)
        .await
        .expect("timeline");
    events.reverse();
    events.into_iter().map(|e| e.action).collect()
}

async fn deliveries(store: &dyn Store, ws: &Workspace, hook: &WebhookId) -> usize {
    let page = Page {
        limit: 100,
        after: None,
    };
    store
        .list_deliveries(&ws.id, hook, &page)
        .await
        .expect("deliveries")
        .len()
}

async fn subscribed_hook(store: &dyn Store, ws: &Workspace) -> WebhookId {
    let t = now();
    let hook = Webhook {
        id: WebhookId::generate(),
        workspace_id: ws.id.clone(),
        url: "https://example.com/hook".into(),
        events: vec!["connection.*".into()],
        description: None,
        enabled: true,
        secret: Sealed {
            key_id: ws.data_key_id.clone(),
            ciphertext: vec![4, 5, 6],
        },
        previous_until: None,
        failing_since: None,
        disabled_reason: None,
        created_at: t,
        updated_at: t,
    };
    store.insert_webhook(&hook).await.expect("insert webhook");
    hook.id
}

/// Insert, status change and delete with their events; the same with an event that cannot be
/// inserted (its id is taken) leaves the connection exactly as it was and no delivery behind.
pub async fn atomic_changes(store: &dyn Store) {
    let ws = new_workspace(store, "atomic").await;
    let hook = subscribed_hook(store, &ws).await;
    let (conn, created) = insert_lands_with_its_event(store, &ws, &hook).await;
    let failing = update_lands_only_with_its_events(store, &ws, &hook, &conn, &created).await;
    stale_update_records_nothing(store, &ws, &conn, &failing).await;
    insert_with_a_failing_event_stores_nothing(store, &ws, &created).await;
    delete_lands_only_with_its_event(store, &ws, &conn, &failing, &created).await;
}

/// Both land: the connection, its event and the event's delivery. Answers the connection and
/// its creation event (whose id the later steps reuse to make an event fail).
async fn insert_lands_with_its_event(
    store: &dyn Store,
    ws: &Workspace,
    hook: &WebhookId,
) -> (ConnectionRecord, Event) {
    let conn = connection_fixture(ws, "atomic", "generic-api-key");
    let created = event_of(ws, &conn, "connection.created");
    let done = store
        .change_connection(
            ConnectionChange::Insert(&conn),
            std::slice::from_ref(&created),
        )
        .await
        .expect("insert with its event");
    assert!(done);
    assert_eq!(
        store.connection(&ws.id, &conn.id).await.expect("read"),
        Some(conn.clone())
    );
    assert_eq!(actions_of(store, ws, &conn).await, ["connection.created"]);
    assert_eq!(deliveries(store, ws, hook).await, 1, "its outbox row too");
    (conn, created)
}

/// An event that fails (a taken id) undoes the status change it came with; the same change with
/// good events lands. Answers the connection as it now is.
async fn update_lands_only_with_its_events(
    store: &dyn Store,
    ws: &Workspace,
    hook: &WebhookId,
    conn: &ConnectionRecord,
    created: &Event,
) -> ConnectionRecord {
    let mut failing = conn.clone();
    failing.status = ConnectionStatus::Failing;
    failing.status_reason = Some("health check failed: 401".into());
    failing.version = conn.version + 1;
    let mut dup = event_of(ws, &failing, "connection.failing");
    dup.id = created.id.clone();
    let fresh = event_of(ws, &failing, "connection.failing");
    let err = store
        .change_connection(
            ConnectionChange::Update {
                conn: &failing,
                expected_version: conn.version,
            },
            &[fresh.clone(), dup],
        )
        .await
        .expect_err("a duplicate event id is refused");
    assert!(matches!(err, StoreError::Duplicate { .. }), "{err:?}");
    assert_eq!(
        store.connection(&ws.id, &conn.id).await.expect("read"),
        Some(conn.clone()),
        "the status change was rolled back with the event"
    );
    assert_eq!(
        actions_of(store, ws, conn).await,
        ["connection.created"],
        "no event of the failed change, not even the one inserted before the failure"
    );
    assert_eq!(deliveries(store, ws, hook).await, 1, "no delivery either");

    // The same change with good events: both land.
    store
        .change_connection(
            ConnectionChange::Update {
                conn: &failing,
                expected_version: conn.version,
            },
            &[fresh],
        )
        .await
        .expect("update with its event");
    assert_eq!(
        store.connection(&ws.id, &conn.id).await.expect("read"),
        Some(failing.clone())
    );
    assert_eq!(
        actions_of(store, ws, conn).await,
        ["connection.created", "connection.failing"]
    );
    assert_eq!(deliveries(store, ws, hook).await, 2);
    failing
}

/// A stale write records nothing.
async fn stale_update_records_nothing(
    store: &dyn Store,
    ws: &Workspace,
    conn: &ConnectionRecord,
    failing: &ConnectionRecord,
) {
    let stale = event_of(ws, failing, "connection.recovered");
    let err = store
        .change_connection(
            ConnectionChange::Update {
                conn: failing,
                expected_version: conn.version,
            },
            &[stale],
        )
        .await
        .expect_err("the version moved");
    assert!(matches!(err, StoreError::Stale), "{err:?}");
    assert_eq!(actions_of(store, ws, conn).await.len(), 2);
}

/// An insert whose event fails stores no connection.
async fn insert_with_a_failing_event_stores_nothing(
    store: &dyn Store,
    ws: &Workspace,
    created: &Event,
) {
    let other = connection_fixture(ws, "atomic-other", "generic-api-key");
    let mut bad = event_of(ws, &other, "connection.created");
    bad.id = created.id.clone();
    store
        .change_connection(ConnectionChange::Insert(&other), &[bad])
        .await
        .expect_err("a duplicate event id is refused");
    assert_eq!(
        store.connection(&ws.id, &other.id).await.expect("read"),
        None,
        "the insert was rolled back with the event"
    );
}

/// A delete whose event fails keeps the connection; with a good event, both land; deleting
/// what is gone answers false and records nothing.
async fn delete_lands_only_with_its_event(
    store: &dyn Store,
    ws: &Workspace,
    conn: &ConnectionRecord,
    failing: &ConnectionRecord,
    created: &Event,
) {
    let mut bad = event_of(ws, failing, "connection.deleted");
    bad.id = created.id.clone();
    let del = ConnectionChange::Delete {
        ws: &ws.id,
        id: &conn.id,
    };
    store
        .change_connection(del, &[bad])
        .await
        .expect_err("a duplicate event id is refused");
    assert!(store
        .connection(&ws.id, &conn.id)
        .await
        .expect("read")
        .is_some());
    let deleted = event_of(ws, failing, "connection.deleted");
    assert!(store
        .change_connection(del, &[deleted])
        .await
        .expect("delete with its event"));
    assert_eq!(
        store.connection(&ws.id, &conn.id).await.expect("read"),
        None
    );
    assert_eq!(
        actions_of(store, ws, conn).await,
        [
            "connection.created",
            "connection.failing",
            "connection.deleted"
        ]
    );
    // Deleting what is gone answers false and records nothing.
    let again = event_of(ws, failing, "connection.deleted");
    assert!(!store.change_connection(del, &[again]).await.expect("gone"));
    assert_eq!(actions_of(store, ws, conn).await.len(), 3);
}
