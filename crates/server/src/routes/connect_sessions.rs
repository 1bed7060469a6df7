//! Connect sessions, as the platform manages them with its API key (scope `write`): create one
//! for an end user, inspect it, list them, cancel one. The end user's side is in
//! [`crate::connect`].

use crate::access::Need;
use crate::auth::Caller;
use crate::connect::{self, SessionState};
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::pagination::{self, List, PageQuery};
use crate::service::connections as svc;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use latchkey_core::ids::ConnectSessionId;
use latchkey_core::model::{
    ConnectSession, ConnectionOwner, ConnectionRecord, EndUser, Organization, Workspace,
};
use latchkey_core::names::Environment;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The end user a session is for: the platform's own identifiers, stored on the connection.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndUserBody {
    /// The platform's id of its user (1 to 200 printable characters).
    pub id: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganizationBody {
    /// The platform's id of the customer organization (1 to 200 printable characters).
    pub id: String,
    pub display_name: Option<String>,
}

/// The body that creates a connect session.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConnectSession {
    pub end_user: EndUserBody,
    pub organization: Option<OrganizationBody>,
    /// Catalog ids the end user may choose from (required unless `connection` is given, which
    /// defaults it to that connection's application).
    #[serde(default)]
    pub allowed_apps: Vec<String>,
    /// The environment of the connection made (default `production`; a reconnect keeps the
    /// connection's own).
    pub environment: Option<String>,
    /// Id or name of an existing connection to re-authorize in place (same id).
    pub connection: Option<String>,
    /// Exact origins (`https://app.example.com`; `http://` only for localhost) that may embed
    /// the connect page in a frame and receive its `postMessage`. Empty: the page works only as
    /// a standalone link and tells nobody.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Lifetime of the link, 60 to 86400 seconds (default 1800).
    pub expires_in_seconds: Option<i64>,
}

/// A new session: the token is answered here once and never again.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedConnectSession {
    pub id: String,
    /// The bearer credential of the connect page (`lkcs_…`). Treat it like a password; it is
    /// part of `connect_url`.
    pub token: String,
    /// Open this in the end user's browser (or pass it to `Latchkey.connect` of `/connect/sdk.js`).
    pub connect_url: String,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for CreatedConnectSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedConnectSession")
            .field("id", &self.id)
            .field("token", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

/// A connect session as answered (never its token).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectSessionView {
    pub id: String,
    /// `open`, `completed`, `expired` or `cancelled`.
    pub status: String,
    pub end_user: EndUser,
    pub organization: Option<Organization>,
    pub allowed_apps: Vec<String>,
    pub environment: String,
    /// The connection being re-authorized, for a reconnect session.
    pub reconnect_connection_id: Option<String>,
    /// The connection the session made or re-authorized, once it started one.
    pub connection_id: Option<String>,
    pub allowed_origins: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
}

pub fn session_view(s: ConnectSession) -> ConnectSessionView {
    ConnectSessionView {
        id: s.id.to_string(),
        status: SessionState::of(&s).as_str().to_string(),
        end_user: s.owner.end_user,
        organization: s.owner.organization,
        allowed_apps: s.allowed_apps,
        environment: s.environment.to_string(),
        reconnect_connection_id: s.connection_id.map(|c| c.to_string()),
        connection_id: s.result_connection_id.map(|c| c.to_string()),
        allowed_origins: s.allowed_origins,
        created_at: s.created_at,
        expires_at: s.expires_at,
        completed_at: s.completed_at,
        cancelled_at: s.cancelled_at,
    }
}

fn text(field: &str, v: &str, max: usize) -> ApiResult<String> {
    let t = v.trim();
    if t.is_empty() || t.chars().count() > max || t.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            format!("{field} is 1 to {max} printable characters"),
        ));
    }
    Ok(t.to_string())
}

fn opt_text(field: &str, v: Option<&str>, max: usize) -> ApiResult<Option<String>> {
    match v.map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => text(field, t, max).map(Some),
    }
}

fn owner(body: &CreateConnectSession) -> ApiResult<ConnectionOwner> {
    let email = opt_text("end_user.email", body.end_user.email.as_deref(), 320)?;
    if let Some(e) = &email {
        if !e.contains('@') || e.contains(char::is_whitespace) {
            return Err(ApiError::invalid(
                "end_user.email",
                "end_user.email is not an email address",
            ));
        }
    }
    Ok(ConnectionOwner {
        end_user: EndUser {
            id: text("end_user.id", &body.end_user.id, 200)?,
            email,
            display_name: opt_text(
                "end_user.display_name",
                body.end_user.display_name.as_deref(),
                200,
            )?,
        },
        organization: match &body.organization {
            None => None,
            Some(o) => Some(Organization {
                id: text("organization.id", &o.id, 200)?,
                display_name: opt_text(
                    "organization.display_name",
                    o.display_name.as_deref(),
                    200,
                )?,
            }),
        },
    })
}

