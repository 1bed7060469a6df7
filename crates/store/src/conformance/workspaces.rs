//! Workspaces, their data keys, and deleting a workspace with everything in it.

use super::{
    all_pages, connection_fixture, flow_fixture, new_connection, new_workspace, now, page,
    workspace_fixture,
};
use latchkey_core::crypto::Sealed;
use latchkey_core::ids::{ApiKeyId, EventId};
use latchkey_core::model::{
    ApiKey, ConnectionRecord, Event, Flow, OAuthClientRecord, OAuthState, Scope, Workspace,
};
use latchkey_core::store::Store;
use latchkey_core::StoreError;

/// Create, read by slug and id, duplicate slug, paginated list, rename.
pub async fn workspaces(store: &dyn Store) {
    let (ws, key) = workspace_fixture("ws");
    store.create_workspace(&ws, &key).await.expect("create");
    assert_eq!(
        store
            .workspace_by_slug(ws.slug.as_str())
            .await
            .expect("by slug"),
        Some(ws.clone())
    );
    assert_eq!(
        store.workspace_by_id(&ws.id).await.expect("by id"),
        Some(ws.clone())
    );
    assert_eq!(
        store
            .workspace_by_slug("no-such-slug-here")
            .await
            .expect("by slug"),
        None
    );

    // The slug is taken: nothing of the second workspace is stored, not even its data key.
    let (mut twin, twin_key) = workspace_fixture("ws");
    twin.slug = ws.slug.clone();
    match store.create_workspace(&twin, &twin_key).await {
        Err(StoreError::Duplicate { constraint }) => assert_eq!(constraint, "workspace_slug"),
        other => panic!("duplicate slug gave {other:?}"),
    }
    assert_eq!(store.workspace_by_id(&twin.id).await.expect("by id"), None);
    assert_eq!(store.data_key(&twin_key.id).await.expect("data key"), None);

    let mut ours = vec![ws.clone()];
    for _ in 0..4 {
        ours.push(new_workspace(store, "ws").await);
    }
    let listed = all_pages(
        2,
        |p| async move { store.list_workspaces(&p).await },
        |w| w.id.to_string(),
    )
    .await;
    let found: Vec<_> = listed.into_iter().filter(|w| ours.contains(w)).collect();
    ours.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        found, ours,
        "every workspace is listed once, ascending by id"
    );

    let mut renamed = ws.clone();
    renamed.name = "Renamed".into();
    renamed.updated_at = now();
    store.update_workspace(&renamed).await.expect("update");
    let back = store
        .workspace_by_id(&ws.id)
        .await
        .expect("by id")
        .expect("exists");
    assert_eq!(back, renamed, "name and updated_at are written");
}

/// Data keys are stored with their workspace and re-wrapped only by compare-and-set.
pub async fn data_keys(store: &dyn Store) {
    let (ws, key) = workspace_fixture("dk");
    store.create_workspace(&ws, &key).await.expect("create");
    assert_eq!(
        store.data_key(&key.id).await.expect("data key"),
        Some(key.clone())
    );
    let all = store.list_data_keys().await.expect("list data keys");
    assert!(all.contains(&key), "list_data_keys includes the new key");

    let new_wrapping: Vec<u8> = (0..=255).collect();
    let lost = store
        .rewrap_data_key(&key.id, "mk_someone_else", "mk_new", &new_wrapping)
        .await
        .expect("rewrap");
    assert!(
        !lost,
        "rewrap must not apply when the expected master key differs"
    );
    assert_eq!(
        store.data_key(&key.id).await.expect("data key"),
        Some(key.clone())
    );

    let won = store
        .rewrap_data_key(&key.id, &key.master_key_id, "mk_new", &new_wrapping)
        .await
        .expect("rewrap");
    assert!(won, "rewrap applies when the expected master key matches");
    let back = store
        .data_key(&key.id)
        .await
        .expect("data key")
        .expect("exists");
    assert_eq!(back.master_key_id, "mk_new");
    assert_eq!(
        back.wrapped, new_wrapping,
        "wrapped bytes round-trip unchanged"
    );
    assert_eq!(back.created_at, key.created_at);

    let again = store
        .rewrap_data_key(&key.id, &key.master_key_id, "mk_other", &[1, 2, 3])
        .await
        .expect("rewrap");
    assert!(!again, "a second rewrap from the old master key loses");
}

/// Deleting a workspace removes its connections, flows, events, API keys, OAuth clients and
/// states, and data key.
pub async fn workspace_delete_cascade(store: &dyn Store) {
    let ws = new_workspace(store, "gone").await;
    let keep = new_workspace(store, "kept").await;
    let conn = new_connection(store, &ws, "doomed", "stripe").await;
    let kept_conn = new_connection(store, &keep, "doomed", "stripe").await;
    let (flow, inline, key) = flow_key_and_event_of(store, &ws, &conn).await;
    store
        .put_oauth_client(&oauth_client(&ws))
        .await
        .expect("oauth client");
    let kept_client = oauth_client(&keep);
    store
        .put_oauth_client(&kept_client)
        .await
        .expect("oauth client");
    let state = oauth_state(&ws, &conn);
    store.insert_oauth_state(&state).await.expect("oauth state");
    let doomed = Doomed {
        conn,
        inline,
        flow,
        key,
        state,
    };
    everything_of_the_workspace_is_gone(store, &ws, &doomed).await;
    another_workspace_survives(store, &keep, kept_client, kept_conn).await;
}

