//! `/services/oauth2/*` and the identity URL, on every host role.

// Early answers are axum `Response`s, as handlers return them.
#![allow(clippy::result_large_err)]

use super::state::{
    has_refresh_scope, oauth_error, Issued, OAuthError, AUTH_FAILURE, BAD_CLIENT_ID,
    BAD_CLIENT_SECRET, EXPIRED_TOKEN,
};
use super::{ConnectedApp, Ctx, HostRole, User, PRODUCTION_ORIGIN, SANDBOX_ORIGIN};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub(super) const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const LOGIN_ERROR: &str = "Please check your username and password. If you still can't log in, \
                           contact your Salesforce administrator.";

pub(super) fn routes() -> Router<Ctx> {
    Router::new()
        .route(
            "/services/oauth2/authorize",
            get(authorize_get).post(authorize_post),
        )
        .route("/services/oauth2/token", post(token))
        .route("/services/oauth2/revoke", get(revoke_get).post(revoke_post))
        .route("/services/oauth2/introspect", post(introspect))
        .route("/services/oauth2/userinfo", get(userinfo).post(userinfo))
        .route("/id/{org}/{user}", get(identity).post(identity))
}

/// Form or query pairs; the first value of a repeated name wins.
pub(super) fn pairs(raw: &[u8]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw) {
        out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    out
}

fn param<'a>(p: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    p.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The access token of `Authorization: Bearer …` (Salesforce also takes `OAuth …`).
pub(super) fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    let ok = scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth");
    (ok && !token.trim().is_empty()).then(|| token.trim().to_string())
}

fn oauth_error_response(e: OAuthError) -> Response {
    let body = json!({"error": e.error, "error_description": e.description});
    (
        StatusCode::BAD_REQUEST,
        [(
            header::CACHE_CONTROL,
            "no-cache,must-revalidate,max-age=0,no-store,private",
        )],
        Json(body),
    )
        .into_response()
}

// ---------- authorize ----------

fn error_page(error: &str, description: &str) -> Response {
    let enc: String = url::form_urlencoded::byte_serialize(description.as_bytes()).collect();
    let body = format!(
        "<!DOCTYPE html><html><head><title>Error | Salesforce</title></head><body>\
         <h1>OAuth Error</h1><p>We can't authorize you because of an OAuth error. For more \
         information, contact your Salesforce administrator.</p>\
         <p id=\"oauth-error\">error={error}&amp;error_description={enc}</p></body></html>"
    );
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn redirect(to: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, to.to_string())], "").into_response()
}

/// `redirect_uri` with these query pairs appended, then `state` when there was one.
fn redirect_with(redirect_uri: &str, pairs: &[(&str, &str)], state: Option<&str>) -> Response {
    let mut url = match url::Url::parse(redirect_uri) {
        Ok(u) => u,
        Err(_) => {
            return error_page(
                "redirect_uri_mismatch",
                "redirect_uri must match configuration",
            )
        }
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
        if let Some(s) = state {
            q.append_pair("state", s);
        }
    }
    redirect(url.as_str())
}

/// A checked authorize request: the app and callback are known, the rest is valid.
struct AuthorizeRequest {
    app: ConnectedApp,
    redirect_uri: String,
    state: Option<String>,
    scopes: Vec<String>,
    challenge: Option<String>,
}

/// Errors before the callback is trusted show a page; later ones go back to the callback.
fn check_authorize(ctx: &Ctx, p: &HashMap<String, String>) -> Result<AuthorizeRequest, Response> {
    let app = {
        let st = ctx.shared.lock();
        param(p, "client_id").and_then(|id| st.apps.get(id).cloned())
    };
    let Some(app) = app else {
        return Err(error_page("invalid_client_id", "client identifier invalid"));
    };
    let redirect_uri = param(p, "redirect_uri").unwrap_or_default().to_string();
    if !app.callback_urls.contains(&redirect_uri) {
        return Err(error_page(
            "redirect_uri_mismatch",
            "redirect_uri must match configuration",
        ));
    }
    let state = param(p, "state").map(String::from);
    let back = |error: &str, description: &str| {
        redirect_with(
            &redirect_uri,
            &[("error", error), ("error_description", description)],
            state.as_deref(),
        )
    };
    if param(p, "response_type") != Some("code") {
        return Err(back(
            "unsupported_response_type",
            "response type not supported",
        ));
    }
    let challenge = param(p, "code_challenge").map(String::from);
    if challenge.is_some() && param(p, "code_challenge_method").is_some_and(|m| m != "S256") {
        return Err(back("invalid_request", "invalid code challenge method"));
    }
    if challenge.is_none() && app.require_pkce {
        return Err(back("invalid_request", "missing required code challenge"));
    }
    let allowed = |s: &str| {
        app.scopes.iter().any(|a| {
            a == s
                || (has_refresh_scope(std::slice::from_ref(a))
                    && has_refresh_scope(&[s.to_string()]))
        })
    };
    let scopes: Vec<String> = match param(p, "scope") {
        Some(s) => s.split_whitespace().map(String::from).collect(),
        None => app.scopes.clone(),
    };
    if !scopes.iter().all(|s| allowed(s)) {
        return Err(back("invalid_scope", "the requested scope is not allowed"));
    }
    if param(p, "prompt").is_some_and(|p| p.split_whitespace().any(|x| x == "none")) {
        return Err(back("login_required", "user is not logged in"));
    }
    Ok(AuthorizeRequest {
        app,
        redirect_uri,
        state,
        scopes,
        challenge,
    })
}

