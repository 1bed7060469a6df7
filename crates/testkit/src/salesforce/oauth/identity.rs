//! Token revocation and introspection, and what a token tells about its user (userinfo and
//! the identity URL).

use super::super::{Ctx, User};
use super::{authenticate, bearer, client_auth, id_url, oauth_error_response, pairs, param};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;

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

pub(super) async fn revoke_post(State(ctx): State<Ctx>, body: Bytes) -> Response {
    revoke_token(&ctx, &pairs(&body))
}

pub(super) async fn revoke_get(State(ctx): State<Ctx>, RawQuery(q): RawQuery) -> Response {
    revoke_token(&ctx, &pairs(q.unwrap_or_default().as_bytes()))
}

pub(super) async fn introspect(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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
    let v = super::super::API_VERSIONS
        .last()
        .map(|v| v.0)
        .unwrap_or("62.0");
    json!({
        "rest": format!("{base}/services/data/v{v}/"),
        "sobjects": format!("{base}/services/data/v{v}/sobjects/"),
        "query": format!("{base}/services/data/v{v}/query/"),
        "profile": format!("{base}/{}", user.user_id),
        "custom_domain": base,
    })
}

pub(super) async fn userinfo(State(ctx): State<Ctx>, headers: HeaderMap) -> Response {
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

pub(super) async fn identity(
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
