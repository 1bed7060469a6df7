//! The catalog of applications (the seeds' "components"). Each entry is one TOML file under
//! `catalog/`, embedded in the binary; an operator adds or overrides entries with files in
//! `LATCHKEY_CATALOG_DIR`. An entry says which auth modes the application takes, which settings
//! and credential fields a connection has, and how a connection is checked before it is saved.

use crate::model::{AuthMode, DEFAULT_CONCURRENCY_LEVEL, MAX_CONCURRENCY_LEVEL};
use crate::secret::SecretFields;
use crate::CoreError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// Files embedded at build time. `every_catalog_file_is_embedded` keeps this list complete.
const EMBEDDED: &[(&str, &str)] = &[
    (
        "certinia.toml",
        include_str!("../../../catalog/certinia.toml"),
    ),
    (
        "generic-api-key.toml",
        include_str!("../../../catalog/generic-api-key.toml"),
    ),
    (
        "generic-basic.toml",
        include_str!("../../../catalog/generic-basic.toml"),
    ),
    (
        "generic-oauth2.toml",
        include_str!("../../../catalog/generic-oauth2.toml"),
    ),
    ("mysql.toml", include_str!("../../../catalog/mysql.toml")),
    (
        "postgres.toml",
        include_str!("../../../catalog/postgres.toml"),
    ),
    (
        "salesforce.toml",
        include_str!("../../../catalog/salesforce.toml"),
    ),
];

/// The names of the settings every connection takes, whatever its application (R3).
pub const CONCURRENCY_LEVEL: &str = "concurrency_level";
pub const BORROW_CONCURRENCY_FROM: &str = "borrow_concurrency_from";

/// The type of a setting or credential field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    String,
    /// A secret single-line value (shown masked).
    Secret,
    /// A multi-line secret such as a PEM private key.
    SecretText,
    /// An absolute `http(s)` URL.
    Url,
    /// An absolute path starting with `/`.
    Path,
    /// A host name or address (no scheme).
    Host,
    Integer,
    Boolean,
    /// One of `choices`.
    Enum,
    /// A list of strings (scopes).
    List,
    /// A map of string to string.
    Map,
}

/// One field of a settings or credentials form, as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    pub name: String,
    pub label: String,
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// Required in every auth mode the field applies to.
    #[serde(default)]
    pub required: bool,
    /// Required only in these auth modes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_for: Vec<AuthMode>,
    /// The auth modes the field applies to; empty means all of the application's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub auth_modes: Vec<AuthMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<serde_json::Value>)]
    pub default: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
}

impl FieldSpec {
    fn applies_to(&self, mode: AuthMode) -> bool {
        self.auth_modes.is_empty() || self.auth_modes.contains(&mode)
    }

    fn is_required(&self, mode: AuthMode) -> bool {
        self.required || self.required_for.contains(&mode)
    }
}

/// How a connection is checked before it is saved (R9).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum VerifySpec {
    /// An HTTP request to the API base with the credential injected; a 2xx answer passes.
    Http {
        #[serde(default = "default_method")]
        method: String,
        /// A fixed path, or
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// the name of the setting that holds the path.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path_setting: Option<String>,
    },
    /// A PostgreSQL connection that runs `SELECT 1`.
    Postgres,
    /// A MySQL or MariaDB connection that runs `SELECT 1`.
    Mysql,
}

fn default_method() -> String {
    "GET".into()
}

/// The OAuth 2.0 part of an entry (Salesforce, Certinia, generic OAuth 2.0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuthSpec {
    /// Login hosts by account type (`production`, `sandbox`); empty for generic providers, whose
    /// URLs are settings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hosts: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorize_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_path: Option<String>,
    /// Whether PKCE (RFC 7636, S256) is used by default.
    #[serde(default)]
    pub pkce: bool,
    #[serde(default)]
    pub default_scopes: Vec<String>,
    /// Scopes a user may add, with what each lets Latchkey do.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scope_descriptions: BTreeMap<String, String>,
}

