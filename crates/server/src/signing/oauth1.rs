//! OAuth 1.0a request signatures (RFC 5849 §3): the signature base string built from the
//! method, the base string URI, and every parameter of the request (query, `oauth_*` protocol
//! parameters, and an `application/x-www-form-urlencoded` body), signed with HMAC-SHA1 or
//! HMAC-SHA256 keyed by the consumer secret and the token secret. Written here because the
//! maintained Rust signing crates either lack the `realm` parameter NetSuite requires or the
//! HMAC-SHA256 method; the tests check it against the RFC's own example and, end to end,
//! against Python's oauthlib.

use crate::error::{ApiError, ApiResult};
use base64::Engine;
use hmac::{Hmac, Mac};
use latchkey_core::catalog::AppEntry;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::{Map, Value};
use url::Url;

/// Every byte but the unreserved characters (RFC 5849 §3.6: ALPHA, DIGIT, `-`, `.`, `_`, `~`).
const RESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// RFC 5849 §3.6 percent-encoding.
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, RESERVED).to_string()
}

/// The signature methods Latchkey signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    HmacSha1,
    HmacSha256,
}

impl Method {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "HMAC-SHA1" => Some(Method::HmacSha1),
            "HMAC-SHA256" => Some(Method::HmacSha256),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::HmacSha1 => "HMAC-SHA1",
            Method::HmacSha256 => "HMAC-SHA256",
        }
    }
}

/// The consumer and (when there is one) token credentials a request is signed with. No `Debug`:
/// it holds secrets.
#[derive(Clone)]
pub struct Keys {
    pub consumer_key: String,
    pub consumer_secret: String,
    /// The token (`oauth_token`): absent only when asking for a request token.
    pub token: Option<String>,
    pub token_secret: String,
    pub realm: Option<String>,
    pub method: Method,
}

/// The base string URI (RFC 5849 §3.4.1.2): scheme and host in lower case, the port only when
/// it is not the scheme's default, the path, no query or fragment.
fn base_uri(url: &Url) -> String {
    let scheme = url.scheme().to_ascii_lowercase();
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let port = match url.port() {
        Some(p) if !((scheme == "http" && p == 80) || (scheme == "https" && p == 443)) => {
            format!(":{p}")
        }
        _ => String::new(),
    };
    let path = if url.path().is_empty() {
        "/"
    } else {
        url.path()
    };
    format!("{scheme}://{host}{port}{path}")
}

/// The signature base string (RFC 5849 §3.4.1) of a request whose parameters (decoded) are
/// `params`: query, form body and protocol parameters, `oauth_signature` and `realm` excluded.
pub fn base_string(method: &str, url: &Url, params: &[(String, String)]) -> String {
    let mut enc: Vec<(String, String)> =
        params.iter().map(|(k, v)| (encode(k), encode(v))).collect();
    enc.sort();
    let normalized = enc
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        encode(&base_uri(url)),
        encode(&normalized)
    )
}

