//! The proxy: `ANY /v1/workspaces/{ws}/connections/{conn}/proxy/{path}` sends the request to
//! the connection's API base with the credential injected and the caller's own `Authorization`
//! dropped. Bodies stream both ways; redirects are returned, never followed; hop-by-hop headers
//! stay out. The connection's pool bounds requests in flight. A 401 that means an expired
//! session triggers one refresh and one retry when the body can be replayed; a rate-limited
//! answer that says when to come back is waited out and sent again (see the `retry` module).
//! `Latchkey-Retries` on the answer says how many times the request was sent again.

mod forward;
use forward::respond_clean;
pub mod pool;
mod retry;

use crate::access::Need;
use crate::auth::{Caller, KeyCaller};
use crate::error::{ApiError, ApiResult, Path};
use crate::inject;
use crate::oauth::tokens;
use crate::outbound::Answer;
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hyper::body::Body as _;
use latchkey_core::catalog::{BORROW_CONCURRENCY_FROM, CONCURRENCY_LEVEL};
use latchkey_core::ids::ConnectionId;
use latchkey_core::model::{AuthMode, ConnectionRecord, ConnectionStatus, Workspace};
use latchkey_core::scrub::Scrubber;
pub(crate) use pool::level_of;
use secrecy::ExposeSecret;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Bodies up to this size are kept in memory so that a request can be retried after a refresh;
/// larger ones stream and are not retried.
const REPLAYABLE: usize = 1024 * 1024;

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1), plus ones Latchkey owns.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "authorization",
    "cookie",
];

fn is_hop(name: &str, listed: &[String]) -> bool {
    HOP_BY_HOP.contains(&name) || listed.iter().any(|l| l == name)
}

/// The request headers that go upstream: without hop-by-hop headers (and those `Connection`
/// names), the caller's `Authorization`, `Cookie` and `Host`.
pub fn forwardable(headers: &HeaderMap) -> HeaderMap {
    let listed = connection_listed(headers);
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        if !is_hop(name.as_str(), &listed) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// Header names the `Connection` header lists are hop-by-hop too.
fn connection_listed(h: &HeaderMap) -> Vec<String> {
    h.get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .collect()
}

/// The pool a connection's requests count against: its lender's, or its own.
async fn pool_of(
    state: &AppState,
    caller: &Caller,
    ws: &Workspace,
    c: &ConnectionRecord,
) -> (String, usize) {
    if let Some(Value::String(lender)) = c.settings.get(BORROW_CONCURRENCY_FROM) {
        if ConnectionId::parse(lender).is_ok() {
            if let Ok(l) = state
                .resolve(caller, ws.id.as_str(), lender, Need::Proxy)
                .await
            {
                return (l.conn.id.as_str().to_owned(), level_of(&l.conn));
            }
        }
    }
    (c.id.as_str().to_owned(), level_of(c))
}

enum Cred {
    Static(crate::hot::StaticCall),
    Token {
        version: i64,
        inj: inject::Injection,
        kept: std::collections::BTreeMap<String, String>,
    },
}

impl Cred {
    fn injection(&self) -> &inject::Injection {
        match self {
            Cred::Static(call) => &call.inj,
            Cred::Token { inj, .. } => inj,
        }
    }

    fn scrubber(&self) -> Arc<Scrubber> {
        self.injection().scrubber.clone()
    }
}

async fn credential(
    state: &AppState,
    ws: &Workspace,
    c: &ConnectionRecord,
    force: bool,
) -> ApiResult<(Cred, Option<String>)> {
    if c.auth_mode.has_tokens() {
        let set = tokens::fresh_token(state, ws, c, force).await?;
        let app = crate::directory::app_entry(state, &c.app)?;
        // The token set's own scrubber (the access and refresh tokens), built once per token.
        let mut inj =
            inject::for_token_scrubbed(app, set.access_token.expose_secret(), set.scrubber())?;
        inj.headers.extend(inject::fixed_headers(
            app,
            &c.settings,
            &latchkey_core::secret::SecretFields::new(),
        )?);
        return Ok((
            Cred::Token {
                version: set.version,
                inj,
                kept: set.meta.extra.clone(),
            },
            set.meta.instance_url.clone(),
        ));
    }
    if c.auth_mode.is_direct() {
        let kind = if c.auth_mode == AuthMode::Sftp {
            "an SFTP server"
        } else {
            "a database"
        };
        return Err(ApiError::invalid("auth_mode", format!("connection `{}` is {kind}: it cannot be proxied", c.name))
            .hint("read its credentials (GET …/credentials, or `latchkey run`) and connect to it directly"));
    }
    if c.auth_mode == AuthMode::OAuth1 && c.status == ConnectionStatus::PendingAuthorization {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_authorized",
            format!("connection `{}` has not been authorized yet", c.name),
        )
        .hint("open its authorize_url in a browser (POST …/authorize gives a fresh one)"));
    }
    if let Some(call) = state.hot.static_injection(&c.id, c.version) {
        return Ok((Cred::Static(call), None));
    }
    let creds = crate::vault::decrypt(state, c).await?;
    let app = crate::directory::app_entry(state, &c.app)?;
    let inj = Arc::new(inject::for_static(app, c.auth_mode, &c.settings, &creds)?);
    let base = crate::verify::api_base(app, &c.settings)?;
    let target = forward::prepare(state, &base)?;
    let call = crate::hot::StaticCall {
        inj,
        base: Arc::new(base),
        target: Arc::new(target),
    };
    state.hot.remember_injection(&c.id, c.version, call.clone());
    Ok((Cred::Static(call), None))
}

