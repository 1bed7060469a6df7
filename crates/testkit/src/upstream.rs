//! A small REST API on loopback that accepts one credential, the way an application does:
//! `GET /health` needs nothing; every other path needs the API key (header `X-API-Key`, or
//! `Authorization: Bearer`, or the `api_key` query parameter) or HTTP Basic credentials.
//! It counts requests and keeps the last request's headers for assertions.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use base64::Engine as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Inner {
    api_key: String,
    basic: (String, String),
    hits: AtomicUsize,
    last_headers: Mutex<Option<HeaderMap>>,
    last_query: Mutex<Option<String>>,
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
            api_key: api_key.into(),
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

    pub fn hits(&self) -> usize {
        self.inner.hits.load(Ordering::SeqCst)
    }

    pub fn last_headers(&self) -> Option<HeaderMap> {
        self.inner.last_headers.lock().unwrap().clone()
    }

    pub fn last_query(&self) -> Option<String> {
        self.inner.last_query.lock().unwrap().clone()
    }
}

async fn handle(State(s): State<Arc<Inner>>, req: Request) -> impl IntoResponse {
    s.hits.fetch_add(1, Ordering::SeqCst);
    let headers = req.headers().clone();
    let query = req.uri().query().unwrap_or_default().to_string();
    *s.last_headers.lock().unwrap() = Some(headers.clone());
    *s.last_query.lock().unwrap() = Some(query.clone());
    let path = req.uri().path().to_string();
    if path == "/health" {
        return (StatusCode::OK, r#"{"ok":true}"#.to_string());
    }
    if path == "/redirect" {
        return (StatusCode::FOUND, String::new());
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
    let key_ok = [header_key, bearer, query_key]
        .into_iter()
        .flatten()
        .any(|k| !s.api_key.is_empty() && k == s.api_key);
    let basic_ok = basic.is_some_and(|b| !s.basic.0.is_empty() && b == s.basic);
    if key_ok || basic_ok {
        if path == "/forbidden" {
            return (
                StatusCode::FORBIDDEN,
                r#"{"error":"insufficient_scope","message":"this key may not read /forbidden"}"#
                    .to_string(),
            );
        }
        (StatusCode::OK, format!(r#"{{"path":"{path}","ok":true}}"#))
    } else {
        (
            StatusCode::UNAUTHORIZED,
            r#"{"error":"invalid_api_key","message":"The API key is not valid"}"#.to_string(),
        )
    }
}
