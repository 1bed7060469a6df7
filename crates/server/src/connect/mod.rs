//! Connect sessions: a platform built on Latchkey lets its own customers (end users) connect
//! their accounts through a short-lived link, without an API key.
//!
//! The session token is a bearer credential of its own kind (`lkcs_…`, only its SHA-256 is
//! stored). It is never accepted where an API key is expected, and an API key is never accepted
//! where it is: [`SessionCaller`] is the only extractor that reads it, and only the handlers of
//! [`api`] take that extractor. What it may do is exactly: list its allowed applications, create
//! one connection for its end user (or re-authorize the one it was made for, keeping its id), and
//! drive that connection's authorization. It stops working when it expires, is cancelled, or has
//! succeeded once.

pub mod api;
pub mod page;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use base64::Engine;
use chrono::Utc;
use latchkey_core::model::{
    Branding, ConnectSession, ConnectionOwner, ConnectionRecord, ConnectionStatus, Workspace,
};
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};

/// What every session token starts with (API keys start with `lk_`, so neither is mistaken
/// for the other).
pub const TOKEN_PREFIX: &str = "lkcs_";
/// Default and bounds of `expires_in_seconds`.
pub const DEFAULT_TTL_SECONDS: i64 = 1800;
pub const MIN_TTL_SECONDS: i64 = 60;
pub const MAX_TTL_SECONDS: i64 = 86_400;

/// A new session token: the prefix and 256 bits of randomness.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The stored form of a token (random and long, so a plain SHA-256 cannot be guessed back).
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `s` has the shape of a session token (checked before any lookup).
pub fn looks_like_token(s: &str) -> bool {
    s.len() == TOKEN_PREFIX.len() + 43
        && s.starts_with(TOKEN_PREFIX)
        && s[TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Open,
    Expired,
    Completed,
    Cancelled,
}

impl SessionState {
    pub fn of(s: &ConnectSession) -> Self {
        if s.cancelled_at.is_some() {
            SessionState::Cancelled
        } else if s.completed_at.is_some() {
            SessionState::Completed
        } else if s.expires_at <= Utc::now() {
            SessionState::Expired
        } else {
            SessionState::Open
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Open => "open",
            SessionState::Expired => "expired",
            SessionState::Completed => "completed",
            SessionState::Cancelled => "cancelled",
        }
    }

    /// What a person is told about a session that no longer works (the page and the API).
    pub fn explain(self) -> (&'static str, &'static str, &'static str) {
        match self {
            SessionState::Open => ("open", "", ""),
            SessionState::Expired => (
                "connect_session_expired",
                "This connect link has expired.",
                "go back to the application that sent you here and start connecting again",
            ),
            SessionState::Completed => (
                "connect_session_spent",
                "This connect link was already used: the account is connected.",
                "nothing more to do here; to connect another account, start again from the application that sent you here",
            ),
            SessionState::Cancelled => (
                "connect_session_cancelled",
                "This connect link was cancelled.",
                "start again from the application that sent you here",
            ),
        }
    }
}

/// The 401 for a token that is unknown or malformed.
pub fn unknown_token() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "connect_session_unknown",
        "this connect link is not valid",
    )
    .hint("open the link the application gave you again, or start again from it")
}

/// A session as its token's holder is allowed to use it: open, with its workspace.
#[derive(Debug, Clone)]
pub struct SessionCaller {
    pub session: ConnectSession,
    pub ws: Workspace,
}

impl SessionCaller {
    /// The actor recorded in audit events.
    pub fn actor(&self) -> String {
        self.session.id.to_string()
    }

    pub fn owner(&self) -> ConnectionOwner {
        self.session.owner.clone()
    }
}

/// The session a token stands for, whatever its state (the page tells expired from unknown).
pub async fn find_session(
    state: &AppState,
    token: &str,
) -> ApiResult<Option<(ConnectSession, Workspace)>> {
    if !looks_like_token(token) {
        return Ok(None);
    }
    let Some(s) = state
        .store
        .connect_session_by_hash(&hash_token(token))
        .await?
    else {
        return Ok(None);
    };
    let Some(ws) = state.store.workspace_by_id(&s.workspace_id).await? else {
        return Ok(None);
    };
    Ok(Some((s, ws)))
}

/// The origin a browser request comes from must be Latchkey's own page or one of the session's
/// allowed origins. Requests without `Origin` (servers, scripts) are judged by the token alone.
fn origin_allowed(state: &AppState, headers: &HeaderMap, s: &ConnectSession) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if origin == state.public_url.origin().ascii_serialization()
        || s.allowed_origins.iter().any(|o| o == origin)
    {
        return true;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    !host.is_empty()
        && origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            == Some(host)
}

impl FromRequestParts<AppState> for SessionCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // No failure throttling here: a token is 256 random bits (nothing to guess), and one
        // address may serve many end users whose old links all fail.
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or("");
        let found = find_session(state, token).await?;
        let Some((session, ws)) = found else {
            return Err(unknown_token());
        };
        let st = SessionState::of(&session);
        if st != SessionState::Open {
            let (code, message, hint) = st.explain();
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, code, message).hint(hint));
        }
        if !origin_allowed(state, &parts.headers, &session) {
            return Err(
                ApiError::forbidden("this page's origin may not use this connect session")
                    .hint("add the origin to the session's allowed_origins"),
            );
        }
        Ok(SessionCaller { session, ws })
    }
}