/// What a 401 means: an expired session (refresh and retry), a token without the needed scope
/// (pass back with a hint), or something else.
pub enum Unauthorized {
    Expired,
    MissingScope,
    Other,
}

/// What an upstream 401 means (public for the fuzz targets).
pub fn classify_401(headers: &HeaderMap, body: &[u8]) -> Unauthorized {
    let text = String::from_utf8_lossy(body);
    if text.contains("not valid for use with the REST API") || text.contains("insufficient_scope") {
        return Unauthorized::MissingScope;
    }
    let www = headers
        .get(http::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if text.contains("INVALID_SESSION_ID")
        || www.contains("invalid_token")
        || text.contains("invalid_token")
    {
        return Unauthorized::Expired;
    }
    Unauthorized::Other
}

/// Calls the application through the connection (scope `proxy`).
pub async fn handle(
    State(state): State<AppState>,
    KeyCaller(caller): KeyCaller,
    Path((ws, conn, path)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    match run(state, caller, ws, conn, path, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn run(
    state: AppState,
    caller: Caller,
    ws: String,
    conn: String,
    path: String,
    req: Request,
) -> ApiResult<Response> {
    let deadline = tokio::time::Instant::now() + state.config.proxy_queue_timeout;
    check_path(req.uri().path(), &path)?;
    let found = state.resolve(&caller, &ws, &conn, Need::Proxy).await?;
    let (ws_key, conn_key) = (ws, conn);
    let (ws, c) = (&*found.ws, &*found.conn);
    let app = crate::directory::app_entry(&state, &c.app)?;
    let holds_secrets = caller.allows(&ws.id, Need::Secrets);
    // Nothing is sent where the connection's secret material is not bound.
    crate::destinations::guard_shared(&state, ws, &found.conn, holds_secrets).await?;
    let (parts, body) = req.into_parts();
    let listed = connection_listed(&parts.headers);
    let (buffered, mut stream_body) = read_body(&parts.headers, body).await?;

    let (pool_id, level) = pool_of(&state, &caller, ws, c).await;
    let (mut permit, mut waited) = match state
        .pools
        .acquire(&pool_id, level, state.config.proxy_queue_timeout)
        .await
    {
        Ok(p) => p,
        Err(_) => return Ok(pool_busy(&state, c, level, 0)),
    };
    let held_up = permit.waited_in_line() || buffered.as_ref().is_none_or(|b| !b.is_empty());
    let mut conn_now = recheck(&state, &caller, (&ws_key, &conn_key), &found.conn, held_up).await?;
    let out = forward::Outgoing {
        parts: &parts,
        listed: &listed,
        path: &path,
    };
    let mut limited_sends = 0;
    let mut retries = 0;
    let mut retry_after_version: Option<i64> = None;
    let mut refreshed = false;
    loop {
        let c = &*conn_now;
        let cred = match retry_after_version.take() {
            None => credential(&state, ws, c, false).await?,
            Some(v) => {
                // Refresh unless someone already replaced the token that got the 401.
                let mut seen = c.clone();
                seen.version = v;
                credential(&state, ws, &seen, true).await?
            }
        };
        let body = attempt_body(&buffered, &mut stream_body);
        let sent_at = chrono::Utc::now();
        let body = (body, buffered.as_deref());
        let sent = forward::send(&state, app, c, (&cred.0, cred.1), &out, body).await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                if limited_sends > 0 {
                    retry::count_retry(&pool_id, "error");
                }
                return Err(e);
            }
        };
        let status = resp.status();
        crate::telemetry::upstream_responses(&c.app, status).increment(1);
        let limited = retry::is_limited(status);
        if limited_sends > 0 {
            retry::count_retry(&pool_id, if limited { "limited" } else { "ok" });
        }
        let scrubber = cred.0.scrubber();
        if status == StatusCode::UNAUTHORIZED && c.auth_mode.has_tokens() {
            let may_refresh = !refreshed && buffered.is_some();
            match on_unauthorized(c, &cred.0, may_refresh, resp, &scrubber).await {
                Ok(version) => {
                    retry_after_version = Some(version);
                    refreshed = true;
                    retries += 1;
                    continue;
                }
                Err((headers, body, hint)) => {
                    let out = respond_clean(status, headers, body, waited, hint, permit);
                    return Ok(with_retries(out, retries));
                }
            }
        }
        if limited {
            limited_sends += 1;
            let attempt = retry::Attempt {
                pool: &pool_id,
                level,
                sent_at,
                sends: limited_sends,
                replayable: buffered.is_some(),
                deadline,
            };
            if let Some(wait) =
                retry::on_limited(&state, app, status, resp.headers(), &attempt).await
            {
                drop(resp);
                retries += 1;
                (permit, waited) = match retry::wait_out(&state, &attempt, wait, permit).await {
                    Ok((p, w)) => (p, waited + w),
                    Err(_) => return Ok(pool_busy(&state, c, level, retries)),
                };
                conn_now = recheck(&state, &caller, (&ws_key, &conn_key), &conn_now, true).await?;
                continue;
            }
        }
        let head = parts.method == http::Method::HEAD;
        let length = resp.body().size_hint().exact();
        let out = if !head && length.is_some_and(|n| n <= SMALL_ANSWER) {
            small_back(resp, &scrubber, waited, permit, (app, c)).await?
        } else {
            stream_back(resp, scrubber, head, waited, permit)
        };
        return Ok(with_retries(out, retries));
    }
}

/// A 401 of a connection with tokens: `Ok(version)` of the token to refresh when it means an
/// expired session and the request may be sent again, else the answer to pass back.
async fn on_unauthorized(
    c: &ConnectionRecord,
    cred: &Cred,
    may_refresh: bool,
    resp: http::Response<Answer>,
    scrubber: &Scrubber,
) -> Result<i64, (HeaderMap, Body, Option<&'static str>)> {
    let (head, body) = resp.into_parts();
    let headers = head.headers;
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body = Bytes::from(scrubber.scrub_bytes(&body));
    // Fit to pass back: scrubbed, without hop-by-hop headers (and those the answer's own
    // `Connection` names) or cookies.
    let headers = forward::answer_headers(&headers, scrubber, true);
    // A session token the application no longer knows: any 401 means log in again.
    let verdict = if c.auth_mode == AuthMode::TokenExchange {
        Unauthorized::Expired
    } else {
        classify_401(&headers, &body)
    };
    let hint = match verdict {
        Unauthorized::Expired if may_refresh => {
            if let Cred::Token { version, .. } = cred {
                tracing::info!(connection = %c.id, "upstream says the session expired; refreshing once");
                return Ok(*version);
            }
            None
        }
        Unauthorized::MissingScope => Some("the token lacks a scope this call needs (Salesforce: `api`); add it to the connection's scopes and re-authorize"),
        _ => None,
    };
    Err((headers, Body::from(body), hint))
}

/// Answers whose `Content-Length` is at most this are read whole, scrubbed in one pass and sent
/// with their length: one write to the caller instead of a chunked stream, and a clean answer
/// goes on without a copy.
const SMALL_ANSWER: u64 = 64 * 1024;

/// A small answer of the application, read whole and scrubbed; the pool place is given back
/// once it is read (the application's part of the call is over).
async fn small_back(
    resp: http::Response<Answer>,
    scrubber: &Scrubber,
    waited: Duration,
    permit: pool::Permit,
    (app, c): (&latchkey_core::catalog::AppEntry, &ConnectionRecord),
) -> ApiResult<Response> {
    let status = resp.status();
    let headers = forward::answer_headers(resp.headers(), scrubber, true);
    // The error itself is not logged: its URL may carry a credential the entry puts there.
    let body = resp.into_body().collect().await.map(|b| b.to_bytes());
    let body = body.map_err(|_| {
        tracing::info!(connection = %c.id, "the application's answer broke off");
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_unreachable",
            format!("{} broke off its answer", app.name),
        )
        .hint("retry the request; check that the application is up")
    })?;
    let body = if scrubber.finds_bytes(&body) {
        Bytes::from(scrubber.scrub_bytes(&body))
    } else {
        body
    };
    Ok(respond_clean(
        status,
        headers,
        Body::from(body),
        waited,
        None,
        permit,
    ))
}

/// The application's answer, scrubbed, streamed to the caller; the pool place is held until
/// the last byte is sent.
fn stream_back(
    resp: http::Response<Answer>,
    scrubber: Arc<Scrubber>,
    head: bool,
    waited: Duration,
    permit: pool::Permit,
) -> Response {
    let status = resp.status();
    let headers = forward::answer_headers(resp.headers(), &scrubber, !head);
    let mut body = resp.into_body();
    // A large answer is read on while the part before it is written.
    body.detach();
    let stream = forward::scrubbed_stream(Box::pin(body.into_data_stream()), scrubber);
    respond_clean(
        status,
        headers,
        Body::from_stream(HoldPermit {
            inner: stream,
            _permit: permit,
        }),
        waited,
        None,
        (),
    )
}

/// The body of one attempt: the kept bytes again, or the caller's stream (once).
fn attempt_body(buffered: &Option<Bytes>, stream: &mut Option<Body>) -> Body {
    match (buffered, stream.take()) {
        (Some(b), _) if !b.is_empty() => Body::from(b.clone()),
        (None, Some(body)) => body,
        _ => Body::empty(),
    }
}

/// The request body: in memory when it can be replayed (none, or a `Content-Length` up to
/// [`REPLAYABLE`]), else the stream as it arrives.
async fn read_body(headers: &HeaderMap, body: Body) -> ApiResult<(Option<Bytes>, Option<Body>)> {
    let length = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let chunked = headers.contains_key(http::header::TRANSFER_ENCODING);
    Ok(match (length, chunked) {
        (Some(n), false) if n <= REPLAYABLE => (
            Some(axum::body::to_bytes(body, REPLAYABLE).await.map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    "the request body could not be read",
                )
            })?),
            None,
        ),
        (None, false) => (Some(Bytes::new()), None),
        _ => (None, Some(body)),
    })
}

