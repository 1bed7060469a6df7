//! Connection health and the events other systems hear about: the probe and proactive-refresh
//! schedule of a connection, its last probe outcome, webhooks and the deliveries of the outbox.

use crate::crypto::Sealed;
use crate::ids::{ConnectionId, DeliveryId, WebhookId, WorkspaceId};
use crate::model::{ConnectionRecord, ConnectionStatus, Event};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The event types delivered to webhooks (and listed in the documentation). Other audit
/// entries (token reads, credential reads, …) stay in the audit log and the stream only.
pub const DELIVERED_EVENT_TYPES: &[&str] = &[
    "connection.created",
    "connection.updated",
    "connection.deleted",
    "connection.authorized",
    "connection.failing",
    "connection.recovered",
    "connection.revoked",
    "connection.refresh_failed",
    "connect_session.completed",
    "flow.created",
    "flow.updated",
    "flow.deleted",
    "webhook.disabled",
];

/// Whether an event type is one webhooks receive.
pub fn is_delivered(event_type: &str) -> bool {
    DELIVERED_EVENT_TYPES.contains(&event_type)
}

/// Whether a webhook subscribed with `patterns` receives `event_type`: a pattern is an exact
/// type, `prefix.*` (every type of that family) or `*`.
pub fn subscribed(patterns: &[String], event_type: &str) -> bool {
    patterns.iter().any(|p| {
        p == "*"
            || p == event_type
            || p.strip_suffix(".*").is_some_and(|family| {
                event_type
                    .strip_prefix(family)
                    .is_some_and(|rest| rest.starts_with('.'))
            })
    })
}

/// Whether `pattern` can ever match a delivered type (a subscription that matches nothing is a
/// typo, refused at create).
pub fn pattern_is_known(pattern: &str) -> bool {
    DELIVERED_EVENT_TYPES
        .iter()
        .any(|t| subscribed(&[pattern.to_string()], t))
}

/// The body of a webhook message, per the Standard Webhooks specification:
/// `{"type", "timestamp", "data"}`. `data` names the event, its actor and target, never a secret.
pub fn webhook_payload(event: &Event) -> serde_json::Value {
    serde_json::json!({
        "type": event.action,
        "timestamp": event.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": {
            "event_id": event.id.as_str(),
            "workspace_id": event.workspace_id.as_str(),
            "actor": event.actor,
            "target_id": event.target_id,
            "target_name": event.target_name,
            "details": event.details,
        }
    })
}

/// How far into a token's life the proactive refresh happens.
const REFRESH_AT_LIFE: f64 = 0.8;
/// The jitter around that point, as a share of the life (spreads refreshes that began together).
const REFRESH_JITTER: f64 = 0.05;

impl ConnectionRecord {
    /// When this connection's token should be refreshed ahead of its expiry: at ~80% of its
    /// life (jittered by the connection id and version, so instances agree and a fleet spreads
    /// out), never before a back-off after failures. `None` when nothing is to be refreshed
    /// (no known expiry, not OAuth, revoked or waiting for authorization).
    pub fn proactive_refresh_at(&self) -> Option<DateTime<Utc>> {
        if !self.auth_mode.has_tokens()
            || matches!(
                self.status,
                ConnectionStatus::Revoked | ConnectionStatus::PendingAuthorization
            )
            || self.tokens.is_none()
        {
            return None;
        }
        let meta = self.token_meta.as_ref()?;
        let expires = meta.expires_at?;
        let start = meta
            .refreshed_at
            .or(meta.issued_at)
            .unwrap_or(self.updated_at)
            .min(expires);
        let life_ms = (expires - start).num_milliseconds().max(0) as f64;
        let jitter = (jitter_unit(self.id.as_str(), self.version) * 2.0 - 1.0) * REFRESH_JITTER;
        let offset = (life_ms * (REFRESH_AT_LIFE + jitter)) as i64;
        let at = start + Duration::milliseconds(offset);
        Some(match meta.retry_after {
            Some(r) if r > at => r,
            _ => at,
        })
    }
}

/// A number in [0, 1) that depends only on its inputs (FNV-1a).
fn jitter_unit(id: &str, version: i64) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes().chain(version.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// What the background worker knows of a connection's health (one row per connection).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HealthRecord {
    /// The connection the row describes; always set on rows read from the store, `None` only in a default record.
    pub connection_id: Option<ConnectionId>,
    /// When the last probe ran; `None` if none has yet.
    pub last_checked_at: Option<DateTime<Utc>>,
    /// When a probe last succeeded; `None` if none ever did.
    pub last_ok_at: Option<DateTime<Utc>>,
    /// Probes that failed in a row; reset to zero by a success.
    pub consecutive_failures: i64,
    /// The next probe; `None` when probes are off for the connection or not yet placed.
    pub next_check_at: Option<DateTime<Utc>>,
    /// The next proactive refresh.
    pub refresh_at: Option<DateTime<Utc>>,
    /// What the last probe said went wrong; `None` after a success.
    pub last_error: Option<String>,
}