fn login_form(p: &HashMap<String, String>, app: &ConnectedApp, error: Option<&str>) -> Response {
    let mut hidden = String::new();
    for name in [
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
        "prompt",
    ] {
        if let Some(v) = param(p, name) {
            hidden.push_str(&format!(
                "<input type=\"hidden\" name=\"{name}\" value=\"{}\">\n",
                html_escape(v)
            ));
        }
    }
    let error = error
        .map(|e| {
            format!(
                "<p class=\"loginError\" id=\"error\">{}</p>\n",
                html_escape(e)
            )
        })
        .unwrap_or_default();
    let scope = html_escape(param(p, "scope").unwrap_or("(the app's scopes)"));
    let body = format!(
        "<!DOCTYPE html><html><head><title>Login | Salesforce</title></head><body>\n\
         <h1>Log in to allow access</h1>\n<p>App <code>{app}</code> asks for: {scope}</p>\n{error}\
         <form method=\"post\" action=\"/services/oauth2/authorize\">\n{hidden}\
         <label>Username <input type=\"email\" name=\"username\"></label>\n\
         <label>Password <input type=\"password\" name=\"password\"></label>\n\
         <button type=\"submit\" name=\"approve\" value=\"1\">Allow</button>\n\
         <button type=\"submit\" name=\"deny\" value=\"1\">Deny</button>\n\
         </form></body></html>",
        app = html_escape(&app.consumer_key),
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn authorize_get(State(ctx): State<Ctx>, RawQuery(q): RawQuery) -> Response {
    ctx.shared.lock().authorize_requests += 1;
    let p = pairs(q.unwrap_or_default().as_bytes());
    match check_authorize(&ctx, &p) {
        Ok(req) => login_form(&p, &req.app, None),
        Err(r) => r,
    }
}

async fn authorize_post(State(ctx): State<Ctx>, body: Bytes) -> Response {
    ctx.shared.lock().authorize_requests += 1;
    let p = pairs(&body);
    let req = match check_authorize(&ctx, &p) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if param(&p, "deny").is_some() {
        return redirect_with(
            &req.redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", "end-user denied authorization"),
            ],
            req.state.as_deref(),
        );
    }
    let username = param(&p, "username").unwrap_or_default();
    let password = param(&p, "password").unwrap_or_default();
    let realm = match ctx.role {
        HostRole::Production => Some(false),
        HostRole::Sandbox => Some(true),
        HostRole::MyDomain => None,
    };
    let code = {
        let mut st = ctx.shared.lock();
        if !st.check_password(username, password, realm) {
            None
        } else {
            Some(st.issue_code(
                &req.app.consumer_key,
                &req.redirect_uri,
                req.scopes,
                username,
                req.challenge,
            ))
        }
    };
    match code {
        Some(code) => redirect_with(&req.redirect_uri, &[("code", &code)], req.state.as_deref()),
        None => login_form(&p, &req.app, Some(LOGIN_ERROR)),
    }
}

// ---------- token ----------

struct ClientAuth {
    id: Option<String>,
    secret: Option<String>,
}

/// RFC 6749 §2.3.1: HTTP Basic carries the form-url-encoded id and secret.
fn form_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn client_auth(headers: &HeaderMap, form: &HashMap<String, String>) -> ClientAuth {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|t| {
            t.split_once(':')
                .map(|(i, s)| (form_decode(i), form_decode(s)))
        });
    match basic {
        Some((id, secret)) => ClientAuth {
            id: Some(id).filter(|s| !s.is_empty()),
            secret: Some(secret).filter(|s| !s.is_empty()),
        },
        None => ClientAuth {
            id: param(form, "client_id").map(String::from),
            secret: param(form, "client_secret").map(String::from),
        },
    }
}

