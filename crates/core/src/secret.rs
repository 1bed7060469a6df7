//! Secret values. A secret is held in a [`SecretString`] (zeroized on drop, `Debug` prints
//! `[REDACTED]`) and only [`ExposeSecret::expose_secret`] reveals it, at the one call that needs it.

use secrecy::ExposeSecret;
pub use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use zeroize::Zeroizing;

/// The secret fields of a connection (`api_key`, `password`, `client_secret`, …) by name.
///
/// It serializes only into the plaintext that is encrypted (see [`crate::crypto`]); its `Debug`
/// lists field names, never values.
#[derive(Clone, Default)]
pub struct SecretFields(BTreeMap<String, SecretString>);

impl SecretFields {
    /// No field at all.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the field `name`, replacing any value it had.
    pub fn insert(&mut self, name: impl Into<String>, value: SecretString) {
        self.0.insert(name.into(), value);
    }

    /// Takes the field out, answering its value if it was there.
    pub fn remove(&mut self, name: &str) -> Option<SecretString> {
        self.0.remove(name)
    }

    /// The field still wrapped, to pass on without exposing it.
    pub fn get(&self, name: &str) -> Option<&SecretString> {
        self.0.get(name)
    }

    /// The value of a field, exposed for the one call that needs it.
    pub fn expose(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|s| s.expose_secret())
    }

    /// The field names, in sorted order; safe to show.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every value, for scrubbing text that might echo one (upstream error bodies).
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.0.values().map(|s| s.expose_secret())
    }

    /// Overlays `other` on `self`: fields given in `other` replace those here.
    pub fn merge(&mut self, other: SecretFields) {
        for (k, v) in other.0 {
            self.0.insert(k, v);
        }
    }

    /// The plaintext that gets encrypted: a JSON object of the fields.
    pub fn to_plaintext(&self) -> Zeroizing<Vec<u8>> {
        let map: BTreeMap<&str, &str> = self
            .0
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose_secret()))
            .collect();
        Zeroizing::new(serde_json::to_vec(&map).expect("a map of strings serializes"))
    }

    /// The fields back from decrypted plaintext (a JSON object of strings); `Decrypt` when it
    /// is not one.
    pub fn from_plaintext(bytes: &[u8]) -> Result<Self, crate::CoreError> {
        let map: BTreeMap<String, String> =
            serde_json::from_slice(bytes).map_err(|_| crate::CoreError::Decrypt)?;
        Ok(Self(
            map.into_iter()
                .map(|(k, v)| (k, SecretString::from(v)))
                .collect(),
        ))
    }

    /// The decrypted fields as a JSON object, for the `credentials` endpoint only.
    pub fn reveal_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.0
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        serde_json::Value::String(v.expose_secret().to_string()),
                    )
                })
                .collect(),
        )
    }
}

impl fmt::Debug for SecretFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "[REDACTED]")))
            .finish()
    }
}

impl<'de> Deserialize<'de> for SecretFields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, SecretValue>::deserialize(d)?;
        Ok(Self(map.into_iter().map(|(k, v)| (k, v.0)).collect()))
    }
}

/// A secret as it arrives in a request body: a string, or a number (a port given as 5432).
struct SecretValue(SecretString);

impl<'de> Deserialize<'de> for SecretValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            N(serde_json::Number),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("credential fields must be strings (or numbers)")
        })? {
            Raw::S(s) => Ok(SecretValue(SecretString::from(s))),
            Raw::N(n) => Ok(SecretValue(SecretString::from(n.to_string()))),
        }
    }
}

/// A secret that only ever leaves as a hash or as ciphertext: an API key as shown once.
#[derive(Clone, Serialize)]
#[serde(transparent)]
pub struct RevealOnce(String);

impl RevealOnce {
    /// Wraps a freshly made secret for its single showing.
    pub fn new(s: String) -> Self {
        Self(s)
    }
    /// The secret itself, for the answer that shows it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RevealOnce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_values() {
        let mut f = SecretFields::new();
        f.insert("api_key", SecretString::from("sk-live-123456".to_string()));
        f.insert("password", SecretString::from("hunter2hunter2".to_string()));
        let dbg = format!("{f:?}");
        assert!(dbg.contains("api_key"));
        assert!(!dbg.contains("sk-live-123456"));
        assert!(!dbg.contains("hunter2hunter2"));
        assert_eq!(
            format!("{:?}", RevealOnce::new("lk_abc".into())),
            "[REDACTED]"
        );
    }

    #[test]
    fn plaintext_round_trip_and_numbers() {
        let f: SecretFields = serde_json::from_str(r#"{"port": 5432, "password": "p"}"#).unwrap();
        let back = SecretFields::from_plaintext(&f.to_plaintext()).unwrap();
        assert_eq!(back.expose("port"), Some("5432"));
        assert_eq!(back.expose("password"), Some("p"));
        assert!(serde_json::from_str::<SecretFields>(r#"{"password": {"x": 1}}"#).is_err());
    }
}
