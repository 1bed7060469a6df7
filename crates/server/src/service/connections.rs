//! Connections: building a new one from a create body (validated against the catalog, verified,
//! encrypted), editing, verifying, and the view answered to callers (never a secret).

use crate::destinations;
use crate::error::{ApiError, ApiResult};
use crate::oauth::{
    self,
    provider::{self, Provider},
};
use crate::state::AppState;
use crate::verify;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use latchkey_core::catalog::{AppEntry, FieldType, BORROW_CONCURRENCY_FROM};
use latchkey_core::ids::ConnectionId;
use latchkey_core::model::{
    AuthMode, ConnectionRecord, ConnectionStatus, EndUser, Event, Organization, TokenMeta,
    Workspace,
};
use latchkey_core::names::{ConnectionName, Environment};
use latchkey_core::secret::SecretFields;
use latchkey_core::store::ConnectionChange;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The body that creates a connection.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConnection {
    /// Unique in the workspace; shown everywhere (letters, digits, spaces, `- _ . ( )`).
    pub name: String,
    /// A catalog id (`generic-api-key`, `postgres`, …).
    pub app: String,
    /// Default `production`.
    pub environment: Option<String>,
    /// One of the application's auth modes; may be left out when it has only one.
    pub auth_mode: Option<AuthMode>,
    /// Application settings plus `concurrency_level` (1-25, default 5) and
    /// `borrow_concurrency_from` (id or name of a connection in the same workspace).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub settings: Map<String, Value>,
    /// Secret fields of the auth mode (`api_key`; `username`+`password`; `host`, `port`,
    /// `database`, `username`, `password`; for `sftp`: `host`, `port`, `username`, and
    /// `password` and/or `private_key`; …). Encrypted before they are stored; never answered.
    /// An `oauth2_code` connection may also take `access_token`, `refresh_token` and
    /// `expires_at` (RFC 3339 or epoch seconds): an existing grant, imported without a browser
    /// step (checked by the verification request or a refresh; a dead refresh token saves the
    /// connection `revoked` with a hint).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub credentials: SecretFields,
    /// Check the credential against the application before saving (default true). When false,
    /// the connection is saved as `unverified`.
    pub verify: Option<bool>,
}

/// The body that edits a connection. Settings and credentials are merged onto the stored ones
/// (a `null` setting removes it); a change to either is verified again unless `verify` is false.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditConnection {
    pub name: Option<String>,
    pub environment: Option<String>,
    pub auth_mode: Option<AuthMode>,
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Map<String, Value>>,
    #[schema(value_type = Option<Object>)]
    pub credentials: Option<SecretFields>,
    pub verify: Option<bool>,
}

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
    let effective_concurrency_level = crate::proxy::effective_level_of(state, &c);
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

pub fn app_entry<'a>(state: &'a AppState, id: &str) -> ApiResult<&'a AppEntry> {
    state.catalog.get(id).ok_or_else(|| {
        let known: Vec<&str> = state.catalog.iter().map(|a| a.id.as_str()).collect();
        ApiError::invalid(
            "app",
            format!("there is no application `{id}` in the catalog"),
        )
        .hint(format!("the catalog has: {}", known.join(", ")))
    })
}

fn check_mode(app: &AppEntry, mode: Option<AuthMode>) -> ApiResult<AuthMode> {
    let allowed: Vec<&str> = app.auth_modes.iter().map(|m| m.as_str()).collect();
    let mode = match mode {
        Some(m) => m,
        None if app.auth_modes.len() == 1 => app.auth_modes[0],
        None => {
            return Err(ApiError::invalid(
                "auth_mode",
                format!("`{}` takes several auth modes; say which", app.id),
            )
            .hint(format!("set auth_mode to one of: {}", allowed.join(", "))))
        }
    };
    if !app.auth_modes.contains(&mode) {
        return Err(ApiError::invalid(
            "auth_mode",
            format!("`{}` connections cannot use auth mode `{mode}`", app.id),
        )
        .hint(format!("`{}` takes: {}", app.id, allowed.join(", "))));
    }
    Ok(mode)
}

