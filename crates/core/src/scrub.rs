//! Keeping secrets out of text that leaves Latchkey (answers, `status_reason`, hints, events,
//! logs). Two measures, in this order of importance:
//!
//! 1. Never copy an upstream body: [`provider_words`] keeps only the provider's error code and
//!    description, parsed from shapes providers use (OAuth 2.0 error answers, RFC 6749 §5.2;
//!    Salesforce error arrays; `{"error": {"message": …}}` and `{"message": …}` objects).
//! 2. Scrub what is kept: a [`Scrubber`] removes every form of each secret it knows: raw,
//!    URL-encoded, base64 (at any alignment inside a longer base64 text), JSON-escaped, with
//!    white space folded, and any piece of [`PIECE`] characters or more of those forms.

use base64::Engine;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

/// Pieces of a secret this long or longer are removed as well as the whole.
pub const PIECE: usize = 8;
/// The most characters of provider text kept in a message.
pub const MAX_PROVIDER_TEXT: usize = 300;
/// What a removed secret becomes.
pub const REDACTED: &str = "[REDACTED]";
/// Secrets shorter than this are not looked for (they would match ordinary words).
const MIN_SECRET: usize = 4;

/// Removes every form of a set of secrets from text.
#[derive(Clone, Default)]
pub struct Scrubber {
    /// Patterns to remove, longest first.
    patterns: Vec<String>,
    /// All patterns at once, built on first use.
    matcher: std::sync::OnceLock<Option<aho_corasick::AhoCorasick>>,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrubber")
            .field("patterns", &self.patterns.len())
            .finish()
    }
}

fn b64_forms(bytes: &[u8], out: &mut Vec<String>) {
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
    ];
    for engine in engines {
        let whole = engine.encode(bytes);
        out.push(whole.trim_end_matches('=').to_string());
        // Inside a longer base64 text the secret starts at any of three alignments: the groups
        // it shares with its neighbours differ, the ones in between do not.
        for k in 0..3usize {
            let mut padded = vec![0u8; k];
            padded.extend_from_slice(bytes);
            let enc = engine.encode(&padded);
            let enc = enc.trim_end_matches('=');
            let start = if k == 0 { 0 } else { 4 };
            let end = enc.len().saturating_sub(4);
            if end > start {
                out.push(enc[start..end].to_string());
            }
        }
    }
}

/// The forms a secret may take in text.
pub fn forms(secret: &str) -> Vec<String> {
    let mut out = vec![secret.to_string()];
    let folded = secret.split_whitespace().collect::<Vec<_>>().join(" ");
    out.push(folded.clone());
    out.push(secret.split_whitespace().collect::<String>());
    out.push(url::form_urlencoded::byte_serialize(secret.as_bytes()).collect());
    let pct = utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string();
    out.push(pct.to_ascii_lowercase());
    out.push(pct);
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json.trim_matches('"').to_string();
    out.push(json.replace('/', "\\/"));
    out.push(json);
    b64_forms(secret.as_bytes(), &mut out);
    b64_forms(folded.as_bytes(), &mut out);
    out.retain(|f| f.chars().count() >= MIN_SECRET);
    out.sort();
    out.dedup();
    out
}

impl Scrubber {
    /// A scrubber that knows no secret yet: it changes nothing until secrets are added.
    pub fn new() -> Self {
        Self::default()
    }

    /// Looks for `secret` (every form, and every piece of [`PIECE`] characters of each form).
    pub fn add(&mut self, secret: &str) {
        self.add_forms(secret, true);
    }

    fn add_forms(&mut self, secret: &str, pieces: bool) {
        if secret.trim().chars().count() < MIN_SECRET {
            return;
        }
        for form in forms(secret) {
            let chars: Vec<char> = form.chars().collect();
            if pieces && chars.len() > PIECE {
                for w in chars.windows(PIECE) {
                    self.patterns.push(w.iter().collect());
                }
            }
            self.patterns.push(form);
        }
        self.patterns
            .sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        self.patterns.dedup();
        self.matcher = std::sync::OnceLock::new();
    }

    fn matcher(&self) -> Option<&aho_corasick::AhoCorasick> {
        self.matcher
            .get_or_init(|| {
                if self.patterns.is_empty() {
                    None
                } else {
                    aho_corasick::AhoCorasick::new(&self.patterns).ok()
                }
            })
            .as_ref()
    }

