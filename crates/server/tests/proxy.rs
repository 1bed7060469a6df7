//! The proxy: credential injection, pass-through, pools and borrowed pools, the
//! queue timeout, expired sessions refreshed once, the limit across three instances, and
//! cluster slots kept by an instance alone but given back to another that waits.

use latchkey_core::outbound::Rewrites;
use latchkey_testkit::salesforce::{self, SalesforceSim};
use latchkey_testkit::upstream::Upstream;
use latchkey_testkit::{spawn_app, spawn_app_postgres, spawn_app_with, start_peer, TestApp};
use serde_json::{json, Value};
use std::time::Duration;

const KEY: &str = "up-key-5f1e";

async fn api_key_connection(app: &TestApp, up: &Upstream, name: &str, settings: Value) -> Value {
    let mut s = json!({"base_url": up.url, "verify_path": "/health"});
    for (k, v) in settings.as_object().unwrap() {
        s[k] = v.clone();
    }
    let a = app
        .post("/v1/workspaces/acme/connections", json!({"name": name, "app": "generic-api-key", "settings": s, "credentials": {"api_key": KEY}}))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    a.body
}

#[tokio::test]
async fn requests_pass_through_with_the_credential_injected() {
    let app = spawn_app().await;
    let up = Upstream::start(KEY, "u", "p").await;
    app.workspace("acme").await;
    api_key_connection(&app, &up, "billing", json!({})).await;
    let resp = app
        .client
        .post(format!(
            "{}/v1/workspaces/acme/connections/billing/proxy/echo?a=1&b=two",
            app.url
        ))
        .bearer_auth(&app.admin_key)
        .header("x-custom", "kept")
        .header("connection", "x-hop")
        .header("x-hop", "dropped")
        .header("content-type", "text/plain")
        .body("hello upstream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("latchkey-queue-ms").is_some());
    assert_eq!(resp.headers()["x-upstream"], "echo");
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["query"], "a=1&b=two");
    assert_eq!(echo["body"], "hello upstream");
    // The key arrived; the application's echo of it does not come back to the caller.
    assert_eq!(up.last_headers().unwrap()["x-api-key"], KEY);
    assert_eq!(echo["headers"]["x-api-key"], "[REDACTED]");
    assert_eq!(echo["headers"]["x-custom"], "kept");
    assert!(
        echo["headers"].get("x-hop").is_none(),
        "a header named by Connection is hop-by-hop"
    );
    assert!(
        echo["headers"].get("authorization").is_none(),
        "the caller's own Authorization must not reach the application"
    );
    assert!(!echo.to_string().contains(&app.admin_key));

    // Redirects come back as they are.
    let r = app
        .client
        .get(format!(
            "{}/v1/workspaces/acme/connections/billing/proxy/redirect",
            app.url
        ))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "https://elsewhere.example/landing");
    // Rate limits that ask for more than the queue timeout pass back with the application's headers.
    let r = app
        .client
        .get(format!(
            "{}/v1/workspaces/acme/connections/billing/proxy/limited",
            app.url
        ))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "86400");
    assert!(
        r.headers().get("latchkey-retries").is_none(),
        "a wait past the queue timeout is not waited out"
    );
    // A key in a query parameter, and basic auth.
    api_key_connection(
        &app,
        &up,
        "q",
        json!({"api_key_in": "query", "api_key_name": "api_key"}),
    )
    .await;
    let r = app
        .client
        .get(format!(
            "{}/v1/workspaces/acme/connections/q/proxy/echo?x=1",
            app.url
        ))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    let echo: Value = r.json().await.unwrap();
    assert_eq!(up.last_query().unwrap(), format!("x=1&api_key={KEY}"));
    assert_eq!(echo["query"], "x=1&api_key=[REDACTED]");
    // A large body streams through.
    let r = app
        .client
        .get(format!(
            "{}/v1/workspaces/acme/connections/billing/proxy/big?mb=64",
            app.url
        ))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut total = 0usize;
    let mut s = r;
    while let Some(chunk) = s.chunk().await.unwrap() {
        total += chunk.len();
    }
    assert_eq!(total, 64 * 1024 * 1024);

    // Scope and kind checks.
    let reader = app.workspace_key("acme", &["read", "secrets"]).await;
    let r = app
        .call_as(
            &reader,
            reqwest::Method::GET,
            "/v1/workspaces/acme/connections/billing/proxy/echo",
            None,
        )
        .await;
    assert_eq!(r.status, 403);
    let proxy_key = app.workspace_key("acme", &["proxy"]).await;
    let r = app
        .call_as(
            &proxy_key,
            reqwest::Method::GET,
            "/v1/workspaces/acme/connections/billing/proxy/echo",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let metrics = metrics_text(&app).await;
    assert!(
        metrics.contains("latchkey_proxy_upstream_responses_total"),
        "{metrics}"
    );
    assert!(metrics.contains("latchkey_pool_wait_seconds"), "{metrics}");
}

