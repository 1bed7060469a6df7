//! Names, slugs, environments, Salesforce sites, scopes, outbound rules: parse or refuse.
#![no_main]
use latchkey_core::names::{ConnectionName, Environment, FlowName, Slug};
use latchkey_core::outbound::{AllowList, Rewrites};
use latchkey_server::oauth::provider::check_site;
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

/// Parsed once: the embedded catalog is the same for every input.
static CATALOG: LazyLock<latchkey_core::catalog::Catalog> = LazyLock::new(latchkey_core::catalog::Catalog::embedded);

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(n) = ConnectionName::parse(s) {
        assert!(!n.as_str().contains('/'), "a connection name never holds a slash");
    }
    if let Ok(slug) = Slug::parse(s) {
        assert!(slug.as_str().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
    }
    let _ = (FlowName::parse(s), Environment::parse(s));
    if let Ok(site) = check_site(s) {
        assert!(site.ends_with(".my.salesforce.com") && !site.contains('/'));
    }
    let _ = Rewrites::parse(s);
    let _ = AllowList::parse(s);
    let scopes = serde_json::json!({ "scopes": s, "account_type": "sandbox" });
    let _ = CATALOG.get("salesforce").unwrap().validate_settings(latchkey_core::model::AuthMode::OAuth2Code, scopes.as_object().unwrap());
});
