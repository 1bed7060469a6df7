//! Connections: fenced updates, guarded deletes, filtered lists.

use crate::error::DbResult;
use crate::rows::{
    convert, json_text, limit, ms, opt_json_text, ConnectionRow, CONNECTION_COLUMNS,
};
use crate::{for_update, SqlStore, WritePool};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use latchkey_core::ids::{ConnectionId, WorkspaceId};
use latchkey_core::model::{ConnectionRecord, Event};
use latchkey_core::store::{
    ConnectionChange, ConnectionFilter, ConnectionStore, Page, StoreResult,
};
use latchkey_core::StoreError;

/// Binds `$1`…`$19` of [`INSERT_CONNECTION`] and [`UPDATE_CONNECTION`] from a record and its
/// settings and token meta as JSON text.
macro_rules! bind_connection {
    ($query:expr, $c:expr, $settings:expr, $token_meta:expr) => {
        $query
            .bind($c.id.as_str())
            .bind($c.workspace_id.as_str())
            .bind($c.name.as_str())
            .bind(&$c.app)
            .bind($c.environment.as_str())
            .bind($c.auth_mode.as_str())
            .bind($c.status.as_str())
            .bind(&$c.status_reason)
            .bind(&$c.hint)
            .bind($settings)
            .bind($crate::rows::borrow_from(&$c.settings))
            .bind($c.credentials.as_ref().map(|s| s.key_id.as_str()))
            .bind($c.credentials.as_ref().map(|s| s.ciphertext.as_slice()))
            .bind($c.version)
            .bind($crate::rows::ms($c.updated_at))
            .bind($c.verified_at.map($crate::rows::ms))
            .bind($c.tokens.as_ref().map(|s| s.key_id.as_str()))
            .bind($c.tokens.as_ref().map(|s| s.ciphertext.as_slice()))
            .bind($token_meta)
    };
}

/// Inserts one connection record with `$exec` (a pool or `&mut *tx`).
macro_rules! insert_connection {
    ($exec:expr, $c:expr) => {{
        let c: &latchkey_core::model::ConnectionRecord = $c;
        let settings = $crate::rows::json_text(&c.settings)?;
        let token_meta = $crate::rows::opt_json_text(c.token_meta.as_ref())?;
        let owner = $crate::rows::opt_json_text(c.owner.as_ref())?;
        let r: Result<(), latchkey_core::StoreError> = $crate::connections::bind_connection!(
            sqlx::query($crate::connections::INSERT_CONNECTION),
            c,
            settings,
            token_meta
        )
        .bind($crate::rows::ms(c.created_at))
        .bind(c.owner.as_ref().map(|o| o.end_user.id.as_str()))
        .bind(owner)
        .execute($exec)
        .await
        .map(|_| ())
        .db();
        match r {
            Ok(()) => $crate::health::insert_health!($exec, c),
            Err(e) => Err(e),
        }
    }};
}
pub(crate) use {bind_connection, insert_connection};

/// `InUse` (the transaction `$tx` is dropped, so rolled back) when active flows use the
/// connection or other connections borrow its concurrency.
macro_rules! refuse_if_in_use {
    ($tx:expr, $ws:expr, $id:expr) => {{
        let flows: Vec<(String,)> = sqlx::query_as(
            "SELECT f.name FROM flows f JOIN flow_connections fc ON fc.flow_id = f.id \
             WHERE fc.connection_id = $2 AND f.workspace_id = $1 AND f.active \
             ORDER BY f.name",
        )
        .bind($ws.as_str())
        .bind($id.as_str())
        .fetch_all($tx)
        .await
        .db()?;
        let borrowers: Vec<(String,)> = sqlx::query_as(
            "SELECT name FROM connections \
             WHERE workspace_id = $1 AND borrow_from = $2 AND id <> $2 ORDER BY name",
        )
        .bind($ws.as_str())
        .bind($id.as_str())
        .fetch_all($tx)
        .await
        .db()?;
        if !flows.is_empty() || !borrowers.is_empty() {
            return Err(StoreError::InUse {
                flows: flows.into_iter().map(|(n,)| n).collect(),
                borrowers: borrowers.into_iter().map(|(n,)| n).collect(),
            });
        }
    }};
}

