//! What every handler shares.

use crate::auth::keys::{AuthThrottle, KeyCache};
use crate::config::Config;
use crate::keyring::KeyRing;
use crate::outbound::Outbound;
use chrono::Utc;
use latchkey_core::catalog::Catalog;
use latchkey_core::ids::{EventId, WorkspaceId};
use latchkey_core::model::{Event, InstanceEvent};
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
    pub throttle: AuthThrottle,
    pub tokens: crate::oauth::token_cache::TokenManager,
    /// The hot path's memory of resolved workspaces and connections.
    pub hot: crate::hot::HotPaths,
    pub pools: Arc<crate::proxy::pool::Pools>,
    /// The URL browsers reach (OAuth redirect URI base).
    pub public_url: Url,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// The background loops' shared state (lease owner, event wake-ups).
    pub background: crate::background::shared::Shared,
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
