//! Connections: round trips, isolation, filters, fenced writes, guarded deletes, counts.

use super::{
    all_pages, connection_fixture, flow_fixture, new_connection, new_workspace, now, page,
    sorted_ids,
};
use latchkey_core::crypto::Sealed;
use latchkey_core::ids::ConnectionId;
use latchkey_core::model::{ConnectionRecord, ConnectionStatus};
use latchkey_core::names::{ConnectionName, Environment};
use latchkey_core::store::{ConnectionFilter, Store};
use latchkey_core::StoreError;

/// Insert and read back by id and name, every field and every ciphertext byte unchanged;
/// a taken name is `Duplicate { constraint: "connection_name" }`.
pub async fn connections(store: &dyn Store) {
    let ws = new_workspace(store, "conn").await;
    let mut conn = connection_fixture(&ws, "Salesforce (EU) prod", "salesforce");
    conn.settings
        .insert("scopes".into(), serde_json::json!(["api", "refresh_token"]));
    conn.settings.insert(
        "nested".into(),
        serde_json::json!({"a": [1, 2.5, null, true]}),
    );
    conn.status_reason = Some("ok".into());
    conn.hint = Some("none needed".into());
    conn.credentials = Some(Sealed {
        key_id: ws.data_key_id.clone(),
        ciphertext: (0..=255u8).chain((0..=255u8).rev()).collect(),
    });
    store.insert_connection(&conn).await.expect("insert");
    assert_eq!(
        store.connection(&ws.id, &conn.id).await.expect("by id"),
        Some(conn.clone()),
        "a connection reads back exactly as written, ciphertext bytes included"
    );
    assert_eq!(
        store
            .connection_by_name(&ws.id, conn.name.as_str())
            .await
            .expect("by name"),
        Some(conn.clone())
    );
    assert_eq!(
        store
            .connection_by_name(&ws.id, "nope")
            .await
            .expect("by name"),
        None
    );

    let mut bare = connection_fixture(&ws, "bare", "stripe");
    bare.credentials = None;
    bare.verified_at = None;
    bare.status = ConnectionStatus::PendingAuthorization;
    store.insert_connection(&bare).await.expect("insert bare");
    assert_eq!(
        store.connection(&ws.id, &bare.id).await.expect("by id"),
        Some(bare)
    );

    let twin = connection_fixture(&ws, conn.name.as_str(), "salesforce");
    match store.insert_connection(&twin).await {
        Err(StoreError::Duplicate { constraint }) => assert_eq!(constraint, "connection_name"),
        other => panic!("duplicate connection name gave {other:?}"),
    }
    assert_eq!(
        store.connection(&ws.id, &twin.id).await.expect("by id"),
        None
    );
}

