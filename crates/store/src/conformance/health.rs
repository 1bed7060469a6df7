//! The background schedule and the outbox: claims are exclusive until finished, an event and
//! its deliveries are written together (only to subscribed, enabled webhooks), deliveries move
//! from pending to succeeded or are rescheduled, and a long-failing endpoint is disabled.

use super::{connection_fixture, new_workspace, now};
use chrono::{DateTime, Duration, Utc};
use latchkey_core::crypto::Sealed;
use latchkey_core::health::{AttemptOutcome, DeliveryStatus, ProbeOutcome, Webhook};
use latchkey_core::ids::{DeliveryId, EventId, WebhookId};
use latchkey_core::model::{Event, Workspace};
use latchkey_core::store::{Page, Store};

/// A new connection is due at once and claimed by one owner only; a probe's outcome lands on
/// its health row (failures counted, then reset by a success) and sets when it is due next;
/// connections are read back by ids, missing ones left out; the row goes with its connection.
pub async fn health_schedule(store: &dyn Store) {
    let ws = new_workspace(store, "health").await;
    let conn = connection_fixture(&ws, "probed", "generic-api-key");
    store.insert_connection(&conn).await.expect("insert");
    let t = now();
    let mine = |rows: Vec<latchkey_core::health::DueConnection>| {
        rows.into_iter().find(|d| d.connection_id == conn.id)
    };
    let claimed = mine(
        store
            .claim_due_connections("a", t, t + Duration::seconds(60), 10_000)
            .await
            .expect("claim"),
    )
    .expect("a new connection is due at once");
    assert!(
        claimed.probe_at.is_none(),
        "its first probe is not placed yet"
    );
    assert!(
        mine(
            store
                .claim_due_connections("b", t, t + Duration::seconds(60), 10_000)
                .await
                .expect("claim")
        )
        .is_none(),
        "a claimed row is nobody else's until its lease ends"
    );
    let outcome = ProbeOutcome {
        at: t,
        error: Some("upstream said 401".into()),
    };
    store
        .finish_due_connection(&conn.id, "a", Some(t + Duration::hours(1)), Some(&outcome))
        .await
        .expect("finish");
    let h = store
        .health_of(&ws.id, std::slice::from_ref(&conn.id))
        .await
        .expect("health");
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].consecutive_failures, 1);
    assert_eq!(h[0].last_checked_at, Some(t));
    assert_eq!(h[0].last_ok_at, None);
    assert_eq!(h[0].next_check_at, Some(t + Duration::hours(1)));
    assert_eq!(h[0].last_error.as_deref(), Some("upstream said 401"));
    assert!(
        mine(
            store
                .claim_due_connections("b", t, t + Duration::seconds(60), 10_000)
                .await
                .expect("claim")
        )
        .is_none(),
        "not due before its next probe"
    );
    let later = t + Duration::hours(2);
    let again = mine(
        store
            .claim_due_connections("b", later, later + Duration::seconds(60), 10_000)
            .await
            .expect("claim"),
    )
    .expect("due after its probe time");
    assert_eq!(again.probe_at, Some(t + Duration::hours(1)));
    let ok = ProbeOutcome {
        at: later,
        error: None,
    };
    store
        .finish_due_connection(&conn.id, "b", None, Some(&ok))
        .await
        .expect("finish");
    let h = store
        .health_of(&ws.id, std::slice::from_ref(&conn.id))
        .await
        .expect("health");
    assert_eq!(h[0].consecutive_failures, 0);
    assert_eq!(h[0].last_ok_at, Some(later));
    assert_eq!(h[0].next_check_at, None, "probes off");
    placements_in_one_statement(store, &ws, t).await;
    let other = super::new_connection(store, &ws, "probed-other", "generic-api-key").await;
    let gone = latchkey_core::ids::ConnectionId::generate();
    let read = store
        .connections_by_ids(&[other.id.clone(), gone, conn.id.clone()])
        .await
        .expect("by ids");
    let mut want = vec![conn.clone(), other];
    want.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        read, want,
        "the claimed connections in one read, the missing left out"
    );
    assert!(store
        .delete_connection(&ws.id, &conn.id)
        .await
        .expect("delete"));
    assert!(store
        .health_of(&ws.id, std::slice::from_ref(&conn.id))
        .await
        .expect("health")
        .is_empty());
}

