//! Concurrency-pool slots: one row per slot, taken and freed by single short statements, and
//! the marks of instances waiting for one (one row per pool and instance, with an expiry).

use crate::error::DbResult;
use crate::rows::ms;
use crate::{Db, SqlStore};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use latchkey_core::rate_limit::LoweredLevel;
use latchkey_core::store::{SlotKept, SlotStore, StoreResult};

// Binds of both: $1 pool, $2 level, $3 holder, $4 until, $5 now, and for PostgreSQL $6 the
// wanted mark's end (or NULL). A lease is held up to and including `lease_until`, as the
// refresh lease is.
//
// A pool whose level rate limits lowered takes only slots below its effective level (the
// floor plus one per quiet step since the last 429, see `pool_levels`), read in the same
// statement: no extra round trip, and every instance sees the same level.
//
// SKIP LOCKED sends racing acquirers to different free rows instead of queueing them on the
// same one only to find it taken; a free row is locked only by a taker that will get it. The
// count shares the take's snapshot, so a miss with every row present is a real miss, and only
// such a miss marks the pool as wanted (a pool whose rows are still to be made is not full).
const TAKE_POSTGRES: &str = "WITH taken AS (UPDATE pool_slots SET holder = $3, lease_until = $4 \
     WHERE (pool_id, slot) = (SELECT pool_id, slot FROM pool_slots \
     WHERE pool_id = $1 AND slot < $2 AND (holder IS NULL OR lease_until < $5) \
     AND slot < COALESCE((SELECT floor + GREATEST(0, $5 - last_limited_at) / step_ms \
     FROM pool_levels WHERE pool_id = $1), $2) \
     ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED) \
     RETURNING slot), \
     present AS (SELECT COUNT(*) AS n FROM pool_slots WHERE pool_id = $1 AND slot < $2), \
     wanted AS (INSERT INTO pool_wants (pool_id, holder, wanted_until) \
     SELECT $1, $3, $6 WHERE $6 IS NOT NULL AND NOT EXISTS (SELECT 1 FROM taken) \
     AND (SELECT n FROM present) >= $2 \
     ON CONFLICT (pool_id, holder) DO UPDATE SET wanted_until = EXCLUDED.wanted_until \
     WHERE pool_wants.wanted_until < EXCLUDED.wanted_until) \
     SELECT (SELECT slot FROM taken), (SELECT n FROM present)";

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

// On SQLite the mark is a statement of its own after a miss (one instance, no race to lose).
const MARK_WANTED: &str = "INSERT INTO pool_wants (pool_id, holder, wanted_until) \
     VALUES ($1, $2, $3) \
     ON CONFLICT (pool_id, holder) DO UPDATE SET wanted_until = excluded.wanted_until \
     WHERE pool_wants.wanted_until < excluded.wanted_until";

// Binds: $1 pool, $2 slot, $3 holder, $4 until, $5 now. Both columns read the same live marks
// (one snapshot per statement); the answer is the row as the update left it.
const KEEP_UNLESS_WANTED: &str = "UPDATE pool_slots SET \
     holder = CASE WHEN EXISTS (SELECT 1 FROM pool_wants w WHERE w.pool_id = $1 \
     AND w.holder <> $3 AND w.wanted_until >= $5) THEN NULL ELSE holder END, \
     lease_until = CASE WHEN EXISTS (SELECT 1 FROM pool_wants w WHERE w.pool_id = $1 \
     AND w.holder <> $3 AND w.wanted_until >= $5) THEN NULL ELSE $4 END \
     WHERE pool_id = $1 AND slot = $2 AND holder = $3 \
     RETURNING holder IS NULL";

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
        wanted_until: Option<i64>,
    ) -> StoreResult<Take> {
        match &self.db {
            Db::Postgres(p) => {
                let (slot, rows): (Option<i32>, i64) = sqlx::query_as(TAKE_POSTGRES)
                    .bind(pool)
                    .bind(level)
                    .bind(holder)
                    .bind(until)
                    .bind(now)
                    .bind(wanted_until)
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
        wanted_until: Option<DateTime<Utc>>,
    ) -> StoreResult<Option<i32>> {
        if level <= 0 {
            return Ok(None);
        }
        let (until, now, wanted) = (ms(until), ms(now), wanted_until.map(ms));
        let first = self
            .take_slot(pool, level, holder, until, now, wanted)
            .await?;
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
        let again = self
            .take_slot(pool, level, holder, until, now, wanted)
            .await?;
        if let (None, None, Some(wanted)) = (again.slot, again.rows, wanted) {
            with_pool!(&self.db, p => {
                sqlx::query(MARK_WANTED)
                    .bind(pool)
                    .bind(holder)
                    .bind(wanted)
                    .execute(p)
                    .await
                    .map(|_| ())
            })
            .db()?;
        }
        Ok(again.slot)
    }

    async fn keep_slot_unless_wanted(
        &self,
        pool: &str,
        slot: i32,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<SlotKept> {
        let freed: Option<bool> = with_pool!(&self.db, p => {
            sqlx::query_scalar(KEEP_UNLESS_WANTED)
                .bind(pool)
                .bind(slot)
                .bind(holder)
                .bind(ms(until))
                .bind(ms(now))
                .fetch_optional(p)
                .await
        })
        .db()?;
        Ok(match freed {
            None => SlotKept::NotHeld,
            Some(true) => SlotKept::Released,
            Some(false) => SlotKept::Kept,
        })
    }

    async fn forget_slot_wants(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        with_pool!(&self.db, p => {
            sqlx::query("DELETE FROM pool_wants WHERE wanted_until < $1")
                .bind(ms(now))
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .db()
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