/// The signature of a base string (RFC 5849 §3.4.2), base64.
pub fn signature(method: Method, consumer_secret: &str, token_secret: &str, base: &str) -> String {
    let key = format!("{}&{}", encode(consumer_secret), encode(token_secret));
    let raw = match method {
        Method::HmacSha1 => {
            let mut m = Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes()).expect("any key size");
            m.update(base.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
        Method::HmacSha256 => {
            let mut m = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("any key size");
            m.update(base.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
    };
    base64::engine::general_purpose::STANDARD.encode(raw)
}

fn nonce() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

/// The `Authorization: OAuth …` header value for one request, with a fresh nonce and timestamp.
/// `form` holds the decoded pairs of an `application/x-www-form-urlencoded` body; `extra` adds
/// protocol parameters of the authorization steps (`oauth_callback`, `oauth_verifier`).
pub fn authorization(
    keys: &Keys,
    method: &str,
    url: &Url,
    form: &[(String, String)],
    extra: &[(&str, &str)],
) -> String {
    let timestamp = chrono::Utc::now().timestamp().to_string();
    authorization_at(keys, method, url, form, extra, &nonce(), &timestamp)
}

fn authorization_at(
    keys: &Keys,
    method: &str,
    url: &Url,
    form: &[(String, String)],
    extra: &[(&str, &str)],
    nonce: &str,
    timestamp: &str,
) -> String {
    let mut protocol: Vec<(String, String)> = vec![
        ("oauth_consumer_key".into(), keys.consumer_key.clone()),
        ("oauth_nonce".into(), nonce.into()),
        ("oauth_signature_method".into(), keys.method.as_str().into()),
        ("oauth_timestamp".into(), timestamp.into()),
        ("oauth_version".into(), "1.0".into()),
    ];
    if let Some(t) = &keys.token {
        protocol.push(("oauth_token".into(), t.clone()));
    }
    for (k, v) in extra {
        protocol.push(((*k).into(), (*v).into()));
    }
    let mut all: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    all.extend(form.iter().cloned());
    all.extend(protocol.iter().cloned());
    let base = base_string(method, url, &all);
    let sig = signature(
        keys.method,
        &keys.consumer_secret,
        &keys.token_secret,
        &base,
    );
    protocol.push(("oauth_signature".into(), sig));
    let mut parts = Vec::with_capacity(protocol.len() + 1);
    if let Some(r) = keys.realm.as_deref().filter(|r| !r.is_empty()) {
        parts.push(format!("realm=\"{}\"", encode(r)));
    }
    parts.extend(
        protocol
            .iter()
            .map(|(k, v)| format!("{}=\"{}\"", encode(k), encode(v))),
    );
    format!("OAuth {}", parts.join(", "))
}

pub(crate) fn spec(app: &AppEntry) -> ApiResult<&latchkey_core::signed::OAuth1Spec> {
    app.oauth1.as_ref().ok_or_else(|| {
        ApiError::invalid(
            "auth_mode",
            format!("{} has no OAuth 1.0a endpoints", app.name),
        )
    })
}

/// The origins of the three endpoints (the credential is bound to them).
pub fn endpoints(app: &AppEntry, settings: &Map<String, Value>) -> ApiResult<Vec<Url>> {
    let s = spec(app)?;
    let kept = Default::default();
    Ok(vec![
        app.fill(&s.request_token_url, settings, &kept)?,
        app.fill(&s.authorize_url, settings, &kept)?,
        app.fill(&s.access_token_url, settings, &kept)?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5849 §3.4.1.1: the example request's signature base string, parameter for parameter.
    #[test]
    fn the_rfc_example_base_string() {
        let url = Url::parse("http://example.com/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b").unwrap();
        let mut params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        params.extend(
            [
                ("oauth_consumer_key", "9djdj82h48djs9d2"),
                ("oauth_token", "kkk9d7dh3k39sjv7"),
                ("oauth_signature_method", "HMAC-SHA1"),
                ("oauth_timestamp", "137131201"),
                ("oauth_nonce", "7d8f3e4a"),
                ("c2", ""),
                ("a3", "2 q"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        assert_eq!(
            base_string("post", &url, &params),
            "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q\
             %26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_\
             key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_m\
             ethod%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk\
             9d7dh3k39sjv7"
        );
    }

    /// RFC 5849 §1.2's photo request (its erratum-corrected signature), and the port and case
    /// rules of the base string URI.
    #[test]
    fn the_rfc_example_signature_and_base_uri() {
        let keys = Keys {
            consumer_key: "dpf43f3p2l4k3l03".into(),
            consumer_secret: "kd94hf93k423kf44".into(),
            token: Some("nnch734d00sl2jdk".into()),
            token_secret: "pfkkdhi9sl3r4s00".into(),
            realm: Some("Photos".into()),
            method: Method::HmacSha1,
        };
        let url =
            Url::parse("http://photos.example.net/photos?file=vacation.jpg&size=original").unwrap();
        let mut params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        params.extend(
            [
                ("oauth_consumer_key", "dpf43f3p2l4k3l03"),
                ("oauth_token", "nnch734d00sl2jdk"),
                ("oauth_signature_method", "HMAC-SHA1"),
                ("oauth_timestamp", "137131202"),
                ("oauth_nonce", "chapoH"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let base = base_string("GET", &url, &params);
        assert_eq!(
            signature(
                keys.method,
                &keys.consumer_secret,
                &keys.token_secret,
                &base
            ),
            "MdpQcU8iPSUjWoN/UDMsK2sui9I="
        );
        let header = authorization_at(&keys, "GET", &url, &[], &[], "chapoH", "137131202");
        assert!(
            header.starts_with("OAuth realm=\"Photos\", oauth_consumer_key=\"dpf43f3p2l4k3l03\"")
        );
        assert_eq!(
            base_uri(&Url::parse("HTTPS://Example.COM:443/a?b=c").unwrap()),
            "https://example.com/a"
        );
        assert_eq!(
            base_uri(&Url::parse("http://example.com:8080/").unwrap()),
            "http://example.com:8080/"
        );
    }
}
