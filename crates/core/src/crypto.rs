//! Envelope encryption of secrets (see docs/decisions/0001-envelope-encryption.md).
//!
//! * The **master key** (32 bytes, from `LATCHKEY_MASTER_KEY` or its file) only wraps data keys.
//! * Each workspace has a **data key** that encrypts its secret fields with AES-256-GCM. A wrapped
//!   data key records which master key wrapped it, so rotation re-wraps data keys, never secrets.
//! * Every ciphertext is `0x01 ‖ nonce(12) ‖ ciphertext+tag`, with a fresh random nonce per write
//!   and the record's kind, id and field as associated data: a ciphertext copied onto another
//!   record fails authentication instead of decrypting there.

use crate::ids::DataKeyId;
use crate::CoreError;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;
use zeroize::Zeroizing;

const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;

/// The key-encryption key. Its id is a fingerprint, so a store can say which master key wrapped a
/// data key without holding the key.
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    /// Parses the base64 (standard or URL-safe, padded or not) form of 32 random bytes.
    pub fn from_base64(s: &str) -> Result<Self, CoreError> {
        let s = s.trim();
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .or_else(|_| {
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.trim_end_matches('='))
                })
                .map_err(|_| {
                    CoreError::invalid_with_hint(
                        "master_key",
                        "the master key is not valid base64",
                        "generate one with `openssl rand -base64 32`",
                    )
                })?,
        );
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            CoreError::invalid_with_hint(
                "master_key",
                format!(
                    "the master key must be 32 bytes, this one is {}",
                    bytes.len()
                ),
                "generate one with `openssl rand -base64 32`",
            )
        })?;
        Ok(Self::from_bytes(key))
    }

    fn from_bytes(key: [u8; 32]) -> Self {
        let mut h = Sha256::new();
        h.update(b"latchkey master key id\0");
        h.update(key);
        let id = format!("mk_{}", hex::encode(&h.finalize()[..8]));
        Self {
            id,
            key: Zeroizing::new(key),
        }
    }

    /// A new random master key and its base64 text (to be written once to the key file).
    pub fn generate() -> (Self, Zeroizing<String>) {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let text = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(key));
        let mk = Self::from_bytes(key);
        key.iter_mut().for_each(|b| *b = 0);
        (mk, text)
    }

    /// The key's id (`mk_` and 16 hex digits of a hash of it), stored with each data key it wraps.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Wraps a data key; the data key's id is the associated data.
    pub fn wrap(&self, id: &DataKeyId, dk: &DataKey) -> Vec<u8> {
        seal_with(&self.key, &wrap_aad(id), dk.0.as_slice())
    }

    /// A key for one purpose (`label`), derived from the master key with HMAC-SHA256: every
    /// instance that holds this master key derives the same key, and nothing is stored. Used for
    /// values that must open on any instance of a cluster, such as web UI session cookies.
    pub fn derive_key(&self, label: &str) -> DataKey {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.as_slice())
            .expect("HMAC takes a key of any length");
        mac.update(b"latchkey/v1/derived-key\0");
        mac.update(label.as_bytes());
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&mac.finalize().into_bytes());
        DataKey(key)
    }

    /// Unwraps a data key wrapped by this master key under `id`; `Decrypt` when the key or id differ.
    pub fn unwrap_key(&self, id: &DataKeyId, wrapped: &[u8]) -> Result<DataKey, CoreError> {
        let plain = open_with(&self.key, &wrap_aad(id), wrapped)?;
        let key: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| CoreError::Decrypt)?;
        Ok(DataKey(Zeroizing::new(key)))
    }
}

fn wrap_aad(id: &DataKeyId) -> String {
    format!("latchkey/v1/data-key/{id}")
}

/// A data-encryption key (unwrapped, in memory only).
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([REDACTED])")
    }
}

impl DataKey {
    /// A fresh random 256-bit key (each workspace gets its own).
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut_slice());
        Self(key)
    }

    /// Encrypts `plaintext` bound to `aad` (see [`record_aad`]).
    pub fn seal(&self, aad: &str, plaintext: &[u8]) -> Vec<u8> {
        seal_with(&self.0, aad, plaintext)
    }

    /// Decrypts what [`DataKey::seal`] made with the same `aad`; `Decrypt` when the key or
    /// `aad` differ or the bytes were altered.
    pub fn open(&self, aad: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CoreError> {
        open_with(&self.0, aad, sealed)
    }
}

