//! The end of the browser step (R4): the provider redirects to `/oauth/callback` with a code (or
//! an error) and the state. The state is taken once; the code is exchanged with the PKCE
//! verifier; the connection is checked and becomes active. Any failure leaves it pending with
//! the reason and a hint.

use super::grant::{self, GrantError};
use super::provider::Provider;
use super::{approvals, client_for, hash_state};
use crate::state::AppState;
use chrono::Utc;
use latchkey_core::model::{AuthMode, ConnectionRecord, ConnectionStatus, OAuthState, Workspace};
use secrecy::ExposeSecret;
use serde_json::json;

pub struct Done {
    pub id: String,
    pub name: String,
    /// " as user@example.com", or empty.
    pub who: String,
}

pub struct CallbackFailure {
    pub status: u16,
    /// `denied`, `expired`, `error`.
    pub status_word: String,
    pub id: String,
    pub name: String,
    pub message: String,
    pub hint: Option<String>,
}

fn fail(
    status: u16,
    word: &str,
    c: Option<&ConnectionRecord>,
    message: impl Into<String>,
    hint: Option<String>,
) -> CallbackFailure {
    CallbackFailure {
        status,
        status_word: word.into(),
        id: c.map(|c| c.id.to_string()).unwrap_or_default(),
        name: c.map(|c| c.name.to_string()).unwrap_or_default(),
        message: message.into(),
        hint,
    }
}

/// Leaves the connection as it was (pending, or its earlier status when re-authorizing), with
/// the reason the authorization failed.
async fn record_failure(
    state: &AppState,
    ws: &Workspace,
    c: &ConnectionRecord,
    reason: &str,
    hint: &Option<String>,
) {
    for _ in 0..3 {
        let Ok(Some(mut row)) = state.store.connection(&ws.id, &c.id).await else {
            return;
        };
        if row.status != ConnectionStatus::PendingAuthorization
            && row.status != ConnectionStatus::Revoked
        {
            // A working connection stays working; the failed re-authorization is only in the log.
            break;
        }
        let expected = row.version;
        row.status_reason = Some(format!("authorization failed: {reason}"));
        row.hint = hint.clone();
        row.version += 1;
        row.updated_at = Utc::now();
        if state.store.update_connection(&row, expected).await.is_ok() {
            state.forget_connection(&row.id);
            break;
        }
    }
    state
        .audit(
            &ws.id,
            "system",
            "connection.authorization_failed",
            Some(c.id.as_str()),
            Some(c.name.as_str()),
            json!({"reason": reason}),
        )
        .await;
}

/// What an OAuth 1.0a provider sends back to the callback (RFC 5849 §2.2).
#[derive(Default)]
pub struct OAuth1Return {
    pub oauth_token: Option<String>,
    pub oauth_verifier: Option<String>,
}