/// The 503 of a pool that stayed full until the queue timeout.
fn pool_busy(state: &AppState, c: &ConnectionRecord, level: usize, retries: u32) -> Response {
    let mut resp = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "pool_busy", format!(
        "connection `{}` already has {level} requests in flight and the queue did not move within {} s",
        c.name, state.config.proxy_queue_timeout.as_secs()))
    .hint("retry later, or raise the connection's concurrency level (at most what the application allows)")
    .into_response();
    resp.headers_mut()
        .insert("retry-after", HeaderValue::from_static("1"));
    with_retries(resp, retries)
}

/// Adds `Latchkey-Retries` when the request was sent more than once.
fn with_retries(mut resp: Response, retries: u32) -> Response {
    if retries > 0 {
        resp.headers_mut().insert(
            HeaderName::from_static("latchkey-retries"),
            HeaderValue::from(retries),
        );
    }
    resp
}

/// The connection as it is now, for a request that was `held_up` (it waited for its turn, or
/// for its body to arrive): a deleted connection answers 404, a changed credential or
/// destination 409; neither is sent with the old one. A request that found everything at once
/// goes on with `c`, resolved a moment before.
async fn recheck(
    state: &AppState,
    caller: &Caller,
    (ws_key, conn_key): (&str, &str),
    c: &Arc<ConnectionRecord>,
    held_up: bool,
) -> ApiResult<Arc<ConnectionRecord>> {
    if !held_up {
        return Ok(c.clone());
    }
    let now = state.resolve(caller, ws_key, conn_key, Need::Proxy).await?;
    if now.conn.id != c.id {
        return Err(ApiError::not_found("connection", conn_key));
    }
    // The same record (the usual case: nothing changed, the cache answered) needs no comparison.
    let same = Arc::ptr_eq(&now.conn, c)
        || (now.conn.credentials == c.credentials
            && same_request_settings(&now.conn, c)
            && now.conn.auth_mode == c.auth_mode);
    if !same {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "connection_changed",
            format!(
                "connection `{}` was changed while this request waited for its turn; it was not sent",
                c.name
            ),
        )
        .hint("send the request again: it will use the connection as it is now"));
    }
    Ok(now.conn)
}

