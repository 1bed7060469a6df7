//! How connections are served: one listener, and a few serving threads that each run a
//! single-threaded runtime of their own.
//!
//! The listener hands each accepted connection to the serving thread that holds the fewest
//! open ones, and that thread reads its requests, runs them and writes their answers for as
//! long as the connection lives. A request's work (the proxy's upstream call above all) then
//! starts and ends on one thread, which also drives the sockets it waits on: no wake-up of
//! another thread between a request and its answer, and no second thread woken to look for
//! work that is not there. That is the part of a proxied call's cost that a work-stealing
//! runtime adds on a small answer (measured in BENCHMARKS.md); nginx's workers are made the
//! same way.
//!
//! Background work (probes, proactive refreshes, deliveries) runs on the runtime that called
//! [`serve`]. Work a request spawns runs on its serving thread; anything slow is sent to the
//! blocking threads, as on any runtime. A serving thread's runtime lives as long as the process,
//! after a stop too: the store's pooled connections its requests opened, and a refresh one of
//! them started, are registered with it and may still be in use.

use axum::extract::Request;
use axum::response::Response;
use axum::serve::ListenerExt;
use std::convert::Infallible;
use std::future::{Future, IntoFuture};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// What the serving threads serve: the whole HTTP surface ([`crate::routes::ProxyFirst`]) or,
/// in tests, any router. Each request is served knowing the TCP peer it came from, so that a
/// request that does not need the peer in its extensions (a proxied call) is spared putting it
/// there: the first extension of a request allocates its map.
pub trait Served: Clone + Send + Sync + 'static {
    type Future: Future<Output = Result<Response, Infallible>> + Send + 'static;

    /// Serves `req`, which came from `peer`.
    fn serve(&mut self, req: Request, peer: SocketAddr) -> Self::Future;
}

/// A router finds the peer where axum's `ConnectInfo` extractor looks for it.
impl Served for axum::Router {
    type Future = <axum::Router as tower::Service<Request>>::Future;

    fn serve(&mut self, mut req: Request, peer: SocketAddr) -> Self::Future {
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        tower::Service::call(self, req)
    }
}

/// What serves one connection: the served surface and the connection's peer.
#[derive(Clone)]
struct FromPeer<S> {
    served: S,
    peer: SocketAddr,
}

impl<S: Served> tower::Service<Request> for FromPeer<S> {
    type Response = Response;
    type Error = Infallible;
    type Future = S::Future;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        self.served.serve(req, self.peer)
    }
}

/// Makes the [`FromPeer`] of each accepted connection.
#[derive(Clone)]
struct PerConnection<S>(S);

impl<'a, S, L> tower::Service<axum::serve::IncomingStream<'a, L>> for PerConnection<S>
where
    S: Served,
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    type Response = FromPeer<S>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<FromPeer<S>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, incoming: axum::serve::IncomingStream<'a, L>) -> Self::Future {
        std::future::ready(Ok(FromPeer {
            served: self.0.clone(),
            peer: *incoming.remote_addr(),
        }))
    }
}

/// How many serving threads: `configured` (`LATCHKEY_HTTP_THREADS`), or one per core for 0.
pub fn thread_count(configured: usize) -> usize {
    match configured {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    }
}

type Handoff = (std::net::TcpStream, SocketAddr);
type Sender = mpsc::UnboundedSender<Handoff>;
/// A serving thread's result, once it has stopped.
type Ended = tokio::sync::oneshot::Receiver<io::Result<()>>;

/// A serving thread as the listener sees it: how many connections it holds, and, once it has
/// been started, where its connections go and how it ends.
struct Worker {
    open: Arc<AtomicUsize>,
    to: Option<Sender>,
    ended: Option<Ended>,
    /// It could not start, or it stopped: no connection goes to it any more.
    gone: bool,
}

/// What every serving thread is started with.
struct Start<S> {
    router: S,
    stopped: watch::Receiver<bool>,
    /// The serving threads log where the thread that starts them does (a test's own subscriber
    /// included).
    logs: tracing::Dispatch,
    local: SocketAddr,
}

