//! Probes and proactive refreshes.
//!
//! * A new connection's first probe is placed at a random point of its interval, so a fleet of
//!   connections created together (or a restart) does not probe all at once; each next probe
//!   follows one interval after the last.
//! * A probe is the application's verification request with the stored credential (databases:
//!   connect and `SELECT 1`; OAuth: the check with a fresh token, refreshed once on a 401), and
//!   it takes a place in the connection's concurrency pool like a proxied call.
//! * A token with a known expiry is refreshed at ~80% of its life through the same single-flight
//!   refresh (and cross-instance lease) as a read, so reads find a fresh token.

use crate::oauth::{self, provider::Provider, tokens, FailureKind};
use crate::state::AppState;
use chrono::{DateTime, Duration, Utc};
use latchkey_core::health::{DueConnection, ProbeOutcome};
use latchkey_core::ids::{ConnectionId, WorkspaceId};
use latchkey_core::model::{ConnectionRecord, ConnectionStatus, Workspace};
use latchkey_core::store::ConnectionChange;
use rand::Rng;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;

/// A claim lasts this long: longer than a probe may take (verification times out sooner).
const CLAIM_SECS: i64 = 120;
/// Connections claimed per statement.
const BATCH: u32 = 64;
/// Probes and refreshes running at once in this instance.
const PARALLEL: usize = 16;
/// The setting that overrides `LATCHKEY_HEALTH_INTERVAL` for one connection (0: no probes).
pub const INTERVAL_SETTING: &str = latchkey_core::catalog::HEALTH_CHECK_INTERVAL;

pub async fn run(state: AppState) {
    let limit = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let workspaces = Arc::new(Workspaces::default());
    loop {
        let now = Utc::now();
        let claimed = match state
            .store
            .claim_due_connections(
                &state.background.owner,
                now,
                now + Duration::seconds(CLAIM_SECS),
                BATCH,
            )
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "could not look for due probes and refreshes");
                vec![]
            }
        };
        let full = claimed.len() as u32 == BATCH;
        // The claimed connections in one read, not one each.
        let ids: Vec<ConnectionId> = claimed.iter().map(|d| d.connection_id.clone()).collect();
        let mut rows: HashMap<ConnectionId, ConnectionRecord> =
            match state.store.connections_by_ids(&ids).await {
                Ok(rows) => rows.into_iter().map(|c| (c.id.clone(), c)).collect(),
                Err(e) => {
                    // Their leases run out and they are claimed again.
                    tracing::warn!(error = %e, "could not read the connections due for probes");
                    HashMap::new()
                }
            };
        let claimed = place_new(&state, claimed, &mut rows).await;
        for due in claimed {
            // Gone since the claim (its health row went with it).
            let Some(conn) = rows.remove(&due.connection_id) else {
                continue;
            };
            let permit = limit.clone().acquire_owned().await.expect("never closed");
            let (st, workspaces) = (state.clone(), workspaces.clone());
            tokio::spawn(async move {
                let id = due.connection_id.clone();
                // Nothing is recorded when the work could not be done (the store failed): the
                // lease runs out and the connection is claimed again.
                if let Some((next_probe, outcome)) = work(&st, &workspaces, due, conn).await {
                    if let Err(e) = st
                        .store
                        .finish_due_connection(
                            &id,
                            &st.background.owner,
                            next_probe,
                            outcome.as_ref(),
                        )
                        .await
                    {
                        tracing::warn!(connection = %id, error = %e, "could not record a probe");
                    }
                }
                drop(permit);
            });
        }
        if !full {
            tokio::time::sleep(state.config.background_tick).await;
        }
    }
}

/// Places the first probe of the new connections among `claimed` (and of those whose interval
/// changed) at a random point of their interval, all in one statement, and answers the rest.
/// A fleet of connections created or imported together is placed at a statement per batch,
/// not one each (100,000 connections cost 100,000 writes before).
async fn place_new(
    state: &AppState,
    claimed: Vec<DueConnection>,
    rows: &mut HashMap<ConnectionId, ConnectionRecord>,
) -> Vec<DueConnection> {
    let (new, rest): (Vec<_>, Vec<_>) = claimed.into_iter().partition(|d| d.probe_at.is_none());
    let now = Utc::now();
    let placed: Vec<_> = new
        .into_iter()
        .filter_map(|d| {
            let c = rows.remove(&d.connection_id)?;
            Some((d.connection_id, first_probe(state, &c, now)))
        })
        .collect();
    if let Err(e) = state
        .store
        .place_probes(&state.background.owner, &placed)
        .await
    {
        // Their leases run out and they are claimed again.
        tracing::warn!(error = %e, "could not place new connections' first probes");
    }
    rest
}

