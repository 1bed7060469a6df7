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

pub async fn complete(
    state: &AppState,
    code: Option<String>,
    raw_state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    oauth1: OAuth1Return,
) -> Result<Done, CallbackFailure> {
    let public = state.public_url.as_str().trim_end_matches('/').to_string();
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
    let ws = match state.store.workspace_by_id(&st.workspace_id).await {
        Ok(Some(w)) => w,
        _ => {
            return Err(fail(
                404,
                "error",
                None,
                "the workspace no longer exists",
                None,
            ))
        }
    };
    let conn = match state.store.connection(&ws.id, &st.connection_id).await {
        Ok(Some(c)) => c,
        _ => {
            return Err(fail(
                404,
                "error",
                None,
                "the connection was deleted (the authorization was cancelled)",
                None,
            ))
        }
    };
    if st.expires_at < Utc::now() {
        let hint =
            Some("start the authorization again; a link is valid for 10 minutes".to_string());
        record_failure(
            state,
            &ws,
            &conn,
            "the authorization request expired",
            &hint,
        )
        .await;
        return Err(fail(
            400,
            "expired",
            Some(&conn),
            "the authorization request expired",
            hint,
        ));
    }
    if let Some(err) = error {
        // What the browser brought back is the provider's word at best: kept only as an error
        // code and a scrubbed description.
        let mut scrubber = latchkey_core::scrub::Scrubber::new();
        if let Ok(creds) = crate::vault::decrypt(state, &conn).await {
            if let Ok(client) = client_for(state, &ws, &conn.app, &creds).await {
                scrubber = client.scrubber();
            }
        }
        let e = GrantError::Provider {
            status: 400,
            error: err.chars().take(100).collect(),
            description: error_description.unwrap_or_default(),
        }
        .scrubbed(&scrubber);
        let hint = Some(e.hint(false, &public));
        record_failure(state, &ws, &conn, &e.to_string(), &hint).await;
        let word = if e.code() == "access_denied" {
            "denied"
        } else {
            "error"
        };
        return Err(fail(
            400,
            word,
            Some(&conn),
            format!("the provider answered {e}"),
            hint,
        ));
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
    let app = match state.catalog.get(&conn.app) {
        Some(a) => a,
        None => {
            return Err(fail(
                500,
                "error",
                Some(&conn),
                "the application left the catalog",
                None,
            ))
        }
    };
    let verifier = match &st.verifier {
        Some(s) => match state
            .keyring
            .open_fields(s, "oauth_state", &st.state_hash, "verifier")
            .await
        {
            Ok(f) => f.expose("verifier").map(str::to_string),
            Err(_) => {
                return Err(fail(
                    500,
                    "error",
                    Some(&conn),
                    "the PKCE verifier could not be decrypted",
                    None,
                ))
            }
        },
        None => None,
    };
    let prepared = async {
        // The code and the client secret go only where the connection is bound.
        crate::destinations::guard(state, &ws, &conn, false).await?;
        let creds = crate::vault::decrypt(state, &conn).await?;
        let client = client_for(state, &ws, &conn.app, &creds).await?;
        let provider = Provider::for_connection(app, conn.auth_mode, &conn.settings)?;
        super::check_client_destination(&client, &provider)?;
        Ok::<_, crate::error::ApiError>((client, provider))
    }
    .await;
    let (client, provider) = match prepared {
        Ok(p) => p,
        Err(e) => {
            record_failure(state, &ws, &conn, &e.message, &e.hint).await;
            return Err(fail(422, "error", Some(&conn), e.message, e.hint));
        }
    };
    let tokens = match grant::exchange_code(
        &state.outbound,
        &provider,
        &client,
        &code,
        &st.redirect_uri,
        verifier.as_deref(),
    )
    .await
    {
        Ok(t) => t,
        Err(e) => {
            let hint = Some(e.hint(false, &public));
            record_failure(state, &ws, &conn, &e.to_string(), &hint).await;
            return Err(fail(
                502,
                "error",
                Some(&conn),
                format!("the code exchange failed: {e}"),
                hint,
            ));
        }
    };
    let kept = super::keep::check_and_seal(
        state,
        &ws,
        app,
        &conn.id,
        &conn.settings,
        &provider,
        &tokens,
    )
    .await;
    let (sealed, mut meta) = match kept {
        Ok(k) => (k.sealed, k.meta),
        Err(super::keep::NotKept::Refused { message, hint }) => {
            record_failure(state, &ws, &conn, &message, &Some(hint.clone())).await;
            return Err(fail(422, "error", Some(&conn), message, Some(hint)));
        }
        Err(super::keep::NotKept::Seal(e)) => {
            return Err(fail(500, "error", Some(&conn), e.message, None))
        }
    };
    let now = Utc::now();
    meta.authorized_at = Some(now);
    let mut saved = None;
    for _ in 0..3 {
        let Ok(Some(mut row)) = state.store.connection(&ws.id, &conn.id).await else {
            break;
        };
        let expected = row.version;
        row.tokens = Some(sealed.clone());
        row.token_meta = Some(meta.clone());
        row.mark_active(now);
        row.version += 1;
        row.updated_at = now;
        if state.store.update_connection(&row, expected).await.is_ok() {
            saved = Some(row);
            break;
        }
    }
    let Some(row) = saved else {
        // The grant exists at the provider but could not be kept: give it back.
        let _ = grant::revoke(
            &state.outbound,
            &provider,
            &client,
            tokens
                .refresh_token
                .as_ref()
                .unwrap_or(&tokens.access_token)
                .expose_secret(),
        )
        .await;
        return Err(fail(
            409,
            "error",
            Some(&conn),
            "the connection changed or was deleted during the authorization",
            Some("start again".into()),
        ));
    };
    state.forget_connection(&row.id);
    let evicted = approvals::mark_evicted(state, &ws, &row).await;
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
    crate::connect::on_authorized(state, &ws, &row).await;
    Ok(Done {
        id: row.id.to_string(),
        name: row.name.to_string(),
        who: meta
            .username
            .map(|u| format!(" as {u}"))
            .unwrap_or_default(),
    })
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
