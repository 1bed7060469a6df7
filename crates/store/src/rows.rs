//! Rows as both backends return them, and their conversion to and from the model.

use crate::error::corrupt;
use chrono::{DateTime, Utc};
use latchkey_core::crypto::Sealed;
use latchkey_core::ids::{
    ApiKeyId, ConnectSessionId, ConnectionId, DataKeyId, EventId, FlowId, UserId, WorkspaceId,
};
use latchkey_core::model::{
    ApiKey, ConnectSession, ConnectionRecord, Event, Flow, InstanceEvent, OAuthClientRecord,
    OAuthState, Scope, SessionSubject, TokenMeta, UiSession, Workspace, WrappedDataKey,
};
use latchkey_core::names::{ConnectionName, Environment, FlowName, Slug};
use latchkey_core::StoreError;
use serde_json::{Map, Value};

/// Unix milliseconds, the stored form of every timestamp.
pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_ms(v: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(v).ok_or_else(|| corrupt("timestamp", v))
}

pub(crate) fn opt_from_ms(v: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    v.map(from_ms).transpose()
}

/// Parses a stored text column with the model's own parser.
pub(crate) fn parse<T, E: std::fmt::Display>(
    what: &str,
    s: &str,
    f: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, StoreError> {
    f(s).map_err(|e| corrupt(what, e))
}

/// A sealed value from its two columns, which are both set or both null.
pub(crate) fn sealed(
    what: &str,
    key_id: Option<String>,
    ciphertext: Option<Vec<u8>>,
) -> Result<Option<Sealed>, StoreError> {
    match (key_id, ciphertext) {
        (Some(key_id), Some(ciphertext)) => Ok(Some(Sealed {
            key_id: parse(&format!("{what} key id"), &key_id, DataKeyId::parse)?,
            ciphertext,
        })),
        (None, None) => Ok(None),
        _ => Err(corrupt(what, "key id and ciphertext disagree")),
    }
}

/// The connection a connection borrows its concurrency from, as kept in `borrow_from`.
pub(crate) fn borrow_from(settings: &Map<String, Value>) -> Option<&str> {
    settings
        .get("borrow_concurrency_from")
        .and_then(Value::as_str)
}

/// The page size as SQL wants it.
pub(crate) fn limit(page: &latchkey_core::store::Page) -> i64 {
    i64::from(page.limit)
}

#[derive(sqlx::FromRow)]
pub(crate) struct WorkspaceRow {
    id: String,
    slug: String,
    name: String,
    data_key_id: String,
    branding: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<WorkspaceRow> for Workspace {
    type Error = StoreError;
    fn try_from(r: WorkspaceRow) -> Result<Self, StoreError> {
        Ok(Workspace {
            id: parse("workspace id", &r.id, WorkspaceId::parse)?,
            slug: parse("workspace slug", &r.slug, Slug::parse)?,
            name: r.name,
            data_key_id: parse("data key id", &r.data_key_id, DataKeyId::parse)?,
            branding: r
                .branding
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| corrupt("workspace branding", e))?,
            created_at: from_ms(r.created_at)?,
            updated_at: from_ms(r.updated_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct DataKeyRow {
    id: String,
    master_key_id: String,
    wrapped: Vec<u8>,
    created_at: i64,
}

impl TryFrom<DataKeyRow> for WrappedDataKey {
    type Error = StoreError;
    fn try_from(r: DataKeyRow) -> Result<Self, StoreError> {
        Ok(WrappedDataKey {
            id: parse("data key id", &r.id, DataKeyId::parse)?,
            master_key_id: r.master_key_id,
            wrapped: r.wrapped,
            created_at: from_ms(r.created_at)?,
        })
    }
}

/// The columns [`ConnectionRow`] reads, in a form to paste into a `SELECT`.
pub(crate) const CONNECTION_COLUMNS: &str = "id, workspace_id, name, app, environment, auth_mode, \
     status, status_reason, hint, settings, cred_key_id, cred_ciphertext, token_key_id, \
     token_ciphertext, token_meta, version, created_at, updated_at, verified_at, owner";

#[derive(sqlx::FromRow)]
pub(crate) struct ConnectionRow {
    id: String,
    workspace_id: String,
    name: String,
    app: String,
    environment: String,
    auth_mode: String,
    status: String,
    status_reason: Option<String>,
    hint: Option<String>,
    settings: String,
    cred_key_id: Option<String>,
    cred_ciphertext: Option<Vec<u8>>,
    token_key_id: Option<String>,
    token_ciphertext: Option<Vec<u8>>,
    token_meta: Option<String>,
    version: i64,
    created_at: i64,
    updated_at: i64,
    verified_at: Option<i64>,
    owner: Option<String>,
}

impl TryFrom<ConnectionRow> for ConnectionRecord {
    type Error = StoreError;
    fn try_from(r: ConnectionRow) -> Result<Self, StoreError> {
        let settings = match serde_json::from_str(&r.settings) {
            Ok(Value::Object(map)) => map,
            Ok(other) => return Err(corrupt("connection settings", other)),
            Err(e) => return Err(corrupt("connection settings", e)),
        };
        let token_meta: Option<TokenMeta> = r
            .token_meta
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| corrupt("token meta", e))?;
        Ok(ConnectionRecord {
            id: parse("connection id", &r.id, ConnectionId::parse)?,
            workspace_id: parse("workspace id", &r.workspace_id, WorkspaceId::parse)?,
            name: parse("connection name", &r.name, ConnectionName::parse)?,
            app: r.app,
            environment: parse("environment", &r.environment, Environment::parse)?,
            auth_mode: parse("auth mode", &r.auth_mode, str::parse)?,
            status: parse("connection status", &r.status, str::parse)?,
            status_reason: r.status_reason,
            hint: r.hint,
            settings,
            credentials: sealed("credentials", r.cred_key_id, r.cred_ciphertext)?,
            tokens: sealed("tokens", r.token_key_id, r.token_ciphertext)?,
            token_meta,
            version: r.version,
            created_at: from_ms(r.created_at)?,
            updated_at: from_ms(r.updated_at)?,
            verified_at: opt_from_ms(r.verified_at)?,
            owner: r
                .owner
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| corrupt("connection owner", e))?,
        })
    }
}

/// The columns [`ConnectSessionRow`] reads.
pub(crate) const CONNECT_SESSION_COLUMNS: &str = "id, workspace_id, token_hash, owner, \
     allowed_apps, environment, connection_id, result_connection_id, allowed_origins, \
     created_by, created_at, expires_at, completed_at, cancelled_at";

#[derive(sqlx::FromRow)]
pub(crate) struct ConnectSessionRow {
    id: String,
    workspace_id: String,
    token_hash: String,
    owner: String,
    allowed_apps: String,
    environment: String,
    connection_id: Option<String>,
    result_connection_id: Option<String>,
    allowed_origins: String,
    created_by: String,
    created_at: i64,
    expires_at: i64,
    completed_at: Option<i64>,
    cancelled_at: Option<i64>,
}

impl TryFrom<ConnectSessionRow> for ConnectSession {
    type Error = StoreError;
    fn try_from(r: ConnectSessionRow) -> Result<Self, StoreError> {
        let conn = |what: &str, v: Option<String>| {
            v.as_deref()
                .map(|c| parse(what, c, ConnectionId::parse))
                .transpose()
        };
        Ok(ConnectSession {
            id: parse("connect session id", &r.id, ConnectSessionId::parse)?,
            workspace_id: parse("workspace id", &r.workspace_id, WorkspaceId::parse)?,
            token_hash: r.token_hash,
            owner: serde_json::from_str(&r.owner).map_err(|e| corrupt("session owner", e))?,
            allowed_apps: serde_json::from_str(&r.allowed_apps)
                .map_err(|e| corrupt("allowed apps", e))?,
            environment: parse("environment", &r.environment, Environment::parse)?,
            connection_id: conn("connection id", r.connection_id)?,
            result_connection_id: conn("connection id", r.result_connection_id)?,
            allowed_origins: serde_json::from_str(&r.allowed_origins)
                .map_err(|e| corrupt("allowed origins", e))?,
            created_by: r.created_by,
            created_at: from_ms(r.created_at)?,
            expires_at: from_ms(r.expires_at)?,
            completed_at: opt_from_ms(r.completed_at)?,
            cancelled_at: opt_from_ms(r.cancelled_at)?,
        })
    }
}

/// A flow joined with one of its links (none when the flow has no connections).
#[derive(sqlx::FromRow)]
pub(crate) struct FlowLinkRow {
    id: String,
    workspace_id: String,
    name: String,
    environment: String,
    active: bool,
    created_at: i64,
    updated_at: i64,
    connection_id: Option<String>,
}

/// Folds rows ordered by flow id then link position into flows.
pub(crate) fn fold_flows(rows: Vec<FlowLinkRow>) -> Result<Vec<Flow>, StoreError> {
    let mut flows: Vec<Flow> = Vec::new();
    for r in rows {
        let link = r
            .connection_id
            .as_deref()
            .map(|c| parse("connection id", c, ConnectionId::parse))
            .transpose()?;
        let id = parse("flow id", &r.id, FlowId::parse)?;
        match flows.last_mut() {
            Some(flow) if flow.id == id => flow.connections.extend(link),
            _ => flows.push(Flow {
                id,
                workspace_id: parse("workspace id", &r.workspace_id, WorkspaceId::parse)?,
                name: parse("flow name", &r.name, FlowName::parse)?,
                environment: parse("environment", &r.environment, Environment::parse)?,
                active: r.active,
                connections: link.into_iter().collect(),
                created_at: from_ms(r.created_at)?,
                updated_at: from_ms(r.updated_at)?,
            }),
        }
    }
    Ok(flows)
}

#[derive(sqlx::FromRow)]
pub(crate) struct ApiKeyRow {
    id: String,
    name: String,
    workspace_id: Option<String>,
    scopes: String,
    hash: String,
    prefix: String,
    created_at: i64,
    revoked_at: Option<i64>,
    user_id: Option<String>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;
    fn try_from(r: ApiKeyRow) -> Result<Self, StoreError> {
        let scopes: Vec<Scope> =
            serde_json::from_str(&r.scopes).map_err(|e| corrupt("api key scopes", e))?;
        Ok(ApiKey {
            id: parse("api key id", &r.id, ApiKeyId::parse)?,
            name: r.name,
            workspace_id: r
                .workspace_id
                .as_deref()
                .map(|w| parse("workspace id", w, WorkspaceId::parse))
                .transpose()?,
            user_id: r
                .user_id
                .as_deref()
                .map(|u| parse("user id", u, UserId::parse))
                .transpose()?,
            scopes,
            hash: r.hash,
            prefix: r.prefix,
            created_at: from_ms(r.created_at)?,
            revoked_at: opt_from_ms(r.revoked_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    id: String,
    workspace_id: String,
    at: i64,
    actor: String,
    action: String,
    target_id: Option<String>,
    target_name: Option<String>,
    details: String,
}

impl TryFrom<EventRow> for Event {
    type Error = StoreError;
    fn try_from(r: EventRow) -> Result<Self, StoreError> {
        Ok(Event {
            id: parse("event id", &r.id, EventId::parse)?,
            workspace_id: parse("workspace id", &r.workspace_id, WorkspaceId::parse)?,
            at: from_ms(r.at)?,
            actor: r.actor,
            action: r.action,
            target_id: r.target_id,
            target_name: r.target_name,
            details: serde_json::from_str(&r.details).map_err(|e| corrupt("event details", e))?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct InstanceEventRow {
    id: String,
    at: i64,
    actor: String,
    action: String,
    target_id: Option<String>,
    target_name: Option<String>,
    details: String,
}

impl TryFrom<InstanceEventRow> for InstanceEvent {
    type Error = StoreError;
    fn try_from(r: InstanceEventRow) -> Result<Self, StoreError> {
        Ok(InstanceEvent {
            id: parse("event id", &r.id, EventId::parse)?,
            at: from_ms(r.at)?,
            actor: r.actor,
            action: r.action,
            target_id: r.target_id,
            target_name: r.target_name,
            details: serde_json::from_str(&r.details).map_err(|e| corrupt("event details", e))?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    id_hash: String,
    subject_kind: String,
    subject_id: String,
    csrf_token: String,
    created_at: i64,
    expires_at: i64,
}

impl TryFrom<SessionRow> for UiSession {
    type Error = StoreError;
    fn try_from(r: SessionRow) -> Result<Self, StoreError> {
        Ok(UiSession {
            id_hash: r.id_hash,
            subject: SessionSubject::parse(&r.subject_kind, &r.subject_id)
                .map_err(|e| corrupt("session subject", e))?,
            csrf_token: r.csrf_token,
            created_at: from_ms(r.created_at)?,
            expires_at: from_ms(r.expires_at)?,
        })
    }
}

/// The columns [`OAuthClientRow`] reads.
pub(crate) const OAUTH_CLIENT_COLUMNS: &str =
    "workspace_id, app, client_id, secret_key_id, secret_ciphertext, created_at, updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct OAuthClientRow {
    workspace_id: String,
    app: String,
    client_id: String,
    secret_key_id: Option<String>,
    secret_ciphertext: Option<Vec<u8>>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<OAuthClientRow> for OAuthClientRecord {
    type Error = StoreError;
    fn try_from(r: OAuthClientRow) -> Result<Self, StoreError> {
        Ok(OAuthClientRecord {
            workspace_id: parse("workspace id", &r.workspace_id, WorkspaceId::parse)?,
            app: r.app,
            client_id: r.client_id,
            secret: sealed("oauth client secret", r.secret_key_id, r.secret_ciphertext)?,
            created_at: from_ms(r.created_at)?,
            updated_at: from_ms(r.updated_at)?,
        })
    }
}

/// The columns [`OAuthStateRow`] reads.
pub(crate) const OAUTH_STATE_COLUMNS: &str = "state_hash, workspace_id, connection_id, \
     verifier_key_id, verifier_ciphertext, redirect_uri, created_at, expires_at";

#[derive(sqlx::FromRow)]
pub(crate) struct OAuthStateRow {
    state_hash: String,
    workspace_id: String,
    connection_id: String,
    verifier_key_id: Option<String>,
    verifier_ciphertext: Option<Vec<u8>>,
    redirect_uri: String,
    created_at: i64,
    expires_at: i64,
}

impl TryFrom<OAuthStateRow> for OAuthState {
    type Error = StoreError;
    fn try_from(r: OAuthStateRow) -> Result<Self, StoreError> {
        Ok(OAuthState {
            state_hash: r.state_hash,
            workspace_id: parse("workspace id", &r.workspace_id, WorkspaceId::parse)?,
            connection_id: parse("connection id", &r.connection_id, ConnectionId::parse)?,
            verifier: sealed("oauth verifier", r.verifier_key_id, r.verifier_ciphertext)?,
            redirect_uri: r.redirect_uri,
            created_at: from_ms(r.created_at)?,
            expires_at: from_ms(r.expires_at)?,
        })
    }
}

/// Converts every row, failing on the first that does not decode.
pub(crate) fn convert<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}

/// Serializes JSON for a TEXT column.
pub(crate) fn json_text(v: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::backend(format!("cannot serialize: {e}")))
}

/// Serializes optional JSON for a nullable TEXT column (NULL for `None`).
pub(crate) fn opt_json_text(
    v: Option<&impl serde::Serialize>,
) -> Result<Option<String>, StoreError> {
    v.map(json_text).transpose()
}
