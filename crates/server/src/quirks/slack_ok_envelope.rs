//! Slack answers HTTP 200 to requests it refuses, with `{"ok": false, "error": "invalid_auth"}`
//! in the body; its token endpoint (`oauth.v2.access`) does the same for a bad code or refresh
//! token. Read as an OAuth error so that a dead refresh token is `invalid_grant` like anywhere
//! else. (The verification side is said in the entry: `expect_pointer = "/ok"`.)

use crate::oauth::grant::outcome::GrantError;
use serde_json::Value;

/// Slack error codes that mean the grant is gone.
const DEAD_GRANT: &[&str] = &[
    "invalid_refresh_token",
    "invalid_code",
    "code_already_used",
    "token_revoked",
    "token_expired",
    "invalid_grant_type",
];

/// The error inside a 200 answer, if it is one.
pub fn token_error(status: u16, body: &str) -> Option<GrantError> {
    let doc: Value = serde_json::from_str(body).ok()?;
    if doc.get("ok") != Some(&Value::Bool(false)) {
        return None;
    }
    let code = doc
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("unknown_error")
        .chars()
        .take(100)
        .collect::<String>();
    let error = if DEAD_GRANT.contains(&code.as_str()) {
        "invalid_grant".to_string()
    } else {
        code.clone()
    };
    Some(GrantError::Provider {
        status,
        error,
        description: format!("Slack answered ok: false ({code})"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_false_is_an_error_and_a_dead_refresh_token_is_invalid_grant() {
        let e = token_error(200, r#"{"ok":false,"error":"invalid_refresh_token"}"#).unwrap();
        assert!(e.is_invalid_grant());
        let e = token_error(200, r#"{"ok":false,"error":"ratelimited"}"#).unwrap();
        assert!(!e.is_invalid_grant());
        assert!(token_error(200, r#"{"ok":true,"access_token":"x"}"#).is_none());
        assert!(token_error(200, "not json").is_none());
    }
}
