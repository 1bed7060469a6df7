//! The behaviour every [`Store`] backend must show, as assertions over a `&dyn Store`.
//!
//! Each check creates its own workspaces with random slugs, so the suite can run against a
//! store that already holds data, and twice on the same store.

// Test support: a failed step is a failed test, so it may panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audit;
mod changes;
mod connect_sessions;
mod connections;
mod flows;
mod health;
mod oauth;
mod people;
mod pool_levels;
mod refresh;
mod sessions;
mod slot_wants;
mod slots;
mod workspaces;

pub use audit::{api_keys, events};
pub use changes::atomic_changes;
pub use connect_sessions::connect_sessions;
pub use connections::{
    concurrent_writes, connection_counts, connections, delete_guards, fenced_updates,
    isolation_and_filters,
};
pub use flows::{flow_atomicity, flows};
pub use health::{health_schedule, outbox};
pub use oauth::{oauth_clients, oauth_states};
pub use people::{memberships, user_removal, users};
pub use pool_levels::{concurrent_rate_limits, rate_limited_levels};
pub use refresh::{connection_version, refresh_lease, tokens};
pub use sessions::{instance_events, sessions};
pub use slot_wants::slot_wants;
pub use slots::{concurrent_slots, slot_levels, slots};
pub use workspaces::{data_keys, workspace_delete_cascade, workspaces};

use chrono::{DateTime, Utc};
use latchkey_core::crypto::Sealed;
use latchkey_core::ids::{ConnectionId, DataKeyId, FlowId, WorkspaceId};
use latchkey_core::model::{
    AuthMode, ConnectionRecord, ConnectionStatus, Flow, Workspace, WrappedDataKey,
};
use latchkey_core::names::{ConnectionName, Environment, FlowName, Slug};
use latchkey_core::store::{Page, Store, StoreResult};
use std::future::Future;

/// Runs every check of the suite, in order, against `store`.
pub async fn run_all(store: &dyn Store) {
    store.ping().await.expect("ping");
    workspaces(store).await;
    data_keys(store).await;
    workspace_delete_cascade(store).await;
    connections(store).await;
    isolation_and_filters(store).await;
    fenced_updates(store).await;
    concurrent_writes(store).await;
    delete_guards(store).await;
    connection_counts(store).await;
    tokens(store).await;
    refresh_lease(store).await;
    connection_version(store).await;
    oauth_clients(store).await;
    oauth_states(store).await;
    flows(store).await;
    flow_atomicity(store).await;
    api_keys(store).await;
    events(store).await;
    instance_events(store).await;
    sessions(store).await;
    slots(store).await;
    slot_levels(store).await;
    concurrent_slots(store).await;
    slot_wants(store).await;
    rate_limited_levels(store).await;
    concurrent_rate_limits(store).await;
    health_schedule(store).await;
    outbox(store).await;
    atomic_changes(store).await;
    connect_sessions(store).await;
    users(store).await;
    memberships(store).await;
    user_removal(store).await;
}

/// Now, at the millisecond precision stores keep.
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("now is representable")
}

/// A random lowercase suffix, so names do not collide between runs on one database.
fn unique(prefix: &str) -> String {
    format!("{prefix}-{:012x}", rand::random::<u64>() >> 16)
}

/// `n` fresh ids in ascending order (ids made in the same millisecond need not be).
fn sorted_ids<T: Ord>(n: usize, generate: impl Fn() -> T) -> Vec<T> {
    let mut ids: Vec<T> = (0..n).map(|_| generate()).collect();
    ids.sort();
    ids
}

fn page(limit: u32, after: Option<&str>) -> Page {
    Page {
        limit,
        after: after.map(str::to_owned),
    }
}

/// A workspace and its data key, not yet stored.
fn workspace_fixture(label: &str) -> (Workspace, WrappedDataKey) {
    let at = now();
    let key = WrappedDataKey {
        id: DataKeyId::generate(),
        master_key_id: "mk_conformance".into(),
        wrapped: vec![7; 60],
        created_at: at,
    };
    let ws = Workspace {
        id: WorkspaceId::generate(),
        slug: Slug::parse(&unique(label)).expect("slug"),
        name: format!("Conformance {label}"),
        data_key_id: key.id.clone(),
        branding: None,
        created_at: at,
        updated_at: at,
    };
    (ws, key)
}

/// A stored workspace.
async fn new_workspace(store: &dyn Store, label: &str) -> Workspace {
    let (ws, key) = workspace_fixture(label);
    store
        .create_workspace(&ws, &key)
        .await
        .expect("create workspace");
    ws
}

/// A connection record in `ws`, not yet stored, with credentials bound to its data key.
fn connection_fixture(ws: &Workspace, name: &str, app: &str) -> ConnectionRecord {
    let at = now();
    let mut settings = serde_json::Map::new();
    settings.insert("concurrency_level".into(), 5.into());
    settings.insert("instance_url".into(), "https://example.test".into());
    ConnectionRecord {
        id: ConnectionId::generate(),
        workspace_id: ws.id.clone(),
        name: ConnectionName::parse(name).expect("connection name"),
        app: app.into(),
        environment: Environment::production(),
        auth_mode: AuthMode::ApiKey,
        status: ConnectionStatus::Active,
        status_reason: None,
        hint: None,
        settings,
        credentials: Some(Sealed {
            key_id: ws.data_key_id.clone(),
            ciphertext: vec![1, 0, 255, 42],
        }),
        tokens: None,
        token_meta: None,
        version: 1,
        created_at: at,
        updated_at: at,
        verified_at: Some(at),
        owner: None,
    }
}

/// A stored connection.
async fn new_connection(
    store: &dyn Store,
    ws: &Workspace,
    name: &str,
    app: &str,
) -> ConnectionRecord {
    let conn = connection_fixture(ws, name, app);
    store
        .insert_connection(&conn)
        .await
        .expect("insert connection");
    conn
}

/// A flow in `ws` over `connections`, not yet stored.
fn flow_fixture(ws: &Workspace, name: &str, active: bool, connections: Vec<ConnectionId>) -> Flow {
    let at = now();
    Flow {
        id: FlowId::generate(),
        workspace_id: ws.id.clone(),
        name: FlowName::parse(name).expect("flow name"),
        environment: Environment::production(),
        active,
        connections,
        created_at: at,
        updated_at: at,
    }
}

/// Walks an ascending list page by page with `limit`, checking each page's size and that ids
/// strictly increase across pages; returns every item.
async fn all_pages<T, F, Fut>(limit: u32, mut fetch: F, id: impl Fn(&T) -> String) -> Vec<T>
where
    F: FnMut(Page) -> Fut,
    Fut: Future<Output = StoreResult<Vec<T>>>,
{
    let mut items: Vec<T> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let batch = fetch(page(limit, after.as_deref()))
            .await
            .expect("list page");
        let full = batch.len() == limit as usize;
        assert!(batch.len() <= limit as usize, "a page exceeded its limit");
        for item in batch {
            if let Some(prev) = items.last().map(&id).or_else(|| after.clone()) {
                assert!(
                    id(&item) > prev,
                    "ids must increase: {} after {prev}",
                    id(&item)
                );
            }
            items.push(item);
        }
        if !full {
            return items;
        }
        after = items.last().map(&id);
    }
}
