//! Flows: ordered links, inline connections, atomic writes, pagination, lookups.

use super::{
    all_pages, connection_fixture, flow_fixture, new_connection, new_workspace, now, sorted_ids,
};
use latchkey_core::ids::FlowId;
use latchkey_core::model::{ConnectionRecord, Flow, Workspace};
use latchkey_core::names::{Environment, FlowName};
use latchkey_core::store::Store;
use latchkey_core::StoreError;

/// Flows keep their connections in order, see only their workspace, and paginate.
pub async fn flows(store: &dyn Store) {
    let ws = new_workspace(store, "flows").await;
    let other = new_workspace(store, "flows-other").await;
    let (existing, flow, first, second) =
        created_in_order_with_inline_connections(store, &ws, &other).await;
    let elsewhere = names_are_unique_per_workspace(store, &ws, &other).await;
    let changed =
        update_rewrites_name_and_links(store, &ws, &other, &flow, &existing, &first, &second).await;
    lists_page_with_links(store, &ws, &existing, &changed).await;
    delete_keeps_the_connections(store, &ws, &flow, &elsewhere, &first).await;
}

/// A flow is created with its inline connections, keeps the caller's order of links, and is
/// found by id and name only in its own workspace. Answers the existing connection, the flow
/// and its two inline connections.
async fn created_in_order_with_inline_connections(
    store: &dyn Store,
    ws: &Workspace,
    other: &Workspace,
) -> (ConnectionRecord, Flow, ConnectionRecord, ConnectionRecord) {
    let existing = new_connection(store, ws, "existing", "stripe").await;
    let first = connection_fixture(ws, "inline one", "github");
    let second = connection_fixture(ws, "inline two", "salesforce");
    // Deliberately not in id or name order: the flow's order is the caller's.
    let flow = flow_fixture(
        ws,
        "billing sync",
        true,
        vec![second.id.clone(), existing.id.clone(), first.id.clone()],
    );
    store
        .create_flow(&flow, &[first.clone(), second.clone()])
        .await
        .expect("create flow");
    assert_eq!(
        store.flow(&ws.id, &flow.id).await.expect("flow"),
        Some(flow.clone())
    );
    assert_eq!(
        store
            .flow_by_name(&ws.id, "billing sync")
            .await
            .expect("by name"),
        Some(flow.clone())
    );
    assert_eq!(
        store.connection(&ws.id, &first.id).await.expect("inline"),
        Some(first.clone())
    );
    assert_eq!(
        store.connection(&ws.id, &second.id).await.expect("inline"),
        Some(second.clone())
    );
    assert_eq!(store.flow(&other.id, &flow.id).await.expect("flow"), None);
    assert_eq!(
        store
            .flow_by_name(&other.id, "billing sync")
            .await
            .expect("by name"),
        None
    );

    (existing, flow, first, second)
}

/// A second flow of the same name is refused in the workspace and accepted in another; answers
/// the one in the other workspace.
async fn names_are_unique_per_workspace(
    store: &dyn Store,
    ws: &Workspace,
    other: &Workspace,
) -> Flow {
    let twin = flow_fixture(ws, "billing sync", false, vec![]);
    match store.create_flow(&twin, &[]).await {
        Err(StoreError::Duplicate { constraint }) => assert_eq!(constraint, "flow_name"),
        other => panic!("duplicate flow name gave {other:?}"),
    }
    let elsewhere = flow_fixture(other, "billing sync", false, vec![]);
    store
        .create_flow(&elsewhere, &[])
        .await
        .expect("same name in another workspace");

    elsewhere
}

/// Update: rename, reorder, drop a link, add an inline connection; the links follow. Answers the
/// flow as updated.
async fn update_rewrites_name_and_links(
    store: &dyn Store,
    ws: &Workspace,
    other: &Workspace,
    flow: &Flow,
    existing: &ConnectionRecord,
    first: &ConnectionRecord,
    second: &ConnectionRecord,
) -> Flow {
    let third = connection_fixture(ws, "inline three", "hubspot");
    let mut changed = flow.clone();
    changed.name = FlowName::parse("billing sync v2").expect("name");
    changed.environment = Environment::parse("staging").expect("env");
    changed.active = false;
    changed.connections = vec![first.id.clone(), third.id.clone(), second.id.clone()];
    changed.updated_at = now();
    store
        .update_flow(&changed, std::slice::from_ref(&third))
        .await
        .expect("update flow");
    assert_eq!(
        store.flow(&ws.id, &flow.id).await.expect("flow"),
        Some(changed.clone())
    );
    assert_eq!(
        store
            .flow_by_name(&ws.id, "billing sync")
            .await
            .expect("by name"),
        None
    );
    assert_eq!(
        store.connection(&ws.id, &third.id).await.expect("inline"),
        Some(third.clone())
    );

    let using_existing = store
        .flows_using(&ws.id, &existing.id)
        .await
        .expect("flows using");
    assert!(
        using_existing.is_empty(),
        "the dropped link is gone: {using_existing:?}"
    );
    let using_first = store
        .flows_using(&ws.id, &first.id)
        .await
        .expect("flows using");
    assert_eq!(using_first, vec![changed.clone()]);
    assert!(store
        .flows_using(&other.id, &first.id)
        .await
        .expect("flows using")
        .is_empty());

    changed
}

