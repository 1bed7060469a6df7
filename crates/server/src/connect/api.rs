//! The end user's side of a connect session: what the hosted connect page calls with the
//! session token (`Authorization: Bearer lkcs_…`). These handlers take [`SessionCaller`] and
//! nothing else; no other handler does.

use super::{complete, SessionCaller};
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path};
use crate::pagination::List;
use crate::routes::apps::AppView;
use crate::service::connections::{self as svc, ConnectionView, CreateConnection, EditConnection};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use latchkey_core::catalog::BORROW_CONCURRENCY_FROM;
use latchkey_core::model::{AuthMode, ConnectionRecord, ConnectionStatus, EndUser, Organization};
use latchkey_core::names::ConnectionName;
use latchkey_core::secret::SecretFields;
use latchkey_core::store::ConnectionChange;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// What the connect page needs to draw itself.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionInfo {
    pub id: String,
    /// The platform's name: the branding's display name, or the workspace's name.
    pub display_name: String,
    /// `#rrggbb`, when the workspace set one.
    pub primary_color: Option<String>,
    /// A `data:` image URL, when the workspace's logo is one (remote logos are not shown, so
    /// that the page loads nothing from elsewhere).
    pub logo_data_url: Option<String>,
    pub end_user: EndUser,
    pub organization: Option<Organization>,
    pub environment: String,
    pub allowed_apps: Vec<String>,
    /// Allowed applications for which the workspace holds an OAuth client: the end user is not
    /// asked for a client id or secret there.
    pub apps_with_oauth_client: Vec<String>,
    /// The connection to re-authorize, for a reconnect session.
    pub reconnect: Option<ConnectionView>,
    /// Where the page sends its `postMessage` (each exactly; never `*`).
    pub allowed_origins: Vec<String>,
    pub expires_at: DateTime<Utc>,
}

/// The session the token stands for, with the workspace's branding.
#[utoipa::path(get, path = "/v1/connect/session", tag = "connect", operation_id = "connect_session_info", security(("connect_session" = [])),
    responses((status = 200, body = SessionInfo), (status = 401, body = ErrorBody)))]
pub async fn session_info(
    State(state): State<AppState>,
    caller: SessionCaller,
) -> ApiResult<Json<SessionInfo>> {
    let s = &caller.session;
    let branding = caller.ws.branding.clone().unwrap_or_default();
    let mut with_client = Vec::new();
    for app in &s.allowed_apps {
        if state.catalog.get(app).is_some_and(|a| a.oauth.is_some())
            && state
                .store
                .oauth_client(&caller.ws.id, app)
                .await?
                .is_some()
        {
            with_client.push(app.clone());
        }
    }
    let reconnect = match &s.connection_id {
        Some(id) => state
            .store
            .connection(&caller.ws.id, id)
            .await?
            .map(|c| svc::view(&state, c)),
        None => None,
    };
    Ok(Json(SessionInfo {
        id: s.id.to_string(),
        display_name: branding
            .display_name
            .clone()
            .unwrap_or_else(|| caller.ws.name.clone()),
        primary_color: branding.primary_color.clone(),
        logo_data_url: branding.logo_url.filter(|u| u.starts_with("data:image/")),
        end_user: s.owner.end_user.clone(),
        organization: s.owner.organization.clone(),
        environment: s.environment.to_string(),
        allowed_apps: s.allowed_apps.clone(),
        apps_with_oauth_client: with_client,
        reconnect,
        allowed_origins: s.allowed_origins.clone(),
        expires_at: s.expires_at,
    }))
}

/// The applications this session may connect (catalog entries with their field descriptions).
#[utoipa::path(get, path = "/v1/connect/apps", tag = "connect", operation_id = "connect_list_apps", security(("connect_session" = [])),
    responses((status = 200, body = List<AppView>), (status = 401, body = ErrorBody)))]
pub async fn list_apps(
    State(state): State<AppState>,
    caller: SessionCaller,
) -> ApiResult<Json<List<AppView>>> {
    let marks = crate::routes::apps::monograms(&state.catalog);
    let items = caller
        .session
        .allowed_apps
        .iter()
        .filter_map(|a| state.catalog.get(a))
        .map(|e| AppView::new(e, None, &marks))
        .collect();
    Ok(Json(List {
        items,
        next_cursor: None,
    }))
}

