//! API keys: how they are made and stored, the memory of looked-up keys, and the slowing down
//! of addresses that keep failing to sign in.

use base64::Engine;
use latchkey_core::ids::ApiKeyId;
use latchkey_core::model::ApiKey;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a looked-up key is trusted before the store is asked again. A revoke on this
/// instance takes effect at once; on another instance of a cluster within this time.
const CACHE_TTL: Duration = Duration::from_secs(10);
const CACHE_MAX: usize = 10_000;

/// A new API key: `lk_` and 43 characters of randomness (256 bits).
pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "lk_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The stored form of a key. Keys are 256-bit random, so a plain SHA-256 is not guessable.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The part of a key shown in lists, to recognise it.
pub fn key_prefix(key: &str) -> String {
    key.chars().take(10).collect()
}

#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<String, (Option<ApiKey>, Instant)>>,
}

impl KeyCache {
    pub(super) fn get(&self, hash: &str) -> Option<Option<ApiKey>> {
        let map = self.entries.lock().expect("key cache lock");
        map.get(hash)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(k, _)| k.clone())
    }

    pub(super) fn put(&self, hash: String, key: Option<ApiKey>) {
        let mut map = self.entries.lock().expect("key cache lock");
        if map.len() >= CACHE_MAX {
            map.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
            if map.len() >= CACHE_MAX {
                map.clear();
            }
        }
        map.insert(hash, (key, Instant::now()));
    }

    /// Forgets a key at once (after a revoke).
    pub fn forget(&self, id: &ApiKeyId) {
        self.entries
            .lock()
            .expect("key cache lock")
            .retain(|_, (k, _)| k.as_ref().map(|k| &k.id) != Some(id));
    }
}

/// Failed sign-ins (unknown, revoked or malformed API keys, over the API or the UI's sign-in
/// form) counted per client address. Past [`FREE_FAILURES`] in [`FAILURE_WINDOW`], each further
/// failure from that address waits a little longer before its answer (up to [`MAX_DELAY`]) and
/// answers 429 with `Retry-After`: guessing keys gets slow. A request with a valid key is never
/// held back: an attacker sharing an address (or spoofing one) cannot lock anybody out.
#[derive(Default)]
pub struct AuthThrottle {
    failures: Mutex<HashMap<std::net::IpAddr, (u32, Instant)>>,
}

pub const FREE_FAILURES: u32 = 10;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// The longest a failed attempt is held before its answer.
pub const MAX_DELAY: Duration = Duration::from_secs(3);

impl AuthThrottle {
    /// Counts a failure; past the free ones, how long to hold the answer and the seconds the
    /// address should wait before trying again.
    pub fn fail(&self, ip: std::net::IpAddr) -> Option<(Duration, u32)> {
        let mut map = self.failures.lock().expect("throttle lock");
        if map.len() > 100_000 {
            map.retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
        }
        let e = map.entry(ip).or_insert((0, Instant::now()));
        if e.1.elapsed() >= FAILURE_WINDOW {
            *e = (0, Instant::now());
        }
        e.0 = e.0.saturating_add(1);
        if e.0 == FREE_FAILURES + 1 {
            tracing::warn!(client = %ip, "repeated failed sign-ins: slowing this address down");
        }
        let excess = e.0.checked_sub(FREE_FAILURES).filter(|n| *n > 0)?;
        let delay = (Duration::from_millis(100) * excess).min(MAX_DELAY);
        let left = FAILURE_WINDOW
            .saturating_sub(e.1.elapsed())
            .as_secs()
            .max(1) as u32;
        Some((delay, left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_hash_stably() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a, b);
        assert!(a.starts_with("lk_") && a.len() == 46, "{a}");
        assert_eq!(hash_key(&a), hash_key(&a));
        assert_ne!(hash_key(&a), hash_key(&b));
        assert!(!hash_key(&a).contains(&a[3..]));
    }
}
