//! OAuth 2.0 connections: authorization (state, PKCE, the authorize URL), the callback's code
//! exchange, first grants for client credentials and JWT bearer, the connection check, and
//! the token store read by reference (R4, R13-R15).

pub mod approvals;
pub mod callback;
pub mod check_error;
pub mod exchange_http;
pub mod failure;
pub mod grant;
pub mod import;
pub mod keep;
pub mod provider;
pub mod service_account;
pub mod token_cache;
pub mod token_exchange;
pub mod tokens;

pub use check_error::CheckFailed;
pub use failure::{Failure, FailureKind};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::http::StatusCode;
use base64::Engine;
use chrono::{Duration, Utc};
use grant::{ClientCreds, GrantError, Tokens};
use latchkey_core::catalog::AppEntry;
use latchkey_core::model::{AuthMode, ConnectionRecord, OAuthState, Workspace};
use latchkey_core::scrub::{self, Scrubber};
use latchkey_core::secret::{SecretFields, SecretString};
use provider::{Flavor, Provider};
use rand::RngCore;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use url::Url;

/// How long an authorization request stays valid.
pub const STATE_TTL_MINUTES: i64 = 10;

/// The client a connection's grants use: its own `client_id` (and secret, key) when it has
/// them, else the workspace's OAuth client for the application.
pub async fn client_for(
    state: &AppState,
    ws: &Workspace,
    app: &str,
    creds: &SecretFields,
) -> ApiResult<ClientCreds> {
    if let Some(id) = creds.expose("client_id").filter(|s| !s.is_empty()) {
        return Ok(ClientCreds {
            client_id: id.to_string(),
            client_secret: creds.get("client_secret").cloned(),
            private_key: creds.get("private_key").cloned(),
            allowed_origins: None,
        });
    }
    let Some(rec) = state.store.oauth_client(&ws.id, app).await? else {
        return Err(ApiError::invalid("credentials.client_id", format!("no OAuth client is set for `{app}` in this workspace, and the connection has no client_id"))
            .hint(format!("give the consumer key and secret on the connection, or set the workspace's OAuth client for {app} once (latchkey oauth-client set {} {app} --client-id …)", ws.slug)));
    };
    let secret = match &rec.secret {
        Some(s) => {
            state
                .keyring
                .open_fields(s, "oauth_client", &format!("{}/{}", ws.id, app), "secret")
                .await?
        }
        None => SecretFields::new(),
    };
    let user_given_urls = state
        .catalog
        .get(app)
        .and_then(|a| a.oauth.as_ref())
        .is_some_and(|o| o.hosts.is_empty());
    let allowed_origins = allowed_origins_of(&secret);
    Ok(ClientCreds {
        client_id: rec.client_id,
        client_secret: secret.get("client_secret").cloned(),
        private_key: secret.get("private_key").cloned(),
        // A client for user-given URLs set without a list (before lists existed) goes nowhere.
        allowed_origins: if user_given_urls {
            Some(allowed_origins.unwrap_or_default())
        } else {
            allowed_origins
        },
    })
}

/// The sealed field of a workspace OAuth client that lists the origins it may be sent to.
pub const ALLOWED_ORIGINS_FIELD: &str = "allowed_origins";

/// The origins a workspace OAuth client's sealed fields allow.
pub fn allowed_origins_of(secret: &SecretFields) -> Option<Vec<String>> {
    secret
        .expose(ALLOWED_ORIGINS_FIELD)
        .and_then(|v| serde_json::from_str(v).ok())
}

/// Refuses, before anything is sent, a grant whose client may not go to the provider's token
/// endpoint (a workspace OAuth client for user-given URLs goes only to its `allowed_origins`).
pub fn check_client_destination(client: &ClientCreds, provider: &Provider) -> ApiResult<()> {
    let Some(allowed) = &client.allowed_origins else {
        return Ok(());
    };
    let origin = provider.token_url.origin().ascii_serialization();
    if allowed.contains(&origin) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "destination_not_allowed",
        format!("the workspace's OAuth client may not be sent to {origin}"),
    )
    .hint("add the origin to the OAuth client's allowed_origins (PUT …/apps/{app}/oauth-client), or give the connection its own client_id and client_secret")
    .details(json!({ "origin": origin, "allowed_origins": allowed })))
}

