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
    matcher: std::sync::OnceLock<Option<Matcher>>,
}

/// The patterns, compiled: an Aho-Corasick automaton that finds every (overlapping) occurrence,
/// and a sieve that rules out most of a text much faster than the automaton can scan it.
#[derive(Clone)]
struct Matcher {
    ac: aho_corasick::AhoCorasick,
    sieve: Option<Sieve>,
}

/// A first pass over a text that never misses an occurrence: when every pattern is at least
/// `2 * block - 1` bytes long, each occurrence covers a whole block of `block` bytes that starts
/// at a multiple of `block`, and the bytes of that block are a `block`-gram of the pattern. So
/// only the blocks whose bytes are such a gram (a 64 KiB table by hash, then an exact look-up)
/// need the automaton, on the stretch around them where an occurrence covering them can lie.
/// About two instructions per byte, where the automaton over hundreds of patterns takes thirty.
#[derive(Clone)]
struct Sieve {
    block: usize,
    /// Byte `hash(gram)` is set for every gram of every pattern (a byte, not a bit: one load
    /// and no shifts per block).
    table: Box<[u8; 65536]>,
    /// Every gram of every pattern, sorted.
    grams: Vec<u32>,
}

fn gram(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .rev()
        .fold(0u32, |acc, b| (acc << 8) | u32::from(*b))
}

fn gram_hash(g: u32) -> usize {
    (g.wrapping_mul(0x9E37_79B1) >> 16) as usize
}

impl Sieve {
    fn new(patterns: &[String]) -> Option<Sieve> {
        let shortest = patterns.iter().map(String::len).min()?;
        let block = shortest.div_ceil(2).min(4);
        if block < 2 {
            return None;
        }
        let mut table: Box<[u8; 65536]> = vec![0u8; 65536].into_boxed_slice().try_into().ok()?;
        let mut grams = Vec::new();
        for p in patterns {
            for w in p.as_bytes().windows(block) {
                let g = gram(w);
                table[gram_hash(g)] = 1;
                grams.push(g);
            }
        }
        grams.sort_unstable();
        grams.dedup();
        Some(Sieve {
            block,
            table,
            grams,
        })
    }

    /// Whether the gram of a block may belong to some pattern (its byte is set).
    #[inline(always)]
    fn maybe(&self, g: u32) -> u8 {
        self.table[gram_hash(g)]
    }

    /// Whether the gram of a block belongs to some pattern.
    #[inline(always)]
    fn known(&self, g: u32) -> bool {
        self.maybe(g) != 0 && self.grams.binary_search(&g).is_ok()
    }

    /// The start of every block of `text` (at multiples of `block`) whose gram is known.
    fn candidates(&self, text: &[u8], out: &mut Vec<usize>) {
        if self.block != 4 {
            let n = self.block;
            for (i, b) in text.chunks_exact(n).enumerate() {
                if self.known(gram(b)) {
                    out.push(i * n);
                }
            }
            return;
        }
        // Four blocks at a time, one branch for the four bytes (all clear, nearly always).
        let le = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut wide = text.chunks_exact(16);
        let mut at = 0;
        for b in &mut wide {
            let g = [le(b, 0), le(b, 4), le(b, 8), le(b, 12)];
            if self.maybe(g[0]) | self.maybe(g[1]) | self.maybe(g[2]) | self.maybe(g[3]) != 0 {
                for (k, g) in g.into_iter().enumerate() {
                    if self.known(g) {
                        out.push(at + 4 * k);
                    }
                }
            }
            at += 16;
        }
        for (i, b) in wide.remainder().chunks_exact(4).enumerate() {
            if self.known(le(b, 0)) {
                out.push(at + 4 * i);
            }
        }
    }
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrubber")
            .field("patterns", &self.patterns.len())
            .finish()
    }
}

