//! How a connection's credential is put on an outbound request: the API key in a header or a
//! query parameter, HTTP Basic (RFC 7617), or a bearer token (RFC 6750). Used by verification
//! and, later, by the proxy.

use base64::Engine;
use http::{HeaderName, HeaderValue};
use latchkey_core::catalog::{AppEntry, FieldType, InjectSpec, InjectStyle};
use latchkey_core::model::AuthMode;
use latchkey_core::scrub::Scrubber;
use latchkey_core::secret::SecretFields;
use latchkey_core::CoreError;
use serde_json::{Map, Value};
use url::Url;

/// What to add to a request. Header values are marked sensitive so that no debug print of the
/// request shows them.
pub struct Injection {
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub query: Option<(String, String)>,
    /// Every form of the injected secret, for what comes back.
    pub scrubber: std::sync::Arc<Scrubber>,
    /// For the signed modes (OAuth 1.0a, AWS SigV4): what signs each request just before it is
    /// sent; the headers above then hold only the entry's fixed headers.
    pub signer: Option<std::sync::Arc<crate::signing::Signer>>,
}

impl Injection {
    pub fn apply_to_url(&self, url: &mut Url) {
        if let Some((k, v)) = &self.query {
            url.query_pairs_mut().append_pair(k, v);
        }
    }
}

fn setting<'a>(settings: &'a Map<String, Value>, name: &str, default: &'a str) -> &'a str {
    settings
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or(default)
}

fn sensitive(v: String) -> Result<HeaderValue, CoreError> {
    let mut hv = HeaderValue::from_str(&v).map_err(|_| {
        CoreError::invalid(
            "credentials",
            "the credential contains characters that cannot go in an HTTP header",
        )
    })?;
    hv.set_sensitive(true);
    Ok(hv)
}

/// Checks, when a connection is created or edited, the settings that become part of a request
/// line or a header: `api_key_name` must be a header name (RFC 9110 §5.1 token) or a plain query
/// parameter name, `api_key_prefix` a header value without control characters.
pub fn check_settings(mode: AuthMode, settings: &Map<String, Value>) -> Result<(), CoreError> {
    if mode != AuthMode::ApiKey {
        return Ok(());
    }
    let name = setting(settings, "api_key_name", "X-API-Key");
    let prefix = setting(settings, "api_key_prefix", "");
    let in_query = setting(settings, "api_key_in", "header") == "query";
    let name_ok = !name.is_empty()
        && name.len() <= 256
        && if in_query {
            name.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '[' | ']')
            })
        } else {
            HeaderName::from_bytes(name.as_bytes()).is_ok()
        };
    if !name_ok {
        return Err(CoreError::invalid_with_hint(
            "settings.api_key_name",
            format!(
                "`{}` is not a valid {} name",
                name.chars().take(100).collect::<String>().escape_debug(),
                if in_query {
                    "query parameter"
                } else {
                    "header"
                }
            ),
            "use letters, digits and dashes, e.g. X-API-Key or Authorization",
        ));
    }
    let prefix_ok = prefix.len() <= 256
        && prefix
            .bytes()
            .all(|b| b == b' ' || b == b'\t' || (0x21..0x7f).contains(&b));
    if !prefix_ok {
        return Err(CoreError::invalid_with_hint(
            "settings.api_key_prefix",
            "the prefix must be printable ASCII without line breaks (at most 256 characters)",
            "for example `Bearer ` (with the space)",
        ));
    }
    Ok(())
}