/// A new connection's first probe (or a changed interval's): a random point of its interval;
/// `None` when its probes are off.
fn first_probe(
    state: &AppState,
    c: &ConnectionRecord,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    interval_of(state, c).map(|i| {
        let ms = rand::thread_rng().gen_range(0..(i.as_millis() as i64).max(1));
        now + Duration::milliseconds(ms)
    })
}

/// Workspaces the loop read lately: the connections of a batch mostly share a few, and a
/// workspace's data key (all a probe needs of it) never changes.
#[derive(Default)]
struct Workspaces {
    seen: Mutex<HashMap<WorkspaceId, (Arc<Workspace>, std::time::Instant)>>,
}

impl Workspaces {
    const KEEP: std::time::Duration = std::time::Duration::from_secs(60);

    /// The workspace; `None` when it is gone or the store failed.
    async fn get(&self, state: &AppState, id: &WorkspaceId) -> Option<Arc<Workspace>> {
        if let Some((ws, at)) = self.seen.lock().expect("workspaces").get(id) {
            if at.elapsed() < Self::KEEP {
                return Some(ws.clone());
            }
        }
        let ws = Arc::new(state.store.workspace_by_id(id).await.ok()??);
        let mut seen = self.seen.lock().expect("workspaces");
        if seen.len() > 10_000 {
            seen.retain(|_, (_, at)| at.elapsed() < Self::KEEP);
        }
        seen.insert(id.clone(), (ws.clone(), std::time::Instant::now()));
        Some(ws)
    }
}

/// The probe interval of a connection; `None` when its probes are off.
pub fn interval_of(state: &AppState, c: &ConnectionRecord) -> Option<std::time::Duration> {
    match c.settings.get(INTERVAL_SETTING).and_then(Value::as_u64) {
        Some(0) => None,
        Some(n) => Some(std::time::Duration::from_secs(n.max(5))),
        None => Some(state.config.health_interval),
    }
}

type Next = (Option<DateTime<Utc>>, Option<ProbeOutcome>);

/// Does what is due for one connection; answers its next probe time and the probe's outcome.
async fn work(
    state: &AppState,
    workspaces: &Workspaces,
    due: DueConnection,
    c: ConnectionRecord,
) -> Option<Next> {
    let ws = workspaces.get(state, &due.workspace_id).await?;
    let ws = ws.as_ref();
    let now = Utc::now();
    let interval = interval_of(state, &c).map(|d| Duration::seconds(d.as_secs() as i64));
    let Some(probe_at) = due.probe_at else {
        // Placed by `place_new` before the work starts; placed here all the same.
        return Some((first_probe(state, &c, now), None));
    };
    let probe_at = (probe_at.timestamp() < 253_402_300_000).then_some(probe_at);
    if due.refresh_at.is_some_and(|r| r <= now) {
        proactive_refresh(state, ws, &c).await;
    }
    match (probe_at, interval) {
        (Some(p), Some(i)) if p <= now => {
            let outcome = probe(state, ws, c).await;
            Some((Some(now + i), outcome))
        }
        // Not due yet (the refresh was), or the interval changed to off.
        (p, i) => Some((i.and(p.or(Some(now))), None)),
    }
}

async fn proactive_refresh(state: &AppState, ws: &Workspace, c: &ConnectionRecord) {
    let outcome = match tokens::refresh_ahead(state, ws, c).await {
        Ok(()) => "refreshed",
        Err(f) if f.kind == FailureKind::Revoked => "revoked",
        Err(_) => "failed",
    };
    metrics::counter!("latchkey_proactive_refreshes_total", "outcome" => outcome).increment(1);
}

