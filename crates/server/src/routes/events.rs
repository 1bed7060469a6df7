//! The audit log of a workspace.

use crate::access::Need;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::pagination::{self, List, PageQuery};
use crate::state::AppState;
use axum::extract::State;
use chrono::{DateTime, Utc};
use latchkey_core::ids::{ApiKeyId, UserId};
use latchkey_core::model::{Event, InstanceEvent};
use latchkey_core::store::Page;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventView {
    pub id: String,
    pub at: DateTime<Utc>,
    /// Who acted: `key_…` (a key of the instance), `user_…` (a person in the web UI),
    /// `user_…/key_…` (a person's API key), or `system`.
    pub actor: String,
    /// The person who acted, when a person did (by their key or in the web UI).
    pub person: Option<PersonRef>,
    /// The API key used, when one was.
    pub key_id: Option<String>,
    /// `connection.created`, `connection.verified`, `connection.credentials_read`, `flow.deleted`, …
    pub action: String,
    pub target_id: Option<String>,
    pub target_name: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// A person named in the audit log (name and email as they are now; null once removed).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PersonRef {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// The person and the key an actor string names.
fn parse_actor(actor: &str) -> (Option<PersonRef>, Option<String>) {
    let person = |id: &str| PersonRef {
        id: id.to_string(),
        name: None,
        email: None,
    };
    match actor.split_once('/') {
        Some((u, k)) => (Some(person(u)), Some(k.to_string())),
        None if actor.starts_with(UserId::PREFIX) => (Some(person(actor)), None),
        None if actor.starts_with(ApiKeyId::PREFIX) => (None, Some(actor.to_string())),
        None => (None, None),
    }
}

/// Whether an event's actor is `who` (a person, a key, or the exact actor string).
fn acted_by(actor: &str, who: &str) -> bool {
    actor == who || actor.split('/').any(|part| part == who)
}

/// Fills in the names of the people the events name.
async fn name_people(
    state: &AppState,
    mut list: List<EventView>,
) -> ApiResult<Json<List<EventView>>> {
    let mut known: std::collections::HashMap<String, Option<(String, String)>> =
        std::collections::HashMap::new();
    for item in &mut list.items {
        let Some(p) = item.person.as_mut() else {
            continue;
        };
        if !known.contains_key(&p.id) {
            let found = match UserId::parse(&p.id) {
                Ok(id) => state
                    .store
                    .user(&id)
                    .await?
                    .map(|u| (u.display_name, u.email)),
                Err(_) => None,
            };
            known.insert(p.id.clone(), found);
        }
        if let Some(Some((name, email))) = known.get(&p.id) {
            p.name = Some(name.clone());
            p.email = Some(email.clone());
        }
    }
    Ok(Json(list))
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        let (person, key_id) = parse_actor(&e.actor);
        Self {
            id: e.id.to_string(),
            at: e.at,
            person,
            key_id,
            actor: e.actor,
            action: e.action,
            target_id: e.target_id,
            target_name: e.target_name,
            details: e.details,
        }
    }
}

impl From<InstanceEvent> for EventView {
    fn from(e: InstanceEvent) -> Self {
        let (person, key_id) = parse_actor(&e.actor);
        Self {
            id: e.id.to_string(),
            at: e.at,
            person,
            key_id,
            actor: e.actor,
            action: e.action,
            target_id: e.target_id,
            target_name: e.target_name,
            details: e.details,
        }
    }
}

/// The instance's own audit log (admin keys only): API keys created and revoked, admin keys
/// included, which belong to no workspace. Newest first. Never carries a secret.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(PageQuery),
    responses((status = 200, body = List<EventView>), (status = 403, body = ErrorBody)))]
