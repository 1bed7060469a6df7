//! Webhook deliveries, per the Standard Webhooks specification.
//!
//! * Headers `webhook-id` (the message id, the same on every retry, for the receiver's
//!   de-duplication), `webhook-timestamp` (unix seconds of this attempt: a retry is signed anew)
//!   and `webhook-signature`: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed with
//!   the bytes after `whsec_`; for 24 hours after a rotation, the old secret's signature follows
//!   the new one, separated by a space.
//! * At least once: messages wait in the outbox (written with their event) until an attempt
//!   gets a 2xx; failures are retried with exponential backoff for 24 hours; an endpoint whose
//!   deliveries have all failed for 3 days is disabled (`webhook.disabled`).
//! * The endpoint answer is never read: its status is all that counts, and an endpoint that
//!   does not answer within the timeout fails the attempt.

use crate::outbound::Outbound;
use crate::state::AppState;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use latchkey_core::health::{AttemptOutcome, Delivery, Webhook};
use latchkey_core::secret::{SecretFields, SecretString};
use rand::RngCore;
use secrecy::ExposeSecret;
use sha2::Sha256;
use url::Url;

const BATCH: u32 = 32;
/// A message is leased to an instance for this much longer than one attempt may take.
const LEASE_SLACK_SECS: i64 = 30;
/// Retries never wait longer than this between two attempts.
const MAX_RETRY_GAP_SECS: i64 = 6 * 3600;

/// A fresh signing secret: `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> SecretString {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    SecretString::from(format!("whsec_{}", B64.encode(bytes)))
}

/// `v1,<signature>` of one message with one secret (`whsec_…`).
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let key = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = B64.decode(key).unwrap_or_else(|_| key.as_bytes().to_vec());
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// Why a webhook URL may not be used, naming the rule; `Ok` with the parsed URL otherwise.
pub async fn check_url(outbound: &Outbound, raw: &str) -> Result<Url, (&'static str, String)> {
    let url = Url::parse(raw.trim()).map_err(|_| {
        (
            "webhook_url_invalid",
            format!("`{raw}` is not an absolute URL"),
        )
    })?;
    let host = url
        .host_str()
        .ok_or(("webhook_url_invalid", "the URL has no host".to_string()))?
        .trim_matches(['[', ']'])
        .to_string();
    if !url.username().is_empty() || url.password().is_some() {
        return Err((
            "webhook_url_invalid",
            "the URL may not carry a user name or password".into(),
        ));
    }
    let allowed = outbound.allows_host(&host);
    match url.scheme() {
        "https" => {}
        "http" if allowed => {}
        "http" => {
            return Err((
                "webhook_url_not_https",
                format!("webhook URLs must use https (an http URL is accepted only for hosts LATCHKEY_OUTBOUND_ALLOW lists, and {host} is not one)"),
            ))
        }
        other => {
            return Err((
                "webhook_url_invalid",
                format!("`{other}` is not an http(s) scheme"),
            ))
        }
    }
    let port = url.port_or_known_default().unwrap_or(443);
    outbound.check_host(&host, port).await.map_err(|e| {
        (
            "webhook_url_private",
            format!("the webhook URL's host is not reachable under the outbound rules: {e}"),
        )
    })?;
    Ok(url)
}

pub async fn run(state: AppState) {
    loop {
        let now = Utc::now();
        let until = now
            + Duration::seconds(state.config.webhook_timeout.as_secs() as i64 + LEASE_SLACK_SECS);
        let claimed = match state
            .store
            .claim_deliveries(&state.background.owner, now, until, BATCH)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "could not look for due webhook deliveries");
                vec![]
            }
        };
        let full = claimed.len() as u32 == BATCH;
        let sends = claimed.into_iter().map(|d| {
            let st = state.clone();
            async move { deliver(&st, d).await }
        });
        futures::future::join_all(sends).await;
        if !full {
            // An event recorded here wakes the loop at once; others are found within a tick.
            let _ = tokio::time::timeout(
                state.config.background_tick,
                state.background.events.notified(),
            )
            .await;
        }
    }
}

/// Opens a webhook's signing secrets: the current one, and the previous one while it is still
/// honoured.
pub async fn secrets(state: &AppState, hook: &Webhook) -> Result<Vec<SecretString>, String> {
    let fields: SecretFields = state
        .keyring
        .open_fields(&hook.secret, "webhook", hook.id.as_str(), "secret")
        .await
        .map_err(|e| e.to_string())?;
    let mut out = vec![];
    if let Some(c) = fields.get("current") {
        out.push(c.clone());
    }
    if hook.previous_until.is_some_and(|u| u > Utc::now()) {
        if let Some(p) = fields.get("previous") {
            out.push(p.clone());
        }
    }
    Ok(out)
}