/// Fills `{field}` placeholders of an injection value from the credential fields (and the
/// access token, as `access_token`).
fn fill_value(template: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|i| open + i) else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str(&lookup(&rest[open + 1..close]).unwrap_or_default());
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// The injection a catalog rule describes.
fn by_rule(
    rule: &InjectSpec,
    default_value: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Injection, CoreError> {
    let value = fill_value(rule.value.as_deref().unwrap_or(default_value), lookup);
    match rule.style {
        InjectStyle::Bearer => Ok(Injection {
            headers: vec![(
                http::header::AUTHORIZATION,
                sensitive(format!("Bearer {value}"))?,
            )],
            query: None,
            scrubber: Default::default(),
            signer: None,
        }),
        InjectStyle::Header => {
            let name = rule.name.as_deref().unwrap_or("Authorization");
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                CoreError::invalid("inject.name", format!("`{name}` is not a header name"))
            })?;
            Ok(Injection {
                headers: vec![(header, sensitive(value)?)],
                query: None,
                scrubber: Default::default(),
                signer: None,
            })
        }
        InjectStyle::Query => Ok(Injection {
            headers: vec![],
            query: Some((rule.name.clone().unwrap_or_else(|| "key".into()), value)),
            scrubber: Default::default(),
            signer: None,
        }),
        InjectStyle::Basic => {
            let user = fill_value(rule.username.as_deref().unwrap_or(default_value), lookup);
            let pass = fill_value(rule.password.as_deref().unwrap_or(""), lookup);
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            Ok(Injection {
                headers: vec![(
                    http::header::AUTHORIZATION,
                    sensitive(format!("Basic {encoded}"))?,
                )],
                query: None,
                scrubber: Default::default(),
                signer: None,
            })
        }
    }
}

/// The entry's fixed headers, their `{name}` placeholders filled from the settings and the
/// credential fields (values from credentials are marked sensitive).
pub fn fixed_headers(
    app: &AppEntry,
    settings: &Map<String, Value>,
    creds: &SecretFields,
) -> Result<Vec<(HeaderName, HeaderValue)>, CoreError> {
    let mut out = Vec::new();
    for (name, template) in &app.headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| CoreError::invalid("headers", format!("`{name}` is not a header name")))?;
        let secret = creds
            .names()
            .any(|n| template.contains(&format!("{{{n}}}")));
        let value = fill_value(template, &|k: &str| {
            creds
                .expose(k)
                .map(str::to_string)
                .or_else(|| match settings.get(k) {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                })
        });
        let mut hv = HeaderValue::from_str(&value).map_err(|_| {
            CoreError::invalid(
                "headers",
                format!("the value of header `{name}` cannot go in an HTTP header"),
            )
        })?;
        hv.set_sensitive(secret);
        out.push((header, hv));
    }
    Ok(out)
}

/// The injection of an OAuth access token: the entry's rule, or `Authorization: Bearer`.
pub fn for_token(app: &AppEntry, token: &str) -> Result<Injection, CoreError> {
    let mut scrubber = Scrubber::new();
    scrubber.add(token);
    for_token_scrubbed(app, token, std::sync::Arc::new(scrubber))
}

/// [`for_token`] with a scrubber already built for the token (a token set keeps one, so that
/// its patterns and automaton are not built again for every proxied request).
pub fn for_token_scrubbed(
    app: &AppEntry,
    token: &str,
    scrubber: std::sync::Arc<Scrubber>,
) -> Result<Injection, CoreError> {
    let mut inj = token_rule(app, token)?;
    inj.scrubber = scrubber;
    Ok(inj)
}

fn token_rule(app: &AppEntry, token: &str) -> Result<Injection, CoreError> {
    let bearer = InjectSpec {
        style: InjectStyle::Bearer,
        name: None,
        value: None,
        username: None,
        password: None,
    };
    let rule = app.inject.as_ref().unwrap_or(&bearer);
    by_rule(rule, "{access_token}", &|k| {
        (k == "access_token").then(|| token.to_string())
    })
}

