//! Redis connections: a connection to the checked address (over TLS when the `tls` setting
//! says `require`, the certificate checked against the host name), then `AUTH` (as the ACL
//! user when a username is given), `SELECT` of the database and `PING`, each step named when
//! it fails.

use super::failed;
use crate::outbound::Outbound;
use latchkey_core::catalog::AppEntry;
use latchkey_core::secret::SecretFields;
use latchkey_core::CoreError;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Checks the credential fields beyond their types: a username needs a password.
pub fn check_credentials(creds: &SecretFields) -> Result<(), CoreError> {
    let has = |n: &str| creds.expose(n).is_some_and(|v| !v.is_empty());
    if has("username") && !has("password") {
        return Err(CoreError::invalid_with_hint(
            "credentials.password",
            "a Redis ACL user logs in with a password",
            "give credentials.password, or leave the username out to use the default user",
        ));
    }
    Ok(())
}

/// Verifies a Redis connection.
pub async fn verify(
    outbound: &Outbound,
    app: &AppEntry,
    settings: &Map<String, Value>,
    creds: &SecretFields,
) -> Result<(), CoreError> {
    let host = creds.expose("host").unwrap_or_default().to_string();
    let port: u16 = creds
        .expose("port")
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| {
            CoreError::invalid(
                "credentials.port",
                "the port must be a number from 1 to 65535",
            )
        })?;
    let db: i64 = match creds.expose("database").map(str::trim) {
        None | Some("") => 0,
        Some(d) => d.parse().map_err(|_| {
            CoreError::invalid("credentials.database", "the database must be a number")
        })?,
    };
    let user = creds
        .expose("username")
        .filter(|u| !u.is_empty())
        .map(str::to_string);
    let password = creds
        .expose("password")
        .filter(|p| !p.is_empty())
        .map(str::to_string);
    let tls = settings.get("tls").and_then(Value::as_str) == Some("require");
    let who = user.as_deref().unwrap_or("the default user");
    let target = format!("{host}:{port}/{db} as {who}");
    let ip = outbound.check_host(&host, port).await.map_err(|e| {
        failed(
            format!("{} at {target} was not contacted: {e}", app.name),
            "set LATCHKEY_OUTBOUND_ALLOW on the server to let Latchkey reach this address, if it should",
            json!({ "target": target }),
        )
    })?;
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect((ip, port))
            .await
            .map_err(|e| (format!("could not connect: {e}"), HINT_CONNECT))?;
        if tls {
            let stream = tls_stream(&host, tcp).await?;
            commands(stream, user.as_deref(), password.as_deref(), db).await
        } else {
            commands(tcp, user.as_deref(), password.as_deref(), db).await
        }
    };
    let outcome = match tokio::time::timeout(TIMEOUT, attempt).await {
        Ok(r) => r,
        Err(_) => Err((
            format!("no answer within {} s", TIMEOUT.as_secs()),
            "check host and port (and the tls setting: a TLS port does not answer plain text)",
        )),
    };
    outcome.map_err(|(message, hint)| {
        failed(
            format!("{} at {target}: {message}", app.name),
            hint,
            json!({ "target": target }),
        )
    })
}

type StepError = (String, &'static str);

const HINT_CONNECT: &str =
    "check the host and port, and that Redis accepts connections from the Latchkey server";

async fn tls_stream(
    host: &str,
    tcp: tokio::net::TcpStream,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, StepError> {
    let config = crate::outbound::web_tls();
    let name = rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string())
        .map_err(|_| (format!("`{host}` is no TLS server name"), HINT_CONNECT))?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| {
            (
                format!("the TLS handshake failed: {e}"),
                "the server and the tls setting disagree, or its certificate is not valid for this host name: use tls = disable for a server without TLS",
            )
        })
}

async fn commands<S>(
    stream: S,
    user: Option<&str>,
    password: Option<&str>,
    db: i64,
) -> Result<(), StepError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let info = redis::RedisConnectionInfo::default().set_skip_set_lib_name();
    let config = redis::AsyncConnectionConfig::new();
    let (mut conn, driver) =
        redis::aio::MultiplexedConnection::new_with_config(&info, stream, config)
            .await
            .map_err(|e| (format!("the connection failed: {e}"), HINT_CONNECT))?;
    let driver = tokio::spawn(driver);
    let result = async {
        if let Some(pw) = password {
            let mut auth = redis::cmd("AUTH");
            if let Some(u) = user {
                auth.arg(u);
            }
            auth.arg(pw);
            auth.query_async::<()>(&mut conn).await.map_err(|e| {
                (
                    format!("AUTH was refused: {e}"),
                    "Redis refused the login: check the username and password, and that the ACL user is enabled (ACL SETUSER … on)",
                )
            })?;
        }
        if db != 0 {
            redis::cmd("SELECT")
                .arg(db)
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| {
                    (
                        format!("SELECT {db} was refused: {e}"),
                        "check the database number (the server's `databases` setting bounds it) and the user's permissions",
                    )
                })?;
        }
        let pong: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|e| {
                let text = e.to_string();
                let hint = if text.contains("NOAUTH") {
                    "the server requires a password: give credentials.password"
                } else {
                    "check the user's permissions (PING must be allowed)"
                };
                (format!("PING failed: {text}"), hint)
            })?;
        if pong != "PONG" {
            return Err((
                format!("PING answered `{}`", pong.chars().take(40).collect::<String>()),
                "check that the address is a Redis server",
            ));
        }
        Ok(())
    }
    .await;
    drop(conn);
    driver.abort();
    result
}