/// The credential fields of a database login that are not secret (host, port, database, user
/// name): everything but the password. They are shown in errors and in the connection's
/// settings; only the password is kept out of sight.
fn public_login_fields(app: &AppEntry, mode: AuthMode) -> Vec<(String, FieldType)> {
    if !mode.is_direct() {
        return vec![];
    }
    app.credential_fields(mode)
        .filter(|f| !matches!(f.kind, FieldType::Secret | FieldType::SecretText))
        .map(|f| (f.name.clone(), f.kind))
        .collect()
}

/// Takes the database login fields a body gave in `settings` into the credentials (where they
/// are verified and sealed with the password). A value given in both places must agree.
fn lift_login_fields(
    app: &AppEntry,
    mode: AuthMode,
    settings: &mut Map<String, Value>,
    creds: &mut SecretFields,
) -> ApiResult<()> {
    for (name, _) in public_login_fields(app, mode) {
        let Some(v) = settings.remove(&name) else {
            continue;
        };
        let text = match &v {
            Value::Null => continue,
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => {
                return Err(ApiError::invalid(
                    &format!("settings.{name}"),
                    format!("{name} must be a string or a number"),
                ))
            }
        };
        match creds.expose(&name) {
            Some(given) if given != text => {
                return Err(ApiError::invalid(
                    &format!("settings.{name}"),
                    format!(
                    "{name} is given twice, in settings and in credentials, with different values"
                ),
                )
                .hint("give it once"))
            }
            _ => creds.insert(name, text.into()),
        }
    }
    Ok(())
}

/// Copies the database login fields (never the password) into the settings that are answered.
fn show_login_fields(
    app: &AppEntry,
    mode: AuthMode,
    settings: &mut Map<String, Value>,
    creds: &SecretFields,
) {
    for (name, kind) in public_login_fields(app, mode) {
        let Some(v) = creds.expose(&name) else {
            continue;
        };
        let shown = match kind {
            FieldType::Integer => v
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::from(v)),
            _ => Value::from(v),
        };
        settings.insert(name, shown);
    }
}

/// Finds `{conn}`: an id (`conn_…`) or a name, inside the workspace only.
pub async fn find(state: &AppState, ws: &Workspace, key: &str) -> ApiResult<ConnectionRecord> {
    lookup(state, ws, key)
        .await?
        .ok_or_else(|| ApiError::not_found("connection", key))
}

/// The connection `key` (id or name) of the workspace, if there is one.
pub async fn lookup(
    state: &AppState,
    ws: &Workspace,
    key: &str,
) -> ApiResult<Option<ConnectionRecord>> {
    Ok(if ConnectionId::looks_like(key) {
        match ConnectionId::parse(key) {
            Ok(id) => state.store.connection(&ws.id, &id).await?,
            Err(_) => None,
        }
    } else {
        state.store.connection_by_name(&ws.id, key).await?
    })
}

