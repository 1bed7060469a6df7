//! OAuth endpoints: the workspace's OAuth clients, starting an authorization, the callback the
//! provider redirects the browser to, and the token store read by reference (R15).

use crate::access::Need;
use crate::auth::{Caller, KeyCaller};
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::oauth::{self, tokens};
use crate::service::connections::{self as svc, ConnectionView};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use latchkey_core::model::{AuthMode, ConnectionRecord, OAuthClientRecord, Workspace};
use latchkey_core::secret::{SecretFields, SecretString};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutOAuthClient {
    /// The consumer key (client id).
    pub client_id: String,
    /// The consumer secret. Encrypted; never answered.
    #[schema(value_type = Option<String>)]
    pub client_secret: Option<SecretString>,
    /// PEM private key for JWT bearer. Encrypted; never answered.
    #[schema(value_type = Option<String>)]
    pub private_key: Option<SecretString>,
    /// The origins (`https://auth.example.com`) this client may be sent to. Required for
    /// applications whose URLs connections give (`generic-oauth2`): the client's secret is never
    /// sent to a token endpoint outside this list. For applications whose hosts the catalog
    /// fixes (Salesforce, Certinia), optional and narrowing.
    pub allowed_origins: Option<Vec<String>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OAuthClientView {
    pub app: String,
    pub client_id: String,
    pub has_client_secret: bool,
    pub has_private_key: bool,
    /// The origins the client may be sent to (`null`: the application's fixed hosts).
    pub allowed_origins: Option<Vec<String>>,
    pub redirect_uri: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn oauth_app<'a>(
    state: &'a AppState,
    app: &str,
) -> ApiResult<&'a latchkey_core::catalog::AppEntry> {
    let entry = state
        .catalog
        .get(app)
        .ok_or_else(|| ApiError::not_found("application", app))?;
    if entry.oauth.is_none() {
        return Err(ApiError::invalid(
            "app",
            format!("`{app}` does not use OAuth"),
        ));
    }
    Ok(entry)
}

async fn client_view(
    state: &AppState,
    ws: &latchkey_core::model::Workspace,
    rec: OAuthClientRecord,
) -> ApiResult<OAuthClientView> {
    let secret = match &rec.secret {
        Some(s) => {
            state
                .keyring
                .open_fields(
                    s,
                    "oauth_client",
                    &format!("{}/{}", ws.id, rec.app),
                    "secret",
                )
                .await?
        }
        None => SecretFields::new(),
    };
    Ok(OAuthClientView {
        app: rec.app,
        client_id: rec.client_id,
        has_client_secret: secret.get("client_secret").is_some(),
        has_private_key: secret.get("private_key").is_some(),
        allowed_origins: oauth::allowed_origins_of(&secret),
        redirect_uri: oauth::redirect_uri(state),
        created_at: rec.created_at,
        updated_at: rec.updated_at,
    })
}