/// The body of the end user's new connection: the fields of the application's auth mode. The
/// name is chosen by Latchkey unless given; the environment is the session's.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectCreate {
    pub app: String,
    pub auth_mode: Option<AuthMode>,
    pub name: Option<String>,
    /// Must be the session's environment when given.
    pub environment: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub settings: Map<String, Value>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub credentials: SecretFields,
}

/// The end user's changes to the connection being reconnected.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectEdit {
    /// Ignored when it is the connection's own name; a reconnect cannot rename.
    pub name: Option<String>,
    /// Ignored when it is the connection's own environment.
    pub environment: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Map<String, Value>>,
    #[schema(value_type = Option<Object>)]
    pub credentials: Option<SecretFields>,
}

/// End users do not set how a connection shares its concurrency pool: the platform does.
fn end_user_settings(mut settings: Map<String, Value>) -> ApiResult<Map<String, Value>> {
    if settings
        .get(BORROW_CONCURRENCY_FROM)
        .is_some_and(|v| !v.is_null())
    {
        return Err(ApiError::forbidden(
            "a connect session cannot make a connection borrow another's concurrency",
        ));
    }
    settings.remove(BORROW_CONCURRENCY_FROM);
    settings.remove("concurrency_level");
    Ok(settings)
}

/// A connection name for the end user's connection, free in the workspace.
async fn free_name(state: &AppState, caller: &SessionCaller, app: &str) -> ApiResult<String> {
    let who = caller
        .session
        .owner
        .end_user
        .display_name
        .clone()
        .unwrap_or_else(|| caller.session.owner.end_user.id.clone());
    let app_name = state
        .catalog
        .get(app)
        .map(|a| a.name.clone())
        .unwrap_or_else(|| app.to_string());
    let clean: String = format!("{app_name} ({who})")
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.' | '(' | ')') {
                c
            } else {
                '-'
            }
        })
        .take(90)
        .collect();
    let base = clean.trim().to_string();
    for n in 1..=50 {
        let candidate = if n == 1 {
            base.clone()
        } else {
            format!("{base} {n}")
        };
        if ConnectionName::parse(&candidate).is_err() {
            break;
        }
        if state
            .store
            .connection_by_name(&caller.ws.id, &candidate)
            .await?
            .is_none()
        {
            return Ok(candidate);
        }
    }
    Ok(format!(
        "{app} {}",
        &latchkey_core::ids::ConnectionId::generate().as_str()[5..15]
    ))
}

/// Creates the session's one connection for its end user. A credential is verified before it
/// is saved (always); an OAuth authorization-code connection comes back pending with its
/// `authorize_url`. The session is spent once the connection is active.
#[utoipa::path(post, path = "/v1/connect/connections", tag = "connect", operation_id = "connect_create_connection", security(("connect_session" = [])),
    request_body = ConnectCreate,
    responses((status = 201, body = ConnectionView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(session = %caller.session.id))]
