//! The simulator's authorization and token endpoints: the authorization code request, the
//! token request for every grant type the entries use, and the direct exchanges (a service
//! account's assertion, a token exchange's login).

use super::{bad, kept_value, note, oauth_error, Sim, SimRow};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use latchkey_core::catalog::{ClientAuthMethod, RefreshStyle, TokenBody};
use latchkey_core::model::AuthMode;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use url::Url;

/// A service account's assertion or a token exchange's login, answered with a new token.
pub(super) fn direct_exchange(
    sim: &Sim,
    origin: &str,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Option<Response> {
    use crate::exchange_sim as x;
    let at = |u: Option<Url>| {
        u.is_some_and(|u| u.origin().ascii_serialization() == origin && u.path() == path)
    };
    let form: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let found = if form.get("grant_type").map(String::as_str)
        == Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        let url = sim
            .rows
            .iter()
            .find_map(|r| r.sa_token_url().filter(|u| at(Some(u.clone()))))?;
        x::check_assertion(&sim.rows, url.as_str(), &form).map(|i| (i, None))
    } else {
        let logins: Vec<usize> = (0..sim.rows.len())
            .filter(|&i| at(sim.rows[i].login_url()))
            .collect();
        if logins.is_empty() {
            return None;
        }
        let json_body = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("application/json"));
        x::check_login(&sim.rows, &logins, json_body, body).map(|i| (i, Some(())))
    };
    let (i, login) = match found {
        Ok(f) => f,
        Err(why) => return Some(bad("exchange", why)),
    };
    let row = &sim.rows[i];
    note(
        sim,
        row,
        if login.is_some() {
            "login"
        } else {
            "token:jwt-bearer"
        },
    );
    let mut g = sim.grants.lock().unwrap();
    g.counter += 1;
    let at = format!("at-{:016x}-{}", rand::random::<u64>(), g.counter);
    g.access.insert(at.clone(), i);
    g.issued.insert(at.clone(), std::time::Instant::now());
    Some(match login {
        Some(()) => axum::Json(x::login_answer(row, &at)).into_response(),
        None => axum::Json(json!({"access_token": at, "token_type": "Bearer", "expires_in": 3599}))
            .into_response(),
    })
}

pub(super) fn authorize(
    sim: &Sim,
    i: usize,
    row: &SimRow,
    q: &HashMap<String, String>,
) -> Response {
    let id = &row.entry.id;
    let o = row.entry.oauth.as_ref().expect("oauth");
    if q.get("response_type").map(String::as_str) != Some("code") {
        return bad(id, "response_type must be code");
    }
    let Some(redirect) = q.get("redirect_uri") else {
        return bad(id, "no redirect_uri");
    };
    let Some(state) = q.get("state") else {
        return bad(id, "no state");
    };
    let want = row.scopes().join(&o.scope_separator);
    if !want.is_empty() && q.get("scope") != Some(&want) {
        return bad(
            id,
            format!(
                "scope must be `{want}` (separator `{}`), got {:?}",
                o.scope_separator,
                q.get("scope")
            ),
        );
    }
    let challenge = q.get("code_challenge").cloned();
    if o.pkce != challenge.is_some() {
        return bad(
            id,
            format!(
                "PKCE is {} for this provider",
                if o.pkce { "required" } else { "not used" }
            ),
        );
    }
    if o.pkce && q.get("code_challenge_method").map(String::as_str) != Some("S256") {
        return bad(id, "code_challenge_method must be S256");
    }
    let s = row.settings_with_defaults();
    for (k, v) in &o.authorize_params {
        let v = row.entry.fill_text(v, &s);
        if q.get(k) != Some(&v) {
            return bad(id, format!("authorize parameter {k} must be {v}"));
        }
    }
    note(sim, row, "authorize");
    let mut g = sim.grants.lock().unwrap();
    g.counter += 1;
    let code = format!("code-{id}-{}", g.counter);
    g.codes
        .insert(code.clone(), (i, challenge, redirect.clone()));
    let mut loc = Url::parse(redirect).expect("redirect uri");
    loc.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", state);
    (StatusCode::FOUND, [("location", loc.to_string())]).into_response()
}

pub(crate) fn set_path(doc: &mut Value, path: &str, v: Value) {
    let parts: Vec<&str> = path.split('.').collect();
    let mut cur = doc;
    for (n, p) in parts.iter().enumerate() {
        if n + 1 == parts.len() {
            cur[*p] = v;
            return;
        }
        if !cur.get(*p).is_some_and(Value::is_object) {
            cur[*p] = json!({});
        }
        cur = cur.get_mut(*p).expect("object");
    }
}