/// The app named by the client, its secret checked when given (or when `need_secret`).
fn authenticate(
    ctx: &Ctx,
    auth: &ClientAuth,
    need_secret: impl FnOnce(&ConnectedApp) -> bool,
) -> Result<ConnectedApp, OAuthError> {
    let id = auth.id.as_deref().ok_or(BAD_CLIENT_ID)?;
    let app = ctx.shared.lock().app(id)?.clone();
    match auth.secret.as_deref() {
        Some(s) if s != app.consumer_secret => Err(BAD_CLIENT_SECRET),
        None if need_secret(&app) => Err(BAD_CLIENT_SECRET),
        _ => Ok(app),
    }
}

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

pub(super) fn id_url(user: &User) -> String {
    let host = if user.sandbox {
        SANDBOX_ORIGIN
    } else {
        PRODUCTION_ORIGIN
    };
    format!("{host}/id/{}/{}", user.org_id, user.user_id)
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

async fn token(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
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

fn revoke_token(ctx: &Ctx, p: &HashMap<String, String>) -> Response {
    let token = param(p, "token").unwrap_or_default();
    if !token.is_empty() && ctx.shared.lock().revoke(token) {
        StatusCode::OK.into_response()
    } else {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_token", "error_description": "invalid token"})),
        )
            .into_response()
    }
}

async fn revoke_post(State(ctx): State<Ctx>, body: Bytes) -> Response {
    revoke_token(&ctx, &pairs(&body))
}

async fn revoke_get(State(ctx): State<Ctx>, RawQuery(q): RawQuery) -> Response {
    revoke_token(&ctx, &pairs(q.unwrap_or_default().as_bytes()))
}

async fn introspect(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    let form = pairs(&body);
    let app = match authenticate(&ctx, &client_auth(&headers, &form), |_| true) {
        Ok(a) => a,
        Err(e) => return oauth_error_response(e),
    };
    let token = param(&form, "token").unwrap_or_default();
    let st = ctx.shared.lock();
    let Some(found) = st.introspect(token, &app.consumer_key) else {
        return Json(json!({"active": false})).into_response();
    };
    let sub = st
        .users
        .get(&found.username)
        .map(id_url)
        .unwrap_or_default();
    let mut out = json!({
        "active": true,
        "scope": found.scopes.join(" "),
        "client_id": app.consumer_key,
        "username": found.username,
        "sub": sub,
        "token_type": found.token_type,
        "iat": found.iat,
        "nbf": found.iat,
    });
    if let Some(exp) = found.exp {
        out["exp"] = json!(exp);
    }
    Json(out).into_response()
}

fn bad_token(body: &'static str) -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/plain;charset=UTF-8")],
        body,
    )
        .into_response()
}

/// The user behind a live bearer token (its session slides forward).
fn token_user(ctx: &Ctx, headers: &HeaderMap) -> Option<User> {
    let token = bearer(headers)?;
    ctx.shared.lock().use_access_token(&token).map(|(_, u)| u)
}

fn user_urls(ctx: &Ctx, user: &User) -> Value {
    let base = &ctx.shared.my_domain_origin;
    let v = super::API_VERSIONS.last().map(|v| v.0).unwrap_or("62.0");
    json!({
        "rest": format!("{base}/services/data/v{v}/"),
        "sobjects": format!("{base}/services/data/v{v}/sobjects/"),
        "query": format!("{base}/services/data/v{v}/query/"),
        "profile": format!("{base}/{}", user.user_id),
        "custom_domain": base,
    })
}

async fn userinfo(State(ctx): State<Ctx>, headers: HeaderMap) -> Response {
    let Some(user) = token_user(&ctx, &headers) else {
        return bad_token("Bad_OAuth_Token");
    };
    let (given, family) = user.name.split_once(' ').unwrap_or(("", &user.name));
    Json(json!({
        "sub": id_url(&user),
        "user_id": user.user_id,
        "organization_id": user.org_id,
        "preferred_username": user.username,
        "nickname": user.username.split('@').next().unwrap_or_default(),
        "name": user.name,
        "given_name": given,
        "family_name": family,
        "email": user.email,
        "email_verified": true,
        "zoneinfo": "Europe/London",
        "locale": "en_GB",
        "language": "en_US",
        "active": user.active,
        "user_type": "STANDARD",
        "is_salesforce_integration_user": false,
        "urls": user_urls(&ctx, &user),
    }))
    .into_response()
}

async fn identity(
    State(ctx): State<Ctx>,
    Path((org, user_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(user) = token_user(&ctx, &headers) else {
        return bad_token("Bad_OAuth_Token");
    };
    if user.org_id != org || user.user_id != user_id {
        return bad_token("Bad_Id");
    }
    Json(json!({
        "id": id_url(&user),
        "asserted_user": true,
        "user_id": user.user_id,
        "organization_id": user.org_id,
        "username": user.username,
        "nick_name": user.username.split('@').next().unwrap_or_default(),
        "display_name": user.name,
        "email": user.email,
        "active": user.active,
        "user_type": "STANDARD",
        "urls": user_urls(&ctx, &user),
    }))
    .into_response()
}
