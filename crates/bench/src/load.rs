//! The load generator: a fixed number of workers, each on its own keep-alive HTTP/1.1
//! connection (hyper), sending requests back to back for a fixed time after an unmeasured
//! warm-up. Every latency goes into an HDR histogram (microseconds). The workers may be spread
//! over several URLs (e.g. one per instance of a cluster), all measured in the one window.

use anyhow::Context;
use axum::body::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest wait for one answer; a request still running then counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A worker gives up after this many connection failures.
const MAX_RECONNECTS: u32 = 50;

/// What to send, how many at once, for how long.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// `http://host:port/path?query`; with several, worker `i` sends to the `i mod n`-th.
    pub urls: Vec<String>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub workers: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// A numeric response header to collect (e.g. `latchkey-queue-ms`).
    pub capture: Option<HeaderName>,
    /// Threads of the load generator's runtime.
    pub threads: usize,
}

impl LoadSpec {
    pub fn get(url: String, workers: usize, duration: Duration, warmup: Duration) -> Self {
        LoadSpec {
            urls: vec![url],
            headers: Vec::new(),
            workers,
            duration,
            warmup,
            capture: None,
            threads: std::env::var("LATCHKEY_BENCH_CLIENT_THREADS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(2),
        }
    }

    pub fn bearer(mut self, key: &str) -> Self {
        self.headers.push((
            hyper::header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {key}")).expect("a key is a header value"),
        ));
        self
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((
            HeaderName::from_static(name),
            HeaderValue::from_str(value).expect("header value"),
        ));
        self
    }

    pub fn capture(mut self, name: &'static str) -> Self {
        self.capture = Some(HeaderName::from_static(name));
        self
    }

    /// Spreads the workers over one more URL (same headers): worker `i` sends to
    /// `urls[i mod n]`, so that each URL gets `workers / n` of them when `n` divides `workers`.
    pub fn also(mut self, url: String) -> Self {
        self.urls.push(url);
        self
    }
}

/// What a load run measured.
pub struct LoadResult {
    /// Successful (2xx) requests completed in the measured window.
    pub ok: u64,
    /// Failed requests (non-2xx, connection errors, timeouts) in the window.
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    pub bytes: u64,
    /// Latency of successful requests, microseconds.
    pub latency: Histogram<u64>,
    /// Values of the captured header, as sent.
    pub captured: Histogram<u64>,
    /// Successful requests per URL of the spec, in its order.
    pub ok_by_url: Vec<u64>,
}

impl LoadResult {
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// A latency quantile in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }
}

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds")
}

/// Where to connect and what to put in the request line.
pub struct Target {
    pub authority: String,
    pub path: String,
}

pub fn target(url: &str) -> anyhow::Result<Target> {
    let u = url::Url::parse(url).with_context(|| format!("bad URL {url}"))?;
    let host = u.host_str().context("URL host")?;
    let port = u.port_or_known_default().context("URL port")?;
    let mut path = u.path().to_string();
    if let Some(q) = u.query() {
        path.push('?');
        path.push_str(q);
    }
    Ok(Target {
        authority: format!("{host}:{port}"),
        path,
    })
}

/// One keep-alive HTTP/1.1 connection.
pub async fn connect(authority: &str) -> anyhow::Result<SendRequest<Empty<Bytes>>> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(authority))
        .await
        .context("connect timed out")??;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

pub fn request(t: &Target, headers: &[(HeaderName, HeaderValue)]) -> hyper::Request<Empty<Bytes>> {
    let mut req = hyper::Request::get(t.path.as_str())
        .header(hyper::header::HOST, t.authority.as_str())
        .body(Empty::new())
        .expect("a request");
    for (k, v) in headers {
        req.headers_mut().insert(k.clone(), v.clone());
    }
    req
}

/// Sends one request and reads the whole answer: status, captured header, body length.
pub async fn exchange(
    sender: &mut SendRequest<Empty<Bytes>>,
    req: hyper::Request<Empty<Bytes>>,
    capture: Option<&HeaderName>,
) -> anyhow::Result<(u16, Option<u64>, u64)> {
    let fut = async {
        sender.ready().await?;
        let resp = sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let captured = capture
            .and_then(|h| resp.headers().get(h))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v.round().max(0.0) as u64);
        let mut body = resp.into_body();
        let mut n = 0u64;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                n += data.len() as u64;
            }
        }
        anyhow::Ok((status, captured, n))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, fut)
        .await
        .context("request timed out")?
}

