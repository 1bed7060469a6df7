//! Direct SQL on a Latchkey store: expiring a stored token (as the OAuth tests do) and
//! bulk-inserting copies of one connection for the scale figure. The copies take every column
//! of the source row (read from the schema, so that new migrations need no change here) except
//! `id` and `name`; their sealed columns are copies too, which is fine since only listing and
//! the one real connection's token are measured.

use anyhow::Context;
use latchkey_core::ids::ConnectionId;
use sqlx::{Connection, PgConnection, SqliteConnection};

/// Rows per INSERT statement.
const BATCH: usize = 5_000;

fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite")
}

/// Marks the stored token of connection `name` expired and bumps its version.
pub async fn expire_stored_token(database_url: &str, name: &str) -> anyhow::Result<()> {
    if is_sqlite(database_url) {
        let mut c = SqliteConnection::connect(database_url).await?;
        sqlx::query("UPDATE connections SET token_meta = json_set(token_meta, '$.expires_at', '2000-01-01T00:00:00Z'), version = version + 1 WHERE name = $1")
            .bind(name)
            .execute(&mut c)
            .await?;
        c.close().await?;
    } else {
        let mut c = PgConnection::connect(database_url).await?;
        sqlx::query("UPDATE connections SET token_meta = jsonb_set(token_meta::jsonb, '{expires_at}', '\"2000-01-01T00:00:00Z\"')::text, version = version + 1 WHERE name = $1")
            .bind(name)
            .execute(&mut c)
            .await?;
        c.close().await?;
    }
    Ok(())
}

/// The number of rows in `connections`.
pub async fn count_connections(database_url: &str) -> anyhow::Result<i64> {
    count(database_url, "SELECT COUNT(*) FROM connections").await
}

/// How many connections have no first probe placed yet (their schedule row is new).
pub async fn count_unplaced(database_url: &str) -> anyhow::Result<i64> {
    let sql = "SELECT COUNT(*) FROM connection_health WHERE probe_at IS NULL";
    count(database_url, sql).await
}

/// The one number `sql` answers, on SQLite or PostgreSQL.
async fn count(database_url: &str, sql: &str) -> anyhow::Result<i64> {
    let n: i64 = if is_sqlite(database_url) {
        let mut c = SqliteConnection::connect(database_url).await?;
        sqlx::query_scalar(sql).fetch_one(&mut c).await?
    } else {
        let mut c = PgConnection::connect(database_url).await?;
        sqlx::query_scalar(sql).fetch_one(&mut c).await?
    };
    Ok(n)
}

/// Inserts `count` copies of connection `source` (by name) named `{prefix}-{n}`.
pub async fn clone_connections(
    database_url: &str,
    source: &str,
    prefix: &str,
    start: usize,
    count: usize,
) -> anyhow::Result<()> {
    let rows: Vec<(String, String)> = (start..start + count)
        .map(|i| {
            (
                ConnectionId::generate().as_str().to_string(),
                format!("{prefix}-{i:06}"),
            )
        })
        .collect();
    if is_sqlite(database_url) {
        clone_sqlite(database_url, source, &rows).await
    } else {
        clone_postgres(database_url, source, &rows).await
    }
}

const HEALTH_ROWS: &str = "INSERT INTO connection_health (connection_id, workspace_id, due_at) \
     SELECT c.id, c.workspace_id, 0 FROM connections c WHERE NOT EXISTS \
     (SELECT 1 FROM connection_health h WHERE h.connection_id = c.id)";