async fn burst(app: &TestApp, name: &str, n: usize) -> Vec<u16> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (c, url, key) = (
            app.client.clone(),
            format!(
                "{}/v1/workspaces/acme/connections/{name}/proxy/slow",
                app.url
            ),
            app.admin_key.clone(),
        );
        tasks.push(tokio::spawn(async move {
            c.get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn the_concurrency_level_holds_and_borrowers_share_the_lenders_pool() {
    let app = spawn_app().await;
    let up = Upstream::start(KEY, "u", "p").await;
    up.set_delay(Duration::from_millis(60));
    app.workspace("acme").await;
    api_key_connection(&app, &up, "three", json!({"concurrency_level": 3})).await;
    let statuses = burst(&app, "three", 40).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        up.in_flight_max(),
        3,
        "never more than the level, and the level is used"
    );

    let up2 = Upstream::start(KEY, "u", "p").await;
    up2.set_delay(Duration::from_millis(60));
    api_key_connection(&app, &up2, "lender", json!({"concurrency_level": 4})).await;
    api_key_connection(
        &app,
        &up2,
        "borrower",
        json!({"concurrency_level": 20, "borrow_concurrency_from": "lender"}),
    )
    .await;
    let (a, b) = tokio::join!(burst(&app, "lender", 20), burst(&app, "borrower", 20));
    assert!(a.iter().chain(&b).all(|s| *s == 200));
    assert_eq!(
        up2.in_flight_max(),
        4,
        "lender and borrower together stay within the lender's level"
    );

    // A level change applies to the next requests.
    let e = app
        .patch(
            "/v1/workspaces/acme/connections/lender",
            json!({"settings": {"concurrency_level": 2}}),
        )
        .await;
    assert_eq!(e.status, 200, "{}", e.text);
    up2.reset_in_flight_max();
    let (a, b) = tokio::join!(burst(&app, "lender", 10), burst(&app, "borrower", 10));
    assert!(a.iter().chain(&b).all(|s| *s == 200));
    assert_eq!(up2.in_flight_max(), 2, "the new level applies at once");
}

#[tokio::test]
async fn a_full_queue_times_out_with_503() {
    let app = spawn_app_with(|c| c.proxy_queue_timeout = Duration::from_secs(1)).await;
    let up = Upstream::start(KEY, "u", "p").await;
    app.workspace("acme").await;
    api_key_connection(&app, &up, "one", json!({"concurrency_level": 1})).await;
    up.set_delay(Duration::from_millis(2500));
    let statuses = burst(&app, "one", 2).await;
    assert!(
        statuses.contains(&200) && statuses.contains(&503),
        "{statuses:?}"
    );
    up.set_delay(Duration::from_millis(2500));
    let before = up.hits();
    let slow = {
        let (c, url, key) = (
            app.client.clone(),
            format!("{}/v1/workspaces/acme/connections/one/proxy/slow", app.url),
            app.admin_key.clone(),
        );
        tokio::spawn(async move {
            c.get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    // Wait until the slow call holds the only slot (it has reached the upstream).
    latchkey_testkit::eventually(
        "the slow call reaches the upstream",
        Duration::from_secs(5),
        || {
            let up = up.clone();
            async move { up.hits() > before }
        },
    )
    .await;
    let r = app
        .client
        .get(format!(
            "{}/v1/workspaces/acme/connections/one/proxy/slow",
            app.url
        ))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(
        r.headers().get("retry-after").is_some(),
        "a 503 says when to retry"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "pool_busy");
    assert!(body["hint"].is_string());
    assert_eq!(slow.await.unwrap(), 200);
}

async fn salesforce_app(sim: &SalesforceSim) -> TestApp {
    let rewrites = Rewrites::parse(&sim.rewrites()).unwrap();
    let app = spawn_app_with(|c| c.outbound_rewrites = rewrites).await;
    sf_prepare(&app, sim).await;
    app
}

async fn sf_prepare(app: &TestApp, sim: &SalesforceSim) {
    sim.add_callback_url(
        salesforce::DEFAULT_CONSUMER_KEY,
        &format!("{}/oauth/callback", app.url),
    );
    app.workspace("acme").await;
}

async fn sf_connection(
    app: &TestApp,
    sim: &SalesforceSim,
    name: &str,
    scopes: &[&str],
    level: i64,
) {
    let created = app
        .post("/v1/workspaces/acme/connections", json!({"name": name, "app": "salesforce", "auth_mode": "oauth2_code",
            "settings": {"scopes": scopes, "concurrency_level": level},
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
    assert_eq!(
        app.client.get(&location).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn an_expired_session_is_refreshed_once_for_every_caller() {
    let sim = SalesforceSim::start().await;
    let app = salesforce_app(&sim).await;
    sf_connection(&app, &sim, "sf", &["api", "refresh_token"], 5).await;
    let url = format!(
        "{}/v1/workspaces/acme/connections/sf/proxy/services/data/v62.0/limits",
        app.url
    );
    let r = app
        .client
        .get(&url)
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("sforce-limit-info").is_some(),
        "Salesforce's headers come back"
    );

    sim.expire_access_tokens();
    sim.set_api_delay(Duration::from_millis(50));
    let before = sim.refresh_count();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (c, u, k) = (app.client.clone(), url.clone(), app.admin_key.clone());
        tasks.push(tokio::spawn(async move {
            c.get(u)
                .bearer_auth(k)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(
            t.await.unwrap(),
            200,
            "every caller succeeds after the refresh"
        );
    }
    assert_eq!(
        sim.refresh_count(),
        before + 1,
        "one refresh for all callers"
    );
    assert!(sim.api_in_flight_max() <= 5);

    // A body is replayed on the retry.
    sim.expire_access_tokens();
    let echo = app
        .client
        .post(format!(
            "{}/v1/workspaces/acme/connections/sf/proxy/services/apexrest/echo",
            app.url
        ))
        .bearer_auth(&app.admin_key)
        .header("content-type", "application/json")
        .body(r#"{"Name":"Acme"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(echo.status(), 200);
    let body: Value = echo.json().await.unwrap();
    assert!(body.to_string().contains("Acme"), "{body}");
}

#[tokio::test]
async fn a_token_without_the_api_scope_is_passed_back_with_a_hint() {
    let sim = SalesforceSim::start().await;
    let app = salesforce_app(&sim).await;
    sf_connection(&app, &sim, "sf-noapi", &["refresh_token", "id"], 5).await;
    let before = sim.refresh_count();
    let r = app
        .client
        .get(format!(
            "{}/v1/workspaces/acme/connections/sf-noapi/proxy/services/data/v62.0/limits",
            app.url
        ))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["latchkey-hint"]
        .to_str()
        .unwrap()
        .contains("api"));
    assert!(
        r.headers().get("set-cookie").is_none(),
        "the application's cookie came back with its 401"
    );
    assert_eq!(
        sim.refresh_count(),
        before,
        "a missing scope is not a reason to refresh"
    );
}

#[tokio::test]
async fn the_level_holds_across_three_instances_on_postgres() {
    let sim = SalesforceSim::start().await;
    let Some(mut first) = spawn_app_postgres().await else {
        return;
    };
    first.stop().await;
    let mut config = first.config.clone();
    config.outbound_rewrites = Rewrites::parse(&sim.rewrites()).unwrap();
    let a = latchkey_testkit::start(config).await;
    let b = start_peer(&a).await;
    let c = start_peer(&a).await;
    sf_prepare(&a, &sim).await;
    sf_connection(&a, &sim, "sf", &["api", "refresh_token"], 5).await;
    sim.set_api_delay(Duration::from_millis(80));
    sim.reset_in_flight_max();
    let mut tasks = Vec::new();
    for i in 0..45 {
        let app = [&a, &b, &c][i % 3];
        let (cl, u, k) = (
            app.client.clone(),
            format!(
                "{}/v1/workspaces/acme/connections/sf/proxy/services/data/v62.0/limits",
                app.url
            ),
            app.admin_key.clone(),
        );
        tasks.push(tokio::spawn(async move {
            cl.get(u)
                .bearer_auth(k)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(
        sim.api_in_flight_max(),
        5,
        "three instances together never exceed the level of 5"
    );
    drop(first);
}

#[tokio::test]
async fn database_connections_are_not_proxied() {
    let app = spawn_app().await;
    app.workspace("acme").await;
    let a = app
        .post("/v1/workspaces/acme/connections", json!({"name": "db", "app": "postgres", "verify": false,
            "credentials": {"host": "127.0.0.1", "port": 5432, "database": "d", "username": "u", "password": "p"}}))
        .await;
    assert_eq!(a.status, 201);
    let r = app
        .get("/v1/workspaces/acme/connections/db/proxy/anything")
        .await;
    assert_eq!(r.status, 422);
    assert!(r.body["hint"].as_str().unwrap().contains("credentials"));
}

#[tokio::test]
async fn slots_held_by_a_dead_instance_come_back_when_their_leases_run_out() {
    let Some(app) = spawn_app_postgres().await else {
        return;
    };
    let up = Upstream::start(KEY, "u", "p").await;
    app.workspace("acme").await;
    let conn = api_key_connection(&app, &up, "billing", json!({"concurrency_level": 2})).await;
    let pool = conn["id"].as_str().unwrap().to_string();
    // Another instance took both slots, then died without releasing them.
    let store = latchkey_store::open(&app.config.database_url)
        .await
        .unwrap();
    let now = chrono::Utc::now();
    for _ in 0..2 {
        let slot = store
            .try_acquire_slot(
                &pool,
                2,
                "dead-instance",
                now + chrono::Duration::seconds(2),
                now,
                None,
            )
            .await
            .unwrap();
        assert!(slot.is_some());
    }
    assert_eq!(store.held_slots(&pool, now).await.unwrap(), 2);
    let started = std::time::Instant::now();
    let r = app
        .client
        .get(format!(
            "{}/v1/workspaces/acme/connections/billing/proxy/echo",
            app.url
        ))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500),
        "the request had to wait for the dead leases ({waited:?})"
    );
    assert!(
        waited < Duration::from_secs(8),
        "and got a slot within seconds ({waited:?})"
    );
    let queue_ms: u64 = r.headers()["latchkey-queue-ms"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        queue_ms >= 1500,
        "Latchkey-Queue-Ms reports the wait: {queue_ms}"
    );
}

const SECOND_KEY: &str = "second-key-77c2";

/// Points connection `billing` at another application, with that application's key.
async fn move_billing_to(app: &TestApp, up: &Upstream) {
    let r = app
        .patch(
            "/v1/workspaces/acme/connections/billing",
            json!({"settings": {"base_url": up.url}, "credentials": {"api_key": SECOND_KEY}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn proxy_echo(app: &TestApp, key: &str, conn: &str) -> (u16, Value) {
    let r = app
        .client
        .get(format!(
            "{}/v1/workspaces/acme/connections/{conn}/proxy/echo",
            app.url
        ))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn changes_apply_to_the_very_next_proxied_call() {
    let app = spawn_app().await;
    let first = Upstream::start(KEY, "u", "p").await;
    let second = Upstream::start(SECOND_KEY, "u", "p").await;
    app.workspace("acme").await;
    api_key_connection(&app, &first, "billing", json!({})).await;
    // Warm: the workspace and connection are now answered from memory.
    for _ in 0..3 {
        let (status, echo) = proxy_echo(&app, &app.admin_key, "billing").await;
        assert_eq!(status, 200);
        assert_eq!(echo["headers"]["x-api-key"], "[REDACTED]");
        assert_eq!(first.last_headers().unwrap()["x-api-key"], KEY);
    }
    let hits_before = first.hits();

    // Another workspace's key never gets through, however warm the path is.
    app.workspace("other").await;
    let other_key = app.workspace_key("other", &["read", "proxy"]).await;
    let (status, _) = proxy_echo(&app, &other_key, "billing").await;
    assert_eq!(status, 404);
    // Nor does a key of this workspace without the `proxy` scope.
    let read_only = app.workspace_key("acme", &["read"]).await;
    let (status, body) = proxy_echo(&app, &read_only, "billing").await;
    assert_eq!(status, 403, "{body}");

    // A new base URL and key: the next call goes to the new application with the new key.
    move_billing_to(&app, &second).await;
    let (status, echo) = proxy_echo(&app, &app.admin_key, "billing").await;
    assert_eq!(status, 200);
    assert_eq!(echo["headers"]["x-api-key"], "[REDACTED]");
    assert_eq!(second.last_headers().unwrap()["x-api-key"], SECOND_KEY);
    assert_eq!(
        first.hits(),
        hits_before,
        "nothing more went to the old application"
    );

    // Deleted: the next call is refused at once.
    let r = app.delete("/v1/workspaces/acme/connections/billing").await;
    assert_eq!(r.status, 204, "{}", r.text);
    let (status, body) = proxy_echo(&app, &app.admin_key, "billing").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "not_found");
    assert!(
        body["message"].as_str().unwrap().contains("billing"),
        "{body}"
    );
    assert_eq!(second.hits(), 1 + 1, "the verification and one call");
}

#[tokio::test]
async fn another_instance_follows_a_change_within_the_recheck_interval() {
    let Some(a) = spawn_app_postgres().await else {
        return;
    };
    let b = start_peer(&a).await;
    let first = Upstream::start(KEY, "u", "p").await;
    let second = Upstream::start(SECOND_KEY, "u", "p").await;
    a.workspace("acme").await;
    api_key_connection(&a, &first, "billing", json!({})).await;
    let (status, _) = proxy_echo(&b, &b.admin_key, "billing").await;
    assert_eq!(status, 200);
    move_billing_to(&a, &second).await;
    let verified = second.hits();
    let changed = std::time::Instant::now();
    // Instance b may use what it read for at most the recheck interval (documented).
    loop {
        let (status, _) = proxy_echo(&b, &b.admin_key, "billing").await;
        if second.hits() > verified {
            assert_eq!(status, 200);
            break;
        }
        assert!(
            changed.elapsed() < latchkey_server::hot::HOT_RECHECK + Duration::from_secs(2),
            "instance b still used the old connection {:?} after the change",
            changed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_busy_instance_does_not_starve_another_on_postgres() {
    let Some(mut seed) = spawn_app_postgres().await else {
        return;
    };
    seed.stop().await;
    let mut config = seed.config.clone();
    // A starved caller runs into this and gets 503: the busy callers below outlast it.
    config.proxy_queue_timeout = Duration::from_secs(2);
    let a = latchkey_testkit::start(config).await;
    let b = start_peer(&a).await;
    let up = Upstream::start(KEY, "u", "p").await;
    a.workspace("acme").await;
    let conn = api_key_connection(&a, &up, "billing", json!({"concurrency_level": 1})).await;
    up.set_delay(Duration::from_millis(5));
    // Instance a is kept saturated by four callers until instance b has had its turns.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy = keep_calling(&a, "billing", 4, &stop, 2000);
    let started = up.hits();
    latchkey_testkit::eventually("instance a is busy", Duration::from_secs(10), || {
        let up = up.clone();
        async move { up.hits() > started + 20 }
    })
    .await;
    // Meanwhile instance b's callers get their turns within the queue timeout. An instance hands
    // the slot back at least every half second and then leaves it to the others for a moment;
    // without that, b would wait until a's callers stopped, and get 503 first.
    for _ in 0..3 {
        let (status, body) = proxy_echo(&b, &b.admin_key, "billing").await;
        assert_eq!(status, 200, "instance b was starved: {body}");
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut served = 0;
    for t in busy {
        served += t.await.unwrap();
    }
    assert!(served > 20, "instance a kept serving too ({served})");
    assert_eq!(up.in_flight_max(), 1, "level 1 across both instances");
    let pool = conn["id"].as_str().unwrap();
    let yielded = pool_metric(&a, "latchkey_pool_slot_yielded_total", pool).await;
    assert!(
        yielded.is_some_and(|n| n >= 1.0),
        "b got its turns because a slot was given back for it: {yielded:?}"
    );
}

/// `n` callers sending `/echo` through connection `conn` of workspace `acme` back to back, each
/// until `stop` is set or it has made `max` calls (so that the loop ends even if the flag never
/// comes); each answers how many calls it made, all of which must have been answered 200.
fn keep_calling(
    app: &TestApp,
    conn: &str,
    n: usize,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    max: usize,
) -> Vec<tokio::task::JoinHandle<usize>> {
    let url = format!(
        "{}/v1/workspaces/acme/connections/{conn}/proxy/echo",
        app.url
    );
    (0..n)
        .map(|_| {
            let (url, cl, key, stop) = (
                url.clone(),
                app.client.clone(),
                app.admin_key.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let mut served = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) && served < max {
                    let r = cl.get(&url).bearer_auth(&key).send().await.unwrap();
                    assert_eq!(r.status(), 200);
                    served += 1;
                }
                served
            })
        })
        .collect()
}

/// A counter of one pool from `/metrics` (shared by every server of the test process; the pool
/// label, a connection id, tells them apart).
/// What `/metrics` answers the admin key.
async fn metrics_text(app: &TestApp) -> String {
    app.client
        .get(format!("{}/metrics", app.url))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn pool_metric(app: &TestApp, name: &str, pool: &str) -> Option<f64> {
    let text = metrics_text(app).await;
    let label = format!("pool=\"{pool}\"");
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| l.contains(&label))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn an_instance_alone_keeps_its_slots_without_yielding_on_postgres() {
    let Some(app) = spawn_app_postgres().await else {
        return;
    };
    let up = Upstream::start(KEY, "u", "p").await;
    app.workspace("acme").await;
    let conn = api_key_connection(&app, &up, "billing", json!({"concurrency_level": 2})).await;
    let pool = conn["id"].as_str().unwrap().to_string();
    up.set_delay(Duration::from_millis(10));
    // Four callers keep the level busy until the instance has passed the reuse window several
    // times; nobody else waits for the pool, so each time it keeps the slot.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let callers = keep_calling(&app, "billing", 4, &stop, 5000);
    latchkey_testkit::eventually(
        "slots kept past the reuse window",
        Duration::from_secs(30),
        || {
            let (app, pool) = (&app, pool.clone());
            async move {
                pool_metric(app, "latchkey_pool_slot_kept_total", &pool)
                    .await
                    .is_some_and(|n| n >= 4.0)
            }
        },
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut served = 0;
    for c in callers {
        served += c.await.unwrap();
    }
    assert!(served > 20, "the callers were served ({served})");
    let yielded = pool_metric(&app, "latchkey_pool_slot_yielded_total", &pool).await;
    assert_eq!(
        yielded.unwrap_or(0.0),
        0.0,
        "alone, the instance never gave a slot back to make room for another"
    );
    assert!(up.in_flight_max() <= 2, "the level held");
}

/// A bare HTTP/1.1 application over loopback whose connection handling the test chooses: it
/// counts the connections it accepts, answers each request with the connection's number, and
/// closes a connection after each answer (`close_each`) or once it sat idle for `idle_close`.
struct RawUpstream {
    url: String,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _task: tokio::task::JoinHandle<()>,
}

impl RawUpstream {
    async fn start(close_each: bool, idle_close: Duration) -> Self {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        // One request head (the test sends no bodies), or the idle limit.
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            let mut chunk = [0u8; 4096];
                            let read = tokio::time::timeout(idle_close, tcp.read(&mut chunk)).await;
                            match read {
                                Ok(Ok(k)) if k > 0 => buf.extend_from_slice(&chunk[..k]),
                                _ => return,
                            }
                        }
                        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                        let big = buf[..end].starts_with(b"GET /big");
                        buf.drain(..end);
                        // `/big` answers 300 KB, more than the proxy reads whole.
                        let pad = if big {
                            "x".repeat(300_000)
                        } else {
                            String::new()
                        };
                        let body = format!("{{\"connection\":{n},\"pad\":\"{pad}\"}}");
                        let close = if close_each {
                            "Connection: close\r\n"
                        } else {
                            ""
                        };
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{close}\r\n",
                            body.len()
                        );
                        if tcp
                            .write_all(format!("{head}{body}").as_bytes())
                            .await
                            .is_err()
                            || close_each
                        {
                            return;
                        }
                    }
                });
            }
        });
        RawUpstream {
            url,
            accepted,
            _task: task,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test]
async fn upstream_connections_are_reused_and_ones_the_application_closed_are_not() {
    let app = spawn_app().await;
    app.workspace("acme").await;
    // Keeps a connection open for 300 ms after each answer.
    let keeps = RawUpstream::start(false, Duration::from_millis(300)).await;
    let closes = RawUpstream::start(true, Duration::from_secs(5)).await;
    for (name, up) in [("keeps", &keeps), ("closes", &closes)] {
        let a = app
            .post(
                "/v1/workspaces/acme/connections",
                json!({"name": name, "app": "generic-api-key", "verify": false,
                "settings": {"base_url": up.url}, "credentials": {"api_key": KEY}}),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.text);
    }
    let call = |conn: &'static str| {
        let app = &app;
        async move {
            let r = app
                .get(&format!("/v1/workspaces/acme/connections/{conn}/proxy/x"))
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            r.body["connection"].as_u64().unwrap()
        }
    };
    // Back-to-back calls share one upstream connection.
    let first = call("keeps").await;
    for _ in 0..4 {
        assert_eq!(call("keeps").await, first);
    }
    assert_eq!(keeps.accepted(), 1);
    // A large answer streams through, and its connection is kept too once it was read.
    let r = app
        .get("/v1/workspaces/acme/connections/keeps/proxy/big")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["pad"].as_str().unwrap().len(), 300_000);
    assert_eq!(r.body["connection"].as_u64().unwrap(), first);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(call("keeps").await, first);
    assert_eq!(keeps.accepted(), 1);
    // The application drops the connection while it is idle: the next call still goes through,
    // on a new connection, and is sent once.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let second = call("keeps").await;
    assert_ne!(second, first);
    assert_eq!(keeps.accepted(), 2);
    // An application that closes after every answer gets a new connection for every call.
    for i in 1..=4 {
        assert_eq!(call("closes").await, i);
    }
    assert_eq!(closes.accepted(), 4);
}

#[tokio::test]
async fn an_application_whose_certificate_does_not_verify_gets_nothing() {
    use tokio::io::AsyncReadExt;
    use tokio_rustls::rustls;
    // A TLS server on loopback with a certificate no public root signed.
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.key_pair.serialize_der()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let seen = received.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut buf = [0u8; 4096];
                    if let Ok(n) = tls.read(&mut buf).await {
                        seen.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                }
            });
        }
    });
    let app = spawn_app().await;
    app.workspace("acme").await;
    let a = app
        .post("/v1/workspaces/acme/connections", json!({"name": "selfsigned", "app": "generic-api-key", "verify": false,
            "settings": {"base_url": format!("https://127.0.0.1:{port}")}, "credentials": {"api_key": KEY}}))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let r = app
        .get("/v1/workspaces/acme/connections/selfsigned/proxy/x")
        .await;
    assert_eq!(r.status, 502, "{}", r.text);
    assert_eq!(r.body["error"], "upstream_unreachable", "{}", r.text);
    assert!(r.text.contains("TLS"), "{}", r.text);
    assert!(!r.text.contains(KEY));
    assert!(
        received.lock().unwrap().is_empty(),
        "no request may reach an application whose certificate did not verify"
    );
}

/// The proxy's route is served ahead of the rest of the API; it still gets what every request
/// gets: the header limit, answers in the error shape, the request metrics by route template.
#[tokio::test]
async fn the_proxys_own_way_in_keeps_the_limits_errors_and_metrics_of_the_api() {
    let app = spawn_app().await;
    let up = Upstream::start(KEY, "u", "p").await;
    app.workspace("acme").await;
    api_key_connection(&app, &up, "billing", json!({})).await;
    let proxy = format!("{}/v1/workspaces/acme/connections/billing/proxy", app.url);

    let (ok, _) = proxy_echo(&app, &app.admin_key, "billing").await;
    assert_eq!(ok, 200);

    let hits = up.hits();
    let mut big = app
        .client
        .get(format!("{proxy}/echo"))
        .bearer_auth(&app.admin_key);
    for i in 0..3 {
        big = big.header(format!("x-filler-{i}"), "a".repeat(24 * 1024));
    }
    let big = big.send().await.unwrap();
    assert_eq!(big.status(), 431);
    let body: Value = big.json().await.unwrap();
    assert_eq!(body["error"], "headers_too_large", "{body}");
    assert_eq!(up.hits(), hits, "nothing oversized went upstream");

    let anonymous = app
        .client
        .get(format!("{proxy}/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let body: Value = anonymous.json().await.unwrap();
    assert!(
        body["error"].is_string() && body["message"].is_string(),
        "{body}"
    );

    // Percent-encoding that is not UTF-8: refused in the error shape, not as plain text.
    let garbled = app
        .client
        .get(format!("{proxy}/caf%FF"))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(garbled.status(), 400);
    let body: Value = garbled.json().await.unwrap();
    assert_eq!(body["error"], "invalid_path", "{body}");

    let metrics = metrics_text(&app).await;
    let proxied: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("latchkey_http_requests_total{"))
        .filter(|l| l.contains("route=\"/v1/workspaces/{ws}/connections/{conn}/proxy/{*path}\""))
        .collect();
    assert!(
        proxied.iter().any(|l| l.contains("status=\"200\"")),
        "{metrics}"
    );
    assert!(
        proxied.iter().any(|l| l.contains("status=\"401\"")),
        "{metrics}"
    );
}

#[tokio::test]
async fn answers_come_back_without_cookies_hop_headers_or_the_credential() {
    let app = spawn_app().await;
    let up = Upstream::start(KEY, "u", "p").await;
    app.workspace("acme").await;
    api_key_connection(&app, &up, "billing", json!({})).await;
    // A small answer (read whole) and a large one (streamed) take different ways back.
    for path in ["echo", "big?mb=1"] {
        let resp = app
            .client
            .get(format!(
                "{}/v1/workspaces/acme/connections/billing/proxy/{path}",
                app.url
            ))
            .bearer_auth(&app.admin_key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let h = resp.headers().clone();
        assert!(
            h.get("set-cookie").is_none(),
            "{path}: an upstream cookie came back"
        );
        assert!(
            h.get("x-answer-hop").is_none(),
            "{path}: a header the answer's Connection names came back"
        );
        assert!(
            h.get("keep-alive").is_none(),
            "{path}: Keep-Alive is hop-by-hop"
        );
        assert_eq!(
            h["x-received-key"], "[REDACTED]",
            "{path}: the credential came back in a header"
        );
        assert!(h.get("latchkey-queue-ms").is_some(), "{path}");
        let body = resp.bytes().await.unwrap();
        assert!(
            !body.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
            "{path}"
        );
        if path == "echo" {
            assert_eq!(h["x-upstream"], "echo");
            assert_eq!(
                h["content-length"].to_str().unwrap(),
                body.len().to_string()
            );
        } else {
            assert_eq!(body.len(), 1024 * 1024);
        }
    }
}

#[tokio::test]
async fn a_path_with_encoded_names_is_proxied_the_same_way() {
    // Proxied calls are told apart by a quick look at the path, which leaves names written
    // with percent-escapes to the router: the call must come out the same either way.
    let app = spawn_app().await;
    let up = Upstream::start(KEY, "u", "p").await;
    app.workspace("acme").await;
    api_key_connection(&app, &up, "billing", json!({})).await;
    for (ws, conn) in [("acme", "billing"), ("ac%6De", "bill%69ng")] {
        let resp = app
            .client
            .post(format!(
                "{}/v1/workspaces/{ws}/connections/{conn}/proxy/echo?n=1",
                app.url
            ))
            .bearer_auth(&app.admin_key)
            .body("hello")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{ws}/{conn}");
        assert!(resp.headers().get("latchkey-queue-ms").is_some());
        assert!(resp.headers().get("set-cookie").is_none());
        let got: Value = resp.json().await.unwrap();
        assert_eq!(got["path"], "/echo", "{ws}/{conn}: {got}");
        assert_eq!(got["body"], "hello", "{ws}/{conn}: {got}");
        assert_eq!(up.last_headers().unwrap()["x-api-key"], KEY, "{ws}/{conn}");
        assert_eq!(
            got["headers"]["x-api-key"], "[REDACTED]",
            "{ws}/{conn}: {got}"
        );
    }
    // Neither way finds a connection that is not there, nor lets a caller without a key in.
    for path in ["acme/connections/nope", "acme/connections/n%6Fpe"] {
        let r = app
            .client
            .get(format!("{}/v1/workspaces/{path}/proxy/echo", app.url))
            .bearer_auth(&app.admin_key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let r = app
            .client
            .get(format!("{}/v1/workspaces/{path}/proxy/echo", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn a_head_request_gets_the_headers_without_a_body_and_the_connection_goes_on() {
    // A HEAD answer says how long the body would be but sends none: if the proxy let a body
    // through, the caller's kept connection would read it as the start of the next answer.
    let app = spawn_app().await;
    let up = Upstream::start(KEY, "u", "p").await;
    app.workspace("acme").await;
    api_key_connection(&app, &up, "billing", json!({})).await;
    let client = reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let url = format!(
        "{}/v1/workspaces/acme/connections/billing/proxy/big?mb=1",
        app.url
    );
    for round in 0..2 {
        let head = client
            .head(&url)
            .bearer_auth(&app.admin_key)
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 200, "round {round}");
        let h = head.headers().clone();
        assert_eq!(
            h["content-type"], "application/octet-stream",
            "round {round}"
        );
        assert!(h.get("latchkey-queue-ms").is_some(), "round {round}");
        assert!(h.get("set-cookie").is_none(), "round {round}");
        assert!(head.bytes().await.unwrap().is_empty(), "round {round}");
        assert_eq!(up.last_headers().unwrap()["x-api-key"], KEY);
        let get = client
            .get(&url)
            .bearer_auth(&app.admin_key)
            .send()
            .await
            .unwrap();
        assert_eq!(get.status(), 200, "round {round}");
        let body = get.bytes().await.unwrap();
        assert_eq!(body.len(), 1024 * 1024, "round {round}");
        assert!(body.iter().all(|&b| b == b'x'), "round {round}");
    }
}

#[tokio::test]
async fn escaped_characters_reach_the_application_as_the_caller_wrote_them() {
    // The proxy decodes the caller's path to check it. What it sends on must mean the same: an
    // escaped `?` or `#` stays in the path rather than ending it, and an escaped `%` is not
    // handed over as an escape of its own, for the application to decode a second time.
    let app = spawn_app().await;
    let up = Upstream::start(KEY, "u", "p").await;
    app.workspace("acme").await;
    api_key_connection(&app, &up, "billing", json!({})).await;
    for (sent, arrives) in [
        ("files/what%3F.txt", "/files/what%3F.txt"),
        ("files/a%23b", "/files/a%23b"),
        ("files/100%25", "/files/100%25"),
        ("files/%2541", "/files/%2541"),
        ("files/a%20b", "/files/a%20b"),
        ("files/caf%C3%A9", "/files/caf%C3%A9"),
        ("files/plain-name_1.txt", "/files/plain-name_1.txt"),
    ] {
        let resp = app
            .client
            .get(format!(
                "{}/v1/workspaces/acme/connections/billing/proxy/{sent}?x=1&y=%3F",
                app.url
            ))
            .bearer_auth(&app.admin_key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{sent}");
        let got: Value = resp.json().await.unwrap();
        assert_eq!(got["path"], arrives, "{sent}: {got}");
        assert_eq!(up.last_query().unwrap(), "x=1&y=%3F", "{sent}");
        assert_eq!(up.last_headers().unwrap()["x-api-key"], KEY, "{sent}");
    }
}