/// Another workspace's connections are invisible; filters and cursor pagination hold.
pub async fn isolation_and_filters(store: &dyn Store) {
    let ws = new_workspace(store, "filters").await;
    let other = new_workspace(store, "other").await;
    let theirs = new_connection(store, &other, "shared name", "salesforce").await;
    let mine = new_connection(store, &ws, "shared name", "salesforce").await;
    assert_eq!(
        store.connection(&ws.id, &theirs.id).await.expect("by id"),
        None
    );
    assert_eq!(
        store.connection(&other.id, &mine.id).await.expect("by id"),
        None
    );
    assert_eq!(
        store
            .connection_by_name(&other.id, "shared name")
            .await
            .expect("by name")
            .map(|c| c.id),
        Some(theirs.id.clone())
    );

    let ids = sorted_ids(6, ConnectionId::generate);
    let mut stored = vec![mine];
    for (i, id) in ids.into_iter().enumerate() {
        let mut c = connection_fixture(&ws, &format!("conn {i}"), ["stripe", "github"][i % 2]);
        c.id = id;
        if i == 4 {
            c.environment = Environment::parse("staging").expect("env");
            c.status = ConnectionStatus::Failing;
        }
        store.insert_connection(&c).await.expect("insert");
        stored.push(c);
    }
    stored.sort_by(|a, b| a.id.cmp(&b.id));

    let any = ConnectionFilter::default();
    let listed = all_pages(
        2,
        |p| {
            let (ws, any) = (&ws, &any);
            async move { store.list_connections(&ws.id, any, &p).await }
        },
        |c| c.id.to_string(),
    )
    .await;
    assert_eq!(
        listed, stored,
        "the list holds exactly this workspace's connections"
    );

    let names = |filter: ConnectionFilter| {
        let ws = ws.clone();
        async move {
            let list = store
                .list_connections(&ws.id, &filter, &page(100, None))
                .await
                .expect("filtered list");
            list.into_iter()
                .map(|c| c.name.to_string())
                .collect::<Vec<_>>()
        }
    };
    let by_app = names(ConnectionFilter {
        app: Some("stripe".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(by_app, ["conn 0", "conn 2", "conn 4"]);
    let staging = names(ConnectionFilter {
        environment: Some("staging".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(staging, ["conn 4"]);
    let failing_github = names(ConnectionFilter {
        app: Some("github".into()),
        status: Some(ConnectionStatus::Failing),
        ..Default::default()
    })
    .await;
    assert!(
        failing_github.is_empty(),
        "filters combine: {failing_github:?}"
    );
    let failing = names(ConnectionFilter {
        status: Some(ConnectionStatus::Failing),
        ..Default::default()
    })
    .await;
    assert_eq!(failing, ["conn 4"]);
}

/// Writes are fenced on `version`: a stale writer gets `Stale` and changes nothing.
pub async fn fenced_updates(store: &dyn Store) {
    let ws = new_workspace(store, "fence").await;
    let other = new_workspace(store, "fence-other").await;
    let original = new_connection(store, &ws, "fenced", "hubspot").await;
    let taken = new_connection(store, &ws, "taken", "hubspot").await;

    let mut next = original.clone();
    next.version = original.version + 1;
    next.status = ConnectionStatus::Failing;
    next.status_reason = Some("invalid_grant".into());
    next.hint = Some("re-authorize".into());
    next.name = ConnectionName::parse("fenced renamed").expect("name");
    next.credentials = Some(Sealed {
        key_id: ws.data_key_id.clone(),
        ciphertext: vec![9, 8, 7],
    });
    next.updated_at = now();
    store
        .update_connection(&next, original.version)
        .await
        .expect("fenced update");
    assert_eq!(
        store.connection(&ws.id, &next.id).await.expect("by id"),
        Some(next.clone())
    );

    let mut late = original.clone();
    late.version = original.version + 1;
    late.hint = Some("a slow refresh".into());
    match store.update_connection(&late, original.version).await {
        Err(StoreError::Stale) => {}
        other => panic!("a write on an old version gave {other:?}"),
    }
    assert_eq!(
        store.connection(&ws.id, &next.id).await.expect("by id"),
        Some(next.clone()),
        "a stale write leaves the newer row alone"
    );

    let mut elsewhere = next.clone();
    elsewhere.workspace_id = other.id.clone();
    elsewhere.version = next.version + 1;
    assert!(
        matches!(
            store.update_connection(&elsewhere, next.version).await,
            Err(StoreError::Stale)
        ),
        "an update scoped to another workspace finds nothing"
    );

    let mut clash = next.clone();
    clash.version = next.version + 1;
    clash.name = taken.name.clone();
    match store.update_connection(&clash, next.version).await {
        Err(StoreError::Duplicate { constraint }) => assert_eq!(constraint, "connection_name"),
        other => panic!("renaming onto a taken name gave {other:?}"),
    }

    let mut credentials_cleared = next.clone();
    credentials_cleared.version = next.version + 1;
    credentials_cleared.credentials = None;
    store
        .update_connection(&credentials_cleared, next.version)
        .await
        .expect("clear credentials");
    assert_eq!(
        store.connection(&ws.id, &next.id).await.expect("by id"),
        Some(credentials_cleared)
    );
}

fn borrowing(mut conn: ConnectionRecord, lender: Option<&ConnectionId>) -> ConnectionRecord {
    match lender {
        Some(l) => conn
            .settings
            .insert("borrow_concurrency_from".into(), l.to_string().into()),
        None => conn.settings.remove("borrow_concurrency_from"),
    };
    conn
}

/// A connection used by an active flow or lent to a borrower cannot be deleted; `InUse` names
/// them and nothing is deleted. Once free, it goes, taking inactive flows' links with it.
pub async fn delete_guards(store: &dyn Store) {
    let ws = new_workspace(store, "guard").await;
    let other = new_workspace(store, "guard-other").await;
    let lender = new_connection(store, &ws, "lender", "salesforce").await;
    let partner = new_connection(store, &ws, "partner", "salesforce").await;
    let borrower = borrowing(
        connection_fixture(&ws, "borrower", "salesforce"),
        Some(&lender.id),
    );
    store
        .insert_connection(&borrower)
        .await
        .expect("insert borrower");

    let borrowers = store
        .borrowers_of(&ws.id, &lender.id)
        .await
        .expect("borrowers");
    assert_eq!(borrowers, vec![borrower.clone()]);
    assert!(store
        .borrowers_of(&other.id, &lender.id)
        .await
        .expect("borrowers")
        .is_empty());

    let flow = flow_fixture(
        &ws,
        "nightly sync",
        true,
        vec![partner.id.clone(), lender.id.clone()],
    );
    store.create_flow(&flow, &[]).await.expect("create flow");

    match store.delete_connection(&ws.id, &lender.id).await {
        Err(StoreError::InUse { flows, borrowers }) => {
            assert_eq!(flows, ["nightly sync"]);
            assert_eq!(borrowers, ["borrower"]);
        }
        other => panic!("deleting a used connection gave {other:?}"),
    }
    assert!(store
        .connection(&ws.id, &lender.id)
        .await
        .expect("by id")
        .is_some());
    assert_eq!(
        store.flow(&ws.id, &flow.id).await.expect("flow"),
        Some(flow.clone())
    );

    let mut freed = borrowing(borrower.clone(), None);
    freed.version += 1;
    store
        .update_connection(&freed, borrower.version)
        .await
        .expect("stop borrowing");
    assert!(store
        .borrowers_of(&ws.id, &lender.id)
        .await
        .expect("borrowers")
        .is_empty());
    match store.delete_connection(&ws.id, &lender.id).await {
        Err(StoreError::InUse { flows, borrowers }) => {
            assert_eq!(flows, ["nightly sync"]);
            assert!(borrowers.is_empty(), "{borrowers:?}");
        }
        other => panic!("deleting a connection of an active flow gave {other:?}"),
    }

    let mut paused = flow.clone();
    paused.active = false;
    paused.updated_at = now();
    store.update_flow(&paused, &[]).await.expect("pause flow");
    assert!(
        !store
            .delete_connection(&other.id, &lender.id)
            .await
            .expect("delete elsewhere"),
        "another workspace cannot delete it"
    );
    assert!(store
        .delete_connection(&ws.id, &lender.id)
        .await
        .expect("delete"));
    assert_eq!(
        store.connection(&ws.id, &lender.id).await.expect("by id"),
        None
    );
    let after = store
        .flow(&ws.id, &flow.id)
        .await
        .expect("flow")
        .expect("flow survives");
    assert_eq!(
        after.connections,
        vec![partner.id.clone()],
        "only the link went"
    );
    assert!(!store
        .delete_connection(&ws.id, &lender.id)
        .await
        .expect("delete again"));
}

/// `(app, count)` for every application used in the workspace, and nothing from others.
pub async fn connection_counts(store: &dyn Store) {
    let ws = new_workspace(store, "counts").await;
    let other = new_workspace(store, "counts-other").await;
    assert!(store
        .connection_counts(&ws.id)
        .await
        .expect("counts")
        .is_empty());
    for (i, app) in ["stripe", "github", "stripe", "salesforce", "stripe"]
        .iter()
        .enumerate()
    {
        new_connection(store, &ws, &format!("c{i}"), app).await;
    }
    new_connection(store, &other, "elsewhere", "github").await;
    // A revoked connection no longer counts.
    let mut dead = connection_fixture(&ws, "dead", "github");
    dead.status = ConnectionStatus::Revoked;
    store
        .insert_connection(&dead)
        .await
        .expect("insert revoked");
    let mut counts = store.connection_counts(&ws.id).await.expect("counts");
    counts.sort();
    assert_eq!(
        counts,
        vec![
            ("github".into(), 1),
            ("salesforce".into(), 1),
            ("stripe".into(), 3)
        ]
    );
}

/// Racing writers: concurrent inserts all land, and of several writers fenced on the same
/// version exactly one wins while the others get `Stale`.
pub async fn concurrent_writes(store: &dyn Store) {
    let ws = new_workspace(store, "race").await;
    let batch: Vec<_> = (0..12)
        .map(|i| connection_fixture(&ws, &format!("racer {i}"), "stripe"))
        .collect();
    let inserts = futures::future::join_all(batch.iter().map(|c| store.insert_connection(c))).await;
    for result in inserts {
        result.expect("concurrent insert");
    }
    let base = batch[0].clone();
    let contenders: Vec<_> = (0..8)
        .map(|i| {
            let mut c = base.clone();
            c.version = base.version + 1;
            c.hint = Some(format!("writer {i}"));
            c
        })
        .collect();
    let results = futures::future::join_all(
        contenders
            .iter()
            .map(|c| store.update_connection(c, base.version)),
    )
    .await;
    let winners: Vec<_> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one fenced writer wins: {results:?}"
    );
    for r in &results {
        assert!(r.is_ok() || matches!(r, Err(StoreError::Stale)), "{r:?}");
    }
    let stored = store.connection(&ws.id, &base.id).await.expect("by id");
    assert_eq!(stored.as_ref(), Some(&contenders[winners[0]]));
}
