//! The token endpoint conversations (RFC 6749 §4.1.3, §4.4, §6; RFC 7523; RFC 7009) and what
//! their answers mean, including Salesforce's habits: no `expires_in`, `issued_at` as a string
//! of milliseconds, a `signature` over `id` + `issued_at`, and the org and user in `id`.

pub mod outcome;

pub use outcome::{GrantError, Tokens};

use super::provider::{parse_identity_url, ClientAuth, Flavor, Provider};
use crate::outbound::Outbound;
use base64::Engine;
use chrono::{DateTime, Duration, TimeZone, Utc};
use hmac::{Hmac, Mac};
use latchkey_core::catalog::{json_path, TokenBody};
use latchkey_core::model::TokenMeta;
use latchkey_core::scrub::Scrubber;
use latchkey_core::secret::SecretString;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;
use std::fmt;

/// The client (connected app) a grant is made for.
#[derive(Clone)]
pub struct ClientCreds {
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    pub private_key: Option<SecretString>,
    /// For a workspace OAuth client of an application whose URLs are user-given: the only
    /// origins its secret may be sent to. `None` for a connection's own client and for
    /// applications whose hosts the catalog fixes.
    pub allowed_origins: Option<Vec<String>>,
}

impl ClientCreds {
    /// A scrubber for this client's secrets, in every form they are sent (HTTP Basic included).
    pub fn scrubber(&self) -> Scrubber {
        let mut s = Scrubber::new();
        if let Some(secret) = &self.client_secret {
            s.add(secret.expose_secret());
            let enc =
                |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
            s.add_pair(&enc(&self.client_id), &enc(secret.expose_secret()));
            s.add_pair(&self.client_id, secret.expose_secret());
        }
        if let Some(k) = &self.private_key {
            s.add(k.expose_secret());
        }
        s
    }
}

impl fmt::Debug for ClientCreds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCreds")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The longest token lifetime believed (a year); a larger `expires_in` is clamped to it.
const MAX_EXPIRES_IN_SECS: i64 = 366 * 24 * 3600;
/// How far ahead of now a provider's `issued_at` may be before it is not believed.
const MAX_CLOCK_SKEW_SECS: i64 = 24 * 3600;
/// An `issued_at` before 2000-01-01 is not believed either.
const EARLIEST_ISSUED_AT: i64 = 946_684_800;

struct RawTokens {
    access_token: String,
    refresh_token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<Value>,
    scope: Option<String>,
    instance_url: Option<String>,
    id: Option<String>,
    issued_at: Option<String>,
    signature: Option<String>,
}

#[derive(Deserialize)]
struct RawError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