/// Hit ranges sorted by start, with overlapping and touching ones merged (a run of secret bytes
/// becomes one [`REDACTED`]).
fn merge(mut ranges: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
    ranges.sort_unstable();
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
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

    fn matcher(&self) -> Option<&Matcher> {
        self.matcher
            .get_or_init(|| {
                if self.patterns.is_empty() {
                    return None;
                }
                let ac = aho_corasick::AhoCorasick::new(&self.patterns).ok()?;
                Some(Matcher {
                    ac,
                    sieve: Sieve::new(&self.patterns),
                })
            })
            .as_ref()
    }

    /// The longest pattern, in bytes.
    pub fn longest(&self) -> usize {
        self.patterns.first().map_or(0, String::len)
    }

    /// The stretches of `text` where an occurrence may lie (all of it without a sieve), merged.
    fn regions(&self, m: &Matcher, text: &[u8]) -> Vec<(usize, usize)> {
        let Some(sieve) = &m.sieve else {
            return vec![(0, text.len())];
        };
        let mut blocks = Vec::new();
        sieve.candidates(text, &mut blocks);
        // An occurrence covering the block at `b` lies within [b + block - longest, b + longest).
        let reach = self.longest();
        let mut out: Vec<(usize, usize)> = Vec::new();
        for b in blocks {
            let lo = (b + sieve.block).saturating_sub(reach);
            let hi = (b + reach).min(text.len());
            match out.last_mut() {
                Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
                _ => out.push((lo, hi)),
            }
        }
        out
    }

    /// Which bytes of `text` belong to some form or piece of a secret: sorted, merged ranges.
    fn hit_ranges(&self, text: &[u8]) -> Vec<(usize, usize)> {
        let Some(m) = self.matcher() else {
            return Vec::new();
        };
        let mut hits = Vec::new();
        for (lo, hi) in self.regions(m, text) {
            for found in m.ac.find_overlapping_iter(&text[lo..hi]) {
                hits.push((lo + found.start(), lo + found.end()));
            }
        }
        merge(hits)
    }

    /// `text` with each hit range (sorted, merged) replaced by [`REDACTED`], onto `out`.
    fn redact_into(text: &[u8], hits: &[(usize, usize)], out: &mut Vec<u8>) {
        out.reserve(text.len());
        let mut at = 0;
        for &(s, e) in hits {
            out.extend_from_slice(&text[at..s]);
            out.extend_from_slice(REDACTED.as_bytes());
            at = e;
        }
        out.extend_from_slice(&text[at..]);
    }

    fn redact(text: &[u8], hits: &[(usize, usize)]) -> Vec<u8> {
        let mut out = Vec::new();
        Self::redact_into(text, hits, &mut out);
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
        self.finds_bytes(text.as_bytes())
    }

    /// Whether the bytes carry any form or piece of a secret.
    pub fn finds_bytes(&self, text: &[u8]) -> bool {
        self.matcher().is_some_and(|m| {
            self.regions(m, text)
                .into_iter()
                .any(|(lo, hi)| m.ac.is_match(&text[lo..hi]))
        })
    }

    /// The text with every form and piece of every secret replaced by [`REDACTED`].
    pub fn scrub(&self, text: &str) -> String {
        if !self.finds(text) {
            return text.to_string();
        }
        let hits = self.hit_ranges(text.as_bytes());
        // Patterns are whole characters of UTF-8 text, so runs never split a character.
        String::from_utf8_lossy(&Self::redact(text.as_bytes(), &hits)).into_owned()
    }

    /// Scrubs bytes (a response body) that may not be text.
    pub fn scrub_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let hits = self.hit_ranges(bytes);
        Self::redact(bytes, &hits)
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

/// What can go out after a chunk: `head` (owned bytes), then the bytes `tail` of the chunk
/// itself, so that a clean chunk is passed on without a copy.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Emit {
    /// Bytes held back from earlier chunks (and any redacted part), to send first.
    pub head: Vec<u8>,
    /// The range of the current chunk to send after `head`, as it is.
    pub tail: std::ops::Range<usize>,
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
        let Emit { mut head, tail } = self.push_parts(chunk);
        head.extend_from_slice(&chunk[tail]);
        head
    }

    /// Like [`ChunkScrubber::push`], without copying the clean part of `chunk`.
    pub fn push_parts(&mut self, chunk: &[u8]) -> Emit {
        let reach = self.scrubber.longest();
        let hold = reach.saturating_sub(1);
        if chunk.len() <= hold + reach {
            // Short: join it to what waits and scrub the whole.
            self.carry.extend_from_slice(chunk);
            let buf = std::mem::take(&mut self.carry);
            let hits = self.scrubber.hit_ranges(&buf);
            let safe = Self::safe_end(buf.len() - hold.min(buf.len()), buf.len(), &hits);
            self.carry = buf[safe..].to_vec();
            return Emit {
                head: Scrubber::redact(&buf[..safe], Self::before(&hits, safe)),
                tail: 0..0,
            };
        }
        // The body so far is `carry ++ chunk`. An occurrence that starts in `carry` ends within
        // the first `reach` bytes of the chunk; any other lies inside the chunk.
        let carry = std::mem::take(&mut self.carry);
        let c = carry.len();
        let mut hits: Vec<(usize, usize)> = self
            .scrubber
            .hit_ranges(chunk)
            .into_iter()
            .map(|(s, e)| (s + c, e + c))
            .collect();
        if c > 0 {
            let mut join = Vec::with_capacity(c + reach);
            join.extend_from_slice(&carry);
            join.extend_from_slice(&chunk[..reach]);
            hits.extend(self.scrubber.hit_ranges(&join));
            hits = merge(hits);
        }
        let total = c + chunk.len();
        // chunk.len() > hold, so safe > c: what waits is a tail of the chunk.
        let safe = Self::safe_end(total - hold, total, &hits);
        self.carry = chunk[safe - c..].to_vec();
        let hits = Self::before(&hits, safe);
        if hits.is_empty() {
            return Emit {
                head: carry,
                tail: 0..safe - c,
            };
        }
        let mut buf = carry;
        buf.extend_from_slice(&chunk[..safe - c]);
        Emit {
            head: Scrubber::redact(&buf, hits),
            tail: 0..0,
        }
    }

    /// Where what goes out now ends: `safe`, moved past a run of secret bytes it would cut
    /// (the run goes out replaced, whole).
    fn safe_end(safe: usize, len: usize, hits: &[(usize, usize)]) -> usize {
        match hits.iter().find(|(s, e)| *s < safe && safe < *e) {
            Some(&(_, e)) if safe > 0 => e.min(len),
            _ => safe,
        }
    }

    /// The hit ranges that end by `safe` (the others start at or after it).
    fn before(hits: &[(usize, usize)], safe: usize) -> &[(usize, usize)] {
        &hits[..hits.partition_point(|(s, _)| *s < safe)]
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

    /// Every byte any pattern covers, by trying each pattern at each place (no automaton, no
    /// sieve), as sorted merged ranges.
    fn naive_hits(s: &Scrubber, text: &[u8]) -> Vec<(usize, usize)> {
        let mut hit = vec![false; text.len()];
        for p in &s.patterns {
            let p = p.as_bytes();
            for i in 0..text.len() {
                if text[i..].starts_with(p) {
                    hit[i..i + p.len()].iter_mut().for_each(|h| *h = true);
                }
            }
        }
        let mut out: Vec<(usize, usize)> = Vec::new();
        for (i, h) in hit.into_iter().enumerate() {
            if h {
                match out.last_mut() {
                    Some(last) if last.1 == i => last.1 = i + 1,
                    _ => out.push((i, i + 1)),
                }
            }
        }
        out
    }

    /// The chunked scrubbing as first written: the whole of what waits plus the chunk, scanned
    /// again each time with the naive search.
    fn naive_chunks(s: &Scrubber, chunks: &[&[u8]]) -> Vec<u8> {
        let mut carry = Vec::new();
        let mut out = Vec::new();
        for chunk in chunks {
            carry.extend_from_slice(chunk);
            let buf = std::mem::take(&mut carry);
            let hits = naive_hits(s, &buf);
            let mut safe = buf.len().saturating_sub(s.longest().saturating_sub(1));
            if let Some(&(_, e)) = hits.iter().find(|(a, e)| *a < safe && safe < *e) {
                safe = e;
            }
            carry = buf[safe..].to_vec();
            let before: Vec<_> = hits.into_iter().filter(|(a, _)| *a < safe).collect();
            out.extend(Scrubber::redact(&buf[..safe], &before));
        }
        out.extend(Scrubber::redact(&carry, &naive_hits(s, &carry)));
        out
    }

    /// A small deterministic generator (xorshift).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    /// Text with forms and pieces of `secret` dropped in at random places.
    fn body_with(secret: &str, rng: &mut Rng, len: usize) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let forms = forms(secret);
        let alphabet =
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_\"{}:,=+/%";
        let mut out = Vec::new();
        while out.len() < len {
            match rng.next(12) {
                0 => out.extend_from_slice(forms[rng.next(forms.len())].as_bytes()),
                1 => {
                    let f = forms[rng.next(forms.len())].as_bytes();
                    let a = rng.next(f.len());
                    let b = (a + PIECE + rng.next(4)).min(f.len());
                    out.extend_from_slice(&f[a..b]);
                }
                2 => out.extend_from_slice(b64.encode(format!("u:{secret}")).as_bytes()),
                _ => {
                    for _ in 0..rng.next(200) {
                        out.push(alphabet[rng.next(alphabet.len())]);
                    }
                }
            }
        }
        out
    }

    #[test]
    fn the_sieve_finds_what_a_naive_search_finds() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for secret in [
            "bench-upstream-key-7d1c",
            "sk live/AbC+123 xyz=9",
            "abcd",
            "short9",
            "pässwörd-ünïcode-9",
            "aaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            let s = scrubber(&[secret]);
            for _ in 0..20 {
                let len = rng.next(3000);
                let text = body_with(secret, &mut rng, len);
                assert_eq!(s.hit_ranges(&text), naive_hits(&s, &text), "{secret}");
                assert_eq!(
                    s.finds_bytes(&text),
                    !naive_hits(&s, &text).is_empty(),
                    "{secret}"
                );
            }
        }
    }

    #[test]
    fn chunked_scrubbing_matches_the_naive_one_at_every_cut() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for secret in ["bench-upstream-key-7d1c", "sk live/AbC+123 xyz=9", "short9"] {
            let s = std::sync::Arc::new(scrubber(&[secret]));
            for round in 0..40 {
                let len = 200 + rng.next(6000);
                let body = body_with(secret, &mut rng, len);
                // Fixed sizes (around the hold and the longest pattern) and random ones.
                let mut cuts = Vec::new();
                let mut at = 0;
                let fixed = [
                    1,
                    2,
                    s.longest() - 1,
                    s.longest(),
                    2 * s.longest(),
                    2 * s.longest() + 1,
                    1000,
                ];
                while at < body.len() {
                    let n = if round % 2 == 0 {
                        fixed[round / 2 % fixed.len()]
                    } else {
                        1 + rng.next(3 * s.longest())
                    };
                    let end = (at + n).min(body.len());
                    cuts.push(&body[at..end]);
                    at = end;
                }
                let want = naive_chunks(&s, &cuts);
                let mut c = ChunkScrubber::new(s.clone());
                let mut got = Vec::new();
                for chunk in &cuts {
                    let Emit { head, tail } = c.push_parts(chunk);
                    got.extend(head);
                    got.extend_from_slice(&chunk[tail]);
                }
                got.extend(c.finish());
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&want),
                    "{secret}, round {round}"
                );
                assert!(!s.finds_bytes(&got), "{secret}, round {round}");
            }
        }
    }

    #[test]
    fn a_secret_cut_by_a_long_chunk_is_found() {
        // Chunks longer than twice the longest pattern take the path that does not copy them.
        let secret = "bench-upstream-key-7d1c";
        let s = std::sync::Arc::new(scrubber(&[secret]));
        let filler = "x".repeat(5000);
        let body = format!("{filler}{secret}{filler}{secret}");
        for cut in 1..secret.len() {
            let first = 5000 + cut;
            let mut c = ChunkScrubber::new(s.clone());
            let mut out = Vec::new();
            for (i, chunk) in [&body.as_bytes()[..first], &body.as_bytes()[first..]]
                .into_iter()
                .enumerate()
            {
                let Emit { head, tail } = c.push_parts(chunk);
                if i == 0 {
                    // Clean up to the cut: it goes on by reference, not copied.
                    assert!(head.is_empty() && tail.len() > 4900, "cut at {cut}");
                }
                out.extend(head);
                out.extend_from_slice(&chunk[tail]);
            }
            out.extend(c.finish());
            let text = String::from_utf8(out).unwrap();
            assert_eq!(
                text,
                format!("{filler}[REDACTED]{filler}[REDACTED]"),
                "cut at {cut}"
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
