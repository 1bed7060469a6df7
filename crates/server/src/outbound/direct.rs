//! The proxy's own HTTP/1.1 client, built for its hot path.
//!
//! A proxied call runs inside the task of the request that makes it. The upstream connection is
//! driven by that task while the request goes out and the answer comes back, and, for an answer
//! that streams on to the caller, by the task that sends it, instead of by a connection task of
//! its own that every request hands over to and waits on (two wake-ups across threads per call,
//! which on a small answer cost more than the forwarding itself).
//!
//! Connections are kept per origin (scheme, host and port) once an answer has been read to its
//! end, and handed out newest first. One found closed when it is taken (the application let it
//! go while it was idle) is dropped, as is one idle for longer than [`IDLE_MAX`]. A request
//! that a reused connection could not take (it closed before the request was written) goes out
//! once more on a new connection; one that was written is never sent twice.
//!
//! Like the other outbound client it connects only to addresses the outbound rules permit (a
//! name is resolved and each answer checked once per new connection, and the connection goes to
//! the checked address), verifies TLS against the same web roots, never follows a redirect and
//! never goes through an HTTP proxy. It speaks HTTP/1.1 to the application, as nginx does.

use super::{resolve_permitted, OutboundError, Policy};
use axum::body::{Body, Bytes};
use base64::Engine as _;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls;
use url::Url;

/// How long a new connection may take, TLS handshake included.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// An idle connection older than this is not used again (many servers close theirs after a
/// minute or less).
pub const IDLE_MAX: Duration = Duration::from_secs(50);
/// At most this many idle connections are kept per origin; more are closed.
const IDLE_PER_ORIGIN: usize = 128;
/// How often the idle connections of every origin are looked over for old ones.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

type Io = TokioIo<Box<dyn Stream>>;

/// One upstream connection: the handle requests are sent through and the connection itself,
/// which only moves while someone polls it.
struct Live {
    send: http1::SendRequest<Body>,
    drive: Pin<Box<http1::Connection<Io, Body>>>,
    /// Since when it is idle (or open, before its first request).
    since: Instant,
    /// `scheme://host:port` as the URL writes it: where it is kept when idle.
    origin: Arc<str>,
    /// The runtime that drives it (see [`home_key`]).
    home: u64,
}