pub async fn list_instance_events(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<List<EventView>>> {
    caller.require_admin()?;
    let (page, limit) = pagination::page(q.limit, q.cursor.as_deref())?;
    let rows = state.store.list_instance_events(&page).await?;
    name_people(
        &state,
        pagination::finish(rows, limit, |e| e.id.to_string(), EventView::from),
    )
    .await
}

/// Filters of the audit log; every one given must match.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// Items per page, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only actions that start with this (`connection.` for every connection event, or one
    /// action such as `connection.deleted`).
    pub action: Option<String>,
    /// Only events whose target has this name or id.
    pub target: Option<String>,
    /// Only events of this actor: a person (`user_…`, whether in the web UI or by their keys),
    /// a key (`key_…`), or `system`.
    pub actor: Option<String>,
    /// `refused`: only refused attempts (actions that end in `refused`).
    pub outcome: Option<String>,
}

/// How many stored events one filtered page looks through at most; the cursor then carries on.
const SCAN_BUDGET: usize = 5_000;

/// Newest first. Never carries a secret. Refused attempts (a key without the needed scope,
/// a delete refused because the connection is in use) are events too, with `refused` at the
/// end of their action. A filtered page may hold fewer items than `limit` while
/// `next_cursor` is set: the search stopped after looking through many events.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/events", tag = "events", params(EventQuery),
    responses((status = 200, body = List<EventView>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    Query(q): Query<EventQuery>,
) -> ApiResult<Json<List<EventView>>> {
    let ws = state.workspace(&caller, &ws, Need::Read).await?;
    let (page, limit) = pagination::page(q.limit, q.cursor.as_deref())?;
    let refused_only = match q.outcome.as_deref() {
        None | Some("") => false,
        Some("refused") => true,
        Some(_) => {
            return Err(ApiError::invalid(
                "outcome",
                "outcome can only be `refused`",
            ))
        }
    };
    let nonempty = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_string);
    let (action, target, actor) = (nonempty(&q.action), nonempty(&q.target), nonempty(&q.actor));
    if action.is_none() && target.is_none() && actor.is_none() && !refused_only {
        let rows = state.store.list_events(&ws.id, &page).await?;
        return name_people(
            &state,
            pagination::finish(rows, limit, |e| e.id.to_string(), EventView::from),
        )
        .await;
    }
    let keep = |e: &Event| {
        action.as_deref().is_none_or(|a| e.action.starts_with(a))
            && target.as_deref().is_none_or(|t| {
                e.target_name.as_deref() == Some(t) || e.target_id.as_deref() == Some(t)
            })
            && actor.as_deref().is_none_or(|a| acted_by(&e.actor, a))
            && (!refused_only || e.action.ends_with("refused"))
    };
    let mut found: Vec<Event> = Vec::new();
    let mut after = page.after.clone();
    let mut scanned = 0usize;
    let mut last_seen: Option<String> = None;
    let mut exhausted = false;
    while found.len() <= limit as usize && scanned < SCAN_BUDGET {
        let batch = state
            .store
            .list_events(
                &ws.id,
                &Page {
                    limit: 500,
                    after: after.clone(),
                },
            )
            .await?;
        let n = batch.len();
        for e in batch {
            scanned += 1;
            last_seen = Some(e.id.to_string());
            after = last_seen.clone();
            if keep(&e) {
                found.push(e);
                if found.len() > limit as usize {
                    break;
                }
            }
        }
        if n < 500 {
            exhausted = true;
            break;
        }
    }
    if found.len() > limit as usize {
        return name_people(
            &state,
            pagination::finish(found, limit, |e| e.id.to_string(), EventView::from),
        )
        .await;
    }
    let list = List {
        items: found.into_iter().map(EventView::from).collect(),
        next_cursor: if exhausted {
            None
        } else {
            last_seen.map(|k| pagination::encode_cursor(&k))
        },
    };
    name_people(&state, list).await
}

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Resume after this event id (the `Last-Event-ID` header does the same and wins).
    pub after: Option<String>,
}

/// How often a stream looks for events recorded by other instances of a cluster (events of
/// this instance wake it at once).
const STREAM_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// The workspace's events as Server-Sent Events, oldest first: each has `id` (the event id),
/// `event` (its type) and `data` (the event as JSON). A client that reconnects with
/// `Last-Event-ID` (browsers do) gets every event after that one, none twice. Without it the
/// stream starts with events from now on.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/events/stream", tag = "events", params(StreamQuery),
    responses((status = 200, description = "an endless text/event-stream", content_type = "text/event-stream", body = String),
        (status = 404, body = ErrorBody)))]
