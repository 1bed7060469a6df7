//! `/services/oauth2/*` and the identity URL, on every host role: the routes, and what the
//! authorize, token and identity endpoints share (request pairs, the bearer token, client
//! authentication, the error answer and a user's identity URL).

mod authorize;
mod identity;
mod token;

use super::state::{OAuthError, BAD_CLIENT_ID, BAD_CLIENT_SECRET};
use super::{ConnectedApp, Ctx, User, PRODUCTION_ORIGIN, SANDBOX_ORIGIN};
use authorize::{authorize_get, authorize_post};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use identity::{identity, introspect, revoke_get, revoke_post, userinfo};
use serde_json::json;
use std::collections::HashMap;
use token::token;

pub(super) fn routes() -> Router<Ctx> {
    Router::new()
        .route(
            "/services/oauth2/authorize",
            get(authorize_get).post(authorize_post),
        )
        .route("/services/oauth2/token", post(token))
        .route("/services/oauth2/revoke", get(revoke_get).post(revoke_post))
        .route("/services/oauth2/introspect", post(introspect))
        .route("/services/oauth2/userinfo", get(userinfo).post(userinfo))
        .route("/id/{org}/{user}", get(identity).post(identity))
}

/// Form or query pairs; the first value of a repeated name wins.
pub(super) fn pairs(raw: &[u8]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw) {
        out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    out
}

fn param<'a>(p: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    p.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

/// The access token of `Authorization: Bearer …` (Salesforce also takes `OAuth …`).
pub(super) fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    let ok = scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth");
    (ok && !token.trim().is_empty()).then(|| token.trim().to_string())
}

fn oauth_error_response(e: OAuthError) -> Response {
    let body = json!({"error": e.error, "error_description": e.description});
    (
        StatusCode::BAD_REQUEST,
        [(
            header::CACHE_CONTROL,
            "no-cache,must-revalidate,max-age=0,no-store,private",
        )],
        Json(body),
    )
        .into_response()
}

struct ClientAuth {
    id: Option<String>,
    secret: Option<String>,
}

/// RFC 6749 §2.3.1: HTTP Basic carries the form-url-encoded id and secret.
fn form_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn client_auth(headers: &HeaderMap, form: &HashMap<String, String>) -> ClientAuth {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|t| {
            t.split_once(':')
                .map(|(i, s)| (form_decode(i), form_decode(s)))
        });
    match basic {
        Some((id, secret)) => ClientAuth {
            id: Some(id).filter(|s| !s.is_empty()),
            secret: Some(secret).filter(|s| !s.is_empty()),
        },
        None => ClientAuth {
            id: param(form, "client_id").map(String::from),
            secret: param(form, "client_secret").map(String::from),
        },
    }
}

/// The app named by the client, its secret checked when given (or when `need_secret`).
fn authenticate(
    ctx: &Ctx,
    auth: &ClientAuth,
    need_secret: impl FnOnce(&ConnectedApp) -> bool,
) -> Result<ConnectedApp, OAuthError> {
    let id = auth.id.as_deref().ok_or(BAD_CLIENT_ID)?;
    let app = ctx.shared.lock().app(id)?.clone();
    match auth.secret.as_deref() {
        Some(s) if s != app.consumer_secret => Err(BAD_CLIENT_SECRET),
        None if need_secret(&app) => Err(BAD_CLIENT_SECRET),
        _ => Ok(app),
    }
}

pub(super) fn id_url(user: &User) -> String {
    let host = if user.sandbox {
        SANDBOX_ORIGIN
    } else {
        PRODUCTION_ORIGIN
    };
    format!("{host}/id/{}/{}", user.org_id, user.user_id)
}
