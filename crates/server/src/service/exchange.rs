//! The first token of a connection in a direct mode (a token exchange or a service account),
//! which is also its verification.

use crate::error::{ApiError, ApiResult};
use crate::oauth::grant::Tokens;
use crate::oauth::token_exchange;
use crate::state::AppState;
use latchkey_core::catalog::AppEntry;
use latchkey_core::model::{AuthMode, TokenMeta};
use latchkey_core::secret::SecretFields;
use serde_json::{Map, Value};

/// The first token of a new or edited direct-exchange connection, which is its verification:
/// the exchange itself (the token endpoint checks a service account's signature, key and
/// delegation), then, for a token exchange, the entry's verification request with the token.
pub async fn verify_and_grant(
    state: &AppState,
    ws: &latchkey_core::model::Workspace,
    app: &AppEntry,
    c: &latchkey_core::model::ConnectionRecord,
    creds: &SecretFields,
) -> ApiResult<(latchkey_core::crypto::Sealed, TokenMeta)> {
    let tokens =
        token_exchange::direct_grant(&state.outbound, app, c.auth_mode, &c.settings, creds)
            .await
            .map_err(|e| token_exchange::failure(c.auth_mode, &e))?;
    check_token(state, app, c.auth_mode, &c.settings, &tokens)
        .await
        .map_err(|crate::oauth::CheckFailed { message, hint }| {
            ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "verification_failed",
                message,
            )
            .hint(hint)
        })?;
    let sealed = crate::vault::seal_tokens(state, ws, &c.id, &tokens.access_token, None)
        .await
        .map_err(ApiError::from)?;
    Ok((sealed, tokens.meta))
}

/// The check of a direct-exchange connection with a token: a token exchange sends the
/// entry's verification request; a service account's token is proof enough (Google's userinfo,
/// the OAuth entries' check, needs scopes a service account seldom has).
pub async fn check_token(
    state: &AppState,
    app: &AppEntry,
    mode: AuthMode,
    settings: &Map<String, Value>,
    tokens: &Tokens,
) -> Result<(), crate::oauth::CheckFailed> {
    if mode != AuthMode::TokenExchange {
        return Ok(());
    }
    let url = token_exchange::login_url(app, settings)
        .map_err(|e| crate::oauth::CheckFailed::new(e.message, ""))?;
    let provider =
        crate::oauth::provider::Provider::plain(crate::oauth::provider::Flavor::Generic, url);
    crate::oauth::check(state, app, settings, &provider, tokens)
        .await
        .map(|_| ())
}
