//! Salesforce REST error bodies and the proxy's reading of a 401: never a panic, always a hint.
//! Any upstream body reduced to the provider's words never carries the secret, and proxied
//! paths are judged without a panic.
#![no_main]
use latchkey_server::oauth::salesforce_check_error;
use latchkey_server::proxy::classify_401;
use libfuzzer_sys::fuzz_target;
use latchkey_core::scrub::Scrubber;
use std::sync::LazyLock;

/// Built once: the scrubber's automaton is the same for every input.
static SCRUBBER: LazyLock<Scrubber> = LazyLock::new(|| {
    let mut scrubber = Scrubber::new();
    scrubber.add("fuzz-Secret-0123");
    scrubber
});

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for status in [401, 403, 500] {
        let failed = salesforce_check_error(status, &text);
        assert!(!failed.message.is_empty() && !failed.hint.is_empty());
    }
    let mut headers = http::HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_bytes(data) {
        headers.insert("www-authenticate", v);
    }
    let _ = classify_401(&headers, data);
    let scrubber = &*SCRUBBER;
    if let Some((code, said)) = latchkey_core::scrub::provider_words(&text, scrubber) {
        assert!(said.chars().count() <= latchkey_core::scrub::MAX_PROVIDER_TEXT + 1);
        assert!(!scrubber.finds(&said), "{said}");
        assert!(!code.is_some_and(|c| scrubber.finds(&c)));
    }
    let _ = latchkey_server::proxy::check_path(&text, &text);
});
