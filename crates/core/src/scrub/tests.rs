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
    let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_\"{}:,=+/%";
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