/// The associated data that binds a ciphertext to one field of one record.
pub fn record_aad(kind: &str, id: &str, field: &str) -> String {
    format!("latchkey/v1/{kind}/{id}/{field}")
}

/// Ciphertext as stored: which data key, and the sealed bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The data key that sealed it (the key of the record's workspace).
    pub key_id: DataKeyId,
    /// Version byte, nonce, then AES-256-GCM ciphertext and tag.
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Sealed({}, {} bytes)",
            self.key_id,
            self.ciphertext.len()
        )
    }
}

fn seal_with(key: &[u8; 32], aad: &str, plaintext: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new_from_slice(key).expect("32-byte key");
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: aad.as_bytes(),
            },
        )
        .expect("AES-GCM encryption of an in-memory buffer cannot fail");
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
    out.push(FORMAT_V1);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

fn open_with(key: &[u8; 32], aad: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CoreError> {
    if sealed.len() < 1 + NONCE_LEN + 16 || sealed[0] != FORMAT_V1 {
        return Err(CoreError::Decrypt);
    }
    let cipher = Aes256Gcm::new_from_slice(key).expect("32-byte key");
    let (nonce, ct) = sealed[1..].split_at(NONCE_LEN);
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ct,
                aad: aad.as_bytes(),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| CoreError::Decrypt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_with_fresh_nonces() {
        let dk = DataKey::generate();
        let aad = record_aad("connection", "conn_1", "credentials");
        let a = dk.seal(&aad, b"secret");
        let b = dk.seal(&aad, b"secret");
        assert_ne!(a, b, "each write must use a fresh nonce");
        assert_eq!(dk.open(&aad, &a).unwrap().as_slice(), b"secret");
    }

    #[test]
    fn ciphertext_moved_to_another_record_fails() {
        let dk = DataKey::generate();
        let sealed = dk.seal(
            &record_aad("connection", "conn_a", "credentials"),
            b"secret",
        );
        assert!(dk
            .open(&record_aad("connection", "conn_b", "credentials"), &sealed)
            .is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(dk
            .open(
                &record_aad("connection", "conn_a", "credentials"),
                &tampered
            )
            .is_err());
    }

    #[test]
    fn wrap_unwrap_and_wrong_master_key() {
        let (mk, text) = MasterKey::generate();
        let mk2 = MasterKey::from_base64(&text).unwrap();
        assert_eq!(mk.id(), mk2.id());
        let id = DataKeyId::generate();
        let dk = DataKey::generate();
        let wrapped = mk.wrap(&id, &dk);
        let back = mk2.unwrap_key(&id, &wrapped).unwrap();
        let sealed = back.seal("x", b"y");
        assert_eq!(dk.open("x", &sealed).unwrap().as_slice(), b"y");
        let (other, _) = MasterKey::generate();
        assert!(other.unwrap_key(&id, &wrapped).is_err());
        assert!(mk.unwrap_key(&DataKeyId::generate(), &wrapped).is_err());
    }

    #[test]
    fn derived_keys_are_stable_per_label_and_master_key() {
        let (mk, text) = MasterKey::generate();
        let again = MasterKey::from_base64(&text).unwrap();
        let sealed = mk.derive_key("ui-session").seal("a", b"b");
        let opened = again.derive_key("ui-session").open("a", &sealed).unwrap();
        assert_eq!(opened.as_slice(), b"b");
        assert!(mk.derive_key("other").open("a", &sealed).is_err());
        assert!(MasterKey::generate()
            .0
            .derive_key("ui-session")
            .open("a", &sealed)
            .is_err());
    }

    #[test]
    fn master_key_parse_errors_are_clear() {
        assert!(MasterKey::from_base64("not base64!!").is_err());
        let short = base64::engine::general_purpose::STANDARD.encode([0u8; 16]);
        let err = MasterKey::from_base64(&short).unwrap_err().to_string();
        assert!(err.contains("32 bytes"), "{err}");
        assert!(!format!("{:?}", MasterKey::generate().0).contains("key:"));
    }
}
