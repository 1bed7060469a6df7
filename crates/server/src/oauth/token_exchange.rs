//! Token exchanges: the connection's credentials are posted to the login endpoint its catalog
//! entry names, and the session token of the answer is kept (sealed) and injected by the
//! entry's rule. The session is renewed like any token: ahead of its expiry, or after the
//! application answered 401, through the one refresh in flight per connection.
//!
//! Also what both direct modes (this one and service accounts) share: the POST to a token or
//! login endpoint with its failure scrubbed, and the dispatch from an auth mode.

pub use super::exchange_http::{lifetime, post};
use super::grant::{GrantError, Tokens};
use super::service_account;
use crate::error::{ApiError, ApiResult};
use crate::outbound::Outbound;
use chrono::{Duration, Utc};
use latchkey_core::catalog::{json_path, AppEntry, TokenBody};
use latchkey_core::exchange::TokenExchangeSpec;
use latchkey_core::model::{AuthMode, TokenMeta};
use latchkey_core::secret::{SecretFields, SecretString};
use serde_json::{Map, Value};
use url::Url;

/// The spec of the entry, for the token_exchange mode.
pub fn spec(app: &AppEntry) -> ApiResult<&TokenExchangeSpec> {
    app.token_exchange.as_ref().ok_or_else(|| {
        ApiError::invalid("auth_mode", format!("`{}` has no login endpoint", app.id))
    })
}

/// The login endpoint of a connection, filled from its settings.
pub fn login_url(app: &AppEntry, settings: &Map<String, Value>) -> ApiResult<Url> {
    let spec = spec(app)?;
    Ok(app.fill(&spec.login_url, settings, &Default::default())?)
}

fn lookup(name: &str, settings: &Map<String, Value>, creds: &SecretFields) -> String {
    creds
        .expose(name)
        .map(str::to_string)
        .or_else(|| match settings.get(name) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            _ => None,
        })
        .unwrap_or_default()
}

fn fill(template: &str, settings: &Map<String, Value>, creds: &SecretFields) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|i| open + i) else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str(&lookup(&rest[open + 1..close], settings, creds));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

fn set_dotted(doc: &mut Map<String, Value>, path: &str, v: Value) {
    match path.split_once('.') {
        None => {
            doc.insert(path.to_string(), v);
        }
        Some((head, tail)) => {
            let inner = doc
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !inner.is_object() {
                *inner = Value::Object(Map::new());
            }
            if let Value::Object(m) = inner {
                set_dotted(m, tail, v);
            }
        }
    }
}

/// Logs in and reads the session token from the answer.
pub async fn grant(
    out: &Outbound,
    app: &AppEntry,
    settings: &Map<String, Value>,
    creds: &SecretFields,
) -> Result<Tokens, GrantError> {
    let spec = spec(app).map_err(|e| GrantError::Transport(e.message))?;
    let url = login_url(app, settings).map_err(|e| GrantError::Transport(e.message))?;
    let values: Vec<(String, String)> = spec
        .params
        .iter()
        .map(|(k, t)| (k.clone(), fill(t, settings, creds)))
        .collect();
    let scrubber = crate::verify::scrubber_for(app, AuthMode::TokenExchange, creds);
    let now = Utc::now();
    let body = match spec.body {
        TokenBody::Form => {
            let form: Vec<(&str, &str)> = values
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            post(out, &url, Some(&form), None, &scrubber).await?
        }
        TokenBody::Json => {
            let mut doc = Map::new();
            for (k, v) in &values {
                set_dotted(&mut doc, k, Value::String(v.clone()));
            }
            post(out, &url, None, Some(&Value::Object(doc)), &scrubber).await?
        }
    };
    let doc: Value = serde_json::from_str(&body).map_err(|_| {
        GrantError::Transport("the login endpoint answered 2xx but not with JSON".into())
    })?;
    let token = match json_path(&doc, &spec.token_path) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => {
            return Err(GrantError::Transport(format!(
                "the login answer has no session token at `{}`",
                spec.token_path
            )))
        }
    };
    let life = lifetime(
        spec.expires_in_path
            .as_deref()
            .and_then(|p| json_path(&doc, p)),
        spec.lifetime_seconds,
    );
    let mut meta = TokenMeta {
        issued_at: Some(now),
        expires_at: Some(now + Duration::seconds(life)),
        refreshed_at: Some(now),
        ..TokenMeta::default()
    };
    for (name, path) in &spec.keep {
        let v = match json_path(&doc, path) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => continue,
        };
        if v.len() <= 512 && !scrubber.finds(&v) && v != token {
            meta.extra.insert(name.clone(), v);
        }
    }
    Ok(Tokens {
        access_token: SecretString::from(token),
        refresh_token: None,
        meta,
    })
}

