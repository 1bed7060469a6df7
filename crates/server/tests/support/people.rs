//! Signing in to the web UI with a password from a test, as a browser would (the session
//! cookie and its CSRF token), and a connection body the testkit's upstream accepts.

use latchkey_testkit::upstream::Upstream;
use latchkey_testkit::{Answer, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

/// A signed-in browser as the server sees it: the session cookie and its CSRF token.
pub struct Session {
    cookie: String,
    csrf: String,
}

pub async fn sign_in(app: &TestApp, email: &str, password: &str) -> Result<Session, Answer> {
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = c
        .post(format!("{}/ui/login", app.url))
        .form(&[("email", email), ("password", password)])
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_string);
    let text = resp.text().await.unwrap_or_default();
    let Some(cookie) = cookie.filter(|_| status == 303) else {
        return Err(Answer {
            status,
            body: Value::Null,
            text,
        });
    };
    let info: Value = c
        .get(format!("{}/ui/session", app.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Ok(Session {
        cookie,
        csrf: info["csrf_token"].as_str().unwrap().to_string(),
    })
}

pub async fn as_session(
    app: &TestApp,
    s: &Session,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let mut req = app
        .client
        .request(method, format!("{}{path}", app.url))
        .header("cookie", &s.cookie)
        .header("x-csrf-token", &s.csrf);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

pub fn connection(name: &str, up: &Upstream) -> Value {
    json!({
        "name": name, "app": "generic-api-key", "environment": "production", "auth_mode": "api_key",
        "settings": {"base_url": up.url, "verify_path": "/me"},
        "credentials": {"api_key": "key-right-123"}
    })
}