impl Live {
    /// Whether an idle connection can carry a request: it is polled once, without a waker to
    /// call back, so that it reads the close an application may have sent while it sat idle
    /// (and, when open, gets ready for the next request).
    fn usable(&mut self) -> bool {
        if self.since.elapsed() >= IDLE_MAX {
            return false;
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.drive.as_mut().poll(&mut cx) {
            Poll::Ready(_) => false,
            Poll::Pending => self.send.is_ready(),
        }
    }
}

#[derive(Default)]
struct Idle {
    /// By [`home_key`], then by origin.
    by_origin: crate::FastMap<u64, crate::FastMap<Arc<str>, Vec<Live>>>,
    swept: Option<Instant>,
}

/// Why a proxied request got no answer. None of these carries the URL (it may hold a credential).
#[derive(Debug, thiserror::Error)]
pub enum DirectError {
    #[error("{0}")]
    Blocked(#[from] OutboundError),
    #[error("{0}")]
    Connect(std::io::Error),
    #[error("the TLS handshake failed: {0}")]
    Tls(std::io::Error),
    #[error("timed out")]
    TimedOut,
    #[error("{0}")]
    Http(#[from] hyper::Error),
}

pub struct Direct {
    idle: Mutex<Idle>,
    tls: tokio_rustls::TlsConnector,
    policy: Arc<Policy>,
}

/// The request a call sends: everything but the connection it goes on.
pub struct Call {
    pub method: http::Method,
    /// Where it goes (after rewrites): its origin picks the connection, its path and query are
    /// what is sent unless `target` says otherwise.
    pub url: Arc<Url>,
    /// The path and query to send in place of the URL's own, already escaped as a URL writes
    /// them (starting with `/`).
    pub target: Option<String>,
    /// Sent as they are, plus `Host` (and `Accept` and `User-Agent` when absent).
    pub headers: http::HeaderMap,
    pub body: Body,
    /// The whole call, answer included, ends by then.
    pub deadline: tokio::time::Instant,
}

/// A TLS client that trusts the web's roots (the ones browsers ship, not the machine's), as
/// every outgoing connection to an application or a service does.
pub fn web_tls() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

impl Direct {
    pub(super) fn new(policy: Arc<Policy>) -> Self {
        let mut config = web_tls();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Direct {
            idle: Mutex::default(),
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            policy,
        }
    }

    /// Sends `call` and answers with the application's status, headers and a body that drives
    /// the connection as it is read.
    pub async fn send(self: &Arc<Self>, call: Call) -> Result<http::Response<Answer>, DirectError> {
        let origin = origin_of(&call.url);
        let deadline = call.deadline;
        let mut req = request(call.method, &call.url, call.target, call.headers, call.body)?;
        let reused = self.take(&origin);
        let mut live = match reused {
            Some(l) => l,
            None => self.connect_until(&call.url, deadline).await?,
        };
        let mut fresh = false;
        loop {
            match tokio::time::timeout_at(deadline, exchange(&mut live, req)).await {
                Err(_) => return Err(DirectError::TimedOut),
                Ok(Ok(resp)) => {
                    let (parts, body) = resp.into_parts();
                    let answer = Answer {
                        body,
                        conn: Some(live),
                        home: Some(self.clone()),
                        detached: None,
                        deadline,
                        timer: None,
                    };
                    return Ok(http::Response::from_parts(parts, answer));
                }
                // A reused connection that closed before taking the request: it was not sent,
                // so it goes on a new connection, once.
                Ok(Err(mut e)) => match e.take_message() {
                    Some(back) if !fresh => {
                        req = back;
                        live = self.connect_until(&call.url, deadline).await?;
                        fresh = true;
                    }
                    _ => return Err(DirectError::Http(e.into_error())),
                },
            }
        }
    }

    async fn connect_until(
        &self,
        url: &Url,
        deadline: tokio::time::Instant,
    ) -> Result<Live, DirectError> {
        let limit = deadline.min(tokio::time::Instant::now() + CONNECT_TIMEOUT);
        tokio::time::timeout_at(limit, self.connect(url))
            .await
            .map_err(|_| DirectError::TimedOut)?
    }

    /// A new connection to `url`'s origin, at an address the outbound rules permit.
    async fn connect(&self, url: &Url) -> Result<Live, DirectError> {
        let origin = Arc::from(origin_of(url));
        let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
        let port = url.port_or_known_default().unwrap_or(80);
        // An address written in the URL was checked when the URL was prepared; a name is
        // resolved here and only the answers the rules permit are tried.
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => resolve_permitted(&self.policy, host)
                .await?
                .into_iter()
                .map(|a| SocketAddr::new(a.ip(), port))
                .collect(),
        };
        let mut last = None;
        let mut tcp = None;
        for addr in addrs {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = tcp.ok_or_else(|| {
            DirectError::Connect(last.unwrap_or_else(|| std::io::Error::other("no address")))
        })?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = if url.scheme() == "https" {
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|_| DirectError::Tls(std::io::Error::other("not a TLS server name")))?;
            Box::new(
                self.tls
                    .connect(name, tcp)
                    .await
                    .map_err(DirectError::Tls)?,
            )
        } else {
            Box::new(tcp)
        };
        let (send, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await?;
        Ok(Live {
            send,
            drive: Box::pin(conn),
            since: Instant::now(),
            origin,
            home: home_key(),
        })
    }

    /// The newest idle connection to `origin` that can still carry a request.
    fn take(&self, origin: &str) -> Option<Live> {
        loop {
            let mut live = {
                let mut idle = self.idle.lock().expect("idle connections lock");
                idle.by_origin
                    .get_mut(&home_key())?
                    .get_mut(origin)?
                    .pop()?
            };
            if live.usable() {
                return Some(live);
            }
        }
    }

    /// Keeps a connection whose answer was read to its end for the next request to `origin`.
    fn put(&self, mut live: Live) {
        if live.send.is_closed() {
            return;
        }
        live.since = Instant::now();
        let mut idle = self.idle.lock().expect("idle connections lock");
        let now = live.since;
        if idle
            .swept
            .is_none_or(|t| now.duration_since(t) >= SWEEP_EVERY)
        {
            idle.swept = Some(now);
            idle.by_origin.retain(|_, origins| {
                origins.retain(|_, list| {
                    list.retain(|l| now.duration_since(l.since) < IDLE_MAX);
                    !list.is_empty()
                });
                !origins.is_empty()
            });
        }
        let list = idle
            .by_origin
            .entry(live.home)
            .or_default()
            .entry(live.origin.clone())
            .or_default();
        if list.len() < IDLE_PER_ORIGIN {
            list.push(live);
        }
    }
}

/// Which runtime's idle connections a connection belongs to. A connection is registered with
/// the runtime it was opened on, and only that runtime's thread learns when it can be read:
/// on a single-threaded runtime (each serving thread runs one, see `crate::serving`) it is
/// kept for the requests of that thread, so that no other thread has to be woken to pass its
/// readiness on; the workers of a multi-threaded runtime share one driver, and one list.
fn home_key() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local!(static THREAD: u64 = NEXT.fetch_add(1, Ordering::Relaxed));
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread => {
            THREAD.with(|t| *t)
        }
        _ => 0,
    }
}

/// `scheme://host:port` of a URL, as it writes them (without the user and password it may
/// carry).
fn origin_of(url: &Url) -> std::borrow::Cow<'_, str> {
    if url.username().is_empty() && url.password().is_none() {
        return url[..url::Position::BeforePath].into();
    }
    format!(
        "{}://{}",
        url.scheme(),
        &url[url::Position::BeforeHost..url::Position::AfterPort]
    )
    .into()
}

