//! The OAuth 2.0 part of a catalog entry: endpoints, scopes, client authentication and where
//! the token answer keeps its fields.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The OAuth 2.0 part of an entry (Salesforce, Certinia, generic OAuth 2.0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuthSpec {
    /// Login hosts by account type (`production`, `sandbox`); empty for generic providers, whose
    /// URLs are settings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hosts: BTreeMap<String, String>,
    /// The authorization endpoint's path on the login host (see `hosts`); `None`:
    /// `/services/oauth2/authorize`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorize_path: Option<String>,
    /// The token endpoint's path on the login host (see `hosts`); `None`: `/services/oauth2/token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_path: Option<String>,
    /// The revocation endpoint's path on the login host (see `hosts`); `None`:
    /// `/services/oauth2/revoke`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_path: Option<String>,
    /// The path, on the `instance_url` the token answer names, that says who authorized;
    /// `None`: `/services/oauth2/userinfo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_path: Option<String>,
    /// Whether PKCE (RFC 7636, S256) is used by default.
    #[serde(default)]
    pub pkce: bool,
    /// Scopes requested when the connection has no `scopes` setting.
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
    /// `application/x-www-form-urlencoded`, as RFC 6749 says.
    #[default]
    Form,
    /// A JSON object, for providers that want one.
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
    /// Where the access token is; `None`: `access_token` at the top level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// Where the refresh token is; `None`: `refresh_token` at the top level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Where the lifetime in seconds is; `None`: `expires_in` at the top level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<String>,
    /// Where the granted scopes are; `None`: `scope` at the top level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Where the token type is; `None`: `token_type` at the top level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
}

impl TokenFields {
    /// The dotted path of a standard field (`access_token`, …): the configured one, or the field's own name.
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
