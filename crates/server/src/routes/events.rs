//! The audit log of a workspace.

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody, Json, Path, Query};
use crate::pagination::{self, List, PageQuery};
use crate::state::AppState;
use axum::extract::State;
use chrono::{DateTime, Utc};
use latchkey_core::model::{Event, InstanceEvent, Scope};
use serde::Serialize;

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

impl From<InstanceEvent> for EventView {
    fn from(e: InstanceEvent) -> Self {
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
    Ok(Json(pagination::finish(
        rows,
        limit,
        |e| e.id.to_string(),
        EventView::from,
    )))
}

/// Newest first. Never carries a secret.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/events", tag = "events", params(PageQuery),
    responses((status = 200, body = List<EventView>), (status = 404, body = ErrorBody)))]
pub async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<List<EventView>>> {
    let ws = state.workspace(&caller, &ws, Scope::Read).await?;
    let (page, limit) = pagination::page(q.limit, q.cursor.as_deref())?;
    let rows = state.store.list_events(&ws.id, &page).await?;
    Ok(Json(pagination::finish(
        rows,
        limit,
        |e| e.id.to_string(),
        EventView::from,
    )))
}
