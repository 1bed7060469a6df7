//! Rate-limited answers. A 429, or a 503, that says when to come back (`Retry-After`, or the
//! reset header the catalog entry names) is sent again after that wait when everything below
//! holds; otherwise it goes back to the caller as it is:
//! * the request body can be replayed (no body, or one small enough to be kept in memory; a
//!   streamed body is gone once sent);
//! * the request has been sent fewer than [`MAX_SENDS`] times for rate limits;
//! * the wait ends before the queue timeout, counted from the request's arrival.
//!
//! Every 429 also lowers the pool's effective level (see the pool module), whether or not it
//! is retried. While it waits, the request gives its place in the pool up; it takes one again
//! ahead of the queue.

use crate::state::AppState;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use latchkey_core::catalog::AppEntry;
use std::time::Duration;

/// A request is sent at most this many times in all when the application rate-limits it.
pub(super) const MAX_SENDS: u32 = 3;

/// Whether an answer is one the proxy may wait out.
pub(super) fn is_limited(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE
}

/// What the proxy knows about the request when a rate-limited answer comes back.
pub(super) struct Attempt<'a> {
    pub pool: &'a str,
    /// The pool's configured level.
    pub level: usize,
    pub sent_at: DateTime<Utc>,
    /// How many times the request has been sent for rate limits, this one included.
    pub sends: u32,
    pub replayable: bool,
    /// The request's arrival plus the queue timeout.
    pub deadline: tokio::time::Instant,
}

/// Records a rate-limited answer (a 429 lowers the pool's level) and answers how long to wait
/// before sending the request again, or `None` when it goes back to the caller.
pub(super) async fn on_limited(
    state: &AppState,
    app: &AppEntry,
    status: StatusCode,
    headers: &HeaderMap,
    a: &Attempt<'_>,
) -> Option<Duration> {
    if status == StatusCode::TOO_MANY_REQUESTS {
        state.pools.rate_limited(a.pool, a.level, a.sent_at).await;
    }
    let retry_after = headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok());
    let reset = app.rate_limit.as_ref().and_then(|spec| {
        let value = headers.get(spec.reset_header.as_deref()?)?.to_str().ok()?;
        Some((spec, value))
    });
    let wait = latchkey_core::rate_limit::wait_of(retry_after, reset, Utc::now());
    let action = match wait {
        None => "no_wait",
        Some(_) if !a.replayable => "not_replayable",
        Some(_) if a.sends >= MAX_SENDS => "attempts_exhausted",
        Some(w) if tokio::time::Instant::now() + w >= a.deadline => "past_queue_timeout",
        Some(_) => "retried",
    };
    metrics::counter!("latchkey_proxy_rate_limited_total", "pool" => a.pool.to_string(), "action" => action)
        .increment(1);
    wait.filter(|_| action == "retried")
}

/// Counts a retry by what came of it: `ok` (the application answered without a rate limit),
/// `limited` (rate-limited again), `error` (unreachable), `pool_busy` (no place in the pool
/// again before the queue timeout, so not sent).
pub(super) fn count_retry(pool: &str, outcome: &'static str) {
    metrics::counter!("latchkey_proxy_retries_total", "pool" => pool.to_string(), "outcome" => outcome)
        .increment(1);
}

/// Waits `wait` without the pool place (`permit` is given up, so that it goes to the next
/// request at the level a 429 may just have lowered), then takes a place again ahead of the
/// queue. `Err` when none came free before the deadline (the retry is not sent).
pub(super) async fn wait_out(
    state: &AppState,
    a: &Attempt<'_>,
    wait: Duration,
    permit: super::pool::Permit,
) -> Result<(super::pool::Permit, Duration), super::pool::Busy> {
    drop(permit);
    tokio::time::sleep(wait).await;
    let again = state.pools.reacquire(a.pool, a.level, a.deadline).await;
    if again.is_err() {
        count_retry(a.pool, "pool_busy");
    }
    again
}