pub(super) fn token(
    sim: &Sim,
    candidates: &[usize],
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let ctype = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let form: HashMap<String, String> = if ctype.starts_with("application/json") {
        serde_json::from_slice::<Map<String, Value>>(body)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string())))
            .collect()
    } else {
        url::form_urlencoded::parse(body).into_owned().collect()
    };
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        });
    let cid = basic
        .as_ref()
        .map(|(a, _)| a.clone())
        .or_else(|| form.get("client_id").cloned())
        .unwrap_or_default();
    let Some(&i) = candidates.iter().find(|&&i| sim.rows[i].client_id() == cid) else {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client", "error_description": format!("unknown client {cid}")}))).into_response();
    };
    let row = &sim.rows[i];
    let id = &row.entry.id;
    let o = row.entry.oauth.as_ref().expect("oauth");
    let json_body = ctype.starts_with("application/json");
    if (o.token_body == TokenBody::Json) != json_body {
        return bad(
            id,
            format!(
                "the token request must be {:?}, got content type {ctype}",
                o.token_body
            ),
        );
    }
    match o.client_auth.unwrap_or(ClientAuthMethod::ClientSecretBasic) {
        ClientAuthMethod::ClientSecretBasic => {
            if basic.as_ref().map(|(_, s)| s.clone()) != Some(row.client_secret())
                || form.contains_key("client_secret")
            {
                return bad(
                    id,
                    "client_secret_basic: the client must authenticate with HTTP Basic only",
                );
            }
        }
        ClientAuthMethod::ClientSecretPost => {
            if basic.is_some() || form.get("client_secret") != Some(&row.client_secret()) {
                return bad(
                    id,
                    "client_secret_post: id and secret must be in the body, no Basic header",
                );
            }
        }
    }
    let s = row.settings_with_defaults();
    for (k, v) in &o.token_params {
        let v = row.entry.fill_text(v, &s);
        if form.get(k) != Some(&v) {
            return bad(id, format!("token parameter {k} must be {v}"));
        }
    }
    let grant = form.get("grant_type").cloned().unwrap_or_default();
    let mut g = sim.grants.lock().unwrap();
    match grant.as_str() {
        "authorization_code" => {
            let code = form.get("code").cloned().unwrap_or_default();
            let Some((ci, challenge, redirect)) = g.codes.remove(&code) else {
                return oauth_error(row, StatusCode::BAD_REQUEST, "invalid_grant");
            };
            if ci != i || form.get("redirect_uri") != Some(&redirect) {
                return bad(id, "the code belongs to another client or redirect_uri");
            }
            if let Some(ch) = challenge {
                let v = form.get("code_verifier").cloned().unwrap_or_default();
                let h = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(Sha256::digest(v.as_bytes()));
                if h != ch {
                    return bad(id, "the PKCE verifier does not match");
                }
            } else if form.contains_key("code_verifier") {
                return bad(id, "a code_verifier without PKCE");
            }
        }
        "refresh_token" => {
            let rt = form.get("refresh_token").cloned().unwrap_or_default();
            if g.refresh.get(&rt) != Some(&i) {
                return oauth_error(row, StatusCode::BAD_REQUEST, "invalid_grant");
            }
            if o.refresh == RefreshStyle::Rotate {
                g.refresh.remove(&rt);
            }
        }
        "client_credentials" if row.mode == AuthMode::OAuth2ClientCredentials => {}
        other => return bad(id, format!("unexpected grant_type {other}")),
    }
    drop(g);
    note(sim, row, &format!("token:{grant}"));
    let mut g = sim.grants.lock().unwrap();
    g.counter += 1;
    // Opaque: a token that spells the entry id would be scrubbed out of every echo of it.
    let at = format!("at-{:016x}-{}", rand::random::<u64>(), g.counter);
    g.access.insert(at.clone(), i);
    g.issued.insert(at.clone(), std::time::Instant::now());
    let mut doc = json!({});
    let f = &o.token_fields;
    set_path(&mut doc, f.path("access_token"), json!(at));
    set_path(&mut doc, f.path("token_type"), json!("Bearer"));
    let issue_refresh = grant == "authorization_code" && o.refresh != RefreshStyle::None
        || grant == "refresh_token" && o.refresh == RefreshStyle::Rotate;
    if issue_refresh {
        let rt = format!("rt-{:016x}-{}", rand::random::<u64>(), g.counter);
        g.refresh.insert(rt.clone(), i);
        set_path(&mut doc, f.path("refresh_token"), json!(rt));
    }
    if o.refresh != RefreshStyle::None || row.mode == AuthMode::OAuth2ClientCredentials {
        set_path(
            &mut doc,
            f.path("expires_in"),
            json!(sim.lifetime().as_secs()),
        );
    }
    let scope = row.scopes().join(&o.scope_separator);
    set_path(&mut doc, f.path("scope"), json!(scope));
    for (name, path) in &o.keep {
        set_path(&mut doc, path, json!(kept_value(id, name)));
    }
    if row.entry.quirks.iter().any(|q| q == "slack_ok_envelope") {
        doc["ok"] = json!(true);
    }
    axum::Json(doc).into_response()
}
