//! Webhooks and the outbox of their deliveries.

use crate::error::DbResult;
use crate::rows::{from_ms, json_text, limit, ms, opt_from_ms, parse, sealed};
use crate::{SqlStore, WritePool};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use latchkey_core::health::{AttemptOutcome, Delivery, DeliveryStatus, Webhook};
use latchkey_core::ids::{DeliveryId, WebhookId, WorkspaceId};
use latchkey_core::store::{Page, StoreResult, WebhookStore};
use latchkey_core::StoreError;

const WEBHOOK_COLUMNS: &str = "id, workspace_id, url, events, description, enabled, \
     secret_key_id, secret_ciphertext, previous_until, failing_since, disabled_reason, \
     created_at, updated_at";
pub(crate) const DELIVERY_COLUMNS: &str = "id, webhook_id, workspace_id, event_id, event_type, \
     payload, status, attempts, next_attempt_at, last_attempt_at, last_status_code, last_error, \
     created_at";

#[derive(sqlx::FromRow)]
struct WebhookRow {
    id: String,
    workspace_id: String,
    url: String,
    events: String,
    description: Option<String>,
    enabled: bool,
    secret_key_id: String,
    secret_ciphertext: Vec<u8>,
    previous_until: Option<i64>,
    failing_since: Option<i64>,
    disabled_reason: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<WebhookRow> for Webhook {
    type Error = StoreError;
    fn try_from(r: WebhookRow) -> Result<Self, StoreError> {
        Ok(Webhook {
            id: parse("webhook id", &r.id, WebhookId::parse)?,
            workspace_id: parse("workspace id", &r.workspace_id, WorkspaceId::parse)?,
            url: r.url,
            events: serde_json::from_str(&r.events)
                .map_err(|e| crate::error::corrupt("webhook events", e))?,
            description: r.description,
            enabled: r.enabled,
            secret: sealed(
                "webhook secret",
                Some(r.secret_key_id),
                Some(r.secret_ciphertext),
            )?
            .ok_or_else(|| crate::error::corrupt("webhook secret", "missing"))?,
            previous_until: opt_from_ms(r.previous_until)?,
            failing_since: opt_from_ms(r.failing_since)?,
            disabled_reason: r.disabled_reason,
            created_at: from_ms(r.created_at)?,
            updated_at: from_ms(r.updated_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct DeliveryRow {
    id: String,
    webhook_id: String,
    workspace_id: String,
    event_id: String,
    event_type: String,
    payload: String,
    status: String,
    attempts: i64,
    next_attempt_at: Option<i64>,
    last_attempt_at: Option<i64>,
    last_status_code: Option<i64>,
    last_error: Option<String>,
    created_at: i64,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = StoreError;
    fn try_from(r: DeliveryRow) -> Result<Self, StoreError> {
        Ok(Delivery {
            id: parse("delivery id", &r.id, DeliveryId::parse)?,
            webhook_id: parse("webhook id", &r.webhook_id, WebhookId::parse)?,
            workspace_id: parse("workspace id", &r.workspace_id, WorkspaceId::parse)?,
            event_id: r.event_id,
            event_type: r.event_type,
            payload: r.payload,
            status: DeliveryStatus::parse(&r.status)
                .ok_or_else(|| crate::error::corrupt("delivery status", &r.status))?,
            attempts: r.attempts,
            next_attempt_at: opt_from_ms(r.next_attempt_at)?,
            last_attempt_at: opt_from_ms(r.last_attempt_at)?,
            last_status_code: r.last_status_code,
            last_error: r.last_error,
            created_at: from_ms(r.created_at)?,
        })
    }
}

fn skip_locked<P: WritePool>(_p: &P) -> &'static str {
    if P::FOR_UPDATE.is_empty() {
        ""
    } else {
        " FOR UPDATE SKIP LOCKED"
    }
}

#[async_trait]
impl WebhookStore for SqlStore {
    async fn insert_webhook(&self, h: &Webhook) -> StoreResult<()> {
        let events = json_text(&h.events)?;
        with_pool!(&self.db, p => {
            sqlx::query(&format!(
                "INSERT INTO webhooks ({WEBHOOK_COLUMNS}) VALUES \
                 ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
            ))
            .bind(h.id.as_str())
            .bind(h.workspace_id.as_str())
            .bind(&h.url)
            .bind(&events)
            .bind(&h.description)
            .bind(h.enabled)
            .bind(h.secret.key_id.as_str())
            .bind(h.secret.ciphertext.as_slice())
            .bind(h.previous_until.map(ms))
            .bind(h.failing_since.map(ms))
            .bind(&h.disabled_reason)
            .bind(ms(h.created_at))
            .bind(ms(h.updated_at))
            .execute(p)
            .await
            .map(|_| ())
        })
        .db()?;
        Ok(())
    }

    async fn webhook(&self, ws: &WorkspaceId, id: &WebhookId) -> StoreResult<Option<Webhook>> {
        let sql =
            format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE workspace_id = $1 AND id = $2");
        let row: Option<WebhookRow> = with_pool!(&self.db, p => {
            sqlx::query_as(&sql).bind(ws.as_str()).bind(id.as_str()).fetch_optional(p).await
        })
        .db()?;
        row.map(Webhook::try_from).transpose()
    }

    async fn list_webhooks(&self, ws: &WorkspaceId, page: &Page) -> StoreResult<Vec<Webhook>> {
        let sql = format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE workspace_id = $1 AND id > $2 \
             ORDER BY id LIMIT $3"
        );
        let after = page.after.as_deref().unwrap_or_default();
        let rows: Vec<WebhookRow> = with_pool!(&self.db, p => {
            sqlx::query_as(&sql).bind(ws.as_str()).bind(after).bind(limit(page)).fetch_all(p).await
        })
        .db()?;
        rows.into_iter().map(Webhook::try_from).collect()
    }

    async fn update_webhook(&self, h: &Webhook) -> StoreResult<bool> {
        let events = json_text(&h.events)?;
        let n = with_pool!(&self.db, p => {
            sqlx::query(
                "UPDATE webhooks SET url = $3, events = $4, description = $5, enabled = $6, \
                 secret_key_id = $7, secret_ciphertext = $8, previous_until = $9, \
                 failing_since = $10, disabled_reason = $11, updated_at = $12 \
                 WHERE workspace_id = $1 AND id = $2",
            )
            .bind(h.workspace_id.as_str())
            .bind(h.id.as_str())
            .bind(&h.url)
            .bind(&events)
            .bind(&h.description)
            .bind(h.enabled)
            .bind(h.secret.key_id.as_str())
            .bind(h.secret.ciphertext.as_slice())
            .bind(h.previous_until.map(ms))
            .bind(h.failing_since.map(ms))
            .bind(&h.disabled_reason)
            .bind(ms(h.updated_at))
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .db()?;
        Ok(n > 0)
    }

    async fn record_endpoint_outcome(
        &self,
        id: &WebhookId,
        ok: bool,
        now: DateTime<Utc>,
        disable_before: DateTime<Utc>,
        reason: &str,
    ) -> StoreResult<bool> {
        if ok {
            with_pool!(&self.db, p => {
                sqlx::query("UPDATE webhooks SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL")
                    .bind(id.as_str())
                    .execute(p)
                    .await
                    .map(|_| ())
            })
            .db()?;
            return Ok(false);
        }
        let disabled = with_pool!(&self.db, p => {
            let mut tx = p.begin_write().await.db()?;
            sqlx::query("UPDATE webhooks SET failing_since = $2 WHERE id = $1 AND failing_since IS NULL")
                .bind(id.as_str())
                .bind(ms(now))
                .execute(&mut *tx)
                .await
                .db()?;
            let n = sqlx::query(
                "UPDATE webhooks SET enabled = $3, disabled_reason = $4, updated_at = $5 \
                 WHERE id = $1 AND enabled AND failing_since <= $2",
            )
            .bind(id.as_str())
            .bind(ms(disable_before))
            .bind(false)
            .bind(reason)
            .bind(ms(now))
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
            tx.commit().await.db()?;
            n > 0
        });
        Ok(disabled)
    }

    async fn delete_webhook(&self, ws: &WorkspaceId, id: &WebhookId) -> StoreResult<bool> {
        let n = with_pool!(&self.db, p => {
            sqlx::query("DELETE FROM webhooks WHERE workspace_id = $1 AND id = $2")
                .bind(ws.as_str())
                .bind(id.as_str())
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .db()?;
        Ok(n > 0)
    }

    async fn list_deliveries(
        &self,
        ws: &WorkspaceId,
        hook: &WebhookId,
        page: &Page,
    ) -> StoreResult<Vec<Delivery>> {
        let older = if page.after.is_some() {
            " AND id < $4"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE workspace_id = $1 \
             AND webhook_id = $2{older} ORDER BY id DESC LIMIT $3"
        );
        let rows: Vec<DeliveryRow> = with_pool!(&self.db, p => {
            let mut q = sqlx::query_as(&sql).bind(ws.as_str()).bind(hook.as_str()).bind(limit(page));
            if let Some(after) = &page.after {
                q = q.bind(after.as_str());
            }
            q.fetch_all(p).await
        })
        .db()?;
        rows.into_iter().map(Delivery::try_from).collect()
    }

    async fn delivery(&self, ws: &WorkspaceId, id: &DeliveryId) -> StoreResult<Option<Delivery>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE workspace_id = $1 AND id = $2"
        );
        let row: Option<DeliveryRow> = with_pool!(&self.db, p => {
            sqlx::query_as(&sql).bind(ws.as_str()).bind(id.as_str()).fetch_optional(p).await
        })
        .db()?;
        row.map(Delivery::try_from).transpose()
    }

    async fn retry_delivery(
        &self,
        ws: &WorkspaceId,
        id: &DeliveryId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let n = with_pool!(&self.db, p => {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $3 \
                 WHERE workspace_id = $1 AND id = $2",
            )
            .bind(ws.as_str())
            .bind(id.as_str())
            .bind(ms(now))
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .db()?;
        Ok(n > 0)
    }

    async fn claim_deliveries(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>> {
        let rows: Vec<DeliveryRow> = with_pool!(&self.db, p => {
            let sql = format!(
                "UPDATE webhook_deliveries SET lease_owner = $1, lease_until = $2 \
                 WHERE id IN (SELECT id FROM webhook_deliveries \
                   WHERE status = 'pending' AND next_attempt_at <= $3 \
                   AND (lease_until IS NULL OR lease_until < $3) \
                   ORDER BY next_attempt_at LIMIT $4{}) \
                 RETURNING {DELIVERY_COLUMNS}",
                skip_locked(p)
            );
            sqlx::query_as(&sql)
                .bind(owner)
                .bind(ms(until))
                .bind(ms(now))
                .bind(i64::from(limit))
                .fetch_all(p)
                .await
        })
        .db()?;
        rows.into_iter().map(Delivery::try_from).collect()
    }

    async fn finish_delivery(
        &self,
        id: &DeliveryId,
        owner: &str,
        o: &AttemptOutcome,
    ) -> StoreResult<()> {
        let status = match (&o.error, o.next_attempt_at) {
            (None, _) => DeliveryStatus::Succeeded,
            (Some(_), Some(_)) => DeliveryStatus::Pending,
            (Some(_), None) => DeliveryStatus::Failed,
        };
        with_pool!(&self.db, p => {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = $3, attempts = attempts + 1, \
                 next_attempt_at = $4, last_attempt_at = $5, last_status_code = $6, \
                 last_error = $7, lease_owner = NULL, lease_until = NULL \
                 WHERE id = $1 AND lease_owner = $2",
            )
            .bind(id.as_str())
            .bind(owner)
            .bind(status.as_str())
            .bind(o.next_attempt_at.map(ms))
            .bind(ms(o.at))
            .bind(o.status_code)
            .bind(&o.error)
            .execute(p)
            .await
            .map(|_| ())
        })
        .db()?;
        Ok(())
    }

    async fn outbox_stats(&self) -> StoreResult<(i64, Option<DateTime<Utc>>)> {
        let (n, oldest): (i64, Option<i64>) = with_pool!(&self.db, p => {
            sqlx::query_as(
                "SELECT COUNT(*), MIN(created_at) FROM webhook_deliveries WHERE status = 'pending'",
            )
            .fetch_one(p)
            .await
        })
        .db()?;
        Ok((n, opt_from_ms(oldest)?))
    }
}
