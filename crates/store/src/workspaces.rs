//! Workspaces and their data keys.

use crate::error::DbResult;
use crate::rows::{convert, limit, ms, DataKeyRow, WorkspaceRow};
use crate::{SqlStore, WritePool};
use async_trait::async_trait;
use latchkey_core::ids::{DataKeyId, WorkspaceId};
use latchkey_core::model::{Workspace, WrappedDataKey};
use latchkey_core::store::{DataKeyStore, Page, StoreResult, WorkspaceStore};

const WORKSPACE_COLUMNS: &str = "id, slug, name, data_key_id, branding, created_at, updated_at";
const DATA_KEY_COLUMNS: &str = "id, master_key_id, wrapped, created_at";

#[async_trait]
impl WorkspaceStore for SqlStore {
    async fn create_workspace(&self, ws: &Workspace, key: &WrappedDataKey) -> StoreResult<()> {
        let branding = crate::rows::opt_json_text(ws.branding.as_ref())?;
        with_pool!(&self.db, p => {
            let mut tx = p.begin_write().await.db()?;
            sqlx::query(
                "INSERT INTO workspaces (id, slug, name, data_key_id, created_at, updated_at, \
                 branding) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(ws.id.as_str())
            .bind(ws.slug.as_str())
            .bind(&ws.name)
            .bind(ws.data_key_id.as_str())
            .bind(ms(ws.created_at))
            .bind(ms(ws.updated_at))
            .bind(&branding)
            .execute(&mut *tx)
            .await
            .db()?;
            sqlx::query(
                "INSERT INTO data_keys (id, workspace_id, master_key_id, wrapped, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(key.id.as_str())
            .bind(ws.id.as_str())
            .bind(&key.master_key_id)
            .bind(&key.wrapped)
            .bind(ms(key.created_at))
            .execute(&mut *tx)
            .await
            .db()?;
            tx.commit().await.db()
        })
    }

    async fn workspace_by_slug(&self, slug: &str) -> StoreResult<Option<Workspace>> {
        let sql = format!("SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE slug = $1");
        let row: Option<WorkspaceRow> = with_pool!(&self.db, p => {
            sqlx::query_as(&sql).bind(slug).fetch_optional(p).await
        })
        .db()?;
        row.map(Workspace::try_from).transpose()
    }

    async fn workspace_by_id(&self, id: &WorkspaceId) -> StoreResult<Option<Workspace>> {
        let sql = format!("SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE id = $1");
        let row: Option<WorkspaceRow> = with_pool!(&self.db, p => {
            sqlx::query_as(&sql).bind(id.as_str()).fetch_optional(p).await
        })
        .db()?;
        row.map(Workspace::try_from).transpose()
    }

    async fn list_workspaces(&self, page: &Page) -> StoreResult<Vec<Workspace>> {
        let sql = format!(
            "SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE id > $1 ORDER BY id LIMIT $2"
        );
        let after = page.after.as_deref().unwrap_or_default();
        let rows: Vec<WorkspaceRow> = with_pool!(&self.db, p => {
            sqlx::query_as(&sql).bind(after).bind(limit(page)).fetch_all(p).await
        })
        .db()?;
        convert(rows)
    }

    async fn update_workspace(&self, ws: &Workspace) -> StoreResult<()> {
        let branding = crate::rows::opt_json_text(ws.branding.as_ref())?;
        let done = with_pool!(&self.db, p => {
            sqlx::query(
                "UPDATE workspaces SET name = $2, updated_at = $3, branding = $4 WHERE id = $1",
            )
                .bind(ws.id.as_str())
                .bind(&ws.name)
                .bind(ms(ws.updated_at))
                .bind(&branding)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .db()?;
        if done == 0 {
            return Err(latchkey_core::StoreError::Stale);
        }
        Ok(())
    }

    async fn delete_workspace(&self, id: &WorkspaceId) -> StoreResult<bool> {
        // Everything else in the workspace, its data key included, goes by ON DELETE CASCADE.
        let deleted = with_pool!(&self.db, p => {
            sqlx::query("DELETE FROM workspaces WHERE id = $1")
                .bind(id.as_str())
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .db()?;
        Ok(deleted > 0)
    }
}

#[async_trait]
impl DataKeyStore for SqlStore {
    async fn data_key(&self, id: &DataKeyId) -> StoreResult<Option<WrappedDataKey>> {
        let sql = format!("SELECT {DATA_KEY_COLUMNS} FROM data_keys WHERE id = $1");
        let row: Option<DataKeyRow> = with_pool!(&self.db, p => {
            sqlx::query_as(&sql).bind(id.as_str()).fetch_optional(p).await
        })
        .db()?;
        row.map(WrappedDataKey::try_from).transpose()
    }

    async fn list_data_keys(&self) -> StoreResult<Vec<WrappedDataKey>> {
        let sql = format!("SELECT {DATA_KEY_COLUMNS} FROM data_keys ORDER BY id");
        let rows: Vec<DataKeyRow> =
            with_pool!(&self.db, p => sqlx::query_as(&sql).fetch_all(p).await).db()?;
        convert(rows)
    }

    async fn rewrap_data_key(
        &self,
        id: &DataKeyId,
        expected_master_key_id: &str,
        new_master_key_id: &str,
        wrapped: &[u8],
    ) -> StoreResult<bool> {
        let done = with_pool!(&self.db, p => {
            sqlx::query(
                "UPDATE data_keys SET master_key_id = $3, wrapped = $4 \
                 WHERE id = $1 AND master_key_id = $2",
            )
            .bind(id.as_str())
            .bind(expected_master_key_id)
            .bind(new_master_key_id)
            .bind(wrapped)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .db()?;
        Ok(done > 0)
    }
}
