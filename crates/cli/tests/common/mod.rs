//! Helpers of the CLI's OAuth, token, run and proxy tests: a server wired to the Salesforce
//! simulator, `latchkey` runs (to the end, or live with stdout read line by line), and the
//! browser step played through the simulator.
#![allow(dead_code)] // each test file uses its own part

use latchkey_core::outbound::Rewrites;
use latchkey_testkit::salesforce::{self, SalesforceSim};
use latchkey_testkit::upstream::Upstream;
use latchkey_testkit::{spawn_app_with, TestApp};
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_latchkey");
pub const API_KEY: &str = "k-billing-7f3a";

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            code,
            "stdout: {}\nstderr: {}",
            self.stdout.chars().take(4000).collect::<String>(),
            self.stderr
        );
        self
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// A server whose Salesforce hosts go to the simulator, with workspace `acme`.
pub async fn app_for(sim: &SalesforceSim) -> TestApp {
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
pub fn command(app: &TestApp, extra_env: &[(&str, &str)]) -> Command {
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

pub async fn run_env(
    app: &TestApp,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: Option<&str>,
) -> Out {
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

pub async fn run(app: &TestApp, args: &[&str]) -> Out {
    run_env(app, &[], args, None).await
}

/// A command still running: its stdout is read line by line.
pub struct Live {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    seen: Vec<String>,
}

impl Live {
    pub async fn start(app: &TestApp, args: &[&str], stdin: &str) -> Live {
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
    pub async fn authorize_url(&mut self) -> String {
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

    /// The next line of stdout (within 30 s).
    pub async fn next_line(&mut self) -> String {
        let line = tokio::time::timeout(Duration::from_secs(30), self.lines.next_line())
            .await
            .expect("a line within 30 s")
            .expect("stdout readable")
            .unwrap_or_else(|| panic!("latchkey ended; it printed {:?}", self.seen));
        self.seen.push(line.clone());
        line
    }

    pub fn pid(&self) -> String {
        self.child.id().expect("running").to_string()
    }

    /// Waits (at most 60 s) for the end; answers everything it printed.
    pub async fn finish(mut self) -> Out {
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
pub async fn log_in(app: &TestApp, sim: &SalesforceSim, url: &str, user: &str, password: &str) {
    let location = sim.login_via_browser(url, user, password).await.unwrap();
    let page = app.client.get(&location).send().await.unwrap();
    assert_eq!(
        page.status(),
        200,
        "{}",
        page.text().await.unwrap_or_default()
    );
}

pub async fn set_oauth_client(app: &TestApp) {
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

/// An active `oauth2_code` connection asking for `scopes` (empty: the defaults), authorized
/// through the API and the simulator.
pub async fn authorized(app: &TestApp, sim: &SalesforceSim, name: &str, scopes: &[&str]) {
    let mut body = json!({"name": name, "app": "salesforce", "auth_mode": "oauth2_code"});
    if !scopes.is_empty() {
        body["settings"] = json!({ "scopes": scopes });
    }
    let created = app.post("/v1/workspaces/acme/connections", body).await;
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

pub async fn api_key_connection(app: &TestApp, up: &Upstream, name: &str) {
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
