//! The proxy's header handling: whatever a caller sends, no hop-by-hop header, no
//! `Authorization` and no header the `Connection` header names goes upstream.
#![no_main]
use latchkey_server::proxy::forwardable;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut headers = http::HeaderMap::new();
    for line in data.split(|b| *b == b'\n').take(64) {
        let mut parts = line.splitn(2, |b| *b == b':');
        let (Some(name), Some(value)) = (parts.next(), parts.next()) else { continue };
        if let (Ok(n), Ok(v)) = (http::HeaderName::from_bytes(name), http::HeaderValue::from_bytes(value)) {
            headers.append(n, v);
        }
    }
    let listed: Vec<String> = headers
        .get_all("connection")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .collect();
    let out = forwardable(&headers);
    for forbidden in ["authorization", "connection", "transfer-encoding", "host", "cookie", "upgrade", "te", "keep-alive"] {
        assert!(!out.contains_key(forbidden), "{forbidden} went upstream");
    }
    for l in listed {
        assert!(!out.contains_key(l.as_str()), "{l} is named by Connection but went upstream");
    }
});
