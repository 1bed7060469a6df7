//! Fresh tokens, refreshed exactly once (see docs/decisions/0002-refresh-leases.md).
//!
//! * In one process, one refresh per connection at a time: every other caller awaits the same
//!   shared future.
//! * Across instances, a lease on the connection row taken by one conditional UPDATE; no
//!   transaction is held during the provider call. Others poll the row's version until it moves.
//! * Before refreshing, the row is read again: if its version moved, someone already refreshed.
//! * The result is written fenced on the version read, so a slow refresh never overwrites a
//!   newer token; a rotated refresh token is stored before the answer is used for anything else.
//! * After `invalid_grant` the connection is `revoked` and refreshing stops; other failures back
//!   off exponentially.

use super::grant::{self, GrantError, Tokens};
use super::provider::Provider;
use super::token_cache::{AfterAnswer, Answer, Flight};
pub use super::token_cache::{TokenManager, TokenSet};
use super::{client_for, Failure};
use crate::state::{new_event, AppState};
pub use crate::vault::seal_tokens;
use chrono::{Duration, Utc};
use futures::future::FutureExt;
use latchkey_core::ids::ConnectionId;
use latchkey_core::model::{AuthMode, ConnectionRecord, ConnectionStatus, Workspace};
use latchkey_core::secret::SecretFields;
use latchkey_core::store::ConnectionChange;
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration as StdDuration;

/// A refresh lease lasts this long unless renewed; the holder renews it while the provider call
/// runs, so a lease outlives its holder by at most this much.
const LEASE_SECS: i64 = 6;
const LEASE_RENEW: StdDuration = StdDuration::from_secs(2);
const WAIT_LIMIT: StdDuration = StdDuration::from_secs(40);
const MAX_BACKOFF_SECS: i64 = 300;

/// How long a token read may be answered from memory before the store is asked again (see
/// [`crate::hot`]).
pub const HOT_RECHECK: StdDuration = crate::hot::HOT_RECHECK;

/// The connection's tokens as stored (from memory when this version, or a newer one this
/// process refreshed to, was seen before: versions only grow, and every other change to the
/// connection made here drops the memory).
pub async fn stored_tokens(
    state: &AppState,
    c: &ConnectionRecord,
) -> Result<Option<Arc<TokenSet>>, Failure> {
    if let Some(t) = state.tokens.cache.lock().expect("token cache").get(&c.id) {
        if t.version >= c.version {
            return Ok(Some(t.clone()));
        }
    }
    let Some(sealed) = &c.tokens else {
        return Ok(None);
    };
    let fields = state
        .keyring
        .open_fields(sealed, "connection", c.id.as_str(), "tokens")
        .await
        .map_err(|e| Failure::from_api(e.into()))?;
    let Some(access) = fields.get("access_token") else {
        return Ok(None);
    };
    let set = Arc::new(TokenSet {
        access_token: access.clone(),
        refresh_token: fields.get("refresh_token").cloned(),
        meta: c.token_meta.clone().unwrap_or_default(),
        version: c.version,
        scrub: Default::default(),
    });
    state
        .tokens
        .cache
        .lock()
        .expect("token cache")
        .insert(c.id.clone(), set.clone());
    Ok(Some(set))
}

/// The SHA-256 (hex) of a token set's access token: how a caller names the token it found
/// expired without sending it.
pub fn token_sha256(set: &TokenSet) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(set.access_token.expose_secret().as_bytes()))
}

/// A usable access token for the connection: the stored one while fresh, else a refresh.
/// `force` refreshes even a fresh token (a caller that got a 401), unless someone refreshed
/// since the caller read `conn`.
pub async fn fresh_token(
    state: &AppState,
    ws: &Workspace,
    conn: &ConnectionRecord,
    force: bool,
) -> Result<Arc<TokenSet>, Failure> {
    match conn.status {
        ConnectionStatus::PendingAuthorization => return Err(Failure::not_authorized(conn)),
        ConnectionStatus::Revoked => return Err(Failure::revoked(conn)),
        _ => {}
    }
    if !force {
        if let Some(t) = stored_tokens(state, conn).await? {
            if t.is_fresh() {
                return Ok(t);
            }
        }
        // This request waits on the provider. The background refresh is there so that this
        // never happens in steady state: counted, so that it shows when it does.
        metrics::counter!("latchkey_token_refresh_waits_total").increment(1);
    }
    single_flight(state, ws, conn.id.clone(), conn.version, force).await
}