/// The injection for a non-OAuth connection: the entry's rule when it has one, else the
/// generic `api_key_*` settings or HTTP Basic. It carries a scrubber for every secret field.
pub fn for_static(
    app: &AppEntry,
    mode: AuthMode,
    settings: &Map<String, Value>,
    creds: &SecretFields,
) -> Result<Injection, CoreError> {
    let mut inj = match crate::signing::Signer::of(mode, settings, creds)? {
        Some(signer) => Injection {
            headers: fixed_headers(app, settings, creds)?,
            query: None,
            scrubber: Default::default(),
            signer: Some(std::sync::Arc::new(signer)),
        },
        None => static_rule(app, mode, settings, creds)?,
    };
    let mut scrubber = scrubber_for(app, mode, creds);
    if let Some(k) = creds.expose("api_key") {
        scrubber.add(k);
    }
    inj.scrubber = std::sync::Arc::new(scrubber);
    Ok(inj)
}

/// A scrubber for everything secret in a connection's credential fields: the fields the
/// catalog marks secret, and HTTP Basic's `username:password`.
pub fn scrubber_for(app: &AppEntry, mode: AuthMode, creds: &SecretFields) -> Scrubber {
    let mut s = Scrubber::new();
    for f in app.credential_fields(mode) {
        if matches!(f.kind, FieldType::Secret | FieldType::SecretText) {
            if let Some(v) = creds.expose(&f.name) {
                s.add(v);
            }
        }
    }
    if let (Some(u), Some(p)) = (creds.expose("username"), creds.expose("password")) {
        s.add_pair(u, p);
    }
    s
}

fn static_rule(
    app: &AppEntry,
    mode: AuthMode,
    settings: &Map<String, Value>,
    creds: &SecretFields,
) -> Result<Injection, CoreError> {
    if let Some(rule) = &app.inject {
        let default = if mode == AuthMode::Basic {
            "{username}"
        } else {
            "{api_key}"
        };
        let lookup = |k: &str| -> Option<String> {
            creds
                .expose(k)
                .map(str::to_string)
                .or_else(|| settings.get(k).and_then(Value::as_str).map(str::to_string))
        };
        let mut rule = rule.clone();
        if mode == AuthMode::Basic && rule.style == InjectStyle::Basic && rule.password.is_none() {
            rule.password = Some("{password}".into());
        }
        let mut inj = by_rule(&rule, default, &lookup)?;
        inj.headers.extend(fixed_headers(app, settings, creds)?);
        return Ok(inj);
    }
    if mode == AuthMode::ApiKey && app.setting("api_key_name").is_none() {
        // A catalog entry with an API key and no rule of its own: a bearer token.
        let bearer = InjectSpec {
            style: InjectStyle::Bearer,
            name: None,
            value: None,
            username: None,
            password: None,
        };
        let mut inj = by_rule(&bearer, "{api_key}", &|k| {
            creds.expose(k).map(str::to_string)
        })?;
        inj.headers.extend(fixed_headers(app, settings, creds)?);
        return Ok(inj);
    }
    if !app.headers.is_empty() {
        let mut inj = for_generic(mode, settings, creds)?;
        inj.headers.extend(fixed_headers(app, settings, creds)?);
        return Ok(inj);
    }
    for_generic(mode, settings, creds)
}

