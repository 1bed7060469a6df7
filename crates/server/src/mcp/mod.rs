//! The MCP server at `/mcp` (Streamable HTTP transport, stateless, JSON answers): tools that let an
//! agent find applications and connections and call an application through a connection, without
//! ever holding the credential. The caller authenticates with `Authorization: Bearer <api key>`
//! exactly as on the API; every tool runs as one in-process request to the API with that key, so
//! scopes, workspaces and errors are the API's own. Answers are bounded in size, Latchkey's errors
//! come back as tool errors with their hint, and a proxied answer has the connection's secret
//! material blanked out in case the application echoes it.

use crate::access::Need;
use crate::auth::{caller_for_key, Caller};
use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use http_body_util::BodyExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use tower::ServiceExt;

mod guard;
pub use guard::check_path;
use guard::{read_bounded, scrub, MAX_PATH};

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
        .with_max_request_body_bytes(crate::routes::BODY_LIMIT);
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

#[derive(Clone)]
struct Tools {
    api: Router,
    state: AppState,
}

/// What a tool answers: a JSON value, or Latchkey's error.
type ToolAnswer = Result<Value, ToolError>;

struct ToolError {
    code: String,
    message: String,
    hint: Option<String>,
}

impl ToolError {
    fn new(code: &str, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    fn from_api(e: ApiError) -> Self {
        Self {
            code: e.code,
            message: e.message,
            hint: e.hint,
        }
    }

    fn result(self) -> CallToolResult {
        let body = json!({"error": self.code, "message": self.message, "hint": self.hint});
        let mut text = format!("{}: {}", self.code, self.message);
        if let Some(h) = &self.hint {
            text.push_str(&format!("\nhint: {h}"));
        }
        let mut r = CallToolResult::error(vec![ContentBlock::text(text)]);
        r.structured_content = Some(body);
        r
    }
}

fn schema(v: Value) -> Arc<Map<String, Value>> {
    match v {
        Value::Object(m) => Arc::new(m),
        _ => unreachable!("tool schemas are objects"),
    }
}

fn tool(name: &'static str, description: &'static str, input: Value, read_only: bool) -> Tool {
    let mut t = Tool::new(name, description, schema(input));
    t.annotations = Some(ToolAnnotations::from_raw(
        None,
        Some(read_only),
        Some(!read_only),
        Some(read_only),
        Some(!read_only),
    ));
    t
}

/// The tools and their input schemas.
pub fn tool_list() -> Vec<Tool> {
    let name =
        |d: &str| json!({"type": "string", "minLength": 1, "maxLength": 200, "description": d});
    vec![
        tool(
            "list_apps",
            "Lists the applications Latchkey can connect to (the catalog), optionally filtered by a search text.",
            json!({"type": "object", "properties": {
                "q": {"type": "string", "maxLength": 200, "description": "words to look for in the id, name, category or description"}
            }, "additionalProperties": false}),
            true,
        ),
        tool(
            "list_connections",
            "Lists the connections of a workspace: name, application, environment, status and what to do when one is failing. Never includes a secret.",
            json!({"type": "object", "properties": {
                "workspace": name("the workspace slug (e.g. `acme`) or id")
            }, "required": ["workspace"], "additionalProperties": false}),
            true,
        ),
        tool(
            "get_connection",
            "Shows one connection (by name or id): application, auth mode, status, settings and warnings. Never includes a secret.",
            json!({"type": "object", "properties": {
                "workspace": name("the workspace slug or id"),
                "connection": name("the connection's name or id")
            }, "required": ["workspace", "connection"], "additionalProperties": false}),
            true,
        ),
        tool(
            "proxy_request",
            "Calls the application behind a connection through Latchkey's proxy: Latchkey adds the credential, so the agent never sees it. \
             `path` is relative to the connection's API base (Salesforce: the instance URL), e.g. `/services/data/v62.0/limits`. \
             The answer gives the status, the headers and at most 32 KiB of the body. Needs a key with the `proxy` scope.",
            json!({"type": "object", "properties": {
                "workspace": name("the workspace slug or id"),
                "connection": name("the connection's name or id"),
                "method": {"type": "string", "enum": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]},
                "path": {"type": "string", "minLength": 1, "maxLength": MAX_PATH, "pattern": "^/",
                    "description": "a path under the connection's API base, starting with `/`; no scheme, host, `..` or query"},
                "query": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]},
                    "description": "query parameters"},
                "headers": {"type": "object", "additionalProperties": {"type": "string"},
                    "description": "request headers (Authorization, Cookie, Host and hop-by-hop headers are not sent)"},
                "body": {"description": "the request body: a string is sent as it is, anything else as JSON"}
            }, "required": ["workspace", "connection", "method", "path"], "additionalProperties": false}),
            false,
        ),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListAppsArgs {
    q: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkspaceArgs {
    workspace: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionArgs {
    workspace: String,
    connection: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProxyArgs {
    workspace: String,
    connection: String,
    method: String,
    path: String,
    #[serde(default)]
    query: BTreeMap<String, Value>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<Value>,
}

fn args<T: serde::de::DeserializeOwned>(raw: Option<Map<String, Value>>) -> Result<T, ToolError> {
    serde_json::from_value(Value::Object(raw.unwrap_or_default())).map_err(|e| {
        ToolError::new(
            "invalid_arguments",
            format!("the tool's arguments are not valid: {e}"),
            "see the tool's input schema (tools/list)",
        )
    })
}

/// One path segment, percent-encoded (names may hold any character).
fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

const DROPPED_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "host",
    "connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

impl Tools {
    fn caller<'a>(&self, ctx: &'a RequestContext<RoleServer>) -> Option<(&'a Caller, &'a McpKey)> {
        let parts = ctx.extensions.get::<http::request::Parts>()?;
        Some((
            parts.extensions.get::<Caller>()?,
            parts.extensions.get::<McpKey>()?,
        ))
    }

    /// One in-process request to the API with the caller's key.
    async fn send(
        &self,
        key: &McpKey,
        method: Method,
        uri: &str,
        headers: HeaderMap,
        body: Body,
    ) -> Result<Response, ToolError> {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(h) = req.headers_mut() {
            *h = headers;
            let mut auth = HeaderValue::from_str(&format!("Bearer {}", key.0))
                .map_err(|_| ToolError::from_api(ApiError::internal()))?;
            auth.set_sensitive(true);
            h.insert(header::AUTHORIZATION, auth);
        }
        let req = req.body(body).map_err(|_| {
            ToolError::new(
                "invalid_arguments",
                "the request could not be built",
                "check the path, query and headers",
            )
        })?;
        self.api
            .clone()
            .oneshot(req)
            .await
            .map_err(|_| ToolError::from_api(ApiError::internal()))
    }

    /// A JSON API call: the parsed body of a success, or the API's error as a tool error.
    async fn get_json(&self, key: &McpKey, uri: &str) -> ToolAnswer {
        let resp = self
            .send(key, Method::GET, uri, HeaderMap::new(), Body::empty())
            .await?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            Ok(body)
        } else {
            Err(error_from_body(status, &body))
        }
    }

    async fn list_apps(&self, key: &McpKey, a: ListAppsArgs) -> ToolAnswer {
        let q = a.q.unwrap_or_default().to_lowercase();
        let words: Vec<&str> = q.split_whitespace().collect();
        let mut cursor: Option<String> = None;
        let mut matched = Vec::new();
        let mut total = 0usize;
        for _ in 0..20 {
            let mut uri = "/v1/apps?limit=500".to_string();
            if let Some(c) = &cursor {
                uri.push_str(&format!("&cursor={}", seg(c)));
            }
            let page = self.get_json(key, &uri).await?;
            for app in page["items"].as_array().into_iter().flatten() {
                let hay = ["id", "name", "category", "description"]
                    .iter()
                    .filter_map(|f| app[*f].as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_lowercase();
                if words.iter().all(|w| hay.contains(w)) {
                    total += 1;
                    if matched.len() < MAX_ITEMS {
                        matched.push(json!({
                            "id": app["id"], "name": app["name"], "category": app["category"],
                            "description": app["description"], "auth_modes": app["auth_modes"],
                            "docs_url": app["docs_url"],
                        }));
                    }
                }
            }
            cursor = page["next_cursor"].as_str().map(str::to_string);
            if cursor.is_none() {
                break;
            }
        }
        let mut out = json!({"items": matched, "total": total});
        if total > MAX_ITEMS {
            out["note"] = json!(format!(
                "showing {MAX_ITEMS} of {total} applications; narrow the search with `q`"
            ));
        }
        Ok(out)
    }

    async fn list_connections(&self, key: &McpKey, a: WorkspaceArgs) -> ToolAnswer {
        let page = self
            .get_json(
                key,
                &format!(
                    "/v1/workspaces/{}/connections?limit={MAX_ITEMS}",
                    seg(&a.workspace)
                ),
            )
            .await?;
        let items: Vec<Value> = page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                json!({
                    "id": c["id"], "name": c["name"], "app": c["app"], "environment": c["environment"],
                    "auth_mode": c["auth_mode"], "status": c["status"],
                    "status_reason": c["status_reason"], "hint": c["hint"],
                })
            })
            .collect();
        let mut out = json!({"items": items});
        if !page["next_cursor"].is_null() {
            out["note"] = json!(format!(
                "the workspace has more than {MAX_ITEMS} connections; only the first {MAX_ITEMS} are shown (use get_connection for a named one)"
            ));
        }
        Ok(out)
    }

    async fn get_connection(&self, key: &McpKey, a: ConnectionArgs) -> ToolAnswer {
        self.get_json(
            key,
            &format!(
                "/v1/workspaces/{}/connections/{}",
                seg(&a.workspace),
                seg(&a.connection)
            ),
        )
        .await
    }

    async fn proxy_request(&self, caller: &Caller, key: &McpKey, a: ProxyArgs) -> ToolAnswer {
        // The connection, as this key may use it through the proxy (404 and 403 come from here).
        self.state
            .lookup(caller, &a.workspace, &a.connection, Need::Proxy)
            .await
            .map_err(ToolError::from_api)?;
        let method = Method::from_bytes(a.method.to_ascii_uppercase().as_bytes())
            .ok()
            .filter(|m| {
                [
                    Method::GET,
                    Method::HEAD,
                    Method::POST,
                    Method::PUT,
                    Method::PATCH,
                    Method::DELETE,
                    Method::OPTIONS,
                ]
                .contains(m)
            })
            .ok_or_else(|| {
                ToolError::new(
                    "invalid_arguments",
                    format!("`{}` is not a method the proxy sends", a.method),
                    "use GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS",
                )
            })?;
        check_path(&a.path).map_err(|why| {
            ToolError::new(
                "invalid_path",
                format!("the path is refused: {why}"),
                "give a path under the connection's API base, like `/services/data/v62.0/limits`; query parameters go in `query`",
            )
        })?;
        let mut uri = format!(
            "/v1/workspaces/{}/connections/{}/proxy{}",
            seg(&a.workspace),
            seg(&a.connection),
            a.path
        );
        if !a.query.is_empty() {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in &a.query {
                let v =
                    match v {
                        Value::String(s) => s.clone(),
                        Value::Number(_) | Value::Bool(_) => v.to_string(),
                        _ => return Err(ToolError::new(
                            "invalid_arguments",
                            format!("query parameter `{k}` must be a string, number or boolean"),
                            "repeat a parameter by joining values the way the application expects",
                        )),
                    };
                q.append_pair(k, &v);
            }
            uri.push('?');
            uri.push_str(&q.finish());
        }
        let mut headers = HeaderMap::new();
        for (k, v) in &a.headers {
            let lower = k.to_ascii_lowercase();
            if DROPPED_HEADERS.contains(&lower.as_str()) || lower.starts_with("latchkey-") {
                continue;
            }
            let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(lower.as_bytes()),
                HeaderValue::from_str(v),
            ) else {
                return Err(ToolError::new(
                    "invalid_arguments",
                    format!("header `{k}` is not a valid HTTP header"),
                    "header names are tokens and values are visible ASCII",
                ));
            };
            headers.append(n, v);
        }
        let body = match a.body {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => s.into_bytes(),
            Some(v) => {
                headers
                    .entry(header::CONTENT_TYPE)
                    .or_insert(HeaderValue::from_static("application/json"));
                v.to_string().into_bytes()
            }
        };
        if body.len() > crate::routes::BODY_LIMIT {
            return Err(ToolError::new(
                "body_too_large",
                "the request body is larger than 1 MiB",
                "send less",
            ));
        }
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        let resp = self
            .send(key, method, &uri, headers, Body::from(body))
            .await?;
        let status = resp.status();
        let (parts, body) = resp.into_parts();
        // Latchkey's own refusals (no `Latchkey-Queue-Ms`: the request never reached the
        // application) are tool errors; whatever the application answered is a result.
        if !parts.headers.contains_key("latchkey-queue-ms") {
            let bytes = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            return Err(error_from_body(status, &v));
        }
        let (bytes, total, complete) = read_bounded(body, MAX_BODY_BYTES).await;
        let secrets = self.secrets_of(caller, &a.workspace, &a.connection).await;
        let text = match std::str::from_utf8(&bytes) {
            Ok(t) => Some(t.to_string()),
            // A cut inside a character: keep the whole characters before it.
            Err(e) if !complete && e.error_len().is_none() => {
                Some(String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned())
            }
            Err(_) => None,
        };
        let mut out_headers = Map::new();
        for (n, v) in parts.headers.iter() {
            if n == "set-cookie" {
                continue;
            }
            if let Ok(v) = v.to_str() {
                out_headers.insert(n.to_string(), Value::String(scrub(v, &secrets)));
            }
        }
        let mut out = json!({"status": status.as_u16(), "headers": out_headers});
        match text {
            Some(t) => {
                let t = scrub(&t, &secrets);
                out["body"] = match serde_json::from_str::<Value>(&t) {
                    Ok(v) if complete => v,
                    _ => Value::String(t),
                };
            }
            None => {
                out["body_base64"] =
                    json!(base64::engine::general_purpose::STANDARD.encode(&bytes));
            }
        }
        if !complete {
            out["note"] = json!(format!(
                "the body was cut at {MAX_BODY_BYTES} bytes (it has {}); ask for less, e.g. with a narrower query or a page size",
                if total > MAX_BODY_BYTES { format!("more than {total} bytes") } else { format!("{total} bytes") }
            ));
            out["truncated"] = json!(true);
        }
        Ok(out)
    }

    /// The connection's secret material as it is now (credentials and tokens), to blank out of a
    /// proxied answer: an application that echoes the request must not hand the agent the key.
    async fn secrets_of(&self, caller: &Caller, ws: &str, conn: &str) -> Vec<String> {
        let Ok(found) = self.state.lookup(caller, ws, conn, Need::Proxy).await else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Ok(creds) = crate::vault::decrypt(&self.state, &found.conn).await {
            out.extend(creds.values().map(str::to_string));
        }
        if let Ok(Some(t)) = crate::oauth::tokens::stored_tokens(&self.state, &found.conn).await {
            out.push(t.access_token.expose_secret().to_string());
            if let Some(r) = &t.refresh_token {
                out.push(r.expose_secret().to_string());
            }
        }
        out.retain(|s| s.len() >= 4);
        out
    }
}

