//! OAuth 1.0a three-legged authorization (RFC 5849 §2) on the same machinery as OAuth 2.0:
//! the temporary credentials are asked for with a callback at `<public url>/oauth/callback`
//! carrying a single-use `state`; their secret is sealed in that state's record (never stored in
//! the clear, never in the browser); the browser approves at the provider and comes back with
//! `oauth_token` and `oauth_verifier`; the token credentials obtained with them are sealed into
//! the connection's credential fields (`token_id`, `token_secret`), checked, and the connection
//! becomes active.

use super::oauth1::{self, spec, Keys};
use crate::error::{ApiError, ApiResult};
use crate::oauth::{hash_state, random_token, redirect_uri, STATE_TTL_MINUTES};
use crate::state::AppState;
use axum::http::StatusCode;
use chrono::{Duration, Utc};
use latchkey_core::catalog::AppEntry;
use latchkey_core::model::{ConnectionRecord, OAuthState, Workspace};
use latchkey_core::scrub::{self, Scrubber};
use latchkey_core::secret::{SecretFields, SecretString};
use serde_json::{Map, Value};
use url::Url;

const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// The consumer keys of a connection, with the given token (none for the temporary credential
/// request).
fn consumer(
    settings: &Map<String, Value>,
    creds: &SecretFields,
    token: Option<String>,
    token_secret: String,
) -> ApiResult<Keys> {
    let method = settings
        .get("signature_method")
        .and_then(Value::as_str)
        .unwrap_or("HMAC-SHA256");
    let field = |n: &str| -> ApiResult<String> {
        creds
            .expose(n)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                ApiError::invalid(&format!("credentials.{n}"), format!("`{n}` is required"))
            })
    };
    Ok(Keys {
        consumer_key: field("consumer_key")?,
        consumer_secret: field("consumer_secret")?,
        token,
        token_secret,
        realm: settings
            .get("realm")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
            .map(str::to_string),
        method: oauth1::Method::parse(method).ok_or_else(|| {
            ApiError::invalid("settings.signature_method", "unknown signature method")
        })?,
    })
}

/// A signed POST to one of the provider's token endpoints; its form answer.
async fn token_request(
    state: &AppState,
    app: &AppEntry,
    url: &Url,
    keys: &Keys,
    extra: &[(&str, &str)],
    what: &str,
) -> ApiResult<Vec<(String, String)>> {
    let url = state
        .outbound
        .prepare(url)
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "upstream_blocked", e.to_string()))?;
    let mut auth =
        http::HeaderValue::from_str(&oauth1::authorization(keys, "POST", &url, &[], extra))
            .map_err(|_| {
                ApiError::invalid(
                    "credentials",
                    "the consumer key cannot go in an HTTP header",
                )
            })?;
    auth.set_sensitive(true);
    let resp = state
        .outbound
        .client()
        .post(url)
        .timeout(TIMEOUT)
        .header(http::header::AUTHORIZATION, auth)
        .header(http::header::CONTENT_LENGTH, "0")
        .send()
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
                format!(
                    "{} could not be reached for the {what}: {}",
                    app.name,
                    crate::verify::connect_reason(&e)
                ),
            )
        })?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    let mut scrubber = Scrubber::new();
    scrubber.add(&keys.consumer_secret);
    scrubber.add(&keys.token_secret);
    if !status.is_success() {
        let said = scrub::provider_summary(
            &body,
            &scrubber,
            status.canonical_reason().unwrap_or("refused"),
        );
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "oauth1_refused",
            format!("{} refused the {what} ({status}): {said}", app.name),
        )
        .hint("check the consumer key and secret, and that the callback URL is allowed for the application at the provider"));
    }
    Ok(url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect())
}

fn pick(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .filter(|v| !v.is_empty() && v.len() <= 4096)
}