/// Resolves `borrow_concurrency_from` (id or name) to the lender's id, enforcing R3's rules: the
/// lender is in the same workspace, is not the connection itself, and does not borrow in turn.
async fn resolve_lender(
    state: &AppState,
    ws: &Workspace,
    settings: &mut Map<String, Value>,
    this: Option<&ConnectionId>,
) -> ApiResult<()> {
    let Some(Value::String(key)) = settings.get(BORROW_CONCURRENCY_FROM).cloned() else {
        return Ok(());
    };
    let lender = find(state, ws, &key).await.map_err(|_| {
        ApiError::invalid(
            "settings.borrow_concurrency_from",
            format!("there is no connection `{key}` in this workspace to borrow concurrency from"),
        )
    })?;
    if lender.auth_mode.is_direct() {
        let kind = if lender.auth_mode == AuthMode::Sftp {
            "an SFTP"
        } else {
            "a database"
        };
        return Err(ApiError::invalid(
            "settings.borrow_concurrency_from",
            format!(
                "`{}` is {kind} connection: it has no concurrency to lend",
                lender.name
            ),
        )
        .hint("Latchkey does not proxy databases or SFTP servers; borrow from a connection to an API instead"));
    }
    if Some(&lender.id) == this {
        return Err(ApiError::invalid(
            "settings.borrow_concurrency_from",
            "a connection cannot borrow concurrency from itself",
        ));
    }
    if let Some(Value::String(further)) = lender.settings.get(BORROW_CONCURRENCY_FROM) {
        return Err(ApiError::invalid(
            "settings.borrow_concurrency_from",
            format!("`{}` itself borrows concurrency (from {further}); borrow from that connection instead", lender.name),
        ));
    }
    if let Some(id) = this {
        let borrowers = state.store.borrowers_of(&ws.id, id).await?;
        if !borrowers.is_empty() {
            let names: Vec<String> = borrowers.iter().map(|b| b.name.to_string()).collect();
            return Err(ApiError::invalid(
                "settings.borrow_concurrency_from",
                format!(
                    "other connections borrow from this one ({}); a lender cannot borrow in turn",
                    names.join(", ")
                ),
            ));
        }
    }
    settings.insert(
        BORROW_CONCURRENCY_FROM.into(),
        Value::String(lender.id.to_string()),
    );
    Ok(())
}

/// A new connection ready to be stored, with what the caller should be told.
pub struct Built {
    pub record: ConnectionRecord,
    pub warnings: Vec<String>,
}