/// `col, col, …` and `expr, expr, …` with `id` and `name` taken from the new rows.
fn columns(cols: &[String], id: &str, name: &str) -> (String, String) {
    let list = cols.join(", ");
    let exprs = cols
        .iter()
        .map(|c| match c.as_str() {
            "id" => id.to_string(),
            "name" => name.to_string(),
            other => format!("src.{other}"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    (list, exprs)
}

async fn clone_sqlite(url: &str, source: &str, rows: &[(String, String)]) -> anyhow::Result<()> {
    let mut c = SqliteConnection::connect(url).await?;
    let cols: Vec<String> =
        sqlx::query_scalar("SELECT name FROM pragma_table_info('connections') ORDER BY cid")
            .fetch_all(&mut c)
            .await?;
    let (list, exprs) = columns(
        &cols,
        "json_extract(j.value, '$[0]')",
        "json_extract(j.value, '$[1]')",
    );
    let sql = format!(
        "INSERT INTO connections ({list}) SELECT {exprs} FROM connections AS src, json_each($1) AS j WHERE src.name = $2"
    );
    let mut tx = c.begin().await?;
    for chunk in rows.chunks(BATCH) {
        let json = serde_json::to_string(&chunk.iter().map(|(i, n)| [i, n]).collect::<Vec<_>>())?;
        let done = sqlx::query(&sql)
            .bind(json)
            .bind(source)
            .execute(&mut *tx)
            .await?;
        anyhow::ensure!(
            done.rows_affected() == chunk.len() as u64,
            "connection `{source}` not found"
        );
    }
    // Every connection has a health row (the background probe schedule): copies get theirs the
    // way a new connection does, due at once so the server places their first probe at a
    // random point of the interval. The scale figure thus runs with probes on.
    sqlx::query(HEALTH_ROWS)
        .execute(&mut *tx)
        .await
        .context("health rows")?;
    tx.commit().await?;
    c.close().await?;
    Ok(())
}

async fn clone_postgres(url: &str, source: &str, rows: &[(String, String)]) -> anyhow::Result<()> {
    let mut c = PgConnection::connect(url).await?;
    let cols: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'connections' ORDER BY ordinal_position",
    )
    .fetch_all(&mut c)
    .await?;
    let (list, exprs) = columns(&cols, "u.id", "u.name");
    let sql = format!(
        "INSERT INTO connections ({list}) SELECT {exprs} FROM connections AS src, unnest($1::text[], $2::text[]) AS u(id, name) WHERE src.name = $3"
    );
    let mut tx = c.begin().await?;
    for chunk in rows.chunks(BATCH) {
        let ids: Vec<&str> = chunk.iter().map(|(i, _)| i.as_str()).collect();
        let names: Vec<&str> = chunk.iter().map(|(_, n)| n.as_str()).collect();
        let done = sqlx::query(&sql)
            .bind(&ids)
            .bind(&names)
            .bind(source)
            .execute(&mut *tx)
            .await
            .context("bulk insert")?;
        anyhow::ensure!(
            done.rows_affected() == chunk.len() as u64,
            "connection `{source}` not found"
        );
    }
    // Every connection has a health row (the background probe schedule): copies get theirs the
    // way a new connection does, due at once so the server places their first probe at a
    // random point of the interval. The scale figure thus runs with probes on.
    sqlx::query(HEALTH_ROWS)
        .execute(&mut *tx)
        .await
        .context("health rows")?;
    tx.commit().await?;
    sqlx::query("ANALYZE connections").execute(&mut c).await?;
    c.close().await?;
    Ok(())
}

/// The stored `probe_at` of a connection whose probes are off (as the store writes it).
const PROBE_OFF: i64 = 253_402_300_799_000;

/// How the copies of the probes figure are probed.
#[derive(Clone, Copy, Debug)]
pub enum Probes {
    /// Never: their schedule rows are parked at the end of time.
    Off,
    /// Spread over `interval_ms` from now, as the server places new connections: at the
    /// default interval, every copy once per interval.
    Spread { interval_ms: i64 },
}

/// Sets the probe schedule of every copy named `{prefix}-…` (PostgreSQL). The copies' sealed
/// credentials belong to another connection (a ciphertext is bound to its own record), so they
/// are stored without one and marked `failing` as a fleet of long-broken connections would be:
/// each probe then makes its real request (the upstream refuses it) and changes no status, so
/// what it costs the store is what a steady probe costs.
pub async fn set_copy_probes(
    database_url: &str,
    prefix: &str,
    probes: Probes,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        !is_sqlite(database_url),
        "the probes figure runs on PostgreSQL"
    );
    let mut c = PgConnection::connect(database_url).await?;
    let like = format!("{prefix}-%");
    // The running server's health sweep claims and updates the same rows, in its own order:
    // PostgreSQL may end a deadlock by aborting this transaction, which is then run again.
    let mut attempt = 1;
    loop {
        match set_probes_once(&mut c, &like, probes).await {
            Err(e) if attempt < DEADLOCK_ATTEMPTS && is_deadlock(&e) => {
                eprintln!("  a deadlock with the server's health sweep; setting the probes again");
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            done => {
                done?;
                break;
            }
        }
    }
    c.close().await?;
    Ok(())
}

/// How many times [`set_copy_probes`] runs its transaction when PostgreSQL ends it for a deadlock.
const DEADLOCK_ATTEMPTS: u32 = 5;

/// Whether `e` is PostgreSQL's "deadlock detected" (SQLSTATE 40P01).
fn is_deadlock(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<sqlx::Error>())
        .filter_map(|e| e.as_database_error())
        .any(|d| d.code().as_deref() == Some("40P01"))
}

/// One attempt of [`set_copy_probes`]: one transaction.
async fn set_probes_once(c: &mut PgConnection, like: &str, probes: Probes) -> anyhow::Result<()> {
    let mut tx = c.begin().await?;
    sqlx::query(
        "UPDATE connections SET cred_key_id = NULL, cred_ciphertext = NULL, status = 'failing', \
         status_reason = 'a copy without a credential', version = version + 1 \
         WHERE name LIKE $1 AND status <> 'failing'",
    )
    .bind(like)
    .execute(&mut *tx)
    .await
    .context("copies without credentials")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    match probes {
        Probes::Off => {
            sqlx::query(
                "UPDATE connection_health SET probe_at = $2, due_at = $2, refresh_at = NULL, \
                 lease_owner = NULL, lease_until = NULL \
                 WHERE connection_id IN (SELECT id FROM connections WHERE name LIKE $1)",
            )
            .bind(like)
            .bind(PROBE_OFF)
            .execute(&mut *tx)
            .await
            .context("probes off")?;
        }
        Probes::Spread { interval_ms } => {
            sqlx::query(
                "UPDATE connection_health SET \
                 probe_at = $2 + floor(random() * $3)::bigint, lease_owner = NULL, lease_until = NULL \
                 WHERE connection_id IN (SELECT id FROM connections WHERE name LIKE $1)",
            )
            .bind(like)
            .bind(now)
            .bind(interval_ms as f64)
            .execute(&mut *tx)
            .await
            .context("probes spread")?;
            sqlx::query(
                "UPDATE connection_health SET due_at = probe_at \
                 WHERE connection_id IN (SELECT id FROM connections WHERE name LIKE $1)",
            )
            .bind(like)
            .execute(&mut *tx)
            .await
            .context("due times")?;
        }
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two transactions that lock two rows in opposite orders: PostgreSQL ends one of them with
    /// "deadlock detected", which [`is_deadlock`] must recognise through the context the bench
    /// adds (and must not confuse with any other failure).
    #[tokio::test]
    async fn a_deadlock_is_told_apart_from_other_failures() {
        let Ok(url) = std::env::var("LATCHKEY_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run this test: LATCHKEY_TEST_POSTGRES_URL is not set"
            );
            eprintln!("skipped: LATCHKEY_TEST_POSTGRES_URL is not set");
            return;
        };
        let table = format!("bench_deadlock_{}", rand::random::<u32>());
        let mut admin = PgConnection::connect(&url).await.unwrap();
        for sql in [
            format!("CREATE TABLE {table} (id int PRIMARY KEY, n int)"),
            format!("INSERT INTO {table} VALUES (1, 0), (2, 0)"),
        ] {
            sqlx::query(&sql).execute(&mut admin).await.unwrap();
        }
        let (mut a, mut b) = (
            PgConnection::connect(&url).await.unwrap(),
            PgConnection::connect(&url).await.unwrap(),
        );
        let bump = |id: i32| format!("UPDATE {table} SET n = n + 1 WHERE id = {id}");
        for (c, id) in [(&mut a, 1), (&mut b, 2)] {
            sqlx::query("BEGIN").execute(&mut *c).await.unwrap();
            sqlx::query(&bump(id)).execute(&mut *c).await.unwrap();
        }
        // Each side then wants the other's row; the side PostgreSQL ends rolls back at once,
        // which lets the other go on.
        let (sa, sb) = (bump(2), bump(1));
        async fn run(c: &mut PgConnection, sql: String) -> Result<(), sqlx::Error> {
            let r = sqlx::query(&sql).execute(&mut *c).await;
            if r.is_err() {
                sqlx::query("ROLLBACK").execute(&mut *c).await?;
            }
            r.map(|_| ())
        }
        let (ra, rb) = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            tokio::join!(run(&mut a, sa), run(&mut b, sb))
        })
        .await
        .expect("PostgreSQL ends a deadlock within its deadlock_timeout");
        let failed: Vec<anyhow::Error> = [ra.err(), rb.err()]
            .into_iter()
            .flatten()
            .map(|e| anyhow::Error::new(e).context("probes off"))
            .collect();
        assert_eq!(failed.len(), 1, "exactly one side is ended: {failed:?}");
        assert!(is_deadlock(&failed[0]), "{:#}", failed[0]);
        // Both sessions end, and with them the survivor's transaction and its locks, before the
        // table is dropped.
        a.close().await.unwrap();
        b.close().await.unwrap();
        let other = sqlx::query("SELEC 1")
            .execute(&mut admin)
            .await
            .unwrap_err();
        assert!(!is_deadlock(
            &anyhow::Error::new(other).context("probes off")
        ));
        sqlx::query(&format!("DROP TABLE {table}"))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}