fn for_generic(
    mode: AuthMode,
    settings: &Map<String, Value>,
    creds: &SecretFields,
) -> Result<Injection, CoreError> {
    match mode {
        AuthMode::ApiKey => {
            let key = creds.expose("api_key").unwrap_or_default();
            let name = setting(settings, "api_key_name", "X-API-Key");
            let prefix = setting(settings, "api_key_prefix", "");
            if setting(settings, "api_key_in", "header") == "query" {
                Ok(Injection {
                    headers: vec![],
                    query: Some((name.to_string(), format!("{prefix}{key}"))),
                    scrubber: Default::default(),
                    signer: None,
                })
            } else {
                let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    CoreError::invalid(
                        "settings.api_key_name",
                        format!("`{name}` is not a valid header name"),
                    )
                })?;
                Ok(Injection {
                    headers: vec![(header, sensitive(format!("{prefix}{key}"))?)],
                    query: None,
                    scrubber: Default::default(),
                    signer: None,
                })
            }
        }
        AuthMode::Basic => {
            let user = creds.expose("username").unwrap_or_default();
            let pass = creds.expose("password").unwrap_or_default();
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            Ok(Injection {
                headers: vec![(
                    http::header::AUTHORIZATION,
                    sensitive(format!("Basic {encoded}"))?,
                )],
                query: None,
                scrubber: Default::default(),
                signer: None,
            })
        }
        other => Err(CoreError::invalid(
            "auth_mode",
            format!("auth mode `{other}` has no static credential to inject"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn app() -> AppEntry {
        latchkey_core::catalog::Catalog::embedded()
            .get("generic-api-key")
            .unwrap()
            .clone()
    }

    #[test]
    fn catalog_rules() {
        let cat = latchkey_core::catalog::Catalog::embedded();
        for e in cat.iter() {
            if let Some(rule) = &e.inject {
                if rule.style == InjectStyle::Basic && e.auth_modes.contains(&AuthMode::ApiKey) {
                    let inj = for_static(
                        e,
                        AuthMode::ApiKey,
                        &Map::new(),
                        &creds(json!({"api_key": "k"})),
                    )
                    .unwrap();
                    assert!(inj.headers[0].1.to_str().unwrap().starts_with("Basic "));
                }
            }
        }
        let rule = InjectSpec {
            style: InjectStyle::Header,
            name: Some("Authorization".into()),
            value: Some("Token token={api_key}".into()),
            username: None,
            password: None,
        };
        let mut e = app();
        e.inject = Some(rule);
        let inj = for_static(
            &e,
            AuthMode::ApiKey,
            &Map::new(),
            &creds(json!({"api_key": "k1"})),
        )
        .unwrap();
        assert_eq!(inj.headers[0].1, "Token token=k1");
    }

    fn creds(v: serde_json::Value) -> SecretFields {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn api_key_in_header_with_prefix_and_in_query() {
        let s = json!({"api_key_in": "header", "api_key_name": "Authorization", "api_key_prefix": "Bearer "});
        let inj = for_static(
            &app(),
            AuthMode::ApiKey,
            s.as_object().unwrap(),
            &creds(json!({"api_key": "k1"})),
        )
        .unwrap();
        assert_eq!(inj.headers[0].0, "authorization");
        assert_eq!(inj.headers[0].1, "Bearer k1");
        assert!(inj.headers[0].1.is_sensitive());
        let s = json!({"api_key_in": "query", "api_key_name": "key"});
        let inj = for_static(
            &app(),
            AuthMode::ApiKey,
            s.as_object().unwrap(),
            &creds(json!({"api_key": "k 2"})),
        )
        .unwrap();
        let mut url = Url::parse("https://api.example.com/x?a=1").unwrap();
        inj.apply_to_url(&mut url);
        assert_eq!(url.as_str(), "https://api.example.com/x?a=1&key=k+2");
    }

    #[test]
    fn header_valued_settings_are_checked() {
        for bad in [
            json!({"api_key_name": "X Key"}),
            json!({"api_key_name": "X-Key\r\nX-Other: 1"}),
            json!({"api_key_name": ""}),
            json!({"api_key_prefix": "Bearer\r\nX-Injected: 1 "}),
            json!({"api_key_prefix": "Bé "}),
            json!({"api_key_in": "query", "api_key_name": "a&b=c"}),
        ] {
            assert!(
                check_settings(AuthMode::ApiKey, bad.as_object().unwrap()).is_err(),
                "{bad}"
            );
        }
        let ok = json!({"api_key_name": "Authorization", "api_key_prefix": "Bearer "});
        assert!(check_settings(AuthMode::ApiKey, ok.as_object().unwrap()).is_ok());
    }

    #[test]
    fn basic_auth() {
        let inj = for_static(
            &app(),
            AuthMode::Basic,
            &Map::new(),
            &creds(json!({"username": "u", "password": "p:w"})),
        )
        .unwrap();
        assert_eq!(inj.headers[0].1, "Basic dTpwOnc=");
    }
}
