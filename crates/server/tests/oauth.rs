//! OAuth 2.0 connections against the testkit's Salesforce simulator, over real HTTP on
//! loopback: Save & authorize through the login form and the callback, the token store read by
//! reference, refresh exactly once under a storm (one instance on SQLite, three on PostgreSQL),
//! rotation, revocation, client credentials, JWT bearer and the five-approvals limit.

use latchkey_core::outbound::Rewrites;
use latchkey_testkit::salesforce::{self, SalesforceSim};
use latchkey_testkit::{spawn_app_postgres, spawn_app_with, start_peer, TestApp};
use serde_json::{json, Value};
use std::time::Duration;

async fn app_for(sim: &SalesforceSim) -> TestApp {
    let rewrites = Rewrites::parse(&sim.rewrites()).unwrap();
    let app = spawn_app_with(|c| c.outbound_rewrites = rewrites).await;
    prepare(&app, sim).await;
    app
}

async fn prepare(app: &TestApp, sim: &SalesforceSim) {
    sim.add_callback_url(
        salesforce::DEFAULT_CONSUMER_KEY,
        &format!("{}/oauth/callback", app.url),
    );
    app.workspace("acme").await;
    let c = app
        .call(reqwest::Method::PUT, "/v1/workspaces/acme/apps/salesforce/oauth-client",
            Some(json!({"client_id": salesforce::DEFAULT_CONSUMER_KEY, "client_secret": salesforce::DEFAULT_CONSUMER_SECRET})))
        .await;
    assert_eq!(c.status, 200, "{}", c.text);
    assert_eq!(c.body["has_client_secret"], true);
    assert!(!c.text.contains(salesforce::DEFAULT_CONSUMER_SECRET));
}

/// Creates an `oauth2_code` connection and plays the browser through login and callback.
async fn authorize(app: &TestApp, sim: &SalesforceSim, name: &str, extra: Value) -> Value {
    let mut body = json!({"name": name, "app": "salesforce", "auth_mode": "oauth2_code", "settings": {"account_type": "production"}});
    if let Value::Object(m) = extra {
        for (k, v) in m {
            body[k] = v;
        }
    }
    let created = app.post("/v1/workspaces/acme/connections", body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["status"], "pending_authorization");
    let url = created.body["authorize_url"].as_str().unwrap().to_string();
    let location = sim
        .login_via_browser(
            &url,
            salesforce::DEFAULT_USERNAME,
            salesforce::DEFAULT_PASSWORD,
        )
        .await
        .unwrap();
    let page = app.client.get(&location).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("is authorized"), "{html}");
    assert!(html.contains("window.close"), "the page must close itself");
    created.body
}

async fn expire_stored_token(app: &TestApp, name: &str) {
    let sql = if app.config.database_url.starts_with("sqlite") {
        "UPDATE connections SET token_meta = json_set(token_meta, '$.expires_at', '2000-01-01T00:00:00Z'), version = version + 1 WHERE name = $1"
    } else {
        "UPDATE connections SET token_meta = jsonb_set(token_meta::jsonb, '{expires_at}', '\"2000-01-01T00:00:00Z\"')::text, version = version + 1 WHERE name = $1"
    };
    use sqlx::Connection;
    if app.config.database_url.starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(&app.config.database_url)
            .await
            .unwrap();
        sqlx::query(sql).bind(name).execute(&mut c).await.unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(&app.config.database_url)
            .await
            .unwrap();
        sqlx::query(sql).bind(name).execute(&mut c).await.unwrap();
    }
    // Token reads are answered from memory for up to a second before the store is asked again.
    tokio::time::sleep(latchkey_server::oauth::tokens::HOT_RECHECK + Duration::from_millis(100))
        .await;
}

/// A forced refresh still works and the connection is active: the stored refresh token is the
/// provider's current one (a lost rotation would have the grant revoked).
async fn assert_refresh_still_works(app: &TestApp) {
    let r = app
        .post(
            "/v1/workspaces/acme/connections/sf-prod/token/refresh",
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        app.get("/v1/workspaces/acme/connections/sf-prod")
            .await
            .body["status"],
        "active"
    );
}

