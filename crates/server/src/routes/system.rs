//! `/healthz` and `/metrics`.

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

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "system", security(()),
    responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    crate::background::refresh_gauges(&state).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
