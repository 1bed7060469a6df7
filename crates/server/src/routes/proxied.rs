//! The proxy's own way in. A proxied call is the hot path: it is routed before the rest of the
//! API and gets what the API's layers give every request (the header limit, a panic turned into
//! a 500, the `request` span and its logs, the request metrics) from this one function, rather
//! than from a stack of layers each wrapping every route, which cost about a fifth of a small
//! proxied call's time (profiled in BENCHMARKS.md). Everything else goes on to the full router
//! unchanged; the proxy's route stays there too, for the MCP tools' in-process calls.

use super::{headers_too_large, panicked, proxy_policy};
use crate::auth::KeyCaller;
use crate::error::Path;
use crate::state::AppState;
use axum::extract::{FromRequestParts, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::time::Instant;
use tracing::Instrument;

/// The proxy's route.
pub const ROUTE: &str = "/v1/workspaces/{ws}/connections/{conn}/proxy/{*path}";

/// `rest` (the whole API, with its layers) behind the proxy's own route.
pub fn around(state: AppState, rest: Router) -> Router {
    Router::new()
        .route(ROUTE, axum::routing::any(proxied))
        .fallback_service(rest)
        .with_state(state)
}

async fn proxied(State(state): State<AppState>, req: Request) -> Response {
    if let Some(refused) = headers_too_large(req.headers()) {
        return refused;
    }
    let start = Instant::now();
    let method = req.method().clone();
    let span = tracing::info_span!("request", method = %method, route = ROUTE);
    let call = async move {
        tracing::debug!("started processing request");
        let (mut parts, body) = req.into_parts();
        let caller = match KeyCaller::from_request_parts(&mut parts, &state).await {
            Ok(c) => c,
            Err(e) => return e.into_response(),
        };
        let Path(path) = match Path::from_request_parts(&mut parts, &state).await {
            Ok(p) => p,
            Err(e) => return e.into_response(),
        };
        let req = Request::from_parts(parts, body);
        crate::proxy::handle(State(state), caller, Path(path), req).await
    };
    // On the heap from the start: the call's future is large, and axum's handler and route
    // futures that hold this one are moved several times on their way to the connection.
    let call = Box::pin(call.instrument(span.clone()));
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