fn basic_header(client: &ClientCreds) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let secret = client
        .client_secret
        .as_ref()
        .map(|s| s.expose_secret().to_string())
        .unwrap_or_default();
    let raw = format!("{}:{}", enc(&client.client_id), enc(&secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// Sends a grant to the token endpoint and reads the answer.
async fn post_token(
    out: &Outbound,
    provider: &Provider,
    client: &ClientCreds,
    mut form: Vec<(&str, String)>,
    with_client_secret: bool,
) -> Result<Tokens, GrantError> {
    if let Some(allowed) = &client.allowed_origins {
        let origin = provider.token_url.origin().ascii_serialization();
        if !allowed.contains(&origin) {
            return Err(GrantError::Transport(format!(
                "not sent: the workspace OAuth client may only be sent to {}, not {origin}",
                allowed.join(", ")
            )));
        }
    }
    let url = out
        .prepare(&provider.token_url)
        .map_err(|e| GrantError::Transport(e.to_string()))?;
    let mut req = out.client().post(url).header("accept", "application/json");
    match provider.client_auth {
        ClientAuth::Basic if with_client_secret && client.client_secret.is_some() => {
            let mut hv = http::HeaderValue::from_str(&basic_header(client))
                .map_err(|_| GrantError::Transport("the client id cannot go in a header".into()))?;
            hv.set_sensitive(true);
            req = req.header(http::header::AUTHORIZATION, hv);
        }
        _ => {
            form.push(("client_id", client.client_id.clone()));
            if with_client_secret {
                if let Some(s) = &client.client_secret {
                    form.push(("client_secret", s.expose_secret().to_string()));
                }
            }
        }
    }
    for (k, v) in &provider.token_params {
        form.push((k.as_str(), v.clone()));
    }
    req = match provider.token_body {
        TokenBody::Form => req.form(&form),
        TokenBody::Json => {
            let body: serde_json::Map<String, Value> = form
                .iter()
                .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
                .collect();
            req.json(&body)
        }
    };
    let resp = req.send().await.map_err(|e| {
        GrantError::Transport(format!(
            "the token endpoint could not be reached: {}",
            crate::verify::connect_reason(&e)
        ))
    })?;
    let status = resp.status().as_u16();
    let body = resp
        .text()
        .await
        .map_err(|_| GrantError::Transport("the token answer could not be read".into()))?;
    if !(200..300).contains(&status) {
        let mut scrubber = client.scrubber();
        for (name, value) in &form {
            if matches!(
                *name,
                "refresh_token" | "code" | "code_verifier" | "assertion" | "client_secret"
            ) {
                scrubber.add(value);
            }
        }
        return Err(parse_error_answer(status, &body).scrubbed(&scrubber));
    }
    if provider.has_quirk("slack_ok_envelope") {
        if let Some(e) = crate::quirks::slack_ok_envelope::token_error(status, &body) {
            return Err(e);
        }
    }
    let mut tokens = parse_token_answer(&body, provider, client)?;
    if provider.has_quirk("mailchimp_metadata") {
        crate::quirks::mailchimp_metadata::after_token(out, &mut tokens).await?;
    }
    Ok(tokens)
}

/// Reads a token endpoint's 2xx answer as [`post_token`] does (public for the fuzz targets):
/// each field at the path the catalog entry gives for it, and the fields it keeps.
pub fn parse_token_answer(
    body: &str,
    provider: &Provider,
    client: &ClientCreds,
) -> Result<Tokens, GrantError> {
    let doc: Value = serde_json::from_str(body).map_err(|_| {
        GrantError::Transport("the token endpoint answered 2xx but not with a token".into())
    })?;
    let at = |field: &str| -> Option<String> {
        match json_path(&doc, provider.token_fields.path(field)) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    };
    let top = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_string);
    let access_token = at("access_token")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            GrantError::Transport(format!(
                "the token answer has no access token at `{}`",
                provider.token_fields.path("access_token")
            ))
        })?;
    let raw = RawTokens {
        access_token,
        refresh_token: at("refresh_token").filter(|s| !s.is_empty()),
        token_type: at("token_type"),
        expires_in: json_path(&doc, provider.token_fields.path("expires_in")).cloned(),
        scope: at("scope"),
        instance_url: top("instance_url"),
        id: top("id"),
        issued_at: top("issued_at"),
        signature: top("signature"),
    };
    let mut tokens = read_tokens(raw, provider, client)?;
    for (name, path) in &provider.keep {
        let v = match json_path(&doc, path) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            _ => continue,
        };
        if v.len() <= 512 {
            if name == "instance_url" {
                tokens.meta.instance_url = Some(v.trim_end_matches('/').to_string());
            }
            tokens.meta.extra.insert(name.clone(), v);
        }
    }
    Ok(tokens)
}

/// Reads a token endpoint's error answer (public for the fuzz targets).
pub fn parse_error_answer(status: u16, body: &str) -> GrantError {
    match serde_json::from_str::<RawError>(body) {
        Ok(e) => GrantError::Provider {
            status,
            error: e.error,
            description: e.error_description.unwrap_or_default(),
        },
        Err(_) => GrantError::Transport(format!(
            "the token endpoint answered {status} without an OAuth error"
        )),
    }
}

