//! Workspaces: the isolation boundary (R7).

use crate::access::Need;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::pagination::{self, List, PageQuery};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use latchkey_core::ids::WorkspaceId;
use latchkey_core::model::{Branding, Workspace};
use latchkey_core::names::Slug;
use latchkey_core::store::{ConnectionFilter, Page};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspace {
    /// Lowercase letters, digits and dashes (`acme`).
    pub slug: String,
    /// A display name; the slug when left out.
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditWorkspace {
    /// A new display name (admin keys only).
    pub name: Option<String>,
    /// How the hosted connect page presents the platform (scope `write`): `display_name`,
    /// `primary_color` (`#rrggbb`), `logo_url` (`https://…`, stored only, or
    /// `data:image/png|jpeg|gif|webp;base64,…`, shown on the page). `null` removes it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Branding>)]
    pub branding: Option<Option<Branding>>,
}

/// Tells a field left out (`None`) from one set to null (`Some(None)`).
fn double_option<'de, D>(d: D) -> Result<Option<Option<Branding>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Option::<Branding>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    /// Delete the workspace even if it still has connections or flows (they go with it).
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkspaceView {
    pub id: String,
    pub slug: String,
    pub name: String,
    /// The connect page's branding, when set.
    pub branding: Option<Branding>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Workspace> for WorkspaceView {
    fn from(w: Workspace) -> Self {
        Self {
            id: w.id.to_string(),
            slug: w.slug.to_string(),
            name: w.name,
            branding: w.branding,
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

fn check_display_name(name: &str) -> ApiResult<String> {
    let n = name.trim();
    if n.is_empty()
        || n.chars().count() > 200
        || n.chars().any(char::is_control)
        || n.chars().all(|c| c == '.')
    {
        return Err(ApiError::invalid(
            "name",
            "a workspace name is 1 to 200 printable characters, not only dots",
        ));
    }
    Ok(n.to_string())
}

/// Creates a workspace with its own data key (admin keys only).
#[utoipa::path(post, path = "/v1/workspaces", tag = "workspaces", request_body = CreateWorkspace,
    responses((status = 201, body = WorkspaceView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_workspace(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateWorkspace>,
) -> ApiResult<(StatusCode, Json<WorkspaceView>)> {
    caller.require_admin()?;
    let slug = Slug::parse(&body.slug)?;
    let name = check_display_name(body.name.as_deref().unwrap_or(slug.as_str()))?;
    let (wrapped, dk) = state.keyring.new_data_key();
    let now = Utc::now();
    let ws = Workspace {
        id: WorkspaceId::generate(),
        slug,
        name,
        data_key_id: wrapped.id.clone(),
        branding: None,
        created_at: now,
        updated_at: now,
    };
    state.store.create_workspace(&ws, &wrapped).await?;
    state.keyring.remember(wrapped.id, dk);
    state
        .audit(
            &ws.id,
            &caller.actor(),
            "workspace.created",
            Some(ws.id.as_str()),
            Some(ws.slug.as_str()),
            json!({}),
        )
        .await;
    Ok((StatusCode::CREATED, Json(ws.into())))
}

/// Workspaces this caller can see (all for an admin, its own for a workspace key, those a
/// person has a role in).
#[utoipa::path(get, path = "/v1/workspaces", tag = "workspaces", params(PageQuery),
    responses((status = 200, body = List<WorkspaceView>)))]
pub async fn list_workspaces(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<List<WorkspaceView>>> {
    let (page, limit) = pagination::page(q.limit, q.cursor.as_deref())?;
    let rows = if let Some(id) = caller.key_workspace() {
        state
            .store
            .workspace_by_id(id)
            .await?
            .into_iter()
            .filter(|w| page.after.as_deref().is_none_or(|a| w.id.as_str() > a))
            .filter(|w| caller.can_see(w))
            .collect()
    } else if caller.is_admin() {
        state.store.list_workspaces(&page).await?
    } else {
        // A person: the workspaces they have a role in.
        let mut ids: Vec<_> = caller
            .person
            .as_ref()
            .map(|p| p.roles.iter().map(|(w, _)| w.clone()).collect())
            .unwrap_or_default();
        ids.sort();
        let mut rows = Vec::new();
        for id in ids
            .into_iter()
            .filter(|w| page.after.as_deref().is_none_or(|a| w.as_str() > a))
            .take(page.limit as usize)
        {
            rows.extend(state.store.workspace_by_id(&id).await?);
        }
        rows
    };
    Ok(Json(pagination::finish(
        rows,
        limit,
        |w| w.id.to_string(),
        WorkspaceView::from,
    )))
}

#[utoipa::path(get, path = "/v1/workspaces/{ws}", tag = "workspaces",
    responses((status = 200, body = WorkspaceView), (status = 404, body = ErrorBody)))]
pub async fn get_workspace(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
) -> ApiResult<Json<WorkspaceView>> {
    Ok(Json(
        state.workspace(&caller, &ws, Need::Read).await?.into(),
    ))
}

/// Renames a workspace (admin keys only; the slug does not change) or sets the branding of its
/// hosted connect page (scope `write`).
#[utoipa::path(patch, path = "/v1/workspaces/{ws}", tag = "workspaces", request_body = EditWorkspace,
    responses((status = 200, body = WorkspaceView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn edit_workspace(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    Json(body): Json<EditWorkspace>,
) -> ApiResult<Json<WorkspaceView>> {
    let mut ws = state.workspace(&caller, &ws, Need::Manage).await?;
    if let Some(name) = &body.name {
        caller.require_admin()?;
        ws.name = check_display_name(name)?;
    }
    let nothing = body.name.is_none() && body.branding.is_none();
    match body.branding {
        Some(Some(b)) => ws.branding = Some(crate::connect::check_branding(&b)?),
        Some(None) => ws.branding = None,
        None => {}
    }
    if nothing {
        return Err(ApiError::invalid("name", "nothing to change")
            .hint("send `name` (admin keys) and/or `branding`"));
    }
    ws.updated_at = Utc::now();
    state.store.update_workspace(&ws).await?;
    state.hot.forget_workspace(&ws.id);
    state
        .audit(
            &ws.id,
            &caller.actor(),
            "workspace.updated",
            Some(ws.id.as_str()),
            Some(ws.slug.as_str()),
            json!({}),
        )
        .await;
    Ok(Json(ws.into()))
}

/// Deletes a workspace. Refused while it has connections or flows unless `force=true`.
#[utoipa::path(delete, path = "/v1/workspaces/{ws}", tag = "workspaces", params(DeleteQuery),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_workspace(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<StatusCode> {
    let ws = state.workspace(&caller, &ws, Need::Manage).await?;
    caller.require_admin()?;
    if !q.force {
        let one = Page {
            limit: 1,
            after: None,
        };
        let has_conns = !state
            .store
            .list_connections(&ws.id, &ConnectionFilter::default(), &one)
            .await?
            .is_empty();
        let has_flows = !state.store.list_flows(&ws.id, &one).await?.is_empty();
        if has_conns || has_flows {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "workspace_not_empty",
                format!("workspace `{}` still has connections or flows", ws.slug),
            )
            .hint("delete them first, or delete with force=true to remove everything in it"));
        }
    }
    state.store.delete_workspace(&ws.id).await?;
    state.hot.forget_workspace(&ws.id);
    tracing::info!(workspace = %ws.id, actor = %caller.actor(), "workspace deleted");
    Ok(StatusCode::NO_CONTENT)
}
