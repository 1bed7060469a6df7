//! Credentials that are a signature over each request rather than a header: OAuth 1.0a
//! (`oauth1`, `oauth1_token`) and AWS Signature Version 4 (`aws_sigv4`). A [`Signer`] is built
//! from a connection's settings and credential fields and signs every outbound request (the
//! proxy's and the verification's) just before it is sent, with a fresh nonce or date each time.

pub mod oauth1;
pub mod sigv4;
pub mod three_legged;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use latchkey_core::model::AuthMode;
use latchkey_core::secret::SecretFields;
use latchkey_core::CoreError;
use serde_json::{Map, Value};
use url::Url;

/// Signs requests for one connection. No `Debug`: it holds secrets.
#[derive(Clone)]
pub enum Signer {
    OAuth1(oauth1::Keys),
    Sigv4(sigv4::Keys),
}

/// A request that cannot be signed as it is (a form body too large to read for the signature).
#[derive(Debug)]
pub struct Unsignable(pub StatusCode, pub &'static str, pub String);

fn setting<'a>(settings: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    settings
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn required(creds: &SecretFields, name: &str) -> Result<String, CoreError> {
    creds
        .expose(name)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            CoreError::invalid(
                format!("credentials.{name}"),
                format!("`{name}` is required"),
            )
        })
}

/// Checks the settings of a signed mode at create and edit: a known `signature_method`.
pub fn check_settings(mode: AuthMode, settings: &Map<String, Value>) -> Result<(), CoreError> {
    if matches!(mode, AuthMode::OAuth1 | AuthMode::OAuth1Token) {
        if let Some(m) = setting(settings, "signature_method") {
            if oauth1::Method::parse(m).is_none() {
                return Err(CoreError::invalid_with_hint(
                    "settings.signature_method",
                    format!(
                        "`{}` is not a signature method Latchkey signs with",
                        m.chars().take(40).collect::<String>()
                    ),
                    "use HMAC-SHA256 or HMAC-SHA1",
                ));
            }
        }
    }
    if mode == AuthMode::AwsSigv4 {
        for name in ["region", "service"] {
            let ok = setting(settings, name).is_some_and(|v| {
                v.len() <= 64
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
            if !ok {
                return Err(CoreError::invalid_with_hint(
                    format!("settings.{name}"),
                    format!("`{name}` must be given as letters, digits and dashes"),
                    "for example region us-east-1 and service s3",
                ));
            }
        }
    }
    Ok(())
}

/// The `realm` of the Authorization header: the setting, or else the account id a NetSuite
/// connection's URL is made from, in the form NetSuite expects there (`1234567-sb1` becomes
/// `1234567_SB1`).
fn realm_of(settings: &Map<String, Value>) -> Option<String> {
    setting(settings, "realm").map(str::to_string).or_else(|| {
        setting(settings, "account_id").map(|a| a.to_ascii_uppercase().replace('-', "_"))
    })
}

impl Signer {
    /// The signer of a connection in a signed mode; `None` for every other mode. `token` is the
    /// OAuth 1.0a access token pair when it was obtained by the three-legged flow rather than
    /// given with the credentials.
    pub fn of(
        mode: AuthMode,
        settings: &Map<String, Value>,
        creds: &SecretFields,
    ) -> Result<Option<Signer>, CoreError> {
        match mode {
            AuthMode::OAuth1 | AuthMode::OAuth1Token => {
                let method = setting(settings, "signature_method").unwrap_or("HMAC-SHA256");
                let method = oauth1::Method::parse(method).ok_or_else(|| {
                    CoreError::invalid(
                        "settings.signature_method",
                        "the signature method must be HMAC-SHA256 or HMAC-SHA1",
                    )
                })?;
                Ok(Some(Signer::OAuth1(oauth1::Keys {
                    consumer_key: required(creds, "consumer_key")?,
                    consumer_secret: required(creds, "consumer_secret")?,
                    token: Some(required(creds, "token_id")?),
                    token_secret: required(creds, "token_secret")?,
                    realm: realm_of(settings),
                    method,
                })))
            }
            AuthMode::AwsSigv4 => Ok(Some(Signer::Sigv4(sigv4::Keys {
                access_key_id: required(creds, "access_key_id")?,
                secret_access_key: required(creds, "secret_access_key")?,
                session_token: creds
                    .expose("session_token")
                    .filter(|t| !t.is_empty())
                    .map(str::to_string),
                region: setting(settings, "region")
                    .unwrap_or("us-east-1")
                    .to_string(),
                service: setting(settings, "service")
                    .ok_or_else(|| CoreError::invalid("settings.service", "`service` is required"))?
                    .to_string(),
            }))),
            _ => Ok(None),
        }
    }

    /// Whether a request must be read whole before it is signed: an OAuth 1.0a form body is part
    /// of the signature, an AWS body's hash too.
    pub fn needs_body(&self, headers: &HeaderMap) -> bool {
        match self {
            Signer::OAuth1(_) => is_form(headers),
            Signer::Sigv4(_) => true,
        }
    }

    /// The headers that sign this request, as it will be sent (`url` after any rewrite).
    /// `body` is `None` when it streams.
    pub fn sign(
        &self,
        method: &str,
        url: &Url,
        headers: &HeaderMap,
        body: Option<&[u8]>,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, Unsignable> {
        match self {
            Signer::OAuth1(keys) => {
                let form: Vec<(String, String)> = if is_form(headers) {
                    match body {
                        Some(b) => url::form_urlencoded::parse(b).into_owned().collect(),
                        None => {
                            return Err(Unsignable(
                                StatusCode::PAYLOAD_TOO_LARGE,
                                "body_too_large_to_sign",
                                "an OAuth 1.0a form body is part of the signature, and this one is too large (or chunked) to be read first".into(),
                            ))
                        }
                    }
                } else {
                    vec![]
                };
                let value = oauth1::authorization(keys, method, url, &form, &[]);
                let mut v = HeaderValue::from_str(&value).map_err(|_| {
                    Unsignable(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid_credentials",
                        "the OAuth 1.0a credential cannot go in an HTTP header".into(),
                    )
                })?;
                v.set_sensitive(true);
                Ok(vec![(http::header::AUTHORIZATION, v)])
            }
            Signer::Sigv4(keys) => {
                sigv4::sign_request(keys, method, url, headers, body).map_err(|e| {
                    Unsignable(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "unsignable_request",
                        e.to_string(),
                    )
                })
            }
        }
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}
