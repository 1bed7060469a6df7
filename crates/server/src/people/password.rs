//! Local passwords: argon2id with a random salt, kept only as the PHC string. Checking runs on
//! a blocking thread (it is slow on purpose), and an unknown person costs as much as a known
//! one, so the answer's timing does not tell which emails exist.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::sync::OnceLock;

/// The shortest password accepted.
pub const MIN_LENGTH: usize = 10;
/// The longest password accepted (hashing work is bounded).
pub const MAX_LENGTH: usize = 256;

/// Why a new password is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRefused {
    #[error("a password has at least {} characters", MIN_LENGTH)]
    TooShort,
    #[error("a password has at most {} characters", MAX_LENGTH)]
    TooLong,
}

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("cannot hash the password: {0}")]
    Hash(argon2::password_hash::Error),
    #[error("the hashing task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
}

/// Whether a new password is acceptable; the reason when not.
pub fn check_new(password: &str) -> Result<(), PasswordRefused> {
    let n = password.chars().count();
    if n < MIN_LENGTH {
        return Err(PasswordRefused::TooShort);
    }
    if n > MAX_LENGTH {
        return Err(PasswordRefused::TooLong);
    }
    Ok(())
}

/// The argon2id PHC string of a password.
pub async fn hash(password: String) -> Result<String, HashError> {
    let password = zeroize::Zeroizing::new(password);
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(HashError::Hash)
    })
    .await
    .map_err(HashError::Task)?
}

/// A hash of nothing in particular, checked against when the person is unknown.
fn decoy() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"latchkey decoy password", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// Whether `password` matches `stored` (`None`: nobody, or a person without a password; still
/// takes as long as a real check).
pub async fn verify(password: String, stored: Option<String>) -> bool {
    let password = zeroize::Zeroizing::new(password);
    tokio::task::spawn_blocking(move || {
        let real = stored.is_some();
        let phc = stored.unwrap_or_else(|| decoy().to_string());
        let Ok(parsed) = PasswordHash::new(&phc) else {
            return false;
        };
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        ok && real
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_salted_and_verify() {
        let a = hash("correct horse battery".into()).await.unwrap();
        let b = hash("correct horse battery".into()).await.unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "every hash has its own salt");
        assert!(!a.contains("correct horse"));
        assert!(verify("correct horse battery".into(), Some(a.clone())).await);
        assert!(!verify("wrong horse battery".into(), Some(a)).await);
        assert!(!verify("anything at all".into(), None).await);
        assert!(check_new("short").is_err());
        assert!(check_new("long enough now").is_ok());
    }
}
