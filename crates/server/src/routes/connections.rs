//! Connections: create (verified first), list, show, edit, verify, delete, and the decrypted
//! credentials for callers with the `secrets` scope.

use crate::access::Need;
use crate::auth::{Caller, KeyCaller};
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::pagination::{self, List};
use crate::service::connections::{self as svc, ConnectionView, CreateConnection, EditConnection};
use crate::service::pending::{valid_token, Outcome};
use crate::state::{new_event, AppState};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use latchkey_core::model::{AuthMode, ConnectionStatus};
use latchkey_core::store::{ConnectionChange, ConnectionFilter};
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

/// The header that lets a create be called off while it is checked (see `cancel_create`).
pub const CANCEL_TOKEN_HEADER: &str = "x-latchkey-cancel-token";

/// Creates a connection. The credential is checked against the application first (R9): a
/// failed check answers 422 with the application's words and a hint, and stores nothing.
/// With an `X-Latchkey-Cancel-Token` header (8-128 letters, digits, `-`, `_`), the create can be
/// called off with `DELETE /v1/workspaces/{ws}/connection-requests/{token}`: it then stores
/// nothing (409 `cancelled`), or its connection is deleted again if it was already stored.
/// A create whose client went away before the check finished stores nothing either.
#[utoipa::path(post, path = "/v1/workspaces/{ws}/connections", tag = "connections", request_body = CreateConnection,
    params(("x-latchkey-cancel-token" = Option<String>, Header, description = "A token of the caller's choosing that Cancel can call the create off with")),
    responses((status = 201, body = ConnectionView), (status = 403, body = ErrorBody, description = "`destination_not_allowed`: the workspace OAuth client may not be sent to this token endpoint"), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(workspace = %ws))]
pub async fn create_connection(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    headers: HeaderMap,
    Json(body): Json<CreateConnection>,
) -> ApiResult<(StatusCode, Json<ConnectionView>)> {
    let ws = state.workspace(&caller, &ws, Need::Edit).await?;
    let token = match headers.get(CANCEL_TOKEN_HEADER) {
        None => None,
        Some(v) => match v.to_str().ok().filter(|t| valid_token(t)) {
            Some(t) => Some(t.to_string()),
            None => {
                return Err(ApiError::invalid(
                    CANCEL_TOKEN_HEADER,
                    "the cancel token must be 8 to 128 letters, digits, - or _",
                ))
            }
        },
    };
    if let Some(t) = &token {
        if state.pending.slot(&ws.id, t).lock().await.outcome == Outcome::CalledOff {
            return Err(called_off());
        }
    }
    let built = svc::build(&state, &ws, body, None).await?;
    let conn = built.record;
    // Decided and written under the token's lock: a Cancel either comes before (nothing is
    // stored) or after (it finds the connection and deletes it).
    let guard = match &token {
        Some(t) => {
            let slot = state.pending.slot(&ws.id, t);
            let g = slot.lock_owned().await;
            if g.outcome == Outcome::CalledOff {
                return Err(called_off());
            }
            Some(g)
        }
        None => None,
    };
    // The connection and its `connection.created` event are one write.
    let created = new_event(
        &ws.id,
        &caller.actor(),
        "connection.created",
        Some(conn.id.as_str()),
        Some(conn.name.as_str()),
        json!({ "app": conn.app, "auth_mode": conn.auth_mode, "environment": conn.environment, "status": conn.status }),
    );
    state
        .change_connection(ConnectionChange::Insert(&conn), &[created])
        .await?;
    if let Some(mut g) = guard {
        g.outcome = Outcome::Created(conn.id.clone());
    }
    tracing::info!(connection = %conn.id, app = %conn.app, "connection created");
    let authorize_url = if conn.status == ConnectionStatus::PendingAuthorization
        && conn.auth_mode == AuthMode::OAuth1
    {
        Some(crate::signing::three_legged::begin(&state, &ws, &conn).await?)
    } else if conn.status == ConnectionStatus::PendingAuthorization {
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

fn called_off() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "cancelled",
        "the create was cancelled: nothing was saved",
    )
    .hint("create the connection again when you are ready")
}