/// Serves `router` on `listener` with up to `threads` serving threads until `shutdown`
/// completes, then lets every thread finish the requests it has in flight. A thread starts when
/// the first connection is handed to it: a server nobody calls runs none, one caller one.
pub async fn serve<S: Served>(
    listener: TcpListener,
    router: S,
    threads: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (stop, stopped) = watch::channel(false);
    let start = Start {
        router,
        stopped,
        logs: tracing::dispatcher::get_default(Clone::clone),
        local: listener.local_addr()?,
    };
    let mut workers: Vec<Worker> = (0..threads.max(1))
        .map(|_| Worker {
            open: Arc::default(),
            to: None,
            ended: None,
            gone: false,
        })
        .collect();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((tcp, peer)) => hand_over(&mut workers, &start, tcp, peer),
            Err(e) => on_accept_error(e).await,
        }
    }
    drop(listener);
    let _ = stop.send(true);
    let mut result = Ok(());
    for ended in workers.into_iter().filter_map(|w| w.ended) {
        match ended.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = Err(e),
            Err(_) => result = Err(io::Error::other("a serving thread stopped unexpectedly")),
        }
    }
    result
}

/// Gives a new connection to the thread with the fewest open ones (started now if it has not
/// been yet). A thread that could not start, or has stopped, gets no more connections: the
/// connection goes to the next one, and is closed only when none is left.
fn hand_over<S: Served>(
    workers: &mut [Worker],
    start: &Start<S>,
    tcp: TcpStream,
    peer: SocketAddr,
) {
    let mut conn = match tcp.into_std() {
        Ok(std) => (std, peer),
        Err(e) => {
            tracing::warn!(error = %e, "could not hand a connection over");
            return;
        }
    };
    loop {
        let Some((i, w)) = workers
            .iter_mut()
            .enumerate()
            .filter(|(_, w)| !w.gone)
            .min_by_key(|(_, w)| w.open.load(Ordering::Relaxed))
        else {
            tracing::error!("no serving thread is left to serve a connection; closing it");
            return;
        };
        if w.to.is_none() {
            match start.thread(i, w.open.clone()) {
                Ok((to, ended)) => (w.to, w.ended) = (Some(to), Some(ended)),
                Err(e) => {
                    tracing::error!(error = %e, thread = i, "could not start a serving thread");
                    w.gone = true;
                    continue;
                }
            }
        }
        let Some(to) = &w.to else { return };
        w.open.fetch_add(1, Ordering::Relaxed);
        match to.send(conn) {
            Ok(()) => return,
            Err(mpsc::error::SendError(back)) => {
                // Its runtime could not be built, or it stopped: what it ended with is logged
                // when the server stops.
                w.open.fetch_sub(1, Ordering::Relaxed);
                tracing::error!(thread = i, "a serving thread has stopped; passing it over");
                w.gone = true;
                conn = back;
            }
        }
    }
}

impl<S: Served> Start<S> {
    /// Starts serving thread `i`: where to send it connections, and its result once it stops.
    fn thread(&self, i: usize, open: Arc<AtomicUsize>) -> io::Result<(Sender, Ended)> {
        let (to, from) = mpsc::unbounded_channel();
        let (done, ended) = tokio::sync::oneshot::channel();
        let listener = Handed {
            from,
            open,
            local: self.local,
        };
        let (router, mut stopped) = (self.router.clone(), self.stopped.clone());
        let logs = self.logs.clone();
        std::thread::Builder::new()
            .name(format!("latchkey-http-{i}"))
            .spawn(move || {
                let _logs = tracing::dispatcher::set_default(&logs);
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = done.send(Err(e));
                        return;
                    }
                };
                let ticking = rt.spawn(keep_a_timer_set());
                let served = rt.block_on(
                    axum::serve(listener.tap_io(Counted::no_delay), PerConnection(router))
                        .with_graceful_shutdown(async move {
                            let _ = stopped.wait_for(|s| *s).await;
                        })
                        .into_future(),
                );
                // Nothing is served from here on: the thread need not wake every second.
                ticking.abort();
                let _ = done.send(served);
                // What this thread's requests opened or started is registered with its runtime
                // and may outlive them: connections in the store's shared pool, a refresh that
                // must write the tokens it got. The runtime goes on driving them for as long
                // as the process lives.
                rt.block_on(std::future::pending::<()>());
            })?;
        Ok((to, ended))
    }
}

/// How often a serving thread's standing timer fires (see [`keep_a_timer_set`]).
const STANDING_TICK: Duration = Duration::from_secs(1);

