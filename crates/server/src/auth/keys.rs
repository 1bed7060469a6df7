//! API keys: how they are made and stored, the memory of looked-up keys, and the slowing down
//! of addresses that keep failing to sign in.

use crate::access::KeyGrant;
use base64::Engine;
use latchkey_core::ids::{ApiKeyId, UserId};
use latchkey_core::model::ApiKey;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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
    hex::encode(key_digest(key))
}

/// A key's SHA-256: what the memory of looked-up keys is keyed by (the stored form is its hex).
pub fn key_digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The part of a key shown in lists, to recognise it.
pub fn key_prefix(key: &str) -> String {
    key.chars().take(10).collect()
}

/// What is remembered of a stored key: what it allows, ready to hand to a request (shared, not
/// copied), whose key it is, and whether it was revoked.
#[derive(Clone)]
pub(super) struct KnownKey {
    pub grant: Arc<KeyGrant>,
    pub user: Option<UserId>,
    pub revoked: bool,
}

impl KnownKey {
    pub fn of(k: ApiKey) -> Self {
        KnownKey {
            revoked: k.revoked_at.is_some(),
            user: k.user_id,
            grant: Arc::new(KeyGrant {
                id: k.id,
                name: k.name,
                workspace: k.workspace_id,
                scopes: k.scopes,
            }),
        }
    }
}

/// A looked-up key (or that there is none) and when it was looked up.
type Remembered = (Option<KnownKey>, Instant);

/// Looked-up keys by their SHA-256; `None` remembers that no key has that hash.
#[derive(Default)]
pub struct KeyCache {
    /// foldhash rather than the standard SipHash: a digest cannot be chosen without a key that
    /// hashes to it, so there is no flooding to defend against, only speed to gain.
    entries: Mutex<HashMap<[u8; 32], Remembered, foldhash::fast::RandomState>>,
}

impl KeyCache {
    pub(super) fn get(&self, hash: &[u8; 32]) -> Option<Option<KnownKey>> {
        let map = self.entries.lock().expect("key cache lock");
        map.get(hash)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(k, _)| k.clone())
    }

    pub(super) fn put(&self, hash: [u8; 32], key: Option<KnownKey>) {
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
            .retain(|_, (k, _)| k.as_ref().map(|k| &k.grant.id) != Some(id));
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
        assert_eq!(hash_key(&a), hex::encode(key_digest(&a)));
    }

    #[test]
    fn the_memory_of_keys_finds_each_key_by_its_digest_and_forgets_a_revoked_one() {
        let cache = KeyCache::default();
        let known = |name: &str| {
            KnownKey::of(ApiKey {
                id: ApiKeyId::generate(),
                name: name.into(),
                workspace_id: None,
                user_id: None,
                scopes: vec![],
                hash: String::new(),
                prefix: String::new(),
                created_at: chrono::Utc::now(),
                revoked_at: None,
            })
        };
        let (a, b) = (generate_key(), generate_key());
        cache.put(key_digest(&a), Some(known("a")));
        cache.put(key_digest(&b), None);
        let found = cache
            .get(&key_digest(&a))
            .expect("remembered")
            .expect("a key");
        assert_eq!(found.grant.name, "a");
        assert!(cache.get(&key_digest(&b)).expect("remembered").is_none());
        assert!(cache.get(&key_digest(&generate_key())).is_none());
        cache.forget(&found.grant.id);
        assert!(cache.get(&key_digest(&a)).is_none());
    }
}
