//! Connections: building a new one from a create body (validated against the catalog, verified,
//! encrypted), editing, verifying, and the view answered to callers (never a secret).

use super::input::{
    check_mode, lift_login_fields, public_login_fields, resolve_lender, show_login_fields,
};
pub use super::views::{add_health, view, AuthorizationView, ConnectionView, HealthView};
use crate::destinations;
pub use crate::directory::{app_entry, find, lookup};
use crate::error::{ApiError, ApiResult};
use crate::oauth::{
    self,
    provider::{self, Provider},
    FailureKind,
};
use crate::state::AppState;
pub use crate::vault::{decrypt, open, seal};
use crate::verify;
use axum::http::StatusCode;
use chrono::Utc;
use latchkey_core::ids::ConnectionId;
use latchkey_core::model::{
    AuthMode, ConnectionRecord, ConnectionStatus, Event, TokenMeta, Workspace,
};
use latchkey_core::names::{ConnectionName, Environment};
use latchkey_core::secret::SecretFields;
use latchkey_core::store::ConnectionChange;
use serde::Deserialize;
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
    let environment = environment_of(&body, default_env)?;
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
    let warnings =
        first_credential(state, ws, app, &mut record, &credentials, imported, check).await?;
    record.credentials = Some(seal(state, ws, &id, &credentials, &bound).await?);
    Ok(Built { record, warnings })
}

/// The environment a new connection goes under: the one named, else the caller's default; a
/// Salesforce sandbox account without either goes under `sandbox`, not production.
fn environment_of(
    body: &CreateConnection,
    default_env: Option<&Environment>,
) -> ApiResult<Environment> {
    Ok(match &body.environment {
        Some(e) => Environment::parse(e)?,
        None => match default_env {
            Some(e) => e.clone(),
            None if body.settings.get("account_type").and_then(Value::as_str)
                == Some("sandbox") =>
            {
                Environment::parse("sandbox")?
            }
            None => Environment::production(),
        },
    })
}

/// What a new connection's credential gives before it is stored: an imported or first grant
/// (checked and kept), a first token of a direct mode, a verified static credential, or a
/// connection waiting for its browser authorization. Answers the warnings for the caller.
async fn first_credential(
    state: &AppState,
    ws: &Workspace,
    app: &latchkey_core::catalog::AppEntry,
    record: &mut ConnectionRecord,
    credentials: &SecretFields,
    imported: Option<crate::oauth::import::Imported>,
    check: bool,
) -> ApiResult<Vec<String>> {
    let mode = record.auth_mode;
    let mut warnings = Vec::new();
    if mode.is_oauth() {
        let provider = Provider::for_connection(app, mode, &record.settings)?;
        let client = oauth::client_for(state, ws, &app.id, credentials).await?;
        oauth::check_client_destination(&client, &provider)?;
        if let Some(grant) = imported {
            crate::oauth::import::apply(state, ws, app, record, &provider, &client, grant, check)
                .await?;
        } else if mode == AuthMode::OAuth2Code {
            record.mark_pending_authorization(
                "waiting for the browser authorization",
                "open the authorization link in a browser and sign in; the connection becomes active when you return",
            );
            if !provider.asks_refresh_token() {
                warnings.push("the scopes do not include refresh_token (or offline_access): Salesforce will issue no refresh token, and the connection will stop working when its session ends".into());
            }
            if provider::is_salesforce(app) {
                warnings
                    .extend(oauth::approvals::warnings_before(state, ws, &client.client_id).await);
            }
        } else if check {
            let tokens = oauth::first_grant(state, &provider, mode, &client, credentials)
                .await
                .map_err(|e| oauth::grant_failure(state, &e))?;
            let kept = oauth::keep::check_and_seal(
                state,
                ws,
                app,
                &record.id.clone(),
                &record.settings,
                &provider,
                &tokens,
            )
            .await?;
            record.tokens = Some(kept.sealed);
            record.token_meta = Some(kept.meta);
        }
    } else if mode.is_direct_exchange() && check {
        let (sealed, meta) =
            crate::service::exchange::verify_and_grant(state, ws, app, record, credentials).await?;
        record.tokens = Some(sealed);
        record.token_meta = Some(meta);
    } else if mode == AuthMode::OAuth1 && credentials.get("token_id").is_none() {
        // No token pair yet: the browser authorization obtains one.
        record.mark_pending_authorization(
            "waiting for the browser authorization",
            "open the authorization link in a browser and approve the access; the connection becomes active when you return",
        );
    } else if check {
        verify::verify_and_pin(
            &state.outbound,
            app,
            mode,
            &mut record.settings,
            credentials,
        )
        .await?;
    }
    Ok(warnings)
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
    rename_and_move(state, ws, &mut c, &body, &mut changed).await?;
    let old_mode = c.auth_mode;
    let mode = match body.auth_mode {
        Some(m) if m != c.auth_mode => {
            changed.push("auth_mode");
            check_mode(app, Some(m))?
        }
        _ => c.auth_mode,
    };
    let (mut creds, bound) = open(state, &c).await?;
    let bound = match bound {
        Some(b) => b,
        None => destinations::of(app, old_mode, &c.settings, &creds)?,
    };
    let mut patch_settings = body.settings;
    let merge = CredentialEdit {
        app,
        mode,
        old_mode,
        sent: body.credentials,
    };
    let (secrets_changed, sent) = merge.apply(&mut creds, &mut patch_settings, &mut changed)?;
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
            c.mark_pending_authorization(
                "the connection's OAuth endpoints changed",
                "authorize it again (POST …/authorize)",
            );
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
        reverify(state, ws, app, &mut c, &creds, body.verify.unwrap_or(true)).await?;
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

/// A new name (unique in the workspace) and a new environment (refused while flows of the old
/// environment use the connection).
async fn rename_and_move(
    state: &AppState,
    ws: &Workspace,
    c: &mut ConnectionRecord,
    body: &EditConnection,
    changed: &mut Vec<&'static str>,
) -> ApiResult<()> {
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
    Ok(())
}

/// An edit's credential fields merged into the stored ones; database login fields given as
/// settings count as credentials, and a change of auth mode drops the fields the new mode does
/// not take.
struct CredentialEdit<'a> {
    app: &'a latchkey_core::catalog::AppEntry,
    mode: AuthMode,
    old_mode: AuthMode,
    sent: Option<SecretFields>,
}