/// What a Cancel did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CancelView {
    /// Always true: a create with this token stores nothing from now on.
    pub cancelled: bool,
    /// The connection the create had already stored and that was deleted again, if any.
    pub deleted: Option<String>,
}

/// Calls off a create sent with the `X-Latchkey-Cancel-Token` header `token`: if it is still
/// checking, it will store nothing; if it already stored its connection, that connection is
/// deleted. Calling off a token no create used yet is allowed (the create may not have
/// arrived yet) and makes a later create with it store nothing.
#[utoipa::path(delete, path = "/v1/workspaces/{ws}/connection-requests/{token}", tag = "connections",
    responses((status = 200, body = CancelView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn cancel_create(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, token)): Path<(String, String)>,
) -> ApiResult<Json<CancelView>> {
    let ws = state.workspace(&caller, &ws, Need::Edit).await?;
    if !valid_token(&token) {
        return Err(ApiError::invalid(
            "token",
            "the cancel token must be 8 to 128 letters, digits, - or _",
        ));
    }
    let slot = state.pending.slot(&ws.id, &token);
    let mut g = slot.lock().await;
    let mut deleted = None;
    if let Outcome::Created(id) = &g.outcome {
        if let Some(c) = state.store.connection(&ws.id, id).await? {
            let event = new_event(
                &ws.id,
                &caller.actor(),
                "connection.deleted",
                Some(c.id.as_str()),
                Some(c.name.as_str()),
                json!({ "app": c.app, "cancelled": true }),
            );
            let change = ConnectionChange::Delete {
                ws: &ws.id,
                id: &c.id,
            };
            if state.change_connection(change, &[event]).await? {
                state.forget_connection(&c.id);
                deleted = Some(c.name.to_string());
            }
        }
    }
    g.outcome = Outcome::CalledOff;
    Ok(Json(CancelView {
        cancelled: true,
        deleted,
    }))
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
    let ws = state.workspace(&caller, &ws, Need::Read).await?;
    let (page, limit) = pagination::page(q.limit, q.cursor.as_deref())?;
    let filter = ConnectionFilter {
        app: q.app,
        environment: q.environment,
        status: q.status,
        end_user_id: q.end_user_id,
    };
    let rows = state.store.list_connections(&ws.id, &filter, &page).await?;
    let mut list = pagination::finish(rows, limit, |c| c.id.to_string(), |c| svc::view(&state, c));
    svc::add_health(&state, &ws, &mut list.items).await?;
    Ok(Json(list))
}

/// One connection, by id or by name.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/connections/{conn}", tag = "connections",
    responses((status = 200, body = ConnectionView), (status = 404, body = ErrorBody)))]
pub async fn get_connection(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, conn)): Path<(String, String)>,
) -> ApiResult<Json<ConnectionView>> {
    let ws = state.workspace(&caller, &ws, Need::Read).await?;
    let c = svc::find(&state, &ws, &conn).await?;
    let mut v = [svc::view(&state, c)];
    svc::add_health(&state, &ws, &mut v).await?;
    let [v] = v;
    Ok(Json(v))
}

/// Edits a connection. Changed credentials or settings are verified again before anything is
/// written (unless `verify` is false); a failed check leaves the stored connection as it was.
#[utoipa::path(patch, path = "/v1/workspaces/{ws}/connections/{conn}", tag = "connections", request_body = EditConnection,
    responses((status = 200, body = ConnectionView), (status = 403, body = ErrorBody, description = "`destination_change_requires_secrets`: the edit would send the secret material somewhere new; it needs the `secrets` scope or the secret fields sent again"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(workspace = %ws, connection = %conn))]
