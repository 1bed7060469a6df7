//! The `proxy_request` tool: the agent's request checked and turned into a call of the API's
//! proxy route, and the application's answer cut to size and blanked of the connection's
//! secrets.

use super::guard::{check_path, read_bounded, scrub};
use super::tools::{error_from_body, seg, ToolAnswer, ToolError};
use super::{McpKey, Tools, MAX_BODY_BYTES};
use crate::access::Need;
use crate::auth::Caller;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use base64::Engine as _;
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProxyArgs {
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

/// Request headers an agent may not set: the credential is Latchkey's to add, and the
/// connection-level headers belong to the in-process request.
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
    pub(super) async fn proxy_request(
        &self,
        caller: &Caller,
        key: &McpKey,
        a: ProxyArgs,
    ) -> ToolAnswer {
        // The connection, as this key may use it through the proxy (404 and 403 come from here).
        self.state
            .lookup(caller, &a.workspace, &a.connection, Need::Proxy)
            .await
            .map_err(ToolError::from_api)?;
        let method = proxy_method(&a.method)?;
        let uri = proxy_uri(&a)?;
        let mut headers = request_headers(&a.headers)?;
        let body = request_body(a.body, &mut headers)?;
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
        Ok(application_answer(
            status,
            &parts.headers,
            &bytes,
            total,
            complete,
            &secrets,
        ))
    }
}

/// The method, when it is one the proxy sends.
fn proxy_method(method: &str) -> Result<Method, ToolError> {
    Method::from_bytes(method.to_ascii_uppercase().as_bytes())
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
                format!("`{method}` is not a method the proxy sends"),
                "use GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS",
            )
        })
}

/// The API's proxy route for the connection, with the checked path and the query.
fn proxy_uri(a: &ProxyArgs) -> Result<String, ToolError> {
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
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Number(_) | Value::Bool(_) => v.to_string(),
                _ => {
                    return Err(ToolError::new(
                        "invalid_arguments",
                        format!("query parameter `{k}` must be a string, number or boolean"),
                        "repeat a parameter by joining values the way the application expects",
                    ))
                }
            };
            q.append_pair(k, &v);
        }
        uri.push('?');
        uri.push_str(&q.finish());
    }
    Ok(uri)
}

/// The agent's headers that may be sent (lower-cased; Latchkey's own and the dropped ones left
/// out).
fn request_headers(given: &BTreeMap<String, String>) -> Result<HeaderMap, ToolError> {
    let mut headers = HeaderMap::new();
    for (k, v) in given {
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
    Ok(headers)
}

/// The request body: a string as it is, anything else as JSON (with its content type unless
/// the agent gave one); no larger than the API takes.
fn request_body(body: Option<Value>, headers: &mut HeaderMap) -> Result<Vec<u8>, ToolError> {
    let body = match body {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.into_bytes(),
        Some(v) => {
            headers
                .entry(header::CONTENT_TYPE)
                .or_insert(HeaderValue::from_static("application/json"));
            v.to_string().into_bytes()
        }
    };
    if body.len() > crate::limits::BODY_LIMIT {
        return Err(ToolError::new(
            "body_too_large",
            "the request body is larger than 1 MiB",
            "send less",
        ));
    }
    Ok(body)
}

/// What the application answered, as the tool's result: the status, the headers (no cookies)
/// and the body (JSON when it is whole JSON, text, or base64), every secret blanked out, with
/// a note when the body was cut.
fn application_answer(
    status: StatusCode,
    headers: &HeaderMap,
    bytes: &[u8],
    total: usize,
    complete: bool,
    secrets: &[String],
) -> Value {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => Some(t.to_string()),
        // A cut inside a character: keep the whole characters before it.
        Err(e) if !complete && e.error_len().is_none() => {
            Some(String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned())
        }
        Err(_) => None,
    };
    let mut out_headers = Map::new();
    for (n, v) in headers.iter() {
        if n == "set-cookie" {
            continue;
        }
        if let Ok(v) = v.to_str() {
            out_headers.insert(n.to_string(), Value::String(scrub(v, secrets)));
        }
    }
    let mut out = json!({"status": status.as_u16(), "headers": out_headers});
    match text {
        Some(t) => {
            let t = scrub(&t, secrets);
            out["body"] = match serde_json::from_str::<Value>(&t) {
                Ok(v) if complete => v,
                _ => Value::String(t),
            };
        }
        None => {
            out["body_base64"] = json!(base64::engine::general_purpose::STANDARD.encode(bytes));
        }
    }
    if !complete {
        out["note"] = json!(format!(
            "the body was cut at {MAX_BODY_BYTES} bytes (it has {}); ask for less, e.g. with a narrower query or a page size",
            if total > MAX_BODY_BYTES { format!("more than {total} bytes") } else { format!("{total} bytes") }
        ));
        out["truncated"] = json!(true);
    }
    out
}
