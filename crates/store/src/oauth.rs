//! OAuth clients per workspace and application, and single-use authorization states.

use crate::error::DbResult;
use crate::rows::{ms, OAuthClientRow, OAuthStateRow, OAUTH_CLIENT_COLUMNS, OAUTH_STATE_COLUMNS};
use crate::SqlStore;
use async_trait::async_trait;
use latchkey_core::ids::{ConnectionId, WorkspaceId};
use latchkey_core::model::{OAuthClientRecord, OAuthState};
use latchkey_core::store::{OAuthStore, StoreResult};
use latchkey_core::StoreError;

#[async_trait]
impl OAuthStore for SqlStore {
    async fn put_oauth_client(&self, client: &OAuthClientRecord) -> StoreResult<()> {
        with_pool!(&self.db, p => {
            sqlx::query(
                "INSERT INTO oauth_clients (workspace_id, app, client_id, secret_key_id, \
                 secret_ciphertext, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (workspace_id, app) DO UPDATE SET \
                 client_id = excluded.client_id, secret_key_id = excluded.secret_key_id, \
                 secret_ciphertext = excluded.secret_ciphertext, \
                 updated_at = excluded.updated_at",
            )
            .bind(client.workspace_id.as_str())
            .bind(&client.app)
            .bind(&client.client_id)
            .bind(client.secret.as_ref().map(|s| s.key_id.as_str()))
            .bind(client.secret.as_ref().map(|s| s.ciphertext.as_slice()))
            .bind(ms(client.created_at))
            .bind(ms(client.updated_at))
            .execute(p)
            .await
            .map(|_| ())
        })
        .db()
    }

    async fn oauth_client(
        &self,
        ws: &WorkspaceId,
        app: &str,
    ) -> StoreResult<Option<OAuthClientRecord>> {
        let sql = format!(
            "SELECT {OAUTH_CLIENT_COLUMNS} FROM oauth_clients WHERE workspace_id = $1 AND app = $2"
        );
        let row: Option<OAuthClientRow> = with_pool!(&self.db, p => {
            sqlx::query_as(&sql).bind(ws.as_str()).bind(app).fetch_optional(p).await
        })
        .db()?;
        row.map(OAuthClientRecord::try_from).transpose()
    }

    async fn delete_oauth_client(&self, ws: &WorkspaceId, app: &str) -> StoreResult<bool> {
        let deleted = with_pool!(&self.db, p => {
            sqlx::query("DELETE FROM oauth_clients WHERE workspace_id = $1 AND app = $2")
                .bind(ws.as_str())
                .bind(app)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .db()?;
        Ok(deleted > 0)
    }

    async fn insert_oauth_state(&self, state: &OAuthState) -> StoreResult<()> {
        // Selecting the connection within the state's workspace keeps a state from binding a
        // connection of another workspace, which the foreign key alone would allow.
        let inserted = with_pool!(&self.db, p => {
            sqlx::query(
                "INSERT INTO oauth_states (state_hash, workspace_id, connection_id, \
                 verifier_key_id, verifier_ciphertext, redirect_uri, created_at, expires_at) \
                 SELECT $1, workspace_id, id, $2, $3, $4, $5, $6 FROM connections \
                 WHERE workspace_id = $7 AND id = $8",
            )
            .bind(&state.state_hash)
            .bind(state.verifier.as_ref().map(|s| s.key_id.as_str()))
            .bind(state.verifier.as_ref().map(|s| s.ciphertext.as_slice()))
            .bind(&state.redirect_uri)
            .bind(ms(state.created_at))
            .bind(ms(state.expires_at))
            .bind(state.workspace_id.as_str())
            .bind(state.connection_id.as_str())
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .db()?;
        if inserted == 0 {
            return Err(StoreError::Stale);
        }
        Ok(())
    }

    async fn take_oauth_state(&self, state_hash: &str) -> StoreResult<Option<OAuthState>> {
        // One statement that deletes and returns: of racing takers only the one whose DELETE
        // removed the row gets it back.
        let sql = format!(
            "DELETE FROM oauth_states WHERE state_hash = $1 RETURNING {OAUTH_STATE_COLUMNS}"
        );
        let row: Option<OAuthStateRow> = with_pool!(&self.db, p => {
            sqlx::query_as(&sql).bind(state_hash).fetch_optional(p).await
        })
        .db()?;
        row.map(OAuthState::try_from).transpose()
    }

    async fn delete_oauth_states(&self, conn: &ConnectionId) -> StoreResult<()> {
        with_pool!(&self.db, p => {
            sqlx::query("DELETE FROM oauth_states WHERE connection_id = $1")
                .bind(conn.as_str())
                .execute(p)
                .await
                .map(|_| ())
        })
        .db()
    }
}
