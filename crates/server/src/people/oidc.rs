//! The OpenID Connect provider as Latchkey talks to it: discovery (cached), the code exchange
//! and the checks of the `id_token` (signature against the provider's published keys, issuer,
//! audience, expiry, nonce). Tokens never appear in an error message.

use crate::config::OidcSettings;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a provider's discovery document and keys are reused.
const CACHE_FOR: Duration = Duration::from_secs(3600);

/// What the provider's discovery document says, and its keys.
pub struct Provider {
    pub authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: Option<String>,
    jwks_uri: String,
    keys: Mutex<JwkSet>,
    fetched: Instant,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: Option<String>,
    jwks_uri: String,
}

fn http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            // Sign-ins are rare: a fresh connection each time, never one the provider closed.
            .pool_max_idle_per_host(0)
            .build()
            .unwrap_or_default()
    })
}

/// A transport error with its causes (never a URL: the query could hold a code).
fn why(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

fn cache() -> &'static Mutex<HashMap<String, Arc<Provider>>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Provider>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Why the provider's discovery document, keys or tokens could not be had.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("cannot reach the provider for its {what}: {why}")]
    Unreachable { what: &'static str, why: String },
    #[error("the provider answered {status} to the request for its {what}")]
    Status { what: &'static str, status: u16 },
    #[error("the provider's {what} is not what OpenID Connect describes: {source}")]
    Shape {
        what: &'static str,
        source: reqwest::Error,
    },
    #[error("the provider calls itself `{said}`, not `{configured}` as LATCHKEY_OIDC_ISSUER says")]
    OtherIssuer { said: String, configured: String },
    #[error("cannot reach the provider's token endpoint: {0}")]
    TokenUnreachable(String),
    #[error("the provider refused the sign-in code ({status} {why})")]
    CodeRefused { status: u16, why: String },
    #[error("the provider's token answer is not JSON as expected")]
    TokenNotJson,
    #[error("the provider's token answer has no id_token")]
    NoIdToken,
}

async fn get_json<T: serde::de::DeserializeOwned>(
    url: &str,
    what: &'static str,
) -> Result<T, OidcError> {
    let resp = http()
        .get(url)
        .send()
        .await
        .map_err(|e| OidcError::Unreachable { what, why: why(e) })?;
    if !resp.status().is_success() {
        return Err(OidcError::Status {
            what,
            status: resp.status().as_u16(),
        });
    }
    resp.json()
        .await
        .map_err(|source| OidcError::Shape { what, source })
}

/// The provider of these settings, from the cache or its discovery document.
pub async fn provider(s: &OidcSettings) -> Result<Arc<Provider>, OidcError> {
    if let Some(p) = cache().lock().ok().and_then(|c| c.get(&s.issuer).cloned()) {
        if p.fetched.elapsed() < CACHE_FOR {
            return Ok(p);
        }
    }
    let url = format!(
        "{}/.well-known/openid-configuration",
        s.issuer.trim_end_matches('/')
    );
    let d: Discovery = get_json(&url, "discovery document").await?;
    if d.issuer != s.issuer {
        return Err(OidcError::OtherIssuer {
            said: d.issuer,
            configured: s.issuer.clone(),
        });
    }
    let keys: JwkSet = get_json(&d.jwks_uri, "signing keys").await?;
    let p = Arc::new(Provider {
        authorization_endpoint: d.authorization_endpoint,
        token_endpoint: d.token_endpoint,
        userinfo_endpoint: d.userinfo_endpoint,
        jwks_uri: d.jwks_uri,
        keys: Mutex::new(keys),
        fetched: Instant::now(),
    });
    if let Ok(mut c) = cache().lock() {
        c.insert(s.issuer.clone(), p.clone());
    }
    Ok(p)
}

/// The tokens of a code exchange.
pub struct Tokens {
    pub id_token: String,
    pub access_token: Option<String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    id_token: Option<String>,
    access_token: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: Option<String>,
    error_description: Option<String>,
}

/// Trades the authorization code (with the PKCE verifier) for tokens.
pub async fn exchange(
    s: &OidcSettings,
    p: &Provider,
    code: &str,
    verifier: &str,
    redirect_uri: &str,
) -> Result<Tokens, OidcError> {
    let resp = http()
        .post(&p.token_endpoint)
        .basic_auth(
            form_encode(&s.client_id),
            Some(form_encode(s.client_secret.expose_secret())),
        )
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .map_err(|e| OidcError::TokenUnreachable(why(e)))?;
    let status = resp.status();
    let body = resp.bytes().await.unwrap_or_default();
    if !status.is_success() {
        let why = serde_json::from_slice::<ErrorAnswer>(&body)
            .ok()
            .map(|e| {
                let code = e.error.unwrap_or_default();
                match e.error_description {
                    Some(d) => format!("{code}: {d}"),
                    None => code,
                }
            })
            .unwrap_or_default();
        return Err(OidcError::CodeRefused {
            status: status.as_u16(),
            why,
        });
    }
    let t: TokenAnswer = serde_json::from_slice(&body).map_err(|_| OidcError::TokenNotJson)?;
    let id_token = t.id_token.ok_or(OidcError::NoIdToken)?;
    Ok(Tokens {
        id_token,
        access_token: t.access_token,
    })
}

/// Client credentials in HTTP Basic are form-encoded first (RFC 6749, section 2.3.1).
fn form_encode(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// The id_token's claims once its signature, issuer, audience, expiry and nonce are right.
pub async fn check_id_token(
    s: &OidcSettings,
    p: &Provider,
    token: &str,
    nonce: &str,
) -> Result<serde_json::Map<String, Value>, String> {
    let bad = |why: &str| format!("the provider's id_token was refused: {why}");
    let header = jsonwebtoken::decode_header(token).map_err(|_| bad("it is not a JWT"))?;
    if !matches!(
        header.alg,
        Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512
            | Algorithm::ES256
            | Algorithm::ES384
            | Algorithm::EdDSA
    ) {
        return Err(bad(
            "it is not signed with one of the provider's public keys",
        ));
    }
    let mut key = find_key(p, header.kid.as_deref(), header.alg);
    if key.is_none() {
        // The provider may have rotated its keys since they were read.
        let fresh: JwkSet = get_json(&p.jwks_uri, "signing keys")
            .await
            .map_err(|e| e.to_string())?;
        if let Ok(mut k) = p.keys.lock() {
            *k = fresh;
        }
        key = find_key(p, header.kid.as_deref(), header.alg);
    }
    let key = key.ok_or_else(|| bad("no key of the provider matches its signature"))?;
    let mut v = Validation::new(header.alg);
    v.set_issuer(&[&s.issuer]);
    v.set_audience(&[&s.client_id]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.leeway = 60;
    let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key, &v).map_err(
        |e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => bad("it has expired"),
            jsonwebtoken::errors::ErrorKind::InvalidIssuer => bad("another issuer made it"),
            jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                bad("it is meant for another client")
            }
            jsonwebtoken::errors::ErrorKind::InvalidSignature => bad("its signature is wrong"),
            _ => bad("it is not valid"),
        },
    )?;
    let claims = data.claims;
    if claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
        return Err(bad("its nonce is not the one this sign-in sent"));
    }
    if let Some(azp) = claims.get("azp").and_then(Value::as_str) {
        if azp != s.client_id {
            return Err(bad("it was issued to another client"));
        }
    }
    Ok(claims)
}

