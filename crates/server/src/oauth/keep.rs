//! The one way a connection keeps a grant: the tokens are checked against the application (who
//! they belong to, that they work), what the check learned is merged into their metadata, and
//! they are sealed for the connection. Creating, editing, re-authorizing, importing and the
//! browser callback all go through [`check_and_seal`].

use super::grant::Tokens;
use super::provider::Provider;
use crate::error::ApiError;
use crate::state::AppState;
use axum::http::StatusCode;
use latchkey_core::catalog::AppEntry;
use latchkey_core::crypto::Sealed;
use latchkey_core::ids::ConnectionId;
use latchkey_core::model::{TokenMeta, Workspace};
use serde_json::{Map, Value};

/// A checked grant, ready to store on the connection.
pub struct Kept {
    /// The access token and refresh token, sealed for the connection.
    pub sealed: Sealed,
    /// The tokens' metadata, with the user and organization the check found.
    pub meta: TokenMeta,
}

/// Why a grant was not kept.
#[derive(Debug, thiserror::Error)]
pub enum NotKept {
    /// The application refused the tokens, or they belong somewhere they should not.
    #[error(transparent)]
    Refused(#[from] super::CheckFailed),
    /// The tokens could not be sealed.
    #[error("the tokens could not be sealed: {0}")]
    Seal(#[source] ApiError),
}

impl From<NotKept> for ApiError {
    fn from(e: NotKept) -> Self {
        match e {
            NotKept::Refused(super::CheckFailed { message, hint }) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "verification_failed",
                message,
            )
            .hint(hint),
            NotKept::Seal(e) => e,
        }
    }
}

/// Checks a grant's tokens with the application, merges what the check learned (the user's
/// name, and the user and organization ids when the grant did not say them) into their
/// metadata, and seals them for the connection `id`.
#[allow(clippy::too_many_arguments)]
pub async fn check_and_seal(
    state: &AppState,
    ws: &Workspace,
    app: &AppEntry,
    id: &ConnectionId,
    settings: &Map<String, Value>,
    provider: &Provider,
    tokens: &Tokens,
) -> Result<Kept, NotKept> {
    let checked = super::check(state, app, settings, provider, tokens)
        .await
        .map_err(NotKept::Refused)?;
    let mut meta = tokens.meta.clone();
    meta.username = checked.username;
    meta.provider_user_id = meta.provider_user_id.or(checked.user_id);
    meta.provider_org_id = meta.provider_org_id.or(checked.org_id);
    let sealed = crate::vault::seal_tokens(
        state,
        ws,
        id,
        &tokens.access_token,
        tokens.refresh_token.as_ref(),
    )
    .await
    .map_err(|f| NotKept::Seal(f.into()))?;
    Ok(Kept { sealed, meta })
}
