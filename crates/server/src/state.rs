//! What every handler shares.

use crate::auth::{Caller, KeyCache, Need};
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::hot::{Found, Resolved};
use crate::keyring::KeyRing;
use crate::outbound::Outbound;
use chrono::Utc;
use futures::FutureExt;
use latchkey_core::catalog::Catalog;
use latchkey_core::ids::{EventId, WorkspaceId};
use latchkey_core::model::{Event, InstanceEvent, Workspace};
use latchkey_core::store::{ConnectionChange, Store};
use std::ops::Deref;
use std::sync::Arc;
use url::Url;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// An event of a workspace happening now, to record with [`AppState::record`] or with a
/// connection change ([`AppState::change_connection`]).
pub fn new_event(
    ws: &WorkspaceId,
    actor: &str,
    action: &str,
    target_id: Option<&str>,
    target_name: Option<&str>,
    details: serde_json::Value,
) -> Event {
    Event {
        id: EventId::generate(),
        workspace_id: ws.clone(),
        at: Utc::now(),
        actor: actor.to_string(),
        action: action.to_string(),
        target_id: target_id.map(str::to_string),
        target_name: target_name.map(str::to_string),
        details,
    }
}

pub struct Inner {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub catalog: Catalog,
    pub keyring: KeyRing,
    pub outbound: Outbound,
    pub keys: KeyCache,
    pub throttle: crate::auth::AuthThrottle,
    pub tokens: crate::oauth::tokens::TokenManager,
    /// The hot path's memory of resolved workspaces and connections.
    pub hot: crate::hot::HotPaths,
    pub pools: Arc<crate::proxy::pool::Pools>,
    /// The URL browsers reach (OAuth redirect URI base).
    pub public_url: Url,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// The background loops' shared state (lease owner, event wake-ups).
    pub background: crate::background::Shared,
    /// Creates the web UI may still call off (Cancel during "Save & check").
    pub pending: crate::service::pending::PendingCreates,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    /// The workspace `{ws}` (slug or id) as this caller may see it, checking `need` (the key's
    /// scopes and the person's role). Another workspace answers 404, exactly like one that does
    /// not exist.
    pub async fn workspace(&self, caller: &Caller, ws: &str, need: Need) -> ApiResult<Workspace> {
        match self.find_workspace(ws).await? {
            Some(w) if caller.can_see(&w) => {
                if let Err(e) = caller.check(&w.id, need) {
                    // A refused attempt is in the audit log too (who, and what was missing).
                    self.audit(
                        &w.id,
                        &caller.actor(),
                        "access.refused",
                        None,
                        None,
                        serde_json::json!({
                            "reason": e.message,
                            "required_scope": need.scope(),
                            "required_role": need.least_role(),
                        }),
                    )
                    .await;
                    return Err(e);
                }
                Ok(w)
            }
            _ => Err(ApiError::not_found("workspace", ws)),
        }
    }

    /// The workspace `{ws}` (slug or id), whoever asks.
    async fn find_workspace(&self, ws: &str) -> ApiResult<Option<Workspace>> {
        Ok(if WorkspaceId::looks_like(ws) {
            match WorkspaceId::parse(ws) {
                Ok(id) => self.store.workspace_by_id(&id).await?,
                Err(_) => None,
            }
        } else {
            self.store.workspace_by_slug(ws).await?
        })
    }

