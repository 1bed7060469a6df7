//! Service accounts (Google's key files): the key file is checked when it is given, and each
//! token is obtained with a fresh RS256-signed assertion (RFC 7523 §2.1) sent to the token
//! endpoint the key file names. `iss` is the account's e-mail, `aud` the token endpoint,
//! `scope` the scopes asked for, `sub` the user impersonated under domain-wide delegation, and
//! the header's `kid` the key's id.

use super::grant::{GrantError, Tokens};
use crate::error::{ApiError, ApiResult};
use crate::outbound::Outbound;
use chrono::{Duration, Utc};
use latchkey_core::catalog::{json_path, AppEntry};
use latchkey_core::exchange::ServiceAccountSpec;
use latchkey_core::model::TokenMeta;
use latchkey_core::scrub::Scrubber;
use latchkey_core::secret::{SecretFields, SecretString};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use std::fmt;
use url::Url;

/// The credential field that holds the key file.
pub const KEY_FIELD: &str = "key_json";
/// The assertion grant of RFC 7523.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// How long an assertion is good for (Google accepts at most an hour).
const ASSERTION_SECS: i64 = 3600;

const NOT_A_KEY_FILE: &str = "key_json must be a Google service-account key file: JSON with type \"service_account\", client_email, private_key and token_uri";

/// A parsed service-account key file. Its `Debug` shows the account, never the key.
pub struct KeyFile {
    pub client_email: String,
    pub private_key_id: Option<String>,
    pub private_key: SecretString,
    pub token_uri: Url,
    key: jsonwebtoken::EncodingKey,
}

impl fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFile")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri.as_str())
            .finish_non_exhaustive()
    }
}

fn not_a_key_file(why: &str) -> ApiError {
    ApiError::invalid(
        &format!("credentials.{KEY_FIELD}"),
        format!("{NOT_A_KEY_FILE} ({why})"),
    )
    .hint("download a JSON key of the service account (IAM > Service accounts > Keys > Add key > JSON) and give the whole file")
}

/// Reads a key file. Every refusal says what was expected and never quotes the file.
pub fn parse_key(raw: &str) -> ApiResult<KeyFile> {
    let doc: Map<String, Value> = match serde_json::from_str(raw) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err(not_a_key_file("it is not a JSON object")),
        Err(_) => return Err(not_a_key_file("it is not JSON")),
    };
    let text = |k: &str| doc.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
    if text("type") != Some("service_account") {
        return Err(not_a_key_file("its type is not \"service_account\""));
    }
    let mut missing: Vec<&str> = ["client_email", "private_key", "token_uri"]
        .into_iter()
        .filter(|k| text(k).is_none())
        .collect();
    if !missing.is_empty() {
        missing.sort();
        return Err(not_a_key_file(&format!("missing: {}", missing.join(", "))));
    }
    let email = text("client_email").unwrap_or_default();
    if !email.contains('@') || email.len() > 320 || email.chars().any(char::is_whitespace) {
        return Err(not_a_key_file("client_email is not an e-mail address"));
    }
    let token_uri = match text("token_uri").map(Url::parse) {
        Some(Ok(u)) if matches!(u.scheme(), "https" | "http") && u.host_str().is_some() => u,
        _ => return Err(not_a_key_file("token_uri is not an http(s) URL")),
    };
    let pem = text("private_key").unwrap_or_default();
    let key = signing_key(pem).ok_or_else(|| {
        ApiError::invalid(
            &format!("credentials.{KEY_FIELD}.private_key"),
            "the private_key of key_json is not an RSA private key in PEM form",
        )
        .hint("give the key file exactly as downloaded: its private_key is a PEM block (-----BEGIN PRIVATE KEY-----) with \\n line breaks")
    })?;
    Ok(KeyFile {
        client_email: email.to_string(),
        private_key_id: text("private_key_id").map(str::to_string),
        private_key: SecretString::from(pem.to_string()),
        token_uri,
        key,
    })
}

/// The key, when it is an RSA private key that can sign (a trial signature proves it).
fn signing_key(pem: &str) -> Option<jsonwebtoken::EncodingKey> {
    if !pem.contains("-----BEGIN") {
        return None;
    }
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).ok()?;
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    jsonwebtoken::encode(&header, &serde_json::json!({"probe": 1}), &key).ok()?;
    Some(key)
}

/// The spec of the entry, for the service_account mode.
pub fn spec(app: &AppEntry) -> ApiResult<&ServiceAccountSpec> {
    app.service_account.as_ref().ok_or_else(|| {
        ApiError::invalid(
            "auth_mode",
            format!("`{}` takes no service-account key files", app.id),
        )
    })
}

