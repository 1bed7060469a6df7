//! Where a connection's OAuth requests go, worked out from its catalog entry and settings:
//! Salesforce and Certinia by account type and My Domain site, any other provider by the URLs
//! in its settings.

use crate::error::{ApiError, ApiResult};
use latchkey_core::catalog::{
    AppEntry, ClientAuthMethod, OAuthSpec, RefreshStyle, TokenBody, TokenFields,
};
use latchkey_core::model::AuthMode;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use url::Url;

/// Salesforce's scopes that yield a refresh token.
const REFRESH_SCOPES: &[&str] = &["refresh_token", "offline_access"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic with RFC 6749 §2.3.1 form-encoding of id and secret.
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Post,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Salesforce,
    Generic,
}

/// The endpoints and habits of one connection's provider.
#[derive(Debug, Clone)]
pub struct Provider {
    pub flavor: Flavor,
    pub authorize_url: Option<Url>,
    pub token_url: Url,
    pub revoke_url: Option<Url>,
    /// Salesforce: the path of userinfo on the instance.
    pub userinfo_path: Option<String>,
    /// JWT bearer audience (Salesforce: the login host of the account type).
    pub audience: Option<String>,
    pub pkce: bool,
    pub client_auth: ClientAuth,
    pub scopes: Vec<String>,
    pub extra_authorize_params: Vec<(String, String)>,
    /// Salesforce session timeout: a token carries no expiry, so it is taken to last this long.
    pub session_timeout_secs: i64,
    /// What joins scopes in the `scope` parameter.
    pub scope_separator: String,
    /// Extra form parameters of every token request.
    pub token_params: Vec<(String, String)>,
    pub token_body: TokenBody,
    pub token_fields: TokenFields,
    /// Token answer fields to keep (name = dotted path).
    pub keep: BTreeMap<String, String>,
    pub refresh: RefreshStyle,
    /// Named quirks of the provider (see `crate::quirks`).
    pub quirks: Vec<String>,
}

impl Provider {
    /// The provider with the conventions of RFC 6749 and nothing else.
    pub fn plain(flavor: Flavor, token_url: Url) -> Self {
        Provider {
            flavor,
            authorize_url: None,
            token_url,
            revoke_url: None,
            userinfo_path: None,
            audience: None,
            pkce: true,
            client_auth: ClientAuth::Basic,
            scopes: vec![],
            extra_authorize_params: vec![],
            session_timeout_secs: 3600,
            scope_separator: " ".into(),
            token_params: vec![],
            token_body: TokenBody::Form,
            token_fields: TokenFields::default(),
            keep: BTreeMap::new(),
            refresh: RefreshStyle::Reuse,
            quirks: vec![],
        }
    }

    pub fn has_quirk(&self, name: &str) -> bool {
        self.quirks.iter().any(|q| q == name)
    }

    /// The `scope` parameter's value.
    pub fn scope_param(&self) -> String {
        self.scopes.join(&self.scope_separator)
    }
}

fn s<'a>(settings: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    settings
        .get(k)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
}

fn url(field: &str, v: &str) -> ApiResult<Url> {
    Url::parse(v).map_err(|_| ApiError::invalid(field, format!("`{v}` is not a valid URL")))
}

pub fn is_salesforce(app: &AppEntry) -> bool {
    app.oauth.as_ref().is_some_and(|o| !o.hosts.is_empty())
}

/// Checks a Salesforce My Domain site as salesforce.md says: a bare host ending in
/// `.my.salesforce.com` (the sandbox form `NAME--SANDBOX.sandbox.my.salesforce.com` included).
pub fn check_site(site: &str) -> ApiResult<String> {
    let bad = |msg: &str| {
        Err(ApiError::invalid("settings.site", msg.to_string())
            .hint("enter the My Domain host alone, e.g. mycompany.my.salesforce.com (Setup > My Domain shows it)"))
    };
    let site = site.trim();
    if site.contains("://") {
        return bad("the site must not include a scheme such as https://");
    }
    if site.contains('/') {
        return bad("the site must not contain slashes");
    }
    let lower = site.to_ascii_lowercase();
    if lower.ends_with(".lightning.force.com") {
        return bad("that is the Lightning Experience host; the site is the My Domain host ending in .my.salesforce.com");
    }
    if !lower.ends_with(".my.salesforce.com")
        || lower.len() <= ".my.salesforce.com".len()
        || !lower
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        || lower.contains("..")
    {
        return bad("the site must be a My Domain host in *.my.salesforce.com form");
    }
    Ok(lower)
}