/// The browser came back from the provider: the state is taken (once), then either the
/// provider's refusal is recorded, or the code is exchanged, the tokens checked and kept, and
/// the connection becomes active.
pub async fn complete(
    state: &AppState,
    code: Option<String>,
    raw_state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    oauth1: OAuth1Return,
) -> Result<Done, CallbackFailure> {
    let (st, ws, conn) = take_state(state, raw_state).await?;
    if st.expires_at < Utc::now() {
        let hint =
            Some("start the authorization again; a link is valid for 10 minutes".to_string());
        let reason = "the authorization request expired";
        record_failure(state, &ws, &conn, reason, &hint).await;
        return Err(fail(400, "expired", Some(&conn), reason, hint));
    }
    if let Some(err) = error {
        return Err(provider_refused(state, &ws, &conn, err, error_description).await);
    }
    if conn.auth_mode == AuthMode::OAuth1 {
        return complete_oauth1(state, &ws, &conn, &st, oauth1).await;
    }
    let Some(code) = code.filter(|c| !c.is_empty() && c.len() <= 4096) else {
        return Err(fail(
            400,
            "error",
            Some(&conn),
            "the provider sent neither a code nor an error",
            None,
        ));
    };
    let app = state.catalog.get(&conn.app).ok_or_else(|| {
        fail(
            500,
            "error",
            Some(&conn),
            "the application left the catalog",
            None,
        )
    })?;
    let verifier = open_verifier(state, &st, &conn).await?;
    let (client, provider) = prepare(state, &ws, &conn, app).await?;
    let exchange = Exchange {
        provider: &provider,
        client: &client,
        code: &code,
        redirect_uri: &st.redirect_uri,
        verifier: verifier.as_deref(),
    };
    let tokens = exchange_code(state, &ws, &conn, &exchange).await?;
    let (sealed, mut meta) = keep(state, &ws, &conn, app, &provider, &tokens).await?;
    let now = Utc::now();
    meta.authorized_at = Some(now);
    let Some(row) = save_authorized(state, &ws, &conn, &sealed, &meta, now).await else {
        // The grant exists at the provider but could not be kept: give it back.
        let token = tokens
            .refresh_token
            .as_ref()
            .unwrap_or(&tokens.access_token);
        let _ = grant::revoke(&state.outbound, &provider, &client, token.expose_secret()).await;
        return Err(fail(
            409,
            "error",
            Some(&conn),
            "the connection changed or was deleted during the authorization",
            Some("start again".into()),
        ));
    };
    announce(state, &ws, &row, &meta).await;
    Ok(Done {
        id: row.id.to_string(),
        name: row.name.to_string(),
        who: meta
            .username
            .map(|u| format!(" as {u}"))
            .unwrap_or_default(),
    })
}

/// The authorization request the state names, taken so it cannot be used again, with its
/// workspace and connection.
async fn take_state(
    state: &AppState,
    raw_state: Option<String>,
) -> Result<(OAuthState, Workspace, ConnectionRecord), CallbackFailure> {
    let Some(raw_state) = raw_state.filter(|s| !s.is_empty() && s.len() <= 512) else {
        return Err(fail(
            400,
            "error",
            None,
            "the provider sent no state back",
            Some("start the authorization again from Latchkey".into()),
        ));
    };
    let taken = state
        .store
        .take_oauth_state(&hash_state(&raw_state))
        .await
        .map_err(|_| {
            fail(
                500,
                "error",
                None,
                "the authorization could not be looked up",
                None,
            )
        })?;
    let Some(st) = taken else {
        return Err(fail(
            400,
            "error",
            None,
            "this authorization link is unknown or was already used",
            Some("start the authorization again from Latchkey; each link works once".into()),
        ));
    };
    let Ok(Some(ws)) = state.store.workspace_by_id(&st.workspace_id).await else {
        return Err(fail(
            404,
            "error",
            None,
            "the workspace no longer exists",
            None,
        ));
    };
    let Ok(Some(conn)) = state.store.connection(&ws.id, &st.connection_id).await else {
        return Err(fail(
            404,
            "error",
            None,
            "the connection was deleted (the authorization was cancelled)",
            None,
        ));
    };
    Ok((st, ws, conn))
}

/// The provider sent an error instead of a code. What the browser brought back is the
/// provider's word at best: it is kept only as an error code and a scrubbed description.
async fn provider_refused(
    state: &AppState,
    ws: &Workspace,
    conn: &ConnectionRecord,
    err: String,
    description: Option<String>,
) -> CallbackFailure {
    let mut scrubber = latchkey_core::scrub::Scrubber::new();
    if let Ok(creds) = crate::vault::decrypt(state, conn).await {
        if let Ok(client) = client_for(state, ws, &conn.app, &creds).await {
            scrubber = client.scrubber();
        }
    }
    let e = GrantError::Provider {
        status: 400,
        error: err.chars().take(100).collect(),
        description: description.unwrap_or_default(),
    }
    .scrubbed(&scrubber);
    let hint = Some(e.hint(false, public_base(state)));
    record_failure(state, ws, conn, &e.to_string(), &hint).await;
    let word = if e.is_access_denied() {
        "denied"
    } else {
        "error"
    };
    fail(
        400,
        word,
        Some(conn),
        format!("the provider answered {e}"),
        hint,
    )
}

