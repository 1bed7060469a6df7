//! The POST both direct modes (token exchanges and service accounts) send to a token or login
//! endpoint, with its failure scrubbed, and the lifetime its answer gives.

use super::grant::{parse_error_answer, GrantError};
use crate::outbound::Outbound;
use latchkey_core::catalog::json_path;
use latchkey_core::exchange::MAX_LIFETIME_SECS;
use latchkey_core::scrub::Scrubber;
use serde_json::Value;
use url::Url;

/// The lifetime an answer gives (seconds, as a number or a string), within a day; `fallback`
/// when it says nothing usable.
pub fn lifetime(v: Option<&Value>, fallback: i64) -> i64 {
    v.and_then(|v| {
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse::<f64>().ok()))
    })
    .filter(|f| f.is_finite() && *f >= 1.0)
    .map(|f| f.min(MAX_LIFETIME_SECS as f64) as i64)
    .unwrap_or(fallback)
}

/// POSTs a form or a JSON body and answers the 2xx body. A failure keeps only the provider's
/// error code and description, scrubbed of everything the request carried.
pub async fn post(
    out: &Outbound,
    url: &Url,
    form: Option<&[(&str, &str)]>,
    json: Option<&Value>,
    scrubber: &Scrubber,
) -> Result<String, GrantError> {
    let prepared = out
        .prepare(url)
        .map_err(|e| GrantError::Transport(e.to_string()))?;
    let mut req = out
        .client()
        .post(prepared)
        .header("accept", "application/json")
        .timeout(std::time::Duration::from_secs(20));
    if let Some(f) = form {
        req = req.form(f);
    }
    if let Some(j) = json {
        req = req.json(j);
    }
    let resp = req.send().await.map_err(|e| {
        GrantError::Transport(format!(
            "the token endpoint could not be reached: {}",
            crate::verify::connect_reason(&e)
        ))
    })?;
    let status = resp.status().as_u16();
    let body = resp
        .text()
        .await
        .map_err(|_| GrantError::Transport("the answer could not be read".into()))?;
    if (200..300).contains(&status) {
        return Ok(body);
    }
    let e = match parse_error_answer(status, &body) {
        GrantError::Transport(_) => GrantError::Provider {
            status,
            error: if matches!(status, 401 | 403) {
                "invalid_credentials".into()
            } else {
                "provider_error".into()
            },
            description: describe(&body, scrubber),
        },
        known => known,
    };
    Err(e.scrubbed(scrubber))
}

/// Words of a non-OAuth error answer (a `message` or an `error.message`), scrubbed and short.
fn describe(body: &str, scrubber: &Scrubber) -> String {
    let doc: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let text = [
        "message",
        "error.message",
        "error.summary",
        "errors.0.message",
    ]
    .iter()
    .find_map(|p| json_path(&doc, p).and_then(Value::as_str))
    .unwrap_or_default();
    scrubber.tidy(text)
}
