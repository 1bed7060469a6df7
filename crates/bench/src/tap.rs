//! A recording pass-through in front of the simulator's login host: Latchkey's outbound
//! rewrites send `https://login.salesforce.com` here, every request is forwarded as it is to the
//! simulator, and the moment each refresh answer comes back is noted. The refresh storm measures
//! how long after that moment the last caller has its token.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::sync::{Arc, Mutex};
use std::time::Instant;

const MAX_BODY: usize = 16 * 1024 * 1024;

struct Inner {
    target: String,
    client: reqwest::Client,
    refresh_answers: Mutex<Vec<Instant>>,
}

pub struct Tap {
    pub url: String,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Tap {
    /// Starts a tap forwarding to `target` (`http://127.0.0.1:PORT`).
    pub async fn start(target: &str) -> anyhow::Result<Tap> {
        let inner = Arc::new(Inner {
            target: target.trim_end_matches('/').to_string(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .build()?,
            refresh_answers: Mutex::new(Vec::new()),
        });
        let app = Router::new().fallback(forward).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Tap { url, inner, task })
    }

    /// When the refresh answers seen so far came back from the simulator.
    pub fn refresh_answers(&self) -> Vec<Instant> {
        self.inner
            .refresh_answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

async fn forward(State(s): State<Arc<Inner>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body: Bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let is_refresh = parts.uri.path() == "/services/oauth2/token"
        && body
            .split(|b| *b == b'&')
            .any(|kv| kv == b"grant_type=refresh_token");
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut out = s
        .client
        .request(parts.method.clone(), format!("{}{path}", s.target));
    for (k, v) in &parts.headers {
        if k != axum::http::header::HOST && k != axum::http::header::CONTENT_LENGTH {
            out = out.header(k, v);
        }
    }
    let answer = match out.body(body).send().await {
        Ok(a) => a,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap_or_default();
    if is_refresh {
        s.refresh_answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Instant::now());
    }
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    for (k, v) in &headers {
        if k != axum::http::header::TRANSFER_ENCODING && k != axum::http::header::CONTENT_LENGTH {
            resp.headers_mut().append(k, v.clone());
        }
    }
    resp
}