#[tokio::test]
async fn save_and_authorize_then_read_tokens_by_reference() {
    let sim = SalesforceSim::start().await;
    let app = app_for(&sim).await;
    let created = authorize(&app, &sim, "sf-prod", json!({})).await;
    let url = created["authorize_url"].as_str().unwrap();
    assert!(
        url.starts_with(sim.production_url()),
        "the browser-facing URL is rewritten: {url}"
    );
    for part in [
        "response_type=code",
        "code_challenge=",
        "code_challenge_method=S256",
        "scope=api+refresh_token",
        "state=",
    ] {
        assert!(url.contains(part), "{part} missing from {url}");
    }

    let c = app.get("/v1/workspaces/acme/connections/sf-prod").await;
    assert_eq!(c.body["status"], "active", "{}", c.text);
    assert_eq!(
        c.body["authorization"]["username"],
        salesforce::DEFAULT_USERNAME
    );
    assert_eq!(
        c.body["authorization"]["instance_url"],
        "https://acme.my.salesforce.com"
    );
    assert_eq!(
        c.body["authorization"]["org_id"],
        salesforce::PRODUCTION_ORG_ID
    );
    assert_eq!(c.body["authorization"]["has_refresh_token"], true);

    let t = app
        .get("/v1/workspaces/acme/connections/sf-prod/token")
        .await;
    assert_eq!(t.status, 200, "{}", t.text);
    let token = t.body["access_token"].as_str().unwrap().to_string();
    assert!(token.starts_with(salesforce::PRODUCTION_ORG_ID), "{token}");
    assert_eq!(t.body["instance_url"], "https://acme.my.salesforce.com");
    assert!(t.body["expires_at"].is_string());
    // The token works against the API (through the rewrite, as a flow would call it).
    let api = app
        .client
        .get(sim.to_loopback("https://acme.my.salesforce.com/services/data/v62.0/limits"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 200);
    // Never in lists or events.
    let list = app.get("/v1/workspaces/acme/connections").await;
    assert!(!list.text.contains(&token));
    let events = app.get("/v1/workspaces/acme/events").await;
    assert!(!events.text.contains(&token));
    let actions: Vec<&str> = events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"connection.authorized") && actions.contains(&"connection.token_read"),
        "{actions:?}"
    );

    // A state works once.
    let again = sim
        .login_via_browser(
            url,
            salesforce::DEFAULT_USERNAME,
            salesforce::DEFAULT_PASSWORD,
        )
        .await
        .unwrap();
    let page = app.client.get(&again).send().await.unwrap();
    assert_eq!(page.status(), 400);
    assert!(page.text().await.unwrap().contains("already used"));

    // A forced refresh gives a new token; the stored refresh token keeps working (no rotation).
    let before = sim.refresh_count();
    let r = app
        .post(
            "/v1/workspaces/acme/connections/sf-prod/token/refresh",
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_ne!(r.body["access_token"], token.as_str());
    let r2 = app
        .post(
            "/v1/workspaces/acme/connections/sf-prod/token/refresh",
            json!({}),
        )
        .await;
    assert_eq!(r2.status, 200, "{}", r2.text);
    assert_eq!(sim.refresh_count(), before + 2);
}

