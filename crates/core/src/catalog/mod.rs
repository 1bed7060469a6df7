//! The catalog of applications (the seeds' "components"). Each entry is one TOML file under
//! `catalog/`, embedded in the binary; an operator adds or overrides entries with files in
//! `LATCHKEY_CATALOG_DIR`. An entry says which auth modes the application takes, which settings
//! and credential fields a connection has, and how a connection is checked before it is saved.

mod api;
mod entry;
mod fields;
mod oauth;
mod validate;

pub use api::{InjectSpec, InjectStyle, PaginationSpec, RateLimitSpec};
pub use entry::{AppEntry, CATEGORIES, KNOWN_QUIRKS, QUIRK_FIELDS};
pub use fields::{FieldSpec, FieldType, VerifySpec};
pub(crate) use oauth::is_default_body;
pub use oauth::{json_path, ClientAuthMethod, OAuthSpec, RefreshStyle, TokenBody, TokenFields};

use crate::CoreError;
use indexmap::IndexMap;
use std::path::Path;

/// Files embedded at build time (written by `build.rs` from the `catalog/` folder, so a new
/// file is embedded without touching this list).
const EMBEDDED: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/catalog_files.rs"));

/// The names of the settings every connection takes, whatever its application (R3).
pub const CONCURRENCY_LEVEL: &str = "concurrency_level";
/// The setting naming the connection (by id) whose concurrency pool this one shares.
pub const BORROW_CONCURRENCY_FROM: &str = "borrow_concurrency_from";
/// Seconds between background health checks of one connection (0: none), overriding
/// `LATCHKEY_HEALTH_INTERVAL`; common to every connection.
pub const HEALTH_CHECK_INTERVAL: &str = "health_check_interval_seconds";
/// The highest per-connection health interval accepted (one week).
pub const MAX_HEALTH_CHECK_INTERVAL: u64 = 7 * 24 * 3600;

/// The catalog: every application Latchkey knows, by id.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// By id, kept in id order; looked up by hash (every proxied call looks its application
    /// up, and an ordered map of a few hundred ids costs it about ten string comparisons).
    entries: IndexMap<String, AppEntry, foldhash::fast::RandomState>,
}

impl Catalog {
    /// The embedded entries.
    pub fn embedded() -> Self {
        let mut entries: IndexMap<_, _, _> = EMBEDDED
            .iter()
            .map(|(file, text)| {
                let e = AppEntry::from_toml(text)
                    .unwrap_or_else(|err| panic!("embedded catalog file {file} is invalid: {err}"));
                (e.id.clone(), e)
            })
            .collect();
        entries.sort_unstable_keys();
        Self { entries }
    }

    /// The embedded entries plus every `*.toml` in `dir` (which may replace an embedded one).
    pub fn with_dir(dir: &Path) -> Result<Self, CoreError> {
        let mut cat = Self::embedded();
        let read = std::fs::read_dir(dir).map_err(|e| {
            CoreError::invalid(
                "catalog_dir",
                format!("cannot read catalog folder {}: {e}", dir.display()),
            )
        })?;
        let mut files: Vec<_> = read
            .filter_map(Result::ok)
            .map(|d| d.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                CoreError::invalid(
                    "catalog_dir",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            let entry = AppEntry::from_toml(&text).map_err(|e| {
                CoreError::invalid("catalog_dir", format!("{}: {e}", path.display()))
            })?;
            cat.entries.insert(entry.id.clone(), entry);
        }
        cat.entries.sort_unstable_keys();
        Ok(cat)
    }

    /// The entry with this application id, if the catalog has it.
    pub fn get(&self, id: &str) -> Option<&AppEntry> {
        self.entries.get(id)
    }

    /// Every entry, in application id order.
    pub fn iter(&self) -> impl Iterator<Item = &AppEntry> {
        self.entries.values()
    }

    /// How many applications the catalog holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the catalog holds no application at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AuthMode;
    use crate::secret::SecretFields;
    use serde_json::json;

    #[test]
    fn every_catalog_file_is_embedded() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../catalog");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".toml"))
            .collect();
        on_disk.sort();
        let embedded: Vec<String> = EMBEDDED.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(on_disk, embedded);
        let cat = Catalog::embedded();
        for id in [
            "salesforce",
            "certinia",
            "generic-oauth2",
            "generic-api-key",
            "generic-basic",
            "postgres",
            "mysql",
        ] {
            assert!(cat.get(id).is_some(), "{id} missing");
        }
    }