/// Starts a connect session for an end user: answers the token and the `connect_url` to open
/// in their browser. Scope `write`.
#[utoipa::path(post, path = "/v1/workspaces/{ws}/connect-sessions", tag = "connect-sessions",
    request_body = CreateConnectSession,
    responses((status = 201, body = CreatedConnectSession), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(workspace = %ws))]
pub async fn create_connect_session(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    Json(body): Json<CreateConnectSession>,
) -> ApiResult<(StatusCode, Json<CreatedConnectSession>)> {
    let ws = state.workspace(&caller, &ws, Need::Manage).await?;
    let owner = owner(&body)?;
    let ttl = session_ttl(body.expires_in_seconds)?;
    let origins = allowed_origins(&body.allowed_origins)?;
    let target = reconnect_target(&state, &ws, body.connection.as_deref()).await?;
    let apps = allowed_apps(&state, &body.allowed_apps)?;
    let environment = session_environment(target.as_ref(), body.environment.as_deref())?;
    let apps = apps_for_target(apps, target.as_ref(), &owner)?;
    let token = connect::generate_token();
    let now = Utc::now();
    let session = ConnectSession {
        id: ConnectSessionId::generate(),
        workspace_id: ws.id.clone(),
        token_hash: connect::hash_token(&token),
        owner,
        allowed_apps: apps,
        environment,
        connection_id: target.as_ref().map(|c| c.id.clone()),
        result_connection_id: target.as_ref().map(|c| c.id.clone()),
        allowed_origins: origins,
        created_by: caller.actor(),
        created_at: now,
        expires_at: now + Duration::seconds(ttl),
        completed_at: None,
        cancelled_at: None,
    };
    state.store.insert_connect_session(&session).await?;
    audit(
        &state,
        &ws,
        &caller.actor(),
        "connect_session.created",
        &session,
    )
    .await;
    let connect_url = format!(
        "{}/connect/{token}",
        state.public_url.as_str().trim_end_matches('/')
    );
    Ok((
        StatusCode::CREATED,
        Json(CreatedConnectSession {
            id: session.id.to_string(),
            token,
            connect_url,
            expires_at: session.expires_at,
        }),
    ))
}

/// The link's lifetime in seconds: the default, or one within the allowed range.
fn session_ttl(asked: Option<i64>) -> ApiResult<i64> {
    let ttl = asked.unwrap_or(connect::DEFAULT_TTL_SECONDS);
    if !(connect::MIN_TTL_SECONDS..=connect::MAX_TTL_SECONDS).contains(&ttl) {
        return Err(ApiError::invalid(
            "expires_in_seconds",
            format!(
                "expires_in_seconds must be from {} to {}",
                connect::MIN_TTL_SECONDS,
                connect::MAX_TTL_SECONDS
            ),
        ));
    }
    Ok(ttl)
}

/// The origins that may embed the connect page: at most 20, each exact, without repeats.
fn allowed_origins(given: &[String]) -> ApiResult<Vec<String>> {
    if given.len() > 20 {
        return Err(ApiError::invalid(
            "allowed_origins",
            "at most 20 allowed origins",
        ));
    }
    let mut origins = Vec::new();
    for o in given {
        let o = connect::parse_origin(o).map_err(|m| {
            ApiError::invalid("allowed_origins", m.to_string())
                .hint("give exact origins such as https://app.example.com (scheme, host and port; no path, no wildcard)")
        })?;
        if !origins.contains(&o) {
            origins.push(o);
        }
    }
    Ok(origins)
}

/// The connection a reconnect session re-authorizes, when one is named: it must exist in the
/// workspace.
async fn reconnect_target(
    state: &AppState,
    ws: &Workspace,
    connection: Option<&str>,
) -> ApiResult<Option<ConnectionRecord>> {
    Ok(match connection {
        None => None,
        Some(key) => Some(svc::lookup(state, ws, key).await?.ok_or_else(|| {
            ApiError::invalid(
                "connection",
                format!("there is no connection `{key}` in this workspace to reconnect"),
            )
        })?),
    })
}

/// The catalog ids the end user may choose from: at most 200, each in the catalog, without
/// repeats.
fn allowed_apps(state: &AppState, given: &[String]) -> ApiResult<Vec<String>> {
    if given.len() > 200 {
        return Err(ApiError::invalid(
            "allowed_apps",
            "at most 200 applications",
        ));
    }
    let mut apps: Vec<String> = Vec::new();
    for a in given {
        let entry = svc::app_entry(state, a).map_err(|e| ApiError {
            details: json!({"field": "allowed_apps", "app": a}),
            ..e
        })?;
        if !apps.contains(&entry.id) {
            apps.push(entry.id.clone());
        }
    }
    Ok(apps)
}

