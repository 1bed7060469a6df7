//! The web UI's session: a cookie sealed with AES-256-GCM under a key derived from the master
//! key (so any instance of a cluster opens it), holding the API key the user signed in with, a
//! CSRF token and an expiry. The browser cannot read it (HttpOnly) nor send it from another
//! site (SameSite=Strict); requests that change something also need the CSRF token in a header.

use crate::error::ApiError;
use crate::state::AppState;
use axum::http::{header, HeaderMap, HeaderValue};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::fmt;
use zeroize::Zeroizing;

/// The cookie's name.
pub const COOKIE: &str = "latchkey_session";
/// The header that carries the CSRF token on unsafe requests.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a sign-in lasts.
pub const TTL_SECONDS: i64 = 12 * 60 * 60;
/// Binds the ciphertext to its use: a value sealed for something else does not open here.
const AAD: &str = "latchkey/v1/ui-session";
/// A cookie larger than this is not ours (a real one is about 200 characters).
const MAX_COOKIE: usize = 1024;

#[derive(Serialize, Deserialize)]
struct Payload {
    /// The API key.
    k: String,
    /// The CSRF token.
    c: String,
    /// Expiry, Unix seconds.
    e: i64,
}

/// An open session.
pub struct Session {
    api_key: Zeroizing<String>,
    csrf: String,
    expires_at: i64,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }

    /// Checks the `X-CSRF-Token` header of a request that changes something.
    pub fn check_csrf(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let given = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !given.is_empty() && same(given.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "this request needs the session's CSRF token in the X-CSRF-Token header",
            )
            .details(serde_json::json!({ "reason": "csrf_token_missing_or_wrong" }))
            .hint("reload the page; scripts get the token from <meta name=\"csrf-token\"> or GET /ui/session"))
        }
    }
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A new session for `api_key` (already checked) and the cookie value that carries it.
pub fn seal(state: &AppState, api_key: &str) -> (String, Session) {
    let session = Session {
        api_key: Zeroizing::new(api_key.to_string()),
        csrf: random_token(),
        expires_at: Utc::now().timestamp() + TTL_SECONDS,
    };
    let payload = Zeroizing::new(
        serde_json::to_vec(&Payload {
            k: api_key.to_string(),
            c: session.csrf.clone(),
            e: session.expires_at,
        })
        .expect("a session serializes"),
    );
    let sealed = state.keyring.session_key().seal(AAD, &payload);
    (URL_SAFE_NO_PAD.encode(sealed), session)
}

/// Opens a cookie value: `None` when it was not sealed by this cluster or has expired.
pub fn open(state: &AppState, value: &str) -> Option<Session> {
    if value.len() > MAX_COOKIE {
        return None;
    }
    let sealed = URL_SAFE_NO_PAD.decode(value).ok()?;
    let plain = state.keyring.session_key().open(AAD, &sealed).ok()?;
    let p: Payload = serde_json::from_slice(&plain).ok()?;
    if p.e <= Utc::now().timestamp() {
        return None;
    }
    Some(Session {
        api_key: Zeroizing::new(p.k),
        csrf: p.c,
        expires_at: p.e,
    })
}

/// The value of our cookie among a request's `Cookie` headers.
pub fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().trim_matches('"'))
}

/// `None` when the request has no session cookie; `Some(None)` when it has one that does not
/// open (expired, or sealed by another master key); `Some(Some(session))` otherwise.
pub fn from_headers(state: &AppState, headers: &HeaderMap) -> Option<Option<Session>> {
    cookie_value(headers).map(|v| open(state, v))
}

fn attributes(state: &AppState) -> &'static str {
    if state.public_url.scheme() == "https" {
        "; Path=/; HttpOnly; SameSite=Strict; Secure"
    } else {
        "; Path=/; HttpOnly; SameSite=Strict"
    }
}

/// The `Set-Cookie` value that starts a session.
pub fn set_cookie(state: &AppState, value: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Max-Age={TTL_SECONDS}{}",
        attributes(state)
    ))
    .expect("a base64url cookie is a valid header")
}

/// The `Set-Cookie` value that ends it.
pub fn clear_cookie(state: &AppState) -> HeaderValue {
    HeaderValue::from_str(&format!("{COOKIE}=; Max-Age=0{}", attributes(state)))
        .expect("a valid header")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; latchkey_session=xyz; b=2"),
        );
        assert_eq!(cookie_value(&h), Some("xyz"));
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("latchkey_sessionx=1"),
        );
        assert_eq!(cookie_value(&h), None);
    }

    #[test]
    fn comparison_is_exact() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}
