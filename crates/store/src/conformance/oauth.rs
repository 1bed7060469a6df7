//! OAuth clients (one per workspace and application) and single-use authorization states.

use super::{new_connection, new_workspace, now, unique};
use chrono::Duration;
use latchkey_core::crypto::Sealed;
use latchkey_core::ids::{ConnectionId, WorkspaceId};
use latchkey_core::model::{ConnectionRecord, OAuthClientRecord, OAuthState, Workspace};
use latchkey_core::store::Store;
use latchkey_core::StoreError;

fn client(
    ws: &Workspace,
    app: &str,
    client_id: &str,
    secret: Option<Vec<u8>>,
) -> OAuthClientRecord {
    let at = now();
    OAuthClientRecord {
        workspace_id: ws.id.clone(),
        app: app.into(),
        client_id: client_id.into(),
        secret: secret.map(|ciphertext| Sealed {
            key_id: ws.data_key_id.clone(),
            ciphertext,
        }),
        created_at: at,
        updated_at: at,
    }
}

/// A pending authorization of `conn`, not yet stored.
fn state(ws: &Workspace, conn: &ConnectionRecord) -> OAuthState {
    let at = now();
    OAuthState {
        state_hash: unique("state"),
        workspace_id: ws.id.clone(),
        connection_id: conn.id.clone(),
        verifier: Some(Sealed {
            key_id: ws.data_key_id.clone(),
            ciphertext: (0..=255u8).collect(),
        }),
        redirect_uri: "https://latchkey.example.test/oauth/callback".into(),
        created_at: at,
        expires_at: at + Duration::minutes(10),
    }
}

/// Put creates, put again replaces everything but `created_at`; lookups and deletes are
/// scoped by workspace and application.
pub async fn oauth_clients(store: &dyn Store) {
    let ws = new_workspace(store, "oauth-client").await;
    let other = new_workspace(store, "oauth-client-other").await;
    let public = put_replaces_all_but_created_at(store, &ws).await;
    let (theirs, hubspot) =
        clients_are_seen_by_workspace_and_app(store, &ws, &other, &public).await;
    deletes_are_scoped_by_workspace_and_app(store, &ws, &other, theirs, hubspot).await;
    client_of_a_missing_workspace_is_refused(store, &ws).await;
}

/// A client reads back as written; a second put replaces it but keeps when it was first
/// created; a put without a secret clears the stored one. Answers the client as stored last.
async fn put_replaces_all_but_created_at(store: &dyn Store, ws: &Workspace) -> OAuthClientRecord {
    let first = client(ws, "salesforce", "3MVG9first", Some(vec![0, 1, 2, 255]));
    assert_eq!(
        store.oauth_client(&ws.id, "salesforce").await.expect("get"),
        None
    );
    store.put_oauth_client(&first).await.expect("put");
    assert_eq!(
        store.oauth_client(&ws.id, "salesforce").await.expect("get"),
        Some(first.clone()),
        "a client reads back exactly as written"
    );

    let mut second = client(ws, "salesforce", "3MVG9second", Some(vec![9; 40]));
    second.created_at = first.created_at + Duration::days(1);
    second.updated_at = first.updated_at + Duration::days(1);
    store.put_oauth_client(&second).await.expect("put again");
    let expected = OAuthClientRecord {
        created_at: first.created_at,
        ..second.clone()
    };
    assert_eq!(
        store.oauth_client(&ws.id, "salesforce").await.expect("get"),
        Some(expected.clone()),
        "a second put replaces the client but keeps when it was first created"
    );

    let mut public = second.clone();
    public.secret = None;
    public.updated_at = second.updated_at + Duration::seconds(1);
    store
        .put_oauth_client(&public)
        .await
        .expect("put without secret");
    assert_eq!(
        store.oauth_client(&ws.id, "salesforce").await.expect("get"),
        Some(OAuthClientRecord {
            created_at: first.created_at,
            ..public.clone()
        }),
        "a put without a secret clears the stored one"
    );

    public
}

