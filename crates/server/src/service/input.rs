//! The rules a create or edit body must follow before anything is verified: an auth mode the
//! application takes, database login fields in one place, a lender to borrow concurrency from.

use crate::directory::find;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use latchkey_core::catalog::{AppEntry, FieldType, BORROW_CONCURRENCY_FROM};
use latchkey_core::ids::ConnectionId;
use latchkey_core::model::{AuthMode, Workspace};
use latchkey_core::secret::SecretFields;
use serde_json::{Map, Value};

pub(super) fn check_mode(app: &AppEntry, mode: Option<AuthMode>) -> ApiResult<AuthMode> {
    let allowed: Vec<&str> = app.auth_modes.iter().map(|m| m.as_str()).collect();
    let mode = match mode {
        Some(m) => m,
        None if app.auth_modes.len() == 1 => app.auth_modes[0],
        None => {
            return Err(ApiError::invalid(
                "auth_mode",
                format!("`{}` takes several auth modes; say which", app.id),
            )
            .hint(format!("set auth_mode to one of: {}", allowed.join(", "))))
        }
    };
    if !app.auth_modes.contains(&mode) {
        return Err(ApiError::invalid(
            "auth_mode",
            format!("`{}` connections cannot use auth mode `{mode}`", app.id),
        )
        .hint(format!("`{}` takes: {}", app.id, allowed.join(", "))));
    }
    Ok(mode)
}

/// The credential fields of a database login that are not secret (host, port, database, user
/// name): everything but the password. They are shown in errors and in the connection's
/// settings; only the password is kept out of sight.
pub(super) fn public_login_fields(app: &AppEntry, mode: AuthMode) -> Vec<(String, FieldType)> {
    if !mode.is_direct() {
        return vec![];
    }
    app.credential_fields(mode)
        .filter(|f| !matches!(f.kind, FieldType::Secret | FieldType::SecretText))
        .map(|f| (f.name.clone(), f.kind))
        .collect()
}

/// Takes the database login fields a body gave in `settings` into the credentials (where they
/// are verified and sealed with the password). A value given in both places must agree.
pub(super) fn lift_login_fields(
    app: &AppEntry,
    mode: AuthMode,
    settings: &mut Map<String, Value>,
    creds: &mut SecretFields,
) -> ApiResult<()> {
    for (name, _) in public_login_fields(app, mode) {
        let Some(v) = settings.remove(&name) else {
            continue;
        };
        let text = match &v {
            Value::Null => continue,
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => {
                return Err(ApiError::invalid(
                    &format!("settings.{name}"),
                    format!("{name} must be a string or a number"),
                ))
            }
        };
        match creds.expose(&name) {
            Some(given) if given != text => {
                return Err(ApiError::invalid(
                    &format!("settings.{name}"),
                    format!(
                    "{name} is given twice, in settings and in credentials, with different values"
                ),
                )
                .hint("give it once"))
            }
            _ => creds.insert(name, text.into()),
        }
    }
    Ok(())
}

/// Copies the database login fields (never the password) into the settings that are answered.
pub(super) fn show_login_fields(
    app: &AppEntry,
    mode: AuthMode,
    settings: &mut Map<String, Value>,
    creds: &SecretFields,
) {
    for (name, kind) in public_login_fields(app, mode) {
        let Some(v) = creds.expose(&name) else {
            continue;
        };
        let shown = match kind {
            FieldType::Integer => v
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::from(v)),
            _ => Value::from(v),
        };
        settings.insert(name, shown);
    }
}

/// Resolves `borrow_concurrency_from` (id or name) to the lender's id, enforcing R3's rules: the
/// lender is in the same workspace, is not the connection itself, and does not borrow in turn.
pub(super) async fn resolve_lender(
    state: &AppState,
    ws: &Workspace,
    settings: &mut Map<String, Value>,
    this: Option<&ConnectionId>,
) -> ApiResult<()> {
    let Some(Value::String(key)) = settings.get(BORROW_CONCURRENCY_FROM).cloned() else {
        return Ok(());
    };
    let lender = find(state, ws, &key).await.map_err(|_| {
        ApiError::invalid(
            "settings.borrow_concurrency_from",
            format!("there is no connection `{key}` in this workspace to borrow concurrency from"),
        )
    })?;
    if lender.auth_mode.is_direct() {
        let kind = if lender.auth_mode == AuthMode::Sftp {
            "an SFTP"
        } else {
            "a database"
        };
        return Err(ApiError::invalid(
            "settings.borrow_concurrency_from",
            format!(
                "`{}` is {kind} connection: it has no concurrency to lend",
                lender.name
            ),
        )
        .hint("Latchkey does not proxy databases or SFTP servers; borrow from a connection to an API instead"));
    }
    if Some(&lender.id) == this {
        return Err(ApiError::invalid(
            "settings.borrow_concurrency_from",
            "a connection cannot borrow concurrency from itself",
        ));
    }
    if let Some(Value::String(further)) = lender.settings.get(BORROW_CONCURRENCY_FROM) {
        return Err(ApiError::invalid(
            "settings.borrow_concurrency_from",
            format!("`{}` itself borrows concurrency (from {further}); borrow from that connection instead", lender.name),
        ));
    }
    if let Some(id) = this {
        let borrowers = state.store.borrowers_of(&ws.id, id).await?;
        if !borrowers.is_empty() {
            let names: Vec<String> = borrowers.iter().map(|b| b.name.to_string()).collect();
            return Err(ApiError::invalid(
                "settings.borrow_concurrency_from",
                format!(
                    "other connections borrow from this one ({}); a lender cannot borrow in turn",
                    names.join(", ")
                ),
            ));
        }
    }
    settings.insert(
        BORROW_CONCURRENCY_FROM.into(),
        Value::String(lender.id.to_string()),
    );
    Ok(())
}