/// The list holds this workspace's flows with their links, page by page.
async fn lists_page_with_links(
    store: &dyn Store,
    ws: &Workspace,
    existing: &ConnectionRecord,
    changed: &Flow,
) {
    let mut expected = vec![changed.clone()];
    for (i, id) in sorted_ids(4, FlowId::generate).into_iter().enumerate() {
        let mut f = flow_fixture(
            ws,
            &format!("flow {i}"),
            i % 2 == 0,
            vec![existing.id.clone()],
        );
        f.id = id;
        store.create_flow(&f, &[]).await.expect("create flow");
        expected.push(f);
    }
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    let listed = all_pages(
        2,
        |p| {
            let ws = &ws;
            async move { store.list_flows(&ws.id, &p).await }
        },
        |f| f.id.to_string(),
    )
    .await;
    assert_eq!(
        listed, expected,
        "the list holds this workspace's flows with their links"
    );
    let mut using = store
        .flows_using(&ws.id, &existing.id)
        .await
        .expect("flows using");
    using.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(using.len(), 4);
}

/// A flow is deleted once, only in its own workspace, and its connections stay.
async fn delete_keeps_the_connections(
    store: &dyn Store,
    ws: &Workspace,
    flow: &Flow,
    elsewhere: &Flow,
    first: &ConnectionRecord,
) {
    assert!(store
        .delete_flow(&ws.id, &flow.id)
        .await
        .expect("delete flow"));
    assert!(!store
        .delete_flow(&ws.id, &flow.id)
        .await
        .expect("delete again"));
    assert!(!store
        .delete_flow(&ws.id, &elsewhere.id)
        .await
        .expect("delete elsewhere"));
    assert_eq!(store.flow(&ws.id, &flow.id).await.expect("flow"), None);
    assert!(
        store
            .connection(&ws.id, &first.id)
            .await
            .expect("conn")
            .is_some(),
        "deleting a flow keeps its connections"
    );
}

/// Creating or updating a flow with inline connections is all or nothing.
pub async fn flow_atomicity(store: &dyn Store) {
    let ws = new_workspace(store, "atomic").await;
    let other = new_workspace(store, "atomic-other").await;
    let taken = new_connection(store, &ws, "taken", "stripe").await;

    // The second inline connection's name is taken: neither it, the first, nor the flow stays.
    let fresh = connection_fixture(&ws, "fresh", "github");
    let clash = connection_fixture(&ws, "taken", "github");
    let flow = flow_fixture(
        &ws,
        "doomed",
        true,
        vec![fresh.id.clone(), clash.id.clone()],
    );
    match store
        .create_flow(&flow, &[fresh.clone(), clash.clone()])
        .await
    {
        Err(StoreError::Duplicate { constraint }) => assert_eq!(constraint, "connection_name"),
        other => panic!("a batch with a taken name gave {other:?}"),
    }
    assert_eq!(store.flow(&ws.id, &flow.id).await.expect("flow"), None);
    assert_eq!(
        store.flow_by_name(&ws.id, "doomed").await.expect("flow"),
        None
    );
    assert_eq!(
        store.connection(&ws.id, &fresh.id).await.expect("conn"),
        None
    );
    assert_eq!(
        store
            .connection_by_name(&ws.id, "fresh")
            .await
            .expect("conn"),
        None
    );
    assert_eq!(
        store.connection(&ws.id, &taken.id).await.expect("conn"),
        Some(taken.clone())
    );

    // Two inline connections with one name.
    let a = connection_fixture(&ws, "twin", "github");
    let b = connection_fixture(&ws, "twin", "github");
    let flow = flow_fixture(&ws, "twins", true, vec![a.id.clone(), b.id.clone()]);
    assert!(matches!(
        store.create_flow(&flow, &[a.clone(), b.clone()]).await,
        Err(StoreError::Duplicate { .. })
    ));
    assert_eq!(
        store
            .connection_by_name(&ws.id, "twin")
            .await
            .expect("conn"),
        None
    );
    assert_eq!(store.flow(&ws.id, &flow.id).await.expect("flow"), None);

    // The flow's own name is taken: its inline connection is not kept either.
    let kept = flow_fixture(&ws, "kept", true, vec![taken.id.clone()]);
    store.create_flow(&kept, &[]).await.expect("create flow");
    let orphan = connection_fixture(&ws, "orphan", "github");
    let same_name = flow_fixture(&ws, "kept", true, vec![orphan.id.clone()]);
    assert!(matches!(
        store
            .create_flow(&same_name, std::slice::from_ref(&orphan))
            .await,
        Err(StoreError::Duplicate { .. })
    ));
    assert_eq!(
        store.connection(&ws.id, &orphan.id).await.expect("conn"),
        None
    );

    // A failed update changes nothing: not the flow, not its links, no inline connection.
    let mut update = kept.clone();
    update.name = FlowName::parse("renamed").expect("name");
    update.connections = vec![orphan.id.clone(), taken.id.clone()];
    let clash = connection_fixture(&ws, "taken", "github");
    update.connections.push(clash.id.clone());
    assert!(matches!(
        store.update_flow(&update, &[orphan.clone(), clash]).await,
        Err(StoreError::Duplicate { .. })
    ));
    assert_eq!(
        store.flow(&ws.id, &kept.id).await.expect("flow"),
        Some(kept.clone())
    );
    assert_eq!(
        store.connection(&ws.id, &orphan.id).await.expect("conn"),
        None
    );

    // A link to another workspace's connection is refused and stores nothing.
    let foreign = new_connection(store, &other, "foreign", "stripe").await;
    let sneaky = flow_fixture(&ws, "sneaky", true, vec![foreign.id.clone()]);
    assert!(
        store.create_flow(&sneaky, &[]).await.is_err(),
        "cross-workspace link accepted"
    );
    assert_eq!(store.flow(&ws.id, &sneaky.id).await.expect("flow"), None);
    assert!(store
        .flows_using(&other.id, &foreign.id)
        .await
        .expect("using")
        .is_empty());
}
