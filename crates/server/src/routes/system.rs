//! `/healthz` and `/metrics`.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use serde::Serialize;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, or `unavailable` when the store does not answer.
    pub status: String,
    /// `sqlite` or `postgres`.
    pub store: String,
    pub version: String,
}

/// Liveness and store reachability. No key needed.
#[utoipa::path(get, path = "/healthz", tag = "system", security(()),
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let ok = state.store.ping().await.is_ok();
    let body = Health {
        status: if ok { "ok" } else { "unavailable" }.into(),
        store: state.store.backend().into(),
        version: env!("CARGO_PKG_VERSION").into(),
    };
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body))
}

/// Prometheus metrics in the text exposition format. Needs an API key with the `metrics` scope
/// (or an admin key), unless the server runs with `LATCHKEY_METRICS_PUBLIC=true`.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, content_type = "text/plain", body = String),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn metrics(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    if !state.config.metrics_public {
        caller?.require_metrics()?;
    }
    crate::background::refresh_gauges(&state).await;
    state.pools.publish_levels();
    metrics::counter!("latchkey_store_statements_total").absolute(latchkey_store::round_trips());
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    ))
}
