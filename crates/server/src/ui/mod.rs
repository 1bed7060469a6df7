//! The web UI: server-rendered page shells with a little vanilla JavaScript that
//! calls the JSON API with the session cookie. Everything is embedded in the binary; no page
//! loads anything from another origin, and every UI response carries a strict CSP.

mod assets;
pub mod session;

pub use assets::escape;

/// The Create connection pane's markup, which the hosted connect page reuses.
pub fn pane_html() -> &'static str {
    assets::PANE
}

use crate::auth::{self, Caller};
use crate::state::AppState;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

/// The Content-Security-Policy of every UI response: nothing inline, nothing from elsewhere.
pub const CSP: &str = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
    form-action 'self'; object-src 'none'";

/// The UI's routes, with their security headers (the rest of the server is not affected).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/ui", get(home))
        .route("/ui/", get(home))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", axum::routing::post(logout))
        .route("/ui/session", get(session_info))
        .route("/ui/sso/start", get(sso_start))
        .route("/ui/sso/callback", get(sso_callback))
        .route("/ui/assets/{name}", get(asset))
        .route("/favicon.ico", get(favicon))
        .route("/ui/{page}", get(page))
        .layer(middleware::from_fn(security_headers))
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

/// The signed-in caller and session of a page request, if the cookie opens and its key is
/// still valid.
async fn signed_in(state: &AppState, headers: &HeaderMap) -> Option<(Caller, session::Session)> {
    let s = session::from_headers(state, headers).await.ok()???;
    let caller = auth::caller_for_session(state, &s).await.ok()?;
    Some((caller, s))
}

/// The header's name and the role per workspace the page decides its actions by. A key signed
/// in stands for a role too: an admin key is an owner everywhere, a workspace key with `write`
/// an admin of its workspace, one without a viewer.
fn who(caller: &Caller) -> assets::Who {
    use latchkey_core::model::Scope;
    if let Some(p) = &caller.person {
        let roles = if caller.is_admin() {
            vec![("*".to_string(), "owner".to_string())]
        } else {
            p.roles
                .iter()
                .map(|(w, r)| (w.to_string(), r.to_string()))
                .collect()
        };
        return assets::Who {
            name: p.name.clone(),
            roles,
        };
    }
    let key = caller.key.as_ref();
    let name = key
        .map(|k| format!("API key “{}”", k.name))
        .unwrap_or_default();
    let roles = match key.and_then(|k| k.workspace.as_ref().map(|w| (w, &k.scopes))) {
        None => vec![("*".to_string(), "owner".to_string())],
        Some((w, scopes)) => {
            let role = if scopes.contains(&Scope::Write) {
                "admin"
            } else {
                "viewer"
            };
            vec![(w.to_string(), role.to_string())]
        }
    };
    assets::Who { name, roles }
}

async fn home() -> Redirect {
    Redirect::to("/ui/connections")
}