/// Another workspace or application does not see the client, and a put there leaves it alone.
/// Answers the other workspace's client and this workspace's HubSpot client.
async fn clients_are_seen_by_workspace_and_app(
    store: &dyn Store,
    ws: &Workspace,
    other: &Workspace,
    public: &OAuthClientRecord,
) -> (OAuthClientRecord, OAuthClientRecord) {
    assert_eq!(
        store
            .oauth_client(&other.id, "salesforce")
            .await
            .expect("get"),
        None,
        "another workspace does not see it"
    );
    assert_eq!(
        store.oauth_client(&ws.id, "hubspot").await.expect("get"),
        None,
        "another application does not see it"
    );
    let theirs = client(other, "salesforce", "3MVG9theirs", None);
    let hubspot = client(ws, "hubspot", "hub-client", Some(vec![5]));
    store.put_oauth_client(&theirs).await.expect("put theirs");
    store.put_oauth_client(&hubspot).await.expect("put hubspot");
    assert_eq!(
        store
            .oauth_client(&other.id, "salesforce")
            .await
            .expect("get"),
        Some(theirs.clone())
    );
    assert_eq!(
        store
            .oauth_client(&ws.id, "salesforce")
            .await
            .expect("get")
            .map(|c| c.client_id),
        Some(public.client_id.clone()),
        "a put in another workspace leaves this one's client alone"
    );

    (theirs, hubspot)
}

/// A delete finds only its own workspace's and application's client, and only once.
async fn deletes_are_scoped_by_workspace_and_app(
    store: &dyn Store,
    ws: &Workspace,
    other: &Workspace,
    theirs: OAuthClientRecord,
    hubspot: OAuthClientRecord,
) {
    assert!(!store
        .delete_oauth_client(&other.id, "hubspot")
        .await
        .expect("delete"));
    assert!(store
        .delete_oauth_client(&ws.id, "salesforce")
        .await
        .expect("delete"));
    assert_eq!(
        store.oauth_client(&ws.id, "salesforce").await.expect("get"),
        None
    );
    assert!(
        !store
            .delete_oauth_client(&ws.id, "salesforce")
            .await
            .expect("delete again"),
        "a second delete finds nothing"
    );
    assert_eq!(
        store
            .oauth_client(&other.id, "salesforce")
            .await
            .expect("get"),
        Some(theirs),
        "deleting one workspace's client leaves another's"
    );
    assert_eq!(
        store.oauth_client(&ws.id, "hubspot").await.expect("get"),
        Some(hubspot),
        "deleting one application's client leaves another's"
    );
}

/// A client of a missing workspace is refused.
async fn client_of_a_missing_workspace_is_refused(store: &dyn Store, ws: &Workspace) {
    let mut orphan = client(ws, "stripe", "orphan", None);
    orphan.workspace_id = WorkspaceId::generate();
    assert!(
        matches!(
            store.put_oauth_client(&orphan).await,
            Err(StoreError::Stale)
        ),
        "a client of a missing workspace is refused"
    );
}

/// A state is taken once: the first take returns it exactly, later and racing takes get
/// nothing. States go with their connection, and on `delete_oauth_states`.
pub async fn oauth_states(store: &dyn Store) {
    let ws = new_workspace(store, "oauth-state").await;
    let other = new_workspace(store, "oauth-state-other").await;
    let conn = new_connection(store, &ws, "authorizing", "salesforce").await;
    let sibling = new_connection(store, &ws, "sibling", "salesforce").await;
    a_state_is_single_use(store, &ws, &conn).await;
    an_expired_state_is_still_returned(store, &ws, &conn).await;
    one_of_racing_takes_gets_it(store, &ws, &conn).await;
    a_state_binds_a_connection_of_its_workspace(store, &ws, &other, &conn).await;
    states_go_with_their_connection(store, &ws, &conn, &sibling).await;
}

