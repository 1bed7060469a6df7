//! Connect sessions (only the hash of each token is stored).

use crate::error::DbResult;
use crate::rows::{convert, json_text, limit, ms, ConnectSessionRow, CONNECT_SESSION_COLUMNS};
use crate::SqlStore;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use latchkey_core::ids::{ConnectSessionId, ConnectionId, WorkspaceId};
use latchkey_core::model::ConnectSession;
use latchkey_core::store::{ConnectSessionStore, Page, StoreResult};

#[async_trait]
impl ConnectSessionStore for SqlStore {
    async fn insert_connect_session(&self, s: &ConnectSession) -> StoreResult<()> {
        let owner = json_text(&s.owner)?;
        let apps = json_text(&s.allowed_apps)?;
        let origins = json_text(&s.allowed_origins)?;
        with_pool!(&self.db, p => {
            sqlx::query(
                "INSERT INTO connect_sessions (id, workspace_id, token_hash, owner, allowed_apps, \
                 environment, connection_id, result_connection_id, allowed_origins, created_by, \
                 created_at, expires_at, completed_at, cancelled_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(s.id.as_str())
            .bind(s.workspace_id.as_str())
            .bind(&s.token_hash)
            .bind(&owner)
            .bind(&apps)
            .bind(s.environment.as_str())
            .bind(s.connection_id.as_ref().map(|c| c.as_str()))
            .bind(s.result_connection_id.as_ref().map(|c| c.as_str()))
            .bind(&origins)
            .bind(&s.created_by)
            .bind(ms(s.created_at))
            .bind(ms(s.expires_at))
            .bind(s.completed_at.map(ms))
            .bind(s.cancelled_at.map(ms))
            .execute(p)
            .await
            .map(|_| ())
        })
        .db()
    }

    async fn connect_session_by_hash(&self, hash: &str) -> StoreResult<Option<ConnectSession>> {
        let sql =
            format!("SELECT {CONNECT_SESSION_COLUMNS} FROM connect_sessions WHERE token_hash = $1");
        let row: Option<ConnectSessionRow> = with_pool!(&self.db, p => {
            sqlx::query_as(&sql).bind(hash).fetch_optional(p).await
        })
        .db()?;
        row.map(ConnectSession::try_from).transpose()
    }

    async fn connect_session(
        &self,
        ws: &WorkspaceId,
        id: &ConnectSessionId,
    ) -> StoreResult<Option<ConnectSession>> {
        let sql = format!(
            "SELECT {CONNECT_SESSION_COLUMNS} FROM connect_sessions WHERE workspace_id = $1 AND id = $2"
        );
        let row: Option<ConnectSessionRow> = with_pool!(&self.db, p => {
            sqlx::query_as(&sql).bind(ws.as_str()).bind(id.as_str()).fetch_optional(p).await
        })
        .db()?;
        row.map(ConnectSession::try_from).transpose()
    }

    async fn list_connect_sessions(
        &self,
        ws: &WorkspaceId,
        page: &Page,
    ) -> StoreResult<Vec<ConnectSession>> {
        let sql = format!(
            "SELECT {CONNECT_SESSION_COLUMNS} FROM connect_sessions \
             WHERE workspace_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        );
        let after = page.after.as_deref().unwrap_or_default();
        let rows: Vec<ConnectSessionRow> = with_pool!(&self.db, p => {
            sqlx::query_as(&sql).bind(ws.as_str()).bind(after).bind(limit(page)).fetch_all(p).await
        })
        .db()?;
        convert(rows)
    }

    async fn claim_connect_session_connection(
        &self,
        id: &ConnectSessionId,
        conn: &ConnectionId,
    ) -> StoreResult<bool> {
        let done = with_pool!(&self.db, p => {
            sqlx::query(
                "UPDATE connect_sessions SET result_connection_id = $2 WHERE id = $1 \
                 AND completed_at IS NULL AND cancelled_at IS NULL \
                 AND (result_connection_id IS NULL OR result_connection_id = $2 \
                 OR NOT EXISTS (SELECT 1 FROM connections c \
                                WHERE c.id = connect_sessions.result_connection_id))",
            )
            .bind(id.as_str())
            .bind(conn.as_str())
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .db()?;
        Ok(done > 0)
    }

    async fn complete_connect_session(
        &self,
        id: &ConnectSessionId,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = with_pool!(&self.db, p => {
            sqlx::query(
                "UPDATE connect_sessions SET completed_at = $2 WHERE id = $1 \
                 AND completed_at IS NULL AND cancelled_at IS NULL",
            )
            .bind(id.as_str())
            .bind(ms(at))
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .db()?;
        Ok(done > 0)
    }

    async fn cancel_connect_session(
        &self,
        ws: &WorkspaceId,
        id: &ConnectSessionId,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = with_pool!(&self.db, p => {
            sqlx::query(
                "UPDATE connect_sessions SET cancelled_at = $3 WHERE workspace_id = $1 AND id = $2 \
                 AND completed_at IS NULL AND cancelled_at IS NULL",
            )
            .bind(ws.as_str())
            .bind(id.as_str())
            .bind(ms(at))
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .db()?;
        Ok(done > 0)
    }

    async fn open_connect_sessions_for(
        &self,
        ws: &WorkspaceId,
        conn: &ConnectionId,
    ) -> StoreResult<Vec<ConnectSession>> {
        let sql = format!(
            "SELECT {CONNECT_SESSION_COLUMNS} FROM connect_sessions WHERE workspace_id = $1 \
             AND result_connection_id = $2 AND completed_at IS NULL AND cancelled_at IS NULL \
             ORDER BY id"
        );
        let rows: Vec<ConnectSessionRow> = with_pool!(&self.db, p => {
            sqlx::query_as(&sql).bind(ws.as_str()).bind(conn.as_str()).fetch_all(p).await
        })
        .db()?;
        convert(rows)
    }
}