/// Refreshes a token ahead of its expiry (the background worker, at ~80% of its life) through
/// the same single flight and cross-instance lease as a read, so it happens once across the
/// cluster. Nothing happens when the connection changed since `conn` was read (someone else
/// refreshed), or cannot be refreshed (revoked, waiting for authorization).
pub async fn refresh_ahead(
    state: &AppState,
    ws: &Workspace,
    conn: &ConnectionRecord,
) -> Result<(), Failure> {
    match conn.status {
        ConnectionStatus::PendingAuthorization => return Err(Failure::not_authorized(conn)),
        ConnectionStatus::Revoked => return Err(Failure::revoked(conn)),
        _ => {}
    }
    single_flight(state, ws, conn.id.clone(), conn.version, true)
        .await
        .map(|_| ())
}

async fn single_flight(
    state: &AppState,
    ws: &Workspace,
    id: ConnectionId,
    seen: i64,
    force: bool,
) -> Result<Arc<TokenSet>, Failure> {
    let answer = {
        let mut map = state.tokens.inflight.lock().expect("inflight");
        match map.get(&id) {
            // Under way: wait for its answer with everyone else.
            Some(f) if f.answer.peek().is_none() => f.answer.clone(),
            // None, or one that has answered but is still finishing: a new refresh, which
            // starts once the previous task has released its lease.
            previous => {
                let previous = previous.map(|f| f.finished.clone());
                // The refresh runs as a task of its own: callers going away never cut it off
                // between the provider's answer and the write of a rotated refresh token.
                let (tx, rx) = tokio::sync::oneshot::channel();
                let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
                let serial = state
                    .tokens
                    .flights
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let (st, ws, key) = (state.clone(), ws.clone(), id.clone());
                tokio::spawn(async move {
                    if let Some(p) = previous {
                        p.await;
                    }
                    let mut after = AfterAnswer::default();
                    let r = refresh_coordinated(&st, &ws, &key, seen, force, &mut after).await;
                    // The callers first; the bookkeeping after.
                    let _ = tx.send(r);
                    if after.leased {
                        if let Err(e) = st
                            .store
                            .release_refresh_lease(&ws.id, &key, &st.tokens.owner)
                            .await
                        {
                            tracing::warn!(connection = %key, error = %e, "could not release a refresh lease (it expires by itself)");
                        }
                    }
                    if let Some((name, rotated)) = after.refreshed {
                        st.audit(
                            &ws.id,
                            "system",
                            "connection.token_refreshed",
                            Some(key.as_str()),
                            Some(name.as_str()),
                            serde_json::json!({ "rotated": rotated }),
                        )
                        .await;
                    }
                    {
                        let mut map = st.tokens.inflight.lock().expect("inflight");
                        if map.get(&key).is_some_and(|f| f.serial == serial) {
                            map.remove(&key);
                        }
                    }
                    let _ = done_tx.send(());
                });
                let answer: Answer = async move {
                    rx.await.unwrap_or_else(|_| {
                        Err(Failure::new(
                            500,
                            "internal",
                            "the refresh ended without an answer",
                            Some("retry"),
                        ))
                    })
                }
                .boxed()
                .shared();
                let finished = async move {
                    let _ = done_rx.await;
                }
                .boxed()
                .shared();
                map.insert(
                    id,
                    Flight {
                        answer: answer.clone(),
                        finished,
                        serial,
                    },
                );
                answer
            }
        }
    };
    answer.await
}

/// Usable tokens of a row that someone else refreshed, if it has them.
async fn settled(
    state: &AppState,
    row: &ConnectionRecord,
) -> Result<Option<Arc<TokenSet>>, Failure> {
    match row.status {
        ConnectionStatus::Revoked => Err(Failure::revoked(row)),
        ConnectionStatus::PendingAuthorization => Err(Failure::not_authorized(row)),
        _ => stored_tokens(state, row).await,
    }
}

