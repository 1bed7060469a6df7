//! Salesforce REST error bodies and the proxy's reading of a 401: never a panic, always a hint.
#![no_main]
use latchkey_server::oauth::salesforce_check_error;
use latchkey_server::proxy::classify_401;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for status in [401, 403, 500] {
        let (message, hint) = salesforce_check_error(status, &text);
        assert!(!message.is_empty() && !hint.is_empty());
    }
    let mut headers = http::HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_bytes(data) {
        headers.insert("www-authenticate", v);
    }
    let _ = classify_401(&headers, data);
});