impl CredentialEdit<'_> {
    /// Merges into `creds`; answers whether the secret material changed and what was sent.
    fn apply(
        self,
        creds: &mut SecretFields,
        patch_settings: &mut Option<Map<String, Value>>,
        changed: &mut Vec<&'static str>,
    ) -> ApiResult<(bool, Option<SecretFields>)> {
        let (app, mode, old_mode) = (self.app, self.mode, self.old_mode);
        let mut new_creds = self.sent;
        let mut secrets_changed = false;
        if let Some(patch) = patch_settings.as_mut() {
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
        Ok((secrets_changed, sent))
    }
}

/// After a change of the credential or the settings: verified again (and granted again, for
/// modes with tokens), or, when the caller said not to verify, unverified.
async fn reverify(
    state: &AppState,
    ws: &Workspace,
    app: &latchkey_core::catalog::AppEntry,
    c: &mut ConnectionRecord,
    creds: &SecretFields,
    verify: bool,
) -> ApiResult<()> {
    if verify {
        if let Some((sealed, meta)) = verify_and_grant(state, ws, app, c, creds).await? {
            c.tokens = Some(sealed);
            c.token_meta = Some(meta);
        }
        c.status = ConnectionStatus::Active;
        c.verified_at = Some(Utc::now());
    } else {
        c.status = ConnectionStatus::Unverified;
        if c.auth_mode.is_direct_exchange() {
            // The next token comes from the credential as it is now.
            c.tokens = None;
            c.token_meta = None;
        }
    }
    c.status_reason = None;
    c.hint = None;
    Ok(())
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
        return crate::service::exchange::verify_and_grant(state, ws, app, c, creds)
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
    let kept =
        oauth::keep::check_and_seal(state, ws, app, &c.id, &c.settings, &provider, &tokens).await?;
    Ok(Some((kept.sealed, kept.meta)))
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
                    || matches!(f.kind, FailureKind::RefreshFailed | FailureKind::Backoff)
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
                    crate::service::exchange::check_token(
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
                checked.map_err(|oauth::CheckFailed { message, hint }| (message, Some(hint)))
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
            c.mark_active(now);
            true
        }
        Err((message, hint)) => {
            c.mark_failing(message, hint);
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