/// Writes a connect-session event (`connect_session.completed`, `connection.created`, …) with the
/// end user and organization in its data. Kept in one place so that the events can also be
/// delivered to webhooks from here.
pub async fn record_event(
    state: &AppState,
    ws: &Workspace,
    actor: &str,
    kind: &str,
    session: &ConnectSession,
    conn: &ConnectionRecord,
    extra: serde_json::Value,
) {
    let event = session_event(ws, actor, kind, session, conn, extra);
    state.record(&[event]).await;
}

/// The event [`record_event`] writes, for writing it with a connection change instead.
pub fn session_event(
    ws: &Workspace,
    actor: &str,
    kind: &str,
    session: &ConnectSession,
    conn: &ConnectionRecord,
    extra: serde_json::Value,
) -> latchkey_core::model::Event {
    let mut data = json!({
        "connect_session_id": session.id,
        "connection_id": conn.id,
        "app": conn.app,
        "environment": conn.environment.as_str(),
        "status": conn.status,
        "end_user": session.owner.end_user,
        "organization": session.owner.organization,
        "reconnect": session.connection_id.is_some(),
    });
    if let (Some(d), serde_json::Value::Object(more)) = (data.as_object_mut(), extra) {
        d.extend(more);
    }
    crate::state::new_event(
        &ws.id,
        actor,
        kind,
        Some(conn.id.as_str()),
        Some(conn.name.as_str()),
        data,
    )
}

/// Spends the session once its connection is active: marks it completed (once, across
/// instances), gives a reconnected connection without an owner the session's end user, and
/// records `connect_session.completed`. Answers the connection as it now is.
pub async fn complete(
    state: &AppState,
    ws: &Workspace,
    session: &ConnectSession,
    conn: &ConnectionRecord,
) -> ApiResult<ConnectionRecord> {
    if conn.status != ConnectionStatus::Active {
        return Ok(conn.clone());
    }
    if !state
        .store
        .complete_connect_session(&session.id, Utc::now())
        .await?
    {
        return Ok(conn.clone());
    }
    let mut conn = conn.clone();
    if conn.owner.is_none() {
        for _ in 0..3 {
            let Some(mut row) = state.store.connection(&ws.id, &conn.id).await? else {
                break;
            };
            if row.owner.is_some() {
                break;
            }
            let expected = row.version;
            row.owner = Some(session.owner.clone());
            row.version += 1;
            row.updated_at = Utc::now();
            if state.store.update_connection(&row, expected).await.is_ok() {
                state.forget_connection(&row.id);
                conn = row;
                break;
            }
        }
    }
    record_event(
        state,
        ws,
        session.id.as_str(),
        "connect_session.completed",
        session,
        &conn,
        json!({}),
    )
    .await;
    Ok(conn)
}

/// Called when the OAuth callback has made a connection active: the open session that was
/// driving its authorization (if any) is spent.
pub async fn on_authorized(state: &AppState, ws: &Workspace, conn: &ConnectionRecord) {
    let sessions = match state
        .store
        .open_connect_sessions_for(&ws.id, &conn.id)
        .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "could not look up the connect sessions of a connection");
            return;
        }
    };
    for s in sessions {
        if SessionState::of(&s) == SessionState::Open {
            if let Err(e) = complete(state, ws, &s, conn).await {
                tracing::error!(error = %e.message, "could not complete a connect session");
            }
        }
    }
}

/// Why an `allowed_origins` entry is not an origin; each shows the entry (cut to 80 characters).
#[derive(Debug, Clone, thiserror::Error)]
pub enum OriginError {
    #[error("`{0}` is not an origin: wildcards are not allowed")]
    Wildcard(String),
    #[error("`{0}` is not an origin (expected scheme://host[:port])")]
    NotUrl(String),
    #[error("`{0}` is not an origin (expected https://host[:port])")]
    NotWeb(String),
    #[error(
        "`{shown}` is not an origin: it may not have a path, query or user name (write `{origin}`)"
    )]
    HasPath { shown: String, origin: String },
    #[error("`{0}` must use https (plain http is accepted only for localhost)")]
    PlainHttp(String),
}

/// Checks an `allowed_origins` entry: `scheme://host[:port]` exactly, `https` (or `http` on a
/// loopback host, for development), no path, query, fragment or user info, no wildcard.
pub fn parse_origin(raw: &str) -> Result<String, OriginError> {
    let t = raw.trim();
    if t.is_empty() || t.contains('*') {
        return Err(OriginError::Wildcard(short(t)));
    }
    let url = url::Url::parse(t).map_err(|_| OriginError::NotUrl(short(t)))?;
    let host = url.host_str().unwrap_or("");
    if host.is_empty() || !matches!(url.scheme(), "https" | "http") {
        return Err(OriginError::NotWeb(short(t)));
    }
    let origin = url.origin().ascii_serialization();
    if t.trim_end_matches('/') != origin || url.path() != "/" {
        return Err(OriginError::HasPath {
            shown: short(t),
            origin,
        });
    }
    let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
    if url.scheme() == "http" && !loopback {
        return Err(OriginError::PlainHttp(short(t)));
    }
    Ok(origin)
}

fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

/// Checks a branding body: a display name, a `#rrggbb` colour and an `https://` or
/// `data:image/…;base64,` logo URL.
pub fn check_branding(b: &Branding) -> ApiResult<Branding> {
    let display_name = match b.display_name.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(n) if n.chars().count() > 100 || n.chars().any(char::is_control) => {
            return Err(ApiError::invalid(
                "branding.display_name",
                "the display name is 1 to 100 printable characters",
            ))
        }
        Some(n) => Some(n.to_string()),
    };
    let primary_color = match b.primary_color.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(c) => {
            let ok =
                c.len() == 7 && c.starts_with('#') && c[1..].bytes().all(|b| b.is_ascii_hexdigit());
            if !ok {
                return Err(ApiError::invalid(
                    "branding.primary_color",
                    format!("`{}` is not a colour of the form #rrggbb", short(c)),
                )
                .hint("for example #0a66c2"));
            }
            Some(c.to_ascii_lowercase())
        }
    };
    let logo_url = match b.logo_url.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(u) => Some(check_logo(u)?),
    };
    Ok(Branding {
        display_name,
        primary_color,
        logo_url,
    })
}

/// The largest logo accepted, as a URL (a `data:` URL holds the image itself).
pub const MAX_LOGO_URL: usize = 64 * 1024;

fn check_logo(u: &str) -> ApiResult<String> {
    let bad = |m: String| {
        ApiError::invalid("branding.logo_url", m)
            .hint("use an https:// URL, or a data:image/png;base64,… URL to have the connect page show it")
    };
    if u.len() > MAX_LOGO_URL {
        return Err(bad(format!(
            "the logo URL is longer than {MAX_LOGO_URL} bytes"
        )));
    }
    if let Some(rest) = u.strip_prefix("data:") {
        let (kind, data) = rest
            .split_once(";base64,")
            .ok_or_else(|| bad("a data: logo must be base64 (data:image/png;base64,…)".into()))?;
        if !matches!(
            kind,
            "image/png" | "image/jpeg" | "image/gif" | "image/webp"
        ) {
            return Err(bad(format!(
                "a data: logo must be a PNG, JPEG, GIF or WebP image, not `{}`",
                short(kind)
            )));
        }
        if base64::engine::general_purpose::STANDARD
            .decode(data)
            .is_err()
        {
            return Err(bad("the data: logo is not valid base64".into()));
        }
        return Ok(u.to_string());
    }
    let url = url::Url::parse(u).map_err(|_| bad(format!("`{}` is not a URL", short(u))))?;
    if url.scheme() != "https" || url.host_str().is_none() || !url.username().is_empty() {
        return Err(bad(format!(
            "`{}` must be an https:// URL without a user name",
            short(u)
        )));
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_recognised() {
        let a = generate_token();
        assert!(looks_like_token(&a), "{a}");
        assert_ne!(a, generate_token());
        assert!(!looks_like_token("lk_abc"));
        assert!(!looks_like_token(&a.replace("lkcs_", "lk_xx")));
        assert_ne!(hash_token(&a), a);
    }

    #[test]
    fn origins_are_exact() {
        assert_eq!(
            parse_origin("https://app.example.com").unwrap(),
            "https://app.example.com"
        );
        assert_eq!(
            parse_origin("https://app.example.com/").unwrap(),
            "https://app.example.com"
        );
        assert_eq!(
            parse_origin("http://127.0.0.1:5173").unwrap(),
            "http://127.0.0.1:5173"
        );
        for bad in [
            "*",
            "https://*.example.com",
            "app.example.com",
            "https://app.example.com/path",
            "https://app.example.com?x=1",
            "https://user@app.example.com",
            "http://app.example.com",
            "ftp://app.example.com",
            "",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn branding_is_checked() {
        let ok = check_branding(&Branding {
            display_name: Some(" Acme ".into()),
            primary_color: Some("#0A66C2".into()),
            logo_url: Some("data:image/png;base64,iVBORw0KGgo=".into()),
        })
        .unwrap();
        assert_eq!(ok.display_name.as_deref(), Some("Acme"));
        assert_eq!(ok.primary_color.as_deref(), Some("#0a66c2"));
        for (color, logo) in [
            ("red", "https://x.example/logo.png"),
            ("#0a66c2", "http://x.example/logo.png"),
            ("#0a66c2", "javascript:alert(1)"),
            ("#0a66c2", "data:text/html;base64,PHNjcmlwdD4="),
            ("#0a66c2", "data:image/svg+xml;base64,PHN2Zz4="),
        ] {
            assert!(
                check_branding(&Branding {
                    display_name: None,
                    primary_color: Some(color.into()),
                    logo_url: Some(logo.into()),
                })
                .is_err(),
                "{color} {logo}"
            );
        }
    }
}
