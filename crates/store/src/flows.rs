//! Flows and their ordered links to connections.

use crate::connections::insert_connection;
use crate::error::DbResult;
use crate::rows::{fold_flows, limit, ms, FlowLinkRow};
use crate::{SqlStore, WritePool};
use async_trait::async_trait;
use latchkey_core::ids::{ConnectionId, FlowId, WorkspaceId};
use latchkey_core::model::{ConnectionRecord, Flow};
use latchkey_core::store::{FlowStore, Page, StoreResult};
use latchkey_core::StoreError;

/// Flows chosen by `inner` (a `WHERE …` tail over `flows`, possibly with ORDER BY and LIMIT),
/// each joined with its links in position order. One statement, so flow and links agree.
fn flow_select(inner: &str) -> String {
    format!(
        "SELECT f.id, f.workspace_id, f.name, f.environment, f.active, f.created_at, \
         f.updated_at, fc.connection_id \
         FROM (SELECT id, workspace_id, name, environment, active, created_at, updated_at \
               FROM flows WHERE {inner}) f \
         LEFT JOIN flow_connections fc ON fc.flow_id = f.id \
         ORDER BY f.id, fc.position"
    )
}

/// Inserts the new connections, then the flow's links, with `$tx` (a write transaction),
/// and checks every linked connection is in the flow's workspace.
macro_rules! write_links {
    ($tx:expr, $flow:expr) => {{
        let flow: &Flow = $flow;
        for (position, conn) in flow.connections.iter().enumerate() {
            sqlx::query(
                "INSERT INTO flow_connections (flow_id, connection_id, position) \
                 VALUES ($1, $2, $3)",
            )
            .bind(flow.id.as_str())
            .bind(conn.as_str())
            .bind(position as i64)
            .execute(&mut *$tx)
            .await
            .db()?;
        }
        let (linked,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM flow_connections fc \
             JOIN connections c ON c.id = fc.connection_id \
             WHERE fc.flow_id = $1 AND c.workspace_id = $2",
        )
        .bind(flow.id.as_str())
        .bind(flow.workspace_id.as_str())
        .fetch_one(&mut *$tx)
        .await
        .db()?;
        // A connection of another workspace is as absent as a deleted one.
        if linked != flow.connections.len() as i64 {
            return Err(StoreError::Stale);
        }
    }};
}

#[async_trait]
impl FlowStore for SqlStore {
    async fn create_flow(
        &self,
        flow: &Flow,
        new_connections: &[ConnectionRecord],
    ) -> StoreResult<()> {
        with_pool!(&self.db, p => {
            let mut tx = p.begin_write().await.db()?;
            for conn in new_connections {
                insert_connection!(&mut *tx, conn)?;
            }
            sqlx::query(
                "INSERT INTO flows (id, workspace_id, name, environment, active, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(flow.id.as_str())
            .bind(flow.workspace_id.as_str())
            .bind(flow.name.as_str())
            .bind(flow.environment.as_str())
            .bind(flow.active)
            .bind(ms(flow.created_at))
            .bind(ms(flow.updated_at))
            .execute(&mut *tx)
            .await
            .db()?;
            write_links!(tx, flow);
            tx.commit().await.db()
        })
    }

    async fn flow(&self, ws: &WorkspaceId, id: &FlowId) -> StoreResult<Option<Flow>> {
        let sql = flow_select("workspace_id = $1 AND id = $2");
        let rows: Vec<FlowLinkRow> = with_pool!(&self.db, p => {
            sqlx::query_as(&sql).bind(ws.as_str()).bind(id.as_str()).fetch_all(p).await
        })
        .db()?;
        Ok(fold_flows(rows)?.pop())
    }

    async fn flow_by_name(&self, ws: &WorkspaceId, name: &str) -> StoreResult<Option<Flow>> {
        let sql = flow_select("workspace_id = $1 AND name = $2");
        let rows: Vec<FlowLinkRow> = with_pool!(&self.db, p => {
            sqlx::query_as(&sql).bind(ws.as_str()).bind(name).fetch_all(p).await
        })
        .db()?;
        Ok(fold_flows(rows)?.pop())
    }

    async fn list_flows(&self, ws: &WorkspaceId, page: &Page) -> StoreResult<Vec<Flow>> {
        let sql = flow_select("workspace_id = $1 AND id > $2 ORDER BY id LIMIT $3");
        let after = page.after.as_deref().unwrap_or_default();
        let rows: Vec<FlowLinkRow> = with_pool!(&self.db, p => {
            sqlx::query_as(&sql)
                .bind(ws.as_str())
                .bind(after)
                .bind(limit(page))
                .fetch_all(p)
                .await
        })
        .db()?;
        fold_flows(rows)
    }

    async fn update_flow(
        &self,
        flow: &Flow,
        new_connections: &[ConnectionRecord],
    ) -> StoreResult<()> {
        with_pool!(&self.db, p => {
            let mut tx = p.begin_write().await.db()?;
            for conn in new_connections {
                insert_connection!(&mut *tx, conn)?;
            }
            let updated = sqlx::query(
                "UPDATE flows SET name = $3, environment = $4, active = $5, updated_at = $6 \
                 WHERE workspace_id = $1 AND id = $2",
            )
            .bind(flow.workspace_id.as_str())
            .bind(flow.id.as_str())
            .bind(flow.name.as_str())
            .bind(flow.environment.as_str())
            .bind(flow.active)
            .bind(ms(flow.updated_at))
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
            if updated == 0 {
                return Err(StoreError::Stale);
            }
            sqlx::query("DELETE FROM flow_connections WHERE flow_id = $1")
                .bind(flow.id.as_str())
                .execute(&mut *tx)
                .await
                .db()?;
            write_links!(tx, flow);
            tx.commit().await.db()
        })
    }

    async fn delete_flow(&self, ws: &WorkspaceId, id: &FlowId) -> StoreResult<bool> {
        let deleted = with_pool!(&self.db, p => {
            sqlx::query("DELETE FROM flows WHERE workspace_id = $1 AND id = $2")
                .bind(ws.as_str())
                .bind(id.as_str())
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .db()?;
        Ok(deleted > 0)
    }

    async fn flows_using(&self, ws: &WorkspaceId, conn: &ConnectionId) -> StoreResult<Vec<Flow>> {
        let sql = flow_select(
            "workspace_id = $1 AND id IN \
             (SELECT flow_id FROM flow_connections WHERE connection_id = $2)",
        );
        let rows: Vec<FlowLinkRow> = with_pool!(&self.db, p => {
            sqlx::query_as(&sql).bind(ws.as_str()).bind(conn.as_str()).fetch_all(p).await
        })
        .db()?;
        fold_flows(rows)
    }
}
