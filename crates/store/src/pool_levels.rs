//! Pool levels lowered by rate limits, shared by a cluster: one row per pool, changed by one
//! upsert per 429. The rule is `LoweredLevel::after_limited`; the SQL repeats it so that two
//! instances recording 429s at once both build on the row as it is.

use crate::error::DbResult;
use crate::rows::{from_ms, ms};
use crate::{Db, SqlStore};
use chrono::{DateTime, Utc};
use latchkey_core::model::MAX_CONCURRENCY_LEVEL;
use latchkey_core::rate_limit::LoweredLevel;
use latchkey_core::store::StoreResult;

// Binds: $1 pool, $2 ceiling, $3 sent_at, $4 now, $5 step_ms (all but the pool as BIGINT).
// `current` is the effective level at $4; a 429 for a request sent after the last lowering
// halves it, one from the burst before only freezes it and restarts the quiet period.
macro_rules! record_sql {
    ($greatest:literal, $least:literal) => {
        concat!(
            "INSERT INTO pool_levels (pool_id, floor, lowered_at, last_limited_at, step_ms) \
             VALUES ($1, ",
            $greatest,
            "(1, $2 / 2), $4, $4, $5) \
             ON CONFLICT (pool_id) DO UPDATE SET \
             floor = CASE WHEN pool_levels.lowered_at <= $3 \
             THEN ",
            $greatest,
            "(1, ",
            $least,
            "($2, pool_levels.floor + ",
            $greatest,
            "(0, $4 - pool_levels.last_limited_at) / pool_levels.step_ms) / 2) \
             ELSE ",
            $greatest,
            "(1, ",
            $least,
            "($2, pool_levels.floor + ",
            $greatest,
            "(0, $4 - pool_levels.last_limited_at) / pool_levels.step_ms)) END, \
             lowered_at = CASE WHEN pool_levels.lowered_at <= $3 THEN $4 \
             ELSE pool_levels.lowered_at END, \
             last_limited_at = ",
            $greatest,
            "(pool_levels.last_limited_at, $4), \
             step_ms = $5 \
             RETURNING floor, lowered_at, last_limited_at, step_ms"
        )
    };
}

const RECORD_POSTGRES: &str = record_sql!("GREATEST", "LEAST");
const RECORD_SQLITE: &str = record_sql!("MAX", "MIN");

// A row can still be below the highest level while the climb from its floor to it lasts.
const LOWERED: &str = "SELECT pool_id, floor, lowered_at, last_limited_at, step_ms \
     FROM pool_levels WHERE last_limited_at + ($2 - floor) * step_ms > $1";

type Row = (i64, i64, i64, i64);

fn level(row: Row) -> StoreResult<LoweredLevel> {
    let (floor, lowered_at, last_limited_at, step_ms) = row;
    Ok(LoweredLevel {
        floor,
        lowered_at: from_ms(lowered_at)?,
        last_limited_at: from_ms(last_limited_at)?,
        step_ms,
    })
}

pub(crate) async fn record(
    store: &SqlStore,
    pool: &str,
    ceiling: i32,
    sent_at: DateTime<Utc>,
    now: DateTime<Utc>,
    step: std::time::Duration,
) -> StoreResult<LoweredLevel> {
    let sql = match &store.db {
        Db::Postgres(_) => RECORD_POSTGRES,
        Db::Sqlite(_) => RECORD_SQLITE,
    };
    let step_ms = (step.as_millis() as i64).max(1);
    let row: Row = with_pool!(&store.db, p => {
        sqlx::query_as(sql)
            .bind(pool)
            .bind(i64::from(ceiling.max(1)))
            .bind(ms(sent_at))
            .bind(ms(now))
            .bind(step_ms)
            .fetch_one(p)
            .await
    })
    .db()?;
    level(row)
}

pub(crate) async fn lowered(
    store: &SqlStore,
    now: DateTime<Utc>,
) -> StoreResult<Vec<(String, LoweredLevel)>> {
    let rows: Vec<(String, i64, i64, i64, i64)> = with_pool!(&store.db, p => {
        sqlx::query_as(LOWERED)
            .bind(ms(now))
            .bind(MAX_CONCURRENCY_LEVEL)
            .fetch_all(p)
            .await
    })
    .db()?;
    rows.into_iter()
        .map(|(pool, f, l, last, s)| Ok((pool, level((f, l, last, s))?)))
        .collect()
}
