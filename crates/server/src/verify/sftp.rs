//! SFTP connections: an SSH handshake whose host key is checked against the pinned fingerprint,
//! a login with the private key or the password, and a directory listing over SFTP.
//!
//! The host key is trusted on first use: a connection without `host_key_fingerprint` pins the
//! key the server shows at its first successful check (see [`verify_and_pin`]); from then on a
//! different key fails the check, whoever asks (an edit, `POST …/verify`, a health probe).

use super::failed;
use crate::outbound::Outbound;
use latchkey_core::catalog::AppEntry;
use latchkey_core::secret::SecretFields;
use latchkey_core::CoreError;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use serde_json::{json, Map, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The setting that holds the pinned host key fingerprint.
pub const FINGERPRINT: &str = "host_key_fingerprint";
const TIMEOUT: Duration = Duration::from_secs(15);

/// Checks the fingerprint setting's form (`SHA256:` and 43 characters of unpadded base64, as
/// `ssh-keygen -lf` prints it).
pub fn check_settings(settings: &Map<String, Value>) -> Result<(), CoreError> {
    let Some(v) = settings.get(FINGERPRINT) else {
        return Ok(());
    };
    let ok = v.as_str().is_some_and(|s| {
        s.strip_prefix("SHA256:").is_some_and(|b| {
            b.len() == 43
                && b.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
        })
    });
    if ok {
        return Ok(());
    }
    Err(CoreError::invalid_with_hint(
        format!("settings.{FINGERPRINT}"),
        "the host key fingerprint must be SHA256: followed by 43 base64 characters",
        "copy it from `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the server, or leave it out to pin the key shown at the first check",
    ))
}

/// Checks the credential fields beyond their types: a password or a private key (or both), and
/// a key that parses and has no passphrase.
pub fn check_credentials(creds: &SecretFields, partial: bool) -> Result<(), CoreError> {
    let has = |n: &str| creds.expose(n).is_some_and(|v| !v.is_empty());
    if !partial && !has("password") && !has("private_key") {
        return Err(CoreError::invalid_with_hint(
            "credentials.password",
            "an SFTP connection needs a password or a private key",
            "give credentials.password, credentials.private_key, or both",
        ));
    }
    if let Some(k) = creds.expose("private_key").filter(|k| !k.is_empty()) {
        parse_key(k)?;
    }
    Ok(())
}

/// A private key in OpenSSH or PEM (PKCS#1, PKCS#8, SEC1) form, without a passphrase. Lines
/// are trimmed first, so a key pasted with indentation or Windows line ends still reads.
pub fn parse_key(text: &str) -> Result<PrivateKey, CoreError> {
    let normalized: String = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    match russh::keys::decode_secret_key(&normalized, None) {
        Ok(k) => Ok(k),
        Err(russh::keys::Error::KeyIsEncrypted) => Err(CoreError::invalid_with_hint(
            "credentials.private_key",
            "the private key is protected by a passphrase",
            "Latchkey encrypts stored keys itself and takes keys without a passphrase: remove it with `ssh-keygen -p -N '' -f KEYFILE` and paste the key again",
        )),
        Err(e) => Err(CoreError::invalid_with_hint(
            "credentials.private_key",
            format!("the private key could not be read: {e}"),
            "give an OpenSSH (-----BEGIN OPENSSH PRIVATE KEY-----) or PEM private key (RSA, ECDSA or Ed25519)",
        )),
    }
}

/// The host key check of one handshake: what the server showed, and whether it matched.
struct HostKeyCheck {
    pinned: Option<String>,
    seen: Arc<Mutex<Option<String>>>,
}

impl russh::client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let public = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(c) => c.public_key().clone().into(),
        };
        let fp = public.fingerprint(HashAlg::Sha256).to_string();
        let matches = self.pinned.as_deref().is_none_or(|p| p == fp);
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(fp);
        }
        Ok(matches)
    }
}

/// Verifies an SFTP connection and answers the server's host key fingerprint.
pub async fn verify(
    outbound: &Outbound,
    app: &AppEntry,
    settings: &Map<String, Value>,
    creds: &SecretFields,
) -> Result<String, CoreError> {
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
    let user = creds.expose("username").unwrap_or_default().to_string();
    let path = settings
        .get("path")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .unwrap_or(".")
        .to_string();
    let pinned = settings
        .get(FINGERPRINT)
        .and_then(Value::as_str)
        .map(str::to_string);
    let key = match creds.expose("private_key").filter(|k| !k.is_empty()) {
        Some(k) => Some(parse_key(k)?),
        None => None,
    };
    let password = creds
        .expose("password")
        .filter(|p| !p.is_empty())
        .map(str::to_string);
    let target = format!("{host}:{port} as {user}");
    let ip = outbound.check_host(&host, port).await.map_err(|e| {
        failed(
            format!("{} at {target} was not contacted: {e}", app.name),
            "set LATCHKEY_OUTBOUND_ALLOW on the server to let Latchkey reach this address, if it should",
            json!({ "target": target }),
        )
    })?;
    let seen = Arc::new(Mutex::new(None));
    let handler = HostKeyCheck {
        pinned: pinned.clone(),
        seen: seen.clone(),
    };
    let login = Login {
        user: &user,
        key,
        password,
        path: &path,
    };
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect((ip, port))
            .await
            .map_err(Step::Connect)?;
        let config = Arc::new(russh::client::Config {
            inactivity_timeout: Some(TIMEOUT),
            ..Default::default()
        });
        let session = russh::client::connect_stream(config, tcp, handler)
            .await
            .map_err(Step::Handshake)?;
        login.run(session).await
    };
    let outcome = tokio::time::timeout(TIMEOUT, attempt).await;
    let seen = seen.lock().ok().and_then(|s| s.clone());
    let fail = |message: String, hint: &str| {
        failed(
            format!("{} at {target}: {message}", app.name),
            hint,
            json!({ "target": target, "host_key_fingerprint": seen }),
        )
    };
    match outcome {
        Err(_) => Err(fail(
            format!("no answer within {} s", TIMEOUT.as_secs()),
            "check host and port, and that a firewall lets the Latchkey server reach the SFTP server",
        )),
        Ok(Ok(())) => match seen.clone() {
            Some(fp) => Ok(fp),
            None => Err(fail(
                "the server showed no host key".into(),
                "check that the address is an SSH server",
            )),
        },
        Ok(Err(step)) => Err(step_failure(step, pinned.as_deref(), seen.as_deref(), fail)),
    }
}

