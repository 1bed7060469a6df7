//! Sign-in with the organisation's OpenID Connect provider: `/ui/sso/start` sends the browser
//! to the provider (authorization code with PKCE, a fresh state and nonce), `/ui/sso/callback`
//! takes the code back, checks the id_token and grants the roles its claim names, replacing
//! every role the person had before.
//!
//! A sign-in in progress is kept server-side for ten minutes, keyed by its state, and bound to
//! the browser that started it by a random HTTP-only cookie; its state can be used once.

use super::oidc;
use crate::config::OidcSettings;
use crate::state::AppState;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;
use latchkey_core::ids::UserId;
use latchkey_core::model::{Membership, Role, User};
use rand::RngCore;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The cookie that ties a sign-in in progress to its browser.
pub const COOKIE: &str = "latchkey_sso";
/// How long a sign-in may stay at the provider.
const PENDING_FOR: Duration = Duration::from_secs(600);

struct Pending {
    browser_hash: String,
    nonce: String,
    verifier: String,
    started: Instant,
}

fn pending() -> &'static Mutex<HashMap<String, Pending>> {
    static PENDING: OnceLock<Mutex<HashMap<String, Pending>>> = OnceLock::new();
    PENDING.get_or_init(Default::default)
}

fn random() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn digest(v: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes()))
}

/// Where the provider sends the browser back.
pub fn redirect_uri(state: &AppState) -> String {
    format!(
        "{}/ui/sso/callback",
        state.public_url.as_str().trim_end_matches('/')
    )
}

/// A sign-in failure, as a page.
pub type Failure = (StatusCode, String);

/// Starts a sign-in: the redirect to the provider, with the browser-binding cookie.
pub async fn start(state: &AppState, s: &OidcSettings) -> Result<Response, Failure> {
    let provider = oidc::provider(s).await.map_err(|e| {
        (
            StatusCode::BAD_GATEWAY,
            format!("Single sign-on is unavailable: {e}."),
        )
    })?;
    let (browser, key, nonce, verifier) = (random(), random(), random(), random());
    {
        let mut all = pending()
            .lock()
            .map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, "Try again.".to_string()))?;
        all.retain(|_, p| p.started.elapsed() < PENDING_FOR);
        all.insert(
            key.clone(),
            Pending {
                browser_hash: digest(&browser),
                nonce: nonce.clone(),
                verifier: verifier.clone(),
                started: Instant::now(),
            },
        );
    }
    let mut url = url::Url::parse(&provider.authorization_endpoint).map_err(|_| {
        (
            StatusCode::BAD_GATEWAY,
            "Single sign-on is unavailable: the provider's authorization endpoint is not a URL."
                .to_string(),
        )
    })?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &s.client_id)
        .append_pair("redirect_uri", &redirect_uri(state))
        .append_pair("scope", &s.scopes)
        .append_pair("state", &key)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &digest(&verifier))
        .append_pair("code_challenge_method", "S256");
    let mut resp = Redirect::to(url.as_str()).into_response();
    let secure = if state.public_url.scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{COOKIE}={browser}; Path=/ui/sso; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        PENDING_FOR.as_secs()
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

fn browser_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// What the provider sent back to the callback.
#[derive(serde::Deserialize)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

fn refused(msg: impl Into<String>) -> Failure {
    (StatusCode::BAD_REQUEST, msg.into())
}

/// The person a callback signs in, after every check; a failure is said as a page.
pub async fn finish(
    state: &AppState,
    s: &OidcSettings,
    cb: &Callback,
    headers: &HeaderMap,
) -> Result<UserId, Failure> {
    if let Some(err) = &cb.error {
        let more = cb.error_description.as_deref().unwrap_or("");
        return Err(refused(format!(
            "The single sign-on provider did not sign you in ({}{}{}).",
            short(err),
            if more.is_empty() { "" } else { ": " },
            short(more)
        )));
    }
    let (Some(code), Some(key)) = (&cb.code, &cb.state) else {
        return Err(refused("This sign-in answer lacks its code or state."));
    };
    let taken = pending().lock().ok().and_then(|mut all| all.remove(key));
    let Some(p) = taken.filter(|p| p.started.elapsed() < PENDING_FOR) else {
        return Err(refused(
            "This sign-in is unknown, already used or too old. Start again.",
        ));
    };
    if browser_cookie(headers).map(|b| digest(&b)) != Some(p.browser_hash.clone()) {
        return Err(refused(
            "This sign-in was started in another browser. Start again.",
        ));
    }
    let gateway = |e: String| {
        (
            StatusCode::BAD_GATEWAY,
            format!("Single sign-on failed: {e}."),
        )
    };
    let provider = oidc::provider(s)
        .await
        .map_err(|e| gateway(e.to_string()))?;
    let tokens = oidc::exchange(s, &provider, code, &p.verifier, &redirect_uri(state))
        .await
        .map_err(|e| gateway(e.to_string()))?;
    let mut claims = oidc::check_id_token(s, &provider, &tokens.id_token, &p.nonce)
        .await
        .map_err(gateway)?;
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let wants_more = ["email", "name", s.roles_claim.as_str()]
        .iter()
        .any(|c| !claims.contains_key(*c));
    if let (true, Some(access)) = (wants_more, &tokens.access_token) {
        let info = oidc::userinfo(&provider, access, &sub)
            .await
            .map_err(gateway)?;
        for (k, v) in info {
            claims.entry(k).or_insert(v);
        }
    }
    apply(state, s, &sub, &claims).await
}

/// At most 200 characters of a provider's words.
fn short(s: &str) -> String {
    s.chars().take(200).collect()
}

