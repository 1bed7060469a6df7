//! A small REST API on loopback that accepts one credential, the way an application does:
//! `GET /health` needs nothing; every other path needs the API key (header `X-API-Key`, or
//! `Authorization: Bearer`, or the `api_key` query parameter) or HTTP Basic credentials.
//! It counts requests and keeps the last request's headers for assertions.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Inner {
    api_key: Mutex<String>,
    basic: (String, String),
    hits: AtomicUsize,
    last_headers: Mutex<Option<HeaderMap>>,
    last_query: Mutex<Option<String>>,
    in_flight: AtomicUsize,
    in_flight_max: AtomicUsize,
    delay_ms: std::sync::atomic::AtomicU64,
}

#[derive(Clone)]
pub struct Upstream {
    pub url: String,
    inner: Arc<Inner>,
}

impl Upstream {
    /// Starts an upstream that accepts `api_key`, or `user`/`password` with Basic auth.
    pub async fn start(api_key: &str, user: &str, password: &str) -> Upstream {
        let inner = Arc::new(Inner {
            api_key: Mutex::new(api_key.into()),
            basic: (user.into(), password.into()),
            ..Default::default()
        });
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Upstream { url, inner }
    }

    /// Changes the key the upstream accepts (a key rotated or revoked at the application).
    pub fn set_api_key(&self, key: &str) {
        *self.inner.api_key.lock().unwrap() = key.to_string();
    }

    pub fn hits(&self) -> usize {
        self.inner.hits.load(Ordering::SeqCst)
    }

    pub fn last_headers(&self) -> Option<HeaderMap> {
        self.inner.last_headers.lock().unwrap().clone()
    }

    /// The most requests that were in progress at once.
    pub fn in_flight_max(&self) -> usize {
        self.inner.in_flight_max.load(Ordering::SeqCst)
    }

    pub fn reset_in_flight_max(&self) {
        self.inner.in_flight_max.store(0, Ordering::SeqCst);
    }

    /// Every authenticated request (except `/health`) waits this long before answering.
    pub fn set_delay(&self, d: std::time::Duration) {
        self.inner
            .delay_ms
            .store(d.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn last_query(&self) -> Option<String> {
        self.inner.last_query.lock().unwrap().clone()
    }
}

struct InFlight<'a>(&'a Inner);

impl<'a> InFlight<'a> {
    fn enter(inner: &'a Inner) -> Self {
        let now = inner.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        inner.in_flight_max.fetch_max(now, Ordering::SeqCst);
        InFlight(inner)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Headers `/echo` and `/big` answer with that a proxy must not pass back as they are: a cookie,
/// a header the answer's `Connection` names (`x-answer-hop`), `Keep-Alive`, and the API key the
/// application received (`x-received-key`, to be scrubbed).
fn answer_extras(received: &axum::http::HeaderMap) -> axum::http::HeaderMap {
    let mut h = axum::http::HeaderMap::new();
    let pairs = [
        ("set-cookie", "upstream_session=abc; Path=/"),
        ("connection", "x-answer-hop"),
        ("x-answer-hop", "one hop only"),
        ("keep-alive", "timeout=5"),
    ];
    for (name, value) in pairs {
        h.insert(name, axum::http::HeaderValue::from_static(value));
    }
    if let Some(key) = received.get("x-api-key") {
        h.insert("x-received-key", key.clone());
    }
    h
}

/// Paths: `/health` (no auth); with a valid credential: `/echo` (answers what it received),
/// `/forbidden` (403), `/limited` (429 with `Retry-After: 86400`, a wait the proxy passes back), `/redirect` (302),
/// `/big?mb=N` (N MiB, streamed), anything else (200 JSON).
async fn handle(State(s): State<Arc<Inner>>, req: Request) -> Response {
    s.hits.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = req.into_parts();
    let headers = parts.headers.clone();
    let query = parts.uri.query().unwrap_or_default().to_string();
    *s.last_headers.lock().unwrap() = Some(headers.clone());
    *s.last_query.lock().unwrap() = Some(query.clone());
    let path = parts.uri.path().to_string();
    if path == "/health" {
        return (StatusCode::OK, r#"{"ok":true}"#.to_string()).into_response();
    }
    let header_key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bearer = auth.strip_prefix("Bearer ").map(str::to_string);
    let query_key = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "api_key")
        .map(|(_, v)| v.into_owned());
    let basic = auth.strip_prefix("Basic ").and_then(|b| {
        let raw = base64::engine::general_purpose::STANDARD.decode(b).ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (u, p) = text.split_once(':')?;
        Some((u.to_string(), p.to_string()))
    });
    let accepted = s.api_key.lock().unwrap().clone();
    let key_ok = [header_key, bearer, query_key]
        .into_iter()
        .flatten()
        .any(|k| !accepted.is_empty() && k == accepted);
    let basic_ok = basic.is_some_and(|b| !s.basic.0.is_empty() && b == s.basic);
    if !(key_ok || basic_ok) {
        return (
            StatusCode::UNAUTHORIZED,
            r#"{"error":"invalid_api_key","message":"The API key is not valid"}"#.to_string(),
        )
            .into_response();
    }
    let _guard = InFlight::enter(&s);
    let delay = s.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    match path.as_str() {
        "/forbidden" => (
            StatusCode::FORBIDDEN,
            r#"{"error":"insufficient_scope","message":"this key may not read /forbidden"}"#
                .to_string(),
        )
            .into_response(),
        "/limited" => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "86400"), ("x-ratelimit-remaining", "0")],
            r#"{"error":"rate_limited"}"#.to_string(),
        )
            .into_response(),
        "/redirect" => (
            StatusCode::FOUND,
            [("location", "https://elsewhere.example/landing")],
            String::new(),
        )
            .into_response(),
        "/big" => {
            let mb: usize = url::form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "mb")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(1)
                .min(1024);
            let chunk = axum::body::Bytes::from(vec![b'x'; 1024 * 1024]);
            let stream =
                futures::stream::iter((0..mb).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
            (
                StatusCode::OK,
                answer_extras(&headers),
                [("content-type", "application/octet-stream")],
                axum::body::Body::from_stream(stream),
            )
                .into_response()
        }
        "/echo" => {
            let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024)
                .await
                .unwrap_or_default();
            let hdrs: serde_json::Map<String, serde_json::Value> = headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        serde_json::Value::String(v.to_str().unwrap_or("?").to_string()),
                    )
                })
                .collect();
            let answer = serde_json::json!({
                "method": parts.method.to_string(), "path": path, "query": query,
                "headers": hdrs, "body": String::from_utf8_lossy(&bytes),
            });
            (
                StatusCode::OK,
                answer_extras(&headers),
                [("content-type", "application/json"), ("x-upstream", "echo")],
                answer.to_string(),
            )
                .into_response()
        }
        _ => (StatusCode::OK, format!(r#"{{"path":"{path}","ok":true}}"#)).into_response(),
    }
}