/// Whether two records have the same settings that shape what is sent (a pool's level or
/// lender is not among them), compared in place (the settings map iterates in key order).
fn same_request_settings(a: &ConnectionRecord, b: &ConnectionRecord) -> bool {
    let shapes = |(k, _): &(&String, &Value)| {
        k.as_str() != CONCURRENCY_LEVEL && k.as_str() != BORROW_CONCURRENCY_FROM
    };
    a.settings
        .iter()
        .filter(shapes)
        .eq(b.settings.iter().filter(shapes))
}

fn invalid_path() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_path",
        "the path may not climb above the connection's base URL (`.`, `..`, encoded `/` or `\\`)",
    )
    .hint("send the path below the API base as it is, without dot segments")
}

/// Refuses a proxied path that could climb above the base URL's path: `.` and `..` segments,
/// in any encoding or case (`%2e%2e`, `%2E.`, doubly encoded), and encoded slashes or
/// backslashes (`%2f`, `%5c`), which a server may decode into separators.
pub fn check_path(raw: &str, decoded: &str) -> ApiResult<()> {
    // Most paths carry no escape at all: one quick look rules the byte-by-byte one out.
    let encoded_separator = raw.contains('%')
        && raw.as_bytes().windows(3).any(|w| {
            w[0] == b'%' && w[1] == b'2' && w[2].eq_ignore_ascii_case(&b'f')
                || w[0] == b'%' && w[1] == b'5' && w[2].eq_ignore_ascii_case(&b'c')
        });
    if encoded_separator || decoded.contains('\\') {
        return Err(invalid_path());
    }
    for seg in decoded.split('/') {
        let again = match seg.contains('%') {
            true => percent_encoding::percent_decode_str(seg).decode_utf8_lossy(),
            false => std::borrow::Cow::Borrowed(seg),
        };
        let again = again.as_ref();
        if matches!(seg, "." | "..")
            || matches!(again, "." | "..")
            || again.contains('/')
            || again.contains('\\')
        {
            return Err(invalid_path());
        }
    }
    Ok(())
}

