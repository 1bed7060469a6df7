//! A workspace's members and their roles. Anyone who may read the workspace sees its members;
//! owners (and instance administrators) add, change and remove them.

use crate::access::Need;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::pagination::{self, List, PageQuery};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use latchkey_core::model::{Membership, Role, Workspace};
use latchkey_core::store::Page;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutMember {
    pub role: Role,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MemberView {
    pub user_id: String,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub since: DateTime<Utc>,
}

async fn view(state: &AppState, m: Membership) -> ApiResult<Option<MemberView>> {
    Ok(state.store.user(&m.user_id).await?.map(|u| MemberView {
        user_id: u.id.to_string(),
        email: u.email,
        display_name: u.display_name,
        role: m.role,
        since: m.created_at,
    }))
}

#[utoipa::path(get, path = "/v1/workspaces/{ws}/members", tag = "members", params(PageQuery),
    responses((status = 200, body = List<MemberView>), (status = 404, body = ErrorBody)))]
pub async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<List<MemberView>>> {
    let ws = state.workspace(&caller, &ws, Need::Read).await?;
    let (page, limit) = pagination::page(q.limit, q.cursor.as_deref())?;
    let rows = state.store.list_members(&ws.id, &page).await?;
    let list = pagination::finish(rows, limit, |m| m.user_id.to_string(), |m| m);
    let mut items = Vec::new();
    for m in list.items {
        items.extend(view(&state, m).await?);
    }
    Ok(Json(List {
        items,
        next_cursor: list.next_cursor,
    }))
}

/// Refuses a change that would leave the workspace without an owner, unless an instance
/// administrator makes it (they can always put one back).
async fn keeps_an_owner(
    state: &AppState,
    caller: &Caller,
    ws: &Workspace,
    changed: &Membership,
) -> ApiResult<()> {
    if caller.is_admin() || changed.role != Role::Owner {
        return Ok(());
    }
    let all = state
        .store
        .list_members(
            &ws.id,
            &Page {
                limit: 10_000,
                after: None,
            },
        )
        .await?;
    let others = all
        .iter()
        .filter(|m| m.role == Role::Owner && m.user_id != changed.user_id)
        .count();
    if others == 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "last_owner",
            format!("this would leave workspace `{}` without an owner", ws.slug),
        )
        .hint("make someone else owner first"));
    }
    Ok(())
}

/// Gives a person (id or email) a role in the workspace, or changes the role they have.
#[utoipa::path(put, path = "/v1/workspaces/{ws}/members/{user}", tag = "members", request_body = PutMember,
    responses((status = 200, body = MemberView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, user)): Path<(String, String)>,
    Json(body): Json<PutMember>,
) -> ApiResult<Json<MemberView>> {
    let ws = state.workspace(&caller, &ws, Need::Members).await?;
    let u = super::users::find(&state, &user).await?;
    let before = state.store.membership(&ws.id, &u.id).await?;
    if let Some(b) = &before {
        if body.role != Role::Owner {
            keeps_an_owner(&state, &caller, &ws, b).await?;
        }
    }
    let m = Membership {
        workspace_id: ws.id.clone(),
        user_id: u.id.clone(),
        role: body.role,
        created_at: before
            .as_ref()
            .map(|b| b.created_at)
            .unwrap_or_else(Utc::now),
    };
    state.store.put_membership(&m).await?;
    state
        .audit(
            &ws.id,
            &caller.actor(),
            "member.role_set",
            Some(u.id.as_str()),
            Some(&u.email),
            json!({ "role": m.role, "previous_role": before.map(|b| b.role) }),
        )
        .await;
    view(&state, m)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("person", &user))
}

/// Takes a person's role in the workspace away (their keys for it stop working at once).
#[utoipa::path(delete, path = "/v1/workspaces/{ws}/members/{user}", tag = "members",
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, user)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let ws = state.workspace(&caller, &ws, Need::Members).await?;
    let u = super::users::find(&state, &user).await?;
    let Some(before) = state.store.membership(&ws.id, &u.id).await? else {
        return Err(ApiError::not_found("member", &user));
    };
    keeps_an_owner(&state, &caller, &ws, &before).await?;
    if state.store.delete_membership(&ws.id, &u.id).await? {
        state
            .audit(
                &ws.id,
                &caller.actor(),
                "member.removed",
                Some(u.id.as_str()),
                Some(&u.email),
                json!({ "previous_role": before.role }),
            )
            .await;
    }
    Ok(StatusCode::NO_CONTENT)
}
