//! The provider's own words from an error answer, scrubbed: never the body itself.

use super::Scrubber;

/// A provider's error code as kept: letters, digits and `_ . : -`, at most 64 characters;
/// anything else is not an error code (and may be an echo).
pub fn error_code(code: &str, scrubber: &Scrubber) -> Option<String> {
    let code = code.trim();
    let ok = !code.is_empty()
        && code.len() <= 64
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
        && !scrubber.finds(code);
    ok.then(|| code.to_string())
}

/// The provider's own error code and description in an answer body, from the shapes providers
/// use; `None` when the body has none of them (its text is then not kept at all).
/// The text of the first `<tag>…</tag>` of an XML error document (no attributes, no nesting
/// inside it), with the five predefined entities decoded.
fn xml_text(body: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{tag}>"))? + start;
    let raw = &body[start..end];
    if raw.contains('<') {
        return None;
    }
    Some(
        raw.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// The provider's error code and description read from an error body (OAuth 2.0 or REST JSON,
/// Salesforce's array, AWS's XML, or a bare code), both scrubbed; `None` when the body holds
/// neither.
pub fn provider_words(body: &str, scrubber: &Scrubber) -> Option<(Option<String>, String)> {
    use serde_json::Value;
    if body.trim_start().starts_with('<') {
        // AWS: <Error><Code>SignatureDoesNotMatch</Code><Message>…</Message></Error>, alone or
        // inside <ErrorResponse>.
        let code = xml_text(body, "Code").and_then(|c| error_code(&c, scrubber));
        let description = xml_text(body, "Message")
            .map(|d| scrubber.tidy(&d))
            .unwrap_or_default();
        if code.is_none() && description.is_empty() {
            return None;
        }
        return Some((code, description));
    }
    let Ok(v) = serde_json::from_str::<Value>(body.trim()) else {
        // A bare error code as the whole body (Salesforce's userinfo answers `Bad_OAuth_Token`
        // as plain text): kept only when it looks like a code.
        let word = body.trim();
        let bare = !word.is_empty()
            && word.len() <= 64
            && word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-');
        return if bare {
            error_code(word, scrubber).map(|c| (Some(c), String::new()))
        } else {
            None
        };
    };
    let text = |v: &Value| v.as_str().map(str::to_string);
    let (code, description) = match &v {
        // Salesforce: [{"errorCode": "…", "message": "…"}]
        Value::Array(items) => {
            let first = items.first()?;
            (
                text(&first["errorCode"]).or_else(|| text(&first["error"])),
                text(&first["message"]).or_else(|| text(&first["error_description"])),
            )
        }
        Value::Object(m) => match m.get("error") {
            // OAuth 2.0 (RFC 6749 §5.2) and many REST APIs: {"error": "code", "error_description" | "message": "…"}
            Some(Value::String(code)) => (
                Some(code.clone()),
                text(&v["error_description"]).or_else(|| text(&v["message"])),
            ),
            // {"error": {"code": …, "message": "…"}}
            Some(Value::Object(inner)) => (
                inner
                    .get("code")
                    .or_else(|| inner.get("status"))
                    .and_then(|c| match c {
                        Value::String(s) => Some(s.clone()),
                        Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    }),
                inner
                    .get("message")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            ),
            _ => (
                text(&v["errorCode"]).or_else(|| text(&v["code"])),
                text(&v["message"]).or_else(|| text(&v["error_description"])),
            ),
        },
        _ => return None,
    };
    let code = code.and_then(|c| error_code(&c, scrubber));
    let description = description.map(|d| scrubber.tidy(&d)).unwrap_or_default();
    if code.is_none() && description.is_empty() {
        return None;
    }
    Some((code, description))
}

/// A provider's answer in one line: `"CODE: description"`, `"description"`, or `fallback` when
/// the body carries neither in a known shape.
pub fn provider_summary(body: &str, scrubber: &Scrubber, fallback: &str) -> String {
    match provider_words(body, scrubber) {
        Some((Some(code), d)) if !d.is_empty() => format!("{code}: {d}"),
        Some((Some(code), _)) => code,
        Some((None, d)) => d,
        None => fallback.to_string(),
    }
}
