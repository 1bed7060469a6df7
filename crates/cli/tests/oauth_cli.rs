//! `connection create|authorize` with the browser step against the testkit's Salesforce
//! simulator, `oauth-client` and `token`.

mod common;

use common::*;
use latchkey_testkit::salesforce::{self, SalesforceSim};
use std::time::Duration;
use tokio::process::Command;

#[tokio::test]
async fn create_prints_the_url_waits_for_the_login_and_reports_the_user() {
    let sim = SalesforceSim::start().await;
    let app = app_for(&sim).await;
    let client_id = format!("client_id={}", salesforce::DEFAULT_CONSUMER_KEY);
    let mut live = Live::start(
        &app,
        &[
            "connection",
            "create",
            "--workspace",
            "acme",
            "--name",
            "sf-prod",
            "--app",
            "salesforce",
            "--account-type",
            "sandbox",
            "--scope",
            "api",
            "--scope",
            "refresh_token",
            "--secret",
            &client_id,
            "--secret-stdin",
            "client_secret",
            "--no-browser",
            "--timeout",
            "60",
        ],
        &format!("{}\n", salesforce::DEFAULT_CONSUMER_SECRET),
    )
    .await;
    let url = live.authorize_url().await;
    assert!(url.starts_with(sim.sandbox_url()), "{url}");
    assert!(url.contains("scope=api+refresh_token"), "{url}");
    // Still waiting: the connection is pending.
    let c = app.get("/v1/workspaces/acme/connections/sf-prod").await;
    assert_eq!(c.body["status"], "pending_authorization", "{}", c.text);
    assert_eq!(c.body["auth_mode"], "oauth2_code");
    assert_eq!(c.body["settings"]["account_type"], "sandbox");

    log_in(
        &app,
        &sim,
        &url,
        salesforce::SANDBOX_USERNAME,
        salesforce::SANDBOX_PASSWORD,
    )
    .await;
    let out = live.finish().await;
    out.assert_code(0);
    assert!(
        out.stdout
            .contains(&format!("is active as {}", salesforce::SANDBOX_USERNAME)),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains(salesforce::DEFAULT_CONSUMER_SECRET));
    let c = app.get("/v1/workspaces/acme/connections/sf-prod").await;
    assert_eq!(c.body["status"], "active");
}

#[tokio::test]
async fn a_denied_login_fails_and_ctrl_c_or_the_timeout_end_the_wait() {
    let sim = SalesforceSim::start().await;
    let app = app_for(&sim).await;
    set_oauth_client(&app).await;
    let create = |name: &'static str, timeout: &'static str| {
        [
            "connection",
            "create",
            "-w",
            "acme",
            "--name",
            name,
            "--app",
            "salesforce",
            "--no-browser",
            "--timeout",
            timeout,
        ]
    };

    let mut live = Live::start(&app, &create("sf-denied", "60"), "").await;
    let url = live.authorize_url().await;
    let location = sim
        .deny_via_browser(
            &url,
            salesforce::DEFAULT_USERNAME,
            salesforce::DEFAULT_PASSWORD,
        )
        .await
        .unwrap();
    let page = app.client.get(&location).send().await.unwrap();
    assert_eq!(page.status(), 400);
    let out = live.finish().await;
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("error: connection `sf-denied` was not authorized")
            && out.stderr.contains("access_denied")
            && out
                .stderr
                .contains("latchkey connection authorize acme/sf-denied"),
        "{}",
        out.stderr
    );

    // Ctrl-C cancels: the pending connection is deleted.
    let mut live = Live::start(&app, &create("sf-cancel", "60"), "").await;
    live.authorize_url().await;
    let sent = Command::new("kill")
        .args(["-INT", &live.pid()])
        .status()
        .await
        .unwrap();
    assert!(sent.success());
    let out = live.finish().await;
    out.assert_code(130);
    assert!(out.stderr.contains("Cancelled"), "{}", out.stderr);
    let c = app.get("/v1/workspaces/acme/connections/sf-cancel").await;
    assert_eq!(
        c.status, 404,
        "cancelling leaves nothing behind: {}",
        c.text
    );

    let out = run(&app, &create("sf-slow", "2")).await;
    out.assert_code(1);
    assert!(
        out.stderr.contains("did not finish within 2 s")
            && out
                .stderr
                .contains("latchkey connection authorize acme/sf-slow"),
        "{}",
        out.stderr
    );
    let c = app.get("/v1/workspaces/acme/connections/sf-slow").await;
    assert_eq!(c.body["status"], "pending_authorization", "kept to resume");
}

