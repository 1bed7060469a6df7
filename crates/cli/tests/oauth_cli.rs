//! The OAuth and secret-consuming commands against a real server and the testkit's Salesforce
//! simulator: `connection create|authorize` with the browser step, `oauth-client`, `token`,
//! `run` and `proxy`.

use latchkey_core::outbound::Rewrites;
use latchkey_testkit::salesforce::{self, SalesforceSim};
use latchkey_testkit::upstream::Upstream;
use latchkey_testkit::{spawn_app_with, TestApp};
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const BIN: &str = env!("CARGO_BIN_EXE_latchkey");
const API_KEY: &str = "k-billing-7f3a";

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            code,
            "stdout: {}\nstderr: {}",
            self.stdout.chars().take(4000).collect::<String>(),
            self.stderr
        );
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// A server whose Salesforce hosts go to the simulator, with workspace `acme`.
async fn app_for(sim: &SalesforceSim) -> TestApp {
    let rewrites = Rewrites::parse(&sim.rewrites()).unwrap();
    let app = spawn_app_with(|c| c.outbound_rewrites = rewrites).await;
    sim.add_callback_url(
        salesforce::DEFAULT_CONSUMER_KEY,
        &format!("{}/oauth/callback", app.url),
    );
    app.workspace("acme").await;
    app
}

/// A `latchkey` command for this server, with no LATCHKEY_* variable of the test's own.
fn command(app: &TestApp, extra_env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("LATCHKEY_")) {
        cmd.env_remove(k);
    }
    cmd.env("LATCHKEY_URL", &app.url)
        .env("LATCHKEY_API_KEY", &app.admin_key)
        .envs(extra_env.iter().copied())
        .kill_on_drop(true);
    cmd
}

async fn run_env(app: &TestApp, env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> Out {
    let mut child = command(app, env)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("latchkey starts");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.expect("stdin");
    }
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("latchkey finishes within 60 s")
        .expect("latchkey output");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn run(app: &TestApp, args: &[&str]) -> Out {
    run_env(app, &[], args, None).await
}

/// A command still running: its stdout is read line by line.
struct Live {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    seen: Vec<String>,
}

impl Live {
    async fn start(app: &TestApp, args: &[&str], stdin: &str) -> Live {
        let mut child = command(app, &[])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("latchkey starts");
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(stdin.as_bytes()).await.expect("stdin");
        drop(input);
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Live {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The authorization URL: the first stdout line that is a URL (within 30 s).
    async fn authorize_url(&mut self) -> String {
        let seen = &mut self.seen;
        let lines = &mut self.lines;
        let wait = async {
            while let Some(line) = lines.next_line().await.expect("stdout readable") {
                seen.push(line.clone());
                if line.starts_with("http://") || line.starts_with("https://") {
                    return line.trim().to_string();
                }
            }
            panic!("latchkey ended without printing a URL: {seen:?}");
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .expect("the URL within 30 s")
    }

    fn pid(&self) -> String {
        self.child.id().expect("running").to_string()
    }

    /// Waits (at most 60 s) for the end; answers everything it printed.
    async fn finish(mut self) -> Out {
        let mut stderr = self.child.stderr.take().expect("stderr");
        let mut lines = self.lines;
        let mut seen = self.seen;
        let rest = async {
            while let Some(line) = lines.next_line().await.expect("stdout readable") {
                seen.push(line);
            }
            seen.join("\n")
        };
        let err = async {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s).await;
            s
        };
        let (stdout, stderr, status) = tokio::time::timeout(Duration::from_secs(60), async {
            tokio::join!(rest, err, self.child.wait())
        })
        .await
        .expect("latchkey finishes within 60 s");
        Out {
            code: status.expect("exit status").code().unwrap_or(-1),
            stdout,
            stderr,
        }
    }
}

/// Plays the user: logs in at the simulator and follows the redirect to Latchkey's callback.
async fn log_in(app: &TestApp, sim: &SalesforceSim, url: &str, user: &str, password: &str) {
    let location = sim.login_via_browser(url, user, password).await.unwrap();
    let page = app.client.get(&location).send().await.unwrap();
    assert_eq!(
        page.status(),
        200,
        "{}",
        page.text().await.unwrap_or_default()
    );
}

async fn set_oauth_client(app: &TestApp) {
    let out = run_env(
        app,
        &[],
        &[
            "oauth-client",
            "set",
            "acme",
            "salesforce",
            "--client-id",
            salesforce::DEFAULT_CONSUMER_KEY,
            "--client-secret-stdin",
        ],
        Some(&format!("{}\n", salesforce::DEFAULT_CONSUMER_SECRET)),
    )
    .await;
    out.assert_code(0);
    assert!(
        out.stdout.contains(&format!("{}/oauth/callback", app.url)),
        "the redirect URI to register: {}",
        out.stdout
    );
    assert!(!out.stdout.contains(salesforce::DEFAULT_CONSUMER_SECRET));
}

/// An active `oauth2_code` connection, authorized through the API and the simulator.
async fn authorized(app: &TestApp, sim: &SalesforceSim, name: &str) {
    let created = app
        .post(
            "/v1/workspaces/acme/connections",
            json!({"name": name, "app": "salesforce", "auth_mode": "oauth2_code"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let url = created.body["authorize_url"].as_str().unwrap();
    log_in(
        app,
        sim,
        url,
        salesforce::DEFAULT_USERNAME,
        salesforce::DEFAULT_PASSWORD,
    )
    .await;
}

async fn api_key_connection(app: &TestApp, up: &Upstream, name: &str) {
    let a = app
        .post(
            "/v1/workspaces/acme/connections",
            json!({"name": name, "app": "generic-api-key",
                "settings": {"base_url": up.url, "verify_path": "/me"},
                "credentials": {"api_key": API_KEY}}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
}

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

#[tokio::test]
async fn run_puts_fresh_secrets_in_the_environment_without_printing_them() {
    let sim = SalesforceSim::start().await;
    let app = app_for(&sim).await;
    set_oauth_client(&app).await;
    authorized(&app, &sim, "sf-prod").await;
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
