//! Verification before saving (R9): a dry request to the application with the credential
//! injected, or a real database connection that runs `SELECT 1`. A failure carries the
//! application's own words (scrubbed of the credential) and a hint.

pub mod redis;
pub mod sftp;

use crate::inject;
/// Kept here too, where it was first defined, for the callers that name it so.
pub use crate::inject::scrubber_for;
use crate::outbound::{Outbound, OutboundError};
use latchkey_core::catalog::{AppEntry, VerifySpec};
use latchkey_core::model::AuthMode;
use latchkey_core::scrub::{self, Scrubber};
use latchkey_core::secret::SecretFields;
use latchkey_core::CoreError;
use serde_json::{json, Map, Value};
use sqlx::Connection;
use std::time::Duration;
use url::Url;

const DB_TIMEOUT: Duration = Duration::from_secs(10);
const HTTP_TIMEOUT: Duration = Duration::from_secs(15);

/// Checks a connection's credential against the application. `Ok` means it works now.
pub async fn verify(
    outbound: &Outbound,
    app: &AppEntry,
    mode: AuthMode,
    settings: &Map<String, Value>,
    creds: &SecretFields,
) -> Result<(), CoreError> {
    let result = match &app.verify {
        None => Ok(()),
        Some(VerifySpec::Http {
            method,
            path,
            path_setting,
            ..
        }) => {
            let path = match (path, path_setting) {
                (Some(p), _) => p.clone(),
                (None, Some(s)) => settings
                    .get(s)
                    .and_then(Value::as_str)
                    .unwrap_or("/")
                    .to_string(),
                (None, None) => "/".to_string(),
            };
            verify_http(outbound, app, mode, settings, creds, method, &path).await
        }
        Some(VerifySpec::Postgres) => {
            verify_database(outbound, app, settings, creds, Db::Postgres).await
        }
        Some(VerifySpec::Mysql) => verify_database(outbound, app, settings, creds, Db::Mysql).await,
        Some(VerifySpec::Sftp) => sftp::verify(outbound, app, settings, creds)
            .await
            .map(|_| ()),
        Some(VerifySpec::Redis) => redis::verify(outbound, app, settings, creds).await,
    };
    result.map_err(|e| scrub_error(e, &scrubber_for(app, mode, creds)))
}

/// [`verify`] for a check whose outcome is saved: an SFTP connection without a pinned host
/// key gets the key the server showed pinned in `settings`.
pub async fn verify_and_pin(
    outbound: &Outbound,
    app: &AppEntry,
    mode: AuthMode,
    settings: &mut Map<String, Value>,
    creds: &SecretFields,
) -> Result<(), CoreError> {
    if app.verify != Some(VerifySpec::Sftp) {
        return verify(outbound, app, mode, settings, creds).await;
    }
    sftp::verify_and_pin(outbound, app, settings, creds)
        .await
        .map_err(|e| scrub_error(e, &scrubber_for(app, mode, creds)))
}

/// The checks of a connection's fields that its verification kind adds to the catalog's
/// (an SFTP connection needs a password or a readable key; a Redis ACL user a password).
/// `partial`: an edit's fields, before they are merged onto the stored ones.
pub fn check_fields(
    app: &AppEntry,
    settings: &Map<String, Value>,
    creds: &SecretFields,
    partial: bool,
) -> Result<(), CoreError> {
    match &app.verify {
        Some(VerifySpec::Sftp) => {
            sftp::check_settings(settings)?;
            sftp::check_credentials(creds, partial)
        }
        Some(VerifySpec::Redis) if !partial => redis::check_credentials(creds),
        _ => Ok(()),
    }
}

/// No message that leaves this module may contain a credential value, whatever the remote said.
fn scrub_error(e: CoreError, scrubber: &Scrubber) -> CoreError {
    match e {
        CoreError::VerificationFailed {
            message,
            hint,
            details,
        } => CoreError::VerificationFailed {
            message: scrubber.scrub(&message),
            // Hints are Latchkey's own words.
            hint,
            details: scrubber.scrub_json(details),
        },
        CoreError::Invalid {
            field,
            message,
            hint,
        } => CoreError::Invalid {
            field,
            message: scrubber.scrub(&message),
            hint: hint.map(|h| scrubber.scrub(&h)),
        },
        other => other,
    }
}