/// A state is unique, reads back exactly as written, and is taken once.
async fn a_state_is_single_use(store: &dyn Store, ws: &Workspace, conn: &ConnectionRecord) {
    let pending = state(ws, conn);
    store.insert_oauth_state(&pending).await.expect("insert");
    match store.insert_oauth_state(&pending).await {
        Err(StoreError::Duplicate { constraint }) => assert_eq!(constraint, "oauth_state"),
        other => panic!("a duplicate state gave {other:?}"),
    }
    assert_eq!(
        store
            .take_oauth_state(&pending.state_hash)
            .await
            .expect("take"),
        Some(pending.clone()),
        "a state reads back exactly as written"
    );
    assert_eq!(
        store
            .take_oauth_state(&pending.state_hash)
            .await
            .expect("take again"),
        None,
        "a state is single use"
    );
    assert_eq!(
        store.take_oauth_state("no-such-state").await.expect("take"),
        None
    );
}

/// An expired state is still returned (the caller checks), verifier-less too.
async fn an_expired_state_is_still_returned(
    store: &dyn Store,
    ws: &Workspace,
    conn: &ConnectionRecord,
) {
    let mut bare = state(ws, conn);
    bare.verifier = None;
    bare.expires_at = bare.created_at - Duration::minutes(1);
    store
        .insert_oauth_state(&bare)
        .await
        .expect("insert expired");
    assert_eq!(
        store
            .take_oauth_state(&bare.state_hash)
            .await
            .expect("take"),
        Some(bare),
        "an expired state is still returned (the caller checks), verifier-less too"
    );
}

/// Of eight racing takes exactly one gets the state.
async fn one_of_racing_takes_gets_it(store: &dyn Store, ws: &Workspace, conn: &ConnectionRecord) {
    let raced = state(ws, conn);
    store.insert_oauth_state(&raced).await.expect("insert");
    let takes =
        futures::future::join_all((0..8).map(|_| store.take_oauth_state(&raced.state_hash))).await;
    let taken: Vec<OAuthState> = takes
        .into_iter()
        .filter_map(|r| r.expect("concurrent take"))
        .collect();
    assert_eq!(
        taken,
        vec![raced],
        "of eight racing takes exactly one gets the state"
    );
}

/// A state cannot bind a connection of another workspace, nor a missing connection.
async fn a_state_binds_a_connection_of_its_workspace(
    store: &dyn Store,
    ws: &Workspace,
    other: &Workspace,
    conn: &ConnectionRecord,
) {
    let foreign = state(other, conn);
    assert!(
        matches!(
            store.insert_oauth_state(&foreign).await,
            Err(StoreError::Stale)
        ),
        "a state cannot bind a connection of another workspace"
    );
    assert_eq!(
        store
            .take_oauth_state(&foreign.state_hash)
            .await
            .expect("take"),
        None
    );
    let mut missing = state(ws, conn);
    missing.connection_id = ConnectionId::generate();
    assert!(
        matches!(
            store.insert_oauth_state(&missing).await,
            Err(StoreError::Stale)
        ),
        "a state of a missing connection is refused"
    );
}

/// `delete_oauth_states` forgets every state of the connection and only those; a deleted
/// connection's states go with it.
async fn states_go_with_their_connection(
    store: &dyn Store,
    ws: &Workspace,
    conn: &ConnectionRecord,
    sibling: &ConnectionRecord,
) {
    let superseded: Vec<OAuthState> = (0..3).map(|_| state(ws, conn)).collect();
    for s in &superseded {
        store.insert_oauth_state(s).await.expect("insert");
    }
    let kept = state(ws, sibling);
    store.insert_oauth_state(&kept).await.expect("insert");
    store
        .delete_oauth_states(&conn.id)
        .await
        .expect("delete states");
    for s in &superseded {
        assert_eq!(
            store.take_oauth_state(&s.state_hash).await.expect("take"),
            None,
            "delete_oauth_states forgets every state of the connection"
        );
    }
    assert_eq!(
        store
            .take_oauth_state(&kept.state_hash)
            .await
            .expect("take"),
        Some(kept),
        "another connection's states survive"
    );

    let doomed = state(ws, sibling);
    store.insert_oauth_state(&doomed).await.expect("insert");
    assert!(store
        .delete_connection(&ws.id, &sibling.id)
        .await
        .expect("delete"));
    assert_eq!(
        store
            .take_oauth_state(&doomed.state_hash)
            .await
            .expect("take"),
        None,
        "a deleted connection's states go with it"
    );
}
