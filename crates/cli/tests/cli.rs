//! The `latchkey` binary against a real server: started in-process for client commands, and
//! as `latchkey serve` itself for the first-start behaviour.

use latchkey_testkit::upstream::Upstream;
use latchkey_testkit::{spawn_app, TestApp};
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdout, Command};

const BIN: &str = env!("CARGO_BIN_EXE_latchkey");

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }

    fn assert_ok(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    /// Exit 1 with `error: …` and `hint: …` lines on stderr, nothing on stdout.
    fn assert_failed_with_hint(&self) -> &Self {
        assert_eq!(
            self.code, 1,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        assert!(
            self.stderr.lines().any(|l| l.starts_with("error: ")),
            "{}",
            self.stderr
        );
        assert!(
            self.stderr.lines().any(|l| l.starts_with("hint: ")),
            "{}",
            self.stderr
        );
        self
    }
}

/// A `latchkey` command with no LATCHKEY_* variable from the test's own environment.
fn command(env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("LATCHKEY_")) {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied()).kill_on_drop(true);
    cmd
}

async fn run_with(env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> Out {
    let mut cmd = command(env);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("latchkey starts");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input
            .write_all(text.as_bytes())
            .await
            .expect("stdin written");
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

async fn run_as(app: &TestApp, key: &str, args: &[&str]) -> Out {
    run_with(
        &[("LATCHKEY_URL", &app.url), ("LATCHKEY_API_KEY", key)],
        args,
        None,
    )
    .await
}

async fn run(app: &TestApp, args: &[&str]) -> Out {
    run_as(app, &app.admin_key, args).await
}

/// Creates a verified `generic-api-key` connection through the CLI, the key read from stdin.
async fn create_api_key_connection(
    app: &TestApp,
    ws: &str,
    name: &str,
    upstream: &Upstream,
    key: &str,
) -> Out {
    let base = format!("base_url={}", upstream.url);
    let args = [
        "connection",
        "create",
        "--workspace",
        ws,
        "--name",
        name,
        "--app",
        "generic-api-key",
        "--set",
        &base,
        "--set",
        "verify_path=/me",
        "--secret-stdin",
        "api_key",
    ];
    run_with(
        &[
            ("LATCHKEY_URL", &app.url),
            ("LATCHKEY_API_KEY", &app.admin_key),
        ],
        &args,
        Some(&format!("{key}\n")),
    )
    .await
}

#[tokio::test]
async fn workspaces_are_created_and_listed() {
    let app = spawn_app().await;
    let out = run(
        &app,
        &["workspace", "create", "acme", "--name", "Acme Inc."],
    )
    .await;
    out.assert_ok();
    assert!(out.stdout.contains("acme"), "{}", out.stdout);

    let out = run(&app, &["workspace", "list"]).await;
    out.assert_ok();
    assert!(
        out.stdout.contains("SLUG")
            && out.stdout.contains("acme")
            && out.stdout.contains("Acme Inc."),
        "{}",
        out.stdout
    );

    let list = run(&app, &["workspace", "list", "--json"]).await;
    let items = list.assert_ok().json()["items"]
        .as_array()
        .cloned()
        .expect("items");
    assert!(items.iter().any(|w| w["slug"] == "acme"), "{items:?}");

    let out = run(&app, &["workspace", "create", "acme"]).await;
    out.assert_failed_with_hint();
    assert!(out.stderr.contains("already exists"), "{}", out.stderr);
    assert!(out.stdout.is_empty());

    run(&app, &["workspace", "delete", "acme"])
        .await
        .assert_ok();
    let out = run(&app, &["workspace", "show", "acme"]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("error: workspace `acme` was not found"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn api_key_connections_are_verified_listed_and_revealed_on_request() {
    let app = spawn_app().await;
    let ws = app.workspace("acme").await;
    let upstream = Upstream::start("k-123", "u", "p").await;

    let out = create_api_key_connection(&app, &ws, "Orders API", &upstream, "k-123").await;
    out.assert_ok();
    assert!(
        out.stdout.contains("Orders API") && out.stdout.contains("active"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("k-123") && !out.stderr.contains("k-123"),
        "the secret is not echoed"
    );
    assert!(
        upstream.hits() >= 1,
        "the credential was checked against the application"
    );

    let out = run(&app, &["connection", "list", "--workspace", &ws]).await;
    out.assert_ok();
    for expected in [
        "NAME",
        "CONCURRENCY",
        "Orders API",
        "generic-api-key",
        "production",
        "api_key",
        "active",
        "5",
    ] {
        assert!(
            out.stdout.contains(expected),
            "`{expected}` missing from:\n{}",
            out.stdout
        );
    }
    assert!(!out.stdout.contains("k-123"));

    // A name with a space travels percent-encoded.
    let show = run(&app, &["connection", "show", "acme/Orders API", "--json"]).await;
    let conn = show.assert_ok().json();
    assert_eq!(conn["name"], "Orders API");
    assert_eq!(conn["settings"]["verify_path"], "/me");
    assert!(!show.stdout.contains("k-123"));

    let out = run(
        &app,
        &[
            "connection",
            "edit",
            "acme/Orders API",
            "--set",
            "concurrency_level=3",
        ],
    )
    .await;
    out.assert_ok();
    let list = run(&app, &["connection", "list", "--workspace", &ws, "--json"]).await;
    assert_eq!(
        list.assert_ok().json()["items"][0]["settings"]["concurrency_level"],
        3
    );

    let out = create_api_key_connection(&app, &ws, "Wrong key", &upstream, "not-the-key").await;
    out.assert_failed_with_hint();
    assert!(!out.stderr.contains("not-the-key"), "{}", out.stderr);
    let list = run(&app, &["connection", "list", "--workspace", &ws, "--json"]).await;
    assert_eq!(
        list.assert_ok().json()["items"].as_array().map(Vec::len),
        Some(1),
        "nothing invalid is stored"
    );

    let creds = run(
        &app,
        &["connection", "credentials", "acme/Orders API", "--json"],
    )
    .await;
    assert_eq!(creds.assert_ok().json()["credentials"]["api_key"], "k-123");

    let out = run(&app, &["connection", "verify", "acme/Orders API"]).await;
    out.assert_ok();
    assert!(out.stdout.contains("works"), "{}", out.stdout);
}

#[tokio::test]
async fn deleting_a_connection_used_by_an_active_flow_names_the_flow() {
    let app = spawn_app().await;
    let ws = app.workspace("acme").await;
    let upstream = Upstream::start("k-123", "u", "p").await;
    create_api_key_connection(&app, &ws, "orders", &upstream, "k-123")
        .await
        .assert_ok();

    let out = run(
        &app,
        &[
            "flow",
            "create",
            "--workspace",
            &ws,
            "--name",
            "nightly-sync",
            "--connection",
            "orders",
        ],
    )
    .await;
    out.assert_ok();
    let out = run(&app, &["flow", "list", "--workspace", &ws]).await;
    out.assert_ok();
    assert!(
        out.stdout.contains("nightly-sync") && out.stdout.contains("orders"),
        "{}",
        out.stdout
    );

    let out = run(&app, &["connection", "delete", "acme/orders"]).await;
    out.assert_failed_with_hint();
    assert!(out.stderr.contains("nightly-sync"), "{}", out.stderr);

    run(&app, &["flow", "edit", "acme/nightly-sync", "--deactivate"])
        .await
        .assert_ok();
    run(&app, &["connection", "delete", "acme/orders"])
        .await
        .assert_ok();
    let out = run(&app, &["connection", "show", "acme/orders"]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
}

#[tokio::test]
async fn a_workspace_key_works_in_its_workspace_only() {
    let app = spawn_app().await;
    app.workspace("acme").await;
    app.workspace("globex").await;

    let out = run(
        &app,
        &[
            "key",
            "create",
            "--name",
            "etl",
            "--workspace",
            "acme",
            "--scope",
            "read",
        ],
    )
    .await;
    out.assert_ok();
    assert!(
        out.stdout.contains("will not be shown again"),
        "{}",
        out.stdout
    );
    let key = out
        .stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("lk_"))
        .unwrap_or_else(|| panic!("no key in:\n{}", out.stdout))
        .to_string();

    let out = run_as(&app, &key, &["connection", "list", "--workspace", "acme"]).await;
    out.assert_ok();
    assert!(out.stdout.contains("No connections"), "{}", out.stdout);

    let out = run_as(&app, &key, &["connection", "list", "--workspace", "globex"]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("error: workspace `globex` was not found"),
        "{}",
        out.stderr
    );

    let keys = run(&app, &["key", "list", "--workspace", "acme", "--json"]).await;
    let items = keys.assert_ok().json()["items"]
        .as_array()
        .cloned()
        .expect("items");
    assert!(items.iter().any(|k| k["name"] == "etl"));
    assert!(
        !keys.stdout.contains(&key),
        "a key is shown only when created"
    );
}

#[tokio::test]
async fn client_errors_say_how_to_fix_them() {
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{free}");
    let out = run_with(
        &[("LATCHKEY_URL", &url), ("LATCHKEY_API_KEY", "lk_x")],
        &["workspace", "list"],
        None,
    )
    .await;
    out.assert_failed_with_hint();
    assert!(
        out.stderr
            .contains(&format!("error: cannot reach Latchkey at {url}")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("latchkey serve") && out.stderr.contains("LATCHKEY_URL"),
        "{}",
        out.stderr
    );

    let empty = tempfile::tempdir().unwrap();
    let dir = empty.path().to_str().unwrap();
    let out = run_with(
        &[("LATCHKEY_URL", &url), ("LATCHKEY_DATA_DIR", dir)],
        &["workspace", "list"],
        None,
    )
    .await;
    out.assert_failed_with_hint();
    assert!(out.stderr.contains("LATCHKEY_API_KEY"), "{}", out.stderr);

    let out = run_with(
        &[("LATCHKEY_URL", &url)],
        &["connection", "show", "no-slash"],
        None,
    )
    .await;
    assert_eq!(out.code, 2, "usage errors exit 2: {}", out.stderr);
}

/// Reads stdout lines until `Latchkey listening on http://ADDR` (at most 30 s); answers the
/// lines before it and the address.
async fn until_listening(lines: &mut Lines<BufReader<ChildStdout>>) -> (Vec<String>, String) {
    let mut before = Vec::new();
    let wait = async {
        while let Some(line) = lines.next_line().await.expect("stdout readable") {
            if let Some(addr) = line.strip_prefix("Latchkey listening on http://") {
                return addr.trim().to_string();
            }
            before.push(line);
        }
        panic!("latchkey serve ended before listening");
    };
    let addr = tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("listening within 30 s");
    (before, addr)
}

async fn serve(data_dir: &Path) -> (tokio::process::Child, Lines<BufReader<ChildStdout>>) {
    let dir = data_dir.to_str().unwrap();
    let mut child = command(&[
        ("LATCHKEY_DATA_DIR", dir),
        ("LATCHKEY_LISTEN", "127.0.0.1:0"),
        ("LATCHKEY_LOG", "warn"),
    ])
    .arg("serve")
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .expect("latchkey serve starts");
    let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    (child, lines)
}

async fn stop(mut child: tokio::process::Child) {
    let pid = child.id().expect("running").to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill runs");
    assert!(sent.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("stops within 30 s of SIGTERM")
        .expect("exit status");
    assert!(status.success(), "a graceful stop exits 0: {status}");
}

#[tokio::test]
async fn serve_prints_the_first_admin_key_once_and_keeps_it_in_the_data_dir() {
    let data = tempfile::tempdir().unwrap();
    let (child, mut lines) = serve(data.path()).await;
    let (before, addr) = until_listening(&mut lines).await;
    let printed = before.join("\n");
    let key = before
        .iter()
        .map(|l| l.trim())
        .find(|l| l.starts_with("lk_"))
        .unwrap_or_else(|| panic!("no admin key printed:\n{printed}"))
        .to_string();
    assert_eq!(printed.matches(&key).count(), 1, "{printed}");
    assert!(
        printed.contains("only this once") && printed.contains("admin.key"),
        "{printed}"
    );

    let file = data.path().join("admin.key");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), key);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .expect("healthz answers");
    assert_eq!(health.status(), 200);
    // The key it printed is the one client commands use by default.
    let url = format!("http://{addr}");
    let dir = data.path().to_str().unwrap();
    let out = run_with(
        &[("LATCHKEY_URL", &url), ("LATCHKEY_DATA_DIR", dir)],
        &["workspace", "list", "--json"],
        None,
    )
    .await;
    out.assert_ok();
    stop(child).await;

    let (child, mut lines) = serve(data.path()).await;
    let (before, _) = until_listening(&mut lines).await;
    let printed = before.join("\n");
    assert!(
        !printed.contains("lk_") && !printed.contains("admin API key"),
        "no new key on a second start:\n{printed}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), key);
    stop(child).await;
}

#[tokio::test]
async fn serve_refuses_a_bad_configuration_with_exit_2() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let out = run_with(
        &[("LATCHKEY_DATA_DIR", dir), ("LATCHKEY_LISTEN", "nowhere")],
        &["serve"],
        None,
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("error: ") && out.stderr.contains("LATCHKEY_LISTEN"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn app_list_filters_by_category_and_search() {
    let app = spawn_app().await;
    let out = run(&app, &["app", "list", "--category", "crm"]).await;
    out.assert_ok();
    assert!(out.stdout.contains("hubspot"), "{}", out.stdout);
    assert!(out.stdout.contains("salesforce"), "{}", out.stdout);
    assert!(!out.stdout.contains("dropbox"), "{}", out.stdout);
    let list = run(&app, &["app", "list", "--search", "zendesk", "--json"]).await;
    let ids: Vec<String> = list.assert_ok().json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec!["zendesk".to_string()]);
    run(&app, &["app", "list", "--category", "nonsense"])
        .await
        .assert_failed_with_hint();
}
