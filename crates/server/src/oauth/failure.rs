//! The failure of a token read or a refresh, shared by every caller waiting on it.

use crate::error::ApiError;
use axum::http::StatusCode;
use latchkey_core::model::ConnectionRecord;

/// A failure that many waiting callers share (an `ApiError` cannot be cloned).
#[derive(Debug, Clone)]
pub struct Failure {
    pub status: u16,
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
            code: code.into(),
            message: message.into(),
            hint: hint.map(str::to_string),
            retry_after: None,
        }
    }

    pub fn from_api(e: ApiError) -> Self {
        Self {
            status: e.status.as_u16(),
            code: e.code,
            message: e.message,
            hint: e.hint,
            retry_after: e.retry_after,
        }
    }

    pub fn store(e: latchkey_core::StoreError) -> Self {
        Self::from_api(e.into())
    }

    pub fn revoked(c: &ConnectionRecord) -> Self {
        Self {
            status: 409,
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
