//! People (instance administrators manage them): local accounts with an argon2id password, and
//! the people single sign-on created. Removing a person revokes their keys and ends their
//! sessions at once.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::pagination::{self, List, PageQuery};
use crate::people::password;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use latchkey_core::ids::UserId;
use latchkey_core::model::{Role, User};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Unique, compared in lower case; the sign-in name for a local password.
    pub email: String,
    /// The name shown in the header and the audit log (the email when left out).
    pub display_name: Option<String>,
    /// A local password (at least 10 characters). Leave it out for a person who signs in only
    /// by single sign-on.
    #[schema(value_type = Option<String>)]
    pub password: Option<String>,
    /// May do everything everywhere (default false).
    #[serde(default)]
    pub instance_admin: bool,
}

impl std::fmt::Debug for CreateUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateUser")
            .field("email", &self.email)
            .field("instance_admin", &self.instance_admin)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditUser {
    pub display_name: Option<String>,
    /// A new local password.
    #[schema(value_type = Option<String>)]
    pub password: Option<String>,
    pub instance_admin: Option<bool>,
}

impl std::fmt::Debug for EditUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EditUser")
            .field("display_name", &self.display_name)
            .field("instance_admin", &self.instance_admin)
            .finish_non_exhaustive()
    }
}

/// A workspace role of a person.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RoleView {
    /// The workspace slug.
    pub workspace: String,
    pub role: Role,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub instance_admin: bool,
    /// Whether the person has a local password (never the password or its hash).
    pub has_password: bool,
    /// Whether the person signed in by single sign-on at least once.
    pub sso: bool,
    pub roles: Vec<RoleView>,
    pub created_at: DateTime<Utc>,
}

pub(crate) async fn view(state: &AppState, u: User) -> ApiResult<UserView> {
    let mut roles = Vec::new();
    for m in state.store.memberships_of(&u.id).await? {
        if let Some(w) = state.store.workspace_by_id(&m.workspace_id).await? {
            roles.push(RoleView {
                workspace: w.slug.to_string(),
                role: m.role,
            });
        }
    }
    Ok(UserView {
        id: u.id.to_string(),
        email: u.email,
        display_name: u.display_name,
        instance_admin: u.instance_admin,
        has_password: u.password_hash.is_some(),
        sso: u.sso_subject.is_some(),
        roles,
        created_at: u.created_at,
    })
}

/// A person by id (`user_…`) or email.
pub(crate) async fn find(state: &AppState, key: &str) -> ApiResult<User> {
    let found = if UserId::looks_like(key) {
        match UserId::parse(key) {
            Ok(id) => state.store.user(&id).await?,
            Err(_) => None,
        }
    } else {
        state.store.user_by_email(key).await?
    };
    found.ok_or_else(|| ApiError::not_found("person", key))
}

fn check_email(email: &str) -> ApiResult<String> {
    let e = email.trim().to_lowercase();
    let ok = e.len() <= 254
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && e.split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty());
    if ok {
        Ok(e)
    } else {
        Err(ApiError::invalid(
            "email",
            "an email looks like `ada@example.com`",
        ))
    }
}

fn check_name(name: &str) -> ApiResult<String> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 100 || n.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "display_name",
            "a display name is 1 to 100 printable characters",
        ));
    }
    Ok(n.to_string())
}

async fn new_hash(password: String) -> ApiResult<String> {
    password::check_new(&password).map_err(|m| ApiError::invalid("password", m.to_string()))?;
    password::hash(password).await.map_err(|e| {
        tracing::error!(error = %e, "password hashing failed");
        ApiError::internal()
    })
}