    /// The longest pattern, in bytes.
    pub fn longest(&self) -> usize {
        self.patterns.first().map_or(0, String::len)
    }

    /// Which bytes of `text` belong to some form or piece of a secret.
    fn hits(&self, text: &[u8]) -> Vec<bool> {
        let mut hit = vec![false; text.len()];
        if let Some(m) = self.matcher() {
            for found in m.find_overlapping_iter(text) {
                hit[found.start()..found.end()]
                    .iter_mut()
                    .for_each(|h| *h = true);
            }
        }
        hit
    }

    /// `text` with each run of hit bytes replaced by [`REDACTED`].
    fn redact(text: &[u8], hit: &[bool]) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len());
        let mut in_run = false;
        for (b, h) in text.iter().zip(hit) {
            if *h {
                if !in_run {
                    out.extend_from_slice(REDACTED.as_bytes());
                    in_run = true;
                }
            } else {
                in_run = false;
                out.push(*b);
            }
        }
        out
    }

    /// Looks for HTTP Basic credentials: each part, and `user:password` (RFC 7617).
    pub fn add_pair(&mut self, user: &str, password: &str) {
        self.add(password);
        if !password.is_empty() {
            // Whole forms only: pieces of the pair would be pieces of the (public) user name.
            self.add_forms(&format!("{user}:{password}"), false);
        }
    }

    /// Whether it has no pattern to look for (no secret added, or every one too short to
    /// match safely).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether the text carries any form or piece of a secret.
    pub fn finds(&self, text: &str) -> bool {
        self.matcher().is_some_and(|m| m.is_match(text))
    }

    /// The text with every form and piece of every secret replaced by [`REDACTED`].
    pub fn scrub(&self, text: &str) -> String {
        if !self.finds(text) {
            return text.to_string();
        }
        let hit = self.hits(text.as_bytes());
        // Patterns are whole characters of UTF-8 text, so runs never split a character.
        String::from_utf8_lossy(&Self::redact(text.as_bytes(), &hit)).into_owned()
    }

    /// Scrubs bytes (a response body) that may not be text.
    pub fn scrub_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let hit = self.hits(bytes);
        Self::redact(bytes, &hit)
    }

    /// Scrubs every string inside a JSON value.
    pub fn scrub_json(&self, v: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::String(s) => Value::String(self.scrub(&s)),
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .map(|(k, v)| (self.scrub(&k), self.scrub_json(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.into_iter().map(|v| self.scrub_json(v)).collect()),
            other => other,
        }
    }

    /// Provider text made fit to keep: scrubbed, white space folded, at most
    /// [`MAX_PROVIDER_TEXT`] characters.
    pub fn tidy(&self, text: &str) -> String {
        let folded = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let clean = self.scrub(&folded);
        if clean.chars().count() > MAX_PROVIDER_TEXT {
            format!(
                "{}…",
                clean.chars().take(MAX_PROVIDER_TEXT).collect::<String>()
            )
        } else {
            clean
        }
    }
}

/// Scrubs a body that arrives in chunks: a secret split across two chunks is still found,
/// because the last bytes of each chunk (shorter than the longest pattern) wait for the next.
pub struct ChunkScrubber {
    scrubber: std::sync::Arc<Scrubber>,
    carry: Vec<u8>,
}

impl ChunkScrubber {
    /// Scrubs with `scrubber`'s patterns, with nothing carried over yet.
    pub fn new(scrubber: std::sync::Arc<Scrubber>) -> Self {
        Self {
            scrubber,
            carry: Vec::new(),
        }
    }

