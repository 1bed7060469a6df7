//! The domain's errors. The HTTP edge maps each variant to one status code and one machine code;
//! nothing here carries secret material, so every message is safe to show.

use serde_json::Value;

/// An error of the domain: something the caller asked for that cannot be done as asked.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// Input that does not parse or breaks a rule (422).
    #[error("{message}")]
    Invalid {
        field: String,
        message: String,
        hint: Option<String>,
    },
    /// Nothing by that name or id here (404). Also what another workspace's things look like.
    #[error("{what} `{key}` was not found")]
    NotFound { what: &'static str, key: String },
    /// A conflict with what is stored (409).
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        hint: Option<String>,
        details: Value,
    },
    /// The application (or database) refused the credential during verification (422).
    #[error("{message}")]
    VerificationFailed {
        message: String,
        hint: Option<String>,
        details: Value,
    },
    /// A secret could not be decrypted: wrong master key, or a ciphertext moved between records.
    #[error("a secret could not be decrypted")]
    Decrypt,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CoreError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        CoreError::Invalid {
            field: field.into(),
            message: message.into(),
            hint: None,
        }
    }

    pub fn invalid_with_hint(
        field: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        CoreError::Invalid {
            field: field.into(),
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    pub fn not_found(what: &'static str, key: impl Into<String>) -> Self {
        CoreError::NotFound {
            what,
            key: key.into(),
        }
    }
}

/// An error of a storage backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken; `constraint` names which (`connection_name`, `workspace_slug`, …).
    #[error("duplicate {constraint}")]
    Duplicate { constraint: String },
    /// The row changed since it was read (version check failed) or no longer exists.
    #[error("the record was changed or removed meanwhile")]
    Stale,
    /// A connection cannot be deleted while active flows use it or connections borrow from it.
    #[error("in use")]
    InUse {
        flows: Vec<String>,
        borrowers: Vec<String>,
    },
    /// The database cannot be reached right now: the connection was refused or reset, no
    /// pooled connection came free in time, or the server is shutting down or starting up.
    /// Worth retrying in a moment; the edge answers 503 with `Retry-After`.
    #[error("the database is unavailable: {message}")]
    Unavailable {
        /// What the driver said (for logs, never for answers).
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// Anything else the database said; the text is for logs, not for answers.
    #[error("database error: {message}")]
    Backend {
        /// What went wrong (for logs, never for answers).
        message: String,
        #[source]
        source: Option<BoxError>,
    },
}

/// The driver's own error, kept as the source of a [`StoreError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl StoreError {
    /// A backend error with no driver error behind it (a row that does not decode, a value
    /// that does not serialize).
    pub fn backend(message: impl Into<String>) -> Self {
        StoreError::Backend {
            message: message.into(),
            source: None,
        }
    }

    /// Whether the store could not be reached (as opposed to refusing the request).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}
