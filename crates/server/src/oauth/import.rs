//! Importing a grant made elsewhere: an OAuth connection created with
//! `credentials: {access_token, refresh_token, expires_at}` is checked with the application's
//! verification request (or, when the access token is gone or refused, with a refresh) and
//! saved `active`, so moving from another platform needs no new browser authorization. A
//! refresh token the provider calls dead (`invalid_grant`) saves the connection `revoked` with
//! a hint to re-authorize it, keeping its name and settings.

use super::grant::{self, ClientCreds, GrantError, Tokens};
use super::keep;
use super::provider::Provider;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::http::StatusCode;
use chrono::{DateTime, TimeZone, Utc};
use latchkey_core::catalog::AppEntry;
use latchkey_core::model::{AuthMode, ConnectionRecord, ConnectionStatus, TokenMeta, Workspace};
use latchkey_core::secret::{SecretFields, SecretString};
use secrecy::ExposeSecret;

/// The credential fields an imported grant is given in (besides the application's own).
pub const FIELDS: &[&str] = &["access_token", "refresh_token", "expires_at"];

/// A grant brought from elsewhere.
pub struct Imported {
    access_token: Option<SecretString>,
    refresh_token: Option<SecretString>,
    expires_at: Option<DateTime<Utc>>,
}

/// Takes the grant's fields out of a create body's credentials (they are stored as tokens,
/// not as credentials). `None` when there are none.
pub fn take(mode: AuthMode, creds: &mut SecretFields) -> ApiResult<Option<Imported>> {
    if !FIELDS.iter().any(|f| creds.get(f).is_some()) {
        return Ok(None);
    }
    if mode != AuthMode::OAuth2Code {
        return Err(ApiError::invalid(
            "credentials.access_token",
            format!("a grant can be imported only into an oauth2_code connection, not `{mode}`"),
        ));
    }
    let access_token = creds
        .remove("access_token")
        .filter(|t| !t.expose_secret().is_empty());
    let refresh_token = creds
        .remove("refresh_token")
        .filter(|t| !t.expose_secret().is_empty());
    let expires_at = match creds.remove("expires_at") {
        None => None,
        Some(v) => Some(parse_time(v.expose_secret()).ok_or_else(|| {
            ApiError::invalid(
                "credentials.expires_at",
                "expires_at must be an RFC 3339 time or seconds since 1970",
            )
        })?),
    };
    if access_token.is_none() && refresh_token.is_none() {
        return Err(ApiError::invalid(
            "credentials.access_token",
            "an imported grant needs an access_token, a refresh_token, or both",
        ));
    }
    Ok(Some(Imported {
        access_token,
        refresh_token,
        expires_at,
    }))
}

fn parse_time(v: &str) -> Option<DateTime<Utc>> {
    let v = v.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.with_timezone(&Utc));
    }
    let secs: i64 = v.parse().ok()?;
    // Clamped to a sane range, so an absurd number is no overflow.
    Utc.timestamp_opt(secs.clamp(0, 32_503_680_000), 0).single()
}

fn meta_for(g: &Imported, client: &ClientCreds) -> TokenMeta {
    TokenMeta {
        token_type: Some("Bearer".into()),
        client_id: Some(client.client_id.clone()),
        expires_at: g.expires_at,
        issued_at: Some(Utc::now()),
        has_refresh_token: g.refresh_token.is_some(),
        ..TokenMeta::default()
    }
}

/// Checks the imported grant and fills the record's tokens and status.
#[allow(clippy::too_many_arguments)]
pub async fn apply(
    state: &AppState,
    ws: &Workspace,
    app: &AppEntry,
    record: &mut ConnectionRecord,
    provider: &Provider,
    client: &ClientCreds,
    g: Imported,
    check: bool,
) -> ApiResult<()> {
    let now = Utc::now();
    let seal = |t: &Tokens| {
        let (access, refresh) = (t.access_token.clone(), t.refresh_token.clone());
        let id = record.id.clone();
        async move {
            super::tokens::seal_tokens(state, ws, &id, &access, refresh.as_ref())
                .await
                .map_err(ApiError::from)
        }
    };
    let mut meta = meta_for(&g, client);
    if meta.expires_at.is_none() && g.access_token.is_some() {
        // Unknown expiry: used until refused, then refreshed.
        meta.expires_at = Some(now + chrono::Duration::seconds(provider.session_timeout_secs));
    }
    let given = g.access_token.clone().map(|access_token| Tokens {
        access_token,
        refresh_token: g.refresh_token.clone(),
        meta: meta.clone(),
    });
    if !check {
        let t = match given {
            Some(t) => t,
            None => {
                return Err(ApiError::invalid(
                    "credentials.access_token",
                    "without verification an imported grant needs its access_token",
                ))
            }
        };
        record.tokens = Some(seal(&t).await?);
        record.token_meta = Some(t.meta);
        record.status = ConnectionStatus::Unverified;
        return Ok(());
    }
    let mut last_problem: Option<super::CheckFailed> = None;
    if let Some(t) = given.filter(|t| t.meta.expires_at.is_none_or(|e| e > now)) {
        let settings = record.settings.clone();
        let id = record.id.clone();
        match keep::check_and_seal(state, ws, app, &id, &settings, provider, &t).await {
            Ok(kept) => {
                record.tokens = Some(kept.sealed);
                let mut m = kept.meta;
                m.authorized_at = Some(now);
                record.token_meta = Some(m);
                activate(record, now);
                return Ok(());
            }
            Err(keep::NotKept::Refused(problem)) => last_problem = Some(problem),
            Err(keep::NotKept::Seal(e)) => return Err(e),
        }
    }
    let Some(rt) = g.refresh_token.clone() else {
        let super::CheckFailed { message, hint } = last_problem.unwrap_or_else(|| {
            super::CheckFailed::new(
                "the imported access token has expired and there is no refresh token",
                "import a refresh token too, or authorize the connection in the browser",
            )
        });
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "verification_failed",
            message,
        )
        .hint(hint));
    };
    match grant::refresh(&state.outbound, provider, client, rt.expose_secret()).await {
        Err(e) if e.is_invalid_grant() => {
            revoke(state, record, &e);
            Ok(())
        }
        Err(e) => Err(super::grant_failure(state, &e)),
        Ok(mut t) => {
            if t.refresh_token.is_none() {
                t.refresh_token = Some(rt);
            }
            t.meta.has_refresh_token = true;
            let kept =
                keep::check_and_seal(state, ws, app, &record.id, &record.settings, provider, &t)
                    .await?;
            record.tokens = Some(kept.sealed);
            let mut m = kept.meta;
            m.authorized_at = Some(now);
            record.token_meta = Some(m);
            activate(record, now);
            Ok(())
        }
    }
}

fn activate(record: &mut ConnectionRecord, now: DateTime<Utc>) {
    record.mark_active(now);
}

fn revoke(state: &AppState, record: &mut ConnectionRecord, e: &GrantError) {
    let _ = state;
    let hint = format!(
        "the grant is no longer valid at the provider: authorize the connection again (POST …/connections/{}/authorize) instead of importing it",
        record.name.as_str()
    );
    record.mark_revoked(format!("the imported refresh token was refused: {e}"), hint);
    record.verified_at = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1700000000").unwrap().timestamp(), 1_700_000_000);
        assert!(parse_time("2030-01-01T00:00:00Z").is_some());
        assert!(parse_time("1e13").is_none());
        assert!(parse_time("99999999999999999").is_some());
        assert!(parse_time("soon").is_none());
    }
}
