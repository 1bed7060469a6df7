//! Concurrency-pool slots: one row per slot, taken and freed by single short statements.

use crate::error::DbResult;
use crate::rows::ms;
use crate::{Db, SqlStore};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use latchkey_core::store::{SlotStore, StoreResult};

// Binds of both: $1 pool, $2 level, $3 holder, $4 until, $5 now. A lease is held up to and
// including `lease_until`, as the refresh lease is.
//
// SKIP LOCKED sends racing acquirers to different free rows instead of queueing them on the
// same one only to find it taken; a free row is locked only by a taker that will get it.
const TAKE_POSTGRES: &str = "UPDATE pool_slots SET holder = $3, lease_until = $4 \
     WHERE (pool_id, slot) = (SELECT pool_id, slot FROM pool_slots \
     WHERE pool_id = $1 AND slot < $2 AND (holder IS NULL OR lease_until < $5) \
     ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED) \
     RETURNING slot";

// A statement that writes takes SQLite's single write lock before it reads, so nothing
// changes between the choice and the update; the repeated condition is cheap insurance.
const TAKE_SQLITE: &str = "UPDATE pool_slots SET holder = $3, lease_until = $4 \
     WHERE rowid = (SELECT rowid FROM pool_slots \
     WHERE pool_id = $1 AND slot < $2 AND (holder IS NULL OR lease_until < $5) \
     ORDER BY slot LIMIT 1) \
     AND (holder IS NULL OR lease_until < $5) \
     RETURNING slot";

// SQLite has no generate_series without an extension; both backends run this CTE.
const CREATE_SLOTS: &str = "WITH RECURSIVE s(n) AS \
     (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n + 1 < $2) \
     INSERT INTO pool_slots (pool_id, slot) SELECT $1, n FROM s WHERE n < $2 \
     ON CONFLICT DO NOTHING";

impl SqlStore {
    async fn take_slot(
        &self,
        pool: &str,
        level: i32,
        holder: &str,
        until: i64,
        now: i64,
    ) -> StoreResult<Option<i32>> {
        let sql = match self.db {
            Db::Sqlite(_) => TAKE_SQLITE,
            Db::Postgres(_) => TAKE_POSTGRES,
        };
        with_pool!(&self.db, p => {
            sqlx::query_scalar(sql)
                .bind(pool)
                .bind(level)
                .bind(holder)
                .bind(until)
                .bind(now)
                .fetch_optional(p)
                .await
        })
        .db()
    }

    /// Creates the missing rows of slots `0..level`; false when none were missing.
    async fn create_slots(&self, pool: &str, level: i32) -> StoreResult<bool> {
        // A read first, so that the usual miss (every slot held) writes nothing.
        let existing: i64 = with_pool!(&self.db, p => {
            sqlx::query_scalar("SELECT COUNT(*) FROM pool_slots WHERE pool_id = $1 AND slot < $2")
                .bind(pool)
                .bind(level)
                .fetch_one(p)
                .await
        })
        .db()?;
        if existing >= i64::from(level) {
            return Ok(false);
        }
        with_pool!(&self.db, p => {
            sqlx::query(CREATE_SLOTS).bind(pool).bind(level).execute(p).await.map(|_| ())
        })
        .db()?;
        Ok(true)
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
        if let Some(slot) = self.take_slot(pool, level, holder, until, now).await? {
            return Ok(Some(slot));
        }
        // Retrying even when a racing acquirer created the rows first: its rows are as good.
        if !self.create_slots(pool, level).await? {
            return Ok(None);
        }
        self.take_slot(pool, level, holder, until, now).await
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
