//! API keys: how they look, how they are stored (SHA-256 only), and the `Caller` extractor that
//! authenticates a request from an in-memory cache of key hashes.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use base64::Engine;
use latchkey_core::ids::{ApiKeyId, UserId};
use latchkey_core::model::ApiKey;
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
/// form) counted per client address. Past [`FREE_FAILURES`] in [`FAILURE_WINDOW`], each further
/// failure from that address waits a little longer before its answer (up to [`MAX_DELAY`]) and
/// answers 429 with `Retry-After`: guessing keys gets slow. A request with a valid key is never
/// held back: an attacker sharing an address (or spoofing one) cannot lock anybody out.
#[derive(Default)]
pub struct AuthThrottle {
    failures: Mutex<HashMap<std::net::IpAddr, (u32, Instant)>>,
}

pub const FREE_FAILURES: u32 = 10;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// The longest a failed attempt is held before its answer.
pub const MAX_DELAY: Duration = Duration::from_secs(3);

impl AuthThrottle {
    /// Counts a failure; past the free ones, how long to hold the answer and the seconds the
    /// address should wait before trying again.
    pub fn fail(&self, ip: std::net::IpAddr) -> Option<(Duration, u32)> {
        let mut map = self.failures.lock().expect("throttle lock");
        if map.len() > 100_000 {
            map.retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
        }
        let e = map.entry(ip).or_insert((0, Instant::now()));
        if e.1.elapsed() >= FAILURE_WINDOW {
            *e = (0, Instant::now());
        }
        e.0 = e.0.saturating_add(1);
        if e.0 == FREE_FAILURES + 1 {
            tracing::warn!(client = %ip, "repeated failed sign-ins: slowing this address down");
        }
        let excess = e.0.checked_sub(FREE_FAILURES).filter(|n| *n > 0)?;
        let delay = (Duration::from_millis(100) * excess).min(MAX_DELAY);
        let left = FAILURE_WINDOW
            .saturating_sub(e.1.elapsed())
            .as_secs()
            .max(1) as u32;
        Some((delay, left))
    }
}

/// The networks whose `X-Forwarded-For` is believed (`LATCHKEY_TRUSTED_PROXIES`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    /// Comma-separated CIDR ranges or single addresses; empty trusts nobody.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = match item.parse::<ipnet::IpNet>() {
                Ok(n) => n,
                Err(_) => match item.parse::<std::net::IpAddr>() {
                    Ok(ip) => ipnet::IpNet::from(ip),
                    Err(_) => {
                        return Err(format!(
                            "`{item}` is not a CIDR range (10.0.0.0/8, fd00::/8) or an address"
                        ))
                    }
                },
            };
            nets.push(net.trunc());
        }
        Ok(Self(nets))
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client's address: the direct peer, unless the peer is a trusted proxy; then the
    /// nearest address in `X-Forwarded-For` that is not one of ours (the entries a proxy
    /// appended last are the only ones it vouches for; the leftmost are the client's word).
    pub fn client(
        &self,
        peer: std::net::IpAddr,
        headers: &axum::http::HeaderMap,
    ) -> std::net::IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let hops: Vec<std::net::IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().parse::<std::net::IpAddr>().map(canonical))
            .collect::<Result<_, _>>()
            .unwrap_or_default();
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            client = hop;
            if !self.contains(hop) {
                break;
            }
        }
        client
    }
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they are.
fn canonical(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

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
        caller_for_key(state, key, client_ip(state, parts)).await
    }
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
        let caller = Caller::from_request_parts(parts, state).await?;
        debug_assert!(!caller.via_session);
        Ok(KeyCaller(caller))
    }
}

/// The client's address: the TCP peer, or what a trusted proxy says in `X-Forwarded-For`.
pub fn client_ip(state: &AppState, parts: &Parts) -> Option<std::net::IpAddr> {
    peer(parts).map(|p| state.config.trusted_proxies.client(p, &parts.headers))
}

/// The client's address, when the server knows it.
pub fn peer(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The caller a web UI session stands for, or 401 when what it was made with is gone.
pub async fn caller_for_session(
    state: &AppState,
    session: &crate::ui::session::Session,
) -> Result<Caller, ApiError> {
    match session.subject() {
        latchkey_core::model::SessionSubject::ApiKey(id) => match state.store.api_key(id).await? {
            Some(k) if k.revoked_at.is_none() => {
                let mut caller = caller_of_key(state, k).await?;
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
async fn caller_of_key(state: &AppState, k: ApiKey) -> Result<Caller, ApiError> {
    let person = match &k.user_id {
        None => None,
        Some(uid) => Some(
            person(state, uid)
                .await?
                .ok_or_else(|| unauthorized("the person this API key belonged to was removed"))?,
        ),
    };
    Ok(Caller {
        key: Some(KeyGrant {
            id: k.id,
            name: k.name,
            workspace: k.workspace_id,
            scopes: k.scopes,
        }),
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
        Some(k) if k.revoked_at.is_none() => caller_of_key(state, k).await,
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

#[cfg(test)]
mod proxy_tests {
    use super::*;
    use axum::http::HeaderMap;

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", v.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, ::1").unwrap();
        let client: std::net::IpAddr = "203.0.113.7".parse().unwrap();
        let proxy: std::net::IpAddr = "10.1.2.3".parse().unwrap();
        let outsider: std::net::IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(trusted.client(proxy, &xff("203.0.113.7")), client);
        // A client's own claim at the left is not believed past the proxy's entry.
        assert_eq!(
            trusted.client(proxy, &xff("1.2.3.4, 203.0.113.7, 10.0.0.9")),
            client
        );
        assert_eq!(trusted.client(outsider, &xff("203.0.113.7")), outsider);
        assert_eq!(trusted.client(proxy, &HeaderMap::new()), proxy);
        assert_eq!(trusted.client(proxy, &xff("garbage")), proxy);
        let none = TrustedProxies::parse("").unwrap();
        assert_eq!(none.client(proxy, &xff("203.0.113.7")), proxy);
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("nope").is_err());
    }
}
