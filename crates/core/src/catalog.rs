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

/// Files embedded at build time (written by `build.rs` from the `catalog/` folder, so a new
/// file is embedded without touching this list).
const EMBEDDED: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/catalog_files.rs"));

/// The names of the settings every connection takes, whatever its application (R3).
pub const CONCURRENCY_LEVEL: &str = "concurrency_level";
pub const BORROW_CONCURRENCY_FROM: &str = "borrow_concurrency_from";
/// Seconds between background health checks of one connection (0: none), overriding
/// `LATCHKEY_HEALTH_INTERVAL`; common to every connection.
pub const HEALTH_CHECK_INTERVAL: &str = "health_check_interval_seconds";
/// The highest per-connection health interval accepted (one week).
pub const MAX_HEALTH_CHECK_INTERVAL: u64 = 7 * 24 * 3600;

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
        /// A good answer also has this JSON value at this pointer (RFC 6901), e.g. Slack's
        /// `/ok` = `true` (it answers 200 to a bad token).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect_pointer: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<serde_json::Value>)]
        expect_value: Option<Value>,
        /// A JSON body to send (a GraphQL query such as `{"query": "{ viewer { id } }"}`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
    },
    /// A PostgreSQL connection that runs `SELECT 1`.
    Postgres,
    /// A MySQL or MariaDB connection that runs `SELECT 1`.
    Mysql,
    /// An SSH handshake (the host key checked against the pinned fingerprint, or pinned) and a
    /// directory listing of the `path` setting over SFTP.
    Sftp,
    /// A Redis connection: `AUTH` (as the ACL user when a username is given), `SELECT` of the
    /// database, then `PING`.
    Redis,
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
    /// The authorization endpoint, a URL template filled from the connection's settings
    /// (`https://{subdomain}.zendesk.com/oauth/authorizations/new`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorize_url: Option<String>,
    /// The token endpoint (RFC 6749 §3.2), a URL template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// The revocation endpoint (RFC 7009), a URL template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_url: Option<String>,
    /// What joins scopes in the `scope` parameter: a space by RFC 6749 §3.3, a comma for
    /// some providers.
    #[serde(default = "default_scope_separator")]
    pub scope_separator: String,
    /// How the client authenticates at the token endpoint (RFC 6749 §2.3.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_auth: Option<ClientAuthMethod>,
    /// Extra query parameters of the authorization request (`access_type = "offline"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub authorize_params: BTreeMap<String, String>,
    /// Extra form parameters of every token request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub token_params: BTreeMap<String, String>,
    /// How the token request body is encoded: `form` (RFC 6749) or `json`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub token_body: TokenBody,
    /// Where the token answer keeps its fields, when not at the top level by their RFC names.
    #[serde(default, skip_serializing_if = "is_default")]
    pub token_fields: TokenFields,
    /// Extra fields of the token answer to keep with the grant (name = dotted path), such as
    /// `instance_url` or a team id. A kept field may open the API base template.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keep: BTreeMap<String, String>,
    /// Whether refresh tokens rotate (each refresh answers a new one and the old one dies),
    /// are reused, or do not exist (the access token does not expire).
    #[serde(default, skip_serializing_if = "is_default")]
    pub refresh: RefreshStyle,
}

fn default_scope_separator() -> String {
    " ".into()
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

pub(crate) fn is_default_body(v: &TokenBody) -> bool {
    is_default(v)
}

/// Client authentication at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    /// HTTP Basic with the id and secret form-encoded first (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the request body.
    ClientSecretPost,
}

/// The encoding of a token request body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenBody {
    #[default]
    Form,
    Json,
}

/// What happens to refresh tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefreshStyle {
    /// The same refresh token serves again and again.
    #[default]
    Reuse,
    /// Every refresh answers a new refresh token; the old one stops working.
    Rotate,
    /// No refresh token: the access token lasts until revoked.
    None,
}

/// Dotted paths of the token answer's fields (`authed_user.access_token`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
}

impl TokenFields {
    pub fn path<'a>(&'a self, field: &'a str) -> &'a str {
        let p = match field {
            "access_token" => &self.access_token,
            "refresh_token" => &self.refresh_token,
            "expires_in" => &self.expires_in,
            "scope" => &self.scope,
            "token_type" => &self.token_type,
            _ => &None,
        };
        p.as_deref().unwrap_or(field)
    }
}

/// The value at a dotted path of a JSON document (`team.id`).
pub fn json_path<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |v, k| match v {
        Value::Object(m) => m.get(k),
        Value::Array(a) => k.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// How the credential goes on each request to the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InjectSpec {
    pub style: InjectStyle,
    /// The header or query parameter name (`header` and `query` styles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the value is, a template over the credential fields (`Token {api_key}`); for OAuth
    /// the access token is `{access_token}`. Default: `{access_token}` or `{api_key}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `basic` style: the user name and password templates (`{api_key}`, `X`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InjectStyle {
    /// `Authorization: Bearer <token>` (RFC 6750 §2.1).
    Bearer,
    Header,
    Query,
    /// HTTP Basic (RFC 7617).
    Basic,
}

