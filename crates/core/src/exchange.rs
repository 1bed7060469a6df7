//! What a catalog entry says about the two auth modes whose token comes from the stored
//! credential alone: a service-account key file exchanged for an access token with a signed
//! JWT (Google's format), and credentials posted to a login endpoint for a session token.

use crate::catalog::{is_default_body, TokenBody};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `service_account` part of an entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccountSpec {
    /// The token endpoint the key files of this application name (Google:
    /// `https://oauth2.googleapis.com/token`). A key file naming another origin is refused,
    /// unless `any_token_url` is set.
    pub token_url: String,
    /// Whether a key file may name a token endpoint of another origin (it is then bound to the
    /// connection like any other destination).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub any_token_url: bool,
    /// The scopes asked for when the connection's `scopes` setting is empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub default_scopes: Vec<String>,
    /// How long a token is taken to last when the answer gives no `expires_in`.
    #[serde(default = "default_lifetime")]
    pub lifetime_seconds: i64,
}

/// The `token_exchange` part of an entry: where the credentials go and where the session token
/// is in the answer. The token is injected by the entry's `inject` rule (`{access_token}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenExchangeSpec {
    /// The login endpoint, a URL template filled from the settings.
    pub login_url: String,
    /// How the login request body is encoded: `form` or `json`.
    #[serde(default, skip_serializing_if = "is_default_body")]
    pub body: TokenBody,
    /// The body's fields: name (dotted for a nested JSON object, `credentials.name`) = a
    /// template over credential fields and settings (`{username}`).
    pub params: BTreeMap<String, String>,
    /// Where the session token is in the answer (dotted path).
    #[serde(default = "default_token_path")]
    pub token_path: String,
    /// Where the token's lifetime in seconds is in the answer (dotted path), if it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_path: Option<String>,
    /// How long a session is taken to last when the answer does not say.
    #[serde(default = "default_lifetime")]
    pub lifetime_seconds: i64,
    /// Fields of the answer to keep with the token (name = dotted path): never secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keep: BTreeMap<String, String>,
}

fn default_lifetime() -> i64 {
    3600
}

fn default_token_path() -> String {
    "access_token".into()
}

/// The longest session lifetime a catalog entry may declare (a day).
pub const MAX_LIFETIME_SECS: i64 = 24 * 3600;

impl TokenExchangeSpec {
    /// The credential and setting names the body templates use.
    pub fn placeholders(&self) -> Vec<String> {
        let mut out = vec![];
        for t in self.params.values() {
            for (name, _) in crate::template::placeholders(&format!("/{t}")) {
                if !out.contains(&name) {
                    out.push(name);
                }
            }
        }
        out
    }
}
