//! A PostgreSQL store that goes away under load. A private cluster (initdb + pg_ctl, data in a
//! temporary folder, a free loopback port) serves this test alone, so restarting it disturbs
//! nobody. Token reads and connection lists run while it restarts: every answer is 200 or 503
//! `store_unavailable` with `Retry-After`, never a 500; once it is back, every answer is 200.
//! With the cluster stopped, both answer 503 `store_unavailable`.

use latchkey_core::catalog::Catalog;
use latchkey_core::model::AuthMode;
use latchkey_core::outbound::Rewrites;
use latchkey_testkit::provider::{ProviderSim, SimRow};
use latchkey_testkit::{spawn_app_with, TestApp};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The newest `/usr/lib/postgresql/*/bin` holding initdb and pg_ctl.
fn postgres_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|d| {
            let version = d.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = d.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A PostgreSQL cluster of this test's own.
struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl Cluster {
    /// Runs a PostgreSQL program as the `postgres` OS user (PostgreSQL refuses to run as root).
    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let exe = self.bin.join(program);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd
            .args(args)
            .output()
            .map_err(|e| format!("{program}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn options(&self) -> String {
        format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        )
    }

    fn init(bin: PathBuf) -> Result<Cluster, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        if is_root() {
            let ok = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .status()
                .map_err(|e| e.to_string())?;
            if !ok.success() {
                return Err("cannot give the data folder to the postgres user".into());
            }
        }
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            l.local_addr().map_err(|e| e.to_string())?.port()
        };
        let c = Cluster { bin, dir, port };
        c.run(
            "initdb",
            &[
                "-D",
                &c.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        )?;
        c.start()?;
        Ok(c)
    }

    fn start(&self) -> Result<(), String> {
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &self.options(),
                "-l",
                &log,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
    }

    fn stop(&self) -> Result<(), String> {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "fast", "-w", "-t", "60", "stop"],
        )
    }

    fn restart(&self) -> Result<(), String> {
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &self.options(),
                "-l",
                &log,
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                "restart",
            ],
        )
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }
}

/// One answer under load: when its request started, and what came back.
#[derive(Debug, Clone)]
struct Seen {
    started: Instant,
    path: &'static str,
    status: u16,
    code: String,
    retry_after: bool,
}

async fn send(app: &TestApp, path: &'static str) -> Seen {
    let started = Instant::now();
    let resp = app
        .client
        .get(format!("{}{path}", app.url))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .expect("the server answers");
    let status = resp.status().as_u16();
    let retry_after = resp.headers().contains_key("retry-after");
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    Seen {
        started,
        path,
        status,
        code: body["error"].as_str().unwrap_or_default().to_string(),
        retry_after,
    }
}

fn acceptable(s: &Seen) -> bool {
    s.status == 200 || (s.status == 503 && s.code == "store_unavailable" && s.retry_after)
}

const TOKEN: &str = "/v1/workspaces/acme/connections/api/token";
const LIST: &str = "/v1/workspaces/acme/connections?limit=10";

async fn setup(cluster: &Cluster) -> (TestApp, ProviderSim) {
    let entry = Catalog::embedded()
        .get("generic-oauth2")
        .expect("entry")
        .clone();
    let settings: Map<String, Value> = serde_json::from_value(json!({
        "token_url": "https://auth.outage-provider.test/oauth/token",
        "base_url": "https://api.outage-provider.test",
        "verify_path": "/me",
    }))
    .expect("settings");
    let row = SimRow {
        entry,
        mode: AuthMode::OAuth2ClientCredentials,
        settings: settings.clone(),
        creds: BTreeMap::new(),
    };
    let sim = ProviderSim::start(vec![row.clone()], &[]).await;
    let rewrites = Rewrites::parse(&sim.rewrites()).expect("rewrites");
    let url = cluster.url();
    let app = spawn_app_with(|c| {
        c.database_url = url;
        c.outbound_rewrites = rewrites;
    })
    .await;
    app.workspace("acme").await;
    let r = app
        .post(
            "/v1/workspaces/acme/connections",
            json!({"name": "api", "app": "generic-oauth2", "auth_mode": "oauth2_client_credentials",
                "settings": {"token_url": settings["token_url"], "base_url": settings["base_url"], "verify_path": "/me"},
                "credentials": {"client_id": row.client_id(), "client_secret": row.client_secret()}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    (app, sim)
}

/// Polls `path` until it answers `want` (at most 60 s); answers the last answer.
async fn until(app: &TestApp, path: &'static str, want: impl Fn(&Seen) -> bool) -> Seen {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = send(app, path).await;
        if want(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{path} kept answering {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarting_database_gives_503_store_unavailable_never_500() {
    let Some(bin) = postgres_bin() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "the PostgreSQL server binaries (/usr/lib/postgresql/*/bin) are needed in CI"
        );
        eprintln!("skipping: no PostgreSQL server binaries under /usr/lib/postgresql");
        return;
    };
    let cluster = Arc::new(Cluster::init(bin).expect("a private PostgreSQL cluster starts"));
    let (app, _sim) = setup(&cluster).await;
    let app = Arc::new(app);
    assert_eq!(send(&app, TOKEN).await.status, 200);

    // Load: token reads and lists, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
    let mut load = vec![];
    for path in [TOKEN, TOKEN, TOKEN, LIST, LIST] {
        let (app, stop, seen) = (app.clone(), stop.clone(), seen.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let s = send(&app, path).await;
                seen.lock().unwrap().push(s);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.restart())
        .await
        .expect("restart task")
        .expect("the cluster restarts");
    // Back: a list (which always reads the store) answers again.
    let back = until(&app, LIST, |s| s.status == 200).await.started;
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.expect("load task");
    }
    let seen = seen.lock().unwrap().clone();
    eprintln!(
        "under the restart: {} answers, {} of them 503 store_unavailable",
        seen.len(),
        seen.iter().filter(|s| s.status == 503).count()
    );
    let bad: Vec<&Seen> = seen.iter().filter(|s| !acceptable(s)).collect();
    assert!(
        bad.is_empty(),
        "{} of {} answers were neither 200 nor 503 store_unavailable with Retry-After: {:?}",
        bad.len(),
        seen.len(),
        &bad[..bad.len().min(5)]
    );
    let after: Vec<&Seen> = seen.iter().filter(|s| s.started >= back).collect();
    let errors: Vec<&&Seen> = after.iter().filter(|s| s.status != 200).collect();
    assert!(
        after.len() > 20 && errors.is_empty(),
        "once the store was back, {} of {} answers were errors: {:?}",
        errors.len(),
        after.len(),
        &errors[..errors.len().min(5)]
    );
    for path in [TOKEN, LIST] {
        assert!(
            after.iter().any(|s| s.path == path),
            "{path} was read after the restart"
        );
    }

    // Stopped: both answer 503 store_unavailable with Retry-After (a token read may be
    // answered from memory for a moment first).
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.stop())
        .await
        .expect("stop task")
        .expect("the cluster stops");
    for path in [LIST, TOKEN] {
        let s = until(&app, path, |s| s.status != 200).await;
        assert!(
            s.status == 503 && s.code == "store_unavailable" && s.retry_after,
            "{s:?}"
        );
    }
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.start())
        .await
        .expect("start task")
        .expect("the cluster starts again");
    until(&app, LIST, |s| s.status == 200).await;
    until(&app, TOKEN, |s| s.status == 200).await;
}
