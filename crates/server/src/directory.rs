//! Finding things by what callers call them: a workspace by slug or id, a connection by name or
//! id (inside its workspace only), an application of the catalog; and, for the hot path, the
//! pair of a workspace and a connection from memory.

use crate::auth::{Caller, Need};
use crate::error::{ApiError, ApiResult};
use crate::hot::{Found, Resolved};
use crate::state::AppState;
use futures::FutureExt;
use latchkey_core::catalog::AppEntry;
use latchkey_core::ids::{ConnectionId, WorkspaceId};
use latchkey_core::model::{ConnectionRecord, Workspace};
use std::sync::Arc;

/// Finds `{conn}`: an id (`conn_…`) or a name, inside the workspace only.
pub async fn find(state: &AppState, ws: &Workspace, key: &str) -> ApiResult<ConnectionRecord> {
    lookup(state, ws, key)
        .await?
        .ok_or_else(|| ApiError::not_found("connection", key))
}

/// The connection `key` (id or name) of the workspace, if there is one.
pub async fn lookup(
    state: &AppState,
    ws: &Workspace,
    key: &str,
) -> ApiResult<Option<ConnectionRecord>> {
    Ok(if ConnectionId::looks_like(key) {
        match ConnectionId::parse(key) {
            Ok(id) => state.store.connection(&ws.id, &id).await?,
            Err(_) => None,
        }
    } else {
        state.store.connection_by_name(&ws.id, key).await?
    })
}

/// The catalog's application `id`, or a 422 naming the ones there are.
pub fn app_entry<'a>(state: &'a AppState, id: &str) -> ApiResult<&'a AppEntry> {
    state.catalog.get(id).ok_or_else(|| {
        let known: Vec<&str> = state.catalog.iter().map(|a| a.id.as_str()).collect();
        ApiError::invalid(
            "app",
            format!("there is no application `{id}` in the catalog"),
        )
        .hint(format!("the catalog has: {}", known.join(", ")))
    })
}

impl AppState {
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
        let visible = |w: &Workspace| {
            if caller.can_see(w) {
                caller.check(&w.id, need)
            } else {
                Err(ApiError::not_found("workspace", ws))
            }
        };
        // Most requests find their pair in memory: nothing to set up for a read of the store.
        if let Some(r) = self.hot.get(ws, conn) {
            return visible(&r.ws).map(|()| r);
        }
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
                    Some(match lookup(&state, &w, &conn_key).await.ok()? {
                        Some(c) => Found::Both(Resolved {
                            ws: w,
                            conn: Arc::new(c),
                        }),
                        None => Found::NoConnection(w),
                    })
                }
                .boxed()
            })
            .await;
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
        let c = find(self, &w, conn).await?;
        Ok(Resolved {
            ws: Arc::new(w),
            conn: Arc::new(c),
        })
    }
}