    /// The scrubbed bytes that can go out now.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.carry.extend_from_slice(chunk);
        let buf = std::mem::take(&mut self.carry);
        let hit = self.scrubber.hits(&buf);
        let hold = self.scrubber.longest().saturating_sub(1);
        let mut safe = buf.len().saturating_sub(hold);
        // Never cut a run of secret bytes: its end goes out replaced with it.
        while safe > 0 && safe < buf.len() && hit[safe - 1] && hit[safe] {
            safe += 1;
        }
        self.carry = buf[safe..].to_vec();
        Scrubber::redact(&buf[..safe], &hit[..safe])
    }

    /// The rest, at the end of the body.
    pub fn finish(&mut self) -> Vec<u8> {
        let buf = std::mem::take(&mut self.carry);
        self.scrubber.scrub_bytes(&buf)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_code_body_is_a_known_shape() {
        let none = Scrubber::new();
        assert_eq!(
            provider_words("Bad_OAuth_Token", &none),
            Some((Some("Bad_OAuth_Token".into()), String::new()))
        );
        assert_eq!(provider_words("<html>oops</html>", &none), None);
        assert_eq!(provider_words("two words", &none), None);
    }

    fn scrubber(secrets: &[&str]) -> Scrubber {
        let mut s = Scrubber::new();
        for x in secrets {
            s.add(x);
        }
        s
    }

    #[test]
    fn every_form_and_piece_goes() {
        let secret = "sk live/AbC+123 xyz=9";
        let s = scrubber(&[secret]);
        let b64 = base64::engine::general_purpose::STANDARD;
        let texts = [
            format!("key {secret} end"),
            format!(
                "q={}",
                url::form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>()
            ),
            format!("json {}", serde_json::to_string(secret).unwrap()),
            format!("b64 {}", b64.encode(secret)),
            format!("inside {}", b64.encode(format!("user:{secret}"))),
            format!("inside {}", b64.encode(format!("ab:{secret}!"))),
            "cut at the limit: sk live/AbC+1".to_string(),
            "folded sk   live/AbC+123\n xyz=9"
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        ];
        for t in texts {
            let out = s.scrub(&t);
            assert!(out.contains(REDACTED), "{t} -> {out}");
            assert!(!s.finds(&out), "{t} -> {out}");
        }
        assert_eq!(s.scrub("nothing to see"), "nothing to see");
    }

    #[test]
    fn a_secret_split_across_chunks_is_still_found() {
        let secret = "chunked-Secret-9f8e7d";
        let s = std::sync::Arc::new(scrubber(&[secret]));
        let body = format!(
            "head {secret} middle {} tail",
            base64::engine::general_purpose::STANDARD.encode(secret)
        );
        for size in [1, 3, 7, 8, 13, 64, 4096] {
            let mut c = ChunkScrubber::new(s.clone());
            let mut out = Vec::new();
            for chunk in body.as_bytes().chunks(size) {
                out.extend(c.push(chunk));
            }
            out.extend(c.finish());
            let text = String::from_utf8(out).unwrap();
            assert!(!s.finds(&text), "{size}: {text}");
            assert!(
                text.starts_with("head [REDACTED] middle ") && text.ends_with(" tail"),
                "{size}: {text}"
            );
        }
    }

    #[test]
    fn provider_words_come_from_known_shapes_only() {
        let s = scrubber(&["topsecret-value"]);
        let (code, d) = provider_words(
            "<?xml version=\"1.0\"?><ErrorResponse><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>bad topsecret-value &amp; more</Message></Error></ErrorResponse>",
            &s,
        )
        .unwrap();
        assert_eq!(code.as_deref(), Some("SignatureDoesNotMatch"));
        assert_eq!(d, "bad [REDACTED] & more");
        let (code, d) = provider_words(
            r#"{"error":"invalid_grant","error_description":"bad topsecret-value here"}"#,
            &s,
        )
        .unwrap();
        assert_eq!(code.as_deref(), Some("invalid_grant"));
        assert_eq!(d, "bad [REDACTED] here");
        let (code, d) = provider_words(
            r#"[{"errorCode":"INSUFFICIENT_ACCESS","message":"no"}]"#,
            &s,
        )
        .unwrap();
        assert_eq!(
            (code.as_deref(), d.as_str()),
            (Some("INSUFFICIENT_ACCESS"), "no")
        );
        assert!(provider_words("<html>topsecret-value</html>", &s).is_none());
        let (code, _) = provider_words(r#"{"error":"topsecret-value"}"#, &s).unwrap_or_default();
        assert!(code.is_none());
        let long = format!(
            r#"{{"error":"x","error_description":"{}"}}"#,
            "a".repeat(5000)
        );
        let (_, d) = provider_words(&long, &s).unwrap();
        assert!(d.chars().count() <= MAX_PROVIDER_TEXT + 1);
    }
}
