//! One application of the catalog: its TOML form, the checks of the entry itself, and its URL
//! templates.

use super::{
    FieldSpec, FieldType, InjectSpec, OAuthSpec, PaginationSpec, RateLimitSpec, VerifySpec,
    BORROW_CONCURRENCY_FROM, CONCURRENCY_LEVEL, HEALTH_CHECK_INTERVAL,
};
use crate::model::AuthMode;
use crate::CoreError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Provider habits that no field expresses, each handled by one named module of the server.
pub const KNOWN_QUIRKS: &[&str] = &["slack_ok_envelope", "mailchimp_metadata"];

/// The grant fields a quirk learns beyond the token answer (they may open the base URL).
pub const QUIRK_FIELDS: &[(&str, &[&str])] = &[("mailchimp_metadata", &["api_endpoint", "dc"])];

/// Categories of the catalog (the picker's filter).
pub const CATEGORIES: &[&str] = &[
    "crm",
    "erp",
    "finance",
    "support",
    "marketing",
    "hr",
    "ecommerce",
    "storage",
    "collaboration",
    "developer-tools",
    "data-warehouse",
    "cloud",
    "communication",
    "security",
    "analytics",
    "payments",
    "productivity",
    "database",
    "generic",
];

/// One application of the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppEntry {
    /// `salesforce`, `generic-api-key`, …
    pub id: String,
    /// The name shown in the picker and the web UI (`Salesforce`).
    pub name: String,
    /// One sentence shown under the name in the picker; may be empty.
    #[serde(default)]
    pub description: String,
    /// Where the picker lists it (see [`CATEGORIES`]); the first is the main one.
    #[serde(default)]
    pub categories: Vec<String>,
    /// `#RRGGBB`: the background of the application's monogram (no logo is fetched).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand_color: Option<String>,
    /// The auth modes a connection of this application may use; when there is only one, a new
    /// connection need not name it.
    pub auth_modes: Vec<AuthMode>,
    /// The API base when it is fixed, a URL template filled from settings
    /// (`https://{subdomain}.zendesk.com/api/v2`) or from a kept token field
    /// (`{api_domain}/crm/v6`); otherwise a `base_url` setting holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The connection settings the application takes (non-secret: hosts, account ids, …).
    #[serde(default)]
    pub settings: Vec<FieldSpec>,
    /// The credential fields the application takes, stored sealed (keys, user names, passwords).
    #[serde(default)]
    pub credentials: Vec<FieldSpec>,
    /// How a connection is checked before it is saved; `None`: it is saved unchecked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifySpec>,
    /// OAuth 2.0 endpoints and habits, for the OAuth auth modes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthSpec>,
    /// Service-account key files (auth mode `service_account`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<crate::exchange::ServiceAccountSpec>,
    /// The login endpoint of auth mode `token_exchange`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_exchange: Option<crate::exchange::TokenExchangeSpec>,
    /// The OAuth 1.0a endpoints, for the three-legged `oauth1` mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth1: Option<crate::signed::OAuth1Spec>,
    /// The provider's API documentation, linked from the web UI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs_url: Option<String>,
    /// How the credential is put on requests; default: bearer for OAuth, the `api_key_*`
    /// settings for API keys, HTTP Basic for user and password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inject: Option<InjectSpec>,
    /// The API's rate-limit headers, when the catalog knows them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
    /// How the API pages its lists, when the catalog knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination: Option<PaginationSpec>,
    /// Fixed headers sent with every request to the API (`Notion-Version`); a value may name
    /// settings or credential fields (`{business_unit_id}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Named provider quirks (see [`KNOWN_QUIRKS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quirks: Vec<String>,
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
        if self.auth_modes.contains(&AuthMode::OAuth1) && self.oauth1.is_none() {
            return bad("auth mode `oauth1` needs an [oauth1] section with its endpoints".into());
        }
        let mut seen = std::collections::HashSet::new();
        for f in self.settings.iter().chain(&self.credentials) {
            if !seen.insert(f.name.as_str()) {
                return bad(format!("field `{}` is declared twice", f.name));
            }
            if f.name == CONCURRENCY_LEVEL
                || f.name == BORROW_CONCURRENCY_FROM
                || f.name == HEALTH_CHECK_INTERVAL
            {
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
        crate::exchange::check_entry(self)?;
        if let Some(VerifySpec::Http {
            path, path_setting, ..
        }) = &self.verify
        {
            if path.is_none() == path_setting.is_none() {
                return bad("an http check needs exactly one of `path` or `path_setting`".into());
            }
        }
        for c in &self.categories {
            if !CATEGORIES.contains(&c.as_str()) {
                return bad(format!("unknown category `{c}`"));
            }
        }
        for q in &self.quirks {
            if !KNOWN_QUIRKS.contains(&q.as_str()) {
                return bad(format!("unknown quirk `{q}`"));
            }
        }
        if let Some(c) = &self.brand_color {
            if c.len() != 7 || !c.starts_with('#') || !c[1..].bytes().all(|b| b.is_ascii_hexdigit())
            {
                return bad(format!("brand_color `{c}` is not #RRGGBB"));
            }
        }
        if let Some(d) = &self.docs_url {
            if !d.starts_with("https://") {
                return bad("docs_url must be an https URL".into());
            }
        }
        let kept: Vec<String> = self.kept_names();
        for (what, t) in self.templates() {
            for (name, pos) in crate::template::placeholders(t) {
                let is_setting = self.setting(&name).is_some();
                let is_kept = kept.contains(&name);
                if pos == crate::template::Position::Origin && !is_kept {
                    return bad(format!(
                        "{what} opens with `{{{name}}}`, which is no kept token field"
                    ));
                }
                if !is_setting && !is_kept {
                    return bad(format!("{what} names `{{{name}}}`, which is no setting"));
                }
                if is_kept && !is_setting && what != "base_url" && what != "verify.path" {
                    return bad(format!(
                        "{what} names the token field `{{{name}}}`, known only after the grant"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The names of fields known after a grant: kept from the token answer, or learnt by quirks.
    pub fn kept_names(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .oauth
            .iter()
            .flat_map(|o| o.keep.keys().cloned())
            .chain(
                self.token_exchange
                    .iter()
                    .flat_map(|t| t.keep.keys().cloned()),
            )
            .collect();
        for (q, fields) in QUIRK_FIELDS {
            if self.quirks.iter().any(|x| x == q) {
                out.extend(fields.iter().map(|f| f.to_string()));
            }
        }
        out
    }

    /// Fills one of the entry's templates: settings whose values the catalog fixed (enum
    /// choices) may hold dots; every other value is checked to keep its host.
    pub fn fill(
        &self,
        template: &str,
        settings: &Map<String, Value>,
        kept: &BTreeMap<String, String>,
    ) -> Result<url::Url, CoreError> {
        let trusted: Vec<&str> = self
            .settings
            .iter()
            .filter(|f| f.kind == FieldType::Enum)
            .map(|f| f.name.as_str())
            .collect();
        crate::template::fill_trusting(template, settings, kept, &trusted)
    }

    /// Fills `{setting}` in a plain string (a scope, a token parameter, a header value).
    pub fn fill_text(&self, text: &str, settings: &Map<String, Value>) -> String {
        let mut out = text.to_string();
        for (k, v) in settings {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => continue,
            };
            out = out.replace(&format!("{{{k}}}"), &v);
        }
        out
    }

    /// Every URL template of the entry, with what it is.
    pub fn templates(&self) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        if let Some(b) = &self.base_url {
            out.push(("base_url", b.as_str()));
        }
        if let Some(VerifySpec::Http { path: Some(p), .. }) = &self.verify {
            out.push(("verify.path", p.as_str()));
        }
        if let Some(o) = &self.oauth1 {
            out.push(("oauth1.request_token_url", o.request_token_url.as_str()));
            out.push(("oauth1.authorize_url", o.authorize_url.as_str()));
            out.push(("oauth1.access_token_url", o.access_token_url.as_str()));
        }
        if let Some(o) = &self.oauth {
            for (what, t) in [
                ("oauth.authorize_url", &o.authorize_url),
                ("oauth.token_url", &o.token_url),
                ("oauth.revoke_url", &o.revoke_url),
            ] {
                if let Some(t) = t {
                    out.push((what, t.as_str()));
                }
            }
        }
        if let Some(sa) = &self.service_account {
            out.push(("service_account.token_url", sa.token_url.as_str()));
        }
        if let Some(te) = &self.token_exchange {
            out.push(("token_exchange.login_url", te.login_url.as_str()));
        }
        out
    }

    /// The main category (the first).
    pub fn category(&self) -> &str {
        self.categories
            .first()
            .map(String::as_str)
            .unwrap_or("generic")
    }
}
