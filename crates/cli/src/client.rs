//! The HTTP client of the API: one place that builds URLs, sends the key, and turns
//! every failure into a [`Failure`] with a message and, where there is one, a hint.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::fmt;
use std::time::Duration;
use url::Url;

/// Verification against an application may take a while (the server allows it 15 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A failure to show a person: `error: <message>` and `hint: <hint>`.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub hint: Option<String>,
    /// The server's machine code (`not_found`, `connection_in_use`, …) when it answered.
    pub code: Option<String>,
}

impl Failure {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
            code: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

pub struct Client {
    http: reqwest::Client,
    base: Url,
    key: String,
}

impl Client {
    pub fn new(base: &str, key: String) -> anyhow::Result<Self> {
        let url_hint =
            "give the server's address like http://127.0.0.1:8080 (--url or LATCHKEY_URL)";
        let base = Url::parse(base.trim())
            .map_err(|e| Failure::new(format!("`{base}` is not a URL: {e}")).with_hint(url_hint))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(Failure::new(format!("`{base}` is not an http(s) URL"))
                .with_hint(url_hint)
                .into());
        }
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("latchkey-cli/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, base, key })
    }

    /// The URL of an API path given as segments; each segment is percent-encoded, so names
    /// with spaces or other characters reach the server intact.
    pub fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        url.path_segments_mut()
            .expect("checked in new: the base URL can have a path")
            .pop_if_empty()
            .extend(segments);
        url
    }

    /// Sends one request. A 2xx answer gives its JSON body (`null` for 204); anything else is
    /// a [`Failure`] carrying the server's message and hint.
    pub async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        let mut url = self.endpoint(segments);
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut req = self.http.request(method, url).bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| self.transport_failure(&e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| self.transport_failure(&e))?;
        if status.is_success() {
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_str(&text).map_err(|_| {
                Failure::new(format!("{} answered something that is not JSON", self.base))
                    .with_hint("check that --url (LATCHKEY_URL) points at a Latchkey server")
            });
        }
        Err(api_failure(status, &text))
    }

    pub async fn get(&self, segments: &[&str], query: &[(&str, String)]) -> Result<Value, Failure> {
        self.send(Method::GET, segments, query, None).await
    }

    pub async fn post(&self, segments: &[&str], body: &Value) -> Result<Value, Failure> {
        self.send(Method::POST, segments, &[], Some(body)).await
    }

    pub async fn patch(&self, segments: &[&str], body: &Value) -> Result<Value, Failure> {
        self.send(Method::PATCH, segments, &[], Some(body)).await
    }

    pub async fn put(&self, segments: &[&str], body: &Value) -> Result<Value, Failure> {
        self.send(Method::PUT, segments, &[], Some(body)).await
    }

    pub async fn delete(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Value, Failure> {
        self.send(Method::DELETE, segments, query, None).await
    }

    /// Follows `next_cursor` until the list ends or `max` items are in hand; answers one list
    /// in the API's own shape.
    pub async fn list_all(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        max: Option<usize>,
    ) -> Result<Value, Failure> {
        let mut items: Vec<Value> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q = query.to_vec();
            let want = max
                .map(|m| m.saturating_sub(items.len()))
                .unwrap_or(500)
                .clamp(1, 500);
            q.push(("limit", want.to_string()));
            if let Some(c) = &cursor {
                q.push(("cursor", c.clone()));
            }
            let mut page = self.get(segments, &q).await?;
            if let Some(Value::Array(got)) = page.get_mut("items").map(Value::take) {
                items.extend(got);
            }
            cursor = page
                .get("next_cursor")
                .and_then(Value::as_str)
                .map(str::to_string);
            let full = max.is_some_and(|m| items.len() >= m);
            if cursor.is_none() || full {
                return Ok(json!({ "items": items, "next_cursor": cursor }));
            }
        }
    }

    /// A request to `url` carrying only the API key, for answers that are not the API's JSON
    /// (the proxy). The caller sets the body, headers and its own timeouts.
    pub fn raw(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        self.http.request(method, url).bearer_auth(&self.key)
    }

    pub fn transport_failure(&self, e: &reqwest::Error) -> Failure {
        let cause = root_cause(e);
        if e.is_connect() {
            Failure::new(format!("cannot reach Latchkey at {}: {cause}", self.base))
                .with_hint("start the server with `latchkey serve`, or set LATCHKEY_URL (or --url) to where it runs")
        } else if e.is_timeout() {
            Failure::new(format!("Latchkey at {} did not answer in time", self.base)).with_hint(
                "the server or the application it checks may be slow or unreachable; try again",
            )
        } else {
            Failure::new(format!(
                "the request to Latchkey at {} failed: {cause}",
                self.base
            ))
        }
    }
}

/// The innermost error says what happened ("Connection refused"); the outer ones repeat the URL.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// The API's error body (`{error, message, hint}`) as a [`Failure`].
pub fn api_failure(status: StatusCode, text: &str) -> Failure {
    let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let message = body.get("message").and_then(Value::as_str);
    match message {
        Some(m) => Failure {
            message: m.to_string(),
            hint: body.get("hint").and_then(Value::as_str).map(str::to_string),
            code: body
                .get("error")
                .and_then(Value::as_str)
                .map(str::to_string),
        },
        None => Failure {
            message: format!("the server answered {status}"),
            hint: Some("check that --url (LATCHKEY_URL) points at a Latchkey server".into()),
            code: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded_under_the_base_path() {
        let c = Client::new("http://h:1/base/", "k".into()).unwrap();
        let u = c.endpoint(&["v1", "workspaces", "acme", "connections", "my conn/x?#%"]);
        assert_eq!(
            u.as_str(),
            "http://h:1/base/v1/workspaces/acme/connections/my%20conn%2Fx%3F%23%25"
        );
        let c = Client::new("http://h:1", "k".into()).unwrap();
        assert_eq!(c.endpoint(&["v1", "apps"]).as_str(), "http://h:1/v1/apps");
    }

    #[test]
    fn server_errors_keep_message_and_hint() {
        let f = api_failure(
            StatusCode::CONFLICT,
            r#"{"error":"duplicate","message":"exists","hint":"rename","details":{}}"#,
        );
        assert_eq!(f.message, "exists");
        assert_eq!(f.hint.as_deref(), Some("rename"));
        assert_eq!(f.code.as_deref(), Some("duplicate"));
        let f = api_failure(StatusCode::BAD_GATEWAY, "<html>");
        assert!(f.message.contains("502"), "{}", f.message);
    }
}