/// Checks the credential of a direct-exchange connection when it is given (a key file that is
/// not one is refused before anything is sent).
pub fn check_credentials(app: &AppEntry, mode: AuthMode, creds: &SecretFields) -> ApiResult<()> {
    match mode {
        AuthMode::ServiceAccount => service_account::check_credentials(app, creds).map(|_| ()),
        AuthMode::TokenExchange => spec(app).map(|_| ()),
        _ => Ok(()),
    }
}

/// A token for a direct-exchange connection, from its credential alone.
pub async fn direct_grant(
    out: &Outbound,
    app: &AppEntry,
    mode: AuthMode,
    settings: &Map<String, Value>,
    creds: &SecretFields,
) -> Result<Tokens, GrantError> {
    match mode {
        AuthMode::ServiceAccount => service_account::grant(out, app, settings, creds).await,
        AuthMode::TokenExchange => grant(out, app, settings, creds).await,
        other => Err(GrantError::Transport(format!(
            "{other} has no direct exchange"
        ))),
    }
}

/// The destinations of a direct-exchange connection's secret material besides its API base:
/// the token or login endpoint.
pub fn destinations(
    app: &AppEntry,
    mode: AuthMode,
    settings: &Map<String, Value>,
    creds: &SecretFields,
) -> ApiResult<Vec<String>> {
    let mut out = vec![];
    match mode {
        AuthMode::ServiceAccount => {
            let spec = service_account::spec(app)?;
            if let Ok(u) = Url::parse(&spec.token_url) {
                out.push(u.origin().ascii_serialization());
            }
            if let Some(o) = service_account::token_origin(creds) {
                out.push(o);
            }
        }
        AuthMode::TokenExchange => {
            out.push(login_url(app, settings)?.origin().ascii_serialization());
        }
        _ => {}
    }
    Ok(out)
}

/// What to do about a failed exchange, in the words of the mode.
pub fn hint(mode: AuthMode, e: &GrantError) -> Option<String> {
    let unreachable = e.is_unreachable();
    Some(match mode {
        AuthMode::ServiceAccount if unreachable => "check that the token endpoint is reachable from the Latchkey server; Latchkey retries with back-off".into(),
        AuthMode::ServiceAccount => "the token endpoint refused the signed assertion: check that the key still exists and is enabled (IAM > Service accounts > Keys), that the scopes are allowed, and, with a subject, that domain-wide delegation grants these scopes to the account's client id".into(),
        AuthMode::TokenExchange if unreachable => "check that the login endpoint is reachable from the Latchkey server; Latchkey retries with back-off".into(),
        AuthMode::TokenExchange => "the login endpoint refused the credentials: check them (and the settings the login URL is built from), then verify the connection again".into(),
        _ => return None,
    })
}

/// A failed first exchange as the API answers it (422: nothing was saved).
pub fn failure(mode: AuthMode, e: &GrantError) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        "verification_failed",
        format!("the application refused the exchange: {e}"),
    )
    .hint(hint(mode, e).unwrap_or_default())
    .details(serde_json::json!({ "provider_error": e.code() }))
}
