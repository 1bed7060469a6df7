//! Connections: create (verified first), list, show, edit, verify, delete, and the decrypted
//! credentials for callers with the `secrets` scope.

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody, Json, Path, Query};
use crate::pagination::{self, List};
use crate::service::connections::{self as svc, ConnectionView, CreateConnection, EditConnection};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use latchkey_core::model::{AuthMode, ConnectionStatus, Scope};
use latchkey_core::store::ConnectionFilter;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ConnectionQuery {
    /// Only this application's connections.
    pub app: Option<String>,
    /// Only this environment's connections.
    pub environment: Option<String>,
    /// Only connections with this status.
    pub status: Option<ConnectionStatus>,
    /// Only connections made for this end user (through connect sessions).
    pub end_user_id: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The decrypted credential of a connection.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CredentialsView {
    pub id: String,
    pub name: String,
    pub app: String,
    pub auth_mode: AuthMode,
    #[schema(value_type = Object)]
    pub credentials: serde_json::Value,
}

/// The outcome of a re-check.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VerifyView {
    pub ok: bool,
    pub connection: ConnectionView,
}

/// Creates a connection. The credential is checked against the application first (R9): a
/// failed check answers 422 with the application's words and a hint, and stores nothing.
#[utoipa::path(post, path = "/v1/workspaces/{ws}/connections", tag = "connections", request_body = CreateConnection,
    responses((status = 201, body = ConnectionView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(workspace = %ws))]
pub async fn create_connection(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    Json(body): Json<CreateConnection>,
) -> ApiResult<(StatusCode, Json<ConnectionView>)> {
    let ws = state.workspace(&caller, &ws, Scope::Write).await?;
    let built = svc::build(&state, &ws, body, None).await?;
    let conn = built.record;
    state.store.insert_connection(&conn).await?;
    state
        .audit(&ws.id, &caller.actor(), "connection.created", Some(conn.id.as_str()), Some(conn.name.as_str()),
            json!({ "app": conn.app, "auth_mode": conn.auth_mode, "environment": conn.environment, "status": conn.status }))
        .await;
    tracing::info!(connection = %conn.id, app = %conn.app, "connection created");
    let authorize_url = if conn.status == ConnectionStatus::PendingAuthorization {
        let creds = svc::decrypt(&state, &conn).await?;
        let client = crate::oauth::client_for(&state, &ws, &conn.app, &creds).await?;
        Some(crate::oauth::begin_authorization(&state, &ws, &conn, &client).await?)
    } else {
        None
    };
    let mut view = svc::view(&state, conn);
    view.authorize_url = authorize_url;
    view.warnings = built.warnings;
    Ok((StatusCode::CREATED, Json(view)))
}

/// The workspace's connections, filtered and paginated. Never a secret.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/connections", tag = "connections", params(ConnectionQuery),
    responses((status = 200, body = List<ConnectionView>), (status = 404, body = ErrorBody)))]
pub async fn list_connections(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    Query(q): Query<ConnectionQuery>,
) -> ApiResult<Json<List<ConnectionView>>> {
    let ws = state.workspace(&caller, &ws, Scope::Read).await?;
    let (page, limit) = pagination::page(q.limit, q.cursor.as_deref())?;
    let filter = ConnectionFilter {
        app: q.app,
        environment: q.environment,
        status: q.status,
        end_user_id: q.end_user_id,
    };
    let rows = state.store.list_connections(&ws.id, &filter, &page).await?;
    Ok(Json(pagination::finish(
        rows,
        limit,
        |c| c.id.to_string(),
        |c| svc::view(&state, c),
    )))
}

/// One connection, by id or by name.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/connections/{conn}", tag = "connections",
    responses((status = 200, body = ConnectionView), (status = 404, body = ErrorBody)))]
pub async fn get_connection(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, conn)): Path<(String, String)>,
) -> ApiResult<Json<ConnectionView>> {
    let ws = state.workspace(&caller, &ws, Scope::Read).await?;
    let c = svc::find(&state, &ws, &conn).await?;
    Ok(Json(svc::view(&state, c)))
}

