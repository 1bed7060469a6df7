//! The audit trail, newest first.

use crate::error::DbResult;
use crate::rows::{convert, json_text, limit, ms, EventRow, InstanceEventRow};
use crate::{SqlStore, WritePool};
use async_trait::async_trait;
use latchkey_core::health;
use latchkey_core::ids::WorkspaceId;
use latchkey_core::model::{Event, InstanceEvent};
use latchkey_core::store::{EventStore, Page, StoreResult};

const EVENT_COLUMNS: &str = "id, workspace_id, at, actor, action, target_id, target_name, details";

/// Inserts one event with `$tx` (a transaction: `&mut *tx`) and, when its type is delivered
/// to webhooks, one pending delivery for every enabled webhook of its workspace subscribed to
/// it.
macro_rules! append_event_in {
    ($tx:expr, $event:expr) => {{
        let event: &latchkey_core::model::Event = $event;
        let details = $crate::rows::json_text(&event.details)?;
        sqlx::query(
            "INSERT INTO events (id, workspace_id, at, actor, action, target_id, \
             target_name, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(event.id.as_str())
        .bind(event.workspace_id.as_str())
        .bind($crate::rows::ms(event.at))
        .bind(&event.actor)
        .bind(&event.action)
        .bind(&event.target_id)
        .bind(&event.target_name)
        .bind(&details)
        .execute($tx)
        .await
        .db()?;
        if latchkey_core::health::is_delivered(&event.action) {
            $crate::events::deliveries_in!($tx, event);
        }
    }};
}

/// The outbox rows of an event that is delivered (see [`append_event_in`]).
macro_rules! deliveries_in {
    ($tx:expr, $event:expr) => {{
        let event: &latchkey_core::model::Event = $event;
        let payload = $crate::rows::json_text(&latchkey_core::health::webhook_payload(event))?;
        let hooks: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, events FROM webhooks WHERE workspace_id = $1 AND enabled ORDER BY id",
        )
        .bind(event.workspace_id.as_str())
        .fetch_all($tx)
        .await
        .db()?;
        for (hook, patterns) in hooks {
            let patterns: Vec<String> = serde_json::from_str(&patterns)
                .map_err(|e| $crate::error::corrupt("webhook events", e))?;
            if !latchkey_core::health::subscribed(&patterns, &event.action) {
                continue;
            }
            sqlx::query(
                "INSERT INTO webhook_deliveries (id, webhook_id, workspace_id, event_id, \
                 event_type, payload, status, attempts, next_attempt_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7)",
            )
            .bind(latchkey_core::ids::DeliveryId::generate().as_str())
            .bind(&hook)
            .bind(event.workspace_id.as_str())
            .bind(event.id.as_str())
            .bind(&event.action)
            .bind(&payload)
            .bind($crate::rows::ms(event.at))
            .execute($tx)
            .await
            .db()?;
        }
    }};
}
pub(crate) use {append_event_in, deliveries_in};

#[async_trait]
impl EventStore for SqlStore {
    async fn append_event(&self, event: &Event) -> StoreResult<()> {
        if !health::is_delivered(&event.action) {
            // Audit-only entries (token reads…) have no deliveries: one statement.
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
            return Ok(());
        }
        with_pool!(&self.db, p => {
            let mut tx = p.begin_write().await.db()?;
            append_event_in!(&mut *tx, event);
            tx.commit().await.db()?;
        });
        Ok(())
    }

    async fn events_after(
        &self,
        ws: &WorkspaceId,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Event>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE workspace_id = $1 AND id > $2 \
             ORDER BY id LIMIT $3"
        );
        let rows: Vec<EventRow> = with_pool!(&self.db, p => {
            sqlx::query_as(&sql)
                .bind(ws.as_str())
                .bind(after.unwrap_or_default())
                .bind(i64::from(limit))
                .fetch_all(p)
                .await
        })
        .db()?;
        convert(rows)
    }

    async fn events_of_target(
        &self,
        ws: &WorkspaceId,
        target_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<Event>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE workspace_id = $1 AND target_id = $2 \
             ORDER BY id DESC LIMIT $3"
        );
        let rows: Vec<EventRow> = with_pool!(&self.db, p => {
            sqlx::query_as(&sql)
                .bind(ws.as_str())
                .bind(target_id)
                .bind(i64::from(limit))
                .fetch_all(p)
                .await
        })
        .db()?;
        convert(rows)
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