fn error_from_body(status: StatusCode, body: &Value) -> ToolError {
    ToolError {
        code: body["error"].as_str().unwrap_or("http_error").to_string(),
        message: body["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("Latchkey answered {status}")),
        hint: body["hint"].as_str().map(str::to_string),
    }
}

impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("latchkey", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Latchkey holds the credentials of a workspace's connections. Find a connection with \
                 list_connections, then call its application with proxy_request: Latchkey adds the \
                 credential, so you never need (or see) a secret.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tool_list()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some((caller, key)) = self.caller(&context) else {
            return Err(ErrorData::internal_error(
                "the request was not authenticated",
                None,
            ));
        };
        let (caller, key) = (caller.clone(), key.clone());
        let raw = request.arguments;
        let answer = match request.name.as_ref() {
            "list_apps" => match args(raw) {
                Ok(a) => self.list_apps(&key, a).await,
                Err(e) => Err(e),
            },
            "list_connections" => match args(raw) {
                Ok(a) => self.list_connections(&key, a).await,
                Err(e) => Err(e),
            },
            "get_connection" => match args(raw) {
                Ok(a) => self.get_connection(&key, a).await,
                Err(e) => Err(e),
            },
            "proxy_request" => match args(raw) {
                Ok(a) => self.proxy_request(&caller, &key, a).await,
                Err(e) => Err(e),
            },
            other => Err(ToolError::new(
                "unknown_tool",
                format!("there is no tool `{other}`"),
                "the tools are list_apps, list_connections, get_connection and proxy_request",
            )),
        };
        Ok(match answer {
            Ok(v) => {
                let text = serde_json::to_string_pretty(&v).unwrap_or_default();
                let mut r = CallToolResult::success(vec![ContentBlock::text(text)]);
                r.structured_content = Some(v);
                r
            }
            Err(e) => e.result(),
        }
        .into())
    }
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