    /// The workspace `{ws}` and its connection `{conn}` for a hot-path request (token read,
    /// proxied call), from memory when read less than a second ago (see [`crate::hot`]).
    /// Answers exactly as [`AppState::lookup`] does.
    pub async fn resolve(
        &self,
        caller: &Caller,
        ws: &str,
        conn: &str,
        need: Need,
    ) -> ApiResult<Resolved> {
        let state = self.clone();
        let (ws_key, conn_key) = (ws.to_string(), conn.to_string());
        let found = self
            .hot
            .resolve(ws, conn, move || {
                async move {
                    let Some(w) = state.find_workspace(&ws_key).await.ok()? else {
                        return Some(Found::NoWorkspace);
                    };
                    let w = Arc::new(w);
                    Some(
                        match crate::service::connections::lookup(&state, &w, &conn_key)
                            .await
                            .ok()?
                        {
                            Some(c) => Found::Both(Resolved {
                                ws: w,
                                conn: Arc::new(c),
                            }),
                            None => Found::NoConnection(w),
                        },
                    )
                }
                .boxed()
            })
            .await;
        let visible = |w: &Workspace| {
            if caller.can_see(w) {
                caller.check(&w.id, need)
            } else {
                Err(ApiError::not_found("workspace", ws))
            }
        };
        match found {
            Some(Found::Both(r)) => visible(&r.ws).map(|()| r),
            Some(Found::NoConnection(w)) => {
                visible(&w)?;
                Err(ApiError::not_found("connection", conn))
            }
            Some(Found::NoWorkspace) => Err(ApiError::not_found("workspace", ws)),
            // The store failed: the uncached path gives its error (or, recovered, the answer).
            None => self.lookup(caller, ws, conn, need).await,
        }
    }

    /// The workspace `{ws}` and its connection `{conn}` read from the store now, as this caller
    /// may see them.
    pub async fn lookup(
        &self,
        caller: &Caller,
        ws: &str,
        conn: &str,
        need: Need,
    ) -> ApiResult<Resolved> {
        let w = self.workspace(caller, ws, need).await?;
        let c = crate::service::connections::find(self, &w, conn).await?;
        Ok(Resolved {
            ws: Arc::new(w),
            conn: Arc::new(c),
        })
    }

    /// Drops what this process remembers of a connection, after any change to it.
    pub fn forget_connection(&self, id: &latchkey_core::ids::ConnectionId) {
        self.tokens.forget(id);
        self.hot.forget_connection(id);
    }

    /// Whether the master key comes from LATCHKEY_MASTER_KEY (no key file to write a new one to).
    pub fn config_is_inline_key(&self) -> bool {
        matches!(
            self.config.master_key,
            crate::config::MasterKeySource::Inline(_)
        )
    }

    /// Appends an audit event. A failure to record is logged, not answered: the action happened.
    pub async fn audit(
        &self,
        ws: &WorkspaceId,
        actor: &str,
        action: &str,
        target_id: Option<&str>,
        target_name: Option<&str>,
        details: serde_json::Value,
    ) {
        let event = new_event(ws, actor, action, target_id, target_name, details);
        self.record(&[event]).await;
    }

    /// Appends events made with [`new_event`], logging (not answering) a failure.
    pub async fn record(&self, events: &[Event]) {
        for event in events {
            if let Err(e) = self.store.append_event(event).await {
                tracing::error!(error = %e, action = %event.action, "could not record an audit event");
            }
        }
        if !events.is_empty() {
            self.background.recorded();
        }
    }

    /// Writes a connection change and its events in one store transaction (both or neither),
    /// then wakes the event streams and the delivery loop. False when a deleted connection was
    /// already gone.
    pub async fn change_connection(
        &self,
        change: ConnectionChange<'_>,
        events: &[Event],
    ) -> Result<bool, latchkey_core::StoreError> {
        let done = self.store.change_connection(change, events).await?;
        if done && !events.is_empty() {
            self.background.recorded();
        }
        Ok(done)
    }

    /// Appends an event that belongs to no workspace (admin keys and the like), listed by
    /// `GET /v1/events`. Like [`AppState::audit`], a failure is logged, not answered.
    pub async fn audit_instance(
        &self,
        actor: &str,
        action: &str,
        target_id: Option<&str>,
        target_name: Option<&str>,
        details: serde_json::Value,
    ) {
        let event = InstanceEvent {
            id: EventId::generate(),
            at: Utc::now(),
            actor: actor.to_string(),
            action: action.to_string(),
            target_id: target_id.map(str::to_string),
            target_name: target_name.map(str::to_string),
            details,
        };
        if let Err(e) = self.store.append_instance_event(&event).await {
            tracing::error!(error = %e, action, "could not record an instance audit event");
        }
    }
}
