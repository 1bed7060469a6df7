//! The token endpoint: the authorization code, refresh token, client credentials and JWT
//! bearer grants, and the token answer each gives.

// Early answers are axum `Response`s, as handlers return them.
#![allow(clippy::result_large_err)]

use super::super::state::{
    has_refresh_scope, oauth_error, Issued, OAuthError, AUTH_FAILURE, EXPIRED_TOKEN,
};
use super::super::{ConnectedApp, Ctx, HostRole, PRODUCTION_ORIGIN, SANDBOX_ORIGIN};
use super::{authenticate, client_auth, id_url, oauth_error_response, pairs, param, ClientAuth};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub(super) const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Which fields a token answer carries.
#[derive(PartialEq)]
enum Flavor {
    /// Authorization code and refresh: signature and issued_at.
    Signed,
    /// Client credentials: signed, plus `api_instance_url`.
    ClientCredentials,
    /// JWT bearer: no signature, no issued_at.
    Jwt,
}

fn signature(secret: &str, id: &str, issued_at: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac takes any key");
    mac.update(id.as_bytes());
    mac.update(issued_at.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

fn id_token(issued: &Issued, id: &str) -> String {
    let user = &issued.user;
    let iat = issued.issued_ms / 1000;
    let claims = json!({
        "iss": if user.sandbox { SANDBOX_ORIGIN } else { PRODUCTION_ORIGIN },
        "sub": id,
        "aud": issued.client_id,
        "iat": iat,
        "exp": iat + 300,
        "preferred_username": user.username,
        "name": user.name,
        "email": user.email,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(issued.consumer_secret.as_bytes()),
    )
    .unwrap_or_default()
}

fn token_answer(ctx: &Ctx, issued: Issued, flavor: Flavor) -> Value {
    let id = id_url(&issued.user);
    let mut out = json!({
        "access_token": issued.access_token,
        "scope": issued.scopes.join(" "),
        "instance_url": ctx.shared.my_domain_origin,
        "id": id,
        "token_type": "Bearer",
    });
    if flavor != Flavor::Jwt {
        let issued_at = issued.issued_ms.to_string();
        out["signature"] = json!(signature(&issued.consumer_secret, &id, &issued_at));
        out["issued_at"] = json!(issued_at);
        if let Some(r) = &issued.refresh_token {
            out["refresh_token"] = json!(r);
        }
        if issued.scopes.iter().any(|s| s == "openid") {
            out["id_token"] = json!(id_token(&issued, &id));
        }
    }
    if flavor == Flavor::ClientCredentials {
        out["api_instance_url"] = json!("https://api.salesforce.com");
    }
    out
}

pub(super) async fn token(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    let form = pairs(&body);
    let grant_type = form.get("grant_type").cloned().unwrap_or_default();
    *ctx.shared
        .lock()
        .token_requests
        .entry(grant_type.clone())
        .or_insert(0) += 1;
    let delay = ctx.shared.token_delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let auth = client_auth(&headers, &form);
    let answer = match grant_type.as_str() {
        "authorization_code" => code_grant(&ctx, &auth, &form),
        "refresh_token" => refresh_grant(&ctx, &auth, &form),
        "client_credentials" => client_credentials_grant(&ctx, &auth),
        JWT_BEARER => jwt_grant(&ctx, &form),
        _ => Err(oauth_error(
            "unsupported_grant_type",
            "grant type not supported",
        )),
    };
    match answer {
        Ok(v) => (
            StatusCode::OK,
            [(
                header::CACHE_CONTROL,
                "no-cache,must-revalidate,max-age=0,no-store,private",
            )],
            Json(v),
        )
            .into_response(),
        Err(e) => oauth_error_response(e),
    }
}

fn code_grant(
    ctx: &Ctx,
    auth: &ClientAuth,
    form: &HashMap<String, String>,
) -> Result<Value, OAuthError> {
    let app = authenticate(ctx, auth, |a| a.require_secret)?;
    let mut st = ctx.shared.lock();
    let code = st.take_code(param(form, "code").unwrap_or_default(), &app.consumer_key)?;
    if param(form, "redirect_uri") != Some(code.redirect_uri.as_str()) {
        return Err(oauth_error(
            "redirect_uri_mismatch",
            "redirect_uri must match configuration",
        ));
    }
    if let Some(challenge) = &code.challenge {
        let bad = oauth_error("invalid_grant", "invalid code verifier");
        let verifier = param(form, "code_verifier").ok_or(bad.clone())?;
        if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != *challenge {
            return Err(bad);
        }
    }
    let user = st.active_user(&code.username)?;
    let issued = st.new_grant(&app.consumer_key, user, code.scopes)?;
    drop(st);
    Ok(token_answer(ctx, issued, Flavor::Signed))
}

fn refresh_grant(
    ctx: &Ctx,
    auth: &ClientAuth,
    form: &HashMap<String, String>,
) -> Result<Value, OAuthError> {
    let app = authenticate(ctx, auth, |_| false)?;
    let token = param(form, "refresh_token").ok_or(EXPIRED_TOKEN)?;
    let issued = ctx.shared.lock().refresh(&app.consumer_key, token)?;
    Ok(token_answer(ctx, issued, Flavor::Signed))
}

fn session_scopes(app: &ConnectedApp) -> Vec<String> {
    app.scopes
        .iter()
        .filter(|s| !has_refresh_scope(std::slice::from_ref(s)))
        .cloned()
        .collect()
}

fn client_credentials_grant(ctx: &Ctx, auth: &ClientAuth) -> Result<Value, OAuthError> {
    if ctx.role != HostRole::MyDomain {
        return Err(oauth_error(
            "invalid_grant",
            "request not supported on this domain",
        ));
    }
    let app = authenticate(ctx, auth, |_| true)?;
    let run_as = app.client_credentials_user.as_deref().ok_or(oauth_error(
        "invalid_grant",
        "no client credentials user enabled",
    ))?;
    let mut st = ctx.shared.lock();
    let user = st.active_user(run_as)?;
    let issued = st.new_session(&app.consumer_key, user, session_scopes(&app))?;
    drop(st);
    Ok(token_answer(ctx, issued, Flavor::ClientCredentials))
}

fn jwt_grant(ctx: &Ctx, form: &HashMap<String, String>) -> Result<Value, OAuthError> {
    let invalid = oauth_error("invalid_grant", "invalid assertion");
    let assertion = param(form, "assertion").ok_or(invalid.clone())?;
    // The issuer picks the key, so the claims are read once before the signature is checked.
    let unverified: Value = assertion
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok())
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .ok_or(invalid.clone())?;
    let iss = unverified["iss"].as_str().ok_or(invalid.clone())?;
    let app = ctx.shared.lock().app(iss)?.clone();
    let pem = app.jwt_public_key_pem.as_deref().ok_or(invalid.clone())?;
    let key =
        jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| invalid.clone())?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Value>(assertion, &key, &validation)
        .map_err(|_| invalid.clone())?
        .claims;

    let expected: &[&str] = match ctx.role {
        HostRole::Production => &[PRODUCTION_ORIGIN],
        HostRole::Sandbox => &[SANDBOX_ORIGIN],
        HostRole::MyDomain => &[PRODUCTION_ORIGIN, SANDBOX_ORIGIN],
    };
    let aud_ok = match &claims["aud"] {
        Value::String(a) => expected.contains(&a.as_str()),
        Value::Array(list) => list
            .iter()
            .any(|a| a.as_str().is_some_and(|a| expected.contains(&a))),
        _ => false,
    };
    if !aud_ok {
        return Err(oauth_error("invalid_grant", "Audience validation failed"));
    }
    let mut st = ctx.shared.lock();
    let now = st.wall_ms() / 1000;
    if claims["exp"].as_u64().is_none_or(|exp| exp <= now) {
        return Err(invalid);
    }
    let sub = claims["sub"].as_str().unwrap_or_default();
    let user = st.users.get(sub).cloned().ok_or(invalid.clone())?;
    let realm_ok = match ctx.role {
        HostRole::Production => !user.sandbox,
        HostRole::Sandbox => user.sandbox,
        HostRole::MyDomain => true,
    };
    if !realm_ok {
        return Err(invalid);
    }
    if !user.active {
        return Err(AUTH_FAILURE);
    }
    if !app.jwt_preapproved.contains(&user.username) {
        return Err(oauth_error(
            "invalid_grant",
            "user hasn't approved this consumer",
        ));
    }
    let issued = st.new_session(&app.consumer_key, user, session_scopes(&app))?;
    drop(st);
    Ok(token_answer(ctx, issued, Flavor::Jwt))
}

// ---------- revoke, introspect, userinfo ----------