impl Provider {
    pub fn for_connection(
        app: &AppEntry,
        mode: AuthMode,
        settings: &Map<String, Value>,
    ) -> ApiResult<Self> {
        let oauth = app.oauth.as_ref().ok_or_else(|| {
            ApiError::invalid("app", format!("`{}` has no OAuth support", app.id))
        })?;
        let scopes: Vec<String> = match settings.get("scopes") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => oauth.default_scopes.clone(),
        };
        if is_salesforce(app) {
            return Self::salesforce(oauth, mode, settings, scopes);
        }
        if let Some(token_t) = &oauth.token_url {
            return Self::from_entry(app, oauth, token_t, settings, &scopes);
        }
        Self::from_settings(oauth, settings, scopes)
    }

    /// Salesforce: the login host of the account type, or the My Domain site.
    fn salesforce(
        oauth: &OAuthSpec,
        mode: AuthMode,
        settings: &Map<String, Value>,
        scopes: Vec<String>,
    ) -> ApiResult<Self> {
        let account = s(settings, "account_type").unwrap_or("production");
        let login = oauth.hosts.get(account).ok_or_else(|| {
            ApiError::invalid(
                "settings.account_type",
                format!("unknown account type `{account}`"),
            )
        })?;
        let host = match s(settings, "site") {
            Some(site) => format!("https://{}", check_site(site)?),
            None if mode == AuthMode::OAuth2ClientCredentials => {
                return Err(ApiError::invalid("settings.site", "client credentials need the My Domain site")
                    .hint("Salesforce only answers the client credentials flow on the My Domain host (NAME.my.salesforce.com), not on login or test"))
            }
            None => login.clone(),
        };
        let path = |p: &Option<String>, d: &str| format!("{host}{}", p.as_deref().unwrap_or(d));
        let timeout = settings
            .get("session_timeout_seconds")
            .and_then(Value::as_i64)
            .unwrap_or(7200);
        Ok(Provider {
            authorize_url: Some(url(
                "settings.site",
                &path(&oauth.authorize_path, "/services/oauth2/authorize"),
            )?),
            revoke_url: Some(url(
                "settings.site",
                &path(&oauth.revoke_path, "/services/oauth2/revoke"),
            )?),
            userinfo_path: oauth.userinfo_path.clone(),
            audience: Some(login.clone()),
            pkce: oauth.pkce,
            client_auth: ClientAuth::Post,
            scopes,
            extra_authorize_params: vec![("prompt".into(), "login consent".into())],
            session_timeout_secs: timeout,
            ..Provider::plain(
                Flavor::Salesforce,
                url(
                    "settings.site",
                    &path(&oauth.token_path, "/services/oauth2/token"),
                )?,
            )
        })
    }

    /// A catalog entry that names its endpoints: templates filled from the settings (whose
    /// values were checked to keep each request on the provider's host).
    fn from_entry(
        app: &AppEntry,
        oauth: &OAuthSpec,
        token_t: &str,
        settings: &Map<String, Value>,
        scopes: &[String],
    ) -> ApiResult<Self> {
        let kept = BTreeMap::new();
        let fill = |t: &str| app.fill(t, settings, &kept).map_err(ApiError::from);
        Ok(Provider {
            authorize_url: oauth.authorize_url.as_deref().map(fill).transpose()?,
            revoke_url: oauth.revoke_url.as_deref().map(fill).transpose()?,
            pkce: oauth.pkce,
            client_auth: match oauth.client_auth {
                Some(ClientAuthMethod::ClientSecretPost) => ClientAuth::Post,
                _ => ClientAuth::Basic,
            },
            scopes: scopes.iter().map(|s| app.fill_text(s, settings)).collect(),
            extra_authorize_params: oauth
                .authorize_params
                .iter()
                .map(|(k, v)| (k.clone(), app.fill_text(v, settings)))
                .collect(),
            scope_separator: oauth.scope_separator.clone(),
            token_params: oauth
                .token_params
                .iter()
                .map(|(k, v)| (k.clone(), app.fill_text(v, settings)))
                .collect(),
            token_body: oauth.token_body,
            token_fields: oauth.token_fields.clone(),
            keep: oauth.keep.clone(),
            refresh: oauth.refresh,
            quirks: app.quirks.clone(),
            ..Provider::plain(Flavor::Generic, fill(token_t)?)
        })
    }

    /// A generic OAuth connection whose endpoints are in its settings.
    fn from_settings(
        oauth: &OAuthSpec,
        settings: &Map<String, Value>,
        scopes: Vec<String>,
    ) -> ApiResult<Self> {
        let token_url = url(
            "settings.token_url",
            s(settings, "token_url")
                .ok_or_else(|| ApiError::invalid("settings.token_url", "token_url is required"))?,
        )?;
        let authorize_url = match s(settings, "authorization_url") {
            Some(u) => Some(url("settings.authorization_url", u)?),
            None => None,
        };
        let revoke_url = match s(settings, "revocation_url") {
            Some(u) => Some(url("settings.revocation_url", u)?),
            None => None,
        };
        let extra = match settings.get("authorize_params") {
            Some(Value::Object(m)) => m
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect(),
            _ => vec![],
        };
        Ok(Provider {
            authorize_url,
            revoke_url,
            pkce: settings
                .get("pkce")
                .and_then(Value::as_bool)
                .unwrap_or(oauth.pkce),
            client_auth: if s(settings, "client_auth") == Some("client_secret_post") {
                ClientAuth::Post
            } else {
                ClientAuth::Basic
            },
            scopes,
            extra_authorize_params: extra,
            ..Provider::plain(Flavor::Generic, token_url)
        })
    }

    /// Whether the scopes asked for yield a refresh token (Salesforce issues none otherwise).
    pub fn asks_refresh_token(&self) -> bool {
        self.flavor != Flavor::Salesforce
            || self
                .scopes
                .iter()
                .any(|s| REFRESH_SCOPES.contains(&s.as_str()))
    }
}

