//! The catalog: `GET /v1/apps`, `GET /v1/apps/{app}`, and per workspace with counts (R10).

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::pagination::{self, List, PageQuery};
use crate::state::AppState;
use axum::extract::State;
use latchkey_core::catalog::AppEntry;
use latchkey_core::model::Scope;
use serde::Serialize;
use std::collections::HashMap;

/// A catalog entry, with the number of connections it has when listed inside a workspace.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AppView {
    #[serde(flatten)]
    pub entry: AppEntry,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_count: Option<i64>,
}

fn listed(
    state: &AppState,
    q: &PageQuery,
    counts: Option<&HashMap<String, i64>>,
) -> ApiResult<List<AppView>> {
    let (page, limit) = pagination::page(q.limit, q.cursor.as_deref())?;
    let rows: Vec<&AppEntry> = state
        .catalog
        .iter()
        .filter(|a| {
            page.after
                .as_deref()
                .is_none_or(|after| a.id.as_str() > after)
        })
        .take(page.limit as usize)
        .collect();
    Ok(pagination::finish(
        rows,
        limit,
        |a| a.id.clone(),
        |a| AppView {
            entry: a.clone(),
            connection_count: counts.map(|c| c.get(&a.id).copied().unwrap_or(0)),
        },
    ))
}

/// The catalog of applications.
#[utoipa::path(get, path = "/v1/apps", tag = "apps", params(PageQuery),
    responses((status = 200, body = List<AppView>), (status = 401, body = ErrorBody)))]
pub async fn list_apps(
    State(state): State<AppState>,
    _caller: Caller,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<List<AppView>>> {
    Ok(Json(listed(&state, &q, None)?))
}

/// One catalog entry: auth modes, settings and credential fields, verification.
#[utoipa::path(get, path = "/v1/apps/{app}", tag = "apps",
    responses((status = 200, body = AppView), (status = 404, body = ErrorBody)))]
pub async fn get_app(
    State(state): State<AppState>,
    _caller: Caller,
    Path(app): Path<String>,
) -> ApiResult<Json<AppView>> {
    let entry = state
        .catalog
        .get(&app)
        .ok_or_else(|| ApiError::not_found("application", &app))?;
    Ok(Json(AppView {
        entry: entry.clone(),
        connection_count: None,
    }))
}

/// The catalog with each application's `connection_count` in this workspace (the seeds' green number).
#[utoipa::path(get, path = "/v1/workspaces/{ws}/apps", tag = "apps", params(PageQuery),
    responses((status = 200, body = List<AppView>), (status = 404, body = ErrorBody)))]
pub async fn list_workspace_apps(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<List<AppView>>> {
    let ws = state.workspace(&caller, &ws, Scope::Read).await?;
    let counts: HashMap<String, i64> = state
        .store
        .connection_counts(&ws.id)
        .await?
        .into_iter()
        .collect();
    Ok(Json(listed(&state, &q, Some(&counts))?))
}
