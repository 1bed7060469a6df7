//! The background schedule of connections (probes, proactive refreshes) and their last probe
//! outcome.

use crate::error::DbResult;
use crate::rows::{convert, from_ms, ms, opt_from_ms, parse, ConnectionRow, CONNECTION_COLUMNS};
use crate::{SqlStore, WritePool};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use latchkey_core::health::{DueConnection, HealthRecord, ProbeOutcome};
use latchkey_core::ids::{ConnectionId, WorkspaceId};
use latchkey_core::model::ConnectionRecord;
use latchkey_core::store::{HealthStore, StoreResult};

/// The stored `probe_at` of a connection whose probes are off (9999-12-31).
pub(crate) const PROBE_OFF: i64 = 253_402_300_799_000;
/// A refresh that came due but wrote nothing (the provider or the store failed before the
/// connection was updated) is tried again this much later, not in a tight loop.
const REFRESH_RETRY_MS: i64 = 30_000;

/// The row a new connection gets: due at once, so that the worker places its first probe.
macro_rules! insert_health {
    ($exec:expr, $c:expr) => {{
        let c: &latchkey_core::model::ConnectionRecord = $c;
        sqlx::query(
            "INSERT INTO connection_health (connection_id, workspace_id, due_at, refresh_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(c.id.as_str())
        .bind(c.workspace_id.as_str())
        .bind($crate::rows::ms(c.created_at))
        .bind(c.proactive_refresh_at().map($crate::rows::ms))
        .execute($exec)
        .await
        .map(|_| ())
        .db()
    }};
}
pub(crate) use insert_health;

pub(crate) const SET_REFRESH: &str = "UPDATE connection_health SET refresh_at = $2, \
     due_at = CASE WHEN probe_at IS NULL THEN due_at \
                   WHEN $2 IS NOT NULL AND $2 < probe_at THEN $2 ELSE probe_at END \
     WHERE connection_id = $1";

impl SqlStore {
    /// Keeps the proactive-refresh time in step with the connection's tokens (after every write
    /// of the connection).
    pub(crate) async fn sync_refresh_at(&self, c: &ConnectionRecord) -> StoreResult<()> {
        let at = c.proactive_refresh_at().map(ms);
        with_pool!(&self.db, p => {
            sqlx::query(SET_REFRESH).bind(c.id.as_str()).bind(at).execute(p).await.map(|_| ())
        })
        .db()?;
        Ok(())
    }
}

#[derive(sqlx::FromRow)]
struct DueRow {
    workspace_id: String,
    connection_id: String,
    probe_at: Option<i64>,
    refresh_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct HealthRow {
    connection_id: String,
    probe_at: Option<i64>,
    refresh_at: Option<i64>,
    last_checked_at: Option<i64>,
    last_ok_at: Option<i64>,
    consecutive_failures: i64,
    last_error: Option<String>,
}

fn probe_time(v: Option<i64>) -> StoreResult<Option<DateTime<Utc>>> {
    match v {
        Some(PROBE_OFF) | None => Ok(None),
        Some(v) => from_ms(v).map(Some),
    }
}

fn skip_locked<P: WritePool>(_p: &P) -> &'static str {
    if P::FOR_UPDATE.is_empty() {
        ""
    } else {
        " FOR UPDATE SKIP LOCKED"
    }
}

/// The `SET` list that writes the next probe time `probe`, moves a refresh that came due (at
/// `now`) `retry` milliseconds on, makes `due_at` the earlier of the two, and gives the lease
/// back. The right-hand sides see the row as it was, so the new refresh time is spelled out again
/// for `due_at`.
fn schedule_after(probe: &str, now: &str, retry: &str) -> String {
    let refresh = format!(
        "CASE WHEN refresh_at IS NOT NULL AND refresh_at <= {now} \
         THEN {now} + {retry} ELSE refresh_at END"
    );
    format!(
        "probe_at = {probe}, refresh_at = {refresh}, \
         due_at = CASE WHEN {refresh} IS NOT NULL AND {refresh} < {probe} THEN {refresh} \
                  ELSE {probe} END, \
         lease_owner = NULL, lease_until = NULL"
    )
}

#[async_trait]
impl HealthStore for SqlStore {
    async fn claim_due_connections(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<DueConnection>> {
        let rows: Vec<DueRow> = with_pool!(&self.db, p => {
            let sql = format!(
                "UPDATE connection_health SET lease_owner = $1, lease_until = $2 \
                 WHERE connection_id IN (SELECT connection_id FROM connection_health \
                   WHERE due_at <= $3 AND (lease_until IS NULL OR lease_until < $3) \
                   ORDER BY due_at LIMIT $4{}) \
                 RETURNING workspace_id, connection_id, probe_at, refresh_at",
                skip_locked(p)
            );
            sqlx::query_as(&sql)
                .bind(owner)
                .bind(ms(until))
                .bind(ms(now))
                .bind(i64::from(limit))
                .fetch_all(p)
                .await
        })
        .db()?;
        rows.into_iter()
            .map(|r| {
                Ok(DueConnection {
                    workspace_id: parse("workspace id", &r.workspace_id, WorkspaceId::parse)?,
                    connection_id: parse("connection id", &r.connection_id, ConnectionId::parse)?,
                    probe_at: match r.probe_at {
                        None => None,
                        Some(v) => Some(from_ms(v.min(PROBE_OFF))?),
                    },
                    refresh_at: opt_from_ms(r.refresh_at)?,
                })
            })
            .collect()
    }

    async fn place_probes(
        &self,
        owner: &str,
        placed: &[(ConnectionId, Option<DateTime<Utc>>)],
    ) -> StoreResult<()> {
        if placed.is_empty() {
            return Ok(());
        }
        // The same rules as `finish_due_connection` without an outcome, for a list of rows given
        // as `VALUES` (both databases name their columns column1, column2).
        let values: Vec<String> = (0..placed.len())
            .map(|i| format!("(${}, ${})", 4 + 2 * i, 5 + 2 * i))
            .collect();
        let sql = format!(
            "UPDATE connection_health SET {} \
             FROM (VALUES {}) AS v \
             WHERE connection_id = v.column1 AND lease_owner = $1",
            schedule_after("v.column2", "$2", "$3"),
            values.join(", ")
        );
        let now = ms(Utc::now());
        with_pool!(&self.db, p => {
            let mut q = sqlx::query(&sql).bind(owner).bind(now).bind(REFRESH_RETRY_MS);
            for (id, at) in placed {
                q = q.bind(id.as_str()).bind(at.map(ms).unwrap_or(PROBE_OFF));
            }
            q.execute(p).await.db()?;
        });
        Ok(())
    }

    async fn finish_due_connection(
        &self,
        id: &ConnectionId,
        owner: &str,
        next_probe_at: Option<DateTime<Utc>>,
        outcome: Option<&ProbeOutcome>,
    ) -> StoreResult<()> {
        let now = ms(Utc::now());
        let probe = next_probe_at.map(ms).unwrap_or(PROBE_OFF);
        // One statement (the background's cost per probe).
        let mut sql = format!(
            "UPDATE connection_health SET {}",
            schedule_after("$3", "$4", "$5")
        );
        if outcome.is_some() {
            sql.push_str(
                ", last_checked_at = $6, \
                 last_ok_at = CASE WHEN $7 THEN $6 ELSE last_ok_at END, \
                 consecutive_failures = CASE WHEN $7 THEN 0 ELSE consecutive_failures + 1 END, \
                 last_error = $8",
            );
        }
        sql.push_str(" WHERE connection_id = $1 AND lease_owner = $2");
        with_pool!(&self.db, p => {
            let mut q = sqlx::query(&sql)
                .bind(id.as_str())
                .bind(owner)
                .bind(probe)
                .bind(now)
                .bind(REFRESH_RETRY_MS);
            if let Some(o) = outcome {
                q = q.bind(ms(o.at)).bind(o.error.is_none()).bind(&o.error);
            }
            q.execute(p).await.db()?;
        });
        Ok(())
    }

    async fn connections_by_ids(&self, ids: &[ConnectionId]) -> StoreResult<Vec<ConnectionRecord>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let marks: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {CONNECTION_COLUMNS} FROM connections WHERE id IN ({}) ORDER BY id",
            marks.join(", ")
        );
        let rows: Vec<ConnectionRow> = with_pool!(&self.db, p => {
            let mut q = sqlx::query_as(&sql);
            for id in ids {
                q = q.bind(id.as_str());
            }
            q.fetch_all(p).await
        })
        .db()?;
        convert(rows)
    }

    async fn replace_probe(&self, id: &ConnectionId) -> StoreResult<()> {
        with_pool!(&self.db, p => {
            sqlx::query("UPDATE connection_health SET probe_at = NULL, due_at = $2 WHERE connection_id = $1")
                .bind(id.as_str())
                .bind(ms(Utc::now()))
                .execute(p)
                .await
                .map(|_| ())
        })
        .db()?;
        Ok(())
    }

    async fn health_of(
        &self,
        ws: &WorkspaceId,
        ids: &[ConnectionId],
    ) -> StoreResult<Vec<HealthRecord>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let marks: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT connection_id, probe_at, refresh_at, last_checked_at, last_ok_at, \
             consecutive_failures, last_error FROM connection_health \
             WHERE workspace_id = $1 AND connection_id IN ({})",
            marks.join(", ")
        );
        let rows: Vec<HealthRow> = with_pool!(&self.db, p => {
            let mut q = sqlx::query_as(&sql).bind(ws.as_str());
            for id in ids {
                q = q.bind(id.as_str());
            }
            q.fetch_all(p).await
        })
        .db()?;
        rows.into_iter()
            .map(|r| {
                Ok(HealthRecord {
                    connection_id: Some(parse(
                        "connection id",
                        &r.connection_id,
                        ConnectionId::parse,
                    )?),
                    last_checked_at: opt_from_ms(r.last_checked_at)?,
                    last_ok_at: opt_from_ms(r.last_ok_at)?,
                    consecutive_failures: r.consecutive_failures,
                    next_check_at: probe_time(r.probe_at)?,
                    refresh_at: opt_from_ms(r.refresh_at)?,
                    last_error: r.last_error,
                })
            })
            .collect()
    }

    async fn connection_status_counts(&self) -> StoreResult<Vec<(String, i64)>> {
        let rows: Vec<(String, i64)> = with_pool!(&self.db, p => {
            sqlx::query_as("SELECT status, COUNT(*) FROM connections GROUP BY status")
                .fetch_all(p)
                .await
        })
        .db()?;
        Ok(rows)
    }
}