/// For Salesforce-family apps the API base is the `instance_url` of the token answer.
fn oauth_base_is_instance(app: &latchkey_core::catalog::AppEntry) -> bool {
    crate::oauth::provider::is_salesforce(app)
}

pin_project_lite::pin_project! {
    /// A response body that keeps the pool place until the last byte is sent (or the client
    /// goes away).
    struct HoldPermit<S> {
        #[pin]
        inner: S,
        _permit: pool::Permit,
    }
}

impl<S: futures::Stream> futures::Stream for HoldPermit<S> {
    type Item = S::Item;
    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.project().inner.poll_next(cx)
    }
}

/// The proxy, for the OpenAPI document: every method is accepted, each documented with its own
/// operation id (ids must be unique in a document).
macro_rules! proxy_doc {
    ($name:ident, $method:ident) => {
        #[utoipa::path($method, path = "/v1/workspaces/{ws}/connections/{conn}/proxy/{path}", tag = "proxy",
            operation_id = stringify!($name),
            params(("ws" = String, Path), ("conn" = String, Path), ("path" = String, Path, description = "the path at the application's API base")),
            responses(
                (status = 200, description = "the application's answer, streamed, with `Latchkey-Queue-Ms`, and `Latchkey-Retries` when it was sent again (after a rate limit it waited out, or an expired session it refreshed)"),
                (status = 400, description = "`invalid_path`: the path climbs above the base URL", body = crate::error::ErrorBody),
                (status = 403, description = "`destination_change_requires_secrets`: the connection leads where its secret is not bound", body = crate::error::ErrorBody),
                (status = 404, description = "no such connection (also when it was deleted while the request waited)", body = crate::error::ErrorBody),
                (status = 409, description = "`connection_changed`: its credential changed while the request waited", body = crate::error::ErrorBody),
                (status = 503, description = "the connection's pool stayed full for LATCHKEY_PROXY_QUEUE_TIMEOUT", body = crate::error::ErrorBody),
                (status = 502, description = "the application could not be reached", body = crate::error::ErrorBody)))]
        #[allow(dead_code)]
        pub async fn $name() {}
    };
}

