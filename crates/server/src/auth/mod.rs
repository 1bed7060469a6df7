//! API keys: how they look, how they are stored (SHA-256 only), and the `Caller` extractor that
//! authenticates a request from an in-memory cache of key hashes.

pub mod keys;
pub mod proxies;

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use latchkey_core::ids::UserId;
use std::net::SocketAddr;

pub use keys::{
    generate_key, hash_key, key_prefix, AuthThrottle, KeyCache, FAILURE_WINDOW, FREE_FAILURES,
    MAX_DELAY,
};
pub use proxies::TrustedProxies;

pub use crate::access::{Caller, KeyGrant, Need, Person};

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).hint(
        "send `Authorization: Bearer <api key>`; the first admin key is in <data dir>/admin.key",
    )
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        caller_of(parts, state, peer(parts)).await
    }
}

/// The caller a request stands for: its API key, or its web UI session (whose requests that
/// change something must also carry the CSRF token). `peer` is the TCP peer it came from.
async fn caller_of(
    parts: &Parts,
    state: &AppState,
    peer: Option<SocketAddr>,
) -> Result<Caller, ApiError> {
    let Some(header) = parts.headers.get(header::AUTHORIZATION) else {
        // The web UI's session cookie (HttpOnly, SameSite=Strict); requests that change
        // something must also carry its CSRF token.
        return match crate::ui::session::from_headers(state, &parts.headers).await? {
            None => Err(unauthorized("no API key was given")),
            Some(None) => Err(unauthorized("the web UI session expired or is not valid")
                .hint("sign in again at /ui/login")),
            Some(Some(session)) => {
                if !parts.method.is_safe() {
                    session.check_csrf(&parts.headers)?;
                }
                caller_for_session(state, &session).await
            }
        };
    };
    let value = header
        .to_str()
        .map_err(|_| unauthorized("the Authorization header is not valid text"))?;
    let key = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <api key>`"))?;
    let client = peer.map(|p| state.config.trusted_proxies.client(p.ip(), &parts.headers));
    caller_for_key(state, key, client).await
}

/// A caller authenticated by an API key in the `Authorization` header, never by the web UI's
/// session cookie. The endpoints that hand out secret material or act with it (tokens,
/// credentials, the proxy) take only this: a page that manages to run script in a signed-in
/// browser still cannot reach them.
#[derive(Debug, Clone)]
pub struct KeyCaller(pub Caller);

impl FromRequestParts<AppState> for KeyCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        key_caller(parts, state, peer(parts)).await
    }
}

/// The [`KeyCaller`] of a request that came from `peer` (the TCP peer, when known).
pub async fn key_caller(
    parts: &Parts,
    state: &AppState,
    peer: Option<SocketAddr>,
) -> Result<KeyCaller, ApiError> {
    if parts.headers.get(header::AUTHORIZATION).is_none()
        && crate::ui::session::cookie_value(&parts.headers).is_some()
    {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "api_key_required",
            "the web UI session is not accepted here: tokens, credentials and the proxy need an API key",
        )
        .hint("send `Authorization: Bearer <api key>` with a key that has the needed scope"));
    }
    let caller = caller_of(parts, state, peer).await?;
    debug_assert!(!caller.via_session);
    Ok(KeyCaller(caller))
}

/// The TCP peer of a request the router serves, when the server knows it.
pub fn peer(parts: &Parts) -> Option<SocketAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}

/// The caller a web UI session stands for, or 401 when what it was made with is gone.
pub async fn caller_for_session(
    state: &AppState,
    session: &crate::ui::session::Session,
) -> Result<Caller, ApiError> {
    match session.subject() {
        latchkey_core::model::SessionSubject::ApiKey(id) => match state.store.api_key(id).await? {
            Some(k) if k.revoked_at.is_none() => {
                let mut caller = caller_of_key(state, &keys::KnownKey::of(k)).await?;
                caller.via_session = true;
                Ok(caller)
            }
            _ => Err(
                unauthorized("the API key this web UI session was made with was revoked")
                    .hint("sign in again at /ui/login"),
            ),
        },
        latchkey_core::model::SessionSubject::User(id) => match person(state, id).await? {
            Some(p) => Ok(Caller {
                key: None,
                person: Some(p),
                via_session: true,
            }),
            None => Err(
                unauthorized("the person this web UI session belonged to was removed")
                    .hint("sign in again at /ui/login"),
            ),
        },
    }
}

/// A person with their roles as stored now; `None` when they were removed.
pub async fn person(state: &AppState, id: &UserId) -> Result<Option<Person>, ApiError> {
    let Some(u) = state.store.user(id).await? else {
        return Ok(None);
    };
    let roles = state
        .store
        .memberships_of(id)
        .await?
        .into_iter()
        .map(|m| (m.workspace_id, m.role))
        .collect();
    Ok(Some(Person {
        id: u.id,
        name: u.display_name,
        email: u.email,
        instance_admin: u.instance_admin,
        roles,
    }))
}

/// The caller a valid key stands for: the key's own limits, and, for a person's key, the
/// person as they are now (a removed person's key does nothing).
async fn caller_of_key(state: &AppState, k: &keys::KnownKey) -> Result<Caller, ApiError> {
    let person = match &k.user {
        None => None,
        Some(uid) => Some(
            person(state, uid)
                .await?
                .ok_or_else(|| unauthorized("the person this API key belonged to was removed"))?,
        ),
    };
    Ok(Caller {
        key: Some(k.grant.clone()),
        person,
        via_session: false,
    })
}

/// The caller an API key stands for (through the cache), or 401 for an unknown, malformed or
/// revoked key. A valid key always gets in; failures from an address past the free ones are
/// held a while and answered 429.
pub async fn caller_for_key(
    state: &AppState,
    key: &str,
    client: Option<std::net::IpAddr>,
) -> Result<Caller, ApiError> {
    if key.starts_with(crate::connect::TOKEN_PREFIX) {
        // A connect session's token is never an API key. Nothing is being guessed here, so
        // it does not count as a failed sign-in.
        return Err(
            unauthorized("a connect session token is not an API key").hint(
                "a connect session token only works on the /v1/connect endpoints of its own page",
            ),
        );
    }
    let result = lookup(state, key).await;
    if let (Err(e), Some(ip)) = (&result, client) {
        if e.status == StatusCode::UNAUTHORIZED {
            if let Some((delay, secs)) = state.throttle.fail(ip) {
                tokio::time::sleep(delay).await;
                return Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_failures",
                    "too many failed sign-ins from this address",
                )
                .hint(format!(
                    "wait {secs} s; check the API key you are sending (a valid key is never refused)"
                ))
                .retry_after(secs));
            }
        }
    }
    result
}

async fn lookup(state: &AppState, key: &str) -> Result<Caller, ApiError> {
    if !key.starts_with("lk_") || key.len() > 200 {
        return Err(unauthorized("that is not a Latchkey API key"));
    }
    let hash = keys::key_digest(key);
    let found = match state.keys.get(&hash) {
        Some(k) => k,
        None => {
            let k = state
                .store
                .api_key_by_hash(&hex::encode(hash))
                .await?
                .map(keys::KnownKey::of);
            state.keys.put(hash, k.clone());
            k
        }
    };
    match &found {
        Some(k) if !k.revoked => caller_of_key(state, k).await,
        Some(_) => Err(unauthorized("this API key was revoked")),
        None => Err(unauthorized("unknown API key")),
    }
}