fn public_base(state: &AppState) -> &str {
    state.public_url.as_str().trim_end_matches('/')
}

/// The PKCE verifier sealed with the authorization request, if it had one.
async fn open_verifier(
    state: &AppState,
    st: &OAuthState,
    conn: &ConnectionRecord,
) -> Result<Option<String>, CallbackFailure> {
    let Some(sealed) = &st.verifier else {
        return Ok(None);
    };
    match state
        .keyring
        .open_fields(sealed, "oauth_state", &st.state_hash, "verifier")
        .await
    {
        Ok(f) => Ok(f.expose("verifier").map(str::to_string)),
        Err(_) => Err(fail(
            500,
            "error",
            Some(conn),
            "the PKCE verifier could not be decrypted",
            None,
        )),
    }
}

/// The client and the provider the code is exchanged with, once the connection is confirmed to
/// be bound where they lead: the code and the client secret go nowhere else.
async fn prepare(
    state: &AppState,
    ws: &Workspace,
    conn: &ConnectionRecord,
    app: &latchkey_core::catalog::AppEntry,
) -> Result<(grant::ClientCreds, Provider), CallbackFailure> {
    let prepared = async {
        crate::destinations::guard(state, ws, conn, false).await?;
        let creds = crate::vault::decrypt(state, conn).await?;
        let client = client_for(state, ws, &conn.app, &creds).await?;
        let provider = Provider::for_connection(app, conn.auth_mode, &conn.settings)?;
        super::check_client_destination(&client, &provider)?;
        Ok::<_, crate::error::ApiError>((client, provider))
    }
    .await;
    match prepared {
        Ok(p) => Ok(p),
        Err(e) => {
            record_failure(state, ws, conn, &e.message, &e.hint).await;
            Err(fail(422, "error", Some(conn), e.message, e.hint))
        }
    }
}

/// What the code is exchanged with.
struct Exchange<'a> {
    provider: &'a Provider,
    client: &'a grant::ClientCreds,
    code: &'a str,
    redirect_uri: &'a str,
    verifier: Option<&'a str>,
}

/// The code exchanged for tokens; a failure is recorded on the connection.
async fn exchange_code(
    state: &AppState,
    ws: &Workspace,
    conn: &ConnectionRecord,
    x: &Exchange<'_>,
) -> Result<grant::Tokens, CallbackFailure> {
    match grant::exchange_code(
        &state.outbound,
        x.provider,
        x.client,
        x.code,
        x.redirect_uri,
        x.verifier,
    )
    .await
    {
        Ok(t) => Ok(t),
        Err(e) => {
            let hint = Some(e.hint(false, public_base(state)));
            record_failure(state, ws, conn, &e.to_string(), &hint).await;
            Err(fail(
                502,
                "error",
                Some(conn),
                format!("the code exchange failed: {e}"),
                hint,
            ))
        }
    }
}

/// The tokens checked and sealed through the one grant path; a refusal is recorded.
async fn keep(
    state: &AppState,
    ws: &Workspace,
    conn: &ConnectionRecord,
    app: &latchkey_core::catalog::AppEntry,
    provider: &Provider,
    tokens: &grant::Tokens,
) -> Result<
    (
        latchkey_core::crypto::Sealed,
        latchkey_core::model::TokenMeta,
    ),
    CallbackFailure,
> {
    let kept =
        super::keep::check_and_seal(state, ws, app, &conn.id, &conn.settings, provider, tokens)
            .await;
    match kept {
        Ok(k) => Ok((k.sealed, k.meta)),
        Err(super::keep::NotKept::Refused(super::CheckFailed { message, hint })) => {
            record_failure(state, ws, conn, &message, &Some(hint.clone())).await;
            Err(fail(422, "error", Some(conn), message, Some(hint)))
        }
        Err(super::keep::NotKept::Seal(e)) => Err(fail(500, "error", Some(conn), e.message, None)),
    }
}

