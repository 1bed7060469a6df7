//! What this process remembers of tokens: decrypted tokens by connection and the refreshes in
//! flight, shared by every caller. The refresh itself is in `tokens`.

use super::failure::Failure;
use chrono::{Duration, Utc};
use futures::future::{BoxFuture, Shared};
use latchkey_core::ids::ConnectionId;
use latchkey_core::model::TokenMeta;
use latchkey_core::secret::SecretString;
use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

/// A token is refreshed when it has less than this left.
const EARLY: i64 = 60;

/// Decrypted tokens of one version of a connection.
pub struct TokenSet {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub meta: TokenMeta,
    pub version: i64,
    /// What to remove from proxied answers (built on first use).
    pub scrub: std::sync::OnceLock<Arc<latchkey_core::scrub::Scrubber>>,
}

impl TokenSet {
    /// A scrubber for this access token.
    pub fn scrubber(&self) -> Arc<latchkey_core::scrub::Scrubber> {
        self.scrub
            .get_or_init(|| {
                let mut s = latchkey_core::scrub::Scrubber::new();
                s.add(self.access_token.expose_secret());
                if let Some(r) = &self.refresh_token {
                    s.add(r.expose_secret());
                }
                Arc::new(s)
            })
            .clone()
    }

    /// Good for a while yet: more than a minute left, or, for a token that lives only minutes,
    /// more than a tenth of its life (a 20-second token would otherwise never count as fresh).
    pub fn is_fresh(&self) -> bool {
        let Some(e) = self.meta.expires_at else {
            return false;
        };
        let early = match self.meta.refreshed_at.or(self.meta.issued_at) {
            Some(start) if e > start => Duration::seconds(EARLY).min((e - start) / 10),
            _ => Duration::seconds(EARLY),
        };
        e - early > Utc::now()
    }
}

pub(super) type Answer = Shared<BoxFuture<'static, Result<Arc<TokenSet>, Failure>>>;

/// A refresh under way in this process: its answer, shared by every caller, and the end of its
/// task (which releases the lease and writes the audit event after the answer went out).
pub(super) struct Flight {
    pub(super) answer: Answer,
    pub(super) finished: Shared<BoxFuture<'static, ()>>,
    pub(super) serial: u64,
}

/// What a refresh leaves to do once its callers have their answer.
#[derive(Default)]
pub(super) struct AfterAnswer {
    pub(super) leased: bool,
    /// The audit event of a refresh that happened: (connection name, refresh token rotated).
    pub(super) refreshed: Option<(String, bool)>,
}

/// Per-process token state: refreshes in flight and decrypted tokens by connection.
pub struct TokenManager {
    pub(super) owner: String,
    pub(super) inflight: Mutex<HashMap<ConnectionId, Flight>>,
    pub(super) flights: std::sync::atomic::AtomicU64,
    pub(super) cache: Mutex<HashMap<ConnectionId, Arc<TokenSet>>>,
    pub(super) audited:
        Mutex<HashMap<(latchkey_core::ids::ApiKeyId, ConnectionId), std::time::Instant>>,
}

impl Default for TokenManager {
    fn default() -> Self {
        Self {
            owner: format!("instance-{}", ulid::Ulid::new()),
            inflight: Mutex::new(HashMap::new()),
            flights: std::sync::atomic::AtomicU64::new(0),
            cache: Mutex::new(HashMap::new()),
            audited: Mutex::new(HashMap::new()),
        }
    }
}

impl TokenManager {
    /// Token reads are audited once a minute per key and connection, not on every read of the
    /// hot path.
    pub fn should_audit_read(
        &self,
        key: &latchkey_core::ids::ApiKeyId,
        conn: &ConnectionId,
    ) -> bool {
        let mut seen = self.audited.lock().expect("audit map");
        let now = std::time::Instant::now();
        if seen.len() > 10_000 {
            seen.retain(|_, t| now.duration_since(*t) < StdDuration::from_secs(60));
        }
        match seen.get(&(key.clone(), conn.clone())) {
            Some(t) if now.duration_since(*t) < StdDuration::from_secs(60) => false,
            _ => {
                seen.insert((key.clone(), conn.clone()), now);
                true
            }
        }
    }

    /// Drops what this process remembers of a connection's tokens (after any change to it), so
    /// the next read goes to the store.
    pub fn forget(&self, id: &ConnectionId) {
        self.cache.lock().expect("token cache").remove(id);
    }
}