/// The roles a claim's values grant: workspace roles, and whether an instance administrator.
fn grants(claim: Option<&Value>) -> (Vec<(String, Role)>, bool) {
    let values: Vec<&str> = match claim {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(s)) => s.split([' ', ',']).collect(),
        _ => Vec::new(),
    };
    let mut roles = Vec::new();
    let mut admin = false;
    for v in values {
        let Some(rest) = v.trim().strip_prefix("latchkey:") else {
            continue;
        };
        if rest == "admin" {
            admin = true;
        } else if let Some((ws, role)) = rest.split_once(':') {
            if let Ok(r) = role.parse::<Role>() {
                roles.push((ws.to_string(), r));
            }
        }
    }
    (roles, admin)
}

/// The workspaces the granted roles name (unknown ones are skipped), the highest role of each.
async fn workspace_roles(
    state: &AppState,
    wanted: Vec<(String, Role)>,
) -> Result<Vec<(latchkey_core::ids::WorkspaceId, Role)>, latchkey_core::StoreError> {
    let mut memberships: Vec<(latchkey_core::ids::WorkspaceId, Role)> = Vec::new();
    for (slug, role) in wanted {
        match state.store.workspace_by_slug(&slug).await? {
            Some(ws) => match memberships.iter_mut().find(|(w, _)| *w == ws.id) {
                Some(m) if m.1.rank() < role.rank() => m.1 = role,
                Some(_) => {}
                None => memberships.push((ws.id, role)),
            },
            None => tracing::info!(workspace = %slug, "single sign-on names no such workspace"),
        }
    }
    Ok(memberships)
}

/// Finds or creates the person, replaces their roles, and refuses when they have none.
async fn apply(
    state: &AppState,
    s: &OidcSettings,
    sub: &str,
    claims: &serde_json::Map<String, Value>,
) -> Result<UserId, Failure> {
    let internal = |e: latchkey_core::StoreError| {
        tracing::warn!(error = %e, "single sign-on could not update the person");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Sign-in failed: Latchkey could not record the person. Try again.".to_string(),
        )
    };
    let (wanted, admin) = grants(claims.get(&s.roles_claim));
    let memberships = workspace_roles(state, wanted).await.map_err(internal)?;
    let subject = format!("{} {sub}", s.issuer);
    let email = claims
        .get("email")
        .and_then(Value::as_str)
        .map(|e| e.trim().to_lowercase())
        .filter(|e| e.contains('@'));
    let name = claims
        .get("name")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    let existing = state
        .store
        .user_by_sso_subject(&subject)
        .await
        .map_err(internal)?;
    let no_access = memberships.is_empty() && !admin;
    let now = Utc::now();
    let user = match existing {
        Some(mut u) => {
            u.instance_admin = admin;
            if let Some(e) = &email {
                u.email = e.clone();
            }
            if let Some(n) = &name {
                u.display_name = n.clone();
            }
            u.updated_at = now;
            match state.store.update_user(&u).await {
                Ok(_) => {}
                Err(latchkey_core::StoreError::Duplicate { .. }) => {
                    return Err((
                        StatusCode::CONFLICT,
                        format!("Sign-in failed: another Latchkey account already uses {}. Ask an administrator to remove it.", u.email),
                    ))
                }
                Err(e) => return Err(internal(e)),
            }
            u
        }
        None if no_access => return Err(no_access_page(name.as_deref())),
        None => {
            let Some(email) = email else {
                return Err(refused(
                    "Sign-in failed: the provider did not share your email address (add the `email` scope).",
                ));
            };
            if state
                .store
                .user_by_email(&email)
                .await
                .map_err(internal)?
                .is_some()
            {
                return Err((
                    StatusCode::CONFLICT,
                    format!("Sign-in failed: another Latchkey account already uses {email}. Ask an administrator to remove it or link it."),
                ));
            }
            let u = User {
                id: UserId::generate(),
                display_name: name.clone().unwrap_or_else(|| email.clone()),
                email,
                password_hash: None,
                sso_subject: Some(subject),
                instance_admin: admin,
                created_at: now,
                updated_at: now,
            };
            state.store.insert_user(&u).await.map_err(internal)?;
            u
        }
    };
    let all: Vec<Membership> = memberships
        .into_iter()
        .map(|(workspace_id, role)| Membership {
            workspace_id,
            user_id: user.id.clone(),
            role,
            created_at: now,
        })
        .collect();
    state
        .store
        .replace_memberships(&user.id, &all)
        .await
        .map_err(internal)?;
    if no_access {
        return Err(no_access_page(Some(&user.display_name)));
    }
    tracing::info!(user = %user.id, "web UI sign-in by single sign-on");
    Ok(user.id)
}

fn no_access_page(name: Option<&str>) -> Failure {
    let who = name.map(|n| format!(" as {n}")).unwrap_or_default();
    (
        StatusCode::FORBIDDEN,
        format!(
            "You signed in{who}, but you have no access to Latchkey: your organisation gives you no Latchkey role. Ask an administrator to add you to a group such as latchkey:<workspace>:viewer."
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_values_grant_roles() {
        let claim = serde_json::json!([
            "latchkey:acme:admin",
            "latchkey:admin",
            "staff",
            "latchkey:beta:boss",
            "latchkey:beta:viewer"
        ]);
        let (roles, admin) = grants(Some(&claim));
        assert!(admin);
        assert_eq!(
            roles,
            vec![
                ("acme".to_string(), Role::Admin),
                ("beta".to_string(), Role::Viewer)
            ]
        );
        let (roles, admin) = grants(Some(&serde_json::json!("staff latchkey:acme:editor")));
        assert!(!admin);
        assert_eq!(roles, vec![("acme".to_string(), Role::Editor)]);
        assert_eq!(grants(None), (vec![], false));
    }
}
