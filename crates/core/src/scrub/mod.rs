//! Keeping secrets out of text that leaves Latchkey (answers, `status_reason`, hints, events,
//! logs). Two measures, in this order of importance:
//!
//! 1. Never copy an upstream body: [`provider_words`] keeps only the provider's error code and
//!    description, parsed from shapes providers use (OAuth 2.0 error answers, RFC 6749 §5.2;
//!    Salesforce error arrays; `{"error": {"message": …}}` and `{"message": …}` objects).
//! 2. Scrub what is kept: a [`Scrubber`] removes every form of each secret it knows: raw,
//!    URL-encoded, base64 (at any alignment inside a longer base64 text), JSON-escaped, with
//!    white space folded, and any piece of [`PIECE`] characters or more of those forms.

mod chunk;
mod provider;
mod sieve;
#[cfg(test)]
mod tests;

pub use chunk::{ChunkScrubber, Emit};
pub use provider::{error_code, provider_summary, provider_words};
use sieve::Sieve;

use base64::Engine;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use std::ops::ControlFlow;

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

    /// Calls `f` with each stretch of `text` where an occurrence may lie (all of it without a
    /// sieve), merged and in order, until `f` breaks. Nothing is allocated: a short header
    /// value is looked at on every proxied answer.
    fn each_region(
        &self,
        m: &Matcher,
        text: &[u8],
        mut f: impl FnMut(usize, usize) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let Some(sieve) = &m.sieve else {
            return f(0, text.len());
        };
        // An occurrence covering the block at `b` lies within [b + block - longest, b + longest).
        let reach = self.longest();
        let mut open: Option<(usize, usize)> = None;
        sieve.each_candidate(text, |b| {
            let lo = (b + sieve.block).saturating_sub(reach);
            let hi = (b + reach).min(text.len());
            match &mut open {
                Some(region) if lo <= region.1 => {
                    region.1 = region.1.max(hi);
                    ControlFlow::Continue(())
                }
                _ => match open.replace((lo, hi)) {
                    Some((l, h)) => f(l, h),
                    None => ControlFlow::Continue(()),
                },
            }
        })?;
        match open {
            Some((lo, hi)) => f(lo, hi),
            None => ControlFlow::Continue(()),
        }
    }

    /// Which bytes of `text` belong to some form or piece of a secret: sorted, merged ranges.
    fn hit_ranges(&self, text: &[u8]) -> Vec<(usize, usize)> {
        let Some(m) = self.matcher() else {
            return Vec::new();
        };
        let mut hits = Vec::new();
        let _ = self.each_region(m, text, |lo, hi| {
            for found in m.ac.find_overlapping_iter(&text[lo..hi]) {
                hits.push((lo + found.start(), lo + found.end()));
            }
            ControlFlow::Continue(())
        });
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
            self.each_region(m, text, |lo, hi| {
                if m.ac.is_match(&text[lo..hi]) {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .is_break()
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
