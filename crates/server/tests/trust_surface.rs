//! Trust rules of the HTTP edge, over real HTTP on loopback: the web UI's session is no key to
//! secrets or the proxy, proxied answers cannot run as Latchkey, sessions live on the server and
//! end everywhere, throttling never locks out a valid key, oversized headers are refused, admin
//! keys are made only on purpose, key events are audited, and `/metrics` needs its scope.

use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use latchkey_core::model::SessionSubject;
use latchkey_testkit::{spawn_app, spawn_app_postgres, spawn_app_with, start_peer, TestApp};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A page as an upstream application might answer: HTML with its own lax security headers.
async fn upstream_page() -> axum::response::Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src * 'unsafe-inline'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "sniff-away"),
        ],
        "<!doctype html><title>upstream</title><script>document.title = 'ran'</script>",
    )
        .into_response()
}

/// An upstream that answers every request with [`upstream_page`].
async fn start_upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(upstream_page);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

async fn sign_in_with(app: &TestApp, key: &str) -> String {
    let resp = app
        .client
        .post(format!("{}/ui/login", app.url))
        .header("origin", &app.url)
        .form(&[("api_key", key)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "sign-in");
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    set.split(';').next().unwrap().trim().to_string()
}

async fn with_cookie(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    cookie: &str,
) -> (u16, Value) {
    let mut req = app
        .client
        .request(method.clone(), format!("{}{path}", app.url))
        .header("cookie", cookie);
    if !method.is_safe() {
        let csrf = session_csrf(app, cookie).await.unwrap_or_default();
        req = req.header("x-csrf-token", csrf).json(&json!({}));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn session_csrf(app: &TestApp, cookie: &str) -> Option<String> {
    let r = app
        .client
        .get(format!("{}/ui/session", app.url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    if r.status() != 200 {
        return None;
    }
    let v: Value = r.json().await.unwrap();
    v["csrf_token"].as_str().map(str::to_string)
}

#[tokio::test]
async fn the_ui_session_opens_no_secret_and_proxied_pages_are_sandboxed() {
    let app = spawn_app().await;
    let up = start_upstream().await;
    app.workspace("acme").await;
    let c = app
        .post(
            "/v1/workspaces/acme/connections",
            json!({"name": "site", "app": "generic-api-key", "verify": false,
                "settings": {"base_url": up}, "credentials": {"api_key": "k-123456789"}}),
        )
        .await;
    assert_eq!(c.status, 201, "{}", c.text);
    let cookie = sign_in_with(&app, &app.admin_key).await;

    // The session still does what the UI needs.
    let (status, _) = with_cookie(
        &app,
        reqwest::Method::GET,
        "/v1/workspaces/acme/connections",
        &cookie,
    )
    .await;
    assert_eq!(status, 200);

    // But not tokens, credentials or the proxy, even for an admin's session.
    for (method, path) in [
        (
            reqwest::Method::GET,
            "/v1/workspaces/acme/connections/site/credentials",
        ),
        (
            reqwest::Method::GET,
            "/v1/workspaces/acme/connections/site/token",
        ),
        (
            reqwest::Method::POST,
            "/v1/workspaces/acme/connections/site/token/refresh",
        ),
        (
            reqwest::Method::GET,
            "/v1/workspaces/acme/connections/site/proxy/page",
        ),
        (
            reqwest::Method::POST,
            "/v1/workspaces/acme/connections/site/proxy/page",
        ),
    ] {
        let (status, body) = with_cookie(&app, method.clone(), path, &cookie).await;
        assert_eq!(status, 401, "{method} {path}: {body}");
        assert_eq!(body["error"], "api_key_required", "{method} {path}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains("API key"),
            "{body}"
        );
        assert!(
            body["hint"].is_string() && body["details"].is_object(),
            "{body}"
        );
    }

    // An API key still works, and a proxied answer carries Latchkey's sandbox policy instead of
    // the application's own.
    let creds = app
        .get("/v1/workspaces/acme/connections/site/credentials")
        .await;
    assert_eq!(creds.status, 200, "{}", creds.text);
    let page = app
        .client
        .get(format!(
            "{}/v1/workspaces/acme/connections/site/proxy/page",
            app.url
        ))
        .bearer_auth(&app.admin_key)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp: Vec<&HeaderValue> = page
        .headers()
        .get_all("content-security-policy")
        .iter()
        .collect();
    assert_eq!(
        csp,
        [&HeaderValue::from_static("sandbox; default-src 'none'")]
    );
    let nosniff: Vec<&HeaderValue> = page
        .headers()
        .get_all("x-content-type-options")
        .iter()
        .collect();
    assert_eq!(nosniff, [&HeaderValue::from_static("nosniff")]);
    assert!(page.text().await.unwrap().contains("document.title"));
}

fn hash(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

#[tokio::test]
async fn sessions_are_random_ids_kept_by_the_server() {
    let app = spawn_app().await;
    app.workspace("acme").await;
    let store = latchkey_store::open(&app.config.database_url)
        .await
        .unwrap();

    let cookie = sign_in_with(&app, &app.admin_key).await;
    let value = cookie
        .strip_prefix("latchkey_session=")
        .unwrap()
        .to_string();
    assert_eq!(value.len(), 43, "256 random bits, base64url: {value}");
    // Nothing of the key is in the cookie.
    for piece in app.admin_key.as_bytes().windows(8) {
        assert!(
            !value.contains(std::str::from_utf8(piece).unwrap()),
            "{value}"
        );
    }
    let again = sign_in_with(&app, &app.admin_key).await;
    assert_ne!(cookie, again, "every sign-in is a new session");
    // Stored by hash: the database does not hold the cookie's value.
    let kept = store
        .session(&hash(&value), chrono::Utc::now())
        .await
        .unwrap()
        .expect("the session is stored");
    assert!(matches!(kept.subject, SessionSubject::ApiKey(_)));
    let db = std::fs::read(app.data_dir.join("latchkey.db")).unwrap();
    assert!(!db.windows(value.len()).any(|w| w == value.as_bytes()));

    // Signing out ends the session itself, not just the browser's copy of the cookie.
    assert!(session_csrf(&app, &cookie).await.is_some());
    let out = app
        .client
        .post(format!("{}/ui/logout", app.url))
        .header("cookie", &cookie)
        .header("origin", &app.url)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(session_csrf(&app, &cookie).await, None);
    let (status, _) = with_cookie(&app, reqwest::Method::GET, "/v1/workspaces", &cookie).await;
    assert_eq!(status, 401, "a signed-out cookie replayed is refused");
    assert!(
        session_csrf(&app, &again).await.is_some(),
        "the other session lives on"
    );

    // Revoking a key ends the sessions made with it.
    let reader = app
        .post(
            "/v1/api-keys",
            json!({"name": "ui", "workspace": "acme", "scopes": ["read"]}),
        )
        .await;
    let (reader_id, reader_key) = (
        reader.body["id"].as_str().unwrap().to_string(),
        reader.body["key"].as_str().unwrap().to_string(),
    );
    let theirs = sign_in_with(&app, &reader_key).await;
    let theirs_value = theirs.strip_prefix("latchkey_session=").unwrap();
    assert!(session_csrf(&app, &theirs).await.is_some());
    assert_eq!(
        app.delete(&format!("/v1/api-keys/{reader_id}"))
            .await
            .status,
        204
    );
    assert!(
        store
            .session(&hash(theirs_value), chrono::Utc::now())
            .await
            .unwrap()
            .is_none(),
        "the revoked key's session is gone from the store"
    );
    assert_eq!(session_csrf(&app, &theirs).await, None);
    let events = app.get("/v1/events").await;
    let revoked = events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "api_key.revoked" && e["target_id"] == reader_id.as_str())
        .cloned()
        .expect("the revocation is in the instance log");
    assert_eq!(revoked["details"]["sessions_ended"], 1, "{revoked}");
}

#[tokio::test]
async fn sign_out_ends_the_session_on_every_instance_of_a_cluster() {
    let Some(a) = spawn_app_postgres().await else {
        return;
    };
    let b = start_peer(&a).await;
    let cookie = sign_in_with(&a, &a.admin_key).await;
    let (status, _) = with_cookie(&b, reqwest::Method::GET, "/v1/workspaces", &cookie).await;
    assert_eq!(status, 200, "the other instance knows the session");
    let out = a
        .client
        .post(format!("{}/ui/logout", a.url))
        .header("cookie", &cookie)
        .header("origin", &a.url)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    let (status, body) = with_cookie(&b, reqwest::Method::GET, "/v1/workspaces", &cookie).await;
    assert_eq!(
        status, 401,
        "signed out on one instance, refused on the other: {body}"
    );
    assert_eq!(session_csrf(&b, &cookie).await, None);
    let page = b
        .client
        .get(format!("{}/ui/connections", b.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.headers()["location"], "/ui/login");
}

async fn try_key(app: &TestApp, key: &str, forwarded_for: Option<&str>) -> u16 {
    let mut req = app
        .client
        .get(format!("{}/v1/workspaces", app.url))
        .bearer_auth(key);
    if let Some(x) = forwarded_for {
        req = req.header("x-forwarded-for", x);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn throttling_slows_failures_but_never_refuses_a_valid_key() {
    let app = spawn_app().await;
    let mut statuses = Vec::new();
    for i in 0..14 {
        // A forged X-Forwarded-For changes nothing: the peer is no trusted proxy.
        statuses.push(
            try_key(
                &app,
                &format!("lk_guess{i}"),
                Some(&format!("198.51.100.{i}")),
            )
            .await,
        );
    }
    assert_eq!(&statuses[..10], &[401; 10], "{statuses:?}");
    assert_eq!(&statuses[10..], &[429; 4], "{statuses:?}");
    // The right key gets in at once, from the same address, while failures are being slowed.
    assert_eq!(try_key(&app, &app.admin_key, None).await, 200);
    assert_eq!(try_key(&app, "lk_guess-again", None).await, 429);
    assert_eq!(try_key(&app, &app.admin_key, None).await, 200);
    // The UI's sign-in form too.
    let cookie = sign_in_with(&app, &app.admin_key).await;
    assert!(cookie.starts_with("latchkey_session="));
}

#[tokio::test]
async fn forwarded_for_counts_only_behind_a_trusted_proxy() {
    let app = spawn_app_with(|c| {
        c.trusted_proxies = latchkey_server::auth::TrustedProxies::parse("127.0.0.1/32").unwrap()
    })
    .await;
    for i in 0..11 {
        let s = try_key(&app, &format!("lk_guess{i}"), Some("203.0.113.1")).await;
        assert_eq!(s, if i < 10 { 401 } else { 429 }, "attempt {i}");
    }
    // Another client behind the same proxy is its own address.
    assert_eq!(try_key(&app, "lk_guess", Some("203.0.113.2")).await, 401);
    // A client cannot pose as another by writing its own entry first: the proxy's is used.
    assert_eq!(
        try_key(&app, "lk_guess", Some("203.0.113.2, 203.0.113.1")).await,
        429
    );
    assert_eq!(
        try_key(&app, &app.admin_key, Some("203.0.113.1")).await,
        200
    );
}

#[tokio::test]
async fn request_headers_over_64_kib_are_refused_with_431() {
    let app = spawn_app().await;
    let send = |sizes: Vec<usize>| {
        let mut req = app
            .client
            .get(format!("{}/v1/apps", app.url))
            .bearer_auth(&app.admin_key);
        for (i, n) in sizes.into_iter().enumerate() {
            req = req.header(format!("x-filler-{i}"), "a".repeat(n));
        }
        req.send()
    };
    let big = send(vec![24 * 1024, 24 * 1024, 20 * 1024]).await.unwrap();
    assert_eq!(big.status(), 431);
    let body: Value = big.json().await.unwrap();
    assert_eq!(body["error"], "headers_too_large", "{body}");
    assert!(
        body["hint"].is_string() && body["details"].is_object(),
        "{body}"
    );
    let fine = send(vec![24 * 1024, 24 * 1024]).await.unwrap();
    assert_eq!(fine.status(), 200);
}

#[tokio::test]
async fn admin_keys_are_made_on_purpose_and_every_key_event_is_audited() {
    let app = spawn_app().await;
    app.workspace("acme").await;
    let missing = app.post("/v1/api-keys", json!({"name": "oops"})).await;
    assert_eq!(missing.status, 422, "{}", missing.text);
    assert_eq!(
        missing.body["details"]["field"], "workspace",
        "{}",
        missing.text
    );
    assert!(
        missing.body["message"]
            .as_str()
            .unwrap()
            .contains("\"workspace\": null"),
        "{}",
        missing.text
    );
    let admin = app
        .post("/v1/api-keys", json!({"name": "ops", "workspace": null}))
        .await;
    assert_eq!(admin.status, 201, "{}", admin.text);
    assert_eq!(admin.body["workspace"], Value::Null);
    let ws_key = app
        .post(
            "/v1/api-keys",
            json!({"name": "etl", "workspace": "acme", "scopes": ["read"]}),
        )
        .await;
    assert_eq!(ws_key.status, 201, "{}", ws_key.text);
    // Only an admin makes keys.
    let reader = ws_key.body["key"].as_str().unwrap();
    let r = app
        .call_as(
            reader,
            reqwest::Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "x", "workspace": null})),
        )
        .await;
    assert_eq!(r.status, 403);

    let admin_id = admin.body["id"].as_str().unwrap();
    let ws_id = ws_key.body["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/v1/api-keys/{admin_id}")).await.status,
        204
    );
    assert_eq!(
        app.delete(&format!("/v1/api-keys/{ws_id}")).await.status,
        204
    );

    let instance = app.get("/v1/events").await;
    assert_eq!(instance.status, 200, "{}", instance.text);
    let seen: Vec<(String, String)> = instance.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["target_id"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for (action, id) in [
        ("api_key.created", admin_id),
        ("api_key.created", ws_id),
        ("api_key.revoked", admin_id),
        ("api_key.revoked", ws_id),
    ] {
        assert!(
            seen.contains(&(action.to_string(), id.to_string())),
            "{action} {id}: {seen:?}"
        );
    }
    assert!(
        !instance.text.contains("lk_"),
        "no key in events: {}",
        instance.text
    );
    // The workspace's own log has its key's events; the admin key's are not there.
    let ws_events = app.get("/v1/workspaces/acme/events").await;
    let actions: Vec<(&str, &str)> = ws_events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["target_id"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(actions.contains(&("api_key.created", ws_id)), "{actions:?}");
    assert!(actions.contains(&("api_key.revoked", ws_id)), "{actions:?}");
    assert!(
        !actions.iter().any(|(_, id)| *id == admin_id),
        "{actions:?}"
    );
    // The API document says so.
    let doc: Value = app
        .client
        .get(format!("{}/openapi.json", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let create = &doc["components"]["schemas"]["CreateKey"];
    assert!(
        create["required"]
            .as_array()
            .unwrap()
            .contains(&json!("workspace")),
        "{create}"
    );
    assert!(
        create["properties"]["workspace"]
            .to_string()
            .contains("null"),
        "{create}"
    );
    assert!(
        doc["components"]["schemas"]["Scope"]["enum"]
            .as_array()
            .unwrap()
            .contains(&json!("metrics")),
        "{}",
        doc["components"]["schemas"]["Scope"]
    );
    assert!(doc["paths"]["/v1/events"]["get"].is_object());
    // A workspace key does not read the instance log.
    let other = app.workspace_key("acme", &["read"]).await;
    assert_eq!(
        app.call_as(&other, reqwest::Method::GET, "/v1/events", None)
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn metrics_need_the_metrics_scope_unless_made_public() {
    let app = spawn_app().await;
    app.workspace("acme").await;
    let scrape = |app: &TestApp, key: Option<String>| {
        let mut req = app.client.get(format!("{}/metrics", app.url));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        req.send()
    };
    let anon = scrape(&app, None).await.unwrap();
    assert_eq!(anon.status(), 401);
    let body: Value = anon.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    let reader = app
        .workspace_key("acme", &["read", "proxy", "secrets", "write"])
        .await;
    let r = scrape(&app, Some(reader)).await.unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["details"]["required_scope"], "metrics", "{body}");
    let monitor = app.workspace_key("acme", &["metrics"]).await;
    let m = scrape(&app, Some(monitor)).await.unwrap();
    assert_eq!(m.status(), 200);
    assert!(m
        .text()
        .await
        .unwrap()
        .contains("latchkey_http_requests_total"));
    assert_eq!(
        scrape(&app, Some(app.admin_key.clone()))
            .await
            .unwrap()
            .status(),
        200
    );

    let public = spawn_app_with(|c| c.metrics_public = true).await;
    assert_eq!(scrape(&public, None).await.unwrap().status(), 200);
}
