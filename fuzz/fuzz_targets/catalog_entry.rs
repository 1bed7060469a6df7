//! Catalog files (an operator's `LATCHKEY_CATALOG_DIR`) and the settings they validate.
#![no_main]
use latchkey_core::catalog::{AppEntry, Catalog};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

/// Parsed once: the embedded catalog is the same for every input.
static CATALOG: LazyLock<Catalog> = LazyLock::new(Catalog::embedded);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(entry) = AppEntry::from_toml(text) {
        for mode in entry.auth_modes.clone() {
            let _ = entry.validate_settings(mode, &Default::default());
        }
    }
    // The same bytes as connection settings for every embedded application.
    if let Ok(serde_json::Value::Object(settings)) = serde_json::from_str::<serde_json::Value>(text) {
        for app in CATALOG.iter() {
            for mode in &app.auth_modes {
                if let Ok(s) = app.validate_settings(*mode, &settings) {
                    // Databases and SFTP servers are never proxied: they carry no concurrency level.
                    match s.get("concurrency_level") {
                        Some(level) => {
                            let level = level.as_i64().unwrap();
                            assert!((1..=25).contains(&level));
                        }
                        None => assert!(mode.is_direct(), "{mode}"),
                    }
                }
            }
        }
    }
});
