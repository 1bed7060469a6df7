//! Creates a browser may still call off. The web UI's "Save & check" sends a token of its own
//! with the create; Cancel calls that token off. A create whose token was called off stores
//! nothing, and a create that had already stored its connection when Cancel came is undone, so
//! Cancel leaves nothing behind whenever it is pressed. The memory is per server instance and
//! forgets a token after a quarter of an hour.

use latchkey_core::ids::{ConnectionId, WorkspaceId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEEP: Duration = Duration::from_secs(15 * 60);
const MAX_ENTRIES: usize = 10_000;

/// Where one token's create stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing happened yet (or the create is still checking).
    Open,
    /// Cancel came first: the create must not store anything.
    CalledOff,
    /// The create stored this connection.
    Created(ConnectionId),
}

pub struct Entry {
    pub outcome: Outcome,
}

type Slot = Arc<tokio::sync::Mutex<Entry>>;

#[derive(Default)]
pub struct PendingCreates {
    entries: Mutex<HashMap<(WorkspaceId, String), (Instant, Slot)>>,
}

/// A token is 8 to 128 letters, digits, `-` or `_` (a UUID from the browser fits).
pub fn valid_token(t: &str) -> bool {
    (8..=128).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl PendingCreates {
    /// The slot of `token` in `ws`, created on first use. Hold its lock across the decision
    /// and the write, so a create and its Cancel never interleave.
    pub fn slot(&self, ws: &WorkspaceId, token: &str) -> Slot {
        let mut map = self.entries.lock().expect("pending creates");
        let now = Instant::now();
        if map.len() >= MAX_ENTRIES / 2 {
            map.retain(|_, (at, _)| now.duration_since(*at) < KEEP);
        }
        if map.len() >= MAX_ENTRIES {
            // Still full of fresh tokens: the oldest go first.
            let mut ages: Vec<(Instant, (WorkspaceId, String))> =
                map.iter().map(|(k, (at, _))| (*at, k.clone())).collect();
            ages.sort_by_key(|(at, _)| *at);
            for (_, k) in ages.into_iter().take(MAX_ENTRIES / 10) {
                map.remove(&k);
            }
        }
        map.entry((ws.clone(), token.to_string()))
            .or_insert_with(|| {
                (
                    now,
                    Arc::new(tokio::sync::Mutex::new(Entry {
                        outcome: Outcome::Open,
                    })),
                )
            })
            .1
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_short_and_plain() {
        assert!(valid_token("0f8fad5b-d9cb-469f-a165-70867728950e"));
        assert!(!valid_token("short"));
        assert!(!valid_token("has space in it"));
        assert!(!valid_token(&"x".repeat(129)));
    }

    #[tokio::test]
    async fn a_token_keeps_its_outcome_per_workspace() {
        let p = PendingCreates::default();
        let a = WorkspaceId::generate();
        let b = WorkspaceId::generate();
        p.slot(&a, "token-123").lock().await.outcome = Outcome::CalledOff;
        assert_eq!(
            p.slot(&a, "token-123").lock().await.outcome,
            Outcome::CalledOff
        );
        assert_eq!(p.slot(&b, "token-123").lock().await.outcome, Outcome::Open);
    }
}