pub async fn create_connection(
    State(state): State<AppState>,
    caller: SessionCaller,
    Json(body): Json<ConnectCreate>,
) -> ApiResult<(StatusCode, Json<ConnectionView>)> {
    let s = &caller.session;
    if s.connection_id.is_some() {
        return Err(ApiError::forbidden(
            "this connect session re-authorizes an existing connection; it cannot create another",
        ));
    }
    if !s.allowed_apps.contains(&body.app) {
        return Err(ApiError::forbidden(format!(
            "this connect session does not allow connecting `{}`",
            body.app.chars().take(60).collect::<String>()
        ))
        .hint(format!("choose one of: {}", s.allowed_apps.join(", ")))
        .details(json!({"field": "app"})));
    }
    if let Some(e) = &body.environment {
        if e != s.environment.as_str() {
            return Err(ApiError::forbidden(format!(
                "this connect session makes connections of environment `{}`",
                s.environment
            )));
        }
    }
    if let Some(existing) = &s.result_connection_id {
        if state
            .store
            .connection(&caller.ws.id, existing)
            .await?
            .is_some()
        {
            return Err(ApiError::forbidden(
                "this connect session already made its connection",
            )
            .hint("a session creates one connection; cancel the pending one first to choose another application"));
        }
    }
    let name = match body.name.as_deref().map(str::trim) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => free_name(&state, &caller, &body.app).await?,
    };
    let built = svc::build(
        &state,
        &caller.ws,
        CreateConnection {
            name,
            app: body.app,
            environment: Some(s.environment.to_string()),
            auth_mode: body.auth_mode,
            settings: end_user_settings(body.settings)?,
            credentials: body.credentials,
            verify: Some(true),
        },
        None,
    )
    .await?;
    let mut conn = built.record;
    conn.owner = Some(caller.owner());
    if !state
        .store
        .claim_connect_session_connection(&s.id, &conn.id)
        .await?
    {
        return Err(ApiError::forbidden(
            "this connect session already made its connection",
        ));
    }
    // The connection and its event are one write.
    let created = super::session_event(
        &caller.ws,
        &caller.actor(),
        "connection.created",
        s,
        &conn,
        json!({"auth_mode": conn.auth_mode}),
    );
    state
        .change_connection(ConnectionChange::Insert(&conn), &[created])
        .await?;
    let mut authorize_url = None;
    if conn.status == ConnectionStatus::PendingAuthorization {
        authorize_url = Some(start_authorization(&state, &caller, &conn).await?);
    } else {
        conn = complete(&state, &caller.ws, s, &conn).await?;
    }
    let mut view = svc::view(&state, conn);
    view.authorize_url = authorize_url;
    view.warnings = built.warnings;
    Ok((StatusCode::CREATED, Json(view)))
}

async fn start_authorization(
    state: &AppState,
    caller: &SessionCaller,
    c: &ConnectionRecord,
) -> ApiResult<String> {
    let url = if c.auth_mode == AuthMode::OAuth1 {
        crate::signing::three_legged::begin(state, &caller.ws, c).await?
    } else {
        let creds = svc::decrypt(state, c).await?;
        let client = crate::oauth::client_for(state, &caller.ws, &c.app, &creds).await?;
        crate::oauth::begin_authorization(state, &caller.ws, c, &client).await?
    };
    state
        .audit(
            &caller.ws.id,
            &caller.actor(),
            "connection.authorization_started",
            Some(c.id.as_str()),
            Some(c.name.as_str()),
            json!({"connect_session_id": caller.session.id}),
        )
        .await;
    Ok(url)
}

/// The session's own connection, by id or name; any other answers 404 as if it did not exist.
async fn own(state: &AppState, caller: &SessionCaller, key: &str) -> ApiResult<ConnectionRecord> {
    let found = svc::lookup(state, &caller.ws, key).await?;
    match (found, &caller.session.result_connection_id) {
        (Some(c), Some(mine)) if c.id == *mine => Ok(c),
        _ => Err(ApiError::not_found("connection", key)),
    }
}