/// Ten years: how long a token without an expiry is taken to last, and the most an
/// `expires_in` counts (a provider's absurd number is clamped, never an overflow).
const NEVER_SECS: i64 = 10 * 365 * 24 * 3600;

fn read_tokens(
    raw: RawTokens,
    provider: &Provider,
    client: &ClientCreds,
) -> Result<Tokens, GrantError> {
    let now = Utc::now();
    // Provider numbers are bounded before any arithmetic: an `issued_at` before 2000 or more
    // than a day ahead is taken as now, an `expires_in` is kept within a year.
    let issued_at = raw
        .issued_at
        .as_deref()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        .filter(|t| {
            t.timestamp() >= EARLIEST_ISSUED_AT && (*t - now).num_seconds() <= MAX_CLOCK_SKEW_SECS
        });
    if provider.flavor == Flavor::Salesforce {
        if let (Some(sig), Some(id), Some(at), Some(secret)) = (
            &raw.signature,
            &raw.id,
            &raw.issued_at,
            &client.client_secret,
        ) {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
                .expect("HMAC takes any key");
            mac.update(id.as_bytes());
            mac.update(at.as_bytes());
            let expected =
                base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
            if expected != *sig {
                return Err(GrantError::Provider {
                    status: 200,
                    error: "signature_mismatch".into(),
                    description: "the token answer's signature does not match (HMAC of id and issued_at with the consumer secret): refusing it".into(),
                });
            }
        }
    }
    let expires_in = raw.expires_in.as_ref().and_then(|v| {
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse::<f64>().ok()))
            .filter(|f| f.is_finite())
            .map(|f| f.clamp(0.0, MAX_EXPIRES_IN_SECS as f64) as i64)
    });
    let expires_at: DateTime<Utc> = match expires_in {
        Some(secs) if secs > 0 => now + Duration::seconds(secs.min(NEVER_SECS)),
        // No expiry and nothing to refresh with: the token lasts until it is revoked (Shopify,
        // Notion, Slack without rotation); a 401 then says so.
        _ if provider.flavor == Flavor::Generic && raw.refresh_token.is_none() => {
            now + Duration::seconds(NEVER_SECS)
        }
        _ => issued_at.unwrap_or(now) + Duration::seconds(provider.session_timeout_secs),
    };
    let (org, user) = raw.id.as_deref().and_then(parse_identity_url).unzip();
    Ok(Tokens {
        access_token: SecretString::from(raw.access_token),
        meta: TokenMeta {
            token_type: raw.token_type,
            scope: raw.scope,
            instance_url: raw
                .instance_url
                .map(|u| u.trim_end_matches('/').to_string()),
            id_url: raw.id,
            provider_user_id: user,
            provider_org_id: org,
            username: None,
            client_id: Some(client.client_id.clone()),
            authorized_at: None,
            issued_at: Some(issued_at.unwrap_or(now)),
            expires_at: Some(expires_at),
            refreshed_at: Some(now),
            has_refresh_token: raw.refresh_token.is_some(),
            failures: 0,
            retry_after: None,
            extra: Default::default(),
        },
        refresh_token: raw.refresh_token.map(SecretString::from),
    })
}

pub async fn exchange_code(
    out: &Outbound,
    provider: &Provider,
    client: &ClientCreds,
    code: &str,
    redirect_uri: &str,
    verifier: Option<&str>,
) -> Result<Tokens, GrantError> {
    let mut form = vec![
        ("grant_type", "authorization_code".to_string()),
        ("code", code.to_string()),
        ("redirect_uri", redirect_uri.to_string()),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v.to_string()));
    }
    post_token(out, provider, client, form, true).await
}

pub async fn refresh(
    out: &Outbound,
    provider: &Provider,
    client: &ClientCreds,
    refresh_token: &str,
) -> Result<Tokens, GrantError> {
    let form = vec![
        ("grant_type", "refresh_token".to_string()),
        ("refresh_token", refresh_token.to_string()),
    ];
    post_token(out, provider, client, form, true).await
}