fn failed(message: String, hint: &str, details: Value) -> CoreError {
    CoreError::VerificationFailed {
        message,
        hint: Some(hint.to_string()),
        details,
    }
}

/// The API base of a connection: its `base_url` setting, or the catalog's base URL template
/// filled from its settings.
pub fn api_base(app: &AppEntry, settings: &Map<String, Value>) -> Result<Url, CoreError> {
    api_base_with(app, settings, &std::collections::BTreeMap::new())
}

/// [`api_base`] with the fields kept from the token answer (an API domain it named).
pub fn api_base_with(
    app: &AppEntry,
    settings: &Map<String, Value>,
    kept: &std::collections::BTreeMap<String, String>,
) -> Result<Url, CoreError> {
    if let Some(base) = settings.get("base_url").and_then(Value::as_str) {
        return Url::parse(base).map_err(|_| {
            CoreError::invalid("settings.base_url", "the base URL is not a valid URL")
        });
    }
    let template = app
        .base_url
        .as_deref()
        .ok_or_else(|| CoreError::invalid("settings.base_url", "the connection has no base URL"))?;
    app.fill(template, settings, kept)
}

/// The URL of the verification request: an absolute template of the entry, or a path (whose
/// `{setting}` placeholders are filled) under the API base.
pub fn verify_url(
    app: &AppEntry,
    settings: &Map<String, Value>,
    kept: &std::collections::BTreeMap<String, String>,
    path: &str,
) -> Result<Url, CoreError> {
    if path.starts_with("https://") {
        return app.fill(path, settings, kept);
    }
    let base = api_base_with(app, settings, kept)?;
    Ok(join_path(&base, &app.fill_text(path, settings)))
}

/// The JSON body of the verification request, if the entry gives one.
pub fn verify_body(app: &AppEntry) -> Option<String> {
    match &app.verify {
        Some(VerifySpec::Http { body, .. }) => body.clone(),
        _ => None,
    }
}

/// The verification request of an entry: method and path (fixed, or from a setting).
pub fn verify_request(app: &AppEntry, settings: &Map<String, Value>) -> (String, String) {
    match &app.verify {
        Some(VerifySpec::Http {
            method,
            path,
            path_setting,
            ..
        }) => {
            let p = match (path, path_setting) {
                (Some(p), _) => p.clone(),
                (None, Some(s)) => settings
                    .get(s)
                    .and_then(Value::as_str)
                    .unwrap_or("/")
                    .to_string(),
                _ => "/".into(),
            };
            (method.clone(), p)
        }
        _ => (
            "GET".into(),
            settings
                .get("verify_path")
                .and_then(Value::as_str)
                .unwrap_or("/")
                .to_string(),
        ),
    }
}

/// Whether a 2xx answer's body is what the entry calls a good answer (`None`: it is), else
/// why not.
pub fn unexpected_answer(app: &AppEntry, body: &str) -> Option<String> {
    let Some(VerifySpec::Http {
        expect_pointer: Some(pointer),
        expect_value,
        ..
    }) = &app.verify
    else {
        return None;
    };
    let doc: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    match (doc.pointer(pointer), expect_value) {
        (None, _) => Some(format!("the answer has no `{pointer}`")),
        (Some(v), Some(want)) if v != want => {
            let code = doc
                .get("error")
                .and_then(Value::as_str)
                .and_then(|e| scrub::error_code(e, &Scrubber::new()))
                .map(|e| format!(" (error `{e}`)"))
                .unwrap_or_default();
            Some(format!("the answer's `{pointer}` is {v}, not {want}{code}"))
        }
        _ => None,
    }
}

/// `base` + `path`, keeping the base's own path (`https://x/v1` + `/me` = `https://x/v1/me`).
pub fn join_path(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!(
        "{}/{}",
        base.path().trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    let (p, q) = match joined.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (joined, None),
    };
    url.set_path(&p);
    url.set_query(q.as_deref());
    url
}