pub(crate) fn random_token(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

pub fn hash_state(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

pub fn redirect_uri(state: &AppState) -> String {
    format!(
        "{}/oauth/callback",
        state.public_url.as_str().trim_end_matches('/')
    )
}

/// Starts an authorization: a single-use state bound to the connection (stored hashed, with
/// the PKCE verifier sealed) and the authorize URL for the browser, rewritten per
/// `LATCHKEY_OUTBOUND_REWRITES`. Earlier pending states of the connection stop working.
pub async fn begin_authorization(
    state: &AppState,
    ws: &Workspace,
    conn: &ConnectionRecord,
    client: &ClientCreds,
) -> ApiResult<String> {
    let app = state
        .catalog
        .get(&conn.app)
        .ok_or_else(|| ApiError::invalid("app", "unknown application"))?;
    let provider = Provider::for_connection(app, conn.auth_mode, &conn.settings)?;
    let authorize = provider.authorize_url.clone().ok_or_else(|| {
        ApiError::invalid(
            "settings.authorization_url",
            "the connection has no authorization URL",
        )
    })?;
    let raw_state = random_token(32);
    let state_hash = hash_state(&raw_state);
    let verifier = provider.pkce.then(|| random_token(48));
    let sealed_verifier = match &verifier {
        Some(v) => {
            let mut f = SecretFields::new();
            f.insert("verifier", SecretString::from(v.clone()));
            Some(
                state
                    .keyring
                    .seal_fields(&ws.data_key_id, "oauth_state", &state_hash, "verifier", &f)
                    .await?,
            )
        }
        None => None,
    };
    let now = Utc::now();
    let redirect = redirect_uri(state);
    state.store.delete_oauth_states(&conn.id).await?;
    state
        .store
        .insert_oauth_state(&OAuthState {
            state_hash,
            workspace_id: ws.id.clone(),
            connection_id: conn.id.clone(),
            verifier: sealed_verifier,
            redirect_uri: redirect.clone(),
            created_at: now,
            expires_at: now + Duration::minutes(STATE_TTL_MINUTES),
        })
        .await?;
    let mut url = authorize;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code");
        q.append_pair("client_id", &client.client_id);
        q.append_pair("redirect_uri", &redirect);
        if !provider.scopes.is_empty() {
            q.append_pair("scope", &provider.scope_param());
        }
        q.append_pair("state", &raw_state);
        if let Some(v) = &verifier {
            let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(Sha256::digest(v.as_bytes()));
            q.append_pair("code_challenge", &challenge);
            q.append_pair("code_challenge_method", "S256");
        }
        for (k, v) in &provider.extra_authorize_params {
            q.append_pair(k, v);
        }
    }
    Ok(state
        .config
        .outbound_rewrites
        .apply(&url)
        .unwrap_or(url)
        .to_string())
}

/// What the connection check learned.
pub struct Checked {
    pub username: Option<String>,
    pub user_id: Option<String>,
    pub org_id: Option<String>,
}

/// Namespaces of Certinia's managed packages.
const CERTINIA_PREFIXES: &[&str] = &["c2g__", "fferpcore__", "pse__"];

/// Why a check request could not be sent: the outbound rules refused the address.
fn blocked(e: impl std::fmt::Display) -> CheckFailed {
    CheckFailed::new(
        e.to_string(),
        "set LATCHKEY_OUTBOUND_ALLOW if this address is meant to be reached",
    )
}

/// Why a check request got no answer.
fn unreachable(e: reqwest::Error) -> CheckFailed {
    CheckFailed::new(
        format!("the check request failed: {}", e.without_url()),
        "check that the provider is reachable",
    )
}

/// The connection check with fresh tokens: Salesforce `userinfo` (and, for Certinia, its objects
/// in the org); a generic provider's verification path with the bearer token.
pub async fn check(
    state: &AppState,
    app: &AppEntry,
    conn_settings: &serde_json::Map<String, Value>,
    provider: &Provider,
    tokens: &Tokens,
) -> Result<Checked, CheckFailed> {
    match provider.flavor {
        Flavor::Salesforce => check_salesforce(state, app, provider, tokens).await,
        Flavor::Generic => check_generic(state, app, conn_settings, tokens).await,
    }
}

/// A GET with the access token as a bearer token: the status and the body.
async fn bearer_get(
    state: &AppState,
    tokens: &Tokens,
    url: &Url,
) -> Result<(u16, String), CheckFailed> {
    let url = state.outbound.prepare(url).map_err(blocked)?;
    let mut hv =
        http::HeaderValue::from_str(&format!("Bearer {}", tokens.access_token.expose_secret()))
            .map_err(|_| CheckFailed::new("the token cannot go in a header", ""))?;
    hv.set_sensitive(true);
    let resp = state
        .outbound
        .client()
        .get(url)
        .header(http::header::AUTHORIZATION, hv)
        .send()
        .await
        .map_err(unreachable)?;
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    Ok((status, body))
}

/// Salesforce: `userinfo` says whose token it is; for Certinia, the org must have its objects.
async fn check_salesforce(
    state: &AppState,
    app: &AppEntry,
    provider: &Provider,
    tokens: &Tokens,
) -> Result<Checked, CheckFailed> {
    let mut scrubber = Scrubber::new();
    scrubber.add(tokens.access_token.expose_secret());
    let instance = tokens.meta.instance_url.clone().ok_or_else(|| {
        CheckFailed::new(
            "the token answer had no instance_url",
            "this is not a Salesforce token answer",
        )
    })?;
    let base =
        Url::parse(&instance).map_err(|_| CheckFailed::new("the instance_url is not a URL", ""))?;
    let path = provider
        .userinfo_path
        .clone()
        .unwrap_or_else(|| "/services/oauth2/userinfo".into());
    let (status, body) = bearer_get(state, tokens, &crate::verify::join_path(&base, &path)).await?;
    if status != 200 {
        return Err(salesforce_check_error_scrubbed(status, &body, &scrubber));
    }
    let info: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let checked = Checked {
        username: info["preferred_username"].as_str().map(str::to_string),
        user_id: info["user_id"].as_str().map(str::to_string),
        org_id: info["organization_id"].as_str().map(str::to_string),
    };
    if app.id == "certinia" {
        let objects = crate::verify::join_path(&base, "/services/data/v62.0/sobjects");
        let (status, body) = bearer_get(state, tokens, &objects).await?;
        if status != 200 {
            return Err(salesforce_check_error_scrubbed(status, &body, &scrubber));
        }
        if !CERTINIA_PREFIXES
            .iter()
            .any(|p| body.contains(&format!("\"{p}")))
        {
            return Err(CheckFailed::new(
                "the org has none of Certinia's objects (c2g__, fferpcore__, pse__ namespaces)",
                "log in to the org where Certinia is installed, and check that the user's profile can see the Certinia objects",
            ));
        }
    }
    Ok(checked)
}

/// Any other provider: the entry's verification request, with the token put where the entry
/// says.
async fn check_generic(
    state: &AppState,
    app: &AppEntry,
    conn_settings: &serde_json::Map<String, Value>,
    tokens: &Tokens,
) -> Result<Checked, CheckFailed> {
    let mut scrubber = Scrubber::new();
    scrubber.add(tokens.access_token.expose_secret());
    let (method, path) = crate::verify::verify_request(app, conn_settings);
    let mut url = crate::verify::verify_url(app, conn_settings, &tokens.meta.extra, &path)
        .map_err(|e| CheckFailed::new(e.to_string(), ""))?;
    let shown = format!("{method} {url}");
    let inj = crate::inject::for_token(app, tokens.access_token.expose_secret())
        .map_err(|e| CheckFailed::new(e.to_string(), ""))?;
    inj.apply_to_url(&mut url);
    let url = state.outbound.prepare(&url).map_err(blocked)?;
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut req = state
        .outbound
        .client()
        .request(method, url)
        .timeout(std::time::Duration::from_secs(15));
    for (n, v) in inj.headers {
        req = req.header(n, v);
    }
    for (n, v) in crate::inject::fixed_headers(app, conn_settings, &Default::default())
        .map_err(|e| CheckFailed::new(e.to_string(), ""))?
    {
        req = req.header(n, v);
    }
    if let Some(b) = crate::verify::verify_body(app) {
        req = req
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(b);
    }
    let resp = req.send().await.map_err(unreachable)?;
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    if !(200..300).contains(&status) {
        return Err(CheckFailed::new(
            format!(
                "{} answered {status} to {shown}: {}",
                app.name,
                scrub::provider_summary(&body, &scrubber, "no error in a known shape")
            ),
            if status == 401 {
                "the access token was refused: it expired or was revoked"
            } else {
                "check the scopes granted and the verification request"
            },
        ));
    }
    if let Some(why) = crate::verify::unexpected_answer(app, &body) {
        return Err(CheckFailed::new(
            format!("{} answered {status} to {shown}, but {why}", app.name),
            "the token was refused inside a successful answer: check the scopes granted, or re-authorize",
        ));
    }
    Ok(Checked {
        username: None,
        user_id: None,
        org_id: None,
    })
}

/// A Salesforce REST error answer as a message and a hint (R6).
pub fn salesforce_check_error(status: u16, body: &str) -> CheckFailed {
    salesforce_check_error_scrubbed(status, body, &Scrubber::new())
}

/// [`salesforce_check_error`], keeping only the provider's code and description, scrubbed.
pub fn salesforce_check_error_scrubbed(
    status: u16,
    body: &str,
    scrubber: &Scrubber,
) -> CheckFailed {
    let (code, message) = match scrub::provider_words(body, scrubber) {
        Some((code, d)) => (code.unwrap_or_default(), d),
        None => (String::new(), "no error in a known shape".to_string()),
    };
    let hint = match code.as_str() {
        "INSUFFICIENT_ACCESS" => "use a dedicated integration user (the \"API Only User\" permission is recommended), check its profile and permission sets (\"API Enabled\", \"View Setup and Configuration\"), and Setup > Identity Verification > Session Security Level Policies",
        "REQUEST_LIMIT_EXCEEDED" => "the org's daily API limit or its concurrent long-request limit was reached; lower the connection's concurrency level or borrow a pool shared with the org's other connections",
        "API_DISABLED_FOR_ORG" => "the org's edition does not allow API access",
        _ if message.contains("not valid for use with the REST API") => "the token lacks the `api` scope: add `api` to the connection's scopes and re-authorize",
        _ if status == 403 => "the user may lack permissions: check its profile and permission sets",
        _ => "check the connected app and the user's permissions",
    };
    let shown = if code.is_empty() {
        format!("Salesforce answered {status}: {message}")
    } else {
        format!("Salesforce answered {status} {code}: {message}")
    };
    CheckFailed::new(shown, hint)
}

/// A grant failure as the API answers it (422: nothing was saved).
pub fn grant_failure(state: &AppState, e: &GrantError) -> ApiError {
    let public = state.public_url.as_str().trim_end_matches('/').to_string();
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "verification_failed",
        format!("the provider refused the grant: {e}"),
    )
    .hint(e.hint(false, &public))
    .details(json!({ "provider_error": e.code() }))
}

/// The first grant of a client-credentials or JWT-bearer connection (its verification).
pub async fn first_grant(
    state: &AppState,
    provider: &Provider,
    mode: AuthMode,
    client: &ClientCreds,
    creds: &SecretFields,
) -> Result<Tokens, GrantError> {
    match mode {
        AuthMode::OAuth2ClientCredentials => {
            grant::client_credentials(&state.outbound, provider, client).await
        }
        AuthMode::OAuth2JwtBearer => {
            grant::jwt_bearer(
                &state.outbound,
                provider,
                client,
                creds.expose("jwt_subject").unwrap_or_default(),
            )
            .await
        }
        other => Err(GrantError::Transport(format!(
            "{other} has no direct grant"
        ))),
    }
}