/// Sets the workspace's OAuth client (connected app) for an application.
#[utoipa::path(put, path = "/v1/workspaces/{ws}/apps/{app}/oauth-client", tag = "oauth", request_body = PutOAuthClient,
    responses((status = 200, body = OAuthClientView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_oauth_client(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, app)): Path<(String, String)>,
    Json(body): Json<PutOAuthClient>,
) -> ApiResult<Json<OAuthClientView>> {
    let ws = state.workspace(&caller, &ws, Need::Manage).await?;
    let entry = oauth_app(&state, &app)?;
    let client_id = body.client_id.trim();
    if client_id.is_empty() || client_id.len() > 512 || client_id.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "client_id",
            "the client id is 1 to 512 printable characters",
        ));
    }
    let mut secret = SecretFields::new();
    if let Some(s) = body.client_secret.filter(|s| !s.expose_secret().is_empty()) {
        secret.insert("client_secret", s);
    }
    if let Some(k) = body.private_key.filter(|s| !s.expose_secret().is_empty()) {
        if !k.expose_secret().contains("-----BEGIN")
            || jsonwebtoken::EncodingKey::from_rsa_pem(k.expose_secret().as_bytes()).is_err()
        {
            return Err(ApiError::invalid(
                "private_key",
                "the private key must be an RSA key in PEM form",
            ));
        }
        secret.insert("private_key", k);
    }
    let user_given_urls = entry.oauth.as_ref().is_some_and(|o| o.hosts.is_empty());
    match (&body.allowed_origins, user_given_urls) {
        (None, true) => {
            return Err(ApiError::invalid(
                "allowed_origins",
                format!("`{}` connections give their own OAuth URLs: say which origins this client may be sent to", entry.id),
            )
            .hint("add \"allowed_origins\": [\"https://auth.example.com\"] (the token endpoint's origin)"))
        }
        (Some(list), _) => {
            let origins = parse_origins(list)?;
            secret.insert(
                oauth::ALLOWED_ORIGINS_FIELD,
                SecretString::from(serde_json::to_string(&origins).unwrap_or_default()),
            );
        }
        (None, false) => {}
    }
    let now = Utc::now();
    let existing = state.store.oauth_client(&ws.id, &entry.id).await?;
    let sealed = if secret.is_empty() {
        None
    } else {
        Some(
            state
                .keyring
                .seal_fields(
                    &ws.data_key_id,
                    "oauth_client",
                    &format!("{}/{}", ws.id, entry.id),
                    "secret",
                    &secret,
                )
                .await?,
        )
    };
    let rec = OAuthClientRecord {
        workspace_id: ws.id.clone(),
        app: entry.id.clone(),
        client_id: client_id.to_string(),
        secret: sealed,
        created_at: existing.map(|e| e.created_at).unwrap_or(now),
        updated_at: now,
    };
    state.store.put_oauth_client(&rec).await?;
    state
        .audit(
            &ws.id,
            &caller.actor(),
            "oauth_client.set",
            None,
            Some(&entry.id),
            json!({"client_id": rec.client_id}),
        )
        .await;
    Ok(Json(client_view(&state, &ws, rec).await?))
}

/// `https://host[:port]` origins, normalized; anything with a path, query or another scheme is
/// refused.
fn parse_origins(list: &[String]) -> ApiResult<Vec<String>> {
    if list.is_empty() || list.len() > 20 {
        return Err(ApiError::invalid("allowed_origins", "give 1 to 20 origins"));
    }
    let mut out = Vec::new();
    for o in list {
        let url = url::Url::parse(o.trim()).ok().filter(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some()
                && u.path() == "/"
                && u.query().is_none()
                && u.fragment().is_none()
                && u.username().is_empty()
                && u.password().is_none()
        });
        let Some(url) = url else {
            return Err(ApiError::invalid(
                "allowed_origins",
                format!(
                    "`{}` is not an origin (scheme://host[:port], no path)",
                    o.chars().take(200).collect::<String>()
                ),
            ));
        };
        let origin = url.origin().ascii_serialization();
        if !out.contains(&origin) {
            out.push(origin);
        }
    }
    Ok(out)
}

#[utoipa::path(get, path = "/v1/workspaces/{ws}/apps/{app}/oauth-client", tag = "oauth",
    responses((status = 200, body = OAuthClientView), (status = 404, body = ErrorBody)))]
pub async fn get_oauth_client(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, app)): Path<(String, String)>,
) -> ApiResult<Json<OAuthClientView>> {
    let ws = state.workspace(&caller, &ws, Need::Read).await?;
    let entry = oauth_app(&state, &app)?;
    let rec = state
        .store
        .oauth_client(&ws.id, &entry.id)
        .await?
        .ok_or_else(|| ApiError::not_found("OAuth client", &app))?;
    Ok(Json(client_view(&state, &ws, rec).await?))
}

