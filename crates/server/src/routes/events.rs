//! The audit log of a workspace.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::pagination::{self, List};
use crate::state::AppState;
use axum::extract::State;
use chrono::{DateTime, Utc};
use latchkey_core::model::{Event, Scope};
use latchkey_core::store::Page;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventView {
    pub id: String,
    pub at: DateTime<Utc>,
    /// The API key that acted (`key_…`), or `system`.
    pub actor: String,
    /// `connection.created`, `connection.verified`, `connection.credentials_read`, `flow.deleted`, …
    pub action: String,
    pub target_id: Option<String>,
    pub target_name: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        Self {
            id: e.id.to_string(),
            at: e.at,
            actor: e.actor,
            action: e.action,
            target_id: e.target_id,
            target_name: e.target_name,
            details: e.details,
        }
    }
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
    /// Only events of this actor (`key_…` or `system`).
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
    let ws = state.workspace(&caller, &ws, Scope::Read).await?;
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
        return Ok(Json(pagination::finish(
            rows,
            limit,
            |e| e.id.to_string(),
            EventView::from,
        )));
    }
    let keep = |e: &Event| {
        action.as_deref().is_none_or(|a| e.action.starts_with(a))
            && target.as_deref().is_none_or(|t| {
                e.target_name.as_deref() == Some(t) || e.target_id.as_deref() == Some(t)
            })
            && actor.as_deref().is_none_or(|a| e.actor == a)
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
        return Ok(Json(pagination::finish(
            found,
            limit,
            |e| e.id.to_string(),
            EventView::from,
        )));
    }
    Ok(Json(List {
        items: found.into_iter().map(EventView::from).collect(),
        next_cursor: if exhausted {
            None
        } else {
            last_seen.map(|k| pagination::encode_cursor(&k))
        },
    }))
}