/// One application of the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppEntry {
    /// `salesforce`, `generic-api-key`, …
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub category: String,
    pub auth_modes: Vec<AuthMode>,
    /// The API base when it is fixed; otherwise a `base_url` setting holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(default)]
    pub settings: Vec<FieldSpec>,
    #[serde(default)]
    pub credentials: Vec<FieldSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs_url: Option<String>,
}

impl AppEntry {
    /// Parses and checks one catalog file.
    pub fn from_toml(text: &str) -> Result<Self, CoreError> {
        let entry: AppEntry = toml::from_str(text)
            .map_err(|e| CoreError::invalid("catalog", format!("invalid catalog entry: {e}")))?;
        entry.check()?;
        Ok(entry)
    }

    fn check(&self) -> Result<(), CoreError> {
        let bad = |m: String| {
            Err(CoreError::invalid(
                "catalog",
                format!("catalog entry `{}`: {m}", self.id),
            ))
        };
        if self.id.is_empty()
            || !self
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return bad("the id must be lowercase letters, digits and dashes".into());
        }
        if self.auth_modes.is_empty() {
            return bad("no auth_modes".into());
        }
        let mut seen = std::collections::HashSet::new();
        for f in self.settings.iter().chain(&self.credentials) {
            if !seen.insert(f.name.as_str()) {
                return bad(format!("field `{}` is declared twice", f.name));
            }
            if f.name == CONCURRENCY_LEVEL || f.name == BORROW_CONCURRENCY_FROM {
                return bad(format!("`{}` is common to every connection", f.name));
            }
            if f.kind == FieldType::Enum && f.choices.is_empty() {
                return bad(format!("enum field `{}` has no choices", f.name));
            }
            for m in f.auth_modes.iter().chain(&f.required_for) {
                if !self.auth_modes.contains(m) {
                    return bad(format!(
                        "field `{}` names auth mode `{m}` the app does not take",
                        f.name
                    ));
                }
            }
        }
        if let Some(VerifySpec::Http {
            path, path_setting, ..
        }) = &self.verify
        {
            if path.is_none() == path_setting.is_none() {
                return bad("an http check needs exactly one of `path` or `path_setting`".into());
            }
        }
        Ok(())
    }

    pub fn setting(&self, name: &str) -> Option<&FieldSpec> {
        self.settings.iter().find(|f| f.name == name)
    }

    /// Checks a connection's settings for `mode` and returns them normalized: defaults filled
    /// in, `concurrency_level` present. Unknown settings are refused, so a typo is not lost.
    pub fn validate_settings(
        &self,
        mode: AuthMode,
        input: &Map<String, Value>,
    ) -> Result<Map<String, Value>, CoreError> {
        let mut out = Map::new();
        for (k, v) in input {
            if k == CONCURRENCY_LEVEL || k == BORROW_CONCURRENCY_FROM || v.is_null() {
                continue;
            }
            match self.setting(k) {
                Some(spec) if spec.applies_to(mode) => {
                    out.insert(k.clone(), check_value(&format!("settings.{k}"), spec, v)?);
                }
                Some(_) => {
                    return Err(CoreError::invalid(
                        format!("settings.{k}"),
                        format!("`{k}` does not apply to auth mode `{mode}`"),
                    ))
                }
                None => {
                    return Err(CoreError::invalid_with_hint(
                        format!("settings.{k}"),
                        format!("`{}` has no setting `{k}`", self.id),
                        format!("its settings are: {}", self.setting_names(mode).join(", ")),
                    ))
                }
            }
        }
        for spec in self.settings.iter().filter(|s| s.applies_to(mode)) {
            if out.contains_key(&spec.name) {
                continue;
            }
            if let Some(d) = &spec.default {
                out.insert(spec.name.clone(), d.clone());
            } else if spec.is_required(mode) {
                return Err(CoreError::invalid(
                    format!("settings.{}", spec.name),
                    format!("`{}` ({}) is required", spec.name, spec.label),
                ));
            }
        }
        if mode == AuthMode::Database {
            // Latchkey never proxies a database: it has no concurrency level and shares none.
            if matches!(input.get(BORROW_CONCURRENCY_FROM), Some(v) if !v.is_null()) {
                return Err(CoreError::invalid_with_hint(
                    "settings.borrow_concurrency_from",
                    "a database connection cannot borrow concurrency",
                    "Latchkey does not proxy databases, so their connections have no concurrency to share",
                ));
            }
            return Ok(out);
        }
        let level = match input.get(CONCURRENCY_LEVEL) {
            None | Some(Value::Null) => DEFAULT_CONCURRENCY_LEVEL,
            Some(v) => match v.as_i64() {
                Some(n) if (1..=MAX_CONCURRENCY_LEVEL).contains(&n) => n,
                _ => {
                    return Err(CoreError::invalid_with_hint(
                        "settings.concurrency_level",
                        "the concurrency level must be a whole number from 1 to 25",
                        "it is the most requests Latchkey sends to the application at once",
                    ))
                }
            },
        };
        out.insert(CONCURRENCY_LEVEL.into(), Value::from(level));
        match input.get(BORROW_CONCURRENCY_FROM) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if !s.is_empty() => {
                out.insert(BORROW_CONCURRENCY_FROM.into(), Value::String(s.clone()));
            }
            Some(_) => {
                return Err(CoreError::invalid(
                    "settings.borrow_concurrency_from",
                    "borrow_concurrency_from must be the id or name of another connection",
                ))
            }
        }
        Ok(out)
    }

    fn setting_names(&self, mode: AuthMode) -> Vec<String> {
        self.settings
            .iter()
            .filter(|s| s.applies_to(mode))
            .map(|s| s.name.clone())
            .chain([
                CONCURRENCY_LEVEL.to_string(),
                BORROW_CONCURRENCY_FROM.to_string(),
            ])
            .collect()
    }

    /// The credential fields of an auth mode.
    pub fn credential_fields(&self, mode: AuthMode) -> impl Iterator<Item = &FieldSpec> {
        self.credentials.iter().filter(move |f| f.applies_to(mode))
    }

    /// Checks credential fields for `mode`: no unknown fields, values of the right type, and
    /// (unless `partial`, for an edit that merges onto stored fields) every required one present.
    pub fn validate_credentials(
        &self,
        mode: AuthMode,
        creds: &SecretFields,
        partial: bool,
    ) -> Result<(), CoreError> {
        for name in creds.names() {
            let Some(spec) = self.credential_fields(mode).find(|f| f.name == name) else {
                let known: Vec<&str> = self
                    .credential_fields(mode)
                    .map(|f| f.name.as_str())
                    .collect();
                return Err(CoreError::invalid_with_hint(
                    format!("credentials.{name}"),
                    format!(
                        "auth mode `{mode}` of `{}` has no credential field `{name}`",
                        self.id
                    ),
                    if known.is_empty() {
                        "this auth mode takes no credential fields".to_string()
                    } else {
                        format!("its credential fields are: {}", known.join(", "))
                    },
                ));
            };
            let value = creds.expose(name).unwrap_or_default();
            let field = format!("credentials.{name}");
            match spec.kind {
                FieldType::Integer => {
                    let n: i64 = value.trim().parse().map_err(|_| {
                        CoreError::invalid(&field, format!("`{name}` must be a whole number"))
                    })?;
                    check_range(&field, spec, n)?;
                }
                FieldType::Host => check_host(&field, value)?,
                FieldType::SecretText
                    if spec.name == "private_key" && !value.contains("-----BEGIN") =>
                {
                    return Err(CoreError::invalid(
                        &field,
                        "the private key must be in PEM form (-----BEGIN … KEY-----)",
                    ));
                }
                _ => {}
            }
            if value.is_empty() && spec.is_required(mode) {
                return Err(CoreError::invalid(
                    &field,
                    format!("`{name}` cannot be empty"),
                ));
            }
        }
        if !partial {
            for spec in self.credential_fields(mode).filter(|f| f.is_required(mode)) {
                if creds.get(&spec.name).is_none() {
                    return Err(CoreError::invalid(
                        format!("credentials.{}", spec.name),
                        format!("`{}` ({}) is required", spec.name, spec.label),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn check_range(field: &str, spec: &FieldSpec, n: i64) -> Result<(), CoreError> {
    if spec.min.is_some_and(|m| n < m) || spec.max.is_some_and(|m| n > m) {
        return Err(CoreError::invalid(
            field,
            format!(
                "`{}` must be between {} and {}",
                spec.name,
                spec.min.unwrap_or(i64::MIN),
                spec.max.unwrap_or(i64::MAX)
            ),
        ));
    }
    Ok(())
}

fn check_host(field: &str, v: &str) -> Result<(), CoreError> {
    let ok = !v.is_empty()
        && v.len() <= 253
        && !v.contains("://")
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'));
    if ok {
        Ok(())
    } else {
        Err(CoreError::invalid_with_hint(
            field,
            format!("`{v}` is not a host name or address"),
            "give the host alone (db.example.com or 10.0.0.5), without scheme, port or path",
        ))
    }
}

fn check_value(field: &str, spec: &FieldSpec, v: &Value) -> Result<Value, CoreError> {
    let wrong = |what: &str| {
        Err(CoreError::invalid(
            field,
            format!("`{}` must be {what}", spec.name),
        ))
    };
    match spec.kind {
        FieldType::String | FieldType::Secret | FieldType::SecretText => match v {
            Value::String(s) if s.len() <= 4096 => Ok(v.clone()),
            Value::String(_) => wrong("at most 4096 characters"),
            _ => wrong("a string"),
        },
        FieldType::Url => match v.as_str().map(url::Url::parse) {
            Some(Ok(u)) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
                Ok(Value::String(
                    v.as_str()
                        .unwrap_or_default()
                        .trim_end_matches('/')
                        .to_string(),
                ))
            }
            _ => Err(CoreError::invalid_with_hint(
                field,
                format!("`{}` must be an absolute http or https URL", spec.name),
                "for example https://api.example.com/v1",
            )),
        },
        FieldType::Path => match v.as_str() {
            Some(s) if s.starts_with('/') && !s.contains("://") && s.len() <= 2048 => Ok(v.clone()),
            _ => wrong("a path starting with `/`"),
        },
        FieldType::Host => match v.as_str() {
            Some(s) => check_host(field, s).map(|()| v.clone()),
            None => wrong("a host name"),
        },
        FieldType::Integer => match v.as_i64() {
            Some(n) => check_range(field, spec, n).map(|()| v.clone()),
            None => wrong("a whole number"),
        },
        FieldType::Boolean => match v {
            Value::Bool(_) => Ok(v.clone()),
            _ => wrong("true or false"),
        },
        FieldType::Enum => match v.as_str() {
            Some(s) if spec.choices.iter().any(|c| c == s) => Ok(v.clone()),
            _ => wrong(&format!("one of: {}", spec.choices.join(", "))),
        },
        FieldType::List => match v {
            Value::Array(items)
                if items.iter().all(|i| {
                    i.as_str()
                        .is_some_and(|s| !s.is_empty() && !s.contains(char::is_whitespace))
                }) =>
            {
                Ok(v.clone())
            }
            Value::String(s) => Ok(Value::Array(
                s.split_whitespace()
                    .map(|x| Value::String(x.into()))
                    .collect(),
            )),
            _ => wrong("a list of words (or one string of space-separated words)"),
        },
        FieldType::Map => match v {
            Value::Object(m) if m.values().all(Value::is_string) => Ok(v.clone()),
            _ => wrong("an object of strings"),
        },
    }
}

/// The catalog: every application Latchkey knows, by id.
#[derive(Debug, Clone)]
pub struct Catalog {
    entries: BTreeMap<String, AppEntry>,
}

impl Catalog {
    /// The embedded entries.
    pub fn embedded() -> Self {
        let entries = EMBEDDED
            .iter()
            .map(|(file, text)| {
                let e = AppEntry::from_toml(text)
                    .unwrap_or_else(|err| panic!("embedded catalog file {file} is invalid: {err}"));
                (e.id.clone(), e)
            })
            .collect();
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
        Ok(cat)
    }

    pub fn get(&self, id: &str) -> Option<&AppEntry> {
        self.entries.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &AppEntry> {
        self.entries.values()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
