//! Health and webhooks in a real browser (headless Chromium through chromedriver): the
//! connections page shows when each connection was last checked, last OK and checked next; a
//! connection's page shows its timeline with the failing and recovered events the probes
//! caused; the webhooks page adds an endpoint, shows its secret once, lists deliveries and
//! retries one.

#[path = "ui/browser.rs"]
#[allow(dead_code)]
mod browser;

use browser::{start_browser, Browser};
use latchkey_testkit::upstream::Upstream;
use latchkey_testkit::{spawn_app_with, TestApp};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test]
async fn health_timeline_and_webhooks_in_a_real_browser() {
    let Some(browser) = start_browser().await else {
        return;
    };
    let app = spawn_app_with(|c| {
        c.background_tick = Duration::from_millis(100);
        c.health_interval = Duration::from_secs(5);
        c.webhook_retry_base = Duration::from_millis(200);
    })
    .await;
    let up = Upstream::start("key-1", "", "").await;
    let outcome = browser
        .attempt("health", scenario(&browser, &app, &up))
        .await;
    browser.close(outcome).await;
}

async fn wait_status(app: &TestApp, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        let c = app.get("/v1/workspaces/acme/connections/crm").await;
        if c.body["status"] == status && !c.body["health"]["last_checked_at"].is_null() {
            return;
        }
        assert!(Instant::now() < deadline, "never {status}: {}", c.text);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn scenario(b: &Browser, app: &TestApp, up: &Upstream) {
    app.workspace("acme").await;
    // A webhook receiver that fails its first answer.
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let rx = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    axum::http::StatusCode::BAD_GATEWAY
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, rx).await;
    });

    b.goto(&format!("{}/", app.url)).await;
    b.sign_in(&app.admin_key).await;

    // The webhooks page: add one; its secret is shown once.
    b.goto(&format!("{}/ui/webhooks?ws=acme", app.url)).await;
    b.fill("#hook-url", &hook_url).await;
    b.fill("#hook-events", "connection.*").await;
    b.click("#hook-create").await;
    let secret = b.text_with("#hook-secret", "whsec_").await;
    assert!(secret.contains("shown once"));
    b.find(".hook-table tbody tr").await;

    // A connection, then a broken upstream key and back: the probes find both.
    let r = app
        .post(
            "/v1/workspaces/acme/connections",
            json!({"name": "crm", "app": "generic-api-key", "auth_mode": "api_key",
                "settings": {"base_url": up.url, "verify_path": "/me"},
                "credentials": {"api_key": "key-1"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    wait_status(app, "active").await;
    up.set_api_key("key-2");
    wait_status(app, "failing").await;
    up.set_api_key("key-1");
    wait_status(app, "active").await;

    // The connections page shows the health columns.
    b.goto(&format!("{}/ui/connections?ws=acme", app.url)).await;
    let row = "#conn-list tr[data-name=\"crm\"]";
    b.find(row).await;
    let checked = b.text_with(&format!("{row} .h-checked"), "Checked").await;
    assert!(!checked.contains('—'), "{checked}");
    let ok = b.text_with(&format!("{row} .h-ok"), "Last OK").await;
    assert!(!ok.contains('—'), "{ok}");
    let next = b.text_with(&format!("{row} .h-next"), "Next").await;
    assert!(!next.contains('—'), "{next}");
    b.screenshot("connections-health-1280").await;

    // Its page: health and the timeline with what the probes did.
    b.click(&format!("{row} a.conn-link")).await;
    b.text_with("#conn-title", "crm").await;
    b.find("#timeline li[data-action=\"connection.failing\"]")
        .await;
    b.find("#timeline li[data-action=\"connection.recovered\"]")
        .await;
    b.find("#timeline li[data-action=\"connection.created\"]")
        .await;
    b.text_with("#conn-health", "Last OK").await;
    b.screenshot("connection-timeline-1280").await;

    // Deliveries: the first failed once and was retried; a manual retry sends it again.
    b.goto(&format!("{}/ui/webhooks?ws=acme", app.url)).await;
    b.click(".hook-table button[data-action=deliveries]").await;
    b.find(".delivery-table tr[data-status=succeeded]").await;
    let before = calls.load(Ordering::SeqCst);
    b.click(".delivery-table tr[data-status=succeeded] button[data-action=retry]")
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while calls.load(Ordering::SeqCst) == before {
        assert!(
            Instant::now() < deadline,
            "the retry never reached the endpoint"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.screenshot("webhooks-1280").await;
    let console = b.console().await;
    let bad: Vec<&String> = console
        .iter()
        .filter(|m| {
            m.contains("Uncaught")
                || m.contains("Content Security Policy")
                || m.contains("Refused to")
        })
        .collect();
    assert!(bad.is_empty(), "console: {console:#?}");
}