pub(crate) const INSERT_CONNECTION: &str = "INSERT INTO connections (id, workspace_id, name, \
     app, environment, auth_mode, status, status_reason, hint, settings, borrow_from, \
     cred_key_id, cred_ciphertext, version, updated_at, verified_at, token_key_id, \
     token_ciphertext, token_meta, created_at, end_user_id, owner) VALUES ($1, $2, $3, $4, $5, \
     $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)";

// Every column but the refresh lease, which a refresh holds across its own fenced update.
const UPDATE_CONNECTION: &str = "UPDATE connections SET name = $3, app = $4, \
     environment = $5, auth_mode = $6, status = $7, status_reason = $8, hint = $9, \
     settings = $10, borrow_from = $11, cred_key_id = $12, cred_ciphertext = $13, \
     version = $14, updated_at = $15, verified_at = $16, token_key_id = $17, \
     token_ciphertext = $18, token_meta = $19, end_user_id = $21, owner = $22 \
     WHERE id = $1 AND workspace_id = $2 AND version = $20";

#[async_trait]
impl ConnectionStore for SqlStore {
    async fn insert_connection(&self, conn: &ConnectionRecord) -> StoreResult<()> {
        with_pool!(&self.db, p => {
            let mut tx = p.begin_write().await.db()?;
            insert_connection!(&mut *tx, conn)?;
            tx.commit().await.db()?;
        });
        Ok(())
    }

    async fn connection(
        &self,
        ws: &WorkspaceId,
        id: &ConnectionId,
    ) -> StoreResult<Option<ConnectionRecord>> {
        let sql = format!(
            "SELECT {CONNECTION_COLUMNS} FROM connections WHERE workspace_id = $1 AND id = $2"
        );
        let row: Option<ConnectionRow> = with_pool!(&self.db, p => {
            sqlx::query_as(&sql)
                .bind(ws.as_str())
                .bind(id.as_str())
                .fetch_optional(p)
                .await
        })
        .db()?;
        row.map(ConnectionRecord::try_from).transpose()
    }

    async fn connection_by_name(
        &self,
        ws: &WorkspaceId,
        name: &str,
    ) -> StoreResult<Option<ConnectionRecord>> {
        let sql = format!(
            "SELECT {CONNECTION_COLUMNS} FROM connections WHERE workspace_id = $1 AND name = $2"
        );
        let row: Option<ConnectionRow> = with_pool!(&self.db, p => {
            sqlx::query_as(&sql).bind(ws.as_str()).bind(name).fetch_optional(p).await
        })
        .db()?;
        row.map(ConnectionRecord::try_from).transpose()
    }

    async fn list_connections(
        &self,
        ws: &WorkspaceId,
        filter: &ConnectionFilter,
        page: &Page,
    ) -> StoreResult<Vec<ConnectionRecord>> {
        let mut sql = format!(
            "SELECT {CONNECTION_COLUMNS} FROM connections WHERE workspace_id = $1 AND id > $2"
        );
        let mut args: Vec<&str> = Vec::new();
        let filters = [
            ("app", filter.app.as_deref()),
            ("environment", filter.environment.as_deref()),
            ("status", filter.status.map(|s| s.as_str())),
            ("end_user_id", filter.end_user_id.as_deref()),
        ];
        for (column, value) in filters {
            if let Some(value) = value {
                args.push(value);
                sql.push_str(&format!(" AND {column} = ${}", args.len() + 3));
            }
        }
        sql.push_str(" ORDER BY id LIMIT $3");
        let after = page.after.as_deref().unwrap_or_default();
        let rows: Vec<ConnectionRow> = with_pool!(&self.db, p => {
            let mut query = sqlx::query_as(&sql).bind(ws.as_str()).bind(after).bind(limit(page));
            for arg in &args {
                query = query.bind(*arg);
            }
            query.fetch_all(p).await
        })
        .db()?;
        convert(rows)
    }

