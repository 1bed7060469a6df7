//! Why the connection check failed: what went wrong, and what to check.

/// A failed connection check. Its text is the message; the hint says what to check.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct CheckFailed {
    pub message: String,
    pub hint: String,
}

impl CheckFailed {
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// A check whose answer says the session is no longer valid (a 401, or Salesforce's
    /// `Bad_OAuth_Token` or `INVALID_SESSION_ID`): a refresh may help.
    pub fn looks_like_expired_session(&self) -> bool {
        let m = &self.message;
        m.contains("answered 401")
            || m.contains("Bad_OAuth_Token")
            || m.contains("INVALID_SESSION_ID")
    }
}