#[utoipa::path(delete, path = "/v1/workspaces/{ws}/apps/{app}/oauth-client", tag = "oauth",
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_oauth_client(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, app)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let ws = state.workspace(&caller, &ws, Need::Manage).await?;
    let entry = oauth_app(&state, &app)?;
    if !state.store.delete_oauth_client(&ws.id, &entry.id).await? {
        return Err(ApiError::not_found("OAuth client", &app));
    }
    state
        .audit(
            &ws.id,
            &caller.actor(),
            "oauth_client.deleted",
            None,
            Some(&entry.id),
            json!({}),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuthorizeView {
    /// Open this in the user's browser.
    pub authorize_url: String,
    /// Valid for ten minutes, once.
    pub expires_in: i64,
    pub warnings: Vec<String>,
    pub connection: ConnectionView,
}

/// A fresh authorization URL for an `oauth2_code` connection (re-authorize a revoked one).
#[utoipa::path(post, path = "/v1/workspaces/{ws}/connections/{conn}/authorize", tag = "oauth",
    responses((status = 200, body = AuthorizeView), (status = 403, body = ErrorBody, description = "`destination_change_requires_secrets` or `destination_not_allowed`"), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn authorize(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, conn)): Path<(String, String)>,
) -> ApiResult<Json<AuthorizeView>> {
    let ws = state.workspace(&caller, &ws, Need::Edit).await?;
    let c = svc::find(&state, &ws, &conn).await?;
    let holds_secrets = caller.allows(&ws.id, Need::Secrets);
    let c = crate::destinations::guard(&state, &ws, &c, holds_secrets)
        .await?
        .unwrap_or(c);
    if c.auth_mode != AuthMode::OAuth2Code && c.auth_mode != AuthMode::OAuth1 {
        return Err(ApiError::invalid(
            "auth_mode",
            format!(
                "connection `{}` uses {}, which needs no browser authorization",
                c.name, c.auth_mode
            ),
        )
        .hint("use POST …/verify to check it"));
    }
    let app = svc::app_entry(&state, &c.app)?;
    let (url, warnings) = if c.auth_mode == AuthMode::OAuth1 {
        (
            crate::signing::three_legged::begin(&state, &ws, &c).await?,
            vec![],
        )
    } else {
        let creds = svc::decrypt(&state, &c).await?;
        let client = oauth::client_for(&state, &ws, &c.app, &creds).await?;
        oauth::check_client_destination(
            &client,
            &oauth::provider::Provider::for_connection(app, c.auth_mode, &c.settings)?,
        )?;
        let url = oauth::begin_authorization(&state, &ws, &c, &client).await?;
        let warnings = if oauth::provider::is_salesforce(app) {
            oauth::approvals::warnings_before(&state, &ws, &client.client_id).await
        } else {
            vec![]
        };
        (url, warnings)
    };
    state
        .audit(
            &ws.id,
            &caller.actor(),
            "connection.authorization_started",
            Some(c.id.as_str()),
            Some(c.name.as_str()),
            json!({}),
        )
        .await;
    let mut view = svc::view(&state, c);
    view.authorize_url = Some(url.clone());
    view.warnings = warnings.clone();
    Ok(Json(AuthorizeView {
        authorize_url: url,
        expires_in: oauth::STATE_TTL_MINUTES * 60,
        warnings,
        connection: view,
    }))
}

/// A fresh token, as processes read it by reference (R15).
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenView {
    #[schema(value_type = String)]
    pub access_token: String,
    pub token_type: String,
    /// When Latchkey takes the token to expire (Salesforce gives none: the session timeout).
    pub expires_at: Option<DateTime<Utc>>,
    /// The API base (Salesforce `instance_url`).
    pub instance_url: Option<String>,
    pub scope: Option<String>,
}

