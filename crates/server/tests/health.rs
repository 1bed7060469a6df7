//! Background health over real HTTP and databases on loopback: probes turn connections
//! `failing` (or `revoked`) within one interval with no flow call and `active` again when fixed,
//! with their events; tokens are refreshed ahead of expiry so reads never wait on the provider;
//! on PostgreSQL, three instances probe each connection once per interval, not three times.

use axum::extract::State;
use axum::response::IntoResponse;
use latchkey_core::outbound::Rewrites;
use latchkey_testkit::salesforce::{self, SalesforceSim};
use latchkey_testkit::upstream::Upstream;
use latchkey_testkit::{spawn_app_postgres, spawn_app_with, start_peer, TestApp};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn quick(c: &mut latchkey_server::config::Config) {
    c.background_tick = Duration::from_millis(100);
    c.health_interval = Duration::from_secs(5);
}

/// Polls the connection until `done` holds (at most 25 s); answers its last body.
async fn wait_connection(
    app: &TestApp,
    name: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        let c = app
            .get(&format!("/v1/workspaces/acme/connections/{name}"))
            .await;
        if done(&c.body) {
            return c.body;
        }
        assert!(Instant::now() < deadline, "{what}: {}", c.text);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn timeline(app: &TestApp, name: &str) -> Vec<String> {
    let t = app
        .get(&format!("/v1/workspaces/acme/connections/{name}/events"))
        .await;
    assert_eq!(t.status, 200, "{}", t.text);
    t.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_changed_api_key_turns_the_connection_failing_and_recovered_without_a_flow_call() {
    let app = spawn_app_with(quick).await;
    app.workspace("acme").await;
    let up = Upstream::start("key-1", "", "").await;
    let r = app
        .post(
            "/v1/workspaces/acme/connections",
            json!({"name": "crm", "app": "generic-api-key", "auth_mode": "api_key",
                "settings": {"base_url": up.url, "verify_path": "/me"},
                "credentials": {"api_key": "key-1"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // Probed within the interval of its creation.
    let c = wait_connection(&app, "crm", "first probe", |c| {
        !c["health"]["last_ok_at"].is_null()
    })
    .await;
    assert_eq!(c["health"]["consecutive_failures"], 0);
    assert!(c["health"]["next_check_at"].is_string(), "{c}");
    assert!(c["health"]["last_error"].is_null());

    up.set_api_key("key-2");
    let c = wait_connection(&app, "crm", "failing after the upstream key changed", |c| {
        c["status"] == "failing"
    })
    .await;
    assert!(
        c["status_reason"]
            .as_str()
            .unwrap()
            .contains("health check failed"),
        "{c}"
    );
    assert!(c["hint"].is_string(), "{c}");
    assert!(c["health"]["consecutive_failures"].as_i64().unwrap() >= 1);
    assert!(
        c["health"]["last_error"].as_str().unwrap().contains("401"),
        "{c}"
    );
    assert!(!c.to_string().contains("key-1"), "no secret in the answer");
    assert!(timeline(&app, "crm")
        .await
        .contains(&"connection.failing".to_string()));

    up.set_api_key("key-1");
    let c = wait_connection(&app, "crm", "recovered", |c| c["status"] == "active").await;
    assert_eq!(c["health"]["consecutive_failures"], 0);
    let events = timeline(&app, "crm").await;
    assert!(
        events.contains(&"connection.recovered".to_string()),
        "{events:?}"
    );
    // Probes off for one connection: no next check.
    let r = app
        .patch(
            "/v1/workspaces/acme/connections/crm",
            json!({"settings": {"health_check_interval_seconds": 0}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    wait_connection(&app, "crm", "probes off", |c| {
        c["health"]["next_check_at"].is_null()
    })
    .await;
    let r = app
        .patch(
            "/v1/workspaces/acme/connections/crm",
            json!({"settings": {"health_check_interval_seconds": 3}}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
}

#[tokio::test]
async fn a_stopped_database_user_turns_failing_and_recovers() {
    let Some(admin_url) = std::env::var("LATCHKEY_TEST_POSTGRES_URL").ok() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "LATCHKEY_TEST_POSTGRES_URL is needed in CI"
        );
        eprintln!("skipping: LATCHKEY_TEST_POSTGRES_URL is not set");
        return;
    };
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    let role = format!("lk_probe_{}", std::process::id());
    let _ = sqlx::query(&format!("DROP ROLE IF EXISTS {role}"))
        .execute(&mut admin)
        .await;
    sqlx::query(&format!(
        "CREATE ROLE {role} LOGIN PASSWORD 'probe-Secret-1'"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    let app = spawn_app_with(quick).await;
    app.workspace("acme").await;
    let r = app
        .post(
            "/v1/workspaces/acme/connections",
            json!({"name": "warehouse", "app": "postgres", "auth_mode": "database",
                "settings": {"tls": "disable"},
                "credentials": {"host": "127.0.0.1", "port": 5432, "database": "postgres",
                    "username": role, "password": "probe-Secret-1"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    sqlx::query(&format!("ALTER ROLE {role} NOLOGIN"))
        .execute(&mut admin)
        .await
        .unwrap();
    let c = wait_connection(
        &app,
        "warehouse",
        "failing once the user cannot log in",
        |c| c["status"] == "failing",
    )
    .await;
    assert!(!c.to_string().contains("probe-Secret-1"));
    sqlx::query(&format!("ALTER ROLE {role} LOGIN"))
        .execute(&mut admin)
        .await
        .unwrap();
    wait_connection(&app, "warehouse", "recovered", |c| c["status"] == "active").await;
    let events = timeline(&app, "warehouse").await;
    assert!(
        events.contains(&"connection.failing".to_string()),
        "{events:?}"
    );
    assert!(
        events.contains(&"connection.recovered".to_string()),
        "{events:?}"
    );
    drop(app);
    let _ = sqlx::query(&format!("DROP ROLE IF EXISTS {role}"))
        .execute(&mut admin)
        .await;
}

#[tokio::test]
async fn a_revoked_salesforce_grant_turns_revoked_within_one_interval() {
    let sim = SalesforceSim::start().await;
    let rewrites = Rewrites::parse(&sim.rewrites()).unwrap();
    let app = spawn_app_with(|c| {
        quick(c);
        c.outbound_rewrites = rewrites;
    })
    .await;
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
    let created = app
        .post(
            "/v1/workspaces/acme/connections",
            json!({"name": "sf", "app": "salesforce",
            "auth_mode": "oauth2_code", "settings": {"account_type": "production"}}),
        )
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
    wait_connection(&app, "sf", "a first good probe", |c| {
        !c["health"]["last_ok_at"].is_null()
    })
    .await;
    let refreshes = sim.refresh_count();

    sim.revoke_all_grants_of(salesforce::DEFAULT_USERNAME);
    let c = wait_connection(&app, "sf", "revoked by a probe", |c| {
        c["status"] == "revoked"
    })
    .await;
    assert!(
        c["status_reason"]
            .as_str()
            .unwrap()
            .contains("invalid_grant"),
        "{c}"
    );
    assert!(c["hint"].as_str().unwrap().contains("re-authoriz"), "{c}");
    // The probe got a 401 on userinfo, refreshed once, and the refresh said invalid_grant.
    assert_eq!(sim.refresh_count(), refreshes + 1);
    assert!(timeline(&app, "sf")
        .await
        .contains(&"connection.revoked".to_string()));
}

/// A token endpoint (client credentials) issuing short-lived tokens, and an API that accepts
/// only a live one. It records when each token was issued.
#[derive(Default)]
struct TokenServer {
    issued: Mutex<Vec<(String, Instant)>>,
    expired_uses: Mutex<usize>,
}

const LIFE_SECS: u64 = 6;

async fn token_endpoint(State(s): State<Arc<TokenServer>>) -> impl IntoResponse {
    let mut issued = s.issued.lock().unwrap();
    let token = format!("tok-{}", issued.len() + 1);
    issued.push((token.clone(), Instant::now()));
    axum::Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": LIFE_SECS}))
}

async fn api(
    State(s): State<Arc<TokenServer>>,
    headers: axum::http::HeaderMap,
) -> impl IntoResponse {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string();
    let issued = s.issued.lock().unwrap();
    match issued.iter().find(|(t, _)| *t == bearer) {
        Some((_, at)) if at.elapsed() < Duration::from_secs(LIFE_SECS) => {
            axum::http::StatusCode::OK
        }
        Some(_) => {
            *s.expired_uses.lock().unwrap() += 1;
            axum::http::StatusCode::UNAUTHORIZED
        }
        None => axum::http::StatusCode::UNAUTHORIZED,
    }
}

#[tokio::test]
async fn tokens_are_refreshed_ahead_so_reads_never_wait_and_each_lifetime_costs_one_refresh() {
    let server = Arc::new(TokenServer::default());
    let router = axum::Router::new()
        .route("/token", axum::routing::post(token_endpoint))
        .route("/me", axum::routing::get(api))
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let app = spawn_app_with(quick).await;
    app.workspace("acme").await;
    let r = app
        .post(
            "/v1/workspaces/acme/connections",
            json!({"name": "api", "app": "generic-oauth2", "auth_mode": "oauth2_client_credentials",
                "settings": {"token_url": format!("{base}/token"), "base_url": base, "verify_path": "/me",
                    "authorization_url": format!("{base}/authorize"), "health_check_interval_seconds": 0},
                "credentials": {"client_id": "cid", "client_secret": "csecret"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // Continuous reads over three lifetimes.
    let window = Duration::from_secs(LIFE_SECS * 3);
    let start = Instant::now();
    let mut reads = 0;
    while start.elapsed() < window {
        let before = Instant::now();
        let t = app.get("/v1/workspaces/acme/connections/api/token").await;
        assert_eq!(t.status, 200, "{}", t.text);
        let token = t.body["access_token"].as_str().unwrap().to_string();
        let issued_at = server
            .issued
            .lock()
            .unwrap()
            .iter()
            .find(|(k, _)| *k == token)
            .map(|(_, at)| *at)
            .expect("a token the provider issued");
        // The read was answered with a token that existed before it began: it did not wait
        // for a refresh (the first read after creation excepted: that token came with it).
        if reads > 0 {
            assert!(
                issued_at < before,
                "read {reads} waited for a refresh of its own"
            );
        }
        reads += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let issued = server.issued.lock().unwrap().clone();
    // One refresh per lifetime: never two while a token had most of its life left.
    for pair in issued.windows(2) {
        let gap = pair[1].1 - pair[0].1;
        assert!(
            gap >= Duration::from_secs(LIFE_SECS) * 6 / 10,
            "two refreshes {gap:?} apart within one {LIFE_SECS} s lifetime: {issued:?}"
        );
    }
    assert!(
        issued.len() >= 3,
        "refreshed ahead, lifetime after lifetime: {issued:?}"
    );
    assert!(issued.len() <= 5, "{issued:?}");
    assert!(reads > 50);
}

#[tokio::test]
async fn three_instances_on_postgres_probe_each_connection_once_per_interval() {
    let Some(first) = spawn_app_postgres().await else {
        return;
    };
    // The instances run with the default interval; the per-connection setting drives all three.
    let peers = [start_peer(&first).await, start_peer(&first).await];
    first.workspace("acme").await;
    let up = Upstream::start("key-1", "", "").await;
    const N: usize = 4;
    for i in 0..N {
        let r = first
            .post(
                "/v1/workspaces/acme/connections",
                json!({"name": format!("c{i}"), "app": "generic-api-key", "auth_mode": "api_key",
                    "settings": {"base_url": up.url, "verify_path": "/me", "health_check_interval_seconds": 5},
                    "credentials": {"api_key": "key-1"}}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    // A slow upstream: a probe takes long enough that other instances look for due work while
    // it runs (the lease is what keeps them off it).
    up.set_delay(Duration::from_millis(1500));
    let created_hits = up.hits();
    let window = Duration::from_secs(16);
    tokio::time::sleep(window).await;
    let probes = up.hits() - created_hits;
    // At most window / interval + 1 per connection; three instances each probing would be 3×.
    let most = N * (16 / 5 + 1);
    assert!(
        probes >= N * 2,
        "every connection was probed on its interval: {probes}"
    );
    assert!(
        probes <= most,
        "{probes} probes of {N} connections in 16 s: more than once per interval"
    );
    drop(peers);
}