/// Validates, verifies and encrypts a new connection. Nothing is stored here: the caller
/// inserts it (alone, or with a flow in one transaction). An `oauth2_code` connection comes
/// back `pending_authorization`: the caller starts its authorization once it is stored.
pub async fn build(
    state: &AppState,
    ws: &Workspace,
    mut body: CreateConnection,
    default_env: Option<&Environment>,
) -> ApiResult<Built> {
    let name = ConnectionName::parse(&body.name)?;
    let app = app_entry(state, &body.app)?;
    let mode = check_mode(app, body.auth_mode)?;
    let imported = crate::oauth::import::take(mode, &mut body.credentials)?;
    let environment = match &body.environment {
        Some(e) => Environment::parse(e)?,
        None => match default_env {
            Some(e) => e.clone(),
            // A sandbox account is not production: without a word, it goes under `sandbox`.
            None if body.settings.get("account_type").and_then(Value::as_str)
                == Some("sandbox") =>
            {
                Environment::parse("sandbox")?
            }
            None => Environment::production(),
        },
    };
    let mut input = body.settings;
    let mut credentials = body.credentials;
    lift_login_fields(app, mode, &mut input, &mut credentials)?;
    let mut settings = app.validate_settings(mode, &input)?;
    crate::inject::check_settings(mode, &settings)?;
    crate::signing::check_settings(mode, &settings)?;
    app.validate_credentials(mode, &credentials, false)?;
    oauth::token_exchange::check_credentials(app, mode, &credentials)?;
    verify::check_fields(app, &settings, &credentials, false)?;
    resolve_lender(state, ws, &mut settings, None).await?;
    show_login_fields(app, mode, &mut settings, &credentials);
    if state
        .store
        .connection_by_name(&ws.id, name.as_str())
        .await?
        .is_some()
    {
        return Err(latchkey_core::StoreError::Duplicate {
            constraint: "connection_name".into(),
        }
        .into());
    }
    let check = body.verify.unwrap_or(true);
    let id = ConnectionId::generate();
    let now = Utc::now();
    let mut record = ConnectionRecord {
        id: id.clone(),
        workspace_id: ws.id.clone(),
        name,
        app: app.id.clone(),
        environment,
        auth_mode: mode,
        status: if check {
            ConnectionStatus::Active
        } else {
            ConnectionStatus::Unverified
        },
        status_reason: None,
        hint: None,
        settings,
        credentials: None,
        tokens: None,
        token_meta: None,
        version: 1,
        created_at: now,
        updated_at: now,
        verified_at: check.then_some(now),
        owner: None,
    };
    let bound = destinations::of(app, mode, &record.settings, &credentials)?;
    let mut warnings = Vec::new();
    if mode.is_oauth() {
        let provider = Provider::for_connection(app, mode, &record.settings)?;
        let client = oauth::client_for(state, ws, &app.id, &credentials).await?;
        oauth::check_client_destination(&client, &provider)?;
        if let Some(grant) = imported {
            crate::oauth::import::apply(
                state,
                ws,
                app,
                &mut record,
                &provider,
                &client,
                grant,
                check,
            )
            .await?;
        } else if mode == AuthMode::OAuth2Code {
            record.status = ConnectionStatus::PendingAuthorization;
            record.status_reason = Some("waiting for the browser authorization".into());
            record.hint = Some("open the authorization link in a browser and sign in; the connection becomes active when you return".into());
            record.verified_at = None;
            if !provider.asks_refresh_token() {
                warnings.push("the scopes do not include refresh_token (or offline_access): Salesforce will issue no refresh token, and the connection will stop working when its session ends".into());
            }
            if provider::is_salesforce(app) {
                warnings
                    .extend(oauth::approvals::warnings_before(state, ws, &client.client_id).await);
            }
        } else if check {
            let tokens = oauth::first_grant(state, &provider, mode, &client, &credentials)
                .await
                .map_err(|e| oauth::grant_failure(state, &e))?;
            let checked = oauth::check(state, app, &record.settings, &provider, &tokens)
                .await
                .map_err(|(message, hint)| {
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "verification_failed",
                        message,
                    )
                    .hint(hint)
                })?;
            let mut meta = tokens.meta;
            meta.username = checked.username;
            meta.provider_user_id = meta.provider_user_id.or(checked.user_id);
            meta.provider_org_id = meta.provider_org_id.or(checked.org_id);
            record.tokens = Some(
                oauth::tokens::seal_tokens(
                    state,
                    ws,
                    &id,
                    &tokens.access_token,
                    tokens.refresh_token.as_ref(),
                )
                .await?,
            );
            record.token_meta = Some(meta);
        }
    } else if mode.is_direct_exchange() && check {
        let (sealed, meta) =
            oauth::token_exchange::verify_and_grant(state, ws, app, &record, &credentials).await?;
        record.tokens = Some(sealed);
        record.token_meta = Some(meta);
    } else if mode == AuthMode::OAuth1 && credentials.get("token_id").is_none() {
        // No token pair yet: the browser authorization obtains one.
        record.status = ConnectionStatus::PendingAuthorization;
        record.status_reason = Some("waiting for the browser authorization".into());
        record.hint = Some("open the authorization link in a browser and approve the access; the connection becomes active when you return".into());
        record.verified_at = None;
    } else if check {
        verify::verify_and_pin(
            &state.outbound,
            app,
            mode,
            &mut record.settings,
            &credentials,
        )
        .await?;
    }
    record.credentials = Some(seal(state, ws, &id, &credentials, &bound).await?);
    Ok(Built { record, warnings })
}

/// The connection's credential fields (without the destinations they are bound to).
pub async fn decrypt(state: &AppState, c: &ConnectionRecord) -> ApiResult<SecretFields> {
    Ok(open(state, c).await?.0)
}

/// The connection's credential fields and the destinations they are bound to (`None` for a
/// connection stored before destinations were bound).
pub async fn open(
    state: &AppState,
    c: &ConnectionRecord,
) -> ApiResult<(SecretFields, Option<destinations::Destinations>)> {
    match &c.credentials {
        Some(sealed) => {
            let mut fields = state
                .keyring
                .open_fields(sealed, "connection", c.id.as_str(), "credentials")
                .await?;
            let bound = destinations::take_binding(&mut fields);
            Ok((fields, bound))
        }
        None => Ok((SecretFields::new(), None)),
    }
}