pub async fn stream_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    Query(q): Query<StreamQuery>,
    headers: axum::http::HeaderMap,
) -> ApiResult<
    axum::response::sse::Sse<
        impl futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
    >,
> {
    use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
    let ws = state.workspace(&caller, &ws, Need::Read).await?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(q.after);
    let start = match resume {
        Some(id) => {
            let id = latchkey_core::ids::EventId::parse(id.trim()).map_err(|_| {
                crate::error::ApiError::invalid(
                    "Last-Event-ID",
                    "the last event id is not an event id (`evt_…`)",
                )
            })?;
            Some(id.to_string())
        }
        // From now on: the newest event so far is the starting point.
        None => state
            .store
            .list_events(
                &ws.id,
                &latchkey_core::store::Page {
                    limit: 1,
                    after: None,
                },
            )
            .await?
            .into_iter()
            .next()
            .map(|e| e.id.to_string())
            .or_else(|| Some(String::new())),
    };
    let wake = std::sync::Arc::new(tokio::sync::Mutex::new(
        state.background.event_serial.subscribe(),
    ));
    let stream = async_stream_events(state.clone(), ws.id.clone(), start, move || {
        let w = wake.clone();
        async move {
            let mut w = w.lock().await;
            let _ = tokio::time::timeout(STREAM_POLL, w.changed()).await;
        }
    });
    let stream = futures::StreamExt::map(stream, |e: Event| {
        let id = e.id.to_string();
        let kind = e.action.clone();
        let data = serde_json::to_string(&EventView::from(e)).unwrap_or_default();
        Ok(SseEvent::default().id(id).event(kind).data(data))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Every event after `start`, waiting with `pause` when there is none.
fn async_stream_events<F, Fut>(
    state: AppState,
    ws: latchkey_core::ids::WorkspaceId,
    start: Option<String>,
    pause: F,
) -> impl futures::Stream<Item = Event>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let last = start.unwrap_or_default();
    futures::stream::unfold(
        (state, ws, last, std::collections::VecDeque::new(), pause),
        |(state, ws, mut last, mut queue, pause)| async move {
            loop {
                if let Some(e) = queue.pop_front() {
                    return Some((e, (state, ws, last, queue, pause)));
                }
                let after = (!last.is_empty()).then_some(last.as_str());
                match state.store.events_after(&ws, after, 100).await {
                    Ok(batch) if !batch.is_empty() => {
                        last = batch
                            .last()
                            .map(|e: &Event| e.id.to_string())
                            .unwrap_or(last);
                        queue.extend(batch);
                    }
                    Ok(_) => pause().await,
                    Err(e) => {
                        tracing::warn!(error = %e, "the event stream could not read events");
                        pause().await;
                    }
                }
            }
        },
    )
}

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TimelineQuery {
    /// How many events, newest first (1 to 500, default 100).
    pub limit: Option<u32>,
}

/// A connection's timeline: its events, newest first.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/connections/{conn}/events", tag = "events", params(TimelineQuery),
    responses((status = 200, body = List<EventView>), (status = 404, body = ErrorBody)))]
pub async fn connection_events(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, conn)): Path<(String, String)>,
    Query(q): Query<TimelineQuery>,
) -> ApiResult<Json<List<EventView>>> {
    let ws = state.workspace(&caller, &ws, Need::Read).await?;
    let c = crate::directory::find(&state, &ws, &conn).await?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(crate::error::ApiError::invalid(
            "limit",
            "limit must be from 1 to 500",
        ));
    }
    let rows = state
        .store
        .events_of_target(&ws.id, c.id.as_str(), limit)
        .await?;
    let list = List {
        items: rows.into_iter().map(EventView::from).collect(),
        next_cursor: None,
    };
    name_people(&state, list).await
}
