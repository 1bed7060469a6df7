//! The simulator's API: which row a request's credential belongs to (by the entry's injection
//! rule, fixed headers or signature), the verification request, and the echo of any other call.

use super::{note, set_path, Sim, SimRow};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use latchkey_core::catalog::{InjectStyle, VerifySpec};
use latchkey_core::model::AuthMode;
use serde_json::{json, Value};
use std::collections::HashMap;

type Pair = (String, String);

/// The credential the row's rule puts on a request, as (header name, value) or a query pair.
fn expected(row: &SimRow, token: Option<&str>) -> (Vec<Pair>, Option<Pair>) {
    let lookup = |k: &str| -> String {
        if k == "access_token" {
            return token.unwrap_or_default().to_string();
        }
        row.creds
            .get(k)
            .cloned()
            .or_else(|| {
                row.settings
                    .get(k)
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_default()
    };
    let fill = |t: &str| -> String {
        let mut out = t.to_string();
        for name in [
            "access_token",
            "api_key",
            "username",
            "password",
            "api_secret",
            "application_key",
            "secret_key",
        ] {
            out = out.replace(&format!("{{{name}}}"), &lookup(name));
        }
        out
    };
    let default = if token.is_some() {
        "{access_token}"
    } else if row.mode == AuthMode::Basic {
        "{username}"
    } else {
        "{api_key}"
    };
    let mut headers = vec![];
    let mut query = None;
    match &row.entry.inject {
        None if token.is_some() => headers.push((
            "authorization".into(),
            format!("Bearer {}", lookup("access_token")),
        )),
        None if row.mode == AuthMode::Basic => {
            let b = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                lookup("username"),
                lookup("password")
            ));
            headers.push(("authorization".into(), format!("Basic {b}")));
        }
        None if row.entry.setting("api_key_name").is_none() => headers.push((
            "authorization".into(),
            format!("Bearer {}", lookup("api_key")),
        )),
        None => {
            let s = row.settings_with_defaults();
            let name = s
                .get("api_key_name")
                .and_then(Value::as_str)
                .unwrap_or("X-API-Key")
                .to_ascii_lowercase();
            headers.push((name, lookup("api_key")));
        }
        Some(rule) => {
            let value = fill(rule.value.as_deref().unwrap_or(default));
            match rule.style {
                InjectStyle::Bearer => {
                    headers.push(("authorization".into(), format!("Bearer {value}")))
                }
                InjectStyle::Header => headers.push((
                    rule.name
                        .clone()
                        .unwrap_or("Authorization".into())
                        .to_ascii_lowercase(),
                    value,
                )),
                InjectStyle::Query => {
                    query = Some((rule.name.clone().unwrap_or("key".into()), value))
                }
                InjectStyle::Basic => {
                    let user = fill(rule.username.as_deref().unwrap_or(default));
                    let pass = fill(rule.password.as_deref().unwrap_or(
                        if row.mode == AuthMode::Basic {
                            "{password}"
                        } else {
                            ""
                        },
                    ));
                    let b =
                        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
                    headers.push(("authorization".into(), format!("Basic {b}")));
                }
            }
        }
    }
    let s = row.settings_with_defaults();
    for (k, v) in &row.entry.headers {
        let mut v = fill(v);
        for (sk, sv) in &s {
            if let Some(sv) = sv.as_str() {
                v = v.replace(&format!("{{{sk}}}"), sv);
            }
        }
        headers.push((k.to_ascii_lowercase(), v));
    }
    (headers, query)
}

