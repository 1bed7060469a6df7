//! API keys: how they look, how they are stored (SHA-256 only), and the `Caller` extractor that
//! authenticates a request from an in-memory cache of key hashes.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use base64::Engine;
use latchkey_core::ids::{ApiKeyId, WorkspaceId};
use latchkey_core::model::{ApiKey, Scope, Workspace};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a looked-up key is trusted before the store is asked again. A revoke on this
/// instance takes effect at once; on another instance of a cluster within this time.
const CACHE_TTL: Duration = Duration::from_secs(10);
const CACHE_MAX: usize = 10_000;

/// A new API key: `lk_` and 43 characters of randomness (256 bits).
pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "lk_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The stored form of a key. Keys are 256-bit random, so a plain SHA-256 is not guessable.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The part of a key shown in lists, to recognise it.
pub fn key_prefix(key: &str) -> String {
    key.chars().take(10).collect()
}

#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<String, (Option<ApiKey>, Instant)>>,
}

impl KeyCache {
    fn get(&self, hash: &str) -> Option<Option<ApiKey>> {
        let map = self.entries.lock().expect("key cache lock");
        map.get(hash)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(k, _)| k.clone())
    }

    fn put(&self, hash: String, key: Option<ApiKey>) {
        let mut map = self.entries.lock().expect("key cache lock");
        if map.len() >= CACHE_MAX {
            map.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
            if map.len() >= CACHE_MAX {
                map.clear();
            }
        }
        map.insert(hash, (key, Instant::now()));
    }

    /// Forgets a key at once (after a revoke).
    pub fn forget(&self, id: &ApiKeyId) {
        self.entries
            .lock()
            .expect("key cache lock")
            .retain(|_, (k, _)| k.as_ref().map(|k| &k.id) != Some(id));
    }
}

/// Failed sign-ins (unknown, revoked or malformed API keys, over the API or the UI's sign-in
/// form) counted per client address. Past [`FREE_FAILURES`] in [`FAILURE_WINDOW`], every attempt
/// from that address answers 429 until the window has passed: guessing keys gets slow, and a
/// throttled caller learns nothing about whether a key was right.
#[derive(Default)]
pub struct AuthThrottle {
    failures: Mutex<HashMap<std::net::IpAddr, (u32, Instant)>>,
}

pub const FREE_FAILURES: u32 = 10;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

impl AuthThrottle {
    /// Seconds until the address may try again, when it is throttled.
    pub fn blocked(&self, ip: std::net::IpAddr) -> Option<u32> {
        let map = self.failures.lock().expect("throttle lock");
        let (count, since) = map.get(&ip)?;
        let left = FAILURE_WINDOW.checked_sub(since.elapsed())?;
        (*count >= FREE_FAILURES).then(|| left.as_secs().max(1) as u32)
    }

    pub fn fail(&self, ip: std::net::IpAddr) {
        let mut map = self.failures.lock().expect("throttle lock");
        if map.len() > 100_000 {
            map.retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
        }
        let e = map.entry(ip).or_insert((0, Instant::now()));
        if e.1.elapsed() >= FAILURE_WINDOW {
            *e = (0, Instant::now());
        }
        e.0 += 1;
        if e.0 == FREE_FAILURES {
            tracing::warn!(client = %ip, "repeated failed sign-ins: throttling this address");
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: ApiKeyId,
    pub workspace: Option<WorkspaceId>,
    pub scopes: Vec<Scope>,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.workspace.is_none()
    }

    /// The actor recorded in audit events.
    pub fn actor(&self) -> String {
        self.key_id.to_string()
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden("this needs an admin API key")
                .hint("workspace keys cannot manage workspaces or API keys"))
        }
    }

    /// Whether this caller may see the workspace at all. Another workspace's things answer 404.
    pub fn can_see(&self, ws: &Workspace) -> bool {
        self.workspace.as_ref().is_none_or(|w| *w == ws.id)
    }

    pub fn require_scope(&self, scope: Scope) -> Result<(), ApiError> {
        if self.is_admin() || self.scopes.contains(&scope) {
            Ok(())
        } else {
            Err(
                ApiError::forbidden(format!("this API key lacks the `{scope}` scope"))
                    .hint("create a key with that scope (latchkey key create --scope …)")
                    .details(serde_json::json!({ "required_scope": scope })),
            )
        }
    }
}

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
        let Some(header) = parts.headers.get(header::AUTHORIZATION) else {
            // The web UI's session cookie (HttpOnly, SameSite=Strict, sealed); requests that
            // change something must also carry its CSRF token.
            return match crate::ui::session::from_headers(state, &parts.headers) {
                None => Err(unauthorized("no API key was given")),
                Some(None) => Err(unauthorized("the web UI session expired or is not valid")
                    .hint("sign in again at /ui/login")),
                Some(Some(session)) => {
                    if !parts.method.is_safe() {
                        session.check_csrf(&parts.headers)?;
                    }
                    caller_for_key(state, session.api_key(), peer(parts)).await
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
        caller_for_key(state, key, peer(parts)).await
    }
}

/// The client's address, when the server knows it.
pub fn peer(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The caller an API key stands for (through the cache), or 401 for an unknown, malformed or
/// revoked key.
pub async fn caller_for_key(
    state: &AppState,
    key: &str,
    peer: Option<std::net::IpAddr>,
) -> Result<Caller, ApiError> {
    if let Some(secs) = peer.and_then(|ip| state.throttle.blocked(ip)) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_failures",
            "too many failed sign-ins from this address",
        )
        .hint(format!("wait {secs} s; check the API key you are sending"))
        .retry_after(secs));
    }
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
    if let (Err(e), Some(ip)) = (&result, peer) {
        if e.status == StatusCode::UNAUTHORIZED {
            state.throttle.fail(ip);
        }
    }
    result
}

async fn lookup(state: &AppState, key: &str) -> Result<Caller, ApiError> {
    if !key.starts_with("lk_") || key.len() > 200 {
        return Err(unauthorized("that is not a Latchkey API key"));
    }
    let hash = hash_key(key);
    let found = match state.keys.get(&hash) {
        Some(k) => k,
        None => {
            let k = state.store.api_key_by_hash(&hash).await?;
            state.keys.put(hash, k.clone());
            k
        }
    };
    match found {
        Some(k) if k.revoked_at.is_none() => Ok(Caller {
            key_id: k.id,
            workspace: k.workspace_id,
            scopes: k.scopes,
        }),
        Some(_) => Err(unauthorized("this API key was revoked")),
        None => Err(unauthorized("unknown API key")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_hash_stably() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a, b);
        assert!(a.starts_with("lk_") && a.len() == 46, "{a}");
        assert_eq!(hash_key(&a), hash_key(&a));
        assert_ne!(hash_key(&a), hash_key(&b));
        assert!(!hash_key(&a).contains(&a[3..]));
    }
}
