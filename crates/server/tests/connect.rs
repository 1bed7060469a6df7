//! Connect sessions over HTTP: creating them, what their token may do (and everything it may
//! not), spending, expiry, cancellation, reconnecting in place, branding, and the hosted page's
//! answers for links that no longer work. The browser side is in `connect_ui.rs`.

use latchkey_testkit::salesforce::{self, SalesforceSim};
use latchkey_testkit::upstream::Upstream;
use latchkey_testkit::{spawn_app, spawn_app_postgres, spawn_app_with, Answer, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

const ORIGIN: &str = "http://127.0.0.1:9";

async fn session(app: &TestApp, key: &str, body: Value) -> Answer {
    app.call_as(
        key,
        Method::POST,
        "/v1/workspaces/acme/connect-sessions",
        Some(body),
    )
    .await
}

fn basic(apps: &[&str]) -> Value {
    json!({
        "end_user": {"id": "u-1", "email": "jane@customer.example", "display_name": "Jane Doe"},
        "organization": {"id": "org-9", "display_name": "Customer Co"},
        "allowed_apps": apps,
        "allowed_origins": [ORIGIN],
    })
}

/// Sends a request with the session token the way a browser page would (or any script).
async fn as_token(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Answer {
    app.call_as(token, method, path, body).await
}

/// Moves a session's expiry into the past, as time would.
async fn expire(app: &TestApp, id: &str) {
    let url = &app.config.database_url;
    let sql = "UPDATE connect_sessions SET expires_at = 0 WHERE id = $1";
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url)
            .await
            .expect("open the test database");
        sqlx::query(sql)
            .bind(id)
            .execute(&pool)
            .await
            .expect("expire the session");
        pool.close().await;
    } else {
        let pool = sqlx::SqlitePool::connect(url)
            .await
            .expect("open the test database");
        sqlx::query(sql)
            .bind(id)
            .execute(&pool)
            .await
            .expect("expire the session");
        pool.close().await;
    }
}

#[tokio::test]
async fn the_session_token_does_exactly_what_it_is_for() {
    token_powers(spawn_app().await).await;
}

#[tokio::test]
async fn the_session_token_does_exactly_what_it_is_for_on_postgres() {
    if let Some(app) = spawn_app_postgres().await {
        token_powers(app).await;
    }
}

