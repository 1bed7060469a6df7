//! The tools: their list and input schemas, how a tool call becomes in-process API requests
//! with the caller's key, and how an answer or an error goes back to the agent.

use super::guard::MAX_PATH;
use super::{McpKey, Tools, MAX_ITEMS};
use crate::access::Need;
use crate::auth::Caller;
use crate::error::ApiError;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use http_body_util::BodyExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use tower::ServiceExt;

/// What a tool answers: a JSON value, or Latchkey's error.
pub(super) type ToolAnswer = Result<Value, ToolError>;

pub(super) struct ToolError {
    code: String,
    message: String,
    hint: Option<String>,
}

impl ToolError {
    pub(super) fn new(code: &str, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    pub(super) fn from_api(e: ApiError) -> Self {
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
pub(super) fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

impl Tools {
    fn caller<'a>(&self, ctx: &'a RequestContext<RoleServer>) -> Option<(&'a Caller, &'a McpKey)> {
        let parts = ctx.extensions.get::<http::request::Parts>()?;
        Some((
            parts.extensions.get::<Caller>()?,
            parts.extensions.get::<McpKey>()?,
        ))
    }

    /// One in-process request to the API with the caller's key.
    pub(super) async fn send(
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

    /// The connection's secret material as it is now (credentials and tokens), to blank out of a
    /// proxied answer: an application that echoes the request must not hand the agent the key.
    pub(super) async fn secrets_of(&self, caller: &Caller, ws: &str, conn: &str) -> Vec<String> {
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

pub(super) fn error_from_body(status: StatusCode, body: &Value) -> ToolError {
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
