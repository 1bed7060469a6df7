//! The outbox survives SIGKILL: the real `latchkey serve` is killed while a webhook message is
//! on its way (the endpoint holds the request open), restarted, and the message still arrives,
//! signed, with the same `webhook-id`. Then `latchkey events --follow` and `latchkey webhook …`
//! are run against the restarted server.

use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start(env: &[(String, String)], url: &str) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_latchkey"));
    cmd.arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let server = Server(cmd.spawn().expect("latchkey starts"));
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{url}/healthz")).send().await {
            if r.status() == 200 {
                return server;
            }
        }
        assert!(Instant::now() < deadline, "the server did not come up");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[derive(Default)]
struct Seen {
    /// (webhook-id, body) of requests that reached the handler.
    got: Mutex<Vec<(String, String)>>,
    /// While true, requests are held open (the server gets killed meanwhile).
    hold: Mutex<bool>,
}

#[tokio::test]
async fn a_message_survives_a_sigkill_between_event_and_delivery() {
    let seen = Arc::new(Seen::default());
    *seen.hold.lock().unwrap() = true;
    async fn hook(
        axum::extract::State(s): axum::extract::State<Arc<Seen>>,
        headers: axum::http::HeaderMap,
        body: String,
    ) -> axum::http::StatusCode {
        let id = headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        s.got.lock().unwrap().push((id, body));
        if *s.hold.lock().unwrap() {
            tokio::time::sleep(Duration::from_secs(600)).await;
        }
        axum::http::StatusCode::NO_CONTENT
    }
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let env = vec![
        (
            "LATCHKEY_DATA_DIR".to_string(),
            dir.path().display().to_string(),
        ),
        ("LATCHKEY_LISTEN".to_string(), format!("127.0.0.1:{port}")),
        (
            "LATCHKEY_OUTBOUND_ALLOW".to_string(),
            "127.0.0.1".to_string(),
        ),
        ("LATCHKEY_LOG".to_string(), "warn".to_string()),
    ];
    let mut server = start(&env, &url).await;
    let key = std::fs::read_to_string(dir.path().join("admin.key"))
        .unwrap()
        .trim()
        .to_string();
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        client
            .post(format!("{url}{path}"))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };
    assert!(
        post("/v1/workspaces", json!({"slug": "acme", "name": "Acme"}))
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let r = post(
        "/v1/workspaces/acme/webhooks",
        json!({"url": hook_url, "events": ["flow.*"]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let hook: Value = r.json().await.unwrap();
    let hook_id = hook["id"].as_str().unwrap().to_string();
    assert_eq!(
        post("/v1/workspaces/acme/flows", json!({"name": "nightly"}))
            .await
            .unwrap()
            .status(),
        201
    );

    // The message is on its way (the endpoint holds it): kill the server now.
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.got.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the first attempt never came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first_id = seen.got.lock().unwrap()[0].0.clone();
    server.0.kill().unwrap(); // SIGKILL
    server.0.wait().unwrap();
    *seen.hold.lock().unwrap() = false;
    drop(server);

    let _server = start(&env, &url).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = seen.got.lock().unwrap().clone();
        if got.len() >= 2 {
            assert_eq!(got[1].0, first_id, "the same message, by its id");
            let body: Value = serde_json::from_str(&got[1].1).unwrap();
            assert_eq!(body["type"], "flow.created");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the message was lost in the crash"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The CLI: the deliveries show it succeeded, and `events --follow` prints new events.
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .args(args)
            .env("LATCHKEY_URL", &url)
            .env("LATCHKEY_API_KEY", &key)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = cli(&["--json", "webhook", "deliveries", "-w", "acme", &hook_id]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        if v["items"][0]["status"] == "succeeded" {
            assert_eq!(v["items"][0]["id"], first_id.as_str());
            break;
        }
        assert!(Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = cli(&["webhook", "list", "-w", "acme"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&hook_id));
    let follower = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["--json", "events", "-w", "acme", "--follow", "--count", "2"])
        .env("LATCHKEY_URL", &url)
        .env("LATCHKEY_API_KEY", &key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for name in ["a", "b"] {
        assert_eq!(
            post("/v1/workspaces/acme/flows", json!({"name": name}))
                .await
                .unwrap()
                .status(),
            201
        );
    }
    let out = tokio::task::spawn_blocking(move || follower.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["target_name"], "a");
    assert_eq!(lines[1]["target_name"], "b");
}