/// Edits a connection. Changed credentials or settings are verified again before anything is
/// written (unless `verify` is false); a failed check leaves the stored connection as it was.
#[utoipa::path(patch, path = "/v1/workspaces/{ws}/connections/{conn}", tag = "connections", request_body = EditConnection,
    responses((status = 200, body = ConnectionView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(workspace = %ws, connection = %conn))]
pub async fn edit_connection(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, conn)): Path<(String, String)>,
    Json(body): Json<EditConnection>,
) -> ApiResult<Json<ConnectionView>> {
    let ws = state.workspace(&caller, &ws, Scope::Write).await?;
    let c = svc::find(&state, &ws, &conn).await?;
    let (c, changed) = svc::edit(&state, &ws, c, body).await?;
    if !changed.is_empty() {
        state
            .audit(
                &ws.id,
                &caller.actor(),
                "connection.updated",
                Some(c.id.as_str()),
                Some(c.name.as_str()),
                json!({ "changed": changed, "status": c.status }),
            )
            .await;
    }
    Ok(Json(svc::view(&state, c)))
}

/// Checks a stored connection against the application again and records the outcome in its
/// status (`active`, or `failing` with the reason and a hint).
#[utoipa::path(post, path = "/v1/workspaces/{ws}/connections/{conn}/verify", tag = "connections",
    responses((status = 200, body = VerifyView), (status = 404, body = ErrorBody)))]
pub async fn verify_connection(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, conn)): Path<(String, String)>,
) -> ApiResult<Json<VerifyView>> {
    let ws = state.workspace(&caller, &ws, Scope::Write).await?;
    let c = svc::find(&state, &ws, &conn).await?;
    let (c, ok) = svc::recheck(&state, &ws, c).await?;
    state
        .audit(
            &ws.id,
            &caller.actor(),
            "connection.verified",
            Some(c.id.as_str()),
            Some(c.name.as_str()),
            json!({ "ok": ok, "status": c.status }),
        )
        .await;
    Ok(Json(VerifyView {
        ok,
        connection: svc::view(&state, c),
    }))
}

/// Deletes a connection. Refused (409 `connection_in_use`) while an active flow uses it or
/// another connection borrows its concurrency, naming them.
#[utoipa::path(delete, path = "/v1/workspaces/{ws}/connections/{conn}", tag = "connections",
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_connection(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, conn)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let ws = state.workspace(&caller, &ws, Scope::Write).await?;
    let c = svc::find(&state, &ws, &conn).await?;
    if state.store.delete_connection(&ws.id, &c.id).await? {
        state.forget_connection(&c.id);
        state
            .audit(
                &ws.id,
                &caller.actor(),
                "connection.deleted",
                Some(c.id.as_str()),
                Some(c.name.as_str()),
                json!({ "app": c.app }),
            )
            .await;
        if c.auth_mode.is_oauth() && c.tokens.is_some() {
            let outcome = crate::oauth::revoke_grant(&state, &ws, &c).await;
            state
                .audit(
                    &ws.id,
                    &caller.actor(),
                    "connection.grant_revoked",
                    Some(c.id.as_str()),
                    Some(c.name.as_str()),
                    match outcome {
                        Ok(()) => json!({"ok": true}),
                        Err(e) => json!({"ok": false, "error": e}),
                    },
                )
                .await;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The decrypted credential fields (scope `secrets`). Every read is in the audit log.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/connections/{conn}/credentials", tag = "connections",
    responses((status = 200, body = CredentialsView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_credentials(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, conn)): Path<(String, String)>,
) -> ApiResult<Json<CredentialsView>> {
    let ws = state.workspace(&caller, &ws, Scope::Secrets).await?;
    let c = svc::find(&state, &ws, &conn).await?;
    let creds = svc::decrypt(&state, &c).await?;
    state
        .audit(
            &ws.id,
            &caller.actor(),
            "connection.credentials_read",
            Some(c.id.as_str()),
            Some(c.name.as_str()),
            json!({}),
        )
        .await;
    Ok(Json(CredentialsView {
        id: c.id.to_string(),
        name: c.name.to_string(),
        app: c.app,
        auth_mode: c.auth_mode,
        credentials: creds.reveal_json(),
    }))
}