pub async fn edit_connection(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, conn)): Path<(String, String)>,
    Json(body): Json<EditConnection>,
) -> ApiResult<Json<ConnectionView>> {
    let ws = state.workspace(&caller, &ws, Need::Edit).await?;
    let c = svc::find(&state, &ws, &conn).await?;
    let holds_secrets = caller.allows(&ws.id, Need::Secrets);
    let interval_before = c
        .settings
        .get(crate::background::health::INTERVAL_SETTING)
        .cloned();
    let actor = caller.actor();
    // Written with the change itself (only when something changed).
    let updated = |c: &latchkey_core::model::ConnectionRecord, changed: &[&str]| {
        vec![new_event(
            &ws.id,
            &actor,
            "connection.updated",
            Some(c.id.as_str()),
            Some(c.name.as_str()),
            json!({ "changed": changed, "status": c.status }),
        )]
    };
    let (c, _changed) = svc::edit(&state, &ws, c, body, holds_secrets, updated).await?;
    if c.settings.get(crate::background::health::INTERVAL_SETTING) != interval_before.as_ref() {
        state.store.replace_probe(&c.id).await?;
    }
    Ok(Json(svc::view(&state, c)))
}

/// Checks a stored connection against the application again and records the outcome in its
/// status (`active`, or `failing` with the reason and a hint).
#[utoipa::path(post, path = "/v1/workspaces/{ws}/connections/{conn}/verify", tag = "connections",
    responses((status = 200, body = VerifyView), (status = 403, body = ErrorBody, description = "`destination_change_requires_secrets`: the connection's settings lead where its secret material is not bound"), (status = 404, body = ErrorBody)))]
pub async fn verify_connection(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, conn)): Path<(String, String)>,
) -> ApiResult<Json<VerifyView>> {
    let ws = state.workspace(&caller, &ws, Need::Edit).await?;
    let c = svc::find(&state, &ws, &conn).await?;
    let holds_secrets = caller.allows(&ws.id, Need::Secrets);
    let c = crate::destinations::guard(&state, &ws, &c, holds_secrets)
        .await?
        .unwrap_or(c);
    let before = c.status;
    let actor = caller.actor();
    // The outcome's status and its events are one write.
    let events = |c: &latchkey_core::model::ConnectionRecord, ok: bool| {
        let mut events: Vec<_> = crate::background::status_event(&ws, before, c, "verify")
            .into_iter()
            .collect();
        events.push(new_event(
            &ws.id,
            &actor,
            "connection.verified",
            Some(c.id.as_str()),
            Some(c.name.as_str()),
            json!({ "ok": ok, "status": c.status }),
        ));
        events
    };
    let (c, ok) = svc::recheck(&state, &ws, c, events).await?;
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
    let ws = state.workspace(&caller, &ws, Need::Manage).await?;
    let c = svc::find(&state, &ws, &conn).await?;
    let event = new_event(
        &ws.id,
        &caller.actor(),
        "connection.deleted",
        Some(c.id.as_str()),
        Some(c.name.as_str()),
        json!({ "app": c.app }),
    );
    let change = ConnectionChange::Delete {
        ws: &ws.id,
        id: &c.id,
    };
    // The deletion and its event are one write.
    let removed = match state.change_connection(change, &[event]).await {
        Ok(r) => r,
        Err(e) => {
            let e = ApiError::from(e);
            if e.status == StatusCode::CONFLICT {
                // The refusal is recorded: who tried, and why it was refused.
                state
                    .audit(
                        &ws.id,
                        &caller.actor(),
                        "connection.delete_refused",
                        Some(c.id.as_str()),
                        Some(c.name.as_str()),
                        json!({ "app": c.app, "reason": e.message }),
                    )
                    .await;
            }
            return Err(e);
        }
    };
    if removed {
        state.forget_connection(&c.id);
        if c.auth_mode.is_oauth() && c.tokens.is_some() {
            let outcome = crate::oauth::tokens::revoke_grant(&state, &ws, &c).await;
            state
                .audit(
                    &ws.id,
                    &caller.actor(),
                    "connection.grant_revoked",
                    Some(c.id.as_str()),
                    Some(c.name.as_str()),
                    match outcome {
                        Ok(()) => json!({"ok": true}),
                        Err(e) => json!({"ok": false, "error": e.to_string()}),
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
    KeyCaller(caller): KeyCaller,
    Path((ws, conn)): Path<(String, String)>,
) -> ApiResult<Json<CredentialsView>> {
    let ws = state.workspace(&caller, &ws, Need::Secrets).await?;
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