/// What the deleted workspace held, to look for after the delete.
struct Doomed {
    conn: ConnectionRecord,
    inline: ConnectionRecord,
    flow: Flow,
    key: ApiKey,
    state: OAuthState,
}

/// A flow over `conn` with an inline connection, an API key and an event, all of `ws`.
/// Answers the flow, its inline connection and the key.
async fn flow_key_and_event_of(
    store: &dyn Store,
    ws: &Workspace,
    conn: &ConnectionRecord,
) -> (Flow, ConnectionRecord, ApiKey) {
    let flow = flow_fixture(ws, "doomed flow", true, vec![conn.id.clone()]);
    let inline = connection_fixture(ws, "inline", "github");
    store
        .create_flow(&flow, std::slice::from_ref(&inline))
        .await
        .expect("create flow");
    let key = ApiKey {
        id: ApiKeyId::generate(),
        name: "ci".into(),
        workspace_id: Some(ws.id.clone()),
        user_id: None,
        scopes: vec![Scope::Read],
        hash: super::unique("hash"),
        prefix: "lk_abc".into(),
        created_at: now(),
        revoked_at: None,
    };
    store.insert_api_key(&key).await.expect("api key");
    let event = Event {
        id: EventId::generate(),
        workspace_id: ws.id.clone(),
        at: now(),
        actor: "system".into(),
        action: "workspace.created".into(),
        target_id: None,
        target_name: None,
        details: serde_json::json!({}),
    };
    store.append_event(&event).await.expect("event");
    (flow, inline, key)
}

/// The Salesforce OAuth client of `ws`.
fn oauth_client(ws: &Workspace) -> OAuthClientRecord {
    OAuthClientRecord {
        workspace_id: ws.id.clone(),
        app: "salesforce".into(),
        client_id: "3MVG9".into(),
        secret: Some(Sealed {
            key_id: ws.data_key_id.clone(),
            ciphertext: vec![3; 16],
        }),
        created_at: now(),
        updated_at: now(),
    }
}

/// A pending authorization of `conn` in `ws`.
fn oauth_state(ws: &Workspace, conn: &ConnectionRecord) -> OAuthState {
    OAuthState {
        state_hash: super::unique("state"),
        workspace_id: ws.id.clone(),
        connection_id: conn.id.clone(),
        verifier: None,
        redirect_uri: "https://latchkey.example.test/oauth/callback".into(),
        created_at: now(),
        expires_at: now(),
    }
}

/// After the delete nothing of the workspace is found, and a second delete finds nothing.
async fn everything_of_the_workspace_is_gone(store: &dyn Store, ws: &Workspace, doomed: &Doomed) {
    assert!(store.delete_workspace(&ws.id).await.expect("delete"));
    assert_eq!(store.workspace_by_id(&ws.id).await.expect("by id"), None);
    assert_eq!(
        store
            .connection(&ws.id, &doomed.conn.id)
            .await
            .expect("conn"),
        None
    );
    assert_eq!(
        store
            .connection(&ws.id, &doomed.inline.id)
            .await
            .expect("conn"),
        None
    );
    assert_eq!(
        store.flow(&ws.id, &doomed.flow.id).await.expect("flow"),
        None
    );
    assert_eq!(store.api_key(&doomed.key.id).await.expect("api key"), None);
    assert_eq!(
        store
            .api_key_by_hash(&doomed.key.hash)
            .await
            .expect("api key"),
        None
    );
    assert!(store
        .list_events(&ws.id, &page(10, None))
        .await
        .expect("events")
        .is_empty());
    assert_eq!(
        store.data_key(&ws.data_key_id).await.expect("data key"),
        None
    );
    assert_eq!(
        store
            .oauth_client(&ws.id, "salesforce")
            .await
            .expect("oauth client"),
        None
    );
    assert_eq!(
        store
            .take_oauth_state(&doomed.state.state_hash)
            .await
            .expect("oauth state"),
        None
    );
    assert!(!store.delete_workspace(&ws.id).await.expect("delete again"));
}

/// Another workspace's OAuth client, connections and data key survive.
async fn another_workspace_survives(
    store: &dyn Store,
    keep: &Workspace,
    kept_client: OAuthClientRecord,
    kept_conn: ConnectionRecord,
) {
    assert_eq!(
        store
            .oauth_client(&keep.id, "salesforce")
            .await
            .expect("oauth client"),
        Some(kept_client),
        "another workspace's OAuth client survives"
    );

    assert_eq!(
        store
            .connection(&keep.id, &kept_conn.id)
            .await
            .expect("conn"),
        Some(kept_conn),
        "another workspace's records survive"
    );
    assert!(store
        .data_key(&keep.data_key_id)
        .await
        .expect("data key")
        .is_some());
}