async fn token_powers(app: TestApp) {
    let up = Upstream::start("key-right-123", "u", "p").await;
    app.workspace("acme").await;
    app.workspace("other").await;
    let writer = app.workspace_key("acme", &["write", "read"]).await;
    let reader = app.workspace_key("acme", &["read"]).await;

    // Something of the operator's that the end user must never reach.
    let existing = app
        .post(
            "/v1/workspaces/acme/connections",
            json!({"name": "ops-crm", "app": "generic-api-key",
                   "settings": {"base_url": up.url}, "credentials": {"api_key": "key-right-123"}}),
        )
        .await;
    assert_eq!(existing.status, 201, "{}", existing.text);
    let existing_id = existing.body["id"].as_str().unwrap().to_string();
    let other_conn = app
        .post(
            "/v1/workspaces/other/connections",
            json!({"name": "theirs", "app": "generic-api-key",
                   "settings": {"base_url": up.url}, "credentials": {"api_key": "key-right-123"}}),
        )
        .await;
    assert_eq!(other_conn.status, 201, "{}", other_conn.text);

    // A read-only key cannot start a session; a write key can.
    assert_eq!(
        session(&app, &reader, basic(&["generic-api-key"]))
            .await
            .status,
        403
    );
    let created = session(&app, &writer, basic(&["generic-api-key", "salesforce"])).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let token = created.body["token"].as_str().unwrap().to_string();
    let sid = created.body["id"].as_str().unwrap().to_string();
    assert!(token.starts_with("lkcs_"), "{token}");
    assert!(sid.starts_with("cs_"));
    assert_eq!(
        created.body["connect_url"].as_str().unwrap(),
        format!("{}/connect/{token}", app.url)
    );
    let shown = app
        .get(&format!("/v1/workspaces/acme/connect-sessions/{sid}"))
        .await;
    assert_eq!(shown.status, 200, "{}", shown.text);
    assert_eq!(shown.body["status"], "open");
    assert_eq!(shown.body["end_user"]["id"], "u-1");
    assert!(
        !shown.text.contains(&token),
        "the token is answered once only"
    );
    let listed = app.get("/v1/workspaces/acme/connect-sessions").await;
    assert!(!listed.text.contains(&token[5..]), "{}", listed.text);

    // The token is not an API key: every other endpoint refuses it.
    let w = |p: &str| format!("/v1/workspaces/acme{p}");
    let refused: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/v1/workspaces".into(), None),
        (Method::GET, w(""), None),
        (
            Method::PATCH,
            w(""),
            Some(json!({"branding": {"display_name": "x"}})),
        ),
        (Method::GET, "/v1/apps".into(), None),
        (Method::GET, w("/apps"), None),
        (Method::GET, w("/connections"), None),
        (Method::GET, w("/connections?end_user_id=u-1"), None),
        (
            Method::POST,
            w("/connections"),
            Some(json!({"name": "x", "app": "generic-api-key"})),
        ),
        (Method::GET, w("/connections/ops-crm"), None),
        (
            Method::GET,
            w(&format!("/connections/{existing_id}/credentials")),
            None,
        ),
        (Method::GET, w("/connections/ops-crm/token"), None),
        (Method::POST, w("/connections/ops-crm/token/refresh"), None),
        (Method::GET, w("/connections/ops-crm/proxy/anything"), None),
        (Method::POST, w("/connections/ops-crm/verify"), None),
        (Method::POST, w("/connections/ops-crm/authorize"), None),
        (Method::DELETE, w("/connections/ops-crm"), None),
        (Method::GET, w("/flows"), None),
        (Method::GET, w("/events"), None),
        (Method::GET, w("/connect-sessions"), None),
        (
            Method::POST,
            w("/connect-sessions"),
            Some(basic(&["generic-api-key"])),
        ),
        (Method::DELETE, w(&format!("/connect-sessions/{sid}")), None),
        (Method::GET, "/v1/workspaces/other/connections".into(), None),
        (
            Method::GET,
            "/v1/workspaces/other/connections/theirs/credentials".into(),
            None,
        ),
        (Method::GET, "/v1/api-keys".into(), None),
        (
            Method::POST,
            "/v1/api-keys".into(),
            Some(json!({"name": "x", "workspace": "acme", "scopes": ["secrets"]})),
        ),
        (Method::GET, "/v1/admin/master-key".into(), None),
        // Its own endpoints, pointed at things that are not its own.
        (
            Method::GET,
            format!("/v1/connect/connections/{existing_id}"),
            None,
        ),
        (Method::GET, "/v1/connect/connections/ops-crm".into(), None),
        (
            Method::PATCH,
            format!("/v1/connect/connections/{existing_id}"),
            Some(json!({"credentials": {"api_key": "x"}})),
        ),
        (
            Method::POST,
            format!("/v1/connect/connections/{existing_id}/authorize"),
            None,
        ),
        (
            Method::DELETE,
            format!("/v1/connect/connections/{existing_id}"),
            None,
        ),
        (
            Method::POST,
            "/v1/connect/connections".into(),
            Some(json!({"app": "postgres", "credentials": {}})),
        ),
        (
            Method::POST,
            "/v1/connect/connections".into(),
            Some(json!({"app": "generic-api-key", "environment": "staging",
            "settings": {"base_url": up.url}, "credentials": {"api_key": "key-right-123"}})),
        ),
        (
            Method::POST,
            "/v1/connect/connections".into(),
            Some(json!({"app": "generic-api-key",
            "settings": {"base_url": up.url, "borrow_concurrency_from": "ops-crm"}, "credentials": {"api_key": "key-right-123"}})),
        ),
    ];
    for (method, path, body) in &refused {
        let a = as_token(&app, &token, method.clone(), path, body.clone()).await;
        assert!(
            [401, 403, 404].contains(&a.status),
            "{method} {path} answered {} to a session token: {}",
            a.status,
            a.text
        );
        assert!(!a.text.contains("key-right-123"), "{path}: {}", a.text);
    }
    // …and none of those left anything behind.
    let all = app.get("/v1/workspaces/acme/connections").await;
    assert_eq!(
        all.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        all.text
    );

    // What it may do: see its session and its allowed applications only.
    let info = as_token(&app, &token, Method::GET, "/v1/connect/session", None).await;
    assert_eq!(info.status, 200, "{}", info.text);
    assert_eq!(info.body["display_name"], "acme");
    assert_eq!(info.body["allowed_origins"], json!([ORIGIN]));
    let apps = as_token(&app, &token, Method::GET, "/v1/connect/apps", None).await;
    let ids: Vec<&str> = apps.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["generic-api-key", "salesforce"]);

    // A browser page of another origin may not use the token.
    let foreign = app
        .client
        .get(format!("{}/v1/connect/session", app.url))
        .bearer_auth(&token)
        .header("Origin", "http://127.0.0.1:1")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);

    // A failed check stores nothing; the right credential makes one connection for the end user.
    let wrong = as_token(&app, &token, Method::POST, "/v1/connect/connections", Some(json!({
        "app": "generic-api-key", "settings": {"base_url": up.url}, "credentials": {"api_key": "key-wrong"}}))).await;
    assert_eq!(wrong.status, 422, "{}", wrong.text);
    assert!(wrong.body["hint"].is_string(), "{}", wrong.text);
    let made = as_token(
        &app,
        &token,
        Method::POST,
        "/v1/connect/connections",
        Some(json!({
        "app": "generic-api-key", "settings": {"base_url": up.url, "concurrency_level": 25},
        "credentials": {"api_key": "key-right-123"}})),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.text);
    assert_eq!(made.body["status"], "active");
    assert_eq!(made.body["end_user"]["id"], "u-1");
    assert_eq!(made.body["organization"]["id"], "org-9");
    assert_eq!(
        made.body["name"], "REST API (API key) (Jane Doe)",
        "{}",
        made.text
    );
    assert_eq!(
        made.body["settings"]["concurrency_level"], 5,
        "the pool is the platform's to set"
    );
    let conn_id = made.body["id"].as_str().unwrap().to_string();

    // Spent: nothing more, not even a second connection.
    let again = as_token(&app, &token, Method::POST, "/v1/connect/connections", Some(json!({
        "app": "generic-api-key", "settings": {"base_url": up.url}, "credentials": {"api_key": "key-right-123"}}))).await;
    assert_eq!(again.status, 401, "{}", again.text);
    assert_eq!(again.body["error"], "connect_session_spent");
    for path in [
        "/v1/connect/session",
        "/v1/connect/apps",
        &format!("/v1/connect/connections/{conn_id}"),
    ] {
        assert_eq!(
            as_token(&app, &token, Method::GET, path, None).await.status,
            401,
            "{path}"
        );
    }
    let page = app
        .client
        .get(format!("{}/connect/{token}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 410);
    let text = page.text().await.unwrap();
    assert!(text.contains("already used"), "{text}");
    assert!(
        !text.contains("connect.js") && !text.contains("<form") && !text.contains("<button"),
        "{text}"
    );

    let done = app
        .get(&format!("/v1/workspaces/acme/connect-sessions/{sid}"))
        .await;
    assert_eq!(done.body["status"], "completed");
    assert_eq!(done.body["connection_id"], conn_id.as_str());
    // Cancelling a completed session keeps its connection.
    assert_eq!(
        app.delete(&format!("/v1/workspaces/acme/connect-sessions/{sid}"))
            .await
            .status,
        409
    );

    // The connection is the end user's, listed by end user, shown in its answer.
    let mine = app
        .get("/v1/workspaces/acme/connections?end_user_id=u-1")
        .await;
    let names: Vec<&str> = mine.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(names, [conn_id.as_str()], "{}", mine.text);
    let nobody = app
        .get("/v1/workspaces/acme/connections?end_user_id=u-2")
        .await;
    assert_eq!(nobody.body["items"].as_array().unwrap().len(), 0);

    // The events carry the end user and organization, and never the secret.
    let events = app.get("/v1/workspaces/acme/events").await;
    assert!(!events.text.contains("key-right-123"));
    let find = |kind: &str| {
        events.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == kind && e["target_id"] == conn_id.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} event: {}", events.text))
    };
    for kind in ["connection.created", "connect_session.completed"] {
        let e = find(kind);
        assert_eq!(e["details"]["end_user"]["id"], "u-1", "{e}");
        assert_eq!(e["details"]["organization"]["id"], "org-9", "{e}");
        assert_eq!(e["details"]["connect_session_id"], sid.as_str(), "{e}");
    }
}