impl std::fmt::Debug for TokenView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenView")
            .field("access_token", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

fn token_view(set: &tokens::TokenSet) -> TokenView {
    TokenView {
        access_token: set.access_token.expose_secret().to_string(),
        token_type: set
            .meta
            .token_type
            .clone()
            .unwrap_or_else(|| "Bearer".into()),
        expires_at: set.meta.expires_at,
        instance_url: set.meta.instance_url.clone(),
        scope: set.meta.scope.clone(),
    }
}

async fn token_answer(
    state: &AppState,
    caller: &Caller,
    ws: &str,
    conn: &str,
    force: bool,
    stale: Option<String>,
) -> ApiResult<Json<TokenView>> {
    let found = if force {
        // A forced refresh names the version the caller saw fail: read the row as it is now.
        state.lookup(caller, ws, conn, Need::Secrets).await?
    } else {
        state.resolve(caller, ws, conn, Need::Secrets).await?
    };
    let ws: &Workspace = &found.ws;
    let c: &ConnectionRecord = &found.conn;
    if !c.auth_mode.has_tokens() {
        return Err(ApiError::invalid(
            "auth_mode",
            format!(
                "connection `{}` uses {}: it has no token",
                c.name, c.auth_mode
            ),
        )
        .hint("read its secret fields from GET …/credentials"));
    }
    // The caller holds `secrets`: a connection whose settings moved is bound to them now.
    let rebound = crate::destinations::guard(state, ws, c, true).await?;
    let c = rebound.as_ref().unwrap_or(c);
    if let (true, Some(stale)) = (force, stale) {
        // The token the caller found wanting was already replaced: no refresh at all.
        if matches!(
            c.status,
            latchkey_core::model::ConnectionStatus::Active
                | latchkey_core::model::ConnectionStatus::Failing
                | latchkey_core::model::ConnectionStatus::Unverified
        ) {
            if let Some(set) = tokens::stored_tokens(state, c).await? {
                if tokens::token_sha256(&set) != stale {
                    audit_token_read(state, caller, ws, c, true).await;
                    return Ok(Json(token_view(&set)));
                }
            }
        }
    }
    let set = tokens::fresh_token(state, ws, c, force).await?;
    audit_token_read(state, caller, ws, c, force).await;
    Ok(Json(token_view(&set)))
}

/// The optional body of a forced refresh.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The SHA-256 (hex) of the access token the caller found expired. When the connection's
    /// current token is a different one, it is answered at once without a refresh; when it is
    /// this one, the caller joins the refresh under way (or starts it). However many callers
    /// force a refresh of one connection at once, the provider sees one refresh.
    pub stale_token_sha256: Option<String>,
}

fn parse_refresh_body(body: &[u8]) -> ApiResult<Option<String>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let req: RefreshRequest = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            format!(
                "the body is not a refresh request: {}",
                crate::error::scrub_serde_message(&e.to_string())
            ),
        )
        .hint("send {} or {\"stale_token_sha256\": \"<64 hex digits>\"}, or no body")
    })?;
    match req.stale_token_sha256 {
        None => Ok(None),
        Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(Some(h.to_ascii_lowercase()))
        }
        Some(_) => Err(ApiError::invalid(
            "stale_token_sha256",
            "stale_token_sha256 is the SHA-256 of the access token, as 64 hex digits",
        )),
    }
}

/// Forced refreshes are always recorded; plain reads once a minute per key and connection.
async fn audit_token_read(
    state: &AppState,
    caller: &Caller,
    ws: &Workspace,
    c: &ConnectionRecord,
    forced: bool,
) {
    let action = if forced {
        "connection.token_refresh_requested"
    } else if caller
        .key_id()
        .is_none_or(|k| state.tokens.should_audit_read(k, &c.id))
    {
        "connection.token_read"
    } else {
        return;
    };
    state
        .audit(
            &ws.id,
            &caller.actor(),
            action,
            Some(c.id.as_str()),
            Some(c.name.as_str()),
            json!({}),
        )
        .await;
}

