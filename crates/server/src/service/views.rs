//! What a connection looks like in answers: its view, its health and its authorization.

use crate::error::ApiResult;
use crate::state::AppState;
use chrono::{DateTime, Utc};
use latchkey_core::model::{
    AuthMode, ConnectionRecord, ConnectionStatus, EndUser, Organization, TokenMeta, Workspace,
};
use serde::Serialize;
use serde_json::{Map, Value};

/// A connection as answered: never a secret value, only the names of the stored secret fields.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectionView {
    pub id: String,
    pub name: String,
    pub app: String,
    pub environment: String,
    pub auth_mode: AuthMode,
    pub status: ConnectionStatus,
    /// Why the connection is failing, revoked or pending.
    pub status_reason: Option<String>,
    /// What to do about it.
    pub hint: Option<String>,
    #[schema(value_type = Object)]
    pub settings: Map<String, Value>,
    /// Names of the stored credential fields (values are never answered here).
    pub credential_fields: Vec<String>,
    pub warnings: Vec<String>,
    pub authorize_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub verified_at: Option<DateTime<Utc>>,
    pub version: i64,
    /// The level the connection's pool runs at now: its `concurrency_level`, or less while the
    /// application's 429 answers keep it lowered (it climbs back by one per quiet interval).
    /// Null for a connection that borrows another's pool, and for databases.
    pub effective_concurrency_level: Option<usize>,
    /// For OAuth connections: who authorized, where the API is, when the token is taken to expire.
    pub authorization: Option<AuthorizationView>,
    /// The platform's end user the connection was made for (through a connect session).
    pub end_user: Option<EndUser>,
    /// The end user's organization, when the session named one.
    pub organization: Option<Organization>,
    /// What the background health checks found (in the answers of get and list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthView>,
}

/// The background checks of a connection.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HealthView {
    /// When the last probe ran.
    pub last_checked_at: Option<DateTime<Utc>>,
    /// When a probe last succeeded.
    pub last_ok_at: Option<DateTime<Utc>>,
    /// Failed probes since the last success.
    pub consecutive_failures: i64,
    /// When the next probe is due; null when probes are off or not placed yet.
    pub next_check_at: Option<DateTime<Utc>>,
    /// What the last failed probe said (null after a success).
    pub last_error: Option<String>,
    /// When the token will be refreshed ahead of its expiry (OAuth connections).
    pub next_refresh_at: Option<DateTime<Utc>>,
}

/// Fills `health` of the views from the store (one query for the lot).
pub async fn add_health(
    state: &AppState,
    ws: &Workspace,
    views: &mut [ConnectionView],
) -> ApiResult<()> {
    let ids: Vec<latchkey_core::ids::ConnectionId> = views
        .iter()
        .filter_map(|v| latchkey_core::ids::ConnectionId::parse(&v.id).ok())
        .collect();
    let rows = state.store.health_of(&ws.id, &ids).await?;
    for v in views.iter_mut() {
        let found = rows.iter().find(|h| {
            h.connection_id
                .as_ref()
                .is_some_and(|id| id.as_str() == v.id)
        });
        v.health = Some(match found {
            Some(h) => HealthView {
                last_checked_at: h.last_checked_at,
                last_ok_at: h.last_ok_at,
                consecutive_failures: h.consecutive_failures,
                next_check_at: h.next_check_at,
                last_error: h.last_error.clone(),
                next_refresh_at: h.refresh_at,
            },
            None => HealthView {
                last_checked_at: None,
                last_ok_at: None,
                consecutive_failures: 0,
                next_check_at: None,
                last_error: None,
                next_refresh_at: None,
            },
        });
    }
    Ok(())
}

/// The non-secret facts of an OAuth connection's grant.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuthorizationView {
    pub username: Option<String>,
    pub user_id: Option<String>,
    pub org_id: Option<String>,
    pub instance_url: Option<String>,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    pub has_refresh_token: bool,
    /// When the user last completed the browser authorization.
    pub authorized_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub refreshed_at: Option<DateTime<Utc>>,
}

impl From<&TokenMeta> for AuthorizationView {
    fn from(m: &TokenMeta) -> Self {
        Self {
            username: m.username.clone(),
            user_id: m.provider_user_id.clone(),
            org_id: m.provider_org_id.clone(),
            instance_url: m.instance_url.clone(),
            scope: m.scope.clone(),
            client_id: m.client_id.clone(),
            has_refresh_token: m.has_refresh_token,
            authorized_at: m.authorized_at,
            expires_at: m.expires_at,
            refreshed_at: m.refreshed_at,
        }
    }
}

/// Builds the answer for a connection. `credential_fields` come from the catalog, so the
/// record need not be decrypted to list them.
pub fn view(state: &AppState, c: ConnectionRecord) -> ConnectionView {
    let credential_fields = match (state.catalog.get(&c.app), &c.credentials) {
        (Some(app), Some(_)) => app
            .credential_fields(c.auth_mode)
            .map(|f| f.name.clone())
            .collect(),
        _ => vec![],
    };
    let shows_reason = matches!(
        c.status,
        ConnectionStatus::Failing
            | ConnectionStatus::Revoked
            | ConnectionStatus::PendingAuthorization
    );
    let effective_concurrency_level = crate::proxy::pool::effective_level_of(&state.pools, &c);
    ConnectionView {
        id: c.id.to_string(),
        name: c.name.to_string(),
        app: c.app,
        environment: c.environment.to_string(),
        auth_mode: c.auth_mode,
        status: c.status,
        status_reason: if shows_reason { c.status_reason } else { None },
        hint: if shows_reason { c.hint } else { None },
        settings: c.settings,
        credential_fields,
        warnings: vec![],
        authorize_url: None,
        created_at: c.created_at,
        updated_at: c.updated_at,
        verified_at: c.verified_at,
        version: c.version,
        effective_concurrency_level,
        authorization: c.token_meta.as_ref().map(AuthorizationView::from),
        health: None,
        end_user: c.owner.as_ref().map(|o| o.end_user.clone()),
        organization: c.owner.and_then(|o| o.organization),
    }
}