async fn deliver(state: &AppState, d: Delivery) {
    let now = Utc::now();
    let hook = match state.store.webhook(&d.workspace_id, &d.webhook_id).await {
        Ok(Some(h)) => h,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "could not read a webhook");
            return;
        }
    };
    let (status_code, error) = if !hook.enabled {
        let said = match &d.last_error {
            Some(e) => format!("{e}; given up: the webhook is disabled"),
            None => "given up: the webhook is disabled".to_string(),
        };
        (d.last_status_code, Some(said))
    } else {
        match attempt(state, &hook, &d).await {
            Ok(code) if (200..300).contains(&code) => (Some(i64::from(code)), None),
            Ok(code) => (
                Some(i64::from(code)),
                Some(format!("the endpoint answered {code}")),
            ),
            Err(e) => (None, Some(e.to_string())),
        }
    };
    let outcome = match &error {
        None => "succeeded",
        Some(_) => "failed",
    };
    metrics::counter!("latchkey_webhook_deliveries_total", "outcome" => outcome).increment(1);
    let next_attempt_at = match &error {
        Some(_) if hook.enabled => next_attempt(state, &d, now),
        _ => None,
    };
    let result = AttemptOutcome {
        at: now,
        status_code,
        error: error.clone(),
        next_attempt_at,
    };
    if let Err(e) = state
        .store
        .finish_delivery(&d.id, &state.background.owner, &result)
        .await
    {
        tracing::warn!(delivery = %d.id, error = %e, "could not record a webhook attempt");
    }
    if hook.enabled {
        endpoint_health(state, hook, error.is_none(), now).await;
    }
}

/// The time of the next attempt: `base × 2^attempts` (with a little jitter), capped, and none
/// once the message is older than the retry window.
fn next_attempt(state: &AppState, d: &Delivery, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let base = state.config.webhook_retry_base.as_millis() as i64;
    let factor = 1i64 << d.attempts.clamp(0, 20);
    let gap = base.saturating_mul(factor).min(MAX_RETRY_GAP_SECS * 1000);
    let jitter = rand::random::<u64>() % (gap as u64 / 10 + 1);
    let at = now + Duration::milliseconds(gap + jitter as i64);
    let window = Duration::seconds(state.config.webhook_retry_for.as_secs() as i64);
    (at <= d.created_at + window).then_some(at)
}

/// Why a delivery attempt got no status code.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error("the webhook URL no longer parses")]
    BadUrl,
    #[error(transparent)]
    Outbound(#[from] crate::outbound::OutboundError),
    /// The signing secrets could not be opened.
    #[error("{0}")]
    Secrets(String),
    #[error("the endpoint did not answer within {0} s")]
    Timeout(u64),
    #[error("the request failed: {0}")]
    Request(String),
}

/// One POST. Answers the status code, or why there was none. The answer body is not read.
async fn attempt(state: &AppState, hook: &Webhook, d: &Delivery) -> Result<u16, AttemptError> {
    let url = Url::parse(&hook.url).map_err(|_| AttemptError::BadUrl)?;
    let url = state.outbound.prepare(&url)?;
    let secrets = secrets(state, hook).await.map_err(AttemptError::Secrets)?;
    let timestamp = Utc::now().timestamp();
    let signature = secrets
        .iter()
        .map(|s| sign(s.expose_secret(), d.id.as_str(), timestamp, &d.payload))
        .collect::<Vec<_>>()
        .join(" ");
    let resp = state
        .outbound
        .client()
        .post(url)
        .timeout(state.config.webhook_timeout)
        .header("content-type", "application/json")
        .header("webhook-id", d.id.as_str())
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(d.payload.clone())
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                AttemptError::Timeout(state.config.webhook_timeout.as_secs())
            } else {
                AttemptError::Request(crate::verify::connect_reason(&e).to_string())
            }
        })?;
    // Dropping the answer unread closes the connection: a huge or endless body costs nothing.
    Ok(resp.status().as_u16())
}

/// Tracks how long an endpoint has been failing, and disables it after the configured time
/// (with a `webhook.disabled` event).
async fn endpoint_health(state: &AppState, hook: Webhook, ok: bool, now: DateTime<Utc>) {
    if ok && hook.failing_since.is_none() {
        return;
    }
    let limit = Duration::seconds(state.config.webhook_disable_after.as_secs() as i64);
    let since = hook.failing_since.unwrap_or(now);
    let reason = format!(
        "every delivery failed since {}; re-enable the webhook once the endpoint works",
        since.to_rfc3339()
    );
    let disabled = match state
        .store
        .record_endpoint_outcome(&hook.id, ok, now, now - limit, &reason)
        .await
    {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(webhook = %hook.id, error = %e, "could not update a webhook");
            return;
        }
    };
    if disabled {
        state
            .audit(
                &hook.workspace_id,
                "system",
                "webhook.disabled",
                Some(hook.id.as_str()),
                Some(hook.url.as_str()),
                serde_json::json!({ "reason": reason }),
            )
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_specification_example() {
        // The example of the Standard Webhooks specification.
        let sig = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_have_the_prefix_and_32_bytes() {
        let s = new_secret();
        let body = s.expose_secret().strip_prefix("whsec_").unwrap();
        assert_eq!(B64.decode(body).unwrap().len(), 32);
    }
}
