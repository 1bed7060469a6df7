//! What keeps an agent's proxied call inside its connection and its answer free of secrets: the
//! path check, the scrubbing of secret material, and the bounded read of an answer's body.

use axum::body::Body;
use base64::Engine as _;
use http_body_util::BodyExt;

/// Longest accepted proxy path (characters).
pub(super) const MAX_PATH: usize = 2048;
/// What replaces secret material in a proxied answer.
const REDACTED: &str = "[redacted by Latchkey]";

/// Why a proxy path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathRefused {
    #[error("the path is longer than {} characters", MAX_PATH)]
    TooLong,
    #[error("the path must start with `/` (a path under the connection's API base, not a URL)")]
    NotAbsolute,
    #[error("a path starting with `//` names another host")]
    OtherHost,
    #[error("put query parameters in `query`, not in the path")]
    HasQuery,
    #[error("the path holds a backslash or a control character")]
    BadCharacter,
    #[error("the path holds an encoded `{0}`, which could climb out of the API base")]
    Encoded(&'static str),
    #[error("the path holds a `.` or `..` segment")]
    DotSegment,
    #[error("the path holds a URL")]
    HasUrl,
}

/// Why a proxy path would leave the connection's API base, if it would. The path must be an
/// absolute path (no scheme or host), with no `.`/`..` segment and no encoded `/`, `\` or dot in
/// any decoding of it, no query or fragment (those go in `query`), and no control character.
pub fn check_path(path: &str) -> Result<(), PathRefused> {
    if path.len() > MAX_PATH {
        return Err(PathRefused::TooLong);
    }
    if !path.starts_with('/') {
        return Err(PathRefused::NotAbsolute);
    }
    if path.starts_with("//") {
        return Err(PathRefused::OtherHost);
    }
    if path.contains(['?', '#']) {
        return Err(PathRefused::HasQuery);
    }
    if path.contains('\\') || path.chars().any(char::is_control) {
        return Err(PathRefused::BadCharacter);
    }
    let lower = path.to_ascii_lowercase();
    for bad in ["%2f", "%5c", "%2e", "%00", "%25"] {
        if lower.contains(bad) {
            return Err(PathRefused::Encoded(bad));
        }
    }
    if path.split('/').any(|s| s == ".." || s == ".") {
        return Err(PathRefused::DotSegment);
    }
    if path.contains("://") {
        return Err(PathRefused::HasUrl);
    }
    Ok(())
}

/// `text` with every secret (raw, URL-encoded or base64) replaced.
pub(super) fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        let encoded: String = url::form_urlencoded::byte_serialize(s.as_bytes()).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        for form in [s.as_str(), encoded.as_str(), b64.as_str()] {
            if !form.is_empty() && out.contains(form) {
                out = out.replace(form, REDACTED);
            }
        }
    }
    out
}

/// Up to `limit` bytes of a body, how many bytes were seen, and whether that was all of it.
/// Stops reading past the limit (a huge answer is not buffered).
pub(super) async fn read_bounded(body: Body, limit: usize) -> (Vec<u8>, usize, bool) {
    let mut body = body;
    let mut out = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Some(data) = frame.data_ref() {
            seen += data.len();
            let room = limit.saturating_sub(out.len());
            out.extend_from_slice(&data[..data.len().min(room)]);
            if seen > limit {
                return (out, seen, false);
            }
        }
    }
    (out, seen, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_leave_the_base_are_refused() {
        for bad in [
            "https://evil.example/x",
            "//evil.example/x",
            "/a/../../etc",
            "/..",
            "/a/%2e%2e/b",
            "/a/%2E%2E/b",
            "/a%2fb",
            "/a/%252e%252e/b",
            "/a\\..\\b",
            "services/data",
            "/x?y=1",
            "/./x",
        ] {
            assert!(check_path(bad).is_err(), "{bad} should be refused");
        }
        for good in ["/services/data/v62.0/limits", "/echo", "/", "/a.b/c..d/e"] {
            assert!(check_path(good).is_ok(), "{good} should pass");
        }
    }

    #[test]
    fn scrub_blanks_raw_encoded_and_base64_forms() {
        let s = vec!["s3cr+t/value".to_string()];
        let b64 = base64::engine::general_purpose::STANDARD.encode("s3cr+t/value");
        let text = format!("a s3cr+t/value b s3cr%2Bt%2Fvalue c {b64}");
        let out = scrub(&text, &s);
        assert!(!out.contains("s3cr"), "{out}");
        assert!(!out.contains(&b64), "{out}");
    }
}
