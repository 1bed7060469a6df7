//! Latchkey's store on SQLite (embedded) or PostgreSQL (cluster): one implementation of
//! [`latchkey_core::store::Store`] whose queries run unchanged on both backends.

#![warn(clippy::too_many_lines, clippy::unwrap_used)]
#![warn(missing_docs)]

use latchkey_core::store::{Store, StoreResult};
use latchkey_core::StoreError;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Postgres, Sqlite, Transaction};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Runs `$body` with `$p` bound to the pool of whichever backend `$db` holds; the body is
/// compiled once per backend, so the same SQL and binds serve both.
macro_rules! with_pool {
    ($db:expr, $p:ident => $body:expr) => {
        match $db {
            $crate::Db::Sqlite($p) => $body,
            $crate::Db::Postgres($p) => $body,
        }
    };
}

#[cfg(feature = "conformance")]
pub mod conformance;
mod connect_sessions;
mod connections;
mod error;
mod events;
mod flows;
mod health;
mod keys;
mod oauth;
mod pool_levels;
mod rows;
mod sessions;
mod slots;
#[cfg(feature = "testing")]
pub mod testing;
mod users;
mod webhooks;
mod workspaces;

use error::DbResult;
pub use error::{redact_url, round_trips};

const SQLITE_MAX_CONNECTIONS: u32 = 8;
const POSTGRES_MAX_CONNECTIONS: u32 = 16;

/// The pool of the backend in use.
#[derive(Debug, Clone)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A write transaction on either pool, plus the little SQL that cannot be shared.
pub(crate) trait WritePool {
    type Database: sqlx::Database;
    /// Appended to a `SELECT` that must lock the rows it reads until commit.
    const FOR_UPDATE: &'static str;
    async fn begin_write(&self) -> Result<Transaction<'static, Self::Database>, sqlx::Error>;
}

impl WritePool for SqlitePool {
    type Database = Sqlite;
    // BEGIN IMMEDIATE already holds the database's single write lock.
    const FOR_UPDATE: &'static str = "";
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        // Taking the write lock up front lets busy_timeout apply; a deferred transaction that
        // reads first fails at once with SQLITE_BUSY when it later tries to write.
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl WritePool for PgPool {
    type Database = Postgres;
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.begin().await
    }
}

/// The row-locking suffix of the pool's backend.
pub(crate) fn for_update<P: WritePool>(_pool: &P) -> &'static str {
    P::FOR_UPDATE
}

/// The store over SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct SqlStore {
    db: Db,
}

/// Opens (creating if needed) the database at `database_url` and runs its migrations.
///
/// Accepts `sqlite://PATH` (or `sqlite::memory:`) and `postgres://…` / `postgresql://…`.
pub async fn open(database_url: &str) -> Result<Arc<dyn Store>, StoreError> {
    let store = SqlStore::open(database_url).await?;
    Ok(Arc::new(store))
}

impl SqlStore {
    /// Like [`open`], returning the concrete type.
    pub async fn open(database_url: &str) -> Result<Self, StoreError> {
        // The driver's text may quote the URL: the message is scrubbed, and the source (which
        // would print it unscrubbed) is not kept.
        let fail = |what: &str, e: sqlx::Error| {
            let text = error::scrub(&e.to_string(), database_url);
            let message = format!("{what} {}: {text}", redact_url(database_url));
            match error::classify(e) {
                StoreError::Unavailable { .. } => StoreError::Unavailable {
                    message,
                    source: None,
                },
                _ => StoreError::backend(message),
            }
        };
        let db = if database_url.starts_with("sqlite:") {
            let pool = sqlite_pool(database_url)
                .await
                .map_err(|e| fail("cannot open", e))?;
            sqlx::migrate!("./migrations/sqlite")
                .run(&pool)
                .await
                .map_err(|e| fail("cannot migrate", e.into()))?;
            Db::Sqlite(pool)
        } else if database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://")
        {
            let options =
                PgConnectOptions::from_str(database_url).map_err(|e| fail("cannot parse", e))?;
            // No ping before every query (it was an eighth of the hot path's CPU); a broken
            // connection fails its query once and leaves the pool.
            let pool = PgPoolOptions::new()
                .max_connections(POSTGRES_MAX_CONNECTIONS)
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(10))
                // After the database was unreachable (a restart), connections opened before
                // are dropped rather than failing their next statement.
                .before_acquire(|_conn, meta| {
                    Box::pin(async move { Ok(!error::outage::predates_last(meta.age)) })
                })
                .connect_with(options)
                .await
                .map_err(|e| fail("cannot connect to", e))?;
            sqlx::migrate!("./migrations/postgres")
                .run(&pool)
                .await
                .map_err(|e| fail("cannot migrate", e.into()))?;
            Db::Postgres(pool)
        } else {
            return Err(StoreError::backend(format!(
                "unsupported database URL scheme in {}: use sqlite://PATH or postgres://…",
                redact_url(database_url)
            )));
        };
        tracing::debug!(url = %redact_url(database_url), "store opened");
        Ok(Self { db })
    }

    /// Closes every pooled connection (waits for those in use to come back).
    pub async fn close(&self) {
        with_pool!(&self.db, p => p.close().await)
    }
}

async fn sqlite_pool(url: &str) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true)
        .synchronous(SqliteSynchronous::Normal);
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    if !in_memory {
        if let Some(dir) = options.get_filename().parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
    }
    let pool = if in_memory {
        // An in-memory database lives as long as one connection does, and shared-cache
        // connections fail with SQLITE_LOCKED instead of waiting: keep exactly one, forever.
        SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        SqlitePoolOptions::new()
            .max_connections(SQLITE_MAX_CONNECTIONS)
            .test_before_acquire(false)
    };
    pool.connect_with(options).await
}

#[async_trait::async_trait]
impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    async fn ping(&self) -> StoreResult<()> {
        with_pool!(&self.db, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ())).db()?;
        Ok(())
    }
}