/// New connections' first probes are placed together: each gets its own time (or none: probes
/// off), only where the caller holds the claim, and the claim is given back.
async fn placements_in_one_statement(store: &dyn Store, ws: &Workspace, t: DateTime<Utc>) {
    let mut conns = Vec::new();
    for name in ["placed-a", "placed-b", "placed-off", "placed-other-owner"] {
        conns.push(super::new_connection(store, ws, name, "generic-api-key").await);
    }
    let later = t + Duration::seconds(5);
    let claimed: Vec<_> = store
        .claim_due_connections("p", later, later + Duration::seconds(60), 10_000)
        .await
        .expect("claim")
        .into_iter()
        .map(|d| d.connection_id)
        .collect();
    for c in &conns {
        assert!(claimed.contains(&c.id), "{} is due at once", c.name);
    }
    let placed = vec![
        (conns[0].id.clone(), Some(t + Duration::minutes(10))),
        (conns[1].id.clone(), Some(t + Duration::minutes(20))),
        (conns[2].id.clone(), None),
    ];
    store.place_probes("p", &placed).await.expect("place");
    // Another owner's placement changes nothing.
    store
        .place_probes(
            "q",
            &[(conns[3].id.clone(), Some(t + Duration::minutes(30)))],
        )
        .await
        .expect("place");
    let ids: Vec<_> = conns.iter().map(|c| c.id.clone()).collect();
    let h = store.health_of(&ws.id, &ids).await.expect("health");
    let next = |id: &latchkey_core::ids::ConnectionId| {
        h.iter()
            .find(|r| r.connection_id.as_ref() == Some(id))
            .expect("health row")
            .next_check_at
    };
    assert_eq!(next(&conns[0].id), Some(t + Duration::minutes(10)));
    assert_eq!(next(&conns[1].id), Some(t + Duration::minutes(20)));
    assert_eq!(next(&conns[2].id), None, "probes off");
    assert_eq!(
        next(&conns[3].id),
        None,
        "not placed by an owner without the claim"
    );
    let again: Vec<_> = store
        .claim_due_connections(
            "r",
            t + Duration::minutes(15),
            t + Duration::minutes(16),
            10_000,
        )
        .await
        .expect("claim")
        .into_iter()
        .map(|d| d.connection_id)
        .collect();
    assert!(
        again.contains(&conns[0].id),
        "due at its placed time, its claim given back"
    );
    assert!(
        !again.contains(&conns[1].id),
        "not due before its placed time"
    );
    assert!(!again.contains(&conns[2].id), "probes off: never due");
    for c in &conns {
        store
            .delete_connection(&ws.id, &c.id)
            .await
            .expect("delete");
    }
}

/// An event is written with a delivery to each subscribed, enabled webhook; a delivery is
/// claimed by one worker at a time, rescheduled after a failure and finished after a success;
/// an endpoint failing long enough is disabled; deliveries go with their webhook.
pub async fn outbox(store: &dyn Store) {
    let ws = new_workspace(store, "outbox").await;
    let t = now();
    let hook = flow_webhook(store, &ws, t).await;
    deliveries_only_for_subscribed_types(store, &ws, &hook, t).await;
    let delivery = delivery_is_retried_until_it_succeeds(store, &ws, &hook, t).await;
    long_failing_endpoint_is_disabled(store, &ws, &hook, t).await;
    assert!(store
        .delete_webhook(&ws.id, &hook.id)
        .await
        .expect("delete"));
    assert!(store
        .delivery(&ws.id, &delivery)
        .await
        .expect("read")
        .is_none());
}

/// A webhook of `ws` subscribed to `flow.*`, stored and read back.
async fn flow_webhook(store: &dyn Store, ws: &Workspace, t: DateTime<Utc>) -> Webhook {
    let hook = Webhook {
        id: WebhookId::generate(),
        workspace_id: ws.id.clone(),
        url: "https://example.com/hook".into(),
        events: vec!["flow.*".into()],
        description: None,
        enabled: true,
        secret: Sealed {
            key_id: ws.data_key_id.clone(),
            ciphertext: vec![1, 2, 3],
        },
        previous_until: None,
        failing_since: None,
        disabled_reason: None,
        created_at: t,
        updated_at: t,
    };
    store.insert_webhook(&hook).await.expect("insert webhook");
    assert_eq!(
        store.webhook(&ws.id, &hook.id).await.expect("read"),
        Some(hook.clone())
    );
    hook
}

/// A system event of `ws` at `t`.
fn event(ws: &Workspace, t: DateTime<Utc>, action: &str) -> Event {
    Event {
        id: EventId::generate(),
        workspace_id: ws.id.clone(),
        at: t,
        actor: "system".into(),
        action: action.into(),
        target_id: None,
        target_name: Some("nightly".into()),
        details: serde_json::json!({}),
    }
}