/// Stores the tokens on the connection and makes it active, retrying a write that raced
/// another; `None` when the connection is gone or kept changing.
async fn save_authorized(
    state: &AppState,
    ws: &Workspace,
    conn: &ConnectionRecord,
    sealed: &latchkey_core::crypto::Sealed,
    meta: &latchkey_core::model::TokenMeta,
    now: chrono::DateTime<Utc>,
) -> Option<ConnectionRecord> {
    for _ in 0..3 {
        let Ok(Some(mut row)) = state.store.connection(&ws.id, &conn.id).await else {
            return None;
        };
        let expected = row.version;
        row.tokens = Some(sealed.clone());
        row.token_meta = Some(meta.clone());
        row.mark_active(now);
        row.version += 1;
        row.updated_at = now;
        if state.store.update_connection(&row, expected).await.is_ok() {
            state.forget_connection(&row.id);
            return Some(row);
        }
    }
    None
}

/// Tells whoever is waiting: Salesforce's approvals bookkeeping, the audit log and a connect
/// session that started the authorization.
async fn announce(
    state: &AppState,
    ws: &Workspace,
    row: &ConnectionRecord,
    meta: &latchkey_core::model::TokenMeta,
) {
    let evicted = approvals::mark_evicted(state, ws, row).await;
    state
        .audit(
            &ws.id,
            "system",
            "connection.authorized",
            Some(row.id.as_str()),
            Some(row.name.as_str()),
            json!({"username": meta.username, "org_id": meta.provider_org_id, "evicted": evicted}),
        )
        .await;
    crate::connect::on_authorized(state, ws, row).await;
}

/// The end of an OAuth 1.0a authorization: the token credentials are obtained, checked with the
/// application's verification request, sealed into the connection's credential, and the
/// connection becomes active.
async fn complete_oauth1(
    state: &AppState,
    ws: &Workspace,
    conn: &ConnectionRecord,
    st: &OAuthState,
    back: OAuth1Return,
) -> Result<Done, CallbackFailure> {
    let result = async {
        // The consumer secret goes only where the connection is bound.
        crate::destinations::guard(state, ws, conn, false).await?;
        let creds = crate::signing::three_legged::finish(
            state,
            st,
            conn,
            back.oauth_token.as_deref(),
            back.oauth_verifier.as_deref(),
        )
        .await?;
        let app = crate::directory::app_entry(state, &conn.app)?;
        crate::verify::verify(&state.outbound, app, conn.auth_mode, &conn.settings, &creds).await?;
        let bound = crate::destinations::of(app, conn.auth_mode, &conn.settings, &creds)?;
        crate::vault::seal(state, ws, &conn.id, &creds, &bound).await
    }
    .await;
    let sealed = match result {
        Ok(s) => s,
        Err(e) => {
            record_failure(state, ws, conn, &e.message, &e.hint).await;
            return Err(fail(
                e.status.as_u16(),
                "error",
                Some(conn),
                e.message,
                e.hint,
            ));
        }
    };
    let now = Utc::now();
    let mut saved = None;
    for _ in 0..3 {
        let Ok(Some(mut row)) = state.store.connection(&ws.id, &conn.id).await else {
            break;
        };
        let expected = row.version;
        row.credentials = Some(sealed.clone());
        row.mark_active(now);
        row.version += 1;
        row.updated_at = now;
        if state.store.update_connection(&row, expected).await.is_ok() {
            saved = Some(row);
            break;
        }
    }
    let Some(row) = saved else {
        return Err(fail(
            409,
            "error",
            Some(conn),
            "the connection changed or was deleted during the authorization",
            Some("start again".into()),
        ));
    };
    state.forget_connection(&row.id);
    state
        .audit(
            &ws.id,
            "system",
            "connection.authorized",
            Some(row.id.as_str()),
            Some(row.name.as_str()),
            json!({"auth_mode": row.auth_mode}),
        )
        .await;
    crate::connect::on_authorized(state, ws, &row).await;
    Ok(Done {
        id: row.id.to_string(),
        name: row.name.to_string(),
        who: String::new(),
    })
}