/// The request as it goes on the wire: origin-form target, `Host` from the URL.
fn request(
    method: http::Method,
    url: &Url,
    target: Option<String>,
    mut headers: http::HeaderMap,
    body: Body,
) -> Result<http::Request<Body>, DirectError> {
    let uri = match target {
        Some(t) => http::Uri::try_from(t),
        None => {
            let t = &url[url::Position::BeforePath..url::Position::AfterQuery];
            http::Uri::try_from(if t.is_empty() { "/" } else { t })
        }
    };
    let uri =
        uri.map_err(|_| OutboundError::BadUrl("the path is not a valid request target".into()))?;
    let host = &url[url::Position::BeforeHost..url::Position::AfterPort];
    let host = http::HeaderValue::from_str(host)
        .map_err(|_| OutboundError::BadUrl("the host is not a valid header value".into()))?;
    headers.insert(http::header::HOST, host);
    // A user and password in the URL are sent as Basic credentials, unless the request has
    // its own.
    if !url.username().is_empty() || url.password().is_some() {
        if let http::header::Entry::Vacant(v) = headers.entry(http::header::AUTHORIZATION) {
            let user = percent_encoding::percent_decode_str(url.username()).decode_utf8_lossy();
            let pass = url
                .password()
                .map(|p| percent_encoding::percent_decode_str(p).decode_utf8_lossy());
            let token = base64::engine::general_purpose::STANDARD
                .encode(format!("{user}:{}", pass.as_deref().unwrap_or_default()));
            let mut value = http::HeaderValue::from_str(&format!("Basic {token}"))
                .map_err(|_| OutboundError::BadUrl("the URL's user is not valid".into()))?;
            value.set_sensitive(true);
            v.insert(value);
        }
    }
    // Made once: a value made from a string checks each of its bytes every time.
    static ANY: http::HeaderValue = http::HeaderValue::from_static("*/*");
    static AGENT: http::HeaderValue =
        http::HeaderValue::from_static(concat!("latchkey/", env!("CARGO_PKG_VERSION")));
    if let http::header::Entry::Vacant(v) = headers.entry(http::header::ACCEPT) {
        v.insert(ANY.clone());
    }
    if let http::header::Entry::Vacant(v) = headers.entry(http::header::USER_AGENT) {
        v.insert(AGENT.clone());
    }
    let mut req = http::Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    Ok(req)
}