#[tokio::test]
async fn no_wait_oauth_client_authorize_and_token() {
    let sim = SalesforceSim::start().await;
    let app = app_for(&sim).await;
    set_oauth_client(&app).await;
    let out = run(&app, &["oauth-client", "show", "acme", "salesforce"]).await;
    out.assert_code(0);
    assert!(
        out.stdout.contains(salesforce::DEFAULT_CONSUMER_KEY)
            && out.stdout.contains("stored")
            && out.stdout.contains(&format!("{}/oauth/callback", app.url)),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains(salesforce::DEFAULT_CONSUMER_SECRET));

    // No client id on the connection: the workspace's client is used. --no-wait returns at once.
    let started = std::time::Instant::now();
    let out = run(
        &app,
        &[
            "connection",
            "create",
            "-w",
            "acme",
            "--name",
            "sf-prod",
            "--app",
            "salesforce",
            "--no-browser",
            "--no-wait",
        ],
    )
    .await;
    out.assert_code(0);
    assert!(started.elapsed() < Duration::from_secs(10));
    let url = out
        .stdout
        .lines()
        .find(|l| l.starts_with("http"))
        .unwrap_or_else(|| panic!("no URL in {}", out.stdout))
        .to_string();
    assert!(url.contains(salesforce::DEFAULT_CONSUMER_KEY), "{url}");
    log_in(
        &app,
        &sim,
        &url,
        salesforce::DEFAULT_USERNAME,
        salesforce::DEFAULT_PASSWORD,
    )
    .await;
    let c = app.get("/v1/workspaces/acme/connections/sf-prod").await;
    assert_eq!(c.body["status"], "active", "{}", c.text);

    // A fresh link for an existing connection.
    let out = run(
        &app,
        &[
            "connection",
            "authorize",
            "acme/sf-prod",
            "--no-browser",
            "--no-wait",
            "--json",
        ],
    )
    .await;
    out.assert_code(0);
    let answer = out.json();
    assert!(answer["authorize_url"]
        .as_str()
        .unwrap()
        .starts_with("http"));
    assert_eq!(answer["connection"]["name"], "sf-prod");
    // Re-authorizing an active connection waits for the new login, not its old state.
    let mut live = Live::start(
        &app,
        &[
            "connection",
            "authorize",
            "acme/sf-prod",
            "--no-browser",
            "--timeout",
            "60",
        ],
        "",
    )
    .await;
    let url = live.authorize_url().await;
    log_in(
        &app,
        &sim,
        &url,
        salesforce::DEFAULT_USERNAME,
        salesforce::DEFAULT_PASSWORD,
    )
    .await;
    let out = live.finish().await;
    out.assert_code(0);
    assert!(
        out.stdout
            .contains(&format!("is active as {}", salesforce::DEFAULT_USERNAME)),
        "{}",
        out.stdout
    );

    let expected = app
        .get("/v1/workspaces/acme/connections/sf-prod/token")
        .await;
    assert_eq!(expected.status, 200, "{}", expected.text);
    let token = expected.body["access_token"].as_str().unwrap();
    let out = run(&app, &["token", "acme/sf-prod"]).await;
    out.assert_code(0);
    assert_eq!(
        out.stdout,
        format!("{token}\n"),
        "only the token and a newline"
    );
    let out = run(&app, &["token", "acme/sf-prod", "--json"]).await;
    out.assert_code(0);
    assert_eq!(out.json()["instance_url"], "https://acme.my.salesforce.com");
    let before = sim.refresh_count();
    let out = run(&app, &["token", "acme/sf-prod", "--refresh"]).await;
    out.assert_code(0);
    assert_eq!(sim.refresh_count(), before + 1);
    let fresh = out.stdout.trim_end_matches('\n');
    assert!(!fresh.is_empty() && fresh != token && !fresh.contains('\n'));

    run(&app, &["oauth-client", "delete", "acme", "salesforce"])
        .await
        .assert_code(0);
    let out = run(&app, &["oauth-client", "show", "acme", "salesforce"]).await;
    out.assert_code(1);
}