async fn asset(Path(name): Path<String>) -> Response {
    match assets::get(&name) {
        Some((content_type, body)) => (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

/// Browsers ask for it on every page without an icon link (the OAuth callback page too).
async fn favicon() -> Response {
    asset(Path("icon.svg".to_string())).await
}

async fn page(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(def) = assets::page(&name) else {
        return crate::error::ApiError::not_found("page", &name).into_response();
    };
    match signed_in(&state, &headers).await {
        Some((caller, s)) => {
            let who = who(&caller);
            Html(assets::render_page(def, s.csrf(), caller.is_admin(), &who)).into_response()
        }
        None => Redirect::to("/ui/login").into_response(),
    }
}

#[derive(Deserialize)]
struct LoginQuery {
    expired: Option<String>,
    signed_out: Option<String>,
}

async fn login_page(
    State(state): State<AppState>,
    Query(q): Query<LoginQuery>,
    headers: HeaderMap,
) -> Response {
    if signed_in(&state, &headers).await.is_some() {
        return Redirect::to("/ui/connections").into_response();
    }
    let notice = if q.expired.is_some() {
        Some("Your session ended. Sign in again.")
    } else if q.signed_out.is_some() {
        Some("You are signed out.")
    } else {
        None
    };
    let mut resp = Html(login_html(&state, None, notice)).into_response();
    if session::cookie_value(&headers).is_some() {
        resp.headers_mut()
            .insert(header::SET_COOKIE, session::clear_cookie(&state));
    }
    resp
}

/// Whether a form post comes from a page of this server. Browsers say so in `Sec-Fetch-Site`;
/// without it, the `Origin` must be the public URL's or name the host the request was sent to.
/// (Under `Referrer-Policy: no-referrer` a browser sends `Origin: null` on form posts, so
/// `Sec-Fetch-Site` is what modern browsers are judged by.)
fn same_origin(state: &AppState, headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if origin == state.public_url.origin().ascii_serialization() {
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

fn form_field(body: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn login(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !same_origin(&state, &headers) {
        let html = login_html(
            &state,
            Some("This sign-in did not come from Latchkey's own page."),
            None,
        );
        return (StatusCode::FORBIDDEN, Html(html)).into_response();
    }
    let client = state.config.trusted_proxies.client(peer.ip(), &headers);
    if let Some(email) = form_field(&body, "email") {
        let password = zeroize::Zeroizing::new(form_field(&body, "password").unwrap_or_default());
        return password_login(&state, email.trim(), &password, client).await;
    }
    let key = zeroize::Zeroizing::new(form_field(&body, "api_key").unwrap_or_default());
    let key = key.trim();
    if key.is_empty() {
        let html = login_html(&state, Some("Enter an API key."), None);
        return (StatusCode::UNPROCESSABLE_ENTITY, Html(html)).into_response();
    }
    match auth::caller_for_key(&state, key, Some(client)).await {
        Ok(caller) => {
            let Some(id) = caller.key_id().cloned() else {
                return crate::error::ApiError::internal().into_response();
            };
            tracing::info!(key = %id, "web UI sign-in");
            signed_in_answer(&state, latchkey_core::model::SessionSubject::ApiKey(id)).await
        }
        Err(e) => {
            let html = login_html(
                &state,
                Some(&format!("Sign-in failed: {}.", e.message)),
                None,
            );
            (e.status, Html(html)).into_response()
        }
    }
}

/// The sign-in page, with the single sign-on button when it is configured.
fn login_html(state: &AppState, error: Option<&str>, notice: Option<&str>) -> String {
    assets::render_login(error, notice, state.config.oidc.is_some())
}

/// A sign-in page that says why single sign-on did not sign the person in. (The cookie of a
/// sign-in in progress stays: a forged answer must not spoil the real one.)
fn sso_failure(state: &AppState, (status, message): crate::people::sso::Failure) -> Response {
    (status, Html(login_html(state, Some(&message), None))).into_response()
}

async fn sso_start(State(state): State<AppState>) -> Response {
    let Some(s) = state.config.oidc.clone() else {
        let html = login_html(&state, Some("Single sign-on is not configured here."), None);
        return (StatusCode::NOT_FOUND, Html(html)).into_response();
    };
    match crate::people::sso::start(&state, &s).await {
        Ok(resp) => resp,
        Err(f) => sso_failure(&state, f),
    }
}

async fn sso_callback(
    State(state): State<AppState>,
    Query(cb): Query<crate::people::sso::Callback>,
    headers: HeaderMap,
) -> Response {
    let Some(s) = state.config.oidc.clone() else {
        let html = login_html(&state, Some("Single sign-on is not configured here."), None);
        return (StatusCode::NOT_FOUND, Html(html)).into_response();
    };
    let id = match crate::people::sso::finish(&state, &s, &cb, &headers).await {
        Ok(id) => id,
        Err(f) => return sso_failure(&state, f),
    };
    let value = match session::start(&state, latchkey_core::model::SessionSubject::User(id)).await {
        Ok((value, _)) => value,
        Err(e) => return e.into_response(),
    };
    // The provider's redirect is a navigation from another site, on which browsers withhold the
    // SameSite=Strict session cookie: a page of ours moves on, so the next request is our own.
    let mut resp = Html(SSO_DONE).into_response();
    let h = resp.headers_mut();
    h.insert(header::SET_COOKIE, session::set_cookie(&state, &value));
    let gone = format!(
        "{}=; Path=/ui/sso; HttpOnly; SameSite=Lax; Max-Age=0",
        crate::people::sso::COOKIE
    );
    if let Ok(v) = HeaderValue::from_str(&gone) {
        h.append(header::SET_COOKIE, v);
    }
    resp
}

/// The page a single sign-on ends on: straight on to the connections page.
const SSO_DONE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"refresh\" content=\"0;url=/ui/connections\"><title>Signed in · Latchkey</title>\
<link rel=\"stylesheet\" href=\"/ui/assets/app.css\"></head><body class=\"login-body\">\
<main class=\"login-card\" id=\"main\"><p id=\"sso-done\">Signed in. \
<a href=\"/ui/connections\">Continue to Latchkey</a></p></main></body></html>";

/// Starts a session and sends the browser to the connections page with its cookie.
pub(crate) async fn signed_in_answer(
    state: &AppState,
    subject: latchkey_core::model::SessionSubject,
) -> Response {
    let value = match session::start(state, subject).await {
        Ok((value, _)) => value,
        Err(e) => return e.into_response(),
    };
    let mut resp = Redirect::to("/ui/connections").into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, session::set_cookie(state, &value));
    resp
}

/// Sign-in with an email and a local password. Failures count against the address like
/// unknown API keys do; the answer never says whether the email exists.
async fn password_login(
    state: &AppState,
    email: &str,
    password: &str,
    client: std::net::IpAddr,
) -> Response {
    if email.is_empty() || password.is_empty() {
        let html = login_html(state, Some("Enter your email and password."), None);
        return (StatusCode::UNPROCESSABLE_ENTITY, Html(html)).into_response();
    }
    let user = match state.store.user_by_email(email).await {
        Ok(u) => u,
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let stored = user.as_ref().and_then(|u| u.password_hash.clone());
    let ok = crate::people::password::verify(password.to_string(), stored).await;
    match user {
        Some(u) if ok => {
            tracing::info!(user = %u.id, "web UI sign-in with a password");
            signed_in_answer(state, latchkey_core::model::SessionSubject::User(u.id)).await
        }
        _ => {
            if let Some((delay, secs)) = state.throttle.fail(client) {
                tokio::time::sleep(delay).await;
                let html = login_html(
                    state,
                    Some(&format!(
                        "Too many failed sign-ins from this address: wait {secs} s."
                    )),
                    None,
                );
                let mut resp = (StatusCode::TOO_MANY_REQUESTS, Html(html)).into_response();
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
                return resp;
            }
            let html = login_html(
                state,
                Some("Sign-in failed: wrong email or password."),
                None,
            );
            (StatusCode::UNAUTHORIZED, Html(html)).into_response()
        }
    }
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !same_origin(&state, &headers) {
        return crate::error::ApiError::forbidden("sign-out must come from Latchkey's own page")
            .into_response();
    }
    if let Some(value) = session::cookie_value(&headers) {
        // Ended in the shared store: the cookie stops working on every instance at once.
        if let Err(e) = session::end(&state, value).await {
            return e.into_response();
        }
    }
    let mut resp = Redirect::to("/ui/login?signed_out=1").into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, session::clear_cookie(&state));
    resp
}

/// The session as scripts see it: the CSRF token and who is signed in.
async fn session_info(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match signed_in(&state, &headers).await {
        Some((caller, s)) => Json(json!({
            "csrf_token": s.csrf(),
            "expires_at": s.expires_at(),
            "key_id": caller.key_id().map(|k| k.to_string()),
            "admin": caller.is_admin(),
            "workspace_id": caller.key_workspace().map(|w| w.to_string()),
            "scopes": caller.key.as_ref().map(|k| k.scopes.clone()),
            "person": caller.person.as_ref().map(|p| json!({
                "id": p.id.to_string(),
                "name": p.name,
                "email": p.email,
                "instance_admin": p.instance_admin,
                "roles": p.roles.iter().map(|(w, r)| json!({
                    "workspace_id": w.to_string(),
                    "role": r,
                })).collect::<Vec<_>>(),
            })),
        }))
        .into_response(),
        None => crate::error::ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "not signed in to the web UI",
        )
        .hint("sign in at /ui/login")
        .into_response(),
    }
}
