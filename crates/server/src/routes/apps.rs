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
    /// `salesforce`, `generic-api-key`, …
    pub id: String,
    pub name: String,
    pub description: String,
    pub category: String,
    pub auth_modes: Vec<latchkey_core::model::AuthMode>,
    /// The API base when it is fixed; otherwise the `base_url` setting holds it.
    pub base_url: Option<String>,
    /// The settings a connection takes (besides `concurrency_level` and `borrow_concurrency_from`).
    pub settings: Vec<latchkey_core::catalog::FieldSpec>,
    /// The credential fields, each with the auth modes it applies to.
    pub credentials: Vec<latchkey_core::catalog::FieldSpec>,
    pub verify: Option<latchkey_core::catalog::VerifySpec>,
    pub oauth: Option<latchkey_core::catalog::OAuthSpec>,
    pub docs_url: Option<String>,
    /// Connections of this application in the workspace (the seeds' green number).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_count: Option<i64>,
}

impl AppView {
    pub(crate) fn new(e: &AppEntry, connection_count: Option<i64>) -> Self {
        Self {
            id: e.id.clone(),
            name: e.name.clone(),
            description: e.description.clone(),
            category: e.category.clone(),
            auth_modes: e.auth_modes.clone(),
            base_url: e.base_url.clone(),
            settings: e.settings.clone(),
            credentials: e.credentials.clone(),
            verify: e.verify.clone(),
            oauth: e.oauth.clone(),
            docs_url: e.docs_url.clone(),
            connection_count,
        }
    }
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
        |a| AppView::new(a, counts.map(|c| c.get(&a.id).copied().unwrap_or(0))),
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
    Ok(Json(AppView::new(entry, None)))
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