struct WorkerResult {
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    bytes: u64,
    latency: Histogram<u64>,
    captured: Histogram<u64>,
}

fn note(r: &mut WorkerResult, measured: bool, e: String) {
    if measured {
        r.errors += 1;
    }
    if r.first_error.is_none() {
        r.first_error = Some(e);
    }
}

async fn worker(
    spec: Arc<LoadSpec>,
    t: Arc<Target>,
    measure_from: Instant,
    end: Instant,
) -> WorkerResult {
    let mut r = WorkerResult {
        ok: 0,
        errors: 0,
        first_error: None,
        bytes: 0,
        latency: histogram(),
        captured: histogram(),
    };
    let mut sender = None;
    let mut failures = 0u32;
    while Instant::now() < end {
        if sender.is_none() {
            match connect(&t.authority).await {
                Ok(s) => sender = Some(s),
                Err(e) => {
                    failures += 1;
                    note(
                        &mut r,
                        Instant::now() >= measure_from,
                        format!("connect: {e:#}"),
                    );
                    if failures >= MAX_RECONNECTS {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(s) = sender.as_mut() else { break };
        let req = request(&t, &spec.headers);
        let t0 = Instant::now();
        let res = exchange(s, req, spec.capture.as_ref()).await;
        let done = Instant::now();
        // A request counts when it completes inside the window, wherever it started: counting
        // those that start inside it instead loses the ones in flight when it opens and stretches
        // the window by the last one's latency, which under-reads slow answers (at 100 callers
        // queued behind a level-5 pool, 3 s windows read ~12% low).
        let measured = done >= measure_from && done < end;
        match res {
            Ok((status, captured, n)) if (200..300).contains(&status) => {
                if measured {
                    r.ok += 1;
                    r.bytes += n;
                    let us = (done - t0).as_micros().max(1) as u64;
                    r.latency.saturating_record(us);
                    if let Some(c) = captured {
                        r.captured.saturating_record(c.max(1));
                    }
                }
            }
            Ok((status, _, _)) => note(&mut r, measured, format!("HTTP {status}")),
            Err(e) => {
                note(&mut r, measured, format!("{e:#}"));
                sender = None;
            }
        }
    }
    r
}

/// Runs the load on a runtime of its own (`threads` worker threads, in a thread of its own), so
/// that the harness's other tasks (the simulator, the tap) do not share its threads: warm-up,
/// then the measured window; bounded by `warmup + duration` plus one request timeout.
pub async fn run(spec: &LoadSpec) -> anyhow::Result<LoadResult> {
    let spec = spec.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("load".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(spec.threads.max(1))
                .enable_all()
                .build();
            let r = match rt {
                Ok(rt) => rt.block_on(run_here(&spec)),
                Err(e) => Err(e.into()),
            };
            let _ = tx.send(r);
        })?;
    rx.await
        .context("the load thread ended without an answer")?
}

async fn run_here(spec: &LoadSpec) -> anyhow::Result<LoadResult> {
    anyhow::ensure!(!spec.urls.is_empty(), "a load needs a URL");
    let targets = spec
        .urls
        .iter()
        .map(|u| target(u).map(Arc::new))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let spec = Arc::new(spec.clone());
    let start = Instant::now();
    let measure_from = start + spec.warmup;
    let end = measure_from + spec.duration;
    let tasks: Vec<_> = (0..spec.workers.max(1))
        .map(|i| {
            let url = i % targets.len();
            let t = targets[url].clone();
            (
                url,
                tokio::spawn(worker(spec.clone(), t, measure_from, end)),
            )
        })
        .collect();
    let mut out = LoadResult {
        ok: 0,
        errors: 0,
        first_error: None,
        elapsed: spec.duration,
        bytes: 0,
        latency: histogram(),
        captured: histogram(),
        ok_by_url: vec![0; targets.len()],
    };
    for (url, task) in tasks {
        let r = task.await.context("a load worker panicked")?;
        out.ok += r.ok;
        out.ok_by_url[url] += r.ok;
        out.errors += r.errors;
        out.bytes += r.bytes;
        out.latency.add(&r.latency).context("merge histograms")?;
        out.captured.add(&r.captured).context("merge histograms")?;
        if out.first_error.is_none() {
            out.first_error = r.first_error;
        }
    }
    out.elapsed = spec.duration;
    if out.ok == 0 {
        anyhow::bail!(
            "no successful request to {} ({} errors, first: {})",
            spec.urls.join(", "),
            out.errors,
            out.first_error.as_deref().unwrap_or("none")
        );
    }
    Ok(out)
}