type Sent =
    Result<http::Response<Incoming>, hyper::client::conn::TrySendError<http::Request<Body>>>;

/// Sends `req` on `live` and waits for the answer's head, driving the connection meanwhile.
async fn exchange(live: &mut Live, req: http::Request<Body>) -> Sent {
    let mut answer = std::pin::pin!(live.send.try_send_request(req));
    let mut open = true;
    std::future::poll_fn(|cx| {
        if open {
            if let Poll::Ready(ended) = live.drive.as_mut().poll(cx) {
                open = false;
                // The connection is over; the answer (or why there is none) is known by now.
                if let Poll::Ready(r) = answer.as_mut().poll(cx) {
                    return Poll::Ready(r);
                }
                let e = ended.err();
                tracing::debug!(error = ?e, "upstream connection ended before its answer");
            }
        }
        answer.as_mut().poll(cx)
    })
    .await
}

/// The application's answer body. Reading it drives its connection (unless it was handed to a
/// task of its own, see [`Answer::detach`]), which goes back to the idle ones once the body has
/// been read to its end; dropped before that, the connection is closed.
pub struct Answer {
    body: Incoming,
    conn: Option<Live>,
    home: Option<Arc<Direct>>,
    /// Tells the task that drives a detached connection that the body was read to its end.
    detached: Option<tokio::sync::oneshot::Sender<()>>,
    deadline: tokio::time::Instant,
    /// Started the first time the body has to wait.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Answer {
    /// Hands the connection to a task of its own, which reads the application's answer while
    /// the reader of this body writes the part before it on: for a large answer, reading and
    /// writing then overlap on two threads. The task keeps the connection for reuse once this
    /// body has been read to its end, and closes it when the body is dropped before that.
    pub fn detach(&mut self) {
        let Some(mut live) = self.conn.take() else {
            return;
        };
        let home = self.home.take();
        let (done, mut read) = tokio::sync::oneshot::channel::<()>();
        self.detached = Some(done);
        tokio::spawn(async move {
            let keep = tokio::select! {
                biased;
                r = &mut read => r.is_ok(),
                _ = live.drive.as_mut() => false,
            };
            if let (true, Some(direct)) = (keep, home) {
                direct.put(live);
            }
        });
    }

    fn finished(&mut self) {
        if let (Some(live), Some(direct)) = (self.conn.take(), self.home.take()) {
            direct.put(live);
        }
        if let Some(done) = self.detached.take() {
            let _ = done.send(());
        }
    }

    fn broke(&mut self) {
        self.conn = None;
        self.home = None;
        self.detached = None;
    }
}

impl hyper::body::Body for Answer {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        // Twice: a frame the connection reads on the first pass is taken on the second.
        for _ in 0..2 {
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(None) => {
                    this.finished();
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Ok(frame))) => {
                    if this.body.is_end_stream() {
                        this.finished();
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                Poll::Ready(Some(Err(e))) => {
                    this.broke();
                    return Poll::Ready(Some(Err(std::io::Error::other(e))));
                }
                Poll::Pending => {}
            }
            match this.conn.as_mut().map(|l| l.drive.as_mut().poll(cx)) {
                Some(Poll::Ready(_)) => this.broke(),
                Some(Poll::Pending) => {}
                None => break,
            }
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.as_mut().poll(cx).is_ready() {
            this.broke();
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the answer did not end in time",
            ))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
