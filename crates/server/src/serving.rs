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
//! Work that outlives a request (background probes, refreshes, deliveries) runs on the runtime
//! that called [`serve`]. Work a request spawns runs on its serving thread; anything slow is
//! sent to the blocking threads, as on any runtime.

use axum::serve::ListenerExt;
use axum::Router;
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

/// How many serving threads: `configured` (`LATCHKEY_HTTP_THREADS`), or one per core for 0.
pub fn thread_count(configured: usize) -> usize {
    match configured {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    }
}

/// A serving thread as the listener sees it: where its connections go and how many it holds.
struct Worker {
    to: mpsc::UnboundedSender<(std::net::TcpStream, SocketAddr)>,
    open: Arc<AtomicUsize>,
}

/// Serves `router` on `listener` with `threads` serving threads until `shutdown` completes,
/// then lets every thread finish the requests it has in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    threads: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let local = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let mut workers = Vec::with_capacity(threads);
    let mut finished = Vec::with_capacity(threads);
    for i in 0..threads.max(1) {
        let (to, from) = mpsc::unbounded_channel();
        let open = Arc::new(AtomicUsize::new(0));
        let (done, finish) = tokio::sync::oneshot::channel::<io::Result<()>>();
        let listener = Handed {
            from,
            open: open.clone(),
            local,
        };
        let (router, mut stopped) = (router.clone(), stopped.clone());
        std::thread::Builder::new()
            .name(format!("latchkey-http-{i}"))
            .spawn(move || {
                let served = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .and_then(|rt| {
                        rt.block_on(
                            axum::serve(
                                listener.tap_io(Counted::no_delay),
                                router.into_make_service_with_connect_info::<SocketAddr>(),
                            )
                            .with_graceful_shutdown(async move {
                                let _ = stopped.wait_for(|s| *s).await;
                            })
                            .into_future(),
                        )
                    });
                let _ = done.send(served);
            })?;
        workers.push(Worker { to, open });
        finished.push(finish);
    }
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((tcp, peer)) => hand_over(&workers, tcp, peer),
            Err(e) => on_accept_error(e).await,
        }
    }
    drop(listener);
    let _ = stop.send(true);
    drop(workers);
    let mut result = Ok(());
    for f in finished {
        match f.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = Err(e),
            Err(_) => result = Err(io::Error::other("a serving thread stopped unexpectedly")),
        }
    }
    result
}

/// Gives a new connection to the thread with the fewest open ones.
fn hand_over(workers: &[Worker], tcp: TcpStream, peer: SocketAddr) {
    let Some(w) = workers
        .iter()
        .min_by_key(|w| w.open.load(Ordering::Relaxed))
    else {
        return;
    };
    match tcp.into_std() {
        Ok(std) => {
            w.open.fetch_add(1, Ordering::Relaxed);
            if w.to.send((std, peer)).is_err() {
                w.open.fetch_sub(1, Ordering::Relaxed);
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not hand a connection over"),
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
    from: mpsc::UnboundedReceiver<(std::net::TcpStream, SocketAddr)>,
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
pub struct Counted {
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
