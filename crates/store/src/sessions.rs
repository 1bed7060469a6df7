//! Web UI sessions (only the SHA-256 of each session id is stored).

use crate::error::DbResult;
use crate::rows::{ms, SessionRow};
use crate::SqlStore;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use latchkey_core::model::{SessionSubject, UiSession};
use latchkey_core::store::{SessionStore, StoreResult};

#[async_trait]
impl SessionStore for SqlStore {
    async fn insert_session(&self, s: &UiSession) -> StoreResult<()> {
        with_pool!(&self.db, p => {
            sqlx::query(
                "INSERT INTO ui_sessions (id_hash, subject_kind, subject_id, csrf_token, \
                 created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&s.id_hash)
            .bind(s.subject.kind())
            .bind(s.subject.id())
            .bind(&s.csrf_token)
            .bind(ms(s.created_at))
            .bind(ms(s.expires_at))
            .execute(p)
            .await
            .map(|_| ())
        })
        .db()?;
        Ok(())
    }

    async fn session(&self, id_hash: &str, now: DateTime<Utc>) -> StoreResult<Option<UiSession>> {
        let row: Option<SessionRow> = with_pool!(&self.db, p => {
            sqlx::query_as(
                "SELECT id_hash, subject_kind, subject_id, csrf_token, created_at, expires_at \
                 FROM ui_sessions WHERE id_hash = $1 AND expires_at > $2",
            )
            .bind(id_hash)
            .bind(ms(now))
            .fetch_optional(p)
            .await
        })
        .db()?;
        row.map(UiSession::try_from).transpose()
    }

    async fn delete_session(&self, id_hash: &str) -> StoreResult<bool> {
        let n = with_pool!(&self.db, p => {
            sqlx::query("DELETE FROM ui_sessions WHERE id_hash = $1")
                .bind(id_hash)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .db()?;
        Ok(n > 0)
    }

    async fn delete_sessions_of(&self, subject: &SessionSubject) -> StoreResult<u64> {
        let n = with_pool!(&self.db, p => {
            sqlx::query("DELETE FROM ui_sessions WHERE subject_kind = $1 AND subject_id = $2")
                .bind(subject.kind())
                .bind(subject.id())
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .db()?;
        Ok(n)
    }

    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let n = with_pool!(&self.db, p => {
            sqlx::query("DELETE FROM ui_sessions WHERE expires_at <= $1")
                .bind(ms(now))
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .db()?;
        Ok(n)
    }
}