async fn refresh_coordinated(
    state: &AppState,
    ws: &Workspace,
    id: &ConnectionId,
    seen: i64,
    force: bool,
    after: &mut AfterAnswer,
) -> Result<Arc<TokenSet>, Failure> {
    let started = tokio::time::Instant::now();
    loop {
        let row = load(state, ws, id).await?;
        let moved = row.version != seen;
        if moved || !force {
            if let Some(t) = settled(state, &row).await? {
                if (force && moved) || t.is_fresh() {
                    return Ok(t);
                }
            }
        }
        let now = Utc::now();
        if state
            .store
            .acquire_refresh_lease(
                &ws.id,
                id,
                &state.tokens.owner,
                now + Duration::seconds(LEASE_SECS),
                now,
            )
            .await
            .map_err(Failure::store)?
        {
            after.leased = true;
            let work = async {
                let row2 = load(state, ws, id).await?;
                if row2.version != row.version {
                    if let Some(t) = settled(state, &row2).await? {
                        return Ok(t);
                    }
                }
                refresh_now(state, ws, row2, &mut after.refreshed).await
            };
            let renew = async {
                loop {
                    tokio::time::sleep(LEASE_RENEW).await;
                    let until = Utc::now() + Duration::seconds(LEASE_SECS);
                    if !matches!(
                        state
                            .store
                            .renew_refresh_lease(&ws.id, id, &state.tokens.owner, until)
                            .await,
                        Ok(true)
                    ) {
                        tracing::warn!(connection = %id, "lost the refresh lease while refreshing");
                    }
                }
            };
            return tokio::select! {
                r = work => r,
                _ = renew => unreachable!("the renewal loop never ends"),
            };
        }
        // Another instance is refreshing: wait for the row's version to move.
        let mut pause = StdDuration::from_millis(20);
        let waiting = tokio::time::Instant::now();
        loop {
            if started.elapsed() > WAIT_LIMIT {
                return Err(Failure::new(
                    503,
                    "refresh_timeout",
                    "another Latchkey instance is refreshing this connection and has not finished",
                    Some("retry in a few seconds"),
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(StdDuration::from_millis(250));
            match state
                .store
                .connection_version(&ws.id, id)
                .await
                .map_err(Failure::store)?
            {
                None => {
                    return Err(Failure::new(
                        404,
                        "not_found",
                        "the connection was deleted",
                        None,
                    ))
                }
                Some(v) if v != row.version => break,
                // The holder may have died: once its lease has expired, try to take it over.
                Some(_) if waiting.elapsed() > StdDuration::from_secs(LEASE_SECS as u64 + 1) => {
                    break
                }
                Some(_) => {}
            }
        }
    }
}

async fn load(
    state: &AppState,
    ws: &Workspace,
    id: &ConnectionId,
) -> Result<ConnectionRecord, Failure> {
    state
        .store
        .connection(&ws.id, id)
        .await
        .map_err(Failure::store)?
        .ok_or_else(|| Failure::new(404, "not_found", "the connection was deleted", None))
}

/// Talks to the provider (the caller holds the lease) and writes the outcome fenced.
async fn refresh_now(
    state: &AppState,
    ws: &Workspace,
    row: ConnectionRecord,
    refreshed: &mut Option<(String, bool)>,
) -> Result<Arc<TokenSet>, Failure> {
    if let Some(refusal) = backing_off(&row) {
        return Err(refusal);
    }
    let app = state.catalog.get(&row.app).ok_or_else(|| {
        Failure::new(
            500,
            "internal",
            "the connection's application left the catalog",
            None,
        )
    })?;
    // Nothing goes to a token endpoint the secret material is not bound to.
    crate::destinations::guard(state, ws, &row, false)
        .await
        .map_err(Failure::from_api)?;
    let creds = crate::vault::decrypt(state, &row)
        .await
        .map_err(Failure::from_api)?;
    let old = stored_tokens(state, &row).await?;
    metrics::counter!("latchkey_token_refreshes_total", "app" => row.app.clone()).increment(1);
    match obtain(state, ws, &row, app, &creds, old.as_deref()).await? {
        Ok(tokens) => keep_refreshed(state, ws, &row, tokens, old.as_deref(), refreshed).await,
        Err(e) => Err(record_refresh_failure(state, ws, &row, &e).await),
    }
}

/// The refusal of a connection whose last refresh failed and whose back-off has not ended.
fn backing_off(row: &ConnectionRecord) -> Option<Failure> {
    let after = row.token_meta.as_ref()?.retry_after?;
    (after > Utc::now() && row.status == ConnectionStatus::Failing).then(|| {
        Failure::backoff(
            format!(
                "the last refresh failed ({}); the next attempt is allowed after {}",
                row.status_reason.clone().unwrap_or_default(),
                after.to_rfc3339()
            ),
            row.hint.as_deref(),
        )
    })
}

/// The metadata of refreshed tokens, keeping what the new answer does not say (who the tokens
/// belong to, the instance, when the grant was authorized) from the tokens before.
fn refreshed_meta(
    mut meta: latchkey_core::model::TokenMeta,
    row: &ConnectionRecord,
    has_refresh: bool,
) -> latchkey_core::model::TokenMeta {
    let before = row.token_meta.as_ref();
    meta.has_refresh_token = has_refresh;
    meta.username = meta.username.or(before.and_then(|m| m.username.clone()));
    meta.provider_user_id = meta
        .provider_user_id
        .or(before.and_then(|m| m.provider_user_id.clone()));
    meta.provider_org_id = meta
        .provider_org_id
        .or(before.and_then(|m| m.provider_org_id.clone()));
    meta.instance_url = meta
        .instance_url
        .or(before.and_then(|m| m.instance_url.clone()));
    meta.authorized_at = before.and_then(|m| m.authorized_at);
    meta
}

/// Stores refreshed tokens, fenced on the version read; a failing connection becomes active
/// in the same write as its `connection.recovered` event. Someone else's newer write wins.
async fn keep_refreshed(
    state: &AppState,
    ws: &Workspace,
    row: &ConnectionRecord,
    tokens: Tokens,
    old: Option<&TokenSet>,
    refreshed: &mut Option<(String, bool)>,
) -> Result<Arc<TokenSet>, Failure> {
    let refresh = tokens
        .refresh_token
        .clone()
        .or_else(|| old.and_then(|o| o.refresh_token.clone()));
    let meta = refreshed_meta(tokens.meta, row, refresh.is_some());
    let mut next = row.clone();
    next.tokens =
        Some(seal_tokens(state, ws, &row.id, &tokens.access_token, refresh.as_ref()).await?);
    next.token_meta = Some(meta.clone());
    if row.status == ConnectionStatus::Failing || row.status == ConnectionStatus::Unverified {
        next.status = ConnectionStatus::Active;
        next.status_reason = None;
        next.hint = None;
    }
    next.version = row.version + 1;
    next.updated_at = Utc::now();
    let events: Vec<_> = crate::background::status_event(ws, row.status, &next, "refresh")
        .into_iter()
        .collect();
    let written = if events.is_empty() {
        state.store.update_connection(&next, row.version).await
    } else {
        let change = ConnectionChange::Update {
            conn: &next,
            expected_version: row.version,
        };
        state.change_connection(change, &events).await.map(|_| ())
    };
    match written {
        Ok(()) => {}
        Err(latchkey_core::StoreError::Stale) => {
            let newer = load(state, ws, &row.id).await?;
            return settled(state, &newer).await?.ok_or_else(|| {
                Failure::new(
                    409,
                    "conflict",
                    "the connection changed during the refresh",
                    Some("retry"),
                )
            });
        }
        Err(e) => return Err(Failure::store(e)),
    }
    metrics::counter!("latchkey_token_refresh_outcomes_total", "outcome" => "refreshed")
        .increment(1);
    // Recorded once the callers have their token.
    *refreshed = Some((
        row.name.as_str().to_string(),
        tokens.refresh_token.is_some(),
    ));
    let set = Arc::new(TokenSet {
        access_token: tokens.access_token,
        refresh_token: refresh,
        meta,
        version: next.version,
        scrub: Default::default(),
    });
    state
        .tokens
        .cache
        .lock()
        .expect("token cache")
        .insert(row.id.clone(), set.clone());
    Ok(set)
}

/// Records a failed refresh: a refused grant revokes the connection at once; anything else
/// makes it failing and backs off exponentially. The status and its events are one write.
async fn record_refresh_failure(
    state: &AppState,
    ws: &Workspace,
    row: &ConnectionRecord,
    e: &GrantError,
) -> Failure {
    let public = state.public_url.as_str().trim_end_matches('/').to_string();
    let hint =
        super::token_exchange::hint(row.auth_mode, e).unwrap_or_else(|| e.hint(true, &public));
    let mut next = row.clone();
    let mut meta = row.token_meta.clone().unwrap_or_default();
    let now = Utc::now();
    let failure = if e.is_invalid_grant() || e.lacks_refresh_token() {
        let mut reason = format!("refresh failed: {e}");
        if let Some(extra) = super::approvals::eviction_note(state, ws, row).await {
            reason.push_str("; ");
            reason.push_str(&extra);
        }
        next.mark_revoked(reason, hint);
        Failure::revoked(&next)
    } else {
        meta.failures = meta.failures.saturating_add(1);
        let wait = (1i64 << meta.failures.min(9)).min(MAX_BACKOFF_SECS);
        meta.retry_after = Some(now + Duration::seconds(wait));
        next.mark_failing(format!("refresh failed: {e}"), Some(hint));
        Failure::refresh_failed(
            format!("the token could not be refreshed: {e}"),
            next.hint.as_deref(),
        )
    };
    next.token_meta = Some(meta);
    next.version = row.version + 1;
    next.updated_at = now;
    state.forget_connection(&row.id);
    let outcome = if next.status == ConnectionStatus::Revoked {
        "revoked"
    } else {
        "failed"
    };
    metrics::counter!("latchkey_token_refresh_outcomes_total", "outcome" => outcome).increment(1);
    let failed = new_event(
        &ws.id,
        "system",
        "connection.refresh_failed",
        Some(row.id.as_str()),
        Some(row.name.as_str()),
        serde_json::json!({"error": e.code(), "status": next.status}),
    );
    let mut events = vec![failed.clone()];
    events.extend(crate::background::status_event(
        ws, row.status, &next, "refresh",
    ));
    let change = ConnectionChange::Update {
        conn: &next,
        expected_version: row.version,
    };
    if let Err(err) = state.change_connection(change, &events).await {
        tracing::warn!(connection = %row.id, error = %err, "could not record a refresh failure");
        // The attempt failed all the same: it is in the audit log, with no status change.
        state.record(&[failed]).await;
    }
    failure
}

/// Asks the provider for a new token: a refresh, a client-credentials or JWT-bearer grant, a
/// service account's new assertion, or a token exchange's new login.
async fn obtain(
    state: &AppState,
    ws: &Workspace,
    row: &ConnectionRecord,
    app: &latchkey_core::catalog::AppEntry,
    creds: &SecretFields,
    old: Option<&TokenSet>,
) -> Result<Result<Tokens, GrantError>, Failure> {
    Ok(if row.auth_mode.is_direct_exchange() {
        // A service account signs a new assertion; a token exchange logs in again.
        super::token_exchange::direct_grant(
            &state.outbound,
            app,
            row.auth_mode,
            &row.settings,
            creds,
        )
        .await
    } else {
        let provider = super::provider::Provider::for_connection(app, row.auth_mode, &row.settings)
            .map_err(Failure::from_api)?;
        let client = client_for(state, ws, &row.app, creds)
            .await
            .map_err(Failure::from_api)?;
        match row.auth_mode {
            AuthMode::OAuth2Code => match old.and_then(|o| o.refresh_token.clone()) {
                Some(rt) => grant::refresh(&state.outbound, &provider, &client, rt.expose_secret()).await,
                None => Err(GrantError::Provider {
                    status: 400,
                    error: "no_refresh_token".into(),
                    description: "the provider issued no refresh token (Salesforce issues one only with the refresh_token or offline_access scope)".into(),
                }),
            },
            AuthMode::OAuth2ClientCredentials => grant::client_credentials(&state.outbound, &provider, &client).await,
            AuthMode::OAuth2JwtBearer => {
                let subject = creds.expose("jwt_subject").unwrap_or_default().to_string();
                grant::jwt_bearer(&state.outbound, &provider, &client, &subject).await
            }
            other => Err(GrantError::Transport(format!("auth mode {other} has no token to refresh"))),
        }
    })
}

/// Why a grant could not be given back; the text is what the audit event records.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    #[error("unknown application")]
    UnknownApp,
    #[error("no token stored")]
    NoToken,
    /// A step before the revocation failed (the destination guard, the secrets, the client).
    #[error("{}", .0.message)]
    Api(#[source] crate::error::ApiError),
    /// The provider refused the revocation or could not be reached.
    #[error(transparent)]
    Grant(#[from] GrantError),
}

impl From<crate::error::ApiError> for RevokeError {
    fn from(e: crate::error::ApiError) -> Self {
        Self::Api(e)
    }
}

/// Deleting an OAuth connection gives its grant back to the provider (best effort; Salesforce
/// revokes the whole grant for a refresh token).
pub async fn revoke_grant(
    state: &AppState,
    ws: &Workspace,
    c: &ConnectionRecord,
) -> Result<(), RevokeError> {
    let app = state.catalog.get(&c.app).ok_or(RevokeError::UnknownApp)?;
    crate::destinations::guard(state, ws, c, false).await?;
    let provider = Provider::for_connection(app, c.auth_mode, &c.settings)?;
    let set = stored_tokens(state, c)
        .await
        .map_err(|f| RevokeError::Api(f.into()))?
        .ok_or(RevokeError::NoToken)?;
    let creds = crate::vault::decrypt(state, c).await?;
    let client = super::client_for(state, ws, &c.app, &creds).await?;
    let token = set.refresh_token.as_ref().unwrap_or(&set.access_token);
    grant::revoke(&state.outbound, &provider, &client, token.expose_secret()).await?;
    Ok(())
}