/// Adds a person.
#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = CreateUser,
    responses((status = 201, body = UserView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateUser>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    caller.require_admin()?;
    let email = check_email(&body.email)?;
    let display_name = check_name(body.display_name.as_deref().unwrap_or(&email))?;
    let password_hash = match body.password {
        Some(p) => Some(new_hash(p).await?),
        None => None,
    };
    let now = Utc::now();
    let user = User {
        id: UserId::generate(),
        display_name,
        email,
        password_hash,
        sso_subject: None,
        instance_admin: body.instance_admin,
        created_at: now,
        updated_at: now,
    };
    state.store.insert_user(&user).await?;
    state
        .audit_instance(
            &caller.actor(),
            "user.created",
            Some(user.id.as_str()),
            Some(&user.email),
            json!({ "instance_admin": user.instance_admin, "password": user.password_hash.is_some() }),
        )
        .await;
    Ok((StatusCode::CREATED, Json(view(&state, user).await?)))
}

#[utoipa::path(get, path = "/v1/users", tag = "users", params(PageQuery),
    responses((status = 200, body = List<UserView>), (status = 403, body = ErrorBody)))]
pub async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<List<UserView>>> {
    caller.require_admin()?;
    let (page, limit) = pagination::page(q.limit, q.cursor.as_deref())?;
    let rows = state.store.list_users(&page).await?;
    let list = pagination::finish(rows, limit, |u| u.id.to_string(), |u| u);
    let mut items = Vec::new();
    for u in list.items {
        items.push(view(&state, u).await?);
    }
    Ok(Json(List {
        items,
        next_cursor: list.next_cursor,
    }))
}

/// A person by id or email.
#[utoipa::path(get, path = "/v1/users/{user}", tag = "users",
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(user): Path<String>,
) -> ApiResult<Json<UserView>> {
    caller.require_admin()?;
    let u = find(&state, &user).await?;
    Ok(Json(view(&state, u).await?))
}

/// Changes a person's display name, password or instance administrator flag.
#[utoipa::path(patch, path = "/v1/users/{user}", tag = "users", request_body = EditUser,
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn edit_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(user): Path<String>,
    Json(body): Json<EditUser>,
) -> ApiResult<Json<UserView>> {
    caller.require_admin()?;
    let mut u = find(&state, &user).await?;
    if body.display_name.is_none() && body.password.is_none() && body.instance_admin.is_none() {
        return Err(ApiError::invalid("display_name", "nothing to change")
            .hint("send `display_name`, `password` and/or `instance_admin`"));
    }
    if let Some(n) = &body.display_name {
        u.display_name = check_name(n)?;
    }
    let password_changed = body.password.is_some();
    if let Some(p) = body.password {
        u.password_hash = Some(new_hash(p).await?);
    }
    if let Some(a) = body.instance_admin {
        if !a && caller.person.as_ref().is_some_and(|p| p.id == u.id) && caller.key.is_none() {
            return Err(ApiError::invalid(
                "instance_admin",
                "you cannot take away your own instance administration",
            )
            .hint("ask another instance administrator"));
        }
        u.instance_admin = a;
    }
    u.updated_at = Utc::now();
    if !state.store.update_user(&u).await? {
        return Err(ApiError::not_found("person", &user));
    }
    state
        .audit_instance(
            &caller.actor(),
            "user.updated",
            Some(u.id.as_str()),
            Some(&u.email),
            json!({ "instance_admin": u.instance_admin, "password_changed": password_changed }),
        )
        .await;
    Ok(Json(view(&state, u).await?))
}

/// Removes a person: their roles go, their keys are revoked and their sessions end, at once.
#[utoipa::path(delete, path = "/v1/users/{user}", tag = "users",
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(user): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let u = find(&state, &user).await?;
    if caller.person.as_ref().is_some_and(|p| p.id == u.id) {
        return Err(ApiError::invalid("user", "you cannot remove yourself")
            .hint("ask another instance administrator"));
    }
    if state.store.delete_user(&u.id, Utc::now()).await? {
        state
            .audit_instance(
                &caller.actor(),
                "user.deleted",
                Some(u.id.as_str()),
                Some(&u.email),
                json!({}),
            )
            .await;
    }
    Ok(StatusCode::NO_CONTENT)
}
