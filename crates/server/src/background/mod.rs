//! Work nobody asked for: probing every connection on its interval, refreshing tokens ahead of
//! their expiry, and delivering webhook messages from the outbox.
//!
//! Every instance of a cluster runs the same loops. Work is found in the store by due time and
//! claimed under a lease (one short statement; `FOR UPDATE SKIP LOCKED` on PostgreSQL), so each
//! connection is probed or refreshed by one instance, and each message sent by one at a time.
//! When nothing is due, a loop costs one statement per tick (a second).

pub mod health;
pub mod shared;
pub mod webhooks;

pub use shared::Shared;

use crate::state::{new_event, AppState};
use latchkey_core::model::{ConnectionRecord, ConnectionStatus, Event, Workspace};
use serde_json::json;
use tokio::task::JoinHandle;

/// The gauges that need the store (connections by status, outbox depth and age), computed at
/// most every 15 seconds however often `/metrics` is scraped.
pub async fn refresh_gauges(state: &AppState) {
    {
        let mut at = state.background.gauges_at.lock().expect("gauges lock");
        if at.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(15)) {
            return;
        }
        *at = Some(std::time::Instant::now());
    }
    if let Ok(counts) = state.store.connection_status_counts().await {
        for s in ConnectionStatus::ALL {
            let n = counts
                .iter()
                .find(|(k, _)| k == s.as_str())
                .map_or(0, |(_, n)| *n);
            metrics::gauge!("latchkey_connections", "status" => s.as_str()).set(n as f64);
        }
    }
    if let Ok((depth, oldest)) = state.store.outbox_stats().await {
        metrics::gauge!("latchkey_webhook_outbox_depth").set(depth as f64);
        let age = oldest.map_or(0.0, |o| {
            (chrono::Utc::now() - o).num_milliseconds().max(0) as f64 / 1000.0
        });
        metrics::gauge!("latchkey_webhook_outbox_oldest_age_seconds").set(age);
    }
}

/// Starts the loops; they stop when the handles are aborted (the server stopping).
pub fn start(state: &AppState) -> Vec<JoinHandle<()>> {
    if !state.config.background {
        return vec![];
    }
    vec![
        tokio::spawn(health::run(state.clone())),
        tokio::spawn(webhooks::run(state.clone())),
    ]
}

/// The event a change of status means: `connection.failing`, `connection.recovered`
/// (failing → active) or `connection.revoked`, to be written with the change itself. `None`
/// when the status did not change or the change means no event.
pub fn status_event(
    ws: &Workspace,
    before: ConnectionStatus,
    after: &ConnectionRecord,
    cause: &str,
) -> Option<Event> {
    if before == after.status {
        return None;
    }
    let action = match (before, after.status) {
        (_, ConnectionStatus::Failing) => "connection.failing",
        (ConnectionStatus::Failing, ConnectionStatus::Active) => "connection.recovered",
        (_, ConnectionStatus::Revoked) => "connection.revoked",
        _ => return None,
    };
    Some(new_event(
        &ws.id,
        "system",
        action,
        Some(after.id.as_str()),
        Some(after.name.as_str()),
        json!({
            "cause": cause,
            "previous_status": before,
            "status": after.status,
            "reason": after.status_reason,
            "hint": after.hint,
        }),
    ))
}