pub async fn client_credentials(
    out: &Outbound,
    provider: &Provider,
    client: &ClientCreds,
) -> Result<Tokens, GrantError> {
    let mut form = vec![("grant_type", "client_credentials".to_string())];
    if provider.flavor == Flavor::Generic && !provider.scopes.is_empty() {
        form.push(("scope", provider.scope_param()));
    }
    post_token(out, provider, client, form, true).await
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
}

/// RFC 7523: a fresh RS256 assertion each time (Salesforce gives no refresh token for it).
pub async fn jwt_bearer(
    out: &Outbound,
    provider: &Provider,
    client: &ClientCreds,
    subject: &str,
) -> Result<Tokens, GrantError> {
    let key = client.private_key.as_ref().ok_or_else(|| {
        GrantError::Transport("JWT bearer needs the connected app's private key".into())
    })?;
    let key =
        jsonwebtoken::EncodingKey::from_rsa_pem(key.expose_secret().as_bytes()).map_err(|_| {
            GrantError::Transport("the private key is not an RSA key in PEM form".into())
        })?;
    let aud = provider.audience.as_deref().unwrap_or_default();
    let claims = Claims {
        iss: &client.client_id,
        sub: subject,
        aud,
        exp: (Utc::now() + Duration::minutes(3)).timestamp(),
    };
    let assertion = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .map_err(|_| GrantError::Transport("the JWT assertion could not be signed".into()))?;
    let form = vec![
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:jwt-bearer".to_string(),
        ),
        ("assertion", assertion),
    ];
    post_token(out, provider, client, form, false).await
}

