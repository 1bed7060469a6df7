//! The failure of a token read or a refresh, shared by every caller waiting on it.

use crate::error::ApiError;
use axum::http::StatusCode;
use latchkey_core::model::ConnectionRecord;

/// What kind of failure it is, for the callers that act on it (the `code` is for the answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The connection is revoked: only a new authorization helps.
    Revoked,
    /// A refresh failed; the connection is failing and backs off.
    RefreshFailed,
    /// The last refresh failed and its back-off has not ended.
    Backoff,
    /// Anything else.
    Other,
}

/// A failure that many waiting callers share (an `ApiError` cannot be cloned).
#[derive(Debug, Clone)]
pub struct Failure {
    pub status: u16,
    pub kind: FailureKind,
    pub code: String,
    pub message: String,
    pub hint: Option<String>,
    /// Seconds for a `Retry-After` header (a store that cannot be reached).
    pub retry_after: Option<u32>,
}

impl Failure {
    pub fn new(status: u16, code: &str, message: impl Into<String>, hint: Option<&str>) -> Self {
        Self {
            status,
            kind: FailureKind::Other,
            code: code.into(),
            message: message.into(),
            hint: hint.map(str::to_string),
            retry_after: None,
        }
    }

    pub fn from_api(e: ApiError) -> Self {
        Self {
            status: e.status.as_u16(),
            kind: FailureKind::Other,
            code: e.code,
            message: e.message,
            hint: e.hint,
            retry_after: e.retry_after,
        }
    }

    pub fn store(e: latchkey_core::StoreError) -> Self {
        Self::from_api(e.into())
    }

    /// A refresh that failed (502 `refresh_failed`); the connection backs off.
    pub fn refresh_failed(message: impl Into<String>, hint: Option<&str>) -> Self {
        Self {
            kind: FailureKind::RefreshFailed,
            ..Self::new(502, "refresh_failed", message, hint)
        }
    }

    /// A refusal while the back-off of a failed refresh lasts (503 `refresh_backoff`).
    pub fn backoff(message: impl Into<String>, hint: Option<&str>) -> Self {
        Self {
            kind: FailureKind::Backoff,
            ..Self::new(503, "refresh_backoff", message, hint)
        }
    }

    pub fn revoked(c: &ConnectionRecord) -> Self {
        Self {
            status: 409,
            kind: FailureKind::Revoked,
            code: "connection_revoked".into(),
            message: format!(
                "connection `{}` was revoked: {}",
                c.name,
                c.status_reason
                    .clone()
                    .unwrap_or_else(|| "the provider revoked the grant".into())
            ),
            hint: Some(
                c.hint
                    .clone()
                    .unwrap_or_else(|| "re-authorize the connection".into()),
            ),
            retry_after: None,
        }
    }

    pub fn not_authorized(c: &ConnectionRecord) -> Self {
        Self {
            status: 409,
            kind: FailureKind::Other,
            code: "not_authorized".into(),
            message: format!("connection `{}` is waiting for authorization{}", c.name, c.status_reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()),
            hint: Some("authorize it: sign in through a fresh authorization link (Authorize in the web UI, `latchkey connection authorize` on the command line)".into()),
            retry_after: None,
        }
    }
}

impl From<Failure> for ApiError {
    fn from(f: Failure) -> Self {
        let mut e = ApiError::new(
            StatusCode::from_u16(f.status).unwrap_or(StatusCode::BAD_GATEWAY),
            &f.code,
            f.message,
        );
        e.hint = f.hint;
        e.retry_after = f.retry_after;
        e
    }
}
