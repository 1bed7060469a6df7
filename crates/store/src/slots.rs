//! Concurrency-pool slots: one row per slot, taken and freed by single short statements.

use crate::error::DbResult;
use crate::rows::ms;
use crate::{Db, SqlStore};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use latchkey_core::rate_limit::LoweredLevel;
use latchkey_core::store::{SlotStore, StoreResult};

// Binds of both: $1 pool, $2 level, $3 holder, $4 until, $5 now. A lease is held up to and
// including `lease_until`, as the refresh lease is.
//
// A pool whose level rate limits lowered takes only slots below its effective level (the
// floor plus one per quiet step since the last 429, see `pool_levels`), read in the same
// statement: no extra round trip, and every instance sees the same level.
//
// SKIP LOCKED sends racing acquirers to different free rows instead of queueing them on the
// same one only to find it taken; a free row is locked only by a taker that will get it. The
// count shares the take's snapshot, so a miss with every row present is a real miss.
const TAKE_POSTGRES: &str = "WITH taken AS (UPDATE pool_slots SET holder = $3, lease_until = $4 \
     WHERE (pool_id, slot) = (SELECT pool_id, slot FROM pool_slots \
     WHERE pool_id = $1 AND slot < $2 AND (holder IS NULL OR lease_until < $5) \
     AND slot < COALESCE((SELECT floor + GREATEST(0, $5 - last_limited_at) / step_ms \
     FROM pool_levels WHERE pool_id = $1), $2) \
     ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED) \
     RETURNING slot) \
     SELECT (SELECT slot FROM taken), \
     (SELECT COUNT(*) FROM pool_slots WHERE pool_id = $1 AND slot < $2)";

// A statement that writes takes SQLite's single write lock before it reads, so nothing
// changes between the choice and the update.
const TAKE_SQLITE: &str = "UPDATE pool_slots SET holder = $3, lease_until = $4 \
     WHERE rowid = (SELECT rowid FROM pool_slots \
     WHERE pool_id = $1 AND slot < $2 AND (holder IS NULL OR lease_until < $5) \
     AND slot < COALESCE((SELECT floor + MAX(0, $5 - last_limited_at) / step_ms \
     FROM pool_levels WHERE pool_id = $1), $2) \
     ORDER BY slot LIMIT 1) \
     AND (holder IS NULL OR lease_until < $5) \
     RETURNING slot";

const COUNT_SLOTS: &str = "SELECT COUNT(*) FROM pool_slots WHERE pool_id = $1 AND slot < $2";

// SQLite has no generate_series without an extension; both backends run this CTE.
const CREATE_SLOTS: &str = "WITH RECURSIVE s(n) AS \
     (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n + 1 < $2) \
     INSERT INTO pool_slots (pool_id, slot) SELECT $1, n FROM s WHERE n < $2 \
     ON CONFLICT DO NOTHING";

/// What one take found: the slot taken, and how many of the pool's rows below the level it
/// saw, when the backend can tell in the same statement.
struct Take {
    slot: Option<i32>,
    rows: Option<i64>,
}

impl SqlStore {
    async fn take_slot(
        &self,
        pool: &str,
        level: i32,
        holder: &str,
        until: i64,
        now: i64,
    ) -> StoreResult<Take> {
        match &self.db {
            Db::Postgres(p) => {
                let (slot, rows): (Option<i32>, i64) = sqlx::query_as(TAKE_POSTGRES)
                    .bind(pool)
                    .bind(level)
                    .bind(holder)
                    .bind(until)
                    .bind(now)
                    .fetch_one(p)
                    .await
                    .db()?;
                Ok(Take {
                    slot,
                    rows: Some(rows),
                })
            }
            Db::Sqlite(p) => {
                let slot = sqlx::query_scalar(TAKE_SQLITE)
                    .bind(pool)
                    .bind(level)
                    .bind(holder)
                    .bind(until)
                    .bind(now)
                    .fetch_optional(p)
                    .await
                    .db()?;
                Ok(Take { slot, rows: None })
            }
        }
    }
}

#[async_trait]
impl SlotStore for SqlStore {
    async fn try_acquire_slot(
        &self,
        pool: &str,
        level: i32,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<i32>> {
        if level <= 0 {
            return Ok(None);
        }
        let (until, now) = (ms(until), ms(now));
        let first = self.take_slot(pool, level, holder, until, now).await?;
        let level_rows = i64::from(level);
        if first.slot.is_some() || first.rows.is_some_and(|n| n >= level_rows) {
            return Ok(first.slot);
        }
        let rows = match first.rows {
            Some(n) => n,
            // A read, so that a miss on a full pool takes no write lock for nothing.
            None => with_pool!(&self.db, p => {
                sqlx::query_scalar(COUNT_SLOTS).bind(pool).bind(level).fetch_one(p).await
            })
            .db()?,
        };
        if rows < level_rows {
            with_pool!(&self.db, p => {
                sqlx::query(CREATE_SLOTS).bind(pool).bind(level).execute(p).await.map(|_| ())
            })
            .db()?;
        }
        // Retried even when the rows were all there: they may have appeared (made by a racing
        // acquirer) only after the first take missed them.
        Ok(self.take_slot(pool, level, holder, until, now).await?.slot)
    }

    async fn renew_slots(&self, holder: &str, until: DateTime<Utc>) -> StoreResult<u64> {
        with_pool!(&self.db, p => {
            sqlx::query("UPDATE pool_slots SET lease_until = $2 WHERE holder = $1")
                .bind(holder)
                .bind(ms(until))
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .db()
    }

    async fn release_slot(&self, pool: &str, slot: i32, holder: &str) -> StoreResult<()> {
        with_pool!(&self.db, p => {
            sqlx::query(
                "UPDATE pool_slots SET holder = NULL, lease_until = NULL \
                 WHERE pool_id = $1 AND slot = $2 AND holder = $3",
            )
            .bind(pool)
            .bind(slot)
            .bind(holder)
            .execute(p)
            .await
            .map(|_| ())
        })
        .db()
    }

    async fn record_rate_limited(
        &self,
        pool: &str,
        ceiling: i32,
        sent_at: DateTime<Utc>,
        now: DateTime<Utc>,
        step: std::time::Duration,
    ) -> StoreResult<LoweredLevel> {
        crate::pool_levels::record(self, pool, ceiling, sent_at, now, step).await
    }

    async fn lowered_levels(&self, now: DateTime<Utc>) -> StoreResult<Vec<(String, LoweredLevel)>> {
        crate::pool_levels::lowered(self, now).await
    }

    async fn held_slots(&self, pool: &str, now: DateTime<Utc>) -> StoreResult<i64> {
        with_pool!(&self.db, p => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM pool_slots \
                 WHERE pool_id = $1 AND holder IS NOT NULL AND lease_until >= $2",
            )
            .bind(pool)
            .bind(ms(now))
            .fetch_one(p)
            .await
        })
        .db()
    }
}