/// RFC 7009 revocation; Salesforce revokes the whole grant for a refresh token.
pub async fn revoke(
    out: &Outbound,
    provider: &Provider,
    client: &ClientCreds,
    token: &str,
) -> Result<(), GrantError> {
    let Some(url) = &provider.revoke_url else {
        return Err(GrantError::Transport(
            "the provider has no revocation URL".into(),
        ));
    };
    let url = out
        .prepare(url)
        .map_err(|e| GrantError::Transport(e.to_string()))?;
    let resp = out
        .client()
        .post(url)
        .form(&[("token", token), ("client_id", client.client_id.as_str())])
        .send()
        .await
        .map_err(|e| {
            GrantError::Transport(format!(
                "the revocation endpoint could not be reached: {}",
                crate::verify::connect_reason(&e)
            ))
        })?;
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        Ok(())
    } else {
        let body = resp.text().await.unwrap_or_default();
        let mut scrubber = client.scrubber();
        scrubber.add(token);
        Err(match serde_json::from_str::<RawError>(&body) {
            Ok(e) => GrantError::Provider {
                status,
                error: e.error,
                description: e.error_description.unwrap_or_default(),
            }
            .scrubbed(&scrubber),
            Err(_) => GrantError::Transport(format!("the revocation endpoint answered {status}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_encoded_first() {
        let c = ClientCreds {
            client_id: "id:1".into(),
            client_secret: Some(SecretString::from("s p&".to_string())),
            private_key: None,
            allowed_origins: None,
        };
        let h = basic_header(&c);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(h.trim_start_matches("Basic "))
            .unwrap();
        assert_eq!(String::from_utf8(raw).unwrap(), "id%3A1:s+p%26");
    }

    fn salesforce_provider() -> Provider {
        Provider {
            client_auth: ClientAuth::Post,
            session_timeout_secs: 7200,
            ..Provider::plain(
                Flavor::Salesforce,
                url::Url::parse("https://login.salesforce.com/services/oauth2/token").unwrap(),
            )
        }
    }

    fn raw(signature: &str) -> RawTokens {
        RawTokens {
            access_token: "00D!x".into(),
            refresh_token: None,
            token_type: Some("Bearer".into()),
            expires_in: None,
            scope: Some("api".into()),
            instance_url: Some("https://acme.my.salesforce.com/".into()),
            id: Some(
                "https://login.salesforce.com/id/00Dxx0000001gEREAY/005xx000001SwiUAAS".into(),
            ),
            issued_at: Some("1700000000000".into()),
            signature: Some(signature.into()),
        }
    }

    #[test]
    fn salesforce_answers_are_read_and_their_signature_checked() {
        let client = ClientCreds {
            client_id: "ck".into(),
            client_secret: Some(SecretString::from("cs".to_string())),
            private_key: None,
            allowed_origins: None,
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(b"cs").unwrap();
        mac.update(
            b"https://login.salesforce.com/id/00Dxx0000001gEREAY/005xx000001SwiUAAS1700000000000",
        );
        let good = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let t = read_tokens(raw(&good), &salesforce_provider(), &client).unwrap();
        assert_eq!(
            t.meta.instance_url.as_deref(),
            Some("https://acme.my.salesforce.com")
        );
        assert_eq!(
            t.meta.provider_org_id.as_deref(),
            Some("00Dxx0000001gEREAY")
        );
        assert_eq!(
            t.meta.provider_user_id.as_deref(),
            Some("005xx000001SwiUAAS")
        );
        let issued = t.meta.issued_at.unwrap();
        assert_eq!(issued.timestamp_millis(), 1_700_000_000_000);
        assert_eq!(
            (t.meta.expires_at.unwrap() - issued).num_seconds(),
            7200,
            "no expires_in: the session timeout applies"
        );
        let err = read_tokens(raw("forged"), &salesforce_provider(), &client)
            .err()
            .unwrap();
        assert!(err.to_string().contains("signature"), "{err}");
        // Nothing is retried after a failed create: its hint says what to fix instead.
        assert_eq!(err.code(), "signature_mismatch");
        let hint = err.hint(false, "http://x");
        assert!(
            !hint.contains("retry") && hint.contains("consumer key and secret"),
            "{hint}"
        );
    }

    #[test]
    fn only_a_stored_connection_is_promised_a_retry() {
        let e = GrantError::Transport("connection refused".into());
        assert!(!e.hint(false, "http://x").contains("back-off"));
        assert!(e.hint(true, "http://x").contains("back-off"));
    }

    #[test]
    fn out_of_range_provider_numbers_are_clamped() {
        let client = ClientCreds {
            client_id: "ck".into(),
            client_secret: None,
            private_key: None,
            allowed_origins: None,
        };
        let mut p = salesforce_provider();
        p.flavor = Flavor::Generic;
        for body in [
            r#"{"access_token":"a","expires_in":1e13}"#,
            r#"{"access_token":"a","expires_in":10000000000000}"#,
            r#"{"access_token":"a","expires_in":"1e300"}"#,
            r#"{"access_token":"a","expires_in":9223372036854775807}"#,
            r#"{"access_token":"a","expires_in":-5,"issued_at":"9223372036854775807"}"#,
            r#"{"access_token":"a","issued_at":"-9223372036854775808"}"#,
            r#"{"access_token":"a","issued_at":"253402300799999"}"#,
        ] {
            let t = parse_token_answer(body, &p, &client).unwrap();
            let left = t.meta.expires_at.unwrap() - Utc::now();
            assert!(left.num_seconds() <= NEVER_SECS, "{body}: {left}");
            assert!(left.num_seconds() > 0, "{body}: {left}");
            let issued = t.meta.issued_at.unwrap();
            assert!((issued - Utc::now()).num_days() <= 1, "{body}");
            assert!(issued.timestamp() >= EARLIEST_ISSUED_AT, "{body}");
        }
    }

    #[test]
    fn hints_name_what_to_check() {
        let e = GrantError::Provider {
            status: 400,
            error: "invalid_grant".into(),
            description: "expired access/refresh token".into(),
        };
        assert!(e.hint(true, "http://x").contains("sixth approval"));
        let e = GrantError::Provider {
            status: 400,
            error: "redirect_uri_mismatch".into(),
            description: String::new(),
        };
        assert!(e
            .hint(false, "https://lk.example")
            .contains("https://lk.example/oauth/callback"));
    }
}
