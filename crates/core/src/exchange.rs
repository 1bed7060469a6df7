//! What a catalog entry says about the two auth modes whose token comes from the stored
//! credential alone: a service-account key file exchanged for an access token with a signed
//! JWT (Google's format), and credentials posted to a login endpoint for a session token.

use crate::catalog::{is_default_body, AppEntry, TokenBody};
use crate::model::AuthMode;
use crate::CoreError;
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

/// The `service_account` and `token_exchange` parts are there exactly when their auth
/// mode is, and name only fields the entry has.
pub(crate) fn check_entry(app: &AppEntry) -> Result<(), CoreError> {
    let bad = |m: String| {
        Err(CoreError::invalid(
            "catalog",
            format!("catalog entry `{}`: {m}", app.id),
        ))
    };
    let sa = app.auth_modes.contains(&AuthMode::ServiceAccount);
    if sa != app.service_account.is_some() {
        return bad(
            "auth mode `service_account` and the [service_account] table go together".into(),
        );
    }
    if let Some(s) = &app.service_account {
        if !s.token_url.starts_with("https://") || !s.token_url.contains('.') {
            return bad("service_account.token_url must be an https URL".into());
        }
        if !(1..=crate::exchange::MAX_LIFETIME_SECS).contains(&s.lifetime_seconds) {
            return bad("service_account.lifetime_seconds is out of range".into());
        }
        if !app
            .credential_fields(AuthMode::ServiceAccount)
            .any(|f| f.name == "key_json")
        {
            return bad("auth mode `service_account` needs the credential field `key_json`".into());
        }
    }
    let te = app.auth_modes.contains(&AuthMode::TokenExchange);
    if te != app.token_exchange.is_some() {
        return bad("auth mode `token_exchange` and the [token_exchange] table go together".into());
    }
    if let Some(t) = &app.token_exchange {
        if !(1..=crate::exchange::MAX_LIFETIME_SECS).contains(&t.lifetime_seconds) {
            return bad("token_exchange.lifetime_seconds is out of range".into());
        }
        if t.params.is_empty() {
            return bad("token_exchange.params is empty: the login sends nothing".into());
        }
        for name in t.placeholders() {
            let is_cred = app
                .credential_fields(AuthMode::TokenExchange)
                .any(|f| f.name == name);
            if !is_cred && app.setting(&name).is_none() {
                return bad(format!(
                    "token_exchange.params names `{{{name}}}`, which is no credential field or setting"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::catalog::AppEntry;

    const BASE: &str = "id = \"x\"\nname = \"X\"\nbase_url = \"https://api.x.test\"\n";

    #[test]
    fn a_mode_and_its_table_go_together() {
        let err = AppEntry::from_toml(&format!("{BASE}auth_modes = [\"service_account\"]\n"))
            .unwrap_err();
        assert!(err.to_string().contains("[service_account]"), "{err}");
        let no_key = format!(
            "{BASE}auth_modes = [\"service_account\"]\n[service_account]\ntoken_url = \"https://oauth2.x.test/token\"\n"
        );
        assert!(AppEntry::from_toml(&no_key)
            .unwrap_err()
            .to_string()
            .contains("key_json"));
        let ok = format!("{no_key}[[credentials]]\nname = \"key_json\"\nlabel = \"Key\"\ntype = \"secret_text\"\nrequired = true\n");
        let e = AppEntry::from_toml(&ok).unwrap();
        assert_eq!(e.service_account.unwrap().lifetime_seconds, 3600);
    }

    #[test]
    fn login_params_name_only_fields_of_the_entry() {
        let entry = |param: &str| {
            format!(
                "{BASE}auth_modes = [\"token_exchange\"]\n[token_exchange]\nlogin_url = \"https://{{host}}.x.test/login\"\nparams = {{ user = \"{param}\" }}\n[[settings]]\nname = \"host\"\nlabel = \"Host\"\ntype = \"string\"\nrequired = true\n[[credentials]]\nname = \"username\"\nlabel = \"User\"\ntype = \"string\"\n"
            )
        };
        assert!(AppEntry::from_toml(&entry("{username}")).is_ok());
        let err = AppEntry::from_toml(&entry("{pasword}")).unwrap_err();
        assert!(err.to_string().contains("pasword"), "{err}");
    }
}