/// Asks for temporary credentials and answers the provider's authorization URL for the
/// browser. Earlier pending states of the connection stop working.
pub async fn begin(state: &AppState, ws: &Workspace, conn: &ConnectionRecord) -> ApiResult<String> {
    let app = crate::directory::app_entry(state, &conn.app)?;
    let s = spec(app)?;
    let creds = crate::vault::decrypt(state, conn).await?;
    let keys = consumer(&conn.settings, &creds, None, String::new())?;
    let raw_state = random_token(32);
    let state_hash = hash_state(&raw_state);
    let redirect = redirect_uri(state);
    let mut callback = Url::parse(&redirect)
        .map_err(|_| ApiError::invalid("public_url", "the public URL is not a URL"))?;
    callback.query_pairs_mut().append_pair("state", &raw_state);
    let kept = Default::default();
    let request_url = app.fill(&s.request_token_url, &conn.settings, &kept)?;
    let answer = token_request(
        state,
        app,
        &request_url,
        &keys,
        &[("oauth_callback", callback.as_str())],
        "temporary credential request",
    )
    .await?;
    let (Some(token), Some(secret)) = (
        pick(&answer, "oauth_token"),
        pick(&answer, "oauth_token_secret"),
    ) else {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "oauth1_refused",
            format!("{} answered the temporary credential request without oauth_token and oauth_token_secret", app.name),
        ));
    };
    let mut sealed = SecretFields::new();
    sealed.insert("request_token", SecretString::from(token.clone()));
    sealed.insert("request_token_secret", SecretString::from(secret));
    let sealed = state
        .keyring
        .seal_fields(
            &ws.data_key_id,
            "oauth_state",
            &state_hash,
            "verifier",
            &sealed,
        )
        .await?;
    let now = Utc::now();
    state.store.delete_oauth_states(&conn.id).await?;
    state
        .store
        .insert_oauth_state(&OAuthState {
            state_hash,
            workspace_id: ws.id.clone(),
            connection_id: conn.id.clone(),
            verifier: Some(sealed),
            redirect_uri: callback.to_string(),
            created_at: now,
            expires_at: now + Duration::minutes(STATE_TTL_MINUTES),
        })
        .await?;
    let mut url = app.fill(&s.authorize_url, &conn.settings, &kept)?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("oauth_token", &token);
        for (k, v) in &s.authorize_params {
            q.append_pair(k, &app.fill_text(v, &conn.settings));
        }
    }
    Ok(state
        .config
        .outbound_rewrites
        .apply(&url)
        .unwrap_or(url)
        .to_string())
}

/// Exchanges the approved temporary credentials (opened from the state record) for token
/// credentials, and answers the connection's credential fields with them added.
pub async fn finish(
    state: &AppState,
    st: &OAuthState,
    conn: &ConnectionRecord,
    oauth_token: Option<&str>,
    oauth_verifier: Option<&str>,
) -> ApiResult<SecretFields> {
    let app = crate::directory::app_entry(state, &conn.app)?;
    let s = spec(app)?;
    let opened = match &st.verifier {
        Some(sealed) => {
            state
                .keyring
                .open_fields(sealed, "oauth_state", &st.state_hash, "verifier")
                .await?
        }
        None => SecretFields::new(),
    };
    let request_token = opened
        .expose("request_token")
        .unwrap_or_default()
        .to_string();
    let request_secret = opened
        .expose("request_token_secret")
        .unwrap_or_default()
        .to_string();
    if request_token.is_empty() || oauth_token != Some(request_token.as_str()) {
        return Err(ApiError::invalid(
            "oauth_token",
            "the provider sent back another token than the one this authorization asked for",
        )
        .hint("start the authorization again from Latchkey"));
    }
    let Some(verifier) = oauth_verifier.filter(|v| !v.is_empty() && v.len() <= 512) else {
        return Err(ApiError::invalid(
            "oauth_verifier",
            "the provider sent no oauth_verifier back",
        )
        .hint("the authorization was not approved; start it again"));
    };
    let mut creds = crate::vault::decrypt(state, conn).await?;
    let keys = consumer(&conn.settings, &creds, Some(request_token), request_secret)?;
    let access_url = app.fill(&s.access_token_url, &conn.settings, &Default::default())?;
    let answer = token_request(
        state,
        app,
        &access_url,
        &keys,
        &[("oauth_verifier", verifier)],
        "token request",
    )
    .await?;
    let (Some(token), Some(secret)) = (
        pick(&answer, "oauth_token"),
        pick(&answer, "oauth_token_secret"),
    ) else {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "oauth1_refused",
            format!(
                "{} answered the token request without oauth_token and oauth_token_secret",
                app.name
            ),
        ));
    };
    creds.insert("token_id", SecretString::from(token));
    creds.insert("token_secret", SecretString::from(secret));
    Ok(creds)
}