/// The session's own connection (its status while the authorization runs).
#[utoipa::path(get, path = "/v1/connect/connections/{conn}", tag = "connect", operation_id = "connect_get_connection", security(("connect_session" = [])),
    responses((status = 200, body = ConnectionView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_connection(
    State(state): State<AppState>,
    caller: SessionCaller,
    Path(conn): Path<String>,
) -> ApiResult<Json<ConnectionView>> {
    Ok(Json(svc::view(&state, own(&state, &caller, &conn).await?)))
}

/// Reconnect with new credentials or settings: checked against the application, and the
/// connection (same id, same flows) is active again. Only for a reconnect session.
#[utoipa::path(patch, path = "/v1/connect/connections/{conn}", tag = "connect", operation_id = "connect_edit_connection", security(("connect_session" = [])),
    request_body = ConnectEdit,
    responses((status = 200, body = ConnectionView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(session = %caller.session.id))]
pub async fn edit_connection(
    State(state): State<AppState>,
    caller: SessionCaller,
    Path(conn): Path<String>,
    Json(body): Json<ConnectEdit>,
) -> ApiResult<Json<ConnectionView>> {
    let c = own(&state, &caller, &conn).await?;
    if caller.session.connection_id.as_ref() != Some(&c.id) {
        return Err(ApiError::forbidden(
            "only a reconnect session changes an existing connection",
        ));
    }
    if body.name.as_deref().is_some_and(|n| n != c.name.as_str())
        || body
            .environment
            .as_deref()
            .is_some_and(|e| e != c.environment.as_str())
    {
        return Err(ApiError::forbidden(
            "a reconnect keeps the connection's name and environment",
        ));
    }
    let settings = body.settings.map(end_user_settings).transpose()?;
    let (c, changed) = svc::edit(
        &state,
        &caller.ws,
        c,
        EditConnection {
            settings,
            credentials: body.credentials,
            verify: Some(true),
            ..Default::default()
        },
        // An end user holds no `secrets` scope: moving the connection somewhere new needs its
        // secret typed again.
        false,
        // The event names the status after the re-check that may follow: recorded below.
        |_, _| vec![],
    )
    .await?;
    let c = if c.status == ConnectionStatus::Active
        || c.auth_mode == AuthMode::OAuth2Code
        || c.auth_mode == AuthMode::OAuth1
    {
        c
    } else {
        svc::recheck(&state, &caller.ws, c, |_, _| vec![]).await?.0
    };
    state
        .audit(
            &caller.ws.id,
            &caller.actor(),
            "connection.updated",
            Some(c.id.as_str()),
            Some(c.name.as_str()),
            json!({"changed": changed, "status": c.status, "connect_session_id": caller.session.id}),
        )
        .await;
    if c.status != ConnectionStatus::Active {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "verification_failed",
            c.status_reason
                .clone()
                .unwrap_or_else(|| "the connection is still not working".into()),
        )
        .hint(
            c.hint
                .clone()
                .unwrap_or_else(|| "enter the current credential and try again".into()),
        ));
    }
    let c = complete(&state, &caller.ws, &caller.session, &c).await?;
    Ok(Json(svc::view(&state, c)))
}

/// Discards the pending connection this session created (the page's Cancel), so that the end
/// user can choose another application. An active connection is never deleted here.
#[utoipa::path(delete, path = "/v1/connect/connections/{conn}", tag = "connect", operation_id = "connect_delete_connection", security(("connect_session" = [])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_connection(
    State(state): State<AppState>,
    caller: SessionCaller,
    Path(conn): Path<String>,
) -> ApiResult<StatusCode> {
    let c = own(&state, &caller, &conn).await?;
    if caller.session.connection_id.is_some() || c.status == ConnectionStatus::Active {
        return Err(ApiError::forbidden(
            "a connect session only discards the pending connection it created",
        ));
    }
    let deleted = super::session_event(
        &caller.ws,
        &caller.actor(),
        "connection.deleted",
        &caller.session,
        &c,
        json!({}),
    );
    let change = ConnectionChange::Delete {
        ws: &caller.ws.id,
        id: &c.id,
    };
    if state.change_connection(change, &[deleted]).await? {
        state.forget_connection(&c.id);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A fresh authorization URL for the session's OAuth connection.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectAuthorize {
    pub authorize_url: String,
    pub expires_in: i64,
    pub connection: ConnectionView,
}

/// Starts (or restarts) the browser authorization of the session's connection.
#[utoipa::path(post, path = "/v1/connect/connections/{conn}/authorize", tag = "connect", operation_id = "connect_authorize", security(("connect_session" = [])),
    responses((status = 200, body = ConnectAuthorize), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn authorize(
    State(state): State<AppState>,
    caller: SessionCaller,
    Path(conn): Path<String>,
) -> ApiResult<Json<ConnectAuthorize>> {
    let c = own(&state, &caller, &conn).await?;
    if c.auth_mode != AuthMode::OAuth2Code && c.auth_mode != AuthMode::OAuth1 {
        return Err(ApiError::invalid(
            "auth_mode",
            format!(
                "this connection uses {}, which needs no browser sign-in",
                c.auth_mode
            ),
        ));
    }
    let url = start_authorization(&state, &caller, &c).await?;
    let mut view = svc::view(&state, c);
    view.authorize_url = Some(url.clone());
    Ok(Json(ConnectAuthorize {
        authorize_url: url,
        expires_in: crate::oauth::STATE_TTL_MINUTES * 60,
        connection: view,
    }))
}