/// Checks the key file of a connection: a key file, whose token endpoint is the one the
/// application's key files name (unless the entry lets them name another).
pub fn check_credentials(app: &AppEntry, creds: &SecretFields) -> ApiResult<KeyFile> {
    let spec = spec(app)?;
    let raw = creds.expose(KEY_FIELD).unwrap_or_default();
    let key = parse_key(raw)?;
    let expected = Url::parse(&spec.token_url)
        .map_err(|_| ApiError::invalid("catalog", "the entry's token_url is not a URL"))?;
    let origin = key.token_uri.origin().ascii_serialization();
    if !spec.any_token_url && origin != expected.origin().ascii_serialization() {
        return Err(ApiError::invalid(
            &format!("credentials.{KEY_FIELD}.token_uri"),
            format!(
                "the key file names the token endpoint {origin}; {} key files name {}",
                app.name,
                expected.origin().ascii_serialization()
            ),
        )
        .hint(format!(
            "use a key file of a {} service account, or the generic entry that accepts any token endpoint",
            app.name
        )));
    }
    if key.token_uri.scheme() != "https" {
        return Err(ApiError::invalid(
            &format!("credentials.{KEY_FIELD}.token_uri"),
            "the key file's token_uri must be an https URL",
        ));
    }
    Ok(key)
}

/// The origin the key file's token endpoint is at (a destination of the connection).
pub fn token_origin(creds: &SecretFields) -> Option<String> {
    // Only the token_uri is read here (no trial signature): this runs on every destination check.
    let doc: Value = serde_json::from_str(creds.expose(KEY_FIELD)?).ok()?;
    let u = Url::parse(doc.get("token_uri")?.as_str()?).ok()?;
    u.host_str()?;
    Some(u.origin().ascii_serialization())
}

/// The scopes asked for: the `scopes` setting, else the entry's defaults.
pub fn scopes(spec: &ServiceAccountSpec, settings: &Map<String, Value>) -> Vec<String> {
    match settings.get("scopes") {
        Some(Value::Array(a)) if !a.is_empty() => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => spec.default_scopes.clone(),
    }
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: String,
    aud: &'a str,
    iat: i64,
    exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
}

/// A scrubber for every form of the key file (whole, JSON-escaped, and the PEM inside).
pub fn scrubber(creds: &SecretFields) -> Scrubber {
    let mut s = Scrubber::new();
    if let Some(raw) = creds.expose(KEY_FIELD) {
        s.add(raw);
        if let Ok(k) = parse_key(raw) {
            s.add(k.private_key.expose_secret());
        }
    }
    s
}

/// Signs an assertion and exchanges it for an access token.
pub async fn grant(
    out: &Outbound,
    app: &AppEntry,
    settings: &Map<String, Value>,
    creds: &SecretFields,
) -> Result<Tokens, GrantError> {
    let spec = spec(app).map_err(|e| GrantError::Transport(e.message))?;
    let key = check_credentials(app, creds).map_err(|e| GrantError::Transport(e.message))?;
    let scope = scopes(spec, settings).join(" ");
    let subject = settings
        .get("subject")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let now = Utc::now();
    let claims = Claims {
        iss: &key.client_email,
        scope: scope.clone(),
        aud: key.token_uri.as_str(),
        iat: now.timestamp(),
        exp: (now + Duration::seconds(ASSERTION_SECS)).timestamp(),
        sub: subject,
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = key.private_key_id.clone();
    let assertion = jsonwebtoken::encode(&header, &claims, &key.key)
        .map_err(|_| GrantError::Transport("the JWT assertion could not be signed".into()))?;
    let form = [
        ("grant_type", JWT_BEARER),
        ("assertion", assertion.as_str()),
    ];
    let mut scrub = scrubber(creds);
    scrub.add(&assertion);
    let body =
        super::exchange_http::post(out, &key.token_uri, Some(&form[..]), None, &scrub).await?;
    let doc: Value = serde_json::from_str(&body).map_err(|_| {
        GrantError::Transport("the token endpoint answered 2xx but not with a token".into())
    })?;
    let access = json_path(&doc, "access_token")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| GrantError::Transport("the token answer has no access_token".into()))?;
    let lifetime =
        super::exchange_http::lifetime(json_path(&doc, "expires_in"), spec.lifetime_seconds);
    Ok(Tokens {
        access_token: SecretString::from(access.to_string()),
        refresh_token: None,
        meta: TokenMeta {
            token_type: doc
                .get("token_type")
                .and_then(Value::as_str)
                .map(str::to_string),
            scope: Some(scope),
            username: Some(subject.unwrap_or(&key.client_email).to_string()),
            client_id: Some(key.client_email.clone()),
            issued_at: Some(now),
            expires_at: Some(now + Duration::seconds(lifetime)),
            refreshed_at: Some(now),
            ..TokenMeta::default()
        },
    })
}