async fn verify_http(
    outbound: &Outbound,
    app: &AppEntry,
    mode: AuthMode,
    settings: &Map<String, Value>,
    creds: &SecretFields,
    method: &str,
    path: &str,
) -> Result<(), CoreError> {
    let mut url = verify_url(app, settings, &Default::default(), path)?;
    let shown = format!("{method} {url}");
    let injection = inject::for_static(app, mode, settings, creds)?;
    injection.apply_to_url(&mut url);
    let url = outbound
        .prepare(&url)
        .map_err(|e| outbound_failed(&shown, e))?;
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let body = verify_body(app);
    let signed = match &injection.signer {
        Some(s) => {
            let mut h = http::HeaderMap::new();
            if body.is_some() {
                h.insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
            }
            let bytes = body.as_deref().unwrap_or_default().as_bytes();
            s.sign(method.as_str(), &url, &h, Some(bytes))
                .map_err(|u| CoreError::invalid("credentials", u.2))?
        }
        None => vec![],
    };
    let mut req = outbound.client().request(method, url).timeout(HTTP_TIMEOUT);
    for (name, value) in injection.headers.into_iter().chain(signed) {
        req = req.header(name, value);
    }
    if let Some(b) = body {
        req = req
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(b);
    }
    let resp = req.send().await.map_err(|e| {
        let reason = if e.is_timeout() {
            "timed out".to_string()
        } else if e.is_connect() {
            connect_reason(&e)
        } else {
            "the request failed".to_string()
        };
        failed(
            format!("{shown} could not be reached: {reason}"),
            "check the base URL and that the application is reachable from the Latchkey server",
            json!({ "request": shown }),
        )
    })?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if status.is_success() {
        return match unexpected_answer(app, &body) {
            None => Ok(()),
            Some(why) => Err(failed(
                format!("{} answered {status} to {shown}, but {why}", app.name),
                "the application refused the credential inside a successful answer: check the key and its permissions",
                json!({ "status": status.as_u16(), "request": shown }),
            )),
        };
    }
    // The provider's own code and description only: the body itself may echo the request.
    let said = scrub::provider_summary(
        &body,
        &scrubber_for(app, mode, creds),
        status.canonical_reason().unwrap_or("no reason given"),
    );
    let hint = match status.as_u16() {
        401 => "the application refused the credential: check the key (or username and password) and that it is still valid",
        403 => "the credential is valid but lacks permission for the verification request: check its permissions or the verification path",
        404 => "the verification path does not exist at this base URL: check base_url and verify_path",
        300..=399 => "the application answered with a redirect: check that base_url is the API's own address (Latchkey never follows redirects)",
        429 => "the application is rate-limiting: try again later",
        500..=599 => "the application failed to answer: try again later, or save with verify set to false",
        _ => "check the connection's settings and credential",
    };
    Err(failed(
        format!("{} answered {status} to {shown}: {said}", app.name,),
        hint,
        json!({ "status": status.as_u16(), "request": shown, "provider_said": said }),
    ))
}

/// Why a request could not be sent, including an outbound-policy refusal from the resolver.
pub fn connect_reason(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(ob) = s.downcast_ref::<OutboundError>() {
            return ob.to_string();
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io.to_string();
        }
        source = s.source();
    }
    "connection failed".to_string()
}

fn outbound_failed(shown: &str, e: OutboundError) -> CoreError {
    failed(
        format!("{shown} was not sent: {e}"),
        "set LATCHKEY_OUTBOUND_ALLOW on the server to let Latchkey reach this address, if it should",
        json!({ "request": shown }),
    )
}

#[derive(Clone, Copy)]
enum Db {
    Postgres,
    Mysql,
}