    async fn update_connection(
        &self,
        conn: &ConnectionRecord,
        expected_version: i64,
    ) -> StoreResult<()> {
        let settings = json_text(&conn.settings)?;
        let token_meta = opt_json_text(conn.token_meta.as_ref())?;
        let owner = opt_json_text(conn.owner.as_ref())?;
        let updated = with_pool!(&self.db, p => {
            bind_connection!(sqlx::query(UPDATE_CONNECTION), conn, &settings, &token_meta)
                .bind(expected_version)
                .bind(conn.owner.as_ref().map(|o| o.end_user.id.as_str()))
                .bind(&owner)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .db()?;
        if updated == 0 {
            return Err(StoreError::Stale);
        }
        self.sync_refresh_at(conn).await
    }

    async fn delete_connection(&self, ws: &WorkspaceId, id: &ConnectionId) -> StoreResult<bool> {
        self.change_connection(ConnectionChange::Delete { ws, id }, &[])
            .await
    }

    async fn change_connection(
        &self,
        change: ConnectionChange<'_>,
        events: &[Event],
    ) -> StoreResult<bool> {
        with_pool!(&self.db, p => {
            let mut tx = p.begin_write().await.db()?;
            let done = match change {
                ConnectionChange::Insert(c) => {
                    insert_connection!(&mut *tx, c)?;
                    true
                }
                ConnectionChange::Update { conn, expected_version } => {
                    let settings = json_text(&conn.settings)?;
                    let token_meta = opt_json_text(conn.token_meta.as_ref())?;
                    let owner = opt_json_text(conn.owner.as_ref())?;
                    let n = bind_connection!(sqlx::query(UPDATE_CONNECTION), conn, &settings, &token_meta)
                        .bind(expected_version)
                        .bind(conn.owner.as_ref().map(|o| o.end_user.id.as_str()))
                        .bind(&owner)
                        .execute(&mut *tx)
                        .await
                        .db()?
                        .rows_affected();
                    if n == 0 {
                        // Dropping the transaction rolls it back.
                        return Err(StoreError::Stale);
                    }
                    sqlx::query(crate::health::SET_REFRESH)
                        .bind(conn.id.as_str())
                        .bind(conn.proactive_refresh_at().map(ms))
                        .execute(&mut *tx)
                        .await
                        .db()?;
                    true
                }
                ConnectionChange::Delete { ws, id } => {
                    // Locking the row makes a concurrent flow link (whose foreign key check
                    // needs a share lock on it) wait for this decision instead of slipping in
                    // after the check.
                    let lock = format!(
                        "SELECT id FROM connections WHERE workspace_id = $1 AND id = $2{}",
                        for_update(p)
                    );
                    let found: Option<(String,)> = sqlx::query_as(&lock)
                        .bind(ws.as_str())
                        .bind(id.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .db()?;
                    if found.is_none() {
                        return Ok(false);
                    }
                    refuse_if_in_use!(&mut *tx, ws, id);
                    sqlx::query("DELETE FROM connections WHERE workspace_id = $1 AND id = $2")
                        .bind(ws.as_str())
                        .bind(id.as_str())
                        .execute(&mut *tx)
                        .await
                        .db()?;
                    true
                }
            };
            for event in events {
                crate::events::append_event_in!(&mut *tx, event);
            }
            tx.commit().await.db()?;
            Ok(done)
        })
    }

    async fn connection_counts(&self, ws: &WorkspaceId) -> StoreResult<Vec<(String, i64)>> {
        with_pool!(&self.db, p => {
            sqlx::query_as(
                "SELECT app, COUNT(*) FROM connections WHERE workspace_id = $1 \
                 AND status <> 'revoked' GROUP BY app ORDER BY app",
            )
            .bind(ws.as_str())
            .fetch_all(p)
            .await
        })
        .db()
    }

    async fn acquire_refresh_lease(
        &self,
        ws: &WorkspaceId,
        id: &ConnectionId,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        // The condition is evaluated on the row as it stands when this UPDATE gets it, so of
        // racing acquirers only the first finds the lease free.
        let taken = with_pool!(&self.db, p => {
            sqlx::query(
                "UPDATE connections SET refresh_lease_owner = $3, refresh_lease_until = $4 \
                 WHERE id = $1 AND workspace_id = $2 \
                 AND (refresh_lease_until IS NULL OR refresh_lease_until < $5)",
            )
            .bind(id.as_str())
            .bind(ws.as_str())
            .bind(owner)
            .bind(ms(until))
            .bind(ms(now))
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .db()?;
        Ok(taken == 1)
    }

    async fn release_refresh_lease(
        &self,
        ws: &WorkspaceId,
        id: &ConnectionId,
        owner: &str,
    ) -> StoreResult<()> {
        with_pool!(&self.db, p => {
            sqlx::query(
                "UPDATE connections SET refresh_lease_owner = NULL, refresh_lease_until = NULL \
                 WHERE id = $1 AND workspace_id = $2 AND refresh_lease_owner = $3",
            )
            .bind(id.as_str())
            .bind(ws.as_str())
            .bind(owner)
            .execute(p)
            .await
            .map(|_| ())
        })
        .db()
    }

    async fn renew_refresh_lease(
        &self,
        ws: &WorkspaceId,
        id: &ConnectionId,
        owner: &str,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let n = with_pool!(&self.db, p => {
            sqlx::query(
                "UPDATE connections SET refresh_lease_until = $4 \
                 WHERE id = $1 AND workspace_id = $2 AND refresh_lease_owner = $3",
            )
            .bind(id.as_str())
            .bind(ws.as_str())
            .bind(owner)
            .bind(ms(until))
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .db()?;
        Ok(n == 1)
    }

    async fn release_all_leases(&self) -> StoreResult<u64> {
        let leases = with_pool!(&self.db, p => {
            sqlx::query(
                "UPDATE connections SET refresh_lease_owner = NULL, refresh_lease_until = NULL \
                 WHERE refresh_lease_owner IS NOT NULL",
            )
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .db()?;
        let slots = with_pool!(&self.db, p => {
            sqlx::query("UPDATE pool_slots SET holder = NULL, lease_until = NULL WHERE holder IS NOT NULL")
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .db()?;
        let health = with_pool!(&self.db, p => {
            sqlx::query("UPDATE connection_health SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL")
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .db()?;
        let deliveries = with_pool!(&self.db, p => {
            sqlx::query("UPDATE webhook_deliveries SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL")
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .db()?;
        Ok(leases + slots + health + deliveries)
    }

    async fn connection_version(
        &self,
        ws: &WorkspaceId,
        id: &ConnectionId,
    ) -> StoreResult<Option<i64>> {
        let row: Option<(i64,)> = with_pool!(&self.db, p => {
            sqlx::query_as("SELECT version FROM connections WHERE workspace_id = $1 AND id = $2")
                .bind(ws.as_str())
                .bind(id.as_str())
                .fetch_optional(p)
                .await
        })
        .db()?;
        Ok(row.map(|(v,)| v))
    }

    async fn borrowers_of(
        &self,
        ws: &WorkspaceId,
        lender: &ConnectionId,
    ) -> StoreResult<Vec<ConnectionRecord>> {
        let sql = format!(
            "SELECT {CONNECTION_COLUMNS} FROM connections \
             WHERE workspace_id = $1 AND borrow_from = $2 ORDER BY id"
        );
        let rows: Vec<ConnectionRow> = with_pool!(&self.db, p => {
            sqlx::query_as(&sql).bind(ws.as_str()).bind(lender.as_str()).fetch_all(p).await
        })
        .db()?;
        convert(rows)
    }
}
