//! The live environment the Python and TypeScript client tests run against:
//! `cargo run -p latchkey-testkit --example clients_fixture`.
//!
//! Starts the Salesforce simulator, a small REST upstream and the built `latchkey serve`
//! (`target/debug/latchkey`, or `LATCHKEY_BIN`) on loopback ports with a temporary data folder.
//! It prepares a workspace `sfdemo` with an authorized Salesforce connection `sf-prod` and a
//! proxy-only key for it, then prints one line of JSON (URLs, keys, names) and keeps everything
//! running until its standard input closes. A control listener lets the tests expire every
//! Salesforce session (`POST /expire-sessions`) and read the simulator's counters (`GET /stats`).

use axum::routing::{get, post};
use axum::Json;
use latchkey_testkit::salesforce::{self, SalesforceSim};
use latchkey_testkit::upstream::Upstream;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The upstream's API key: a test value the client tests check never comes back through MCP.
const UPSTREAM_KEY: &str = "upstream-secret-4f9a2c7e1b";

async fn call(
    c: &reqwest::Client,
    key: &str,
    method: reqwest::Method,
    url: String,
    body: Value,
) -> anyhow::Result<Value> {
    let resp = c
        .request(method, &url)
        .bearer_auth(key)
        .json(&body)
        .timeout(Duration::from_secs(30))
        .send()
        .await?;
    let status = resp.status();
    let text = resp.text().await?;
    anyhow::ensure!(status.is_success(), "{url} answered {status}: {text}");
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bin = std::env::var_os("LATCHKEY_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target/debug/latchkey"));
    anyhow::ensure!(
        bin.exists(),
        "{} is missing: run `cargo build -p latchkey-cli` first",
        bin.display()
    );
    let sim = Arc::new(SalesforceSim::start().await);
    let up = Upstream::start(UPSTREAM_KEY, "u", "p").await;
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("http://127.0.0.1:{port}");
    sim.add_callback_url(
        salesforce::DEFAULT_CONSUMER_KEY,
        &format!("{url}/oauth/callback"),
    );
    let log = std::fs::File::create(dir.path().join("server.log"))?;
    let _server = Server(
        Command::new(&bin)
            .arg("serve")
            .env("LATCHKEY_DATA_DIR", dir.path().join("data"))
            .env("LATCHKEY_LISTEN", format!("127.0.0.1:{port}"))
            .env("LATCHKEY_OUTBOUND_REWRITES", sim.rewrites())
            .env("LATCHKEY_OUTBOUND_ALLOW", "127.0.0.1")
            .env("LATCHKEY_LOG", "warn")
            .env_remove("LATCHKEY_CONFIG")
            .env_remove("LATCHKEY_DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?,
    );
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
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
            "latchkey did not start: {}",
            std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let admin_key = std::fs::read_to_string(dir.path().join("data/admin.key"))?
        .trim()
        .to_string();

    // The Salesforce connection the simple-salesforce and jsforce examples use.
    call(
        &c,
        &admin_key,
        reqwest::Method::POST,
        format!("{url}/v1/workspaces"),
        json!({"slug": "sfdemo", "name": "Salesforce demo"}),
    )
    .await?;
    let created = call(&c, &admin_key, reqwest::Method::POST, format!("{url}/v1/workspaces/sfdemo/connections"),
        json!({"name": "sf-prod", "app": "salesforce", "auth_mode": "oauth2_code",
            "settings": {"scopes": ["api", "refresh_token"]},
            "credentials": {"client_id": salesforce::DEFAULT_CONSUMER_KEY, "client_secret": salesforce::DEFAULT_CONSUMER_SECRET}}))
        .await?;
    let location = sim
        .login_via_browser(
            created["authorize_url"].as_str().unwrap_or_default(),
            salesforce::DEFAULT_USERNAME,
            salesforce::DEFAULT_PASSWORD,
        )
        .await?;
    let back = c.get(&location).send().await?;
    anyhow::ensure!(
        back.status() == 200,
        "the OAuth callback answered {}",
        back.status()
    );
    let proxy_key = call(
        &c,
        &admin_key,
        reqwest::Method::POST,
        format!("{url}/v1/api-keys"),
        json!({"name": "sf-examples", "workspace": "sfdemo", "scopes": ["proxy"]}),
    )
    .await?["key"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    let control = {
        let (sim_e, sim_s, up_s) = (sim.clone(), sim.clone(), up.clone());
        axum::Router::new()
            .route(
                "/expire-sessions",
                post(move || async move {
                    sim_e.expire_access_tokens();
                    Json(json!({"expired": true}))
                }),
            )
            .route(
                "/stats",
                get(move || async move {
                    Json(json!({
                        "salesforce_refreshes": sim_s.refresh_count(),
                        "salesforce_api_requests": sim_s.api_requests(),
                        "upstream_hits": up_s.hits(),
                    }))
                }),
            )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let control_url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, control).await;
    });

    let info = json!({
        "url": url,
        "admin_key": admin_key,
        "control_url": control_url,
        "upstream_url": up.url,
        "upstream_api_key": UPSTREAM_KEY,
        "salesforce": {
            "workspace": "sfdemo",
            "connection": "sf-prod",
            "proxy_key": proxy_key,
            "instance_url": format!("{url}/v1/workspaces/sfdemo/connections/sf-prod/proxy"),
        },
        "server_log": dir.path().join("server.log"),
    });
    println!("{info}");

    // Runs until the test closes our standard input (or goes away).
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    Ok(())
}
