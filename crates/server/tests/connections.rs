//! Connections, flows and workspaces through the HTTP API, on SQLite and (when configured) on
//! PostgreSQL: the same scenarios a user clicks through in the seeds.

use latchkey_testkit::upstream::Upstream;
use latchkey_testkit::{spawn_app, spawn_app_postgres, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

fn api_key_body(name: &str, up: &Upstream, key: &str) -> Value {
    json!({
        "name": name,
        "app": "generic-api-key",
        "environment": "production",
        "auth_mode": "api_key",
        "settings": {"base_url": up.url, "verify_path": "/me"},
        "credentials": {"api_key": key}
    })
}

async fn lifecycle(app: &TestApp) {
    let up = Upstream::start("key-right-123", "u", "p").await;
    let ws = app.workspace("acme").await;

    // R9: verification before saving.
    let ok = app
        .post(
            &format!("/v1/workspaces/{ws}/connections"),
            api_key_body("crm", &up, "key-right-123"),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    assert_eq!(ok.body["status"], "active");
    assert_eq!(ok.body["settings"]["concurrency_level"], 5);
    assert!(ok.body["id"].as_str().unwrap().starts_with("conn_"));
    assert!(
        !ok.text.contains("key-right-123"),
        "a secret leaked into the create answer"
    );
    assert_eq!(up.last_headers().unwrap()["x-api-key"], "key-right-123");

    let bad = app
        .post(
            &format!("/v1/workspaces/{ws}/connections"),
            api_key_body("crm-bad", &up, "key-wrong-456"),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert_eq!(bad.body["error"], "verification_failed");
    assert!(
        bad.body["message"]
            .as_str()
            .unwrap()
            .contains("The API key is not valid"),
        "{}",
        bad.text
    );
    assert!(bad.body["hint"]
        .as_str()
        .unwrap()
        .contains("refused the credential"));
    assert!(!bad.text.contains("key-wrong-456"));
    let missing = app
        .get(&format!("/v1/workspaces/{ws}/connections/crm-bad"))
        .await;
    assert_eq!(
        missing.status, 404,
        "a failed verification must store nothing"
    );

    // Saved without verification on purpose.
    let mut unverified = api_key_body("crm-later", &up, "whatever-999");
    unverified["verify"] = json!(false);
    let a = app
        .post(&format!("/v1/workspaces/{ws}/connections"), unverified)
        .await;
    assert_eq!(a.status, 201);
    assert_eq!(a.body["status"], "unverified");

    // Names are unique per workspace.
    let dup = app
        .post(
            &format!("/v1/workspaces/{ws}/connections"),
            api_key_body("crm", &up, "key-right-123"),
        )
        .await;
    assert_eq!(dup.status, 409);
    assert_eq!(dup.body["error"], "duplicate");

    // By id or by name.
    let id = ok.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        app.get(&format!("/v1/workspaces/{ws}/connections/{id}"))
            .await
            .body["name"],
        "crm"
    );
    assert_eq!(
        app.get(&format!("/v1/workspaces/{ws}/connections/crm"))
            .await
            .body["id"],
        id.as_str()
    );

    // Edit: a wrong new key is refused and the stored one still works.
    let e = app
        .patch(
            &format!("/v1/workspaces/{ws}/connections/crm"),
            json!({"credentials": {"api_key": "nope-nope"}}),
        )
        .await;
    assert_eq!(e.status, 422);
    let creds = app
        .get(&format!("/v1/workspaces/{ws}/connections/crm/credentials"))
        .await;
    assert_eq!(creds.status, 200);
    assert_eq!(creds.body["credentials"]["api_key"], "key-right-123");
    let e = app
        .patch(
            &format!("/v1/workspaces/{ws}/connections/crm"),
            json!({"name": "CRM (prod)", "settings": {"concurrency_level": 3}}),
        )
        .await;
    assert_eq!(e.status, 200, "{}", e.text);
    assert_eq!(e.body["name"], "CRM (prod)");
    assert_eq!(e.body["settings"]["concurrency_level"], 3);
    let by_new_name = app
        .get(&format!("/v1/workspaces/{ws}/connections/CRM%20(prod)"))
        .await;
    assert_eq!(by_new_name.status, 200, "{}", by_new_name.text);

    // Verify records its outcome in the status.
    let v = app
        .post(
            &format!("/v1/workspaces/{ws}/connections/crm-later/verify"),
            json!({}),
        )
        .await;
    assert_eq!(v.status, 200);
    assert_eq!(v.body["ok"], false);
    assert_eq!(v.body["connection"]["status"], "failing");
    assert!(v.body["connection"]["status_reason"]
        .as_str()
        .unwrap()
        .contains("401"));
    assert!(v.body["connection"]["hint"].is_string());
    let fixed = app
        .patch(
            &format!("/v1/workspaces/{ws}/connections/crm-later"),
            json!({"credentials": {"api_key": "key-right-123"}}),
        )
        .await;
    assert_eq!(fixed.status, 200);
    assert_eq!(fixed.body["status"], "active");
    assert!(fixed.body["status_reason"].is_null());

    // R10: counts per application.
    let apps = app
        .get(&format!("/v1/workspaces/{ws}/apps?limit=500"))
        .await;
    let count = |id: &str| {
        apps.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .unwrap()["connection_count"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(count("generic-api-key"), 2);
    assert_eq!(count("postgres"), 0);

    // R11: delete refused while an active flow uses it, with the flow named.
    let f = app
        .post(
            &format!("/v1/workspaces/{ws}/flows"),
            json!({"name": "nightly sync", "connections": ["crm-later"]}),
        )
        .await;
    assert_eq!(f.status, 201, "{}", f.text);
    let d = app
        .delete(&format!("/v1/workspaces/{ws}/connections/crm-later"))
        .await;
    assert_eq!(d.status, 409);
    assert_eq!(d.body["error"], "connection_in_use");
    assert!(d.body["message"].as_str().unwrap().contains("nightly sync"));
    assert!(d.body["hint"]
        .as_str()
        .unwrap()
        .contains("delete or update"));
    let off = app
        .patch(
            &format!("/v1/workspaces/{ws}/flows/nightly%20sync"),
            json!({"active": false}),
        )
        .await;
    assert_eq!(off.status, 200);
    assert_eq!(
        app.delete(&format!("/v1/workspaces/{ws}/connections/crm-later"))
            .await
            .status,
        204
    );
    let flow = app
        .get(&format!("/v1/workspaces/{ws}/flows/nightly%20sync"))
        .await;
    assert_eq!(flow.body["connections"].as_array().unwrap().len(), 0);

    // The audit log tells the story, without secrets.
    let ev = app
        .get(&format!("/v1/workspaces/{ws}/events?limit=500"))
        .await;
    let actions: Vec<&str> = ev.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "connection.created",
        "connection.updated",
        "connection.verified",
        "connection.credentials_read",
        "connection.deleted",
        "flow.created",
    ] {
        assert!(actions.contains(&a), "no {a} event in {actions:?}");
    }
    assert!(!ev.text.contains("key-right-123"));
}

#[tokio::test]
async fn connection_lifecycle_on_sqlite() {
    lifecycle(&spawn_app().await).await;
}

#[tokio::test]
async fn connection_lifecycle_on_postgres() {
    let Some(app) = spawn_app_postgres().await else {
        return;
    };
    lifecycle(&app).await;
}

#[tokio::test]
async fn auth_modes_settings_and_credentials_are_checked() {
    let app = spawn_app().await;
    let up = Upstream::start("k", "u", "p").await;
    let ws = app.workspace("acme").await;
    let path = format!("/v1/workspaces/{ws}/connections");

    let mut body = api_key_body("x", &up, "k");
    body["auth_mode"] = json!("database");
    let a = app.post(&path, body).await;
    assert_eq!(a.status, 422);
    assert!(
        a.body["hint"].as_str().unwrap().contains("api_key"),
        "{}",
        a.text
    );

    let pg = app
        .post(&path, json!({"name": "pg", "app": "postgres", "auth_mode": "database", "credentials": {"api_key": "k"}}))
        .await;
    assert_eq!(pg.status, 422);
    assert!(
        pg.body["message"].as_str().unwrap().contains("api_key"),
        "{}",
        pg.text
    );

    let mut body = api_key_body("x", &up, "k");
    body["settings"]["concurency_level"] = json!(3);
    let a = app.post(&path, body).await;
    assert_eq!(a.status, 422);
    assert!(a.body["message"]
        .as_str()
        .unwrap()
        .contains("concurency_level"));

    let mut body = api_key_body("x", &up, "k");
    body["settings"]["concurrency_level"] = json!(26);
    assert_eq!(app.post(&path, body).await.status, 422);

    let a = app.post(&path, json!({"name": "x", "app": "nope"})).await;
    assert_eq!(a.status, 422);
    assert!(a.body["hint"].as_str().unwrap().contains("generic-api-key"));

    let a = app
        .post(&path, json!({"name": "a/b", "app": "generic-api-key"}))
        .await;
    assert_eq!(a.status, 422);

    // Basic auth, and an API key sent as a query parameter.
    let basic = app
        .post(&path, json!({"name": "basic", "app": "generic-basic", "settings": {"base_url": up.url, "verify_path": "/me"},
            "credentials": {"username": "u", "password": "p"}}))
        .await;
    assert_eq!(basic.status, 201, "{}", basic.text);
    assert!(up.last_headers().unwrap()["authorization"]
        .to_str()
        .unwrap()
        .starts_with("Basic "));
    let q = app
        .post(&path, json!({"name": "q", "app": "generic-api-key",
            "settings": {"base_url": up.url, "verify_path": "/me", "api_key_in": "query", "api_key_name": "api_key"},
            "credentials": {"api_key": "k"}}))
        .await;
    assert_eq!(q.status, 201, "{}", q.text);
    assert_eq!(up.last_query().unwrap(), "api_key=k");

    // Borrowing concurrency: the lender must exist, and cannot itself borrow.
    let mut b = api_key_body("borrower", &up, "k");
    b["settings"]["borrow_concurrency_from"] = json!("basic");
    let br = app.post(&path, b).await;
    assert_eq!(br.status, 201, "{}", br.text);
    assert_eq!(
        br.body["settings"]["borrow_concurrency_from"],
        basic.body["id"]
    );
    let mut chain = api_key_body("chain", &up, "k");
    chain["settings"]["borrow_concurrency_from"] = json!("borrower");
    assert_eq!(app.post(&path, chain).await.status, 422);
    let mut ghost = api_key_body("ghost", &up, "k");
    ghost["settings"]["borrow_concurrency_from"] = json!("nobody");
    assert_eq!(app.post(&path, ghost).await.status, 422);
    let d = app.delete(&format!("{path}/basic")).await;
    assert_eq!(d.status, 409);
    assert!(d.body["message"].as_str().unwrap().contains("borrower"));

    // A redirect is reported, never followed.
    let r = app
        .post(&path, json!({"name": "r", "app": "generic-api-key", "settings": {"base_url": up.url, "verify_path": "/redirect"},
            "credentials": {"api_key": "k"}}))
        .await;
    assert_eq!(r.status, 422);
    assert!(r.body["hint"].as_str().unwrap().contains("redirect"));
}

#[tokio::test]
async fn lists_filter_and_paginate() {
    let app = spawn_app().await;
    let up = Upstream::start("k", "u", "p").await;
    let ws = app.workspace("acme").await;
    for i in 0..7 {
        let mut b = api_key_body(&format!("c{i}"), &up, "k");
        if i % 2 == 1 {
            b["environment"] = json!("staging");
        }
        assert_eq!(
            app.post(&format!("/v1/workspaces/{ws}/connections"), b)
                .await
                .status,
            201
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let q = match &cursor {
            Some(c) => format!("?limit=3&cursor={c}"),
            None => "?limit=3".into(),
        };
        let page = app
            .get(&format!("/v1/workspaces/{ws}/connections{q}"))
            .await;
        assert_eq!(page.status, 200);
        for c in page.body["items"].as_array().unwrap() {
            seen.push(c["name"].as_str().unwrap().to_string());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, (0..7).map(|i| format!("c{i}")).collect::<Vec<_>>());
    let staging = app
        .get(&format!(
            "/v1/workspaces/{ws}/connections?environment=staging"
        ))
        .await;
    assert_eq!(staging.body["items"].as_array().unwrap().len(), 3);
    let none = app
        .get(&format!("/v1/workspaces/{ws}/connections?app=postgres"))
        .await;
    assert_eq!(none.body["items"].as_array().unwrap().len(), 0);
    assert_eq!(
        app.get(&format!("/v1/workspaces/{ws}/connections?limit=501"))
            .await
            .status,
        422
    );
    assert_eq!(
        app.get(&format!("/v1/workspaces/{ws}/connections?cursor=%%%"))
            .await
            .status,
        422
    );
    assert_eq!(
        app.get(&format!("/v1/workspaces/{ws}/connections?status=sleepy"))
            .await
            .status,
        422
    );
}

#[tokio::test]
async fn flows_create_connections_inline_all_or_nothing() {
    let app = spawn_app().await;
    let up = Upstream::start("good-key-1", "u", "p").await;
    let ws = app.workspace("acme").await;
    let good = api_key_body("inline-good", &up, "good-key-1");
    let bad = api_key_body("inline-bad", &up, "bad-key-2");
    let f = app
        .post(
            &format!("/v1/workspaces/{ws}/flows"),
            json!({"name": "f1", "connections": [good, bad]}),
        )
        .await;
    assert_eq!(f.status, 422, "{}", f.text);
    assert!(
        f.body["message"]
            .as_str()
            .unwrap()
            .starts_with("connections[1]"),
        "{}",
        f.text
    );
    assert_eq!(
        app.get(&format!("/v1/workspaces/{ws}/connections"))
            .await
            .body["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        app.get(&format!("/v1/workspaces/{ws}/flows/f1"))
            .await
            .status,
        404
    );

    let f = app
        .post(
            &format!("/v1/workspaces/{ws}/flows"),
            json!({"name": "f1",
            "connections": [api_key_body("inline-good", &up, "good-key-1")]}),
        )
        .await;
    assert_eq!(f.status, 201, "{}", f.text);
    assert_eq!(f.body["connections"][0]["name"], "inline-good");
    assert_eq!(f.body["active"], true);
    let mut staged = api_key_body("staged", &up, "good-key-1");
    staged.as_object_mut().unwrap().remove("environment");
    let f2 = app
        .post(
            &format!("/v1/workspaces/{ws}/flows"),
            json!({"name": "f2", "environment": "staging", "connections": [staged]}),
        )
        .await;
    assert_eq!(f2.status, 201, "{}", f2.text);
    let staged = app
        .get(&format!("/v1/workspaces/{ws}/connections/staged"))
        .await;
    assert_eq!(staged.body["environment"], "staging");

    // A flow only uses connections of its own environment.
    let mix = app
        .post(
            &format!("/v1/workspaces/{ws}/flows"),
            json!({"name": "f3", "environment": "staging", "connections": ["inline-good-x"]}),
        )
        .await;
    assert_eq!(mix.status, 422);
    let prod = app
        .post(
            &format!("/v1/workspaces/{ws}/connections"),
            api_key_body("prod-conn", &up, "good-key-1"),
        )
        .await;
    assert_eq!(prod.status, 201);
    let mix = app
        .post(
            &format!("/v1/workspaces/{ws}/flows"),
            json!({"name": "f3", "environment": "staging", "connections": ["prod-conn"]}),
        )
        .await;
    assert_eq!(mix.status, 422);
    assert_eq!(mix.body["error"], "environment_mismatch");
    let e = app
        .patch(
            &format!("/v1/workspaces/{ws}/connections/staged"),
            json!({"environment": "production"}),
        )
        .await;
    assert_eq!(e.status, 409, "{}", e.text);
    assert!(e.body["message"].as_str().unwrap().contains("f2"));

    let list = app.get(&format!("/v1/workspaces/{ws}/flows")).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        app.delete(&format!("/v1/workspaces/{ws}/flows/f2"))
            .await
            .status,
        204
    );
    assert_eq!(
        app.get(&format!("/v1/workspaces/{ws}/flows/f2"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn workspaces_isolate_and_keys_are_scoped() {
    let app = spawn_app().await;
    let up = Upstream::start("k-1", "u", "p").await;
    app.workspace("acme").await;
    app.workspace("globex").await;
    assert_eq!(
        app.post(
            "/v1/workspaces/acme/connections",
            api_key_body("shared-name", &up, "k-1")
        )
        .await
        .status,
        201
    );
    assert_eq!(
        app.post(
            "/v1/workspaces/globex/connections",
            api_key_body("shared-name", &up, "k-1")
        )
        .await
        .status,
        201
    );

    let reader = app.workspace_key("acme", &["read"]).await;
    let list = app
        .call_as(
            &reader,
            Method::GET,
            "/v1/workspaces/acme/connections",
            None,
        )
        .await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    // Another workspace looks like nothing at all: 404, not 403.
    for path in [
        "/v1/workspaces/globex",
        "/v1/workspaces/globex/connections",
        "/v1/workspaces/globex/connections/shared-name",
    ] {
        let a = app.call_as(&reader, Method::GET, path, None).await;
        assert_eq!(a.status, 404, "{path}: {}", a.text);
    }
    let ws_list = app
        .call_as(&reader, Method::GET, "/v1/workspaces", None)
        .await;
    assert_eq!(ws_list.body["items"].as_array().unwrap().len(), 1);
    // Scopes.
    let c = app
        .call_as(
            &reader,
            Method::GET,
            "/v1/workspaces/acme/connections/shared-name/credentials",
            None,
        )
        .await;
    assert_eq!(c.status, 403);
    assert!(c.body["message"].as_str().unwrap().contains("secrets"));
    let w = app
        .call_as(
            &reader,
            Method::POST,
            "/v1/workspaces/acme/connections",
            Some(api_key_body("n", &up, "k-1")),
        )
        .await;
    assert_eq!(w.status, 403);
    assert_eq!(
        app.call_as(
            &reader,
            Method::POST,
            "/v1/workspaces",
            Some(json!({"slug": "x"}))
        )
        .await
        .status,
        403
    );
    assert_eq!(
        app.call_as(&reader, Method::GET, "/v1/api-keys", None)
            .await
            .status,
        403
    );
    let secrets = app.workspace_key("acme", &["secrets"]).await;
    let c = app
        .call_as(
            &secrets,
            Method::GET,
            "/v1/workspaces/acme/connections/shared-name/credentials",
            None,
        )
        .await;
    assert_eq!(c.status, 200);
    assert_eq!(c.body["credentials"]["api_key"], "k-1");

    // Keys are listed without the key, and a revoked key stops working at once.
    let keys = app.get("/v1/api-keys?workspace=acme").await;
    assert_eq!(keys.body["items"].as_array().unwrap().len(), 2);
    assert!(!keys.text.contains(&reader) && !keys.text.contains(&reader[10..]));
    let id = keys.body["items"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(app.delete(&format!("/v1/api-keys/{id}")).await.status, 204);
    let a = app
        .call_as(&reader, Method::GET, "/v1/workspaces/acme", None)
        .await;
    assert_eq!(a.status, 401);
    assert_eq!(a.body["error"], "unauthorized");

    // Deleting a non-empty workspace needs force.
    let d = app.delete("/v1/workspaces/globex").await;
    assert_eq!(d.status, 409);
    assert_eq!(
        app.delete("/v1/workspaces/globex?force=true").await.status,
        204
    );
    assert_eq!(app.get("/v1/workspaces/globex").await.status, 404);
}