#[tokio::test]
async fn denied_and_cancelled_authorizations_leave_nothing_active() {
    let sim = SalesforceSim::start().await;
    let app = app_for(&sim).await;
    let created = app
        .post(
            "/v1/workspaces/acme/connections",
            json!({"name": "sf", "app": "salesforce", "auth_mode": "oauth2_code"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let url = created.body["authorize_url"].as_str().unwrap();
    let location = sim
        .deny_via_browser(
            url,
            salesforce::DEFAULT_USERNAME,
            salesforce::DEFAULT_PASSWORD,
        )
        .await
        .unwrap();
    let page = app.client.get(&location).send().await.unwrap();
    assert_eq!(page.status(), 400);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("access_denied") && html.contains("data-status=\"denied\""),
        "{html}"
    );
    let c = app.get("/v1/workspaces/acme/connections/sf").await;
    assert_eq!(c.body["status"], "pending_authorization");
    assert!(
        c.body["status_reason"]
            .as_str()
            .unwrap()
            .contains("access_denied"),
        "{}",
        c.text
    );
    assert!(c.body["hint"].as_str().unwrap().contains("Allow"));
    let t = app.get("/v1/workspaces/acme/connections/sf/token").await;
    assert_eq!(t.status, 409);
    assert_eq!(t.body["error"], "not_authorized");

    // Cancel = delete the pending connection: its authorization link dies with it.
    let fresh = app
        .post("/v1/workspaces/acme/connections/sf/authorize", json!({}))
        .await;
    assert_eq!(fresh.status, 200, "{}", fresh.text);
    let url = fresh.body["authorize_url"].as_str().unwrap().to_string();
    assert_eq!(
        app.delete("/v1/workspaces/acme/connections/sf")
            .await
            .status,
        204
    );
    let location = sim
        .login_via_browser(
            &url,
            salesforce::DEFAULT_USERNAME,
            salesforce::DEFAULT_PASSWORD,
        )
        .await
        .unwrap();
    let page = app.client.get(&location).send().await.unwrap();
    assert_eq!(page.status(), 400);
    assert_eq!(
        app.get("/v1/workspaces/acme/connections").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

async fn storm(apps: &[&TestApp], sim: &SalesforceSim, callers: usize) {
    let old = apps[0]
        .get("/v1/workspaces/acme/connections/sf-prod/token")
        .await
        .body["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    expire_stored_token(apps[0], "sf-prod").await;
    sim.set_token_delay(Duration::from_millis(300));
    let before = sim.refresh_count();
    let mut tasks = Vec::new();
    for i in 0..callers {
        let app = apps[i % apps.len()];
        let (client, url, key) = (
            app.client.clone(),
            format!("{}/v1/workspaces/acme/connections/sf-prod/token", app.url),
            app.admin_key.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let r = client.get(url).bearer_auth(key).send().await.unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            (
                status,
                body["access_token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        }));
    }
    let mut tokens = std::collections::HashSet::new();
    for t in tasks {
        let (status, token) = t.await.unwrap();
        assert_eq!(status, 200);
        tokens.insert(token);
    }
    assert_eq!(
        sim.refresh_count(),
        before + 1,
        "{callers} concurrent reads must refresh exactly once"
    );
    assert_eq!(tokens.len(), 1, "every caller gets the one new token");
    assert!(!tokens.contains(&old));
    sim.set_token_delay(Duration::ZERO);
}

#[tokio::test]
async fn a_refresh_storm_refreshes_exactly_once_on_sqlite() {
    let sim = SalesforceSim::start().await;
    sim.edit_app(salesforce::DEFAULT_CONSUMER_KEY, |a| {
        a.rotate_refresh_tokens = true
    });
    let app = app_for(&sim).await;
    authorize(&app, &sim, "sf-prod", json!({})).await;
    storm(&[&app], &sim, 200).await;
    // With rotation on, the rotated refresh token was stored: the next refresh still works.
    assert_refresh_still_works(&app).await;
}

#[tokio::test]
async fn a_refresh_storm_refreshes_exactly_once_across_three_instances_on_postgres() {
    let sim = SalesforceSim::start().await;
    sim.edit_app(salesforce::DEFAULT_CONSUMER_KEY, |a| {
        a.rotate_refresh_tokens = true
    });
    let Some(mut first) = spawn_app_postgres().await else {
        return;
    };
    first.stop().await;
    let mut config = first.config.clone();
    config.outbound_rewrites = Rewrites::parse(&sim.rewrites()).unwrap();
    let a = latchkey_testkit::start(config).await;
    let b = start_peer(&a).await;
    let c = start_peer(&a).await;
    prepare(&a, &sim).await;
    authorize(&a, &sim, "sf-prod", json!({})).await;
    storm(&[&a, &b, &c], &sim, 200).await;
    let r = c
        .post(
            "/v1/workspaces/acme/connections/sf-prod/token/refresh",
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "rotation survived the storm: {}", r.text);
    drop(first);
}

#[tokio::test]
async fn a_revoked_grant_is_explained_and_not_retried() {
    let sim = SalesforceSim::start().await;
    let app = app_for(&sim).await;
    authorize(&app, &sim, "sf-prod", json!({})).await;
    sim.revoke_all_grants_of(salesforce::DEFAULT_USERNAME);
    let r = app
        .post(
            "/v1/workspaces/acme/connections/sf-prod/token/refresh",
            json!({}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["error"], "connection_revoked");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("invalid_grant"),
        "{}",
        r.text
    );
    assert!(
        r.body["hint"].as_str().unwrap().contains("re-authorize"),
        "{}",
        r.text
    );
    let c = app.get("/v1/workspaces/acme/connections/sf-prod").await;
    assert_eq!(c.body["status"], "revoked");
    let refreshes = sim.refresh_count();
    for _ in 0..5 {
        assert_eq!(
            app.get("/v1/workspaces/acme/connections/sf-prod/token")
                .await
                .status,
            409
        );
    }
    assert_eq!(
        sim.refresh_count(),
        refreshes,
        "a dead grant must not be retried"
    );
    // Re-authorizing brings it back.
    let again = app
        .post(
            "/v1/workspaces/acme/connections/sf-prod/authorize",
            json!({}),
        )
        .await;
    let location = sim
        .login_via_browser(
            again.body["authorize_url"].as_str().unwrap(),
            salesforce::DEFAULT_USERNAME,
            salesforce::DEFAULT_PASSWORD,
        )
        .await
        .unwrap();
    assert_eq!(
        app.client.get(&location).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        app.get("/v1/workspaces/acme/connections/sf-prod/token")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn client_credentials_need_the_my_domain_site() {
    let sim = SalesforceSim::start().await;
    let app = app_for(&sim).await;
    let body = |site: Option<&str>| {
        let mut b = json!({"name": "sf-cc", "app": "salesforce", "auth_mode": "oauth2_client_credentials", "settings": {}});
        if let Some(s) = site {
            b["settings"]["site"] = json!(s);
        }
        b
    };
    let none = app
        .post("/v1/workspaces/acme/connections", body(None))
        .await;
    assert_eq!(none.status, 422);
    assert!(none.text.contains("site"), "{}", none.text);
    let scheme = app
        .post(
            "/v1/workspaces/acme/connections",
            body(Some("https://acme.my.salesforce.com")),
        )
        .await;
    assert_eq!(scheme.status, 422);
    assert!(
        scheme.body["message"].as_str().unwrap().contains("scheme"),
        "{}",
        scheme.text
    );
    let lightning = app
        .post(
            "/v1/workspaces/acme/connections",
            body(Some("acme.lightning.force.com")),
        )
        .await;
    assert_eq!(lightning.status, 422);
    let ok = app
        .post(
            "/v1/workspaces/acme/connections",
            body(Some("acme.my.salesforce.com")),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    assert_eq!(ok.body["status"], "active");
    assert_eq!(sim.token_requests("client_credentials"), 1);
    let t = app.get("/v1/workspaces/acme/connections/sf-cc/token").await;
    assert_eq!(t.status, 200, "{}", t.text);
    // A run-as user switched off: the grant fails with the hint that names the setting.
    sim.edit_app(salesforce::DEFAULT_CONSUMER_KEY, |a| {
        a.client_credentials_user = None
    });
    let mut b = body(Some("acme.my.salesforce.com"));
    b["name"] = json!("sf-cc-2");
    let off = app.post("/v1/workspaces/acme/connections", b).await;
    assert_eq!(off.status, 422, "{}", off.text);
    assert!(
        off.body["hint"].as_str().unwrap().contains("Run As"),
        "{}",
        off.text
    );
}

#[tokio::test]
async fn jwt_bearer_signs_a_fresh_assertion() {
    let sim = SalesforceSim::start().await;
    let app = app_for(&sim).await;
    let body = |name: &str, subject: &str| {
        json!({"name": name, "app": "salesforce", "auth_mode": "oauth2_jwt_bearer",
            "credentials": {"client_id": salesforce::DEFAULT_CONSUMER_KEY, "private_key": salesforce::TEST_PRIVATE_KEY_PEM, "jwt_subject": subject}})
    };
    let ok = app
        .post(
            "/v1/workspaces/acme/connections",
            body("sf-jwt", salesforce::DEFAULT_USERNAME),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    assert_eq!(ok.body["status"], "active");
    assert!(!ok.text.contains("PRIVATE KEY"));
    let forced = app
        .post(
            "/v1/workspaces/acme/connections/sf-jwt/token/refresh",
            json!({}),
        )
        .await;
    assert_eq!(forced.status, 200, "{}", forced.text);
    let grants = sim.token_requests("urn:ietf:params:oauth:grant-type:jwt-bearer");
    assert_eq!(grants, 2, "renewal signs a new assertion");

    sim.add_user(salesforce::User::new(
        "outsider@acme.example.com",
        "pw-outsider-1",
    ));
    let refused = app
        .post(
            "/v1/workspaces/acme/connections",
            body("sf-jwt-2", "outsider@acme.example.com"),
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert!(
        refused.body["message"]
            .as_str()
            .unwrap()
            .contains("approved"),
        "{}",
        refused.text
    );
    assert!(
        refused.body["hint"]
            .as_str()
            .unwrap()
            .contains("pre-authorize"),
        "{}",
        refused.text
    );
}

#[tokio::test]
async fn the_sixth_approval_is_warned_about_and_explained() {
    let sim = SalesforceSim::start().await;
    let app = app_for(&sim).await;
    for i in 1..=5 {
        authorize(&app, &sim, &format!("sf-{i}"), json!({})).await;
    }
    let sixth = authorize(&app, &sim, "sf-6", json!({})).await;
    let warnings = sixth["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{sixth}");
    let w = warnings[0].as_str().unwrap();
    assert!(w.contains("five") || w.contains("5 approvals"), "{w}");
    assert!(
        w.contains("sf-1"),
        "the warning names the connection that would lose its grant: {w}"
    );
    let oldest = app.get("/v1/workspaces/acme/connections/sf-1").await;
    assert_eq!(oldest.body["status"], "revoked", "{}", oldest.text);
    assert!(
        oldest.body["status_reason"]
            .as_str()
            .unwrap()
            .contains("five approvals"),
        "{}",
        oldest.text
    );
    assert_eq!(
        sim.active_grants(
            salesforce::DEFAULT_USERNAME,
            salesforce::DEFAULT_CONSUMER_KEY
        ),
        5
    );
    for i in 2..=6 {
        let c = app
            .get(&format!("/v1/workspaces/acme/connections/sf-{i}"))
            .await;
        assert_eq!(c.body["status"], "active", "sf-{i}");
    }
    // Deleting a connection gives its grant back.
    assert_eq!(
        app.delete("/v1/workspaces/acme/connections/sf-6")
            .await
            .status,
        204
    );
    assert_eq!(
        sim.active_grants(
            salesforce::DEFAULT_USERNAME,
            salesforce::DEFAULT_CONSUMER_KEY
        ),
        4
    );
    let events = app.get("/v1/workspaces/acme/events").await;
    let revoked = events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "connection.grant_revoked")
        .unwrap();
    assert_eq!(revoked["details"]["ok"], true);
}

#[tokio::test]
async fn certinia_needs_its_objects_in_the_org() {
    let sim = SalesforceSim::start().await;
    let app = app_for(&sim).await;
    let created = app
        .post("/v1/workspaces/acme/connections", json!({"name": "ff", "app": "certinia", "auth_mode": "oauth2_code",
            "credentials": {"client_id": salesforce::DEFAULT_CONSUMER_KEY, "client_secret": salesforce::DEFAULT_CONSUMER_SECRET}}))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let location = sim
        .login_via_browser(
            created.body["authorize_url"].as_str().unwrap(),
            salesforce::DEFAULT_USERNAME,
            salesforce::DEFAULT_PASSWORD,
        )
        .await
        .unwrap();
    let page = app.client.get(&location).send().await.unwrap();
    assert_eq!(page.status(), 422);
    let c = app.get("/v1/workspaces/acme/connections/ff").await;
    assert_eq!(c.body["status"], "pending_authorization");
    assert!(
        c.body["status_reason"]
            .as_str()
            .unwrap()
            .contains("Certinia"),
        "{}",
        c.text
    );

    let sim2 = SalesforceSim::start_with(
        salesforce::SalesforceConfig::default().with_sobject("c2g__codaCompany__c"),
    )
    .await;
    let app2 = app_for(&sim2).await;
    let created = app2
        .post("/v1/workspaces/acme/connections", json!({"name": "ff", "app": "certinia", "auth_mode": "oauth2_code",
            "credentials": {"client_id": salesforce::DEFAULT_CONSUMER_KEY, "client_secret": salesforce::DEFAULT_CONSUMER_SECRET}}))
        .await;
    let location = sim2
        .login_via_browser(
            created.body["authorize_url"].as_str().unwrap(),
            salesforce::DEFAULT_USERNAME,
            salesforce::DEFAULT_PASSWORD,
        )
        .await
        .unwrap();
    assert_eq!(
        app2.client.get(&location).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        app2.get("/v1/workspaces/acme/connections/ff").await.body["status"],
        "active"
    );
}

#[tokio::test]
async fn a_generic_oauth2_provider_with_basic_or_post_client_auth() {
    let sim = SalesforceSim::start().await;
    let app = app_for(&sim).await;
    for (name, auth, pkce) in [
        ("gen-basic", "client_secret_basic", true),
        ("gen-post", "client_secret_post", false),
    ] {
        let created = app
            .post("/v1/workspaces/acme/connections", json!({
                "name": name, "app": "generic-oauth2", "auth_mode": "oauth2_code",
                "settings": {
                    "authorization_url": "https://login.salesforce.com/services/oauth2/authorize",
                    "token_url": "https://login.salesforce.com/services/oauth2/token",
                    "revocation_url": "https://login.salesforce.com/services/oauth2/revoke",
                    "base_url": "https://acme.my.salesforce.com",
                    "verify_path": "/services/oauth2/userinfo",
                    "scopes": ["api", "refresh_token"],
                    "client_auth": auth, "pkce": pkce,
                    "authorize_params": {"prompt": "login"}
                },
                "credentials": {"client_id": salesforce::DEFAULT_CONSUMER_KEY, "client_secret": salesforce::DEFAULT_CONSUMER_SECRET}
            }))
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        let url = created.body["authorize_url"].as_str().unwrap();
        assert_eq!(url.contains("code_challenge="), pkce, "{url}");
        assert!(url.contains("prompt=login"), "{url}");
        let location = sim
            .login_via_browser(
                url,
                salesforce::DEFAULT_USERNAME,
                salesforce::DEFAULT_PASSWORD,
            )
            .await
            .unwrap();
        let page = app.client.get(&location).send().await.unwrap();
        assert_eq!(page.status(), 200, "{}", page.text().await.unwrap());
        let t = app
            .post(
                &format!("/v1/workspaces/acme/connections/{name}/token/refresh"),
                json!({}),
            )
            .await;
        assert_eq!(t.status, 200, "{}", t.text);
        assert!(t.body["access_token"]
            .as_str()
            .unwrap()
            .starts_with(salesforce::PRODUCTION_ORG_ID));
        let v = app
            .post(
                &format!("/v1/workspaces/acme/connections/{name}/verify"),
                json!({}),
            )
            .await;
        assert_eq!(v.body["ok"], true, "{}", v.text);
    }
    // A wrong secret is refused at the code exchange, with the provider's words and a hint.
    let created = app
        .post("/v1/workspaces/acme/connections", json!({
            "name": "gen-bad", "app": "generic-oauth2", "auth_mode": "oauth2_code",
            "settings": {"authorization_url": "https://login.salesforce.com/services/oauth2/authorize",
                "token_url": "https://login.salesforce.com/services/oauth2/token", "base_url": "https://acme.my.salesforce.com",
                "scopes": ["api"]},
            "credentials": {"client_id": salesforce::DEFAULT_CONSUMER_KEY, "client_secret": "not-the-secret"}
        }))
        .await;
    let location = sim
        .login_via_browser(
            created.body["authorize_url"].as_str().unwrap(),
            salesforce::DEFAULT_USERNAME,
            salesforce::DEFAULT_PASSWORD,
        )
        .await
        .unwrap();
    let page = app.client.get(&location).send().await.unwrap();
    assert_eq!(page.status(), 502);
    let c = app.get("/v1/workspaces/acme/connections/gen-bad").await;
    assert_eq!(c.body["status"], "pending_authorization");
    assert!(
        c.body["status_reason"]
            .as_str()
            .unwrap()
            .contains("invalid_client"),
        "{}",
        c.text
    );
    assert!(
        c.body["hint"]
            .as_str()
            .unwrap()
            .contains("Manage Consumer Details"),
        "{}",
        c.text
    );
    assert!(!c.text.contains("not-the-secret"));
}

#[tokio::test]
async fn an_unreachable_provider_backs_off_instead_of_storming() {
    let sim = SalesforceSim::start().await;
    let app = app_for(&sim).await;
    authorize(&app, &sim, "sf-prod", json!({})).await;
    drop(sim);
    let first = app
        .post(
            "/v1/workspaces/acme/connections/sf-prod/token/refresh",
            json!({}),
        )
        .await;
    assert_eq!(first.status, 502, "{}", first.text);
    assert_eq!(first.body["error"], "refresh_failed");
    let c = app.get("/v1/workspaces/acme/connections/sf-prod").await;
    assert_eq!(c.body["status"], "failing");
    assert!(
        c.body["hint"].as_str().unwrap().contains("retry"),
        "{}",
        c.text
    );
    let second = app
        .post(
            "/v1/workspaces/acme/connections/sf-prod/token/refresh",
            json!({}),
        )
        .await;
    assert_eq!(second.status, 503, "{}", second.text);
    assert_eq!(second.body["error"], "refresh_backoff");
    assert!(
        second.body["message"]
            .as_str()
            .unwrap()
            .contains("next attempt"),
        "{}",
        second.text
    );
}

#[tokio::test]
async fn an_expired_authorization_link_is_refused_and_explained() {
    use sqlx::Connection;
    let sim = SalesforceSim::start().await;
    let app = app_for(&sim).await;
    let created = app
        .post(
            "/v1/workspaces/acme/connections",
            json!({"name": "sf", "app": "salesforce", "auth_mode": "oauth2_code"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    // Eleven minutes later (the link lives ten).
    let mut db = sqlx::SqliteConnection::connect(&app.config.database_url)
        .await
        .unwrap();
    let past = (chrono::Utc::now() - chrono::Duration::minutes(1)).timestamp_millis();
    sqlx::query("UPDATE oauth_states SET expires_at = $1")
        .bind(past)
        .execute(&mut db)
        .await
        .unwrap();
    let location = sim
        .login_via_browser(
            created.body["authorize_url"].as_str().unwrap(),
            salesforce::DEFAULT_USERNAME,
            salesforce::DEFAULT_PASSWORD,
        )
        .await
        .unwrap();
    let page = app.client.get(&location).send().await.unwrap();
    assert_eq!(page.status(), 400);
    assert!(page.text().await.unwrap().contains("expired"));
    let c = app.get("/v1/workspaces/acme/connections/sf").await;
    assert_eq!(c.body["status"], "pending_authorization");
    assert!(
        c.body["status_reason"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{}",
        c.text
    );
    assert!(
        c.body["hint"].as_str().unwrap().contains("10 minutes"),
        "{}",
        c.text
    );
    assert_eq!(
        sim.token_requests("authorization_code"),
        0,
        "an expired link never reaches the token endpoint"
    );
}

#[tokio::test]
async fn a_refresh_finishes_even_when_its_caller_goes_away() {
    let sim = SalesforceSim::start().await;
    sim.edit_app(salesforce::DEFAULT_CONSUMER_KEY, |a| {
        a.rotate_refresh_tokens = true
    });
    let app = app_for(&sim).await;
    authorize(&app, &sim, "sf-prod", json!({})).await;
    expire_stored_token(&app, "sf-prod").await;
    sim.set_token_delay(Duration::from_millis(400));
    let before = sim.refresh_count();
    // The only caller hangs up while the provider is still answering (and rotating).
    let gone = app
        .client
        .get(format!(
            "{}/v1/workspaces/acme/connections/sf-prod/token",
            app.url
        ))
        .bearer_auth(&app.admin_key)
        .timeout(Duration::from_millis(100))
        .send()
        .await;
    assert!(gone.is_err(), "the caller gave up before the answer");
    // Finished and recorded with nobody waiting for it (not parked until the next reader).
    latchkey_testkit::eventually(
        "the abandoned refresh is recorded",
        Duration::from_secs(10),
        || async {
            let events = app.get("/v1/workspaces/acme/events").await;
            events.body["items"].as_array().is_some_and(|items| {
                items
                    .iter()
                    .any(|e| e["action"] == "connection.token_refreshed")
            })
        },
    )
    .await;
    sim.set_token_delay(Duration::ZERO);
    assert_eq!(sim.refresh_count(), before + 1);
    // The rotated refresh token was stored all the same: the token is there without another
    // refresh, and the next refresh works (a lost rotation would revoke the grant).
    let r = app
        .get("/v1/workspaces/acme/connections/sf-prod/token")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(sim.refresh_count(), before + 1, "no second refresh");
    assert_refresh_still_works(&app).await;
}
