//! Sealing and opening a connection's credential. The sealed fields carry the destinations the
//! credential is bound to (see `destinations`), so nobody without the master key can change
//! where it may be sent.

use crate::error::ApiResult;
use crate::oauth::failure::Failure;
use crate::state::AppState;
use latchkey_core::ids::ConnectionId;
use latchkey_core::model::{ConnectionRecord, Workspace};
use latchkey_core::secret::{SecretFields, SecretString};
use secrecy::ExposeSecret;
use std::collections::BTreeSet;

/// The sealed credential field that holds the bound destinations (never answered, never
/// merged with what callers send: field names callers may use have no `:`).
pub const BINDING_FIELD: &str = "latchkey:destinations";

/// Origins (`https://host:port`) and database endpoints (`db://host:port`).
pub type Destinations = BTreeSet<String>;

/// The bound destinations sealed in a credential, taken out of it.
pub fn take_binding(creds: &mut SecretFields) -> Option<Destinations> {
    let raw = creds.remove(BINDING_FIELD)?;
    serde_json::from_str::<Vec<String>>(raw.expose_secret())
        .ok()
        .map(|v| v.into_iter().collect())
}

/// A credential with its bound destinations put in, ready to seal.
pub fn with_binding(creds: &SecretFields, bound: &Destinations) -> SecretFields {
    let mut out = creds.clone();
    let list: Vec<&String> = bound.iter().collect();
    out.insert(
        BINDING_FIELD,
        SecretString::from(serde_json::to_string(&list).unwrap_or_else(|_| "[]".into())),
    );
    out
}

/// The connection's credential fields (without the destinations they are bound to).
pub async fn decrypt(state: &AppState, c: &ConnectionRecord) -> ApiResult<SecretFields> {
    Ok(open(state, c).await?.0)
}

/// The connection's credential fields and the destinations they are bound to (`None` for a
/// connection stored before destinations were bound).
pub async fn open(
    state: &AppState,
    c: &ConnectionRecord,
) -> ApiResult<(SecretFields, Option<Destinations>)> {
    match &c.credentials {
        Some(sealed) => {
            let mut fields = state
                .keyring
                .open_fields(sealed, "connection", c.id.as_str(), "credentials")
                .await?;
            let bound = take_binding(&mut fields);
            Ok((fields, bound))
        }
        None => Ok((SecretFields::new(), None)),
    }
}

/// Seals a connection's credential fields together with the destinations they are bound to.
pub async fn seal(
    state: &AppState,
    ws: &Workspace,
    id: &ConnectionId,
    creds: &SecretFields,
    bound: &Destinations,
) -> ApiResult<latchkey_core::crypto::Sealed> {
    Ok(state
        .keyring
        .seal_fields(
            &ws.data_key_id,
            "connection",
            id.as_str(),
            "credentials",
            &with_binding(creds, bound),
        )
        .await?)
}

/// Seals tokens for storage on the connection (field `tokens`).
pub async fn seal_tokens(
    state: &AppState,
    ws: &Workspace,
    id: &ConnectionId,
    access: &SecretString,
    refresh: Option<&SecretString>,
) -> Result<latchkey_core::crypto::Sealed, Failure> {
    let mut f = SecretFields::new();
    f.insert("access_token", access.clone());
    if let Some(r) = refresh {
        f.insert("refresh_token", r.clone());
    }
    state
        .keyring
        .seal_fields(&ws.data_key_id, "connection", id.as_str(), "tokens", &f)
        .await
        .map_err(|e| Failure::from_api(e.into()))
}
