//! The MCP server at `/mcp` (Streamable HTTP transport, stateless, JSON answers): tools that let an
//! agent find applications and connections and call an application through a connection, without
//! ever holding the credential. The caller authenticates with `Authorization: Bearer <api key>`
//! exactly as on the API; every tool runs as one in-process request to the API with that key, so
//! scopes, workspaces and errors are the API's own. Answers are bounded in size, Latchkey's errors
//! come back as tool errors with their hint, and a proxied answer has the connection's secret
//! material blanked out in case the application echoes it.

mod guard;
mod proxy;
mod tools;

pub use guard::check_path;
pub use tools::tool_list;

use crate::auth::caller_for_key;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body_util::BodyExt;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::sync::Arc;

/// The most bytes of a proxied answer's body a tool result carries.
pub const MAX_BODY_BYTES: usize = 32 * 1024;
/// The most items a list tool answers with.
pub const MAX_ITEMS: usize = 50;
/// The key an MCP request was authenticated with, kept for the in-process API calls its tools
/// make. Never printed.
#[derive(Clone)]
struct McpKey(Arc<str>);

impl std::fmt::Debug for McpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("McpKey([redacted])")
    }
}

/// The MCP service of one request: the API it calls in-process, and the state.
#[derive(Clone)]
struct Tools {
    api: Router,
    state: AppState,
}

/// `/mcp`, served by `api` (the rest of the router, which the tools call in-process).
pub fn router(state: AppState, api: Router) -> Router {
    let mut allowed_hosts = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Some(host) = state.public_url.host_str() {
        allowed_hosts.push(host.trim_matches(['[', ']']).to_string());
        if let Some(port) = state.public_url.port() {
            allowed_hosts.push(format!("{host}:{port}"));
        }
    }
    let listen = state.config.listen;
    allowed_hosts.push(listen.ip().to_string());
    allowed_hosts.push(listen.to_string());
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_allowed_hosts(allowed_hosts)
        .with_max_request_body_bytes(crate::limits::BODY_LIMIT);
    let tools_state = state.clone();
    let service = StreamableHttpService::new(
        move || {
            Ok(Tools {
                api: api.clone(),
                state: tools_state.clone(),
            })
        },
        Arc::new(NeverSessionManager::default()),
        config,
    );
    Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(state, authenticate))
}

/// Only an API key in the `Authorization` header opens `/mcp` (the UI's cookie does not).
async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let key = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|k| k.trim().to_string());
    let Some(key) = key else {
        let mut resp = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the MCP endpoint needs `Authorization: Bearer <api key>`",
        )
        .hint("give the agent a workspace key with the `read` and `proxy` scopes (not `secrets`)")
        .into_response();
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"latchkey\""),
        );
        return resp;
    };
    match caller_for_key(&state, &key, peer).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            req.extensions_mut().insert(McpKey(key.into()));
            in_error_shape(next.run(req).await).await
        }
        Err(e) => e.into_response(),
    }
}

/// The transport's own refusals (wrong `Accept`, unreadable body, unknown method) in Latchkey's
/// error shape; JSON-RPC answers (JSON) pass as they are, since MCP clients read those.
async fn in_error_shape(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let allow = resp.headers().get(header::ALLOW).cloned();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let text: String = String::from_utf8_lossy(&bytes).chars().take(300).collect();
    let message = if text.trim().is_empty() {
        format!("the MCP endpoint refused the request ({status})")
    } else {
        text.trim().to_string()
    };
    let mut out = ApiError::new(status, "mcp_transport_error", message)
        .hint("POST JSON-RPC messages with `Accept: application/json, text/event-stream` (Streamable HTTP transport); an MCP client library does this")
        .into_response();
    if let Some(a) = allow {
        out.headers_mut().insert(header::ALLOW, a);
    }
    out
}

/// The MCP endpoint, for the OpenAPI document.
#[utoipa::path(post, path = "/mcp", tag = "mcp", operation_id = "mcp",
    description = "The Model Context Protocol server (Streamable HTTP transport, stateless, JSON answers). \
        Tools: `list_apps {q?}`, `list_connections {workspace}`, `get_connection {workspace, connection}`, \
        `proxy_request {workspace, connection, method, path, query?, headers?, body?}`. Send JSON-RPC messages \
        with `Accept: application/json, text/event-stream`; use an MCP client library.",
    request_body(content = Object, content_type = "application/json", description = "a JSON-RPC request or notification"),
    responses(
        (status = 200, description = "the JSON-RPC answer", content_type = "application/json", body = Object),
        (status = 202, description = "a notification was accepted"),
        (status = 401, description = "no API key, or an unknown one", body = crate::error::ErrorBody),
        (status = 406, description = "the request does not accept JSON and event streams", body = crate::error::ErrorBody)))]
#[allow(dead_code)]
pub async fn openapi_doc() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_does_not_print() {
        assert!(!format!("{:?}", McpKey("lk_abc".into())).contains("lk_abc"));
    }
}
