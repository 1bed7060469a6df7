//! The soak: `cargo run --release -p latchkey-testkit --example soak -- [SECONDS]` (default 600).
//!
//! Starts the release `latchkey serve` on loopback against the Salesforce simulator (refresh-token
//! rotation on) and a small REST upstream, then runs mixed load until the time is up: token reads,
//! proxy calls, creates, edits and deletes of connections, and a forced refresh every few seconds.
//! Every 10 seconds it prints the server's memory; at the end it checks every record it knows of
//! (each acknowledged secret exactly as written, each deleted connection gone, the OAuth connection
//! still refreshing) and prints a summary. Not a test: it asserts nothing, it reports.

use latchkey_testkit::salesforce::{self, SalesforceSim};
use latchkey_testkit::upstream::Upstream;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

async fn call(
    c: &reqwest::Client,
    key: &str,
    m: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> Option<(u16, Value)> {
    let mut r = c
        .request(m, url)
        .bearer_auth(key)
        .timeout(Duration::from_secs(30));
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.json().await.unwrap_or(Value::Null)))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bin = root.join("target/release/latchkey");
    if !bin.exists() {
        let st = Command::new("cargo")
            .args(["build", "--release", "-p", "latchkey-cli"])
            .current_dir(&root)
            .status()?;
        anyhow::ensure!(st.success(), "could not build latchkey");
    }
    let sim = SalesforceSim::start().await;
    sim.edit_app(salesforce::DEFAULT_CONSUMER_KEY, |a| {
        a.rotate_refresh_tokens = true
    });
    let up = Upstream::start("soak-upstream-key", "u", "p").await;
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("http://127.0.0.1:{port}");
    sim.add_callback_url(
        salesforce::DEFAULT_CONSUMER_KEY,
        &format!("{url}/oauth/callback"),
    );
    let server = Server(
        Command::new(&bin)
            .arg("serve")
            .env("LATCHKEY_DATA_DIR", dir.path())
            .env("LATCHKEY_LISTEN", format!("127.0.0.1:{port}"))
            .env("LATCHKEY_OUTBOUND_REWRITES", sim.rewrites())
            .env("LATCHKEY_OUTBOUND_ALLOW", "127.0.0.1")
            .env("LATCHKEY_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?,
    );
    let pid = server.0.id();
    let c = reqwest::Client::new();
    let start = Instant::now();
    while c
        .get(format!("{url}/healthz"))
        .send()
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(30),
            "latchkey did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let key = std::fs::read_to_string(dir.path().join("admin.key"))?
        .trim()
        .to_string();
    let v1 = |p: &str| format!("{url}/v1/workspaces/acme{p}");
    call(
        &c,
        &key,
        reqwest::Method::POST,
        format!("{url}/v1/workspaces"),
        Some(json!({"slug": "acme"})),
    )
    .await;
    let (_, created) = call(&c, &key, reqwest::Method::POST, v1("/connections"), Some(json!({"name": "sf", "app": "salesforce",
        "auth_mode": "oauth2_code", "credentials": {"client_id": salesforce::DEFAULT_CONSUMER_KEY, "client_secret": salesforce::DEFAULT_CONSUMER_SECRET}})))
        .await
        .expect("create sf");
    let location = sim
        .login_via_browser(
            created["authorize_url"].as_str().unwrap_or_default(),
            salesforce::DEFAULT_USERNAME,
            salesforce::DEFAULT_PASSWORD,
        )
        .await?;
    c.get(&location).send().await?;
    call(&c, &key, reqwest::Method::POST, v1("/connections"), Some(json!({"name": "upstream", "app": "generic-api-key",
        "settings": {"base_url": up.url, "verify_path": "/health", "concurrency_level": 8}, "credentials": {"api_key": "soak-upstream-key"}})))
        .await;

    let stop = Arc::new(AtomicBool::new(false));
    let kinds = ["token", "proxy", "create", "edit", "delete", "refresh"];
    let counts: Arc<HashMap<&str, Counts>> =
        Arc::new(kinds.iter().map(|k| (*k, Counts::default())).collect());
    let ledger: Arc<Mutex<HashMap<String, Option<String>>>> = Arc::new(Mutex::new(HashMap::new()));
    let note = |counts: &HashMap<&str, Counts>, kind: &str, ok: bool| {
        let c = &counts[kind];
        if ok {
            c.ok.fetch_add(1, Ordering::Relaxed)
        } else {
            c.failed.fetch_add(1, Ordering::Relaxed)
        };
    };
    let mut tasks = Vec::new();
    for w in 0..6 {
        let (c, key, stop, counts, ledger, up_url) = (
            c.clone(),
            key.clone(),
            stop.clone(),
            counts.clone(),
            ledger.clone(),
            up.url.clone(),
        );
        let v1 = v1("");
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                match (w, n % 10) {
                    (0..=2, _) => {
                        let r = call(&c, &key, reqwest::Method::GET, format!("{v1}/connections/sf/token"), None).await;
                        note(&counts, "token", matches!(r, Some((200, _))));
                    }
                    (3..=4, _) => {
                        let r = call(&c, &key, reqwest::Method::POST, format!("{v1}/connections/upstream/proxy/echo"), Some(json!({"n": n}))).await;
                        note(&counts, "proxy", matches!(r, Some((200, _))));
                    }
                    (_, k) => {
                        let name = format!("scratch-{}", n % 40);
                        let known = ledger.lock().unwrap().get(&name).cloned().flatten();
                        let secret = format!("s-{n}");
                        let (kind, r) = match (known.is_some(), k) {
                            (false, _) => ("create", call(&c, &key, reqwest::Method::POST, format!("{v1}/connections"), Some(json!({"name": name, "app": "generic-api-key", "verify": false, "settings": {"base_url": up_url}, "credentials": {"api_key": secret}}))).await),
                            (true, 0..=5) => ("edit", call(&c, &key, reqwest::Method::PATCH, format!("{v1}/connections/{name}"), Some(json!({"credentials": {"api_key": secret}, "verify": false}))).await),
                            (true, _) => ("delete", call(&c, &key, reqwest::Method::DELETE, format!("{v1}/connections/{name}"), None).await),
                        };
                        let ok = matches!(r, Some((200 | 201 | 204, _)));
                        if ok {
                            ledger.lock().unwrap().insert(name, (kind != "delete").then_some(secret));
                        }
                        note(&counts, kind, ok);
                    }
                }
            }
        }));
    }
    {
        let (c, key, stop, counts) = (c.clone(), key.clone(), stop.clone(), counts.clone());
        let v1 = v1("");
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_secs(3)).await;
                let r = call(
                    &c,
                    &key,
                    reqwest::Method::POST,
                    format!("{v1}/connections/sf/token/refresh"),
                    Some(json!({})),
                )
                .await;
                note(&counts, "refresh", matches!(r, Some((200, _))));
            }
        }));
    }
    let mut rss = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    println!("{:>6}  {:>9}  requests ok / failed", "t (s)", "RSS (MiB)");
    while Instant::now() < deadline {
        tokio::time::sleep(
            Duration::from_secs(10).min(deadline.saturating_duration_since(Instant::now())),
        )
        .await;
        let kib = rss_kib(pid);
        rss.push(kib);
        let (ok, failed) = counts.values().fold((0, 0), |(a, b), c| {
            (
                a + c.ok.load(Ordering::Relaxed),
                b + c.failed.load(Ordering::Relaxed),
            )
        });
        println!(
            "{:>6}  {:>9.1}  {ok} / {failed}",
            start.elapsed().as_secs(),
            kib as f64 / 1024.0
        );
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }

    let mut lost = 0;
    let mut corrupted = 0;
    let entries: Vec<(String, Option<String>)> = ledger
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (name, expect) in &entries {
        let r = call(
            &c,
            &key,
            reqwest::Method::GET,
            v1(&format!("/connections/{name}/credentials")),
            None,
        )
        .await;
        match (expect, r) {
            (Some(secret), Some((200, body)))
                if body["credentials"]["api_key"] == secret.as_str() => {}
            (Some(_), Some((200, _))) => corrupted += 1,
            (Some(_), _) => lost += 1,
            (None, Some((404, _))) => {}
            (None, _) => corrupted += 1,
        }
    }
    let sf = call(
        &c,
        &key,
        reqwest::Method::POST,
        v1("/connections/sf/token/refresh"),
        Some(json!({})),
    )
    .await;
    println!();
    println!("soak: {seconds} s, refresh-token rotation on");
    for k in kinds {
        println!(
            "  {k:<8} ok {:>8}  failed {:>5}",
            counts[k].ok.load(Ordering::Relaxed),
            counts[k].failed.load(Ordering::Relaxed)
        );
    }
    let (min, max) = (
        rss.iter().min().copied().unwrap_or(0),
        rss.iter().max().copied().unwrap_or(0),
    );
    println!(
        "  RSS      first {:.1} MiB, min {:.1}, max {:.1}, last {:.1}",
        rss.first().copied().unwrap_or(0) as f64 / 1024.0,
        min as f64 / 1024.0,
        max as f64 / 1024.0,
        rss.last().copied().unwrap_or(0) as f64 / 1024.0
    );
    println!(
        "  records  {} checked: {lost} lost, {corrupted} corrupted",
        entries.len()
    );
    println!(
        "  oauth    still refreshing after the soak: {}",
        matches!(sf, Some((200, _)))
    );
    println!("  refreshes at the provider: {}", sim.refresh_count());
    drop(server);
    Ok(())
}