/// Where an attempt stopped.
enum Step {
    Connect(std::io::Error),
    Handshake(russh::Error),
    /// The server refused every method tried (their names).
    Refused(Vec<&'static str>),
    Auth(russh::Error),
    Channel(russh::Error),
    Sftp(String),
    List(String),
}

struct Login<'a> {
    user: &'a str,
    key: Option<PrivateKey>,
    password: Option<String>,
    path: &'a str,
}

impl Login<'_> {
    async fn run(self, mut session: russh::client::Handle<HostKeyCheck>) -> Result<(), Step> {
        let mut tried = Vec::new();
        let mut ok = false;
        if let Some(key) = self.key {
            tried.push("private key");
            let hash = session
                .best_supported_rsa_hash()
                .await
                .map_err(Step::Auth)?
                .flatten();
            let with_hash = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
            ok = session
                .authenticate_publickey(self.user, with_hash)
                .await
                .map_err(Step::Auth)?
                .success();
        }
        if !ok {
            if let Some(pw) = self.password {
                tried.push("password");
                ok = session
                    .authenticate_password(self.user, pw)
                    .await
                    .map_err(Step::Auth)?
                    .success();
            }
        }
        if !ok {
            return Err(Step::Refused(tried));
        }
        let channel = session
            .channel_open_session()
            .await
            .map_err(Step::Channel)?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(Step::Channel)?;
        let sftp = russh_sftp::client::SftpSession::new(channel.into_stream())
            .await
            .map_err(|e| Step::Sftp(e.to_string()))?;
        let listed = sftp.read_dir(self.path).await;
        let _ = sftp.close().await;
        let _ = session
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
        listed
            .map(|_| ())
            .map_err(|e| Step::List(format!("listing `{}` failed: {e}", self.path)))
    }
}

fn step_failure(
    step: Step,
    pinned: Option<&str>,
    seen: Option<&str>,
    fail: impl Fn(String, &str) -> CoreError,
) -> CoreError {
    match step {
        Step::Handshake(_) if pinned.is_some() && seen.is_some() && pinned != seen => {
            let (was, now) = (pinned.unwrap_or_default(), seen.unwrap_or_default());
            let hint = format!(
                "the server's host key changed from {was} to {now}; if this is expected, clear host_key_fingerprint or set the new one"
            );
            fail(
                format!("the server's host key changed: it is {now}, but {was} is pinned"),
                &hint,
            )
        }
        Step::Connect(e) => fail(
            format!("could not connect: {e}"),
            "check the host and port, and that the SFTP server accepts connections from the Latchkey server",
        ),
        Step::Handshake(e) => fail(
            format!("the SSH handshake failed: {e}"),
            "check that the host and port are an SSH server's",
        ),
        Step::Refused(tried) => fail(
            format!("the server refused the login ({} tried)", tried.join(", then ")),
            "check the username and the password or private key (and that the key's public half is in the account's authorized_keys)",
        ),
        Step::Auth(e) => fail(
            format!("the login failed: {e}"),
            "check the username and the password or private key",
        ),
        Step::Channel(e) => fail(
            format!("the server did not open an SFTP session: {e}"),
            "check that the server offers the sftp subsystem to this account",
        ),
        Step::Sftp(e) => fail(
            format!("the SFTP session failed: {e}"),
            "check that the server offers the sftp subsystem to this account",
        ),
        Step::List(e) => fail(
            e,
            "check the path setting: the directory must exist and the account must be allowed to list it",
        ),
    }
}

/// [`verify`], pinning the host key in the settings when none is pinned yet.
pub async fn verify_and_pin(
    outbound: &Outbound,
    app: &AppEntry,
    settings: &mut Map<String, Value>,
    creds: &SecretFields,
) -> Result<(), CoreError> {
    let fp = verify(outbound, app, settings, creds).await?;
    settings.entry(FINGERPRINT).or_insert(Value::String(fp));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_have_the_ssh_keygen_form() {
        let mut s = Map::new();
        s.insert(
            FINGERPRINT.into(),
            json!("SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"),
        );
        assert!(check_settings(&s).is_ok());
        for bad in [
            "uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s",
            "SHA256:short",
            "MD5:aa:bb",
        ] {
            s.insert(FINGERPRINT.into(), json!(bad));
            assert!(check_settings(&s).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_key_that_does_not_parse_names_the_field() {
        let e = parse_key(
            "-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n-----END OPENSSH PRIVATE KEY-----",
        )
        .unwrap_err();
        assert!(
            matches!(&e, CoreError::Invalid { field, .. } if field == "credentials.private_key"),
            "{e:?}"
        );
    }
}