/// Seals a connection's credential fields together with the destinations they are bound to.
pub async fn seal(
    state: &AppState,
    ws: &Workspace,
    id: &ConnectionId,
    creds: &SecretFields,
    bound: &destinations::Destinations,
) -> ApiResult<latchkey_core::crypto::Sealed> {
    Ok(state
        .keyring
        .seal_fields(
            &ws.data_key_id,
            "connection",
            id.as_str(),
            "credentials",
            &destinations::with_binding(creds, bound),
        )
        .await?)
}

/// Applies an edit: merged, re-validated, re-verified when the credential or settings changed,
/// re-encrypted, and written only if nobody changed the record meanwhile.
pub async fn edit(
    state: &AppState,
    ws: &Workspace,
    mut c: ConnectionRecord,
    body: EditConnection,
    holds_secrets: bool,
    events: impl FnOnce(&ConnectionRecord, &[&str]) -> Vec<Event>,
) -> ApiResult<(ConnectionRecord, Vec<&'static str>)> {
    let app = app_entry(state, &c.app)?;
    let mut changed = Vec::new();
    if let Some(n) = &body.name {
        let n = ConnectionName::parse(n)?;
        if n != c.name {
            c.name = n;
            changed.push("name");
        }
    }
    if let Some(e) = &body.environment {
        let e = Environment::parse(e)?;
        if e != c.environment {
            let flows = state.store.flows_using(&ws.id, &c.id).await?;
            let clash: Vec<String> = flows
                .iter()
                .filter(|f| f.environment != e)
                .map(|f| f.name.to_string())
                .collect();
            if !clash.is_empty() {
                return Err(ApiError::new(StatusCode::CONFLICT, "environment_mismatch", format!(
                    "flows of environment `{}` use this connection: {}", c.environment, clash.join(", ")))
                    .hint("a flow only uses connections of its own environment: remove the connection from those flows first")
                    .details(json!({ "flows": clash })));
            }
            c.environment = e;
            changed.push("environment");
        }
    }
    let old_mode = c.auth_mode;
    let mode = match body.auth_mode {
        Some(m) if m != c.auth_mode => {
            changed.push("auth_mode");
            check_mode(app, Some(m))?
        }
        _ => c.auth_mode,
    };
    let mut secrets_changed = false;
    let (mut creds, bound) = open(state, &c).await?;
    let bound = match bound {
        Some(b) => b,
        None => destinations::of(app, old_mode, &c.settings, &creds)?,
    };
    let mut patch_settings = body.settings;
    let mut new_creds = body.credentials;
    if let Some(patch) = patch_settings.as_mut() {
        // Database login fields given as settings are credential changes.
        let mut given = new_creds.take().unwrap_or_default();
        let had = !given.is_empty();
        lift_login_fields(app, mode, patch, &mut given)?;
        if had || !given.is_empty() {
            new_creds = Some(given);
        }
    }
    let sent = new_creds.clone();
    if let Some(new) = new_creds {
        app.validate_credentials(mode, &new, true)?;
        if !new.is_empty() {
            creds.merge(new);
            secrets_changed = true;
            changed.push("credentials");
        }
    }
    if mode != old_mode {
        let keep: Vec<String> = app
            .credential_fields(mode)
            .map(|f| f.name.clone())
            .collect();
        let drop: Vec<String> = creds
            .names()
            .filter(|n| !keep.iter().any(|k| k == n))
            .map(str::to_string)
            .collect();
        for n in drop {
            creds.remove(&n);
        }
        secrets_changed = true;
    }
    app.validate_credentials(mode, &creds, false)?;
    oauth::token_exchange::check_credentials(app, mode, &creds)?;
    let mut settings_changed = false;
    for (name, _) in public_login_fields(app, mode) {
        c.settings.remove(&name);
    }
    if let Some(patch) = patch_settings {
        let mut merged = c.settings.clone();
        for (k, v) in patch {
            if v.is_null() {
                merged.remove(&k);
            } else {
                merged.insert(k, v);
            }
        }
        let mut normalized = app.validate_settings(mode, &merged)?;
        crate::inject::check_settings(mode, &normalized)?;
        crate::signing::check_settings(mode, &normalized)?;
        resolve_lender(state, ws, &mut normalized, Some(&c.id)).await?;
        if normalized != c.settings {
            c.settings = normalized;
            settings_changed = true;
            changed.push("settings");
        }
    } else if mode != old_mode {
        c.settings = app.validate_settings(mode, &c.settings)?;
    }
    show_login_fields(app, mode, &mut c.settings, &creds);
    verify::check_fields(app, &c.settings, &creds, false)?;
    c.auth_mode = mode;
    // Where the secret material would go now, decided before anything is sent anywhere.
    let now_bound = destinations::of(app, mode, &c.settings, &creds)?;
    let resent = destinations::resends_secrets(app, mode, &creds, sent.as_ref());
    let moved = destinations::decide(&bound, &now_bound, holds_secrets, resent)?;
    let rebind = now_bound != bound;
    if rebind {
        changed.push("destinations");
    }
    if moved && mode.has_tokens() && !holds_secrets {
        // Tokens granted for the old destinations do not follow the connection to new ones
        // for a caller who may not read them: authorize (or grant) again.
        c.tokens = None;
        c.token_meta = None;
        if mode == AuthMode::OAuth2Code {
            c.status = ConnectionStatus::PendingAuthorization;
            c.status_reason = Some("the connection's OAuth endpoints changed".into());
            c.hint = Some("authorize it again (POST …/authorize)".into());
            c.verified_at = None;
        }
    }
    if mode.is_oauth() && (moved || settings_changed) {
        let provider = Provider::for_connection(app, mode, &c.settings)?;
        let client = oauth::client_for(state, ws, &app.id, &creds).await?;
        oauth::check_client_destination(&client, &provider)?;
    }
    let now = Utc::now();
    // An OAuth 1.0a connection without its token pair has nothing to check until authorized.
    let oauth1_pending = mode == AuthMode::OAuth1 && creds.get("token_id").is_none();
    if (secrets_changed || settings_changed) && mode != AuthMode::OAuth2Code && !oauth1_pending {
        if body.verify.unwrap_or(true) {
            if let Some((sealed, meta)) = verify_and_grant(state, ws, app, &mut c, &creds).await? {
                c.tokens = Some(sealed);
                c.token_meta = Some(meta);
            }
            c.status = ConnectionStatus::Active;
            c.verified_at = Some(now);
        } else {
            c.status = ConnectionStatus::Unverified;
            if mode.is_direct_exchange() {
                // The next token comes from the credential as it is now.
                c.tokens = None;
                c.token_meta = None;
            }
        }
        c.status_reason = None;
        c.hint = None;
    }
    if secrets_changed || rebind {
        c.credentials = Some(seal(state, ws, &c.id, &creds, &now_bound).await?);
    }
    if changed.is_empty() {
        return Ok((c, changed));
    }
    let expected = c.version;
    c.version += 1;
    c.updated_at = now;
    let events = events(&c, &changed);
    let change = ConnectionChange::Update {
        conn: &c,
        expected_version: expected,
    };
    state.change_connection(change, &events).await?;
    state.forget_connection(&c.id);
    Ok((c, changed))
}