    #[test]
    fn entries_are_found_by_id_and_listed_in_id_order_with_an_operators_files() {
        let dir = std::env::temp_dir().join(format!("latchkey-catalog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (_, generic) = EMBEDDED
            .iter()
            .find(|(n, _)| *n == "generic-api-key.toml")
            .unwrap();
        let id = "id = \"generic-api-key\"";
        let name = "name = \"REST API (API key)\"";
        assert!(generic.contains(id) && generic.contains(name));
        std::fs::write(
            dir.join("a.toml"),
            generic.replace(id, "id = \"aaa-first\""),
        )
        .unwrap();
        std::fs::write(
            dir.join("b.toml"),
            generic.replace(name, "name = \"Replaced\""),
        )
        .unwrap();
        let cat = Catalog::with_dir(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        let cat = cat.unwrap();
        let ids: Vec<&str> = cat.iter().map(|a| a.id.as_str()).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(ids, sorted, "listed in id order, each once");
        assert_eq!(ids[0], "aaa-first");
        assert_eq!(cat.len(), Catalog::embedded().len() + 1);
        assert_eq!(cat.get("generic-api-key").unwrap().name, "Replaced");
        assert_eq!(cat.get("aaa-first").unwrap().name, "REST API (API key)");
        assert!(cat.get("no-such-app").is_none());
    }

    #[test]
    fn settings_are_checked_and_defaulted() {
        let cat = Catalog::embedded();
        let app = cat.get("generic-api-key").unwrap();
        let s = app
            .validate_settings(
                AuthMode::ApiKey,
                json!({"base_url": "https://api.example.com/"})
                    .as_object()
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(s["base_url"], "https://api.example.com");
        assert_eq!(s["api_key_name"], "X-API-Key");
        assert_eq!(s["concurrency_level"], 5);
        let err = app
            .validate_settings(
                AuthMode::ApiKey,
                json!({"base_url": "https://a.b", "concurency_level": 3})
                    .as_object()
                    .unwrap(),
            )
            .unwrap_err();
        assert!(err.to_string().contains("concurency_level"));
        assert!(app
            .validate_settings(
                AuthMode::ApiKey,
                json!({"base_url": "https://a.b", "concurrency_level": 26})
                    .as_object()
                    .unwrap()
            )
            .is_err());
        assert!(app
            .validate_settings(
                AuthMode::ApiKey,
                json!({"base_url": "ftp://a.b"}).as_object().unwrap()
            )
            .is_err());
        assert!(app
            .validate_settings(AuthMode::ApiKey, json!({}).as_object().unwrap())
            .is_err());
    }

    #[test]
    fn credentials_are_checked() {
        let cat = Catalog::embedded();
        let pg = cat.get("postgres").unwrap();
        let creds: SecretFields = serde_json::from_value(json!({
            "host": "127.0.0.1", "port": 5432, "database": "d", "username": "u", "password": "p"
        }))
        .unwrap();
        pg.validate_credentials(AuthMode::Database, &creds, false)
            .unwrap();
        let bad: SecretFields = serde_json::from_value(json!({"host": "http://x", "port": 5432, "database": "d", "username": "u", "password": "p"})).unwrap();
        assert!(pg
            .validate_credentials(AuthMode::Database, &bad, false)
            .is_err());
        let missing: SecretFields = serde_json::from_value(json!({"host": "h"})).unwrap();
        assert!(pg
            .validate_credentials(AuthMode::Database, &missing, false)
            .is_err());
        assert!(pg
            .validate_credentials(AuthMode::Database, &missing, true)
            .is_ok());
        let unknown: SecretFields = serde_json::from_value(json!({"api_key": "k"})).unwrap();
        assert!(pg
            .validate_credentials(AuthMode::Database, &unknown, true)
            .is_err());
    }

    #[test]
    fn a_bad_entry_is_refused_with_its_reason() {
        let err = AppEntry::from_toml("id = \"x\"\nname = \"X\"\nauth_modes = []\n").unwrap_err();
        assert!(err.to_string().contains("no auth_modes"));
        assert!(
            AppEntry::from_toml("id = \"x\"\nname = \"X\"\nauth_modes = [\"magic\"]\n").is_err()
        );
    }
}