/// The org and user ids in a Salesforce identity URL (`…/id/{orgId}/{userId}`).
pub fn parse_identity_url(id: &str) -> Option<(String, String)> {
    let u = Url::parse(id).ok()?;
    let mut seg = u.path_segments()?;
    if seg.next()? != "id" {
        return None;
    }
    let org = seg.next()?.to_string();
    let user = seg.next()?.to_string();
    Some((org, user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites() {
        assert_eq!(
            check_site("Acme.my.salesforce.com").unwrap(),
            "acme.my.salesforce.com"
        );
        assert!(check_site("acme--uat.sandbox.my.salesforce.com").is_ok());
        for bad in [
            "https://acme.my.salesforce.com",
            "acme.my.salesforce.com/",
            "acme.lightning.force.com",
            "login.salesforce.com",
            ".my.salesforce.com",
            "a b.my.salesforce.com",
        ] {
            assert!(check_site(bad).is_err(), "{bad} accepted");
        }
        let e = check_site("https://acme.my.salesforce.com").unwrap_err();
        assert!(e.message.contains("scheme"));
    }

    #[test]
    fn identity_url() {
        assert_eq!(
            parse_identity_url(
                "https://login.salesforce.com/id/00Dxx0000001gEREAY/005xx000001SwiUAAS"
            ),
            Some(("00Dxx0000001gEREAY".into(), "005xx000001SwiUAAS".into()))
        );
        assert_eq!(parse_identity_url("https://x/other/a/b"), None);
    }
}
