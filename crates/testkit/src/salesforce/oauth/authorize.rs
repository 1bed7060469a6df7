//! The authorize endpoint: the checks of an authorization request, the login form, and the
//! redirect back to the callback with a code or an error.

// Early answers are axum `Response`s, as handlers return them.
#![allow(clippy::result_large_err)]

use super::super::state::has_refresh_scope;
use super::super::{ConnectedApp, Ctx, HostRole};
use super::{pairs, param};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;

const LOGIN_ERROR: &str = "Please check your username and password. If you still can't log in, \
                           contact your Salesforce administrator.";

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
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

pub(super) async fn authorize_get(State(ctx): State<Ctx>, RawQuery(q): RawQuery) -> Response {
    ctx.shared.lock().authorize_requests += 1;
    let p = pairs(q.unwrap_or_default().as_bytes());
    match check_authorize(&ctx, &p) {
        Ok(req) => login_form(&p, &req.app, None),
        Err(r) => r,
    }
}

pub(super) async fn authorize_post(State(ctx): State<Ctx>, body: Bytes) -> Response {
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
