//! The HTTP surface: every failure answers `{error, message, hint, details}` with the right
//! status, never a 500 or a panic; `/openapi.json`, `/healthz` and `/metrics` work.

use latchkey_testkit::spawn_app;
use serde_json::{json, Value};

/// method, path, body, content type, expected status, expected error code.
type Case<'a> = (
    reqwest::Method,
    &'a str,
    Option<String>,
    Option<&'a str>,
    u16,
    &'a str,
);

fn assert_error_shape(body: &Value, text: &str) {
    assert!(body["error"].is_string(), "no error code in {text}");
    assert!(body["message"].is_string(), "no message in {text}");
    assert!(body.get("hint").is_some(), "no hint key in {text}");
    assert!(body["details"].is_object(), "no details object in {text}");
}

#[tokio::test]
async fn hostile_input_gets_clear_errors() {
    let app = spawn_app().await;
    app.workspace("acme").await;
    let url = |p: &str| format!("{}{p}", app.url);
    let send = |method: reqwest::Method, path: &str, body: Option<String>, ctype: Option<&str>| {
        let mut r = app
            .client
            .request(method, url(path))
            .bearer_auth(&app.admin_key);
        if let Some(c) = ctype {
            r = r.header("content-type", c);
        }
        if let Some(b) = body {
            r = r.body(b);
        }
        r.send()
    };
    let cases: Vec<Case> = vec![
        (reqwest::Method::POST, "/v1/workspaces", Some("{\"slug\": ".into()), Some("application/json"), 400, "malformed_json"),
        (reqwest::Method::POST, "/v1/workspaces", Some("{\"slug\": \"a\", \"sluggish\": 1}".into()), Some("application/json"), 422, "invalid_body"),
        (reqwest::Method::POST, "/v1/workspaces", Some("{\"slug\": 42}".into()), Some("application/json"), 422, "invalid_body"),
        (reqwest::Method::POST, "/v1/workspaces", Some("{\"slug\": \"a\"}".into()), Some("text/plain"), 415, "unsupported_media_type"),
        (reqwest::Method::POST, "/v1/workspaces", Some(format!("{{\"slug\": \"{}\"}}", "a".repeat(2 * 1024 * 1024))), Some("application/json"), 413, "payload_too_large"),
        (reqwest::Method::POST, "/v1/workspaces", Some("{\"slug\": \"Not A Slug\"}".into()), Some("application/json"), 422, "invalid_input"),
        (reqwest::Method::POST, "/v1/workspaces/acme/connections", Some("[1,2,3]".into()), Some("application/json"), 422, "invalid_body"),
        (reqwest::Method::POST, "/v1/workspaces/acme/connections", Some("{\"name\": \"x\", \"app\": \"postgres\", \"credentials\": {\"password\": [\"s3cr3t-in-array\"]}}".into()), Some("application/json"), 422, "invalid_body"),
        (reqwest::Method::GET, "/v1/nothing-here", None, None, 404, "not_found"),
        (reqwest::Method::PUT, "/v1/workspaces", None, None, 405, "method_not_allowed"),
        (reqwest::Method::GET, "/v1/workspaces/acme/connections?limit=abc", None, None, 422, "invalid_query"),
        (reqwest::Method::GET, "/v1/workspaces/acme/connections/conn_notanid", None, None, 404, "not_found"),
        (reqwest::Method::GET, "/v1/workspaces/%FF%FE/connections", None, None, 400, "invalid_path"),
        (reqwest::Method::DELETE, "/v1/api-keys/not-a-key", None, None, 404, "not_found"),
    ];
    for (method, path, body, ctype, status, code) in cases {
        let resp = send(method.clone(), path, body, ctype).await.unwrap();
        let got = resp.status().as_u16();
        if got == 413 {
            // The body was not read to its end: the client is told not to reuse the connection.
            assert_eq!(resp.headers()["connection"], "close", "{path}");
        }
        let text = resp.text().await.unwrap();
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert_eq!(got, status, "{method} {path}: {text}");
        assert_error_shape(&json, &text);
        assert_eq!(json["error"], code, "{method} {path}: {text}");
        assert!(
            !text.contains("s3cr3t-in-array"),
            "an error echoed a secret: {text}"
        );
    }
    // Nothing was half-written by all that.
    assert_eq!(
        app.get("/v1/workspaces").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn keys_are_required() {
    let app = spawn_app().await;
    for (header, expect) in [
        (None, "no API key"),
        (Some("Basic abc"), "Bearer"),
        (Some("Bearer lk_nope"), "unknown API key"),
        (Some("Bearer xyz"), "not a Latchkey"),
    ] {
        let mut r = app.client.get(format!("{}/v1/workspaces", app.url));
        if let Some(h) = header {
            r = r.header("authorization", h);
        }
        let resp = r.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized");
        assert!(body["message"].as_str().unwrap().contains(expect), "{body}");
        assert!(body["hint"].as_str().unwrap().contains("admin.key"));
    }
}

#[tokio::test]
async fn openapi_health_and_metrics() {
    let app = spawn_app().await;
    let doc: Value = app
        .client
        .get(format!("{}/openapi.json", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/workspaces",
        "/v1/workspaces/{ws}/connections",
        "/v1/workspaces/{ws}/connections/{conn}/credentials",
        "/v1/workspaces/{ws}/flows",
        "/v1/api-keys",
        "/v1/apps",
        "/healthz",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from /openapi.json"
        );
    }
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    // Enums are documented by their wire names (schemathesis caught variant names once).
    assert_eq!(
        doc["components"]["schemas"]["AuthMode"]["enum"][0],
        "oauth2_code"
    );
    assert_eq!(
        doc["components"]["schemas"]["ConnectionStatus"]["enum"][0],
        "pending_authorization"
    );

    let h = app
        .client
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(h.status(), 200);
    let h: Value = h.json().await.unwrap();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["store"], "sqlite");

    app.get("/v1/apps").await;
    let m = app
        .client
        .get(format!("{}/metrics", app.url))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(m.status(), 200);
    let text = m.text().await.unwrap();
    assert!(text.contains("latchkey_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/v1/apps\""), "{text}");
    // Durations are histograms (buckets that add up across instances), each one consistent:
    // counts that never fall from one bound to the next, the last one (+Inf) equal to the count.
    let series = "latchkey_http_request_duration_seconds";
    let route = "method=\"GET\",route=\"/v1/apps\"";
    let value = |line: &str| -> f64 { line.rsplit(' ').next().unwrap().parse().unwrap() };
    let buckets: Vec<(String, f64)> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{series}_bucket{{")) && l.contains(route))
        .map(|l| {
            let le = l.split("le=\"").nth(1).unwrap().split('"').next().unwrap();
            (le.to_string(), value(l))
        })
        .collect();
    assert_eq!(buckets.len(), 18, "{text}");
    assert_eq!(buckets[0].0, "0.00025", "{text}");
    assert_eq!(buckets[17].0, "+Inf", "{text}");
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
    let count = text
        .lines()
        .find(|l| l.starts_with(&format!("{series}_count{{")) && l.contains(route))
        .map(value)
        .unwrap();
    assert!(count >= 1.0, "{text}");
    assert_eq!(buckets[17].1, count, "{text}");
    assert!(!text.contains("quantile="), "{text}");
}

#[tokio::test]
async fn catalog_describes_applications() {
    let app = spawn_app().await;
    let apps = app.get("/v1/apps?limit=500").await;
    let ids: Vec<&str> = apps.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    for id in [
        "certinia",
        "generic-api-key",
        "generic-basic",
        "generic-oauth2",
        "mysql",
        "postgres",
        "salesforce",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    let pg = app.get("/v1/apps/postgres").await;
    assert_eq!(pg.body["auth_modes"], json!(["database"]));
    let fields: Vec<&str> = pg.body["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["host", "port", "database", "username", "password"]);
    let sf = app.get("/v1/apps/salesforce").await;
    assert_eq!(
        sf.body["oauth"]["default_scopes"],
        json!(["api", "refresh_token"])
    );
    assert_eq!(app.get("/v1/apps/nope").await.status, 404);
}

#[tokio::test]
async fn repeated_failed_sign_ins_are_slowed_down() {
    let app = spawn_app().await;
    let mut statuses = Vec::new();
    for i in 0..12 {
        let r = app
            .client
            .get(format!("{}/v1/workspaces", app.url))
            .bearer_auth(format!("lk_guess{i}"))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            assert!(r.headers().get("retry-after").is_some());
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"], "too_many_failures");
        }
    }
    assert_eq!(&statuses[..10], &[401; 10], "{statuses:?}");
    assert_eq!(&statuses[10..], &[429, 429], "{statuses:?}");
    // Failures are slowed down, but a right key is never locked out.
    let r = app
        .client
        .get(format!("{}/v1/workspaces", app.url))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The UI's sign-in form counts too.
    let form = app
        .client
        .post(format!("{}/ui/login", app.url))
        .header("origin", &app.url)
        .form(&[("api_key", "lk_nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 429);
}

#[tokio::test]
async fn oversized_headers_are_refused_without_harm() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(format!("{}/v1/apps", app.url))
        .bearer_auth(&app.admin_key)
        .header("x-filler", "a".repeat(512 * 1024))
        .send()
        .await;
    // The server may also close the connection instead of answering.
    if let Ok(resp) = r {
        assert!(resp.status().is_client_error(), "{}", resp.status());
    }
    assert_eq!(
        app.get("/v1/apps").await.status,
        200,
        "the server still answers"
    );
}
