//! Where a connection's secret material may go.
//!
//! A connection's credential, its tokens and the workspace OAuth client it falls back to are
//! bound to the destinations they were stored for: the origins of its API base (and of its
//! verification path), of its OAuth endpoints (which a Salesforce account type or My Domain
//! site decides), and a database's host and port. The set is sealed inside the encrypted
//! credential, so nobody can change it without the master key: not a key that may only edit
//! settings, and not someone who edits the database.
//!
//! Every decision "may this secret go to this new place?" is taken here, from the destinations
//! the connection is bound to and the ones its settings now lead to, before anything is sent:
//!
//! * an edit that leads elsewhere needs the `secrets` scope, or the secret material sent again
//!   in the same request ([`decide`]);
//! * any later use (verify, authorize, refresh, the OAuth callback, the proxy) of a connection
//!   whose settings lead somewhere it is not bound to (changed by anyone, by any means) is
//!   refused, unless the caller holds `secrets`, which binds it anew ([`guard`]).

use crate::error::{ApiError, ApiResult};
use crate::oauth::provider::Provider;
use crate::state::AppState;
pub use crate::vault::{take_binding, with_binding, Destinations, BINDING_FIELD};
use axum::http::StatusCode;
use latchkey_core::catalog::{AppEntry, FieldType, VerifySpec};
use latchkey_core::model::{AuthMode, ConnectionRecord, Workspace};
use latchkey_core::secret::SecretFields;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use url::Url;

/// The error code of a refused destination change.
pub const REFUSED: &str = "destination_change_requires_secrets";

fn origin(u: &Url) -> String {
    u.origin().ascii_serialization()
}