/// Verifies a (non-code-flow) connection as it now stands: the dry request of a static
/// credential, or a fresh client-credentials / JWT grant plus the connection check, whose
/// tokens are then kept.
async fn verify_and_grant(
    state: &AppState,
    ws: &Workspace,
    app: &latchkey_core::catalog::AppEntry,
    c: &mut ConnectionRecord,
    creds: &latchkey_core::secret::SecretFields,
) -> ApiResult<Option<(latchkey_core::crypto::Sealed, TokenMeta)>> {
    if c.auth_mode.is_direct_exchange() {
        return oauth::token_exchange::verify_and_grant(state, ws, app, c, creds)
            .await
            .map(Some);
    }
    if !c.auth_mode.is_oauth() {
        verify::verify_and_pin(&state.outbound, app, c.auth_mode, &mut c.settings, creds).await?;
        return Ok(None);
    }
    let provider = Provider::for_connection(app, c.auth_mode, &c.settings)?;
    let client = oauth::client_for(state, ws, &app.id, creds).await?;
    let tokens = oauth::first_grant(state, &provider, c.auth_mode, &client, creds)
        .await
        .map_err(|e| oauth::grant_failure(state, &e))?;
    let checked = oauth::check(state, app, &c.settings, &provider, &tokens)
        .await
        .map_err(|(m, h)| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "verification_failed", m).hint(h)
        })?;
    let mut meta = tokens.meta;
    meta.username = checked.username;
    let sealed = oauth::tokens::seal_tokens(
        state,
        ws,
        &c.id,
        &tokens.access_token,
        tokens.refresh_token.as_ref(),
    )
    .await
    .map_err(ApiError::from)?;
    Ok(Some((sealed, meta)))
}

