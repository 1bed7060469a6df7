//! API keys (only their hashes are stored).

use crate::error::DbResult;
use crate::rows::{convert, json_text, limit, ms, ApiKeyRow};
use crate::SqlStore;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use latchkey_core::ids::{ApiKeyId, WorkspaceId};
use latchkey_core::model::ApiKey;
use latchkey_core::store::{ApiKeyStore, Page, StoreResult};

const API_KEY_COLUMNS: &str =
    "id, name, workspace_id, scopes, hash, prefix, created_at, revoked_at, user_id";

#[async_trait]
impl ApiKeyStore for SqlStore {
    async fn insert_api_key(&self, key: &ApiKey) -> StoreResult<()> {
        let scopes = json_text(&key.scopes)?;
        with_pool!(&self.db, p => {
            sqlx::query(
                "INSERT INTO api_keys (id, name, workspace_id, scopes, hash, prefix, \
                 created_at, revoked_at, user_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(key.id.as_str())
            .bind(&key.name)
            .bind(key.workspace_id.as_ref().map(|w| w.as_str()))
            .bind(&scopes)
            .bind(&key.hash)
            .bind(&key.prefix)
            .bind(ms(key.created_at))
            .bind(key.revoked_at.map(ms))
            .bind(key.user_id.as_ref().map(|u| u.as_str()))
            .execute(p)
            .await
            .map(|_| ())
        })
        .db()?;
        Ok(())
    }

    async fn api_key_by_hash(&self, hash: &str) -> StoreResult<Option<ApiKey>> {
        let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE hash = $1");
        let row: Option<ApiKeyRow> = with_pool!(&self.db, p => {
            sqlx::query_as(&sql).bind(hash).fetch_optional(p).await
        })
        .db()?;
        row.map(ApiKey::try_from).transpose()
    }

    async fn api_key(&self, id: &ApiKeyId) -> StoreResult<Option<ApiKey>> {
        let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = $1");
        let row: Option<ApiKeyRow> = with_pool!(&self.db, p => {
            sqlx::query_as(&sql).bind(id.as_str()).fetch_optional(p).await
        })
        .db()?;
        row.map(ApiKey::try_from).transpose()
    }

    async fn list_api_keys(
        &self,
        workspace: Option<&WorkspaceId>,
        page: &Page,
    ) -> StoreResult<Vec<ApiKey>> {
        let narrow = if workspace.is_some() {
            " AND workspace_id = $3"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id > $1{narrow} ORDER BY id LIMIT $2"
        );
        let after = page.after.as_deref().unwrap_or_default();
        let rows: Vec<ApiKeyRow> = with_pool!(&self.db, p => {
            let mut query = sqlx::query_as(&sql).bind(after).bind(limit(page));
            if let Some(ws) = workspace {
                query = query.bind(ws.as_str());
            }
            query.fetch_all(p).await
        })
        .db()?;
        convert(rows)
    }

    async fn revoke_api_key(&self, id: &ApiKeyId, at: DateTime<Utc>) -> StoreResult<bool> {
        let revoked = with_pool!(&self.db, p => {
            sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(id.as_str())
                .bind(ms(at))
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .db()?;
        Ok(revoked > 0)
    }

    async fn count_api_keys(&self) -> StoreResult<i64> {
        let (n,): (i64,) = with_pool!(&self.db, p => {
            sqlx::query_as("SELECT COUNT(*) FROM api_keys").fetch_one(p).await
        })
        .db()?;
        Ok(n)
    }
}
