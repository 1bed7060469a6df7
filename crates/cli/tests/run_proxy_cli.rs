//! `run` (fresh secrets in a command's environment) and `proxy` (one request through Latchkey,
//! streamed) against a real server, the Salesforce simulator and the testkit's upstream API.

mod common;

use common::*;
use latchkey_testkit::salesforce::SalesforceSim;
use latchkey_testkit::upstream::Upstream;

#[tokio::test]
async fn run_puts_fresh_secrets_in_the_environment_without_printing_them() {
    let sim = SalesforceSim::start().await;
    let app = app_for(&sim).await;
    set_oauth_client(&app).await;
    authorized(&app, &sim, "sf-prod", &[]).await;
    let up = Upstream::start(API_KEY, "u", "p").await;
    api_key_connection(&app, &up, "billing").await;
    let token = app
        .get("/v1/workspaces/acme/connections/sf-prod/token")
        .await
        .body["access_token"]
        .as_str()
        .unwrap()
        .to_string();

    // The expected token travels in a variable of the test's own, not on a command line.
    let script = r#"test "$SF_TOKEN" = "$EXPECTED_TOKEN" && test "$SF_URL" = https://acme.my.salesforce.com && printf %s "$KEY" | wc -c"#;
    let out = run_env(
        &app,
        &[("EXPECTED_TOKEN", &token)],
        &[
            "run",
            "--workspace",
            "acme",
            "--env",
            "SF_TOKEN=sf-prod",
            "--env",
            "SF_URL=sf-prod.instance_url",
            "--env",
            "KEY=billing",
            "--",
            "sh",
            "-c",
            script,
        ],
        None,
    )
    .await;
    out.assert_code(0);
    assert_eq!(out.stdout.trim(), API_KEY.len().to_string());
    for secret in [token.as_str(), API_KEY] {
        assert!(!out.stdout.contains(secret) && !out.stderr.contains(secret));
    }

    let out = run(
        &app,
        &[
            "run",
            "-w",
            "acme",
            "--env",
            "KEY=billing.api_key",
            "--",
            "sh",
            "-c",
            "exit 7",
        ],
    )
    .await;
    out.assert_code(7);
    let out = run(
        &app,
        &[
            "run",
            "-w",
            "acme",
            "--env",
            "KEY=billing",
            "--",
            "sh",
            "-c",
            "kill -TERM $$",
        ],
    )
    .await;
    out.assert_code(128 + 15);

    // A missing field fails before anything runs, naming the variable.
    let out = run(
        &app,
        &[
            "run",
            "-w",
            "acme",
            "--env",
            "KEY=billing",
            "--env",
            "PG_PASSWORD=billing.password",
            "--",
            "sh",
            "-c",
            "echo ran",
        ],
    )
    .await;
    out.assert_code(1);
    assert!(
        out.stderr.contains("PG_PASSWORD") && out.stderr.contains("password"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("hint: its fields: api_key"),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains("ran") && !out.stderr.contains(API_KEY));
    let out = run(
        &app,
        &[
            "run",
            "-w",
            "acme",
            "--env",
            "X=nowhere",
            "--",
            "sh",
            "-c",
            "echo ran",
        ],
    )
    .await;
    out.assert_code(1);
    assert!(
        out.stderr.contains("--env X=nowhere") && out.stderr.contains("no connection `nowhere`"),
        "{}",
        out.stderr
    );

    let out = run(
        &app,
        &[
            "run",
            "-w",
            "acme",
            "--env",
            "KEY=billing",
            "--",
            "/nonexistent/latchkey-test-cmd",
        ],
    )
    .await;
    out.assert_code(127);
    assert!(out.stderr.contains("cannot run"), "{}", out.stderr);
}

#[tokio::test]
async fn proxy_streams_the_answer_and_exits_by_its_status() {
    let sim = SalesforceSim::start().await;
    let app = app_for(&sim).await;
    let up = Upstream::start(API_KEY, "u", "p").await;
    api_key_connection(&app, &up, "billing").await;

    let out = run(
        &app,
        &[
            "proxy",
            "acme/billing",
            "POST",
            "/echo?x=1&y=two",
            "--data",
            r#"{"a":1}"#,
            "--header",
            "X-Test: 1",
            "-i",
        ],
    )
    .await;
    out.assert_code(0);
    let echo = out.json();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/echo");
    assert_eq!(echo["query"], "x=1&y=two");
    assert_eq!(echo["body"], r#"{"a":1}"#);
    assert_eq!(echo["headers"]["x-test"], "1");
    assert_eq!(echo["headers"]["content-type"], "application/json");
    assert!(
        echo["headers"].get("x-api-key").is_some(),
        "the injected key header: {}",
        out.stdout
    );
    assert!(
        out.stderr.starts_with("HTTP/1.1 200 OK") && out.stderr.contains("latchkey-queue-ms:"),
        "{}",
        out.stderr
    );

    let out = run(&app, &["proxy", "acme/billing", "GET", "/forbidden"]).await;
    out.assert_code(1);
    assert!(
        out.stdout.contains("insufficient_scope"),
        "the body is printed: {}",
        out.stdout
    );

    let out = run(&app, &["proxy", "acme/billing", "GET", "/big?mb=8"]).await;
    out.assert_code(0);
    assert_eq!(out.stdout.len(), 8 * 1024 * 1024);
    assert!(out.stdout.bytes().all(|b| b == b'x'));

    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "from a file").unwrap();
    let out = run(
        &app,
        &[
            "proxy",
            "acme/billing",
            "PUT",
            "/echo",
            "--data-file",
            file.path().to_str().unwrap(),
        ],
    )
    .await;
    out.assert_code(0);
    assert_eq!(out.json()["body"], "from a file");

    // Past 1 MiB a file streams; stdin works too.
    let big = "y".repeat(2 * 1024 * 1024 + 5);
    std::fs::write(file.path(), &big).unwrap();
    let out = run(
        &app,
        &[
            "proxy",
            "acme/billing",
            "PUT",
            "/echo",
            "--data-file",
            file.path().to_str().unwrap(),
        ],
    )
    .await;
    out.assert_code(0);
    assert_eq!(out.json()["body"].as_str().map(str::len), Some(big.len()));
    let out = run_env(
        &app,
        &[],
        &[
            "proxy",
            "acme/billing",
            "PATCH",
            "/echo",
            "--data-stdin",
            "-H",
            "Content-Type: text/plain",
        ],
        Some("piped"),
    )
    .await;
    out.assert_code(0);
    assert_eq!(out.json()["body"], "piped");
    assert_eq!(out.json()["headers"]["content-type"], "text/plain");

    // Salesforce: the API base is the token's instance_url; a token without the `api` scope
    // comes back 401 with Latchkey's hint.
    set_oauth_client(&app).await;
    authorized(&app, &sim, "sf-prod", &[]).await;
    let out = run(
        &app,
        &[
            "proxy",
            "acme/sf-prod",
            "GET",
            "/services/data/v62.0/limits",
        ],
    )
    .await;
    out.assert_code(0);
    assert!(out.stdout.contains("DailyApiRequests"), "{}", out.stdout);
    authorized(&app, &sim, "sf-noapi", &["refresh_token", "id"]).await;
    let out = run(
        &app,
        &[
            "proxy",
            "acme/sf-noapi",
            "GET",
            "/services/data/v62.0/limits",
        ],
    )
    .await;
    out.assert_code(1);
    assert!(out.stdout.contains("INVALID_SESSION_ID"), "{}", out.stdout);
    assert!(
        out.stderr.contains("hint: the token lacks a scope"),
        "{}",
        out.stderr
    );

    // Latchkey's own refusal reads like any other error.
    let out = run(&app, &["proxy", "acme/nowhere", "GET", "/echo"]).await;
    out.assert_code(1);
    assert!(
        out.stderr.contains("error: ") && out.stderr.contains("nowhere"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
}
