//! The web UI's session, kept by the server. The cookie holds only a random session id (256
//! bits, unrelated to any key); the store keeps its SHA-256 with the subject that signed in
//! (an API key now, a person later), a CSRF token and an expiry. Every instance of a cluster
//! reads the same store, so signing out, or revoking the key a session was made with, ends it
//! everywhere at once. The browser cannot read the cookie (HttpOnly) nor send it from another
//! site (SameSite=Strict); requests that change something also need the CSRF token in a header.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::http::{header, HeaderMap, HeaderValue};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{Duration, Utc};
use latchkey_core::model::{SessionSubject, UiSession};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;

/// The cookie's name.
pub const COOKIE: &str = "latchkey_session";
/// The header that carries the CSRF token on unsafe requests.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a sign-in lasts.
pub const TTL_SECONDS: i64 = 12 * 60 * 60;
/// The length of a session id as the cookie carries it (32 bytes, base64url).
const ID_LENGTH: usize = 43;

/// An open session.
pub struct Session {
    subject: SessionSubject,
    csrf: String,
    expires_at: i64,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("subject", &self.subject)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub fn subject(&self) -> &SessionSubject {
        &self.subject
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

    fn from_record(r: UiSession) -> Self {
        Self {
            subject: r.subject,
            csrf: r.csrf_token,
            expires_at: r.expires_at.timestamp(),
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

/// The stored form of a session id.
fn hash_id(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// Starts a session for `subject` (already checked): the cookie value and the session.
pub async fn start(state: &AppState, subject: SessionSubject) -> ApiResult<(String, Session)> {
    let id = random_token();
    let now = Utc::now();
    let record = UiSession {
        id_hash: hash_id(&id),
        subject,
        csrf_token: random_token(),
        created_at: now,
        expires_at: now + Duration::seconds(TTL_SECONDS),
    };
    state.store.insert_session(&record).await?;
    // Sweeping now and then keeps the table to live sessions without a background task.
    if rand::random::<u8>() == 0 {
        if let Err(e) = state.store.delete_expired_sessions(now).await {
            tracing::warn!(error = %e, "could not sweep expired web UI sessions");
        }
    }
    Ok((id, Session::from_record(record)))
}

/// The live session a cookie value names, if any.
pub async fn open(state: &AppState, value: &str) -> ApiResult<Option<Session>> {
    if value.len() != ID_LENGTH || URL_SAFE_NO_PAD.decode(value).is_err() {
        return Ok(None);
    }
    Ok(state
        .store
        .session(&hash_id(value), Utc::now())
        .await?
        .map(Session::from_record))
}

/// Ends the session a cookie value names (on every instance: the store is shared).
pub async fn end(state: &AppState, value: &str) -> ApiResult<()> {
    if value.len() == ID_LENGTH {
        state.store.delete_session(&hash_id(value)).await?;
    }
    Ok(())
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

/// `None` when the request has no session cookie; `Some(None)` when it has one that names no
/// live session (expired, signed out, or never ours); `Some(Some(session))` otherwise.
pub async fn from_headers(
    state: &AppState,
    headers: &HeaderMap,
) -> ApiResult<Option<Option<Session>>> {
    match cookie_value(headers) {
        None => Ok(None),
        Some(v) => Ok(Some(open(state, v).await?)),
    }
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

    #[test]
    fn session_ids_are_long_random_and_stored_hashed() {
        let a = random_token();
        let b = random_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), ID_LENGTH);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len() * 8, 256);
        assert!(!hash_id(&a).contains(&a));
    }
}