/// Whether a request carries the row's signature: an OAuth 1.0a header naming its consumer,
/// token, method and realm, or an AWS SigV4 header naming its key, region and service (with
/// the date, the payload hash and the session token beside it). The signatures themselves are
/// checked by oauthlib and botocore in the tests of those modes.
fn signed_ok(row: &SimRow, headers: &HeaderMap) -> bool {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let cred = |n: &str| row.creds.get(n).cloned().unwrap_or_default();
    let s = row.settings_with_defaults();
    let set = |n: &str| {
        s.get(n)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let auth = h("authorization");
    match row.mode {
        AuthMode::OAuth1 | AuthMode::OAuth1Token => {
            let realm = match set("realm") {
                r if !r.is_empty() => Some(r),
                _ => Some(set("account_id").to_ascii_uppercase().replace('-', "_"))
                    .filter(|r| !r.is_empty()),
            };
            auth.starts_with("OAuth ")
                && auth.contains(&format!("oauth_consumer_key=\"{}\"", cred("consumer_key")))
                && auth.contains(&format!("oauth_token=\"{}\"", cred("token_id")))
                && auth.contains(&format!(
                    "oauth_signature_method=\"{}\"",
                    set("signature_method")
                ))
                && auth.contains("oauth_signature=\"")
                && realm.is_none_or(|r| auth.contains(&format!("realm=\"{r}\"")))
        }
        AuthMode::AwsSigv4 => {
            let scope = format!("/{}/{}/aws4_request", set("region"), set("service"));
            auth.starts_with(&format!(
                "AWS4-HMAC-SHA256 Credential={}/",
                cred("access_key_id")
            )) && auth.contains(&scope)
                && !h("x-amz-date").is_empty()
                && h("x-amz-content-sha256").len() == 64
                && row
                    .creds
                    .get("session_token")
                    .is_none_or(|t| h("x-amz-security-token") == t)
        }
        _ => false,
    }
}

pub(super) fn api(
    sim: &Sim,
    origin: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
) -> Response {
    let header_ok = |want: &[(String, String)]| {
        want.iter()
            .all(|(k, v)| headers.get(k.as_str()).and_then(|h| h.to_str().ok()) == Some(v.as_str()))
    };
    let lifetime = sim.lifetime();
    let access: Vec<(String, usize)> = {
        let g = sim.grants.lock().unwrap();
        g.access
            .iter()
            .filter(|(k, _)| g.live(k, lifetime))
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    };
    let mut found: Option<usize> = None;
    let mut near: Option<String> = None;
    for (i, row) in sim.rows.iter().enumerate() {
        let on_origin = row
            .base_url()
            .is_some_and(|u| u.origin().ascii_serialization() == origin)
            || row
                .verify_request()
                .is_some_and(|(_, u)| u.origin().ascii_serialization() == origin);
        if !on_origin {
            continue;
        }
        if row.mode.is_signed() {
            if signed_ok(row, headers) {
                found = Some(i);
                break;
            }
            continue;
        }
        let tokens: Vec<Option<&str>> = if row.mode.has_tokens() {
            access
                .iter()
                .filter(|(_, r)| *r == i)
                .map(|(t, _)| Some(t.as_str()))
                .collect()
        } else {
            vec![None]
        };
        for t in tokens {
            let (want_h, want_q) = expected(row, t);
            let q_ok = want_q.as_ref().is_none_or(|(k, v)| q.get(k) == Some(v));
            if q_ok && header_ok(&want_h) {
                found = Some(i);
                break;
            }
            if want_h.iter().take(1).all(|(k, v)| {
                headers.get(k.as_str()).and_then(|h| h.to_str().ok()) == Some(v.as_str())
            }) && q_ok
            {
                near = Some(format!(
                    "[{}] the credential is right but the fixed headers are not: want {:?}",
                    row.entry.id,
                    want_h.iter().map(|(k, _)| k).collect::<Vec<_>>()
                ));
            }
        }
        if found.is_some() {
            break;
        }
    }
    let Some(i) = found else {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_token", "message": near.unwrap_or_else(|| "no known credential".into())}))).into_response();
    };
    let row = &sim.rows[i];
    if let Some((m, u)) = row.verify_request() {
        let mut got_q: Vec<(String, String)> =
            url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let mut want_q: Vec<(String, String)> = u.query_pairs().into_owned().collect();
        if let Some(rule) = row
            .entry
            .inject
            .as_ref()
            .filter(|r| r.style == InjectStyle::Query)
        {
            got_q.retain(|(k, _)| Some(k) != rule.name.as_ref());
        }
        got_q.sort();
        want_q.sort();
        if u.origin().ascii_serialization() == origin
            && u.path() == uri.path()
            && m == method.as_str()
            && got_q == want_q
        {
            note(sim, row, "verify");
            let mut doc = json!({"id": format!("user-{}", row.entry.id)});
            if let Some(VerifySpec::Http {
                expect_pointer: Some(p),
                expect_value,
                ..
            }) = &row.entry.verify
            {
                let path = p.trim_start_matches('/').replace('/', ".");
                set_path(
                    &mut doc,
                    &path,
                    expect_value.clone().unwrap_or(json!("present")),
                );
            }
            return axum::Json(doc).into_response();
        }
    }
    note(sim, row, "api");
    axum::Json(json!({"sim": "echo", "entry": row.entry.id, "method": method.as_str(), "path": uri.path()})).into_response()
}