#[tokio::test]
async fn bad_input_expiry_cancel_forgery_and_branding() {
    bad_input(spawn_app().await).await;
}

#[tokio::test]
async fn bad_input_expiry_cancel_forgery_and_branding_on_postgres() {
    if let Some(app) = spawn_app_postgres().await {
        bad_input(app).await;
    }
}

async fn bad_input(app: TestApp) {
    app.workspace("acme").await;
    let key = app.admin_key.clone();

    // Bad bodies: 422 naming the field.
    let mut bad: Vec<(Value, &str)> = vec![
        (
            json!({"end_user": {"id": "u"}, "allowed_apps": ["no-such-app"]}),
            "allowed_apps",
        ),
        (
            json!({"end_user": {"id": "u"}, "allowed_apps": []}),
            "allowed_apps",
        ),
        (
            json!({"end_user": {"id": ""}, "allowed_apps": ["postgres"]}),
            "end_user.id",
        ),
        (
            json!({"end_user": {"id": "u"}, "allowed_apps": ["postgres"], "expires_in_seconds": 5}),
            "expires_in_seconds",
        ),
        (
            json!({"end_user": {"id": "u"}, "allowed_apps": ["postgres"], "expires_in_seconds": 10_000_000}),
            "expires_in_seconds",
        ),
        (
            json!({"end_user": {"id": "u"}, "allowed_apps": ["postgres"], "connection": "nope"}),
            "connection",
        ),
    ];
    for origin in [
        "*",
        "https://app.example.com/path",
        "app.example.com",
        "https://*.example.com",
        "http://app.example.com",
        "javascript:alert(1)",
        "https://user@app.example.com",
    ] {
        bad.push((json!({"end_user": {"id": "u"}, "allowed_apps": ["postgres"], "allowed_origins": [origin]}), "allowed_origins"));
    }
    for (body, field) in bad {
        let a = session(&app, &key, body.clone()).await;
        assert_eq!(a.status, 422, "{body}: {}", a.text);
        assert_eq!(a.body["details"]["field"], field, "{body}: {}", a.text);
        assert!(
            a.body["message"].is_string() && a.body.get("hint").is_some(),
            "{}",
            a.text
        );
    }
    let none = app.get("/v1/workspaces/acme/connect-sessions").await;
    assert_eq!(
        none.body["items"].as_array().unwrap().len(),
        0,
        "nothing half-written"
    );

    // Forged tokens: 401 on the API, a page that says so and offers nothing.
    let forged = "lkcs_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let a = as_token(&app, forged, Method::GET, "/v1/connect/session", None).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.body["error"], "connect_session_unknown");
    for path in [
        format!("/connect/{forged}"),
        "/connect/not-a-token".into(),
        "/connect/%3Cscript%3E".into(),
    ] {
        let page = app
            .client
            .get(format!("{}{path}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 404, "{path}");
        let csp = page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        let text = page.text().await.unwrap();
        assert!(text.contains("not valid"), "{text}");
        assert!(
            !text.contains("<script src=\"/connect/assets/connect.js\"")
                && !text.contains("<button"),
            "{text}"
        );
    }

    // An open session's page: framed only by its allowed origins.
    let open = session(&app, &key, basic(&["generic-api-key"])).await;
    let token = open.body["token"].as_str().unwrap().to_string();
    let page = app
        .client
        .get(open.body["connect_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains(&format!("frame-ancestors {ORIGIN};")), "{csp}");
    assert!(!csp.contains('*'), "{csp}");
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    assert!(page.text().await.unwrap().contains("/ui/assets/pane.js"));

    // Cancelled: the link stops at once.
    let sid = open.body["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/v1/workspaces/acme/connect-sessions/{sid}"))
            .await
            .status,
        204
    );
    let a = as_token(&app, &token, Method::GET, "/v1/connect/apps", None).await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (401, Some("connect_session_cancelled"))
    );
    let page = app
        .client
        .get(format!("{}/connect/{token}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 410);
    assert!(page.text().await.unwrap().contains("cancelled"));

    // Expired: the same.
    let open = session(&app, &key, basic(&["generic-api-key"])).await;
    let token = open.body["token"].as_str().unwrap().to_string();
    expire(&app, open.body["id"].as_str().unwrap()).await;
    let a = as_token(
        &app,
        &token,
        Method::POST,
        "/v1/connect/connections",
        Some(json!({"app": "generic-api-key"})),
    )
    .await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (401, Some("connect_session_expired"))
    );
    let page = app
        .client
        .get(format!("{}/connect/{token}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 410);
    assert!(page.text().await.unwrap().contains("expired"));
    let shown = app
        .get(&format!(
            "/v1/workspaces/acme/connect-sessions/{}",
            open.body["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(shown.body["status"], "expired");

    // The SDK is served as a script any page can load.
    let sdk = app
        .client
        .get(format!("{}/connect/sdk.js", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(sdk.status(), 200);
    assert!(sdk.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let sdk = sdk.text().await.unwrap();
    assert!(sdk.contains("Latchkey") && sdk.contains("ev.origin !== origin"));

    // Branding: checked, stored, shown to the page (a remote logo is not handed to it).
    for b in [
        json!({"primary_color": "blue"}),
        json!({"primary_color": "#12345"}),
        json!({"logo_url": "http://logo.example/x.png"}),
        json!({"logo_url": "data:text/html;base64,PGI+"}),
        json!({"display_name": "x".repeat(101)}),
    ] {
        let a = app
            .patch("/v1/workspaces/acme", json!({"branding": b}))
            .await;
        assert_eq!(a.status, 422, "{b}: {}", a.text);
    }
    let a = app
        .patch(
            "/v1/workspaces/acme",
            json!({"branding": {"display_name": "Acme Cloud",
        "primary_color": "#0A66C2", "logo_url": "https://cdn.acme.example/logo.png"}}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["branding"]["primary_color"], "#0a66c2");
    assert_eq!(a.body["name"], "acme", "the name is unchanged");
    let open = session(&app, &key, basic(&["generic-api-key"])).await;
    let token = open.body["token"].as_str().unwrap();
    let info = as_token(&app, token, Method::GET, "/v1/connect/session", None).await;
    assert_eq!(info.body["display_name"], "Acme Cloud");
    assert_eq!(info.body["primary_color"], "#0a66c2");
    assert!(info.body["logo_data_url"].is_null(), "{}", info.text);
    let logo = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
    app.patch(
        "/v1/workspaces/acme",
        json!({"branding": {"logo_url": logo}}),
    )
    .await;
    let info = as_token(&app, token, Method::GET, "/v1/connect/session", None).await;
    assert_eq!(info.body["logo_data_url"], logo);
    assert!(
        info.body["primary_color"].is_null(),
        "a PATCH replaces the whole branding"
    );
    let cleared = app
        .patch("/v1/workspaces/acme", json!({"branding": null}))
        .await;
    assert!(cleared.body["branding"].is_null(), "{}", cleared.text);
}

#[tokio::test]
async fn reconnect_keeps_the_id_and_the_flows_that_use_it() {
    let app = spawn_app().await;
    let up = Upstream::start("key-new-456", "u", "p").await;
    app.workspace("acme").await;
    let proxy_key = app.workspace_key("acme", &["proxy"]).await;
    // A connection whose key the application no longer accepts, used by an active flow.
    let c = app
        .post("/v1/workspaces/acme/connections", json!({"name": "crm", "app": "generic-api-key",
            "settings": {"base_url": up.url}, "credentials": {"api_key": "key-old-123"}, "verify": false}))
        .await;
    assert_eq!(c.status, 201, "{}", c.text);
    let id = c.body["id"].as_str().unwrap().to_string();
    let f = app
        .post(
            "/v1/workspaces/acme/flows",
            json!({"name": "sync", "active": true, "connections": ["crm"]}),
        )
        .await;
    assert_eq!(f.status, 201, "{}", f.text);
    let proxied = app
        .call_as(
            &proxy_key,
            Method::GET,
            "/v1/workspaces/acme/connections/crm/proxy/things",
            None,
        )
        .await;
    assert_eq!(
        proxied.status, 401,
        "the old key is refused upstream: {}",
        proxied.text
    );

    let s = session(
        &app,
        &app.admin_key.clone(),
        json!({"end_user": {"id": "u-7"}, "connection": "crm",
        "allowed_origins": [ORIGIN]}),
    )
    .await;
    assert_eq!(s.status, 201, "{}", s.text);
    let token = s.body["token"].as_str().unwrap().to_string();
    let shown = app
        .get(&format!(
            "/v1/workspaces/acme/connect-sessions/{}",
            s.body["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(shown.body["allowed_apps"], json!(["generic-api-key"]));
    assert_eq!(shown.body["reconnect_connection_id"], id.as_str());

    // A reconnect session creates nothing new, and a wrong key changes nothing.
    let create = as_token(
        &app,
        &token,
        Method::POST,
        "/v1/connect/connections",
        Some(json!({"app": "generic-api-key",
        "settings": {"base_url": up.url}, "credentials": {"api_key": "key-new-456"}})),
    )
    .await;
    assert_eq!(create.status, 403, "{}", create.text);
    let info = as_token(&app, &token, Method::GET, "/v1/connect/session", None).await;
    assert_eq!(info.body["reconnect"]["id"], id.as_str());
    let wrong = as_token(
        &app,
        &token,
        Method::PATCH,
        &format!("/v1/connect/connections/{id}"),
        Some(json!({"credentials": {"api_key": "key-still-wrong"}})),
    )
    .await;
    assert_eq!(wrong.status, 422, "{}", wrong.text);
    let renamed = as_token(
        &app,
        &token,
        Method::PATCH,
        &format!("/v1/connect/connections/{id}"),
        Some(json!({"name": "mine-now", "credentials": {"api_key": "key-new-456"}})),
    )
    .await;
    assert_eq!(renamed.status, 403, "{}", renamed.text);

    let fixed = as_token(
        &app,
        &token,
        Method::PATCH,
        &format!("/v1/connect/connections/{id}"),
        Some(json!({"credentials": {"api_key": "key-new-456"}})),
    )
    .await;
    assert_eq!(fixed.status, 200, "{}", fixed.text);
    assert_eq!(fixed.body["id"], id.as_str());
    assert_eq!(fixed.body["status"], "active");
    assert_eq!(
        fixed.body["end_user"]["id"], "u-7",
        "an unowned connection now has its end user"
    );

    // Same id, same flow, working again.
    let flow = app.get("/v1/workspaces/acme/flows/sync").await;
    assert!(flow.text.contains(&id), "{}", flow.text);
    let proxied = app
        .call_as(
            &proxy_key,
            Method::GET,
            "/v1/workspaces/acme/connections/crm/proxy/things",
            None,
        )
        .await;
    assert_eq!(proxied.status, 200, "{}", proxied.text);
    assert_eq!(
        as_token(&app, &token, Method::GET, "/v1/connect/session", None)
            .await
            .status,
        401,
        "spent"
    );

    // Another end user cannot be sent to reconnect it.
    let stolen = session(
        &app,
        &app.admin_key.clone(),
        json!({"end_user": {"id": "u-8"}, "connection": id}),
    )
    .await;
    assert_eq!(stolen.status, 422, "{}", stolen.text);
    assert_eq!(stolen.body["details"]["field"], "connection");
}

#[tokio::test]
async fn salesforce_reconnect_through_the_session_reauthorizes_in_place() {
    let sim = SalesforceSim::start().await;
    let rewrites = latchkey_core::outbound::Rewrites::parse(&sim.rewrites()).unwrap();
    let app = spawn_app_with(|c| c.outbound_rewrites = rewrites).await;
    sim.add_callback_url(
        salesforce::DEFAULT_CONSUMER_KEY,
        &format!("{}/oauth/callback", app.url),
    );
    app.workspace("acme").await;
    let put = app.call(Method::PUT, "/v1/workspaces/acme/apps/salesforce/oauth-client", Some(json!({
        "client_id": salesforce::DEFAULT_CONSUMER_KEY, "client_secret": salesforce::DEFAULT_CONSUMER_SECRET}))).await;
    assert_eq!(put.status, 200, "{}", put.text);

    // A new Salesforce connection made through a session: pending, then authorized by the user.
    let s = session(&app, &app.admin_key.clone(), basic(&["salesforce"])).await;
    let token = s.body["token"].as_str().unwrap().to_string();
    let info = as_token(&app, &token, Method::GET, "/v1/connect/session", None).await;
    assert_eq!(info.body["apps_with_oauth_client"], json!(["salesforce"]));
    let body = json!({"app": "salesforce", "auth_mode": "oauth2_code", "settings": {"account_type": "production"}});
    // Cancel on the page discards the pending connection; the session may then make another.
    let first = as_token(
        &app,
        &token,
        Method::POST,
        "/v1/connect/connections",
        Some(body.clone()),
    )
    .await;
    assert_eq!(first.status, 201, "{}", first.text);
    let second = as_token(
        &app,
        &token,
        Method::POST,
        "/v1/connect/connections",
        Some(body.clone()),
    )
    .await;
    assert_eq!(
        second.status, 403,
        "one connection a session: {}",
        second.text
    );
    let first_id = first.body["id"].as_str().unwrap();
    let gone = as_token(
        &app,
        &token,
        Method::DELETE,
        &format!("/v1/connect/connections/{first_id}"),
        None,
    )
    .await;
    assert_eq!(gone.status, 204, "{}", gone.text);
    let made = as_token(
        &app,
        &token,
        Method::POST,
        "/v1/connect/connections",
        Some(body),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.text);
    assert_eq!(made.body["status"], "pending_authorization");
    let id = made.body["id"].as_str().unwrap().to_string();
    let url = made.body["authorize_url"].as_str().unwrap();
    let back = sim
        .login_via_browser(
            url,
            salesforce::DEFAULT_USERNAME,
            salesforce::DEFAULT_PASSWORD,
        )
        .await
        .unwrap();
    let cb = app.client.get(&back).send().await.unwrap();
    assert_eq!(cb.status(), 200, "{}", cb.text().await.unwrap());
    let conn = app
        .get(&format!("/v1/workspaces/acme/connections/{id}"))
        .await;
    assert_eq!(conn.body["status"], "active", "{}", conn.text);
    assert_eq!(conn.body["end_user"]["id"], "u-1");
    assert_eq!(
        as_token(&app, &token, Method::GET, "/v1/connect/session", None)
            .await
            .status,
        401,
        "spent by success"
    );

    // A reconnect session authorizes the same connection again, in place.
    let flow = app
        .post(
            "/v1/workspaces/acme/flows",
            json!({"name": "sf-sync", "active": true, "connections": [id]}),
        )
        .await;
    assert_eq!(flow.status, 201, "{}", flow.text);
    let r = session(
        &app,
        &app.admin_key.clone(),
        json!({"end_user": {"id": "u-1"}, "connection": id, "allowed_origins": [ORIGIN]}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let rtoken = r.body["token"].as_str().unwrap().to_string();
    let auth = as_token(
        &app,
        &rtoken,
        Method::POST,
        &format!("/v1/connect/connections/{id}/authorize"),
        None,
    )
    .await;
    assert_eq!(auth.status, 200, "{}", auth.text);
    let back = sim
        .login_via_browser(
            auth.body["authorize_url"].as_str().unwrap(),
            salesforce::DEFAULT_USERNAME,
            salesforce::DEFAULT_PASSWORD,
        )
        .await
        .unwrap();
    assert_eq!(app.client.get(&back).send().await.unwrap().status(), 200);
    let conn = app
        .get(&format!("/v1/workspaces/acme/connections/{id}"))
        .await;
    assert_eq!(conn.body["status"], "active");
    assert_eq!(conn.body["id"], id.as_str());
    let tok = app
        .get(&format!("/v1/workspaces/acme/connections/{id}/token"))
        .await;
    assert_eq!(
        tok.status, 200,
        "the flow's connection gives tokens: {}",
        tok.text
    );
    let shown = app
        .get(&format!(
            "/v1/workspaces/acme/connect-sessions/{}",
            r.body["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(shown.body["status"], "completed");
    let events = app.get("/v1/workspaces/acme/events").await;
    let completed = events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "connect_session.completed")
        .count();
    assert_eq!(completed, 2, "{}", events.text);
}