/// The first page of fifty.
fn first_page() -> Page {
    Page {
        limit: 50,
        after: None,
    }
}

/// One delivery, for the subscribed type only, pending, with the event as its body.
async fn deliveries_only_for_subscribed_types(
    store: &dyn Store,
    ws: &Workspace,
    hook: &Webhook,
    t: DateTime<Utc>,
) {
    store
        .append_event(&event(ws, t, "flow.created"))
        .await
        .expect("event");
    store
        .append_event(&event(ws, t, "connection.created"))
        .await
        .expect("not subscribed");
    store
        .append_event(&event(ws, t, "connection.token_read"))
        .await
        .expect("audit only");
    let page = first_page();
    let list = store
        .list_deliveries(&ws.id, &hook.id, &page)
        .await
        .expect("list");
    assert_eq!(list.len(), 1, "one delivery, for the subscribed type only");
    assert_eq!(list[0].event_type, "flow.created");
    assert_eq!(list[0].status, DeliveryStatus::Pending);
    let body: serde_json::Value = serde_json::from_str(&list[0].payload).expect("json body");
    assert_eq!(body["type"], "flow.created");
}

/// The delivery is claimed by one worker only; a failure reschedules it, and the next claim's
/// success finishes it. Answers its id.
async fn delivery_is_retried_until_it_succeeds(
    store: &dyn Store,
    ws: &Workspace,
    hook: &Webhook,
    t: DateTime<Utc>,
) -> DeliveryId {
    let mine = |rows: Vec<latchkey_core::health::Delivery>| {
        rows.into_iter().find(|d| d.webhook_id == hook.id)
    };
    let d = mine(
        store
            .claim_deliveries("a", t, t + Duration::seconds(60), 1000)
            .await
            .expect("claim"),
    )
    .expect("due at once");
    assert!(mine(
        store
            .claim_deliveries("b", t, t + Duration::seconds(60), 1000)
            .await
            .expect("claim")
    )
    .is_none());
    let retry_at = t + Duration::seconds(5);
    store
        .finish_delivery(
            &d.id,
            "a",
            &AttemptOutcome {
                at: t,
                status_code: Some(500),
                error: Some("500".into()),
                next_attempt_at: Some(retry_at),
            },
        )
        .await
        .expect("finish");
    let d2 = store
        .delivery(&ws.id, &d.id)
        .await
        .expect("read")
        .expect("there");
    assert_eq!((d2.status, d2.attempts), (DeliveryStatus::Pending, 1));
    assert_eq!(d2.next_attempt_at, Some(retry_at));
    let d3 = mine(
        store
            .claim_deliveries("b", retry_at, retry_at + Duration::seconds(60), 1000)
            .await
            .expect("claim"),
    )
    .expect("due again");
    store
        .finish_delivery(
            &d3.id,
            "b",
            &AttemptOutcome {
                at: retry_at,
                status_code: Some(200),
                error: None,
                next_attempt_at: None,
            },
        )
        .await
        .expect("finish");
    let d4 = store
        .delivery(&ws.id, &d.id)
        .await
        .expect("read")
        .expect("there");
    assert_eq!((d4.status, d4.attempts), (DeliveryStatus::Succeeded, 2));
    d.id
}

/// Failing since long enough: disabled, once; a disabled webhook gets no new deliveries.
async fn long_failing_endpoint_is_disabled(
    store: &dyn Store,
    ws: &Workspace,
    hook: &Webhook,
    t: DateTime<Utc>,
) {
    assert!(!store
        .record_endpoint_outcome(&hook.id, false, t, t - Duration::days(3), "dead")
        .await
        .expect("first failure"));
    assert!(store
        .record_endpoint_outcome(&hook.id, false, t, t + Duration::seconds(1), "dead")
        .await
        .expect("long failing"));
    let h = store
        .webhook(&ws.id, &hook.id)
        .await
        .expect("read")
        .expect("there");
    assert!(!h.enabled);
    assert_eq!(h.disabled_reason.as_deref(), Some("dead"));
    // A disabled webhook gets no new deliveries.
    store
        .append_event(&event(ws, t, "flow.deleted"))
        .await
        .expect("event");
    assert_eq!(
        store
            .list_deliveries(&ws.id, &hook.id, &first_page())
            .await
            .expect("list")
            .len(),
        1
    );
}
