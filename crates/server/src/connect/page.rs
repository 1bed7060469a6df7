//! The hosted connect page (`/connect/{token}`), its files, and the embedding script
//! (`/connect/sdk.js`).
//!
//! The page reuses the main UI's Create connection pane (`pane.js`, `pane.html`) and helpers
//! (`core.js`, `app.css`); `connect-setup.js` points their API calls at the session's endpoints.
//! It loads nothing from another origin: a workspace logo is shown only when it is a `data:` URL.
//! `frame-ancestors` lists the session's allowed origins, so the page can sit in their iframes and
//! nowhere else.

use super::{find_session, SessionState};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use latchkey_core::model::ConnectSession;

const PAGE: &str = include_str!("../../assets/connect.html");
const CLOSED: &str = include_str!("../../assets/connect-closed.html");
const SDK: &str = include_str!("../../assets/sdk.js");

/// The connect page's own files.
const FILES: &[(&str, &str, &str)] = &[
    (
        "connect.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/connect.css"),
    ),
    (
        "connect-setup.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/connect-setup.js"),
    ),
    (
        "connect.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/connect.js"),
    ),
    (
        "connect-closed.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/connect-closed.js"),
    ),
];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/connect/sdk.js", get(sdk))
        .route("/connect/assets/{name}", get(asset))
        .route("/connect/{token}", get(page))
}

async fn sdk() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // Host pages of any origin load it with a plain <script src>.
            (
                HeaderName::from_static("cross-origin-resource-policy"),
                "cross-origin",
            ),
        ],
        SDK,
    )
        .into_response()
}

async fn asset(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, t, body)) => (
            [
                (header::CONTENT_TYPE, *t),
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            *body,
        )
            .into_response(),
        None => crate::error::ApiError::not_found("file", &name).into_response(),
    }
}

/// `frame-ancestors` for a session: its allowed origins, or none at all.
fn frame_ancestors(origins: &[String]) -> String {
    if origins.is_empty() {
        "'none'".into()
    } else {
        origins.join(" ")
    }
}

fn csp(origins: &[String]) -> String {
    format!(
        "default-src 'self'; img-src 'self' data:; frame-ancestors {}; base-uri 'none'; \
         form-action 'none'; object-src 'none'",
        frame_ancestors(origins)
    )
}

fn with_headers(status: StatusCode, body: String, origins: &[String]) -> Response {
    let mut resp = (status, Html(body)).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp(origins)) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The token is in the URL: never send it on.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

fn escape(s: &str) -> String {
    crate::ui::escape(s)
}

/// The page for a link that no longer works (or never did): it says so and offers nothing.
/// When the session is known, a small script tells the embedding page, at its exact origin,
/// that the page closed, so that `Latchkey.connect` rejects.
fn closed(state: SessionState, session: Option<&ConnectSession>) -> Response {
    let (code, message, hint) = match state {
        SessionState::Open => ("connect_session_unknown", "", ""),
        other => other.explain(),
    };
    let (code, message, hint) = if session.is_none() {
        (
            "connect_session_unknown",
            "This connect link is not valid.",
            "check that the whole link was copied, or start again from the application that sent you here",
        )
    } else {
        (code, message, hint)
    };
    let origins = session
        .map(|s| s.allowed_origins.clone())
        .unwrap_or_default();
    let origins_json = serde_json::to_string(&origins).unwrap_or_else(|_| "[]".into());
    let reason = code.trim_start_matches("connect_session_");
    let body = CLOSED
        .replace("{{code}}", &escape(code))
        .replace("{{reason}}", &escape(reason))
        .replace("{{message}}", &escape(message))
        .replace("{{hint}}", &escape(hint))
        .replace("{{origins}}", &escape(&origins_json));
    let status = if session.is_none() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::GONE
    };
    with_headers(status, body, &origins)
}

async fn page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let found = match find_session(&state, &token).await {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let Some((session, _ws)) = found else {
        return closed(SessionState::Expired, None);
    };
    let st = SessionState::of(&session);
    if st != SessionState::Open {
        return closed(st, Some(&session));
    }
    let body = PAGE.replace("{{pane}}", crate::ui::pane_html());
    with_headers(StatusCode::OK, body, &session.allowed_origins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_only_from_allowed_origins() {
        assert!(csp(&[]).contains("frame-ancestors 'none'"));
        let c = csp(&["https://a.example".into(), "http://localhost:3000".into()]);
        assert!(
            c.contains("frame-ancestors https://a.example http://localhost:3000;"),
            "{c}"
        );
        assert!(!c.contains('*'));
    }

    #[test]
    fn pages_have_no_inline_script_or_external_url() {
        for t in [PAGE, CLOSED] {
            assert!(!t.contains("<script>"), "inline script");
            assert!(!t.contains("style="), "inline style");
            assert!(!t.contains("http://") && !t.contains("https://"));
        }
        for (name, _, body) in FILES.iter().chain([&("sdk.js", "", SDK)]) {
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            assert!(
                !compact.contains(",\"*\")") && !compact.contains(",'*')"),
                "{name} posts to any origin"
            );
        }
    }
}