/// Keeps one timer of the serving thread's runtime always set, firing every [`STANDING_TICK`].
/// tokio's timer wakes the thread's event loop through its eventfd whenever a timer is set
/// sooner than the loop's next planned wake-up, and a loop that went to sleep with no timer at
/// all has none planned: then every request's first timer (the upstream call's deadline, the
/// pool queue's) cost a system call to wake a thread that was already awake, and an extra
/// round of `epoll_wait` after it (measured: about one in two proxied requests). With this
/// timer set, the loop always plans to wake within a second, and a request's deadlines, much
/// further off, never need to wake it.
async fn keep_a_timer_set() {
    let mut tick = tokio::time::interval(STANDING_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
    }
}

/// An accept that failed for the connection alone (the peer gave up) is passed over; any other
/// failure (out of file descriptors, say) is logged and the listener pauses, so that it does
/// not spin while the cause lasts.
async fn on_accept_error(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; pausing for a moment");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// A serving thread's side: the connections the listener hands it.
struct Handed {
    from: mpsc::UnboundedReceiver<Handoff>,
    open: Arc<AtomicUsize>,
    local: SocketAddr,
}

impl axum::serve::Listener for Handed {
    type Io = Counted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Some((std, peer)) = self.from.recv().await else {
                // The listener has stopped; the shutdown signal ends the serving loop.
                return std::future::pending().await;
            };
            // Registered with this thread's runtime: its readiness is this thread's to see.
            match TcpStream::from_std(std) {
                Ok(tcp) => {
                    let open = self.open.clone();
                    return (Counted { tcp, open }, peer);
                }
                Err(e) => {
                    self.open.fetch_sub(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "could not take a connection over");
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// A served connection, counted among its thread's open ones until it is dropped.
struct Counted {
    tcp: TcpStream,
    open: Arc<AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Counted {
    /// Answers (a proxied body above all) are written in pieces: without TCP_NODELAY the last
    /// piece can wait for the client's delayed ACK (40 ms on Linux).
    fn no_delay(&mut self) {
        if let Err(e) = self.tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    }

    fn tcp(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(&mut self.tcp)
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().tcp().poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().tcp().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().tcp().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().tcp().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().tcp().poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use axum::Router;

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client")
    }

    /// What the threads start with, and the signal that stops them.
    fn start(local: SocketAddr) -> (Start<Router>, watch::Sender<bool>) {
        let router = Router::new().route("/", get(|| async { "here" }));
        let (stop, stopped) = watch::channel(false);
        let logs = tracing::Dispatch::none();
        let start = Start {
            router,
            stopped,
            logs,
            local,
        };
        (start, stop)
    }

    #[tokio::test]
    async fn a_new_connection_goes_to_the_thread_holding_the_fewest() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Two threads as the listener sees them, started: their connections arrive here.
        let (mut handed, mut workers) = (Vec::new(), Vec::new());
        for _ in 0..2 {
            let (to, from) = mpsc::unbounded_channel();
            let open = Arc::new(AtomicUsize::new(0));
            workers.push(Worker {
                open: open.clone(),
                to: Some(to),
                ended: None,
                gone: false,
            });
            handed.push(Handed {
                from,
                open,
                local: addr,
            });
        }
        let (start, _stop) = start(addr);
        let mut clients = Vec::new();
        async fn next(
            l: &TcpListener,
            w: &mut [Worker],
            s: &Start<Router>,
            c: &mut Vec<TcpStream>,
        ) {
            c.push(TcpStream::connect(l.local_addr().unwrap()).await.unwrap());
            let (tcp, peer) = l.accept().await.unwrap();
            hand_over(w, s, tcp, peer);
        }
        let open = |w: &[Worker]| -> Vec<usize> {
            w.iter().map(|w| w.open.load(Ordering::Relaxed)).collect()
        };
        for _ in 0..3 {
            next(&listener, &mut workers, &start, &mut clients).await;
        }
        assert_eq!(open(&workers), [2, 1]);
        let mut first = Vec::new();
        for _ in 0..2 {
            first.push(axum::serve::Listener::accept(&mut handed[0]).await.0);
        }
        let _second = axum::serve::Listener::accept(&mut handed[1]).await.0;
        // A connection of the first thread ends: the next one goes there.
        drop(first.pop());
        assert_eq!(open(&workers), [1, 1]);
        for _ in 0..2 {
            next(&listener, &mut workers, &start, &mut clients).await;
        }
        assert_eq!(open(&workers), [2, 2], "one more to each, the first first");
        let more = axum::serve::Listener::accept(&mut handed[0]).await.0;
        drop((first, more));
        assert_eq!(open(&workers)[0], 0);
    }

    #[tokio::test]
    async fn a_thread_that_stopped_is_passed_over_and_with_none_left_the_connection_closes() {
        use tokio::io::AsyncReadExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (start, _stop) = start(addr);
        // Thread 0 holds none but has stopped (its receiver is gone); thread 1 holds five.
        let (dead_to, dead_from) = mpsc::unbounded_channel();
        drop(dead_from);
        let (live_to, live_from) = mpsc::unbounded_channel();
        let mut workers = vec![
            Worker {
                open: Arc::default(),
                to: Some(dead_to),
                ended: None,
                gone: false,
            },
            Worker {
                open: Arc::new(AtomicUsize::new(5)),
                to: Some(live_to),
                ended: None,
                gone: false,
            },
        ];
        let mut handed = Handed {
            from: live_from,
            open: workers[1].open.clone(),
            local: addr,
        };
        let _client = TcpStream::connect(addr).await.unwrap();
        let (tcp, peer) = listener.accept().await.unwrap();
        hand_over(&mut workers, &start, tcp, peer);
        let gone: Vec<bool> = workers.iter().map(|w| w.gone).collect();
        assert_eq!(gone, [true, false]);
        let open: Vec<usize> = workers
            .iter()
            .map(|w| w.open.load(Ordering::Relaxed))
            .collect();
        assert_eq!(
            open,
            [0, 6],
            "the connection went to the thread still serving"
        );
        let (_served, from) = axum::serve::Listener::accept(&mut handed).await;
        assert_eq!(from, peer);

        // Once no thread is left, a new connection is closed rather than left hanging.
        drop(handed);
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (tcp, peer) = listener.accept().await.unwrap();
        hand_over(&mut workers, &start, tcp, peer);
        assert!(workers.iter().all(|w| w.gone));
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
            .await
            .expect("the connection is closed, not left open");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }

    #[tokio::test]
    async fn a_thread_starts_when_a_connection_is_first_handed_to_it() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (start, _stop) = start(listener.local_addr().unwrap());
        let mut workers: Vec<Worker> = (0..3)
            .map(|_| Worker {
                open: Arc::default(),
                to: None,
                ended: None,
                gone: false,
            })
            .collect();
        let call = tokio::spawn(async move { client().get(&url).send().await?.text().await });
        let (tcp, peer) = listener.accept().await.unwrap();
        hand_over(&mut workers, &start, tcp, peer);
        let started: Vec<bool> = workers.iter().map(|w| w.to.is_some()).collect();
        assert_eq!(started, [true, false, false], "one caller, one thread");
        assert_eq!(
            call.await.unwrap().unwrap(),
            "here",
            "served by the thread just started"
        );
    }

    #[tokio::test]
    async fn connections_are_served_on_several_threads_and_a_stop_finishes_requests_in_flight() {
        let router = Router::new()
            .route(
                "/thread",
                get(|| async { std::thread::current().name().unwrap_or("").to_string() }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    "done"
                }),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(serve(listener, router, 2, async move {
            let _ = stopped.await;
        }));
        // Two callers, two connections: one on each serving thread; each keeps its thread.
        let (a, b) = (client(), client());
        let mut names = Vec::new();
        for c in [&a, &b, &a, &b] {
            let r = c.get(format!("{url}/thread")).send().await.unwrap();
            names.push(r.text().await.unwrap());
        }
        assert_eq!(names[0], names[2], "a connection stays on its thread");
        assert_eq!(names[1], names[3]);
        assert_ne!(
            names[0], names[1],
            "the second connection went to the idle thread"
        );
        assert!(
            names.iter().all(|n| n.starts_with("latchkey-http-")),
            "{names:?}"
        );

        let slow = tokio::spawn({
            let (c, url) = (a.clone(), url.clone());
            async move { c.get(format!("{url}/slow")).send().await?.text().await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(()).unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(10), slow)
            .await
            .expect("the request in flight ends")
            .unwrap();
        assert_eq!(answer.unwrap(), "done", "the stop let the request finish");
        tokio::time::timeout(Duration::from_secs(10), served)
            .await
            .expect("the server stops once its requests are done")
            .unwrap()
            .expect("a clean stop");
        let refused = client().get(format!("{url}/thread")).send().await;
        assert!(refused.is_err(), "no longer listening");
    }
}