proxy_doc!(proxy_get, get);
proxy_doc!(proxy_post, post);
proxy_doc!(proxy_put, put);
proxy_doc!(proxy_patch, patch);
proxy_doc!(proxy_delete, delete);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_climb_above_the_base() {
        for (raw, decoded) in [
            ("/x/proxy/../admin", "../admin"),
            ("/x/proxy/a/%2e%2e/b", "a/../b"),
            ("/x/proxy/a/%2E%2e/b", "a/../b"),
            ("/x/proxy/a/.%2E/b", "a/../b"),
            ("/x/proxy/a/%252e%252e/b", "a/%2e%2e/b"),
            ("/x/proxy/a%2fb", "a/b"),
            ("/x/proxy/a%2F..", "a/.."),
            ("/x/proxy/a%5cb", "a\\b"),
            ("/x/proxy/./a", "./a"),
        ] {
            assert!(check_path(raw, decoded).is_err(), "{raw}");
        }
        for (raw, decoded) in [
            (
                "/x/proxy/services/data/v62.0/limits",
                "services/data/v62.0/limits",
            ),
            ("/x/proxy/a/..b/c.d", "a/..b/c.d"),
            ("/x/proxy/q%20r", "q r"),
        ] {
            assert!(check_path(raw, decoded).is_ok(), "{raw}");
        }
    }
}
