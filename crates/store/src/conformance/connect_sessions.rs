//! Connect sessions: looked up by token hash, one connection each, spent and cancelled once;
//! connections keep their end user, and list by it.

use super::{new_workspace, now, page, Store};
use chrono::Duration;
use latchkey_core::ids::{ConnectSessionId, ConnectionId};
use latchkey_core::model::{ConnectSession, ConnectionOwner, EndUser, Organization, Workspace};
use latchkey_core::names::Environment;
use latchkey_core::store::ConnectionFilter;

fn owner(id: &str) -> ConnectionOwner {
    ConnectionOwner {
        end_user: EndUser {
            id: id.into(),
            email: Some(format!("{id}@customer.example")),
            display_name: None,
        },
        organization: Some(Organization {
            id: "org-1".into(),
            display_name: Some("Customer".into()),
        }),
    }
}

/// A session is found by its token hash and its id, only in its own workspace; it claims one
/// connection (whose end user lists it), is spent once, cancelled once, and goes with its
/// workspace.
pub async fn connect_sessions(store: &dyn Store) {
    let ws = new_workspace(store, "connect").await;
    let other = new_workspace(store, "connect-other").await;
    let s = session_of(&ws);
    lookups_stay_in_their_workspace(store, &ws, &other, &s).await;
    one_connection_a_session(store, &ws, &s).await;
    spent_once(store, &ws, &s).await;
    let t = cancelled_once_in_its_own_workspace(store, &ws, &other, &s).await;

    // They go with their workspace.
    assert!(store.delete_workspace(&ws.id).await.unwrap());
    assert_eq!(
        store.connect_session_by_hash(&t.token_hash).await.unwrap(),
        None
    );
}

/// A fresh session of `ws` for end user `u-1`, open for thirty minutes.
fn session_of(ws: &Workspace) -> ConnectSession {
    let at = now();
    ConnectSession {
        id: ConnectSessionId::generate(),
        workspace_id: ws.id.clone(),
        token_hash: super::unique("hash"),
        owner: owner("u-1"),
        allowed_apps: vec!["salesforce".into(), "generic-api-key".into()],
        environment: Environment::production(),
        connection_id: None,
        result_connection_id: None,
        allowed_origins: vec!["https://app.example.com".into()],
        created_by: "key_x".into(),
        created_at: at,
        expires_at: at + Duration::minutes(30),
        completed_at: None,
        cancelled_at: None,
    }
}

/// The session is found by its hash and id in its workspace, and listed there only.
async fn lookups_stay_in_their_workspace(
    store: &dyn Store,
    ws: &Workspace,
    other: &Workspace,
    s: &ConnectSession,
) {
    store.insert_connect_session(s).await.expect("insert");
    assert_eq!(
        store.connect_session_by_hash(&s.token_hash).await.unwrap(),
        Some(s.clone())
    );
    assert_eq!(store.connect_session_by_hash("nope").await.unwrap(), None);
    assert_eq!(
        store.connect_session(&ws.id, &s.id).await.unwrap(),
        Some(s.clone())
    );
    assert_eq!(
        store.connect_session(&other.id, &s.id).await.unwrap(),
        None,
        "scoped by workspace"
    );
    let listed = store
        .list_connect_sessions(&ws.id, &page(10, None))
        .await
        .unwrap();
    assert_eq!(listed, vec![s.clone()]);
    assert!(store
        .list_connect_sessions(&other.id, &page(10, None))
        .await
        .unwrap()
        .is_empty());
}

/// One connection a session; a deleted one frees the claim. The connection keeps its end user,
/// lists by it, and keeps it through a fenced update.
async fn one_connection_a_session(store: &dyn Store, ws: &Workspace, s: &ConnectSession) {
    let mut c = super::connection_fixture(ws, &super::unique("end user conn"), "generic-api-key");
    c.owner = Some(owner("u-1"));
    store.insert_connection(&c).await.unwrap();
    assert!(store
        .claim_connect_session_connection(&s.id, &c.id)
        .await
        .unwrap());
    assert!(
        store
            .claim_connect_session_connection(&s.id, &c.id)
            .await
            .unwrap(),
        "the same again"
    );
    assert!(!store
        .claim_connect_session_connection(&s.id, &ConnectionId::generate())
        .await
        .unwrap());
    let read = store.connection(&ws.id, &c.id).await.unwrap().unwrap();
    assert_eq!(read.owner, Some(owner("u-1")));
    let open = store
        .open_connect_sessions_for(&ws.id, &c.id)
        .await
        .unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].result_connection_id.as_ref(), Some(&c.id));
    let by_user = |id: &str| ConnectionFilter {
        end_user_id: Some(id.into()),
        ..Default::default()
    };
    let mine = store
        .list_connections(&ws.id, &by_user("u-1"), &page(10, None))
        .await
        .unwrap();
    assert_eq!(mine.iter().map(|c| &c.id).collect::<Vec<_>>(), [&c.id]);
    assert!(store
        .list_connections(&ws.id, &by_user("u-2"), &page(10, None))
        .await
        .unwrap()
        .is_empty());
    // The owner survives a fenced update (and an update can set it).
    let mut changed = read.clone();
    changed.owner = Some(owner("u-1b"));
    changed.version += 1;
    store
        .update_connection(&changed, read.version)
        .await
        .unwrap();
    assert_eq!(
        store
            .list_connections(&ws.id, &by_user("u-1b"), &page(10, None))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store.delete_connection(&ws.id, &c.id).await.unwrap());
    let next = ConnectionId::generate();
    assert!(
        store
            .claim_connect_session_connection(&s.id, &next)
            .await
            .unwrap(),
        "the old one is gone"
    );
}

/// Spent once; then nothing changes it.
async fn spent_once(store: &dyn Store, ws: &Workspace, s: &ConnectSession) {
    assert!(store.complete_connect_session(&s.id, now()).await.unwrap());
    assert!(!store.complete_connect_session(&s.id, now()).await.unwrap());
    assert!(!store
        .cancel_connect_session(&ws.id, &s.id, now())
        .await
        .unwrap());
    assert!(!store
        .claim_connect_session_connection(&s.id, &ConnectionId::generate())
        .await
        .unwrap());
    let done = store.connect_session(&ws.id, &s.id).await.unwrap().unwrap();
    assert!(done.completed_at.is_some() && done.cancelled_at.is_none());
}

/// Cancelled once, only in its own workspace; token hashes are unique. Answers the cancelled
/// session.
async fn cancelled_once_in_its_own_workspace(
    store: &dyn Store,
    ws: &Workspace,
    other: &Workspace,
    s: &ConnectSession,
) -> ConnectSession {
    let t = ConnectSession {
        id: ConnectSessionId::generate(),
        token_hash: super::unique("hash"),
        ..s.clone()
    };
    store.insert_connect_session(&t).await.unwrap();
    assert!(!store
        .cancel_connect_session(&other.id, &t.id, now())
        .await
        .unwrap());
    assert!(store
        .cancel_connect_session(&ws.id, &t.id, now())
        .await
        .unwrap());
    assert!(!store.complete_connect_session(&t.id, now()).await.unwrap());
    let dup = ConnectSession {
        id: ConnectSessionId::generate(),
        ..t.clone()
    };
    assert!(
        store.insert_connect_session(&dup).await.is_err(),
        "token hashes are unique"
    );

    t
}