/// A fresh access token: the stored one while valid, refreshed first when due (exactly once,
/// however many callers ask at the same moment). Scope `secrets`.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/connections/{conn}/token", tag = "oauth",
    responses((status = 200, body = TokenView), (status = 409, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn get_token(
    State(state): State<AppState>,
    KeyCaller(caller): KeyCaller,
    Path((ws, conn)): Path<(String, String)>,
) -> ApiResult<Json<TokenView>> {
    token_answer(&state, &caller, &ws, &conn, false, None).await
}

/// Forces a refresh (for a process that got a 401), unless someone refreshed meanwhile. The
/// body is optional; with `stale_token_sha256`, simultaneous forced refreshes of one connection
/// collapse into one refresh at the provider, and a caller whose token was already replaced
/// gets the new one without any refresh.
#[utoipa::path(post, path = "/v1/workspaces/{ws}/connections/{conn}/token/refresh", tag = "oauth",
    request_body(content = Option<RefreshRequest>, content_type = "application/json", description = "optional"),
    responses((status = 200, body = TokenView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn refresh_token(
    State(state): State<AppState>,
    KeyCaller(caller): KeyCaller,
    Path((ws, conn)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Json<TokenView>> {
    let stale = parse_refresh_body(&body)?;
    token_answer(&state, &caller, &ws, &conn, true, stale).await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// OAuth 1.0a: the temporary credential the user approved.
    pub oauth_token: Option<String>,
    /// OAuth 1.0a: the verification code (RFC 5849 §2.2).
    pub oauth_verifier: Option<String>,
}

/// The page the provider sends the browser back to. It exchanges the code, checks the
/// connection, and tells the window that opened it (then closes itself).
#[utoipa::path(get, path = "/oauth/callback", tag = "oauth", security(()), params(CallbackQuery),
    responses((status = 200, content_type = "text/html", body = String)))]
pub async fn callback(State(state): State<AppState>, Query(q): Query<CallbackQuery>) -> Response {
    let oauth1 = oauth::callback::OAuth1Return {
        oauth_token: q.oauth_token,
        oauth_verifier: q.oauth_verifier,
    };
    match oauth::callback::complete(
        &state,
        q.code,
        q.state,
        q.error,
        q.error_description,
        oauth1,
    )
    .await
    {
        Ok(done) => page(
            StatusCode::OK,
            "active",
            &done.name,
            &done.id,
            "Connected",
            &format!(
                "Connection “{}” is authorized{}. You can close this window.",
                done.name, done.who
            ),
            None,
            true,
        ),
        Err(f) => page(
            StatusCode::from_u16(f.status).unwrap_or(StatusCode::BAD_REQUEST),
            &f.status_word,
            &f.name,
            &f.id,
            "Authorization failed",
            &f.message,
            f.hint.as_deref(),
            false,
        ),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[allow(clippy::too_many_arguments)]
fn page(
    status: StatusCode,
    outcome: &str,
    name: &str,
    id: &str,
    title: &str,
    text: &str,
    hint: Option<&str>,
    close: bool,
) -> Response {
    // The message and its hint travel apart, so the window that opened this one shows each once.
    let msg = json!({"source": "latchkey", "type": "authorization", "status": outcome, "connection": id, "name": name, "message": text, "hint": hint});
    let script_msg = serde_json::to_string(&msg)
        .unwrap_or_default()
        .replace('<', "\\u003c");
    let close_js = if close {
        "setTimeout(function(){window.close();}, 300);"
    } else {
        ""
    };
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{t}</title>\
<style>body{{font:16px system-ui,sans-serif;margin:3rem auto;max-width:36rem;padding:0 1rem;color:#1d2330}}h1{{font-size:1.4rem}}p{{line-height:1.5}}</style></head>\
<body><h1>{t}</h1><p id=\"outcome\" data-status=\"{o}\">{x}</p>{h}\
<script>(function(){{var m={m};try{{if(window.opener){{window.opener.postMessage(m, window.location.origin);}}}}catch(e){{}}{c}}})();</script></body></html>",
        t = escape(title),
        o = escape(outcome),
        x = escape(text),
        h = hint
            .map(|h| format!("<p id=\"hint\"><strong>Hint:</strong> {}</p>", escape(h)))
            .unwrap_or_default(),
        m = script_msg,
        c = close_js
    );
    (
        status,
        [
            ("cache-control", "no-store"),
            ("referrer-policy", "no-referrer"),
        ],
        Html(body),
    )
        .into_response()
}