/// A connection whose probe or refresh is due, claimed under a lease by one instance.
#[derive(Debug, Clone)]
pub struct DueConnection {
    /// The workspace of the connection.
    pub workspace_id: WorkspaceId,
    /// The connection that is due.
    pub connection_id: ConnectionId,
    /// `None`: the probe is not placed yet (a new connection).
    pub probe_at: Option<DateTime<Utc>>,
    /// When a proactive token refresh is due; `None` when none is scheduled (no token with a
    /// known expiry, or the connection is revoked or awaiting authorization).
    pub refresh_at: Option<DateTime<Utc>>,
}

/// The outcome of a probe, recorded on the health row.
#[derive(Debug, Clone)]
pub struct ProbeOutcome {
    /// When the probe finished.
    pub at: DateTime<Utc>,
    /// `None` when the probe succeeded.
    pub error: Option<String>,
}

/// A webhook endpoint. Its signing secrets are sealed (fields `current` and, for 24 hours after
/// a rotation, `previous`).
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    /// Stable identifier (`wh_…`), shown in the deliveries and their headers.
    pub id: WebhookId,
    /// The workspace whose events the webhook receives.
    pub workspace_id: WorkspaceId,
    /// Where deliveries are posted.
    pub url: String,
    /// Subscription patterns: an exact event type, `family.*` or `*`.
    pub events: Vec<String>,
    /// Free text the owner wrote to recognise the endpoint; `None` if none.
    pub description: Option<String>,
    /// Whether deliveries are made; false when turned off by hand or disabled after failing too long.
    pub enabled: bool,
    /// The current signing secret, sealed (with the previous one during a rotation).
    pub secret: Sealed,
    /// Until when the previous secret still signs (both signatures are sent).
    pub previous_until: Option<DateTime<Utc>>,
    /// Since when every delivery has failed (cleared by a success).
    pub failing_since: Option<DateTime<Utc>>,
    /// Why the webhook was disabled automatically; `None` while enabled or when turned off by hand.
    pub disabled_reason: Option<String>,
    /// When the webhook was created.
    pub created_at: DateTime<Utc>,
    /// When the webhook was last changed (by its owner or by the worker).
    pub updated_at: DateTime<Utc>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its (next) attempt.
    Pending,
    /// Accepted by the endpoint (a 2xx answer).
    Succeeded,
    /// Gave up (retries ran out, or the webhook was disabled or deleted).
    Failed,
}

impl DeliveryStatus {
    /// The status as stored and shown (`pending`, `succeeded`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
        }
    }
    /// The status from its stored name; `None` for an unknown one.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "succeeded" => Some(Self::Succeeded),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One message of the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Stable identifier (`msg_…`), sent as the `webhook-id` header on every attempt.
    pub id: DeliveryId,
    /// The webhook the message is for.
    pub webhook_id: WebhookId,
    /// The workspace of the webhook and the event.
    pub workspace_id: WorkspaceId,
    /// The audit event the message carries (`evt_…`).
    pub event_id: String,
    /// The event's type (`connection.failing`, …), one the webhook subscribed to.
    pub event_type: String,
    /// The exact body sent (the same bytes on every attempt).
    pub payload: String,
    /// Where the delivery stands.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: i64,
    /// When the next attempt is due; `None` once it succeeded or failed for good.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the last attempt was made; `None` before the first.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The HTTP status the endpoint last answered; `None` before any answer (or on a network error).
    pub last_status_code: Option<i64>,
    /// Why the last attempt failed; `None` after a success or before any attempt.
    pub last_error: Option<String>,
    /// When the event was put in the outbox.
    pub created_at: DateTime<Utc>,
}

/// The outcome of one attempt, written back by the worker.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    /// When the attempt finished.
    pub at: DateTime<Utc>,
    /// The HTTP status the endpoint answered; `None` when no answer came (network error, timeout).
    pub status_code: Option<i64>,
    /// Why the attempt failed; `None` on success.
    pub error: Option<String>,
    /// `Some` to try again then; `None` with an error: give up.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_families_exactly() {
        let p = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(subscribed(&p(&["connection.*"]), "connection.failing"));
        assert!(!subscribed(&p(&["connection.*"]), "connections.x"));
        assert!(!subscribed(&p(&["connection.*"]), "flow.created"));
        assert!(subscribed(&p(&["*"]), "flow.created"));
        assert!(subscribed(&p(&["flow.created"]), "flow.created"));
        assert!(!subscribed(&p(&["flow.created"]), "flow.deleted"));
        assert!(pattern_is_known("connection.*"));
        assert!(pattern_is_known("webhook.disabled"));
        assert!(!pattern_is_known("conection.*"));
    }

    #[test]
    fn jitter_is_stable_and_spread() {
        let a = jitter_unit("conn_a", 1);
        assert_eq!(a, jitter_unit("conn_a", 1));
        assert_ne!(a, jitter_unit("conn_a", 2));
        assert!((0.0..1.0).contains(&a));
    }
}