/// The environment of the connection made: a reconnect keeps the connection's own (and refuses
/// another), otherwise the one asked for or `production`.
fn session_environment(
    target: Option<&ConnectionRecord>,
    asked: Option<&str>,
) -> ApiResult<Environment> {
    Ok(match (target, asked) {
        (Some(c), Some(e)) if Environment::parse(e)? != c.environment => {
            return Err(ApiError::invalid(
                "environment",
                format!(
                    "connection `{}` is in environment `{}`, not `{e}`",
                    c.name, c.environment
                ),
            ))
        }
        (Some(c), _) => c.environment.clone(),
        (None, Some(e)) => Environment::parse(e)?,
        (None, None) => Environment::production(),
    })
}

/// The applications of the session: a reconnect is for its connection's application only, and
/// only for the end user the connection was made for; any session offers at least one.
fn apps_for_target(
    mut apps: Vec<String>,
    target: Option<&ConnectionRecord>,
    owner: &ConnectionOwner,
) -> ApiResult<Vec<String>> {
    if let Some(c) = target {
        if apps.is_empty() {
            apps.push(c.app.clone());
        } else if apps != [c.app.clone()] {
            return Err(ApiError::invalid(
                "allowed_apps",
                format!(
                    "a reconnect session is for connection `{}` only: allowed_apps may only name `{}`",
                    c.name, c.app
                ),
            ));
        }
        if let Some(o) = &c.owner {
            if o.end_user.id != owner.end_user.id {
                return Err(ApiError::invalid(
                    "connection",
                    format!("connection `{}` belongs to another end user", c.name),
                )
                .hint("a connection is reconnected by the end user it was made for"));
            }
        }
    }
    if apps.is_empty() {
        return Err(ApiError::invalid(
            "allowed_apps",
            "name at least one application the end user may connect",
        )
        .hint("for example [\"salesforce\", \"hubspot\"]; GET /v1/apps lists them"));
    }
    Ok(apps)
}

async fn audit(state: &AppState, ws: &Workspace, actor: &str, action: &str, s: &ConnectSession) {
    state
        .audit(
            &ws.id,
            actor,
            action,
            Some(s.id.as_str()),
            None,
            json!({
                "end_user": s.owner.end_user,
                "organization": s.owner.organization,
                "allowed_apps": s.allowed_apps,
                "connection_id": s.connection_id,
            }),
        )
        .await;
}

/// The workspace's connect sessions, oldest first. Scope `read`.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/connect-sessions", tag = "connect-sessions", params(PageQuery),
    responses((status = 200, body = List<ConnectSessionView>), (status = 404, body = ErrorBody)))]
pub async fn list_connect_sessions(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<List<ConnectSessionView>>> {
    let ws = state.workspace(&caller, &ws, Need::Read).await?;
    let (page, limit) = pagination::page(q.limit, q.cursor.as_deref())?;
    let rows = state.store.list_connect_sessions(&ws.id, &page).await?;
    Ok(Json(pagination::finish(
        rows,
        limit,
        |s| s.id.to_string(),
        session_view,
    )))
}

async fn find(state: &AppState, ws: &Workspace, id: &str) -> ApiResult<ConnectSession> {
    let parsed = ConnectSessionId::parse(id).ok();
    let found = match parsed {
        Some(i) => state.store.connect_session(&ws.id, &i).await?,
        None => None,
    };
    found.ok_or_else(|| ApiError::not_found("connect session", id))
}

/// One connect session (never its token). Scope `read`.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/connect-sessions/{id}", tag = "connect-sessions",
    responses((status = 200, body = ConnectSessionView), (status = 404, body = ErrorBody)))]
pub async fn get_connect_session(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
) -> ApiResult<Json<ConnectSessionView>> {
    let ws = state.workspace(&caller, &ws, Need::Read).await?;
    Ok(Json(session_view(find(&state, &ws, &id).await?)))
}

/// Cancels a connect session: its link stops working at once. A session that already
/// completed stays completed (its connection is kept). Scope `write`.
#[utoipa::path(delete, path = "/v1/workspaces/{ws}/connect-sessions/{id}", tag = "connect-sessions",
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_connect_session(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let ws = state.workspace(&caller, &ws, Need::Manage).await?;
    let s = find(&state, &ws, &id).await?;
    if state
        .store
        .cancel_connect_session(&ws.id, &s.id, Utc::now())
        .await?
    {
        audit(
            &state,
            &ws,
            &caller.actor(),
            "connect_session.cancelled",
            &s,
        )
        .await;
        return Ok(StatusCode::NO_CONTENT);
    }
    match SessionState::of(&s) {
        SessionState::Completed => Err(ApiError::new(
            StatusCode::CONFLICT,
            "connect_session_completed",
            "this connect session already completed; its connection is kept",
        )
        .hint("delete the connection itself to remove it")),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_session_never_prints_its_token() {
        let token = crate::connect::generate_token();
        let created = CreatedConnectSession {
            id: "cs_x".into(),
            token: token.clone(),
            connect_url: format!("http://x/connect/{token}"),
            expires_at: Utc::now(),
        };
        let printed = format!("{created:?}");
        assert!(!printed.contains(&token[5..]), "{printed}");
        assert!(printed.contains("REDACTED"));
    }
}
