//! Configuration: a TOML file's text and `LATCHKEY_*` values. A bad one is an error, never a panic.
#![no_main]
use latchkey_server::config::Config;
use libfuzzer_sys::fuzz_target;

const VARS: &[&str] = &[
    "LATCHKEY_LISTEN", "LATCHKEY_PUBLIC_URL", "LATCHKEY_DATABASE_URL", "LATCHKEY_OUTBOUND_REWRITES",
    "LATCHKEY_OUTBOUND_ALLOW", "LATCHKEY_PROXY_QUEUE_TIMEOUT", "LATCHKEY_LOG", "LATCHKEY_LOG_FORMAT",
    "LATCHKEY_MASTER_KEY", "LATCHKEY_PREVIOUS_MASTER_KEY",
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = Config::from_text(Some(("fuzz.toml", text)), &[]);
    let mut parts = text.splitn(VARS.len(), '\n');
    let vars: Vec<(String, String)> = VARS
        .iter()
        .filter_map(|k| parts.next().map(|v| (k.to_string(), v.to_string())))
        .collect();
    let _ = Config::from_text(None, &vars);
});
