//! Operator endpoints (admin keys only): master key rotation.

use crate::auth::Caller;
use crate::bootstrap;
use crate::error::{ApiError, ApiResult, ErrorBody, Json};
use crate::keyring::RotationReport;
use crate::state::AppState;
use axum::extract::State;
use latchkey_core::crypto::MasterKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// The new master key (32 bytes, base64). Left out: the server generates one.
    #[schema(value_type = Option<String>)]
    pub new_key: Option<secrecy::SecretString>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RotateView {
    #[serde(flatten)]
    pub report: RotationReport,
    /// The key file that now holds the new key (key-file set-ups), or null.
    pub key_file: Option<String>,
    /// The generated key, shown once, when there is no key file to keep it in: set
    /// LATCHKEY_MASTER_KEY to it before the next start.
    #[schema(value_type = Option<String>)]
    pub new_key: Option<String>,
    pub next_steps: Vec<String>,
}

impl std::fmt::Debug for RotateView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotateView")
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MasterKeyStatus {
    pub master_key_id: String,
    /// How many data keys each master key wraps.
    pub data_keys_by_master_key: BTreeMap<String, usize>,
}

/// Which master key wraps what.
#[utoipa::path(get, path = "/v1/admin/master-key", tag = "admin",
    responses((status = 200, body = MasterKeyStatus), (status = 403, body = ErrorBody)))]
pub async fn master_key_status(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<MasterKeyStatus>> {
    caller.require_admin()?;
    let mut by = BTreeMap::new();
    for k in state.store.list_data_keys().await? {
        *by.entry(k.master_key_id).or_insert(0) += 1;
    }
    Ok(Json(MasterKeyStatus {
        master_key_id: state.keyring.master_key_id(),
        data_keys_by_master_key: by,
    }))
}

/// Introduces a new master key and re-wraps every data key under it while the server keeps
/// serving; the old key is retired once nothing uses it.
#[utoipa::path(post, path = "/v1/admin/master-key/rotate", tag = "admin", request_body = RotateBody,
    responses((status = 200, body = RotateView), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn rotate_master_key(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<RotateBody>,
) -> ApiResult<Json<RotateView>> {
    caller.require_admin()?;
    let (key, text, generated) = match body.new_key {
        Some(t) => {
            let k = MasterKey::from_base64(secrecy::ExposeSecret::expose_secret(&t))?;
            (
                k,
                zeroize::Zeroizing::new(
                    secrecy::ExposeSecret::expose_secret(&t).trim().to_string(),
                ),
                false,
            )
        }
        None => {
            let (k, t) = MasterKey::generate();
            (k, t, true)
        }
    };
    if key.id() == state.keyring.master_key_id() {
        return Err(ApiError::invalid(
            "new_key",
            "that is already the master key",
        ));
    }
    let key_file = bootstrap::replace_key_file(&state.config, &text).map_err(|e| {
        tracing::error!(error = %e, "could not write the new master key file");
        ApiError::internal().hint("the key file could not be replaced; nothing was rotated")
    })?;
    let report = state.keyring.rotate(Some(key)).await.map_err(|e| {
        tracing::error!(error = %e, "master key rotation failed");
        ApiError::internal().hint("run the rotation again: it resumes where it stopped")
    })?;
    let mut next_steps = Vec::new();
    if report.retired {
        if let Some(prev) = bootstrap::previous_key_file(&state.config) {
            let _ = std::fs::remove_file(prev);
        }
    }
    match &key_file {
        Some(path) => next_steps.push(format!("the new key is in {}; back it up", path.display())),
        None => {
            next_steps.push("set LATCHKEY_MASTER_KEY to the new key before the next start".into());
            if !report.retired {
                next_steps.push("until the rotation completes, also set LATCHKEY_PREVIOUS_MASTER_KEY to the old key".into());
            }
        }
    }
    next_steps.push("restart the other instances of a cluster with the new key".into());
    tracing::info!(master_key = %report.master_key_id, rewrapped = report.data_keys_rewrapped, retired = report.retired, "master key rotated");
    Ok(Json(RotateView {
        report,
        key_file: key_file.map(|p| p.display().to_string()),
        new_key: (generated && state.config_is_inline_key()).then(|| text.to_string()),
        next_steps,
    }))
}

/// At start, a rotation that stopped half-way (an older key still configured) is finished.
pub async fn finish_rotation(state: &AppState) {
    match state.keyring.rotate(None).await {
        Ok(r) if r.retired => {
            if let Some(prev) = bootstrap::previous_key_file(&state.config) {
                let _ = std::fs::remove_file(prev);
            }
            tracing::info!(master_key = %r.master_key_id, rewrapped = r.data_keys_rewrapped, "finished an interrupted master key rotation");
        }
        Ok(r) => tracing::warn!(
            remaining = r.data_keys_remaining,
            "a master key rotation is still incomplete"
        ),
        Err(e) => {
            tracing::error!(error = %e, "could not finish an interrupted master key rotation")
        }
    }
}
