//! Token endpoint answers (2xx and errors), Salesforce and generic: never a panic.
#![no_main]
use latchkey_core::catalog::Catalog;
use latchkey_core::model::AuthMode;
use latchkey_core::secret::SecretString;
use latchkey_server::oauth::grant::{parse_error_answer, parse_token_answer, ClientCreds};
use latchkey_server::oauth::provider::Provider;
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

/// The client and the two providers, built once: parsing the embedded catalog on every input
/// would leave the fuzzer little time for the answers themselves.
static SETUP: LazyLock<(ClientCreds, [Provider; 2])> = LazyLock::new(|| {
    let catalog = Catalog::embedded();
    let client = ClientCreds {
        client_id: "ck".into(),
        client_secret: Some(SecretString::from("cs".to_string())),
        private_key: None,
        allowed_origins: None,
    };
    let sf = Provider::for_connection(catalog.get("salesforce").unwrap(), AuthMode::OAuth2Code, &Default::default()).unwrap();
    let mut generic_settings = serde_json::Map::new();
    generic_settings.insert("token_url".into(), "https://idp.example/token".into());
    let generic = Provider::for_connection(catalog.get("generic-oauth2").unwrap(), AuthMode::OAuth2Code, &generic_settings).unwrap();
    (client, [sf, generic])
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (client, providers) = &*SETUP;
    for p in providers {
        if let Ok(t) = parse_token_answer(text, p, client) {
            assert!(t.meta.expires_at.is_some(), "every token gets an expiry");
        }
    }
    let e = parse_error_answer(400, text);
    let _ = e.hint(true, "https://latchkey.example");
});