async fn verify_database(
    outbound: &Outbound,
    app: &AppEntry,
    settings: &Map<String, Value>,
    creds: &SecretFields,
    db: Db,
) -> Result<(), CoreError> {
    let host = creds.expose("host").unwrap_or_default();
    let port: u16 = creds
        .expose("port")
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| {
            CoreError::invalid(
                "credentials.port",
                "the port must be a number from 1 to 65535",
            )
        })?;
    let database = creds.expose("database").unwrap_or_default();
    let user = creds.expose("username").unwrap_or_default();
    let password = creds.expose("password").unwrap_or_default();
    let tls = settings
        .get("tls")
        .and_then(Value::as_str)
        .unwrap_or("prefer");
    let target = format!("{host}:{port}/{database} as {user}");
    // Connect to the address that was checked, not to the name again.
    let checked = outbound
        .check_host(host, port)
        .await
        .map_err(|e| failed(format!("{} at {target} was not contacted: {e}", app.name), "set LATCHKEY_OUTBOUND_ALLOW on the server to let Latchkey reach this address, if it should", json!({})))?
        .to_string();
    let host = checked.as_str();
    let attempt = async {
        match db {
            Db::Postgres => {
                let mode = match tls {
                    "disable" => sqlx::postgres::PgSslMode::Disable,
                    "require" => sqlx::postgres::PgSslMode::Require,
                    _ => sqlx::postgres::PgSslMode::Prefer,
                };
                let opts = sqlx::postgres::PgConnectOptions::new()
                    .host(host)
                    .port(port)
                    .username(user)
                    .password(password)
                    .database(database)
                    .ssl_mode(mode)
                    .application_name("latchkey-verify");
                let mut conn = sqlx::PgConnection::connect_with(&opts).await?;
                sqlx::query("SELECT 1").execute(&mut conn).await?;
                conn.close().await
            }
            Db::Mysql => {
                let mode = match tls {
                    "disable" => sqlx::mysql::MySqlSslMode::Disabled,
                    "require" => sqlx::mysql::MySqlSslMode::Required,
                    _ => sqlx::mysql::MySqlSslMode::Preferred,
                };
                let opts = sqlx::mysql::MySqlConnectOptions::new()
                    .host(host)
                    .port(port)
                    .username(user)
                    .password(password)
                    .database(database)
                    .ssl_mode(mode);
                let mut conn = sqlx::MySqlConnection::connect_with(&opts).await?;
                sqlx::query("SELECT 1").execute(&mut conn).await?;
                conn.close().await
            }
        }
    };
    match tokio::time::timeout(DB_TIMEOUT, attempt).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(db_failure(app, &target, &e)),
        Err(_) => Err(failed(
            format!(
                "{} at {target} did not answer within {} s",
                app.name,
                DB_TIMEOUT.as_secs()
            ),
            "check host and port, and that a firewall lets the Latchkey server reach the database",
            json!({ "target": target }),
        )),
    }
}

fn db_failure(app: &AppEntry, target: &str, e: &sqlx::Error) -> CoreError {
    let (text, code) = match e {
        sqlx::Error::Database(d) => (d.message().to_string(), d.code().map(|c| c.to_string())),
        sqlx::Error::Io(io) => (io.to_string(), None),
        sqlx::Error::Tls(t) => (format!("TLS: {t}"), None),
        other => (other.to_string(), None),
    };
    let lower = text.to_lowercase();
    let hint = if lower.contains("password")
        || lower.contains("access denied")
        || code.as_deref() == Some("28P01")
        || code.as_deref() == Some("28000")
    {
        "the database refused the login: check the username and password"
    } else if lower.contains("does not exist") || lower.contains("unknown database") {
        "check the database name (and that the user may connect to it)"
    } else if lower.contains("refused") || lower.contains("resolve") || lower.contains("no route") {
        "check the host and port, and that the database accepts connections from the Latchkey server"
    } else if lower.contains("tls") || lower.contains("ssl") {
        "the server and the TLS setting disagree: use tls = prefer or disable if the server has no TLS"
    } else {
        "check the connection's host, port, database and credentials"
    };
    failed(
        format!("{} at {target} refused the connection: {text}", app.name),
        hint,
        json!({ "target": target, "code": code }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_keeps_base_path_and_query() {
        let base = Url::parse("https://api.example.com/v1").unwrap();
        assert_eq!(
            join_path(&base, "/me").as_str(),
            "https://api.example.com/v1/me"
        );
        assert_eq!(
            join_path(&base, "/me?x=1").as_str(),
            "https://api.example.com/v1/me?x=1"
        );
        let root = Url::parse("https://api.example.com").unwrap();
        assert_eq!(join_path(&root, "/").as_str(), "https://api.example.com/");
    }

    #[test]
    fn scrub_removes_credentials_everywhere() {
        let creds: SecretFields = serde_json::from_value(json!({"api_key": "sk-123456"})).unwrap();
        let cat = latchkey_core::catalog::Catalog::embedded();
        let app = cat.get("generic-api-key").unwrap();
        let e = scrub_error(
            failed(
                "bad key sk-123456".into(),
                "h",
                json!({"body": "you sent sk-123456"}),
            ),
            &scrubber_for(app, AuthMode::ApiKey, &creds),
        );
        let text = format!("{e} {e:?}");
        assert!(!text.contains("sk-123456"), "{text}");
    }
}
