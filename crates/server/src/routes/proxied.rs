//! The proxy's own way in. A proxied call is the hot path: it is taken before the rest of the
//! API, by a look at the request's path rather than by the router, and gets what the API's
//! layers give every request (the header limit, a panic turned into a 500, the `request` span
//! and its logs, the request metrics) from this one function, rather than from a stack of layers
//! each wrapping every route, which cost about a fifth of a small proxied call's time (profiled
//! in BENCHMARKS.md); the router's matching and its path parameters (a shared string per
//! parameter, then copies) cost another tenth of what was left. Everything else goes on to the
//! full router unchanged; the proxy's route stays there too, for the MCP tools' in-process calls
//! and for paths this look leaves to it (an empty or percent-encoded name, say), which it
//! answers the same way.

use super::{headers_too_large, panicked, proxy_policy};
use crate::serving::Served;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures::future::{BoxFuture, Either};
use futures::FutureExt;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::time::Instant;
use tower::Service;
use tracing::Instrument;

/// The proxy's route.
pub const ROUTE: &str = "/v1/workspaces/{ws}/connections/{conn}/proxy/{*path}";

/// The whole API (`rest`, with its layers) with proxied calls taken first.
#[derive(Clone)]
pub struct ProxyFirst {
    state: AppState,
    rest: Router,
}

impl ProxyFirst {
    pub fn new(state: AppState, rest: Router) -> Self {
        Self { state, rest }
    }
}

impl Served for ProxyFirst {
    type Future = Either<
        BoxFuture<'static, Result<Response, Infallible>>,
        <Router as Service<Request>>::Future,
    >;

    fn serve(&mut self, req: Request, peer: SocketAddr) -> Self::Future {
        match proxied_names(req.uri().path()) {
            Some(names) => Either::Left(Box::pin(
                proxied(self.state.clone(), names, req, peer).map(Ok),
            )),
            // Served as any router is, the peer in its extensions.
            None => Either::Right(self.rest.serve(req, peer)),
        }
    }
}

/// The workspace, the connection and the application's path (percent-decoded) that a path of
/// the proxy's route names, when this look can tell them for sure: both names plain (no `%`)
/// and not empty, the application's path not empty and valid UTF-8 once decoded. Any other path
/// is left to the router.
fn proxied_names(path: &str) -> Option<(String, String, String)> {
    let rest = path.strip_prefix("/v1/workspaces/")?;
    let (ws, rest) = rest.split_once('/')?;
    let (conn, rest) = rest.strip_prefix("connections/")?.split_once('/')?;
    let tail = rest.strip_prefix("proxy/")?;
    let plain = |s: &str| !s.is_empty() && !s.contains('%');
    if !plain(ws) || !plain(conn) || tail.is_empty() {
        return None;
    }
    let tail = percent_encoding::percent_decode_str(tail)
        .decode_utf8()
        .ok()?;
    Some((ws.to_owned(), conn.to_owned(), tail.into_owned()))
}

async fn proxied(
    state: AppState,
    names: (String, String, String),
    req: Request,
    peer: SocketAddr,
) -> Response {
    if let Some(refused) = headers_too_large(req.headers()) {
        return refused;
    }
    let start = Instant::now();
    let method = req.method().clone();
    let span = tracing::info_span!("request", method = %method, route = ROUTE);
    let call = async move {
        tracing::debug!("started processing request");
        let (parts, body) = req.into_parts();
        let caller = match crate::auth::key_caller(&parts, &state, Some(peer)).await {
            Ok(c) => c,
            Err(e) => return e.into_response(),
        };
        let req = Request::from_parts(parts, body);
        // The call's future is large (kilobytes): on the heap as soon as it is made, so that
        // what holds it, moved on its way to the connection, stays small.
        let handled = crate::proxy::handle(State(state), caller, crate::error::Path(names), req);
        Box::pin(handled).await
    };
    let call = call.instrument(span.clone());
    let mut resp = match AssertUnwindSafe(call).catch_unwind().await {
        Ok(resp) => resp,
        Err(panic) => span.in_scope(|| panicked(panic)),
    };
    proxy_policy(resp.headers_mut());
    let status = resp.status();
    let elapsed = start.elapsed();
    // As the API's trace layer logs every other request.
    span.in_scope(|| {
        let ms = elapsed.as_millis();
        tracing::debug!(latency = %format_args!("{ms} ms"), status = status.as_u16(), "finished processing request");
        if status.is_server_error() {
            tracing::error!(classification = %format_args!("Status code: {status}"), latency = %format_args!("{ms} ms"), "response failed");
        }
    });
    let (requests, duration) = crate::telemetry::http_series(&method, ROUTE, status.as_u16());
    requests.increment(1);
    duration.record(elapsed.as_secs_f64());
    resp
}

#[cfg(test)]
mod tests {
    use super::proxied_names;

    fn names(ws: &str, conn: &str, path: &str) -> Option<(String, String, String)> {
        Some((ws.into(), conn.into(), path.into()))
    }

    #[test]
    fn proxied_paths_are_told_apart_and_anything_unsure_is_left_to_the_router() {
        let p = "/v1/workspaces/acme/connections/billing/proxy/";
        assert_eq!(
            proxied_names(&format!("{p}v1/invoices")),
            names("acme", "billing", "v1/invoices")
        );
        // The application's path is decoded as the router would, climbing segments included
        // (the proxy refuses those itself).
        assert_eq!(
            proxied_names(&format!("{p}a%20b/%2e%2e/c%2Fd")),
            names("acme", "billing", "a b/../c/d")
        );
        assert_eq!(
            proxied_names(&format!("{p}x/")),
            names("acme", "billing", "x/")
        );
        for other in [
            "/v1/workspaces/acme/connections/billing/proxy/",
            "/v1/workspaces/acme/connections/billing/proxy",
            "/v1/workspaces/acme/connections/billing",
            "/v1/workspaces/acme/connections//proxy/x",
            "/v1/workspaces//connections/billing/proxy/x",
            "/v1/workspaces/ac%6de/connections/billing/proxy/x",
            "/v1/workspaces/acme/connections/bill%69ng/proxy/x",
            "/v1/workspaces/acme/connections/billing/proxy/%ff",
            "/v1/workspaces/acme/connections/billing/tokens",
            "/v1/workspaces/acme/flows/billing/proxy/x",
            "/v2/workspaces/acme/connections/billing/proxy/x",
            "/healthz",
            "",
        ] {
            assert_eq!(proxied_names(other), None, "{other}");
        }
    }
}