/// Rate-limit headers the application sends (for callers and the proxy's back-off).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_header: Option<String>,
    /// How the reset header counts: `seconds` (the default) or `milliseconds` from now, a
    /// `duration` from now (`6m0s`), `epoch` seconds or `epoch_ms` milliseconds since 1970.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_style: Option<String>,
    /// Whether a 429 carries `Retry-After`.
    #[serde(default)]
    pub retry_after: bool,
}

/// How the application pages its lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaginationSpec {
    /// `cursor`, `offset`, `page`, `link_header` or `none`.
    pub style: String,
    /// The request parameter carrying the cursor, offset or page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_param: Option<String>,
    /// Where the next cursor is in the answer (dotted path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_path: Option<String>,
}

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
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Where the picker lists it (see [`CATEGORIES`]); the first is the main one.
    #[serde(default)]
    pub categories: Vec<String>,
    /// `#RRGGBB`: the background of the application's monogram (no logo is fetched).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand_color: Option<String>,
    pub auth_modes: Vec<AuthMode>,
    /// The API base when it is fixed, a URL template filled from settings
    /// (`https://{subdomain}.zendesk.com/api/v2`) or from a kept token field
    /// (`{api_domain}/crm/v6`); otherwise a `base_url` setting holds it.
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
    /// Service-account key files (auth mode `service_account`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<crate::exchange::ServiceAccountSpec>,
    /// The login endpoint of auth mode `token_exchange`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_exchange: Option<crate::exchange::TokenExchangeSpec>,
    /// The OAuth 1.0a endpoints, for the three-legged `oauth1` mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth1: Option<crate::signed::OAuth1Spec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs_url: Option<String>,
    /// How the credential is put on requests; default: bearer for OAuth, the `api_key_*`
    /// settings for API keys, HTTP Basic for user and password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inject: Option<InjectSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
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

    /// Checks that every setting the entry's URL templates name has a value that keeps the
    /// request on the application's host.
    fn check_template_settings(&self, settings: &Map<String, Value>) -> Result<(), CoreError> {
        for (_, t) in self.templates() {
            for (name, pos) in crate::template::placeholders(t) {
                let Some(spec) = self.setting(&name) else {
                    continue;
                };
                let field = format!("settings.{name}");
                if spec.kind == FieldType::Enum && settings.contains_key(&name) {
                    continue;
                }
                match settings.get(&name) {
                    Some(Value::String(v)) => crate::template::check_value(&field, &name, v, pos)?,
                    Some(Value::Number(n)) => {
                        crate::template::check_value(&field, &name, &n.to_string(), pos)?
                    }
                    _ => {
                        return Err(CoreError::invalid_with_hint(
                            field,
                            format!(
                                "the setting `{name}` is missing: {}'s URLs need it",
                                self.name
                            ),
                            format!("give settings.{name}"),
                        ))
                    }
                }
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
            if k == CONCURRENCY_LEVEL
                || k == BORROW_CONCURRENCY_FROM
                || k == HEALTH_CHECK_INTERVAL
                || v.is_null()
            {
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
        if mode.is_direct() {
            // Latchkey never proxies a database or an SFTP server: no concurrency level, none shared.
            if matches!(input.get(BORROW_CONCURRENCY_FROM), Some(v) if !v.is_null()) {
                return Err(CoreError::invalid_with_hint(
                    "settings.borrow_concurrency_from",
                    format!("a {} connection cannot borrow concurrency", if mode == AuthMode::Sftp { "SFTP" } else { "database" }),
                    "Latchkey does not proxy databases or SFTP servers, so their connections have no concurrency to share",
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
        self.check_template_settings(&out)?;
        out.insert(CONCURRENCY_LEVEL.into(), Value::from(level));
        match input.get(HEALTH_CHECK_INTERVAL) {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_u64() {
                Some(n) if n == 0 || (5..=MAX_HEALTH_CHECK_INTERVAL).contains(&n) => {
                    out.insert(HEALTH_CHECK_INTERVAL.into(), Value::from(n));
                }
                _ => {
                    return Err(CoreError::invalid_with_hint(
                        "settings.health_check_interval_seconds",
                        "the health check interval must be 0 (no checks) or a whole number of seconds from 5 to 604800",
                        "leave it out to use LATCHKEY_HEALTH_INTERVAL",
                    ))
                }
            },
        }
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
                HEALTH_CHECK_INTERVAL.to_string(),
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
