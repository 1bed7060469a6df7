//! How a connection's credential is put on an outbound request: the API key in a header or a
//! query parameter, HTTP Basic (RFC 7617), or a bearer token (RFC 6750). Used by verification
//! and, later, by the proxy.

use base64::Engine;
use http::{HeaderName, HeaderValue};
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

/// The injection for a non-OAuth connection.
pub fn for_static(
    mode: AuthMode,
    settings: &Map<String, Value>,
    creds: &SecretFields,
) -> Result<Injection, CoreError> {
    match mode {
        AuthMode::ApiKey => {
            let key = creds.expose("api_key").unwrap_or_default();
            let name = setting(settings, "api_key_name", "X-API-Key");
            let prefix = setting(settings, "api_key_prefix", "");
            let mut scrubber = Scrubber::new();
            scrubber.add(key);
            let scrubber = std::sync::Arc::new(scrubber);
            if setting(settings, "api_key_in", "header") == "query" {
                Ok(Injection {
                    headers: vec![],
                    query: Some((name.to_string(), format!("{prefix}{key}"))),
                    scrubber,
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
                    scrubber,
                })
            }
        }
        AuthMode::Basic => {
            let user = creds.expose("username").unwrap_or_default();
            let pass = creds.expose("password").unwrap_or_default();
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            let mut scrubber = Scrubber::new();
            scrubber.add_pair(user, pass);
            Ok(Injection {
                scrubber: std::sync::Arc::new(scrubber),
                headers: vec![(
                    http::header::AUTHORIZATION,
                    sensitive(format!("Basic {encoded}"))?,
                )],
                query: None,
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

    fn creds(v: serde_json::Value) -> SecretFields {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn api_key_in_header_with_prefix_and_in_query() {
        let s = json!({"api_key_in": "header", "api_key_name": "Authorization", "api_key_prefix": "Bearer "});
        let inj = for_static(
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
            AuthMode::Basic,
            &Map::new(),
            &creds(json!({"username": "u", "password": "p:w"})),
        )
        .unwrap();
        assert_eq!(inj.headers[0].1, "Basic dTpwOnc=");
    }
}
