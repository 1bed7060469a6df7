//! Values `latchkey run` makes from a connection's fields rather than passing one as it is:
//! a private key written to a file (`CONN.private_key_file`), and a Redis connection URL
//! (`CONN.url`).
//!
//! Key files live in one private directory (mode 0700) made for the run, each file mode 0600;
//! the directory is removed when the command ends, however it ends (exit, failure, Ctrl-C, or
//! this process being asked to stop).

use crate::client::Failure;
use serde_json::{Map, Value};
use std::io::Write;
use std::path::PathBuf;

/// The field that asks for a private key as a file.
pub const KEY_FILE_FIELD: &str = "private_key_file";
/// The field that asks for a Redis connection's URL.
pub const URL_FIELD: &str = "url";

/// The private directory of one run's key files, removed when dropped.
#[derive(Default)]
pub struct KeyFiles {
    dir: Option<tempfile::TempDir>,
    written: Vec<(String, PathBuf)>,
}

impl KeyFiles {
    /// The path of a file holding `key` (the same file for the same connection).
    pub fn file_for(&mut self, connection: &str, key: &str) -> Result<String, Failure> {
        if let Some((_, p)) = self.written.iter().find(|(c, _)| c == connection) {
            return Ok(p.display().to_string());
        }
        let cannot = |e: std::io::Error| {
            Failure::new(format!("cannot write the private key file: {e}"))
                .with_hint("check that the temporary directory (TMPDIR) is writable")
        };
        if self.dir.is_none() {
            let dir = tempfile::Builder::new()
                .prefix("latchkey-run-")
                .tempdir()
                .map_err(cannot)?;
            // Private before any key is in it, whatever the umask made it.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
                    .map_err(cannot)?;
            }
            self.dir = Some(dir);
        }
        let dir = self.dir.as_ref().map(|d| d.path().to_path_buf());
        let path = dir
            .unwrap_or_default()
            .join(format!("key-{}", self.written.len() + 1));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&path).map_err(cannot)?;
        let mut text = key.replace("\r\n", "\n");
        if !text.ends_with('\n') {
            // OpenSSH refuses a key file without a final line break.
            text.push('\n');
        }
        file.write_all(text.as_bytes()).map_err(cannot)?;
        file.sync_all().map_err(cannot)?;
        self.written.push((connection.to_string(), path.clone()));
        Ok(path.display().to_string())
    }

    /// Removes the directory now (also done on drop).
    pub fn remove(&mut self) {
        if let Some(d) = self.dir.take() {
            let _ = d.close();
        }
        self.written.clear();
    }
}

/// A Redis connection's URL: `redis://` (or `rediss://` with `tls` = `require`), the user and
/// password percent-encoded, the database as the path.
pub fn redis_url(conn: &Value, creds: &Map<String, Value>) -> Result<String, Failure> {
    let field = |n: &str| match creds.get(n) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let tls = conn
        .pointer("/settings/tls")
        .and_then(Value::as_str)
        .is_some_and(|t| t == "require");
    let scheme = if tls { "rediss" } else { "redis" };
    let host = field("host");
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    let port = field("port");
    let port = if port.is_empty() { "6379".into() } else { port };
    let db = field("database");
    let db = if db.is_empty() { "0".into() } else { db };
    let bad = || {
        Failure::new("the connection's host and port do not make a URL")
            .with_hint("check them with `latchkey connection show`")
    };
    let mut url = url::Url::parse(&format!("{scheme}://{host}:{port}/{db}")).map_err(|_| bad())?;
    let (user, password) = (field("username"), field("password"));
    if !user.is_empty() {
        url.set_username(&user).map_err(|_| bad())?;
    }
    if !password.is_empty() {
        url.set_password(Some(&password)).map_err(|_| bad())?;
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redis_urls_encode_the_login() {
        let conn = json!({"settings": {"tls": "require"}});
        let creds = json!({"host": "cache.example.com", "port": "6380", "database": "2",
            "username": "etl", "password": "p@ss:w/rd"});
        assert_eq!(
            redis_url(&conn, creds.as_object().unwrap()).unwrap(),
            "rediss://etl:p%40ss%3Aw%2Frd@cache.example.com:6380/2"
        );
        let plain = json!({"host": "127.0.0.1", "port": "6379"});
        assert_eq!(
            redis_url(&json!({}), plain.as_object().unwrap()).unwrap(),
            "redis://127.0.0.1:6379/0"
        );
    }

    #[cfg(unix)]
    #[test]
    fn key_files_are_private_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let mut files = KeyFiles::default();
        let path = files.file_for("sftp", "-----BEGIN KEY-----").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let dir = std::path::Path::new(&path).parent().unwrap().to_path_buf();
        let dmode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(dmode & 0o777, 0o700);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "-----BEGIN KEY-----\n"
        );
        assert_eq!(files.file_for("sftp", "x").unwrap(), path);
        drop(files);
        assert!(!dir.exists());
    }
}
