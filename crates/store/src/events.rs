//! The audit trail, newest first.

use crate::error::DbResult;
use crate::rows::{convert, json_text, limit, ms, EventRow, InstanceEventRow};
use crate::SqlStore;
use async_trait::async_trait;
use latchkey_core::ids::WorkspaceId;
use latchkey_core::model::{Event, InstanceEvent};
use latchkey_core::store::{EventStore, Page, StoreResult};

const EVENT_COLUMNS: &str = "id, workspace_id, at, actor, action, target_id, target_name, details";

#[async_trait]
impl EventStore for SqlStore {
    async fn append_event(&self, event: &Event) -> StoreResult<()> {
        let details = json_text(&event.details)?;
        with_pool!(&self.db, p => {
            sqlx::query(
                "INSERT INTO events (id, workspace_id, at, actor, action, target_id, \
                 target_name, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(event.id.as_str())
            .bind(event.workspace_id.as_str())
            .bind(ms(event.at))
            .bind(&event.actor)
            .bind(&event.action)
            .bind(&event.target_id)
            .bind(&event.target_name)
            .bind(&details)
            .execute(p)
            .await
            .map(|_| ())
        })
        .db()?;
        Ok(())
    }

    async fn list_events(&self, ws: &WorkspaceId, page: &Page) -> StoreResult<Vec<Event>> {
        let older = if page.after.is_some() {
            " AND id < $3"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE workspace_id = $1{older} \
             ORDER BY id DESC LIMIT $2"
        );
        let rows: Vec<EventRow> = with_pool!(&self.db, p => {
            let mut query = sqlx::query_as(&sql).bind(ws.as_str()).bind(limit(page));
            if let Some(after) = &page.after {
                query = query.bind(after.as_str());
            }
            query.fetch_all(p).await
        })
        .db()?;
        convert(rows)
    }

    async fn append_instance_event(&self, event: &InstanceEvent) -> StoreResult<()> {
        let details = json_text(&event.details)?;
        with_pool!(&self.db, p => {
            sqlx::query(
                "INSERT INTO instance_events (id, at, actor, action, target_id, target_name, \
                 details) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(event.id.as_str())
            .bind(ms(event.at))
            .bind(&event.actor)
            .bind(&event.action)
            .bind(&event.target_id)
            .bind(&event.target_name)
            .bind(&details)
            .execute(p)
            .await
            .map(|_| ())
        })
        .db()?;
        Ok(())
    }

    async fn list_instance_events(&self, page: &Page) -> StoreResult<Vec<InstanceEvent>> {
        let older = if page.after.is_some() {
            " WHERE id < $2"
        } else {
            ""
        };
        let sql = format!(
            "SELECT id, at, actor, action, target_id, target_name, details FROM instance_events\
             {older} ORDER BY id DESC LIMIT $1"
        );
        let rows: Vec<InstanceEventRow> = with_pool!(&self.db, p => {
            let mut query = sqlx::query_as(&sql).bind(limit(page));
            if let Some(after) = &page.after {
                query = query.bind(after.as_str());
            }
            query.fetch_all(p).await
        })
        .db()?;
        convert(rows)
    }
}