/// Probes a connection and records a change of status with its event. `None` when nothing
/// was probed (waiting for authorization, revoked: nothing can succeed until someone acts).
pub async fn probe(state: &AppState, ws: &Workspace, c: ConnectionRecord) -> Option<ProbeOutcome> {
    let id = &c.id;
    if matches!(
        c.status,
        ConnectionStatus::PendingAuthorization | ConnectionStatus::Revoked
    ) {
        return None;
    }
    let (pool, level) = pool_of(state, ws, &c).await;
    let permit = state
        .pools
        .acquire(&pool, level, state.config.proxy_queue_timeout)
        .await;
    let result = match permit {
        Ok(_held) => check(state, ws, &c).await,
        Err(_) => Err((
            "the connection's concurrency pool stayed full for the whole queue timeout".to_string(),
            None,
        )),
    };
    let now = Utc::now();
    let outcome_label = if result.is_ok() { "ok" } else { "failed" };
    metrics::counter!("latchkey_probes_total", "outcome" => outcome_label).increment(1);
    // The row as it is now: an OAuth check may have refreshed (or revoked) it.
    let current = if c.auth_mode.has_tokens() {
        state.store.connection(&ws.id, id).await.ok()??
    } else {
        c.clone()
    };
    let error = match &result {
        Ok(()) => None,
        Err(_) if current.status == ConnectionStatus::Revoked => current.status_reason.clone(),
        Err((m, _)) => Some(m.clone()),
    };
    let next_status = match (&result, current.status) {
        (Ok(()), ConnectionStatus::Failing) => Some(ConnectionStatus::Active),
        (Err(_), ConnectionStatus::Active) => Some(ConnectionStatus::Failing),
        _ => None,
    };
    if let Some(status) = next_status {
        let mut next = current.clone();
        next.status = status;
        match (&result, status) {
            (Err((m, h)), _) => {
                next.status_reason = Some(format!("health check failed: {m}"));
                next.hint = h.clone();
            }
            (Ok(()), _) => {
                next.status_reason = None;
                next.hint = None;
                next.verified_at = Some(now);
            }
        }
        next.version = current.version + 1;
        next.updated_at = now;
        // The new status and its event are one write: a crash never keeps one without the other.
        let events: Vec<_> = super::status_event(ws, current.status, &next, "health_check")
            .into_iter()
            .collect();
        let change = ConnectionChange::Update {
            conn: &next,
            expected_version: current.version,
        };
        match state.change_connection(change, &events).await {
            Ok(_) => state.forget_connection(&next.id),
            Err(e) => {
                tracing::debug!(connection = %id, error = %e, "the connection changed during its probe")
            }
        }
    }
    Some(ProbeOutcome { at: now, error })
}

/// The pool a connection's probe counts against: its lender's or its own.
async fn pool_of(state: &AppState, ws: &Workspace, c: &ConnectionRecord) -> (String, usize) {
    if let Some(Value::String(lender)) = c.settings.get("borrow_concurrency_from") {
        if let Ok(lid) = ConnectionId::parse(lender) {
            if let Ok(Some(l)) = state.store.connection(&ws.id, &lid).await {
                return (l.id.to_string(), crate::proxy::level_of(&l));
            }
        }
    }
    (c.id.to_string(), crate::proxy::level_of(c))
}

type CheckError = (String, Option<String>);

/// The verification request with the stored credential.
async fn check(state: &AppState, ws: &Workspace, c: &ConnectionRecord) -> Result<(), CheckError> {
    let app = state.catalog.get(&c.app).ok_or_else(|| {
        (
            "the connection's application left the catalog".to_string(),
            None,
        )
    })?;
    if !c.auth_mode.has_tokens() {
        let creds = crate::vault::decrypt(state, c)
            .await
            .map_err(|e| (e.message, e.hint))?;
        return match crate::verify::verify(&state.outbound, app, c.auth_mode, &c.settings, &creds)
            .await
        {
            Ok(()) => Ok(()),
            Err(latchkey_core::CoreError::VerificationFailed { message, hint, .. }) => {
                Err((message, hint))
            }
            Err(other) => Err((other.to_string(), None)),
        };
    }
    let provider = if c.auth_mode.is_direct_exchange() {
        None
    } else {
        Some(
            Provider::for_connection(app, c.auth_mode, &c.settings)
                .map_err(|e| (e.message, e.hint))?,
        )
    };
    let mut forced = false;
    let mut row = c.clone();
    loop {
        let set = tokens::fresh_token(state, ws, &row, forced)
            .await
            .map_err(|f| (f.message, f.hint))?;
        let toks = oauth::grant::Tokens {
            access_token: set.access_token.clone(),
            refresh_token: None,
            meta: set.meta.clone(),
        };
        let checked = match &provider {
            Some(p) => oauth::check(state, app, &row.settings, p, &toks)
                .await
                .map(|_| ()),
            None => {
                crate::service::exchange::check_token(
                    state,
                    app,
                    row.auth_mode,
                    &row.settings,
                    &toks,
                )
                .await
            }
        };
        match checked {
            Ok(()) => return Ok(()),
            // An expired session (Salesforce's userinfo says 403 Bad_OAuth_Token for a token
            // that is no longer valid): refresh once and check again.
            Err(e) if !forced && e.looks_like_expired_session() => {
                forced = true;
                row = match state.store.connection(&ws.id, &c.id).await {
                    Ok(Some(r)) => r,
                    _ => return Err(("the connection was deleted".into(), None)),
                };
            }
            Err(oauth::CheckFailed { message, hint }) => return Err((message, Some(hint))),
        }
    }
}
