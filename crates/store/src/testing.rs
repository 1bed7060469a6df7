//! Helpers for tests that need a real PostgreSQL: a fresh database per test, dropped after.

// Test support: a failed step is a failed test, so it may panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::redact_url;
use sqlx::{Connection, PgConnection};

/// The variable naming an admin URL of a PostgreSQL the tests may create databases on.
pub const POSTGRES_URL_VAR: &str = "LATCHKEY_TEST_POSTGRES_URL";

/// Drops its throwaway database when dropped (best effort, connections forced out).
#[derive(Debug)]
pub struct PostgresGuard {
    admin_url: String,
    database: String,
}

impl PostgresGuard {
    /// The throwaway database's name.
    pub fn database(&self) -> &str {
        &self.database
    }
}

impl Drop for PostgresGuard {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let database = self.database.clone();
        // Drop may run inside a runtime, which cannot block on another future: use a thread
        // with a runtime of its own, and wait for it so the process does not exit first.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin_url)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                conn.close().await.map_err(|e| e.to_string())
            })
        });
        match dropper.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop test database {}: {e}", self.database),
            Err(_) => eprintln!("could not drop test database {}", self.database),
        }
    }
}

/// A fresh, empty database on the PostgreSQL named by `LATCHKEY_TEST_POSTGRES_URL`, with a
/// guard that drops it. `None` (after saying so) when the variable is unset, except under CI,
/// where a missing database is a failure: CI never skips.
pub async fn throwaway_postgres() -> Option<(String, PostgresGuard)> {
    let admin_url = match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!("{POSTGRES_URL_VAR} is not set, and CI never skips the PostgreSQL tests");
            }
            eprintln!("skipping: {POSTGRES_URL_VAR} is not set");
            return None;
        }
    };
    let shown = redact_url(&admin_url);
    let mut url = url::Url::parse(&admin_url)
        .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} ({shown}) is not a URL: {e}"));
    let database = format!("latchkey_test_{:016x}", rand::random::<u64>());
    let mut conn = PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {shown}: {e}"));
    sqlx::query(&format!("CREATE DATABASE {database}"))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("cannot create database {database} on {shown}: {e}"));
    let _ = conn.close().await;
    url.set_path(&format!("/{database}"));
    Some((
        url.to_string(),
        PostgresGuard {
            admin_url,
            database,
        },
    ))
}