/// Re-checks a stored connection and records the outcome in its status. OAuth connections
/// are checked with a fresh token (refreshed first when due).
///
/// `events` makes the events of the outcome (the row as written, and whether the check
/// passed); they are written with the new status in one transaction.
pub async fn recheck(
    state: &AppState,
    ws: &Workspace,
    mut c: ConnectionRecord,
    events: impl FnOnce(&ConnectionRecord, bool) -> Vec<Event>,
) -> ApiResult<(ConnectionRecord, bool)> {
    let app = app_entry(state, &c.app)?;
    let outcome: Result<(), (String, Option<String>)> = if c.auth_mode.has_tokens() {
        match oauth::tokens::fresh_token(state, ws, &c, false).await {
            Err(f) => {
                // A failed refresh already recorded its outcome on the row.
                let now_row = find(state, ws, c.id.as_str()).await?;
                return if f.status == 409
                    || f.code == "refresh_failed"
                    || f.code == "refresh_backoff"
                {
                    // Nothing is written here: the events are recorded on their own.
                    state.record(&events(&now_row, false)).await;
                    Ok((now_row, false))
                } else {
                    Err(f.into())
                };
            }
            Ok(set) => {
                c = find(state, ws, c.id.as_str()).await?;
                let tokens = oauth::grant::Tokens {
                    access_token: set.access_token.clone(),
                    refresh_token: None,
                    meta: set.meta.clone(),
                };
                let checked = if c.auth_mode.is_direct_exchange() {
                    oauth::token_exchange::check_token(
                        state,
                        app,
                        c.auth_mode,
                        &c.settings,
                        &tokens,
                    )
                    .await
                } else {
                    let provider = Provider::for_connection(app, c.auth_mode, &c.settings)?;
                    oauth::check(state, app, &c.settings, &provider, &tokens)
                        .await
                        .map(|_| ())
                };
                checked.map_err(|(m, h)| (m, Some(h)))
            }
        }
    } else {
        let creds = decrypt(state, &c).await?;
        let mode = c.auth_mode;
        match verify::verify_and_pin(&state.outbound, app, mode, &mut c.settings, &creds).await {
            Ok(()) => Ok(()),
            Err(latchkey_core::CoreError::VerificationFailed { message, hint, .. }) => {
                Err((message, hint))
            }
            Err(other) => return Err(other.into()),
        }
    };
    let now = Utc::now();
    let ok = match outcome {
        Ok(()) => {
            c.status = ConnectionStatus::Active;
            c.status_reason = None;
            c.hint = None;
            c.verified_at = Some(now);
            true
        }
        Err((message, hint)) => {
            c.status = ConnectionStatus::Failing;
            c.status_reason = Some(message);
            c.hint = hint;
            false
        }
    };
    let expected = c.version;
    c.version += 1;
    c.updated_at = now;
    let events = events(&c, ok);
    let change = ConnectionChange::Update {
        conn: &c,
        expected_version: expected,
    };
    state.change_connection(change, &events).await?;
    state.forget_connection(&c.id);
    Ok((c, ok))
}
