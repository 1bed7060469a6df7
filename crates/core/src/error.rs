//! The domain's errors. The HTTP edge maps each variant to one status code and one machine code;
//! nothing here carries secret material, so every message is safe to show.

use serde_json::Value;

/// An error of the domain: something the caller asked for that cannot be done as asked.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// Input that does not parse or breaks a rule (422).
    #[error("{message}")]
    Invalid {
        /// The input field at fault (a JSON field name, or the kind of value that failed to parse).
        field: String,
        /// What is wrong, in a sentence safe to show.
        message: String,
        /// How to fix it, when there is something useful to say.
        hint: Option<String>,
    },
    /// Nothing by that name or id here (404). Also what another workspace's things look like.
    #[error("{what} `{key}` was not found")]
    NotFound {
        /// The kind of record looked for (`connection`, `flow`, …).
        what: &'static str,
        /// The name or id it was looked for by.
        key: String,
    },
    /// A conflict with what is stored (409).
    #[error("{message}")]
    Conflict {
        /// The machine code of the answer (a snake_case word), more precise than the 409 alone.
        code: &'static str,
        /// What conflicts, in a sentence safe to show.
        message: String,
        /// How to resolve it, when there is something useful to say.
        hint: Option<String>,
        /// Structured facts about the conflict (the names involved, …), shown as the answer's details.
        details: Value,
    },
    /// The application (or database) refused the credential during verification (422).
    #[error("{message}")]
    VerificationFailed {
        /// What the application or database answered, safe to show.
        message: String,
        /// What to check or change, when the answer suggests something.
        hint: Option<String>,
        /// Structured facts about the failure (status code, provider error code, …).
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
    /// An `Invalid` error on `field` without a hint.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        CoreError::Invalid {
            field: field.into(),
            message: message.into(),
            hint: None,
        }
    }

    /// An `Invalid` error on `field` with a hint.
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

    /// A `NotFound` error for `what` (a kind of record) named `key`.
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
    Duplicate {
        /// The name of the unique constraint that refused the write.
        constraint: String,
    },
    /// The row changed since it was read (version check failed) or no longer exists.
    #[error("the record was changed or removed meanwhile")]
    Stale,
    /// A connection cannot be deleted while active flows use it or connections borrow from it.
    #[error("in use")]
    InUse {
        /// Names of the active flows that use the connection.
        flows: Vec<String>,
        /// Names of the connections that borrow its concurrency.
        borrowers: Vec<String>,
    },
    /// The database cannot be reached right now: the connection was refused or reset, no
    /// pooled connection came free in time, or the server is shutting down or starting up.
    /// Worth retrying in a moment; the edge answers 503 with `Retry-After`.
    #[error("the database is unavailable: {message}")]
    Unavailable {
        /// What the driver said (for logs, never for answers).
        message: String,
        /// The driver's error, when there was one.
        #[source]
        source: Option<BoxError>,
    },
    /// Anything else the database said; the text is for logs, not for answers.
    #[error("database error: {message}")]
    Backend {
        /// What went wrong (for logs, never for answers).
        message: String,
        /// The driver's error, when there was one.
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