fn find_key(p: &Provider, kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
    let keys = p.keys.lock().ok()?;
    let usable = |j: &&jsonwebtoken::jwk::Jwk| {
        let use_ok = !matches!(
            j.common.public_key_use,
            Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
        );
        let kid_ok = kid.is_none() || j.common.key_id.as_deref() == kid;
        let alg_ok = j
            .common
            .key_algorithm
            .map(|a| format!("{a:?}") == format!("{alg:?}"))
            .unwrap_or(true);
        use_ok && kid_ok && alg_ok
    };
    keys.keys
        .iter()
        .filter(usable)
        .find_map(|j| DecodingKey::from_jwk(j).ok())
}

/// The provider's userinfo answer for an access token (`sub` must be the id_token's).
pub async fn userinfo(
    p: &Provider,
    access_token: &str,
    sub: &str,
) -> Result<serde_json::Map<String, Value>, String> {
    let Some(url) = &p.userinfo_endpoint else {
        return Ok(Default::default());
    };
    let resp = http()
        .get(url)
        .bearer_auth(access_token)
        .send()
        .await
        .map_err(|e| format!("cannot reach the provider's userinfo endpoint: {}", why(e)))?;
    if !resp.status().is_success() {
        return Err(format!(
            "the provider's userinfo endpoint answered {}",
            resp.status().as_u16()
        ));
    }
    let info: serde_json::Map<String, Value> = resp
        .json()
        .await
        .map_err(|_| "the provider's userinfo answer is not a JSON object".to_string())?;
    if info.get("sub").and_then(Value::as_str) != Some(sub) {
        return Err("the provider's userinfo names another person than the id_token".into());
    }
    Ok(info)
}
