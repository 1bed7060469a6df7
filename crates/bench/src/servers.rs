//! The two trivial servers the figures are compared with, each run as a child process of this
//! binary (hidden subcommands) or, for the smoke test, inside this process:
//!
//! * the reference: a bare axum server answering the token JSON from memory, the practical
//!   limit of a token read over HTTP on this machine;
//! * the upstream: a REST API that wants `X-API-Key`, with `/bytes?n=N` (N bytes, streamed in
//!   64 KiB chunks above 1 MiB), `/delay?ms=N` (answers after N ms) and `/health`; it counts the
//!   `/delay` requests in flight and keeps the most seen at once, which `GET /stats` answers
//!   (`{"in_flight": n, "max_in_flight": m}`) and `POST /stats/reset` brings down to the
//!   requests in flight now (the pool figure checks with it that a level is never exceeded).

use crate::children::{self, ChildGuard};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use axum::Router;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The API key the upstream accepts.
pub const UPSTREAM_KEY: &str = "bench-upstream-key-7d1c";
const MIB: usize = 1024 * 1024;
const CHUNK: usize = 64 * 1024;
/// The largest answer the upstream gives (1 GiB).
const MAX_BYTES: usize = 1024 * MIB;

/// A running helper server: its URL, and what keeps it alive.
pub struct Service {
    pub url: String,
    pub pid: u32,
    _child: Option<ChildGuard>,
    _task: Option<AbortOnDrop>,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The reference router: `GET path` answers `body` as JSON; `GET /healthz` answers `ok`.
pub fn reference_router(path: &str, body: Bytes) -> Router {
    Router::new()
        .route(
            path,
            axum::routing::get(move || {
                let body = body.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], body) }
            }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok" }))
}

/// The upstream's state: the bytes it answers from, and its `/delay` requests in flight.
#[derive(Default)]
struct Upstream {
    buf: Bytes,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// One `/delay` request in flight, counted from the handler's start until it answers (or is
/// dropped because the caller went away).
struct InFlight<'a>(&'a Upstream);

impl<'a> InFlight<'a> {
    fn start(up: &'a Upstream) -> Self {
        let now = up.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        up.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(up)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Upstream {
    /// `GET /stats`: the requests in flight and the most seen at once since the last reset.
    fn stats(&self) -> Response {
        let body = serde_json::json!({
            "in_flight": self.in_flight.load(Ordering::SeqCst),
            "max_in_flight": self.max_in_flight.load(Ordering::SeqCst),
        });
        (
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }

    /// `POST /stats/reset`: the maximum starts again from the requests in flight now.
    fn reset(&self) -> Response {
        let now = self.in_flight.load(Ordering::SeqCst);
        self.max_in_flight.store(now, Ordering::SeqCst);
        StatusCode::NO_CONTENT.into_response()
    }
}

pub fn upstream_router() -> Router {
    let state = Upstream {
        buf: Bytes::from(vec![b'x'; MIB]),
        ..Upstream::default()
    };
    Router::new().fallback(upstream).with_state(Arc::new(state))
}

fn query_number(query: &str, name: &str) -> Option<usize> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
}

async fn upstream(State(up): State<Arc<Upstream>>, req: Request) -> Response {
    let key_ok = req
        .headers()
        .get("x-api-key")
        .is_some_and(|v| v.as_bytes() == UPSTREAM_KEY.as_bytes());
    if !key_ok {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"error":"invalid_api_key"}"#,
        )
            .into_response();
    }
    let query = req.uri().query().unwrap_or_default();
    match req.uri().path() {
        "/stats" => up.stats(),
        "/stats/reset" if req.method() == axum::http::Method::POST => up.reset(),
        "/bytes" => {
            let n = query_number(query, "n").unwrap_or(1024).min(MAX_BYTES);
            if n <= MIB {
                return (
                    [(header::CONTENT_TYPE, "application/octet-stream")],
                    up.buf.slice(0..n),
                )
                    .into_response();
            }
            let chunks = n.div_ceil(CHUNK);
            let buf = up.buf.clone();
            let stream = futures::stream::iter((0..chunks).map(move |i| {
                let len = CHUNK.min(n - i * CHUNK);
                Ok::<_, std::io::Error>(buf.slice(0..len))
            }));
            (
                [
                    (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                    (header::CONTENT_LENGTH, n.to_string()),
                ],
                Body::from_stream(stream),
            )
                .into_response()
        }
        "/delay" => {
            let ms = query_number(query, "ms").unwrap_or(10).min(10_000);
            let _counted = InFlight::start(&up);
            tokio::time::sleep(std::time::Duration::from_millis(ms as u64)).await;
            (
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"ok":true}"#,
            )
                .into_response()
        }
        _ => (
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"ok":true}"#,
        )
            .into_response(),
    }
}

/// A bare reverse proxy, the practical limit of any proxy on this machine: `GET /proxy/{path}`
/// goes to `upstream/{path}` with the API key added, through reqwest (as Latchkey's proxy does),
/// and the answer streams back.
pub fn bare_proxy_router(upstream: &str) -> anyhow::Result<Router> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let state = Arc::new((client, upstream.trim_end_matches('/').to_string()));
    Ok(Router::new()
        .route("/proxy/{*path}", axum::routing::get(bare_proxy))
        .with_state(state))
}

async fn bare_proxy(
    State(s): State<Arc<(reqwest::Client, String)>>,
    axum::extract::Path(path): axum::extract::Path<String>,
    req: Request,
) -> Response {
    let (client, upstream) = &*s;
    let mut url = format!("{upstream}/{path}");
    if let Some(q) = req.uri().query() {
        url.push('?');
        url.push_str(q);
    }
    match client
        .get(url)
        .header("x-api-key", UPSTREAM_KEY)
        .send()
        .await
    {
        Ok(r) => {
            let mut resp = Response::builder().status(r.status().as_u16());
            for (k, v) in r.headers() {
                if k == header::CONTENT_TYPE || k == header::CONTENT_LENGTH {
                    resp = resp.header(k, v);
                }
            }
            resp.body(Body::from_stream(r.bytes_stream()))
                .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

async fn bind(listen: &str) -> anyhow::Result<(tokio::net::TcpListener, String)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let url = format!("http://{}", listener.local_addr()?);
    Ok((listener, url))
}

/// Serves `router` inside this process until the returned service is dropped.
pub async fn in_process(router: Router) -> anyhow::Result<Service> {
    let (listener, url) = bind("127.0.0.1:0").await?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(Service {
        url,
        pid: std::process::id(),
        _child: None,
        _task: Some(AbortOnDrop(task)),
    })
}

/// Starts one of this binary's server subcommands as a child process.
pub async fn child(args: &[&str], name: &str) -> anyhow::Result<Service> {
    let cmd = children::self_command(args)?;
    let (guard, url) = children::spawn_announcing(cmd, name, "listening on").await?;
    Ok(Service {
        url,
        pid: guard.pid(),
        _child: Some(guard),
        _task: None,
    })
}

/// The body of a child server subcommand: serves `router` on `listen`, announces the URL on
/// stdout, and ends when the parent goes away.
pub async fn serve_as_child(router: Router, listen: &str) -> anyhow::Result<()> {
    children::exit_when_parent_goes();
    let (listener, url) = bind(listen).await?;
    println!("listening on {url}");
    // As `latchkey serve` does: no Nagle delay on answers written in pieces.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router).await?;
    Ok(())
}