/// The destinations a connection's secret material goes to with these settings and fields.
pub fn of(
    app: &AppEntry,
    mode: AuthMode,
    settings: &Map<String, Value>,
    creds: &SecretFields,
) -> ApiResult<Destinations> {
    let mut out = Destinations::new();
    if mode.is_direct() {
        let host = creds
            .expose("host")
            .unwrap_or_default()
            .trim()
            .trim_matches(['[', ']'])
            .to_ascii_lowercase();
        let port = creds.expose("port").unwrap_or_default().trim().to_string();
        let scheme = if mode == AuthMode::Sftp { "ssh" } else { "db" };
        out.insert(format!("{scheme}://{host}:{port}"));
        return Ok(out);
    }
    if mode.is_oauth() {
        let p = Provider::for_connection(app, mode, settings)?;
        out.insert(origin(&p.token_url));
        if let Some(u) = &p.authorize_url {
            out.insert(origin(u));
        }
        if let Some(u) = &p.revoke_url {
            out.insert(origin(u));
        }
    }
    out.extend(crate::oauth::token_exchange::destinations(
        app, mode, settings, creds,
    )?);
    if mode == AuthMode::OAuth1 {
        for u in crate::signing::oauth1::endpoints(app, settings)? {
            out.insert(origin(&u));
        }
    }
    let has_base = settings.get("base_url").is_some() || app.base_url.is_some();
    // An API base filled from the token answer (Zoho's `api_domain`, Mailchimp's metadata) is
    // named by the provider's token endpoint, whose origin is bound above: it is not known
    // before the grant, and no caller can choose it.
    let base_from_token = mode.has_tokens()
        && settings.get("base_url").is_none()
        && app.base_url.as_deref().is_some_and(|t| {
            app.kept_names()
                .iter()
                .any(|k| t.contains(&format!("{{{k}}}")))
        });
    if has_base && !base_from_token {
        let base = crate::verify::api_base(app, settings)?;
        out.insert(origin(&base));
        if let Some(VerifySpec::Http {
            path, path_setting, ..
        }) = &app.verify
        {
            let p = path
                .clone()
                .or_else(|| {
                    path_setting
                        .as_ref()
                        .and_then(|s| settings.get(s))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .unwrap_or_else(|| "/".into());
            // A path that is really an absolute URL, or one a parser reads as another host.
            if let Ok(abs) = Url::parse(&p) {
                out.insert(origin(&abs));
            }
            out.insert(origin(&crate::verify::join_path(&base, &p)));
        }
    }
    Ok(out)
}

/// Whether a request re-sends the connection's secret material: every secret field the
/// connection has (after the edit) is in the request, and there is at least one.
pub fn resends_secrets(
    app: &AppEntry,
    mode: AuthMode,
    merged: &SecretFields,
    sent: Option<&SecretFields>,
) -> bool {
    let Some(sent) = sent else { return false };
    let secret_fields: Vec<&str> = app
        .credential_fields(mode)
        .filter(|f| matches!(f.kind, FieldType::Secret | FieldType::SecretText))
        .map(|f| f.name.as_str())
        .filter(|n| merged.get(n).is_some())
        .collect();
    !secret_fields.is_empty()
        && secret_fields
            .iter()
            .all(|n| sent.expose(n).is_some_and(|v| !v.is_empty()))
}

fn refusal(new: &Destinations, bound: &Destinations) -> ApiError {
    let added: Vec<&String> = new.difference(bound).collect();
    ApiError::new(
        StatusCode::FORBIDDEN,
        REFUSED,
        format!(
            "this would send the connection's secret material to {} where it was not stored for",
            added
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
    .hint("use a key with the `secrets` scope, or send the secret fields (API key, password, client secret, …) again in the same request")
    .details(json!({ "destinations": added, "bound": bound }))
}

/// The decision for an edit: `Ok(true)` when the destinations change and the change is allowed
/// (the caller holds `secrets`, or re-sent the secret material), `Ok(false)` when they do not
/// change, else the refusal.
pub fn decide(
    bound: &Destinations,
    new: &Destinations,
    holds_secrets: bool,
    resent: bool,
) -> ApiResult<bool> {
    if new.is_subset(bound) {
        return Ok(false);
    }
    if holds_secrets || resent {
        return Ok(true);
    }
    Err(refusal(new, bound))
}

/// A hash of a connection's settings, taken on every call that sends anything: it walks the
/// values as they are (keys in their stored order), without writing them out as JSON first.
pub fn settings_fingerprint(settings: &serde_json::Map<String, serde_json::Value>) -> u64 {
    use serde_json::Value;
    use std::hash::{Hash, Hasher};
    fn walk(v: &Value, h: &mut impl Hasher) {
        match v {
            Value::Null => 0u8.hash(h),
            Value::Bool(b) => (1u8, b).hash(h),
            Value::Number(n) => {
                2u8.hash(h);
                // Its own text: the same for the same number, whatever its kind.
                n.to_string().hash(h);
            }
            Value::String(s) => (3u8, s).hash(h),
            Value::Array(a) => {
                (4u8, a.len()).hash(h);
                a.iter().for_each(|v| walk(v, h));
            }
            Value::Object(o) => {
                (5u8, o.len()).hash(h);
                for (k, v) in o {
                    k.hash(h);
                    walk(v, h);
                }
            }
        }
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    settings.len().hash(&mut h);
    for (k, v) in settings {
        k.hash(&mut h);
        walk(v, &mut h);
    }
    h.finish()
}

/// Checks, before anything is sent, that a stored connection's settings still lead only where
/// its secret material is bound. A caller holding `secrets` (`rebind`) binds it to where they
/// lead now; anyone else is refused. Returns the connection as it now stands.
pub async fn guard(
    state: &AppState,
    ws: &Workspace,
    c: &ConnectionRecord,
    rebind: bool,
) -> ApiResult<Option<ConnectionRecord>> {
    checked(state, ws, (c, None), rebind).await
}

/// [`guard`] for a record shared from the hot path's memory: once found good, that same record
/// is not looked at again while it is shared.
pub async fn guard_shared(
    state: &AppState,
    ws: &Workspace,
    c: &Arc<ConnectionRecord>,
    rebind: bool,
) -> ApiResult<Option<ConnectionRecord>> {
    checked(state, ws, (c, Some(c)), rebind).await
}

async fn checked(
    state: &AppState,
    ws: &Workspace,
    (c, shared): (&ConnectionRecord, Option<&Arc<ConnectionRecord>>),
    rebind: bool,
) -> ApiResult<Option<ConnectionRecord>> {
    if state
        .hot
        .destinations_checked(c, shared, || settings_fingerprint(&c.settings))
    {
        return Ok(None);
    }
    let fingerprint = settings_fingerprint(&c.settings);
    let app = crate::directory::app_entry(state, &c.app)?;
    let (creds, bound) = crate::vault::open(state, c).await?;
    let now = of(app, c.auth_mode, &c.settings, &creds)?;
    let Some(bound) = bound else {
        // Stored before destinations were bound: bound to where it leads (see the README).
        state.hot.destinations_ok(c, fingerprint, shared);
        return Ok(None);
    };
    if now.is_subset(&bound) {
        state.hot.destinations_ok(c, fingerprint, shared);
        return Ok(None);
    }
    if !rebind {
        return Err(refusal(&now, &bound));
    }
    let mut next = c.clone();
    next.credentials = Some(crate::vault::seal(state, ws, &c.id, &creds, &now).await?);
    next.version = c.version + 1;
    next.updated_at = chrono::Utc::now();
    state.store.update_connection(&next, c.version).await?;
    state.forget_connection(&c.id);
    state
        .audit(
            &ws.id,
            "system",
            "connection.destinations_bound",
            Some(c.id.as_str()),
            Some(c.name.as_str()),
            json!({ "destinations": now, "previous": bound }),
        )
        .await;
    Ok(Some(next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_core::catalog::Catalog;

    fn creds(v: Value) -> SecretFields {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_settings_fingerprint_changes_with_any_setting_and_only_then() {
        let map = |v: Value| v.as_object().unwrap().clone();
        let print = |v: Value| settings_fingerprint(&map(v));
        let base = json!({"base_url": "api.example.com", "port": 1, "tags": ["a", "b"]});
        assert_eq!(print(base.clone()), print(base.clone()));
        let changed = [
            json!({"base_url": "api.example.net", "port": 1, "tags": ["a", "b"]}),
            json!({"base_url": "api.example.com", "port": "1", "tags": ["a", "b"]}),
            json!({"base_url": "api.example.com", "port": 2, "tags": ["a", "b"]}),
            json!({"base_url": "api.example.com", "port": 1, "tags": ["ab"]}),
            json!({"base_url": "api.example.com", "port": 1, "tags": ["a", "b"], "x": null}),
            json!({"base_url": "api.example.com", "port": 1, "tags": {"a": "b"}}),
        ];
        for c in changed {
            assert_ne!(print(base.clone()), print(c.clone()), "{c}");
        }
    }

    #[test]
    fn destinations_follow_every_setting_that_moves_the_secret() {
        let cat = Catalog::embedded();
        let api = cat.get("generic-api-key").unwrap();
        let s = |v: Value| {
            api.validate_settings(AuthMode::ApiKey, v.as_object().unwrap())
                .unwrap()
        };
        let k = creds(json!({"api_key": "k"}));
        let a = of(
            api,
            AuthMode::ApiKey,
            &s(json!({"base_url": "https://api.example.com/v1"})),
            &k,
        )
        .unwrap();
        assert_eq!(
            a.iter().collect::<Vec<_>>(),
            vec!["https://api.example.com"]
        );
        let b = of(
            api,
            AuthMode::ApiKey,
            &s(json!({"base_url": "https://api.example.com:8443/v1"})),
            &k,
        )
        .unwrap();
        assert!(!b.is_subset(&a));

        let oauth = cat.get("generic-oauth2").unwrap();
        let so = |v: Value| {
            oauth
                .validate_settings(AuthMode::OAuth2ClientCredentials, v.as_object().unwrap())
                .unwrap()
        };
        let base = json!({"base_url": "https://api.example.com", "token_url": "https://auth.example.com/token"});
        let one = of(
            oauth,
            AuthMode::OAuth2ClientCredentials,
            &so(base.clone()),
            &k,
        )
        .unwrap();
        assert!(one.contains("https://auth.example.com"));
        let mut moved = base.clone();
        moved["token_url"] = json!("https://evil.example.net/token");
        let two = of(oauth, AuthMode::OAuth2ClientCredentials, &so(moved), &k).unwrap();
        assert!(!two.is_subset(&one));

        let sf = cat.get("salesforce").unwrap();
        let ss = |v: Value| {
            sf.validate_settings(AuthMode::OAuth2Code, v.as_object().unwrap())
                .unwrap()
        };
        let prod = of(
            sf,
            AuthMode::OAuth2Code,
            &ss(json!({"account_type": "production"})),
            &k,
        )
        .unwrap();
        let sandbox = of(
            sf,
            AuthMode::OAuth2Code,
            &ss(json!({"account_type": "sandbox"})),
            &k,
        )
        .unwrap();
        let site = of(
            sf,
            AuthMode::OAuth2Code,
            &ss(json!({"site": "acme.my.salesforce.com"})),
            &k,
        )
        .unwrap();
        assert!(!sandbox.is_subset(&prod) && !site.is_subset(&prod));

        let pg = cat.get("postgres").unwrap();
        let d1 = of(
            pg,
            AuthMode::Database,
            &Map::new(),
            &creds(json!({"host": "db.internal", "port": "5432"})),
        )
        .unwrap();
        let d2 = of(
            pg,
            AuthMode::Database,
            &Map::new(),
            &creds(json!({"host": "db.internal", "port": "5433"})),
        )
        .unwrap();
        assert!(!d2.is_subset(&d1));
    }

    #[test]
    fn a_change_needs_secrets_or_the_secret_again() {
        let a: Destinations = ["https://a.example".to_string()].into();
        let b: Destinations = ["https://b.example".to_string()].into();
        assert!(!decide(&a, &a, false, false).unwrap());
        assert_eq!(decide(&a, &b, false, false).unwrap_err().code, REFUSED);
        assert!(decide(&a, &b, true, false).unwrap());
        assert!(decide(&a, &b, false, true).unwrap());
    }

    #[test]
    fn the_binding_travels_sealed_with_the_credential_and_comes_out_of_it() {
        let bound: Destinations = ["https://a.example".to_string()].into();
        let mut sealed = with_binding(&creds(json!({"api_key": "k"})), &bound);
        assert_eq!(take_binding(&mut sealed), Some(bound));
        assert_eq!(sealed.names().collect::<Vec<_>>(), vec!["api_key"]);
    }
}
