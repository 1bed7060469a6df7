//! Turning driver errors into [`StoreError`]s, and keeping passwords out of them.

use latchkey_core::StoreError;
use sqlx::error::DatabaseError;

/// SQLite names the columns of a broken unique rule, PostgreSQL the constraint; both map to
/// the constraint names of the PostgreSQL schema, which the store's callers match on.
const SQLITE_UNIQUE_RULES: &[(&str, &str)] = &[
    ("workspaces.slug", "workspace_slug"),
    (
        "connections.workspace_id, connections.name",
        "connection_name",
    ),
    ("flows.workspace_id, flows.name", "flow_name"),
    ("api_keys.hash", "api_key_hash"),
    (
        "flow_connections.flow_id, flow_connections.connection_id",
        "flow_connection",
    ),
    (
        "oauth_clients.workspace_id, oauth_clients.app",
        "oauth_client",
    ),
    ("oauth_states.state_hash", "oauth_state"),
    ("pool_slots.pool_id, pool_slots.slot", "pool_slot"),
    ("workspaces.id", "workspace_id"),
    ("data_keys.id", "data_key_id"),
    ("connections.id", "connection_id"),
    ("flows.id", "flow_id"),
    ("api_keys.id", "api_key_id"),
    ("events.id", "event_id"),
    ("users.email", "user_email"),
    ("users.sso_subject", "user_sso_subject"),
    ("users.id", "user_id"),
    (
        "memberships.workspace_id, memberships.user_id",
        "membership",
    ),
];

/// Maps a driver error: unique violations become `Duplicate`, a missing referenced row
/// (foreign key) becomes `Stale`, a database that cannot be reached `Unavailable`, the rest
/// `Backend`. The driver's error stays the source.
pub(crate) fn classify(err: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &err {
        if db.is_unique_violation() {
            return StoreError::Duplicate {
                constraint: unique_constraint(db.as_ref()),
            };
        }
        if db.is_foreign_key_violation() {
            return StoreError::Stale;
        }
    }
    let message = err.to_string();
    if lost_connection(&err) {
        outage::seen();
    }
    if lost_connection(&err) || is_unavailable(&err) {
        return StoreError::Unavailable {
            message,
            source: Some(Box::new(err)),
        };
    }
    StoreError::Backend {
        message,
        source: Some(Box::new(err)),
    }
}

/// Whether the connection itself broke: I/O on it, or PostgreSQL's connection-exception class
/// (`08…`) and shutdown codes (`57P01`-`57P03`). Connections opened before are suspect.
fn lost_connection(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

/// Whether the database is busy or away rather than refusing the statement: no pooled
/// connection in time (every connect attempt refused, or all in use), a closed pool, or
/// PostgreSQL's too-many-connections (`53300`). Connections already open are not suspect.
fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| c == "53300"),
        _ => false,
    }
}

/// When the database was last found unreachable, so that pooled connections opened before
/// that moment are dropped instead of being used (each would fail its first statement once
/// the database is back). One clock per process: a connection of another pool dropped for
/// nothing only costs a reconnect.
pub(crate) mod outage {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    static START: OnceLock<Instant> = OnceLock::new();
    /// Milliseconds after `START` of the last outage, plus one (0: none yet).
    static LAST: AtomicU64 = AtomicU64::new(0);

    fn start() -> Instant {
        *START.get_or_init(Instant::now)
    }

    /// Records that the database was unreachable just now.
    pub(crate) fn seen() {
        let at = start().elapsed().as_millis() as u64 + 1;
        LAST.fetch_max(at, Ordering::Relaxed);
    }

    /// Whether a pooled connection of this age was opened before the last outage.
    pub(crate) fn predates_last(age: Duration) -> bool {
        let last = LAST.load(Ordering::Relaxed);
        if last == 0 {
            return false;
        }
        let outage = start() + Duration::from_millis(last - 1);
        Instant::now()
            .checked_sub(age)
            .is_none_or(|opened| opened <= outage)
    }
}

/// Statements (and transaction begins and commits) sent to the database by this process:
/// the background work's cost is measured with it.
static ROUND_TRIPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many statements, begins and commits this process has sent to its stores.
pub fn round_trips() -> u64 {
    ROUND_TRIPS.load(std::sync::atomic::Ordering::Relaxed)
}

fn unique_constraint(db: &dyn DatabaseError) -> String {
    if let Some(name) = db.constraint() {
        return name.to_string();
    }
    let message = db.message();
    let columns = message
        .split_once("UNIQUE constraint failed: ")
        .map(|(_, cols)| cols.trim())
        .unwrap_or_default();
    SQLITE_UNIQUE_RULES
        .iter()
        .find(|(cols, _)| *cols == columns)
        .map(|(_, name)| (*name).to_string())
        .unwrap_or_else(|| format!("unknown ({columns})"))
}

/// `?`-friendly conversion of driver results.
pub(crate) trait DbResult<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T> DbResult<T> for Result<T, sqlx::Error> {
    fn db(self) -> Result<T, StoreError> {
        ROUND_TRIPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.map_err(classify)
    }
}

/// A row that does not decode into the model (hand-edited or corrupt).
pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::backend(format!("stored {what} is invalid: {detail}"))
}

/// The URL with its password replaced by `***`, for messages.
pub fn redact_url(url: &str) -> String {
    match password_span(url) {
        Some((start, end)) => format!("{}***{}", &url[..start], &url[end..]),
        None => url.to_string(),
    }
}

/// Removes the URL's password (as written and percent-decoded) from text a driver produced.
pub(crate) fn scrub(text: &str, url: &str) -> String {
    let mut text = text.replace(url, &redact_url(url));
    if let Some((start, end)) = password_span(url) {
        let written = &url[start..end];
        for password in [written.to_string(), percent_decode(written)] {
            if !password.is_empty() {
                text = text.replace(&password, "***");
            }
        }
    }
    text
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Byte range of the password in `scheme://user:password@host…`, if there is one.
fn password_span(url: &str) -> Option<(usize, usize)> {
    let authority_start = url.find("://")? + 3;
    let rest = &url[authority_start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest[..authority_end].rfind('@')?;
    let colon = rest[..at].find(':')?;
    Some((authority_start + colon + 1, authority_start + at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_survive() {
        let url = "postgres://app:s3cr%40t@db.example:5432/latchkey";
        assert_eq!(
            redact_url(url),
            "postgres://app:***@db.example:5432/latchkey"
        );
        let said = format!("error connecting to {url}: password s3cr@t rejected");
        let clean = scrub(&said, url);
        assert!(!clean.contains("s3cr"), "{clean}");
        assert_eq!(redact_url("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db");
        assert_eq!(
            redact_url("postgres://app@host/db"),
            "postgres://app@host/db"
        );
    }
}
