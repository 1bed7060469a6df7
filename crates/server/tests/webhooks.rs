//! Webhooks over real HTTP on loopback: Standard Webhooks signatures checked with the reference
//! library (Python `standardwebhooks`, installed by scripts/install-test-tools.sh), retries that
//! keep the message id, rotation with both signatures, the deliveries log and manual retry,
//! outbound rules on URLs, a hanging and a huge endpoint, disabling, and the event stream.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use latchkey_testkit::upstream::Upstream;
use latchkey_testkit::{spawn_app_with, TestApp};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> String {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct ReceiverState {
    got: Mutex<Vec<Received>>,
    /// Status codes to answer, in order; 200 once they run out.
    plan: Mutex<Vec<u16>>,
}

/// A webhook endpoint on loopback that records what it gets.
#[derive(Clone)]
struct Receiver {
    url: String,
    state: Arc<ReceiverState>,
}

impl Receiver {
    async fn start(plan: &[u16]) -> Receiver {
        let state = Arc::new(ReceiverState {
            got: Mutex::new(vec![]),
            plan: Mutex::new(plan.to_vec()),
        });
        async fn hook(
            State(s): State<Arc<ReceiverState>>,
            headers: HeaderMap,
            body: String,
        ) -> impl IntoResponse {
            s.got.lock().unwrap().push(Received {
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect(),
                body,
            });
            let mut plan = s.plan.lock().unwrap();
            let code = if plan.is_empty() { 200 } else { plan.remove(0) };
            StatusCode::from_u16(code).unwrap()
        }
        async fn hang() -> &'static str {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            "late"
        }
        async fn huge() -> impl IntoResponse {
            // 10 MB, produced as it is read: the sender should stop after the status line.
            let chunk = bytes_chunk();
            let stream = futures::stream::iter(
                (0..160).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
            );
            (StatusCode::OK, axum::body::Body::from_stream(stream))
        }
        fn bytes_chunk() -> axum::body::Bytes {
            axum::body::Bytes::from(vec![b'x'; 64 * 1024])
        }
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .route("/hang", axum::routing::post(hang))
            .route("/huge", axum::routing::post(huge))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, state }
    }

    fn got(&self) -> Vec<Received> {
        self.state.got.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize, what: &str) -> Vec<Received> {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: {} requests, wanted {n}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn quick(c: &mut latchkey_server::config::Config) {
    c.background_tick = Duration::from_millis(100);
    c.webhook_retry_base = Duration::from_millis(300);
    c.webhook_timeout = Duration::from_secs(2);
}

async fn quick_app() -> TestApp {
    spawn_app_with(quick).await
}

/// The reference library's verdict on a message, or `None` (after saying why) when the library
/// is not installed and CI is not set.
fn reference_verify(secret: &str, r: &Received) -> Option<Result<(), String>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join("target/test-tools/venv/bin/python");
    if !python.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "run scripts/install-test-tools.sh: the Standard Webhooks reference library is missing"
        );
        eprintln!("skipping the reference verification: run scripts/install-test-tools.sh");
        return None;
    }
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/verify_webhook.py");
    let headers: serde_json::Map<String, Value> =
        ["webhook-id", "webhook-timestamp", "webhook-signature"]
            .iter()
            .map(|h| (h.to_string(), Value::String(r.header(h))))
            .collect();
    let input = json!({"secret": secret, "headers": headers, "body": r.body}).to_string();
    use std::io::Write;
    let mut child = std::process::Command::new(python)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    Some(if out.status.success() {
        Ok(())
    } else {
        Err(text)
    })
}

async fn api_key_connection(app: &TestApp, up: &Upstream, name: &str) -> Value {
    let r = app
        .post(
            "/v1/workspaces/acme/connections",
            json!({"name": name, "app": "generic-api-key", "auth_mode": "api_key",
                "settings": {"base_url": up.url, "verify_path": "/me"},
                "credentials": {"api_key": "upstream-key-1"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

#[tokio::test]
async fn deliveries_are_signed_retried_with_the_same_id_and_verify_with_the_reference_library() {
    deliveries(quick_app().await).await;
}

#[tokio::test]
async fn deliveries_on_postgres() {
    let Some(app) = latchkey_testkit::spawn_app_postgres_with(quick).await else {
        return;
    };
    deliveries(app).await;
}

async fn deliveries(app: TestApp) {
    app.workspace("acme").await;
    let up = Upstream::start("upstream-key-1", "", "").await;
    let rx = Receiver::start(&[500]).await;
    let created = app
        .post(
            "/v1/workspaces/acme/webhooks",
            json!({"url": format!("{}/hook", rx.url), "events": ["connection.*"], "description": "ops"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let secret = created.body["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let hook = created.body["id"].as_str().unwrap().to_string();
    // The secret is answered once: never by show or list.
    let shown = app
        .get(&format!("/v1/workspaces/acme/webhooks/{hook}"))
        .await;
    assert_eq!(shown.status, 200);
    assert!(!shown.text.contains(&secret[6..]), "{}", shown.text);
    let listed = app.get("/v1/workspaces/acme/webhooks").await;
    assert!(!listed.text.contains(&secret[6..]));

    // A flow event is not subscribed; the connection event is.
    api_key_connection(&app, &up, "crm").await;
    let got = rx
        .wait_for(2, "the first attempt fails, the retry succeeds")
        .await;
    let (first, second) = (&got[0], &got[1]);
    assert_eq!(first.header("webhook-id"), second.header("webhook-id"));
    assert!(first.header("webhook-id").starts_with("msg_"));
    assert_eq!(first.body, second.body, "the same bytes on every attempt");
    let body: Value = serde_json::from_str(&second.body).unwrap();
    assert_eq!(body["type"], "connection.created");
    assert!(body["timestamp"].is_string());
    assert_eq!(body["data"]["target_name"], "crm");
    assert!(
        !second.body.contains("upstream-key-1"),
        "no secret in a webhook body"
    );
    assert!(second.header("webhook-signature").starts_with("v1,"));
    assert_eq!(second.header("content-type"), "application/json");
    for r in [first, second] {
        if let Some(verdict) = reference_verify(&secret, r) {
            verdict.expect("the reference library accepts the signature");
        }
    }
    // And refuses it with another secret (the check is real).
    if let Some(verdict) = reference_verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", second) {
        assert!(verdict.is_err());
    }

    // The deliveries log: one message, two attempts, succeeded.
    let d = app
        .get(&format!("/v1/workspaces/acme/webhooks/{hook}/deliveries"))
        .await;
    assert_eq!(d.status, 200, "{}", d.text);
    let items = d.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", d.text);
    assert_eq!(items[0]["status"], "succeeded");
    assert_eq!(items[0]["attempts"], 2);
    assert_eq!(items[0]["last_status_code"], 200);
    assert_eq!(items[0]["event_type"], "connection.created");
    let msg = items[0]["id"].as_str().unwrap().to_string();
    assert_eq!(msg, second.header("webhook-id"));

    // A manual retry sends the same message again, freshly signed.
    let r = app
        .post(
            &format!("/v1/workspaces/acme/webhooks/{hook}/deliveries/{msg}/retry"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let got = rx.wait_for(3, "the manual retry").await;
    assert_eq!(got[2].header("webhook-id"), msg);

    // Rotation: the new secret is answered once; messages carry both signatures for a day.
    let rot = app
        .post(
            &format!("/v1/workspaces/acme/webhooks/{hook}/rotate-secret"),
            json!({}),
        )
        .await;
    assert_eq!(rot.status, 200, "{}", rot.text);
    let new_secret = rot.body["secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, secret);
    assert!(rot.body["previous_secret_until"].is_string());
    let upd = app
        .patch(
            "/v1/workspaces/acme/connections/crm",
            json!({"settings": {"concurrency_level": 3}}),
        )
        .await;
    assert_eq!(upd.status, 200, "{}", upd.text);
    let got = rx.wait_for(4, "the update event").await;
    let last = &got[3];
    assert_eq!(
        serde_json::from_str::<Value>(&last.body).unwrap()["type"],
        "connection.updated"
    );
    assert_eq!(
        last.header("webhook-signature").split(' ').count(),
        2,
        "{:?}",
        last.headers
    );
    for s in [&secret, &new_secret] {
        if let Some(verdict) = reference_verify(s, last) {
            verdict.expect("old and new secrets both verify during the overlap");
        }
    }

    // Events land in the audit log too.
    let events = app.get("/v1/workspaces/acme/events?limit=50").await;
    let types: Vec<&str> = events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(types.contains(&"connection.created"), "{types:?}");
    assert!(types.contains(&"webhook.created"), "{types:?}");
    // Delete: gone, and no further messages.
    let del = app
        .delete(&format!("/v1/workspaces/acme/webhooks/{hook}"))
        .await;
    assert_eq!(del.status, 204);
    assert_eq!(
        app.get(&format!("/v1/workspaces/acme/webhooks/{hook}"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn webhook_urls_follow_the_outbound_rules() {
    let app = spawn_app_with(|c| {
        c.outbound_allow = latchkey_core::outbound::AllowList::parse("").unwrap();
    })
    .await;
    app.workspace("acme").await;
    for (url, rule) in [
        ("http://example.com/hook", "webhook_url_not_https"),
        ("https://127.0.0.1/hook", "webhook_url_private"),
        ("https://10.1.2.3/hook", "webhook_url_private"),
        ("https://[::1]/hook", "webhook_url_private"),
        ("https://169.254.169.254/latest", "webhook_url_private"),
        ("ftp://example.com/x", "webhook_url_invalid"),
        ("not a url", "webhook_url_invalid"),
    ] {
        let r = app
            .post("/v1/workspaces/acme/webhooks", json!({"url": url}))
            .await;
        assert_eq!(r.status, 422, "{url}: {}", r.text);
        assert_eq!(r.body["error"], rule, "{url}: {}", r.text);
        assert!(r.body["hint"].is_string());
    }
    let r = app
        .post(
            "/v1/workspaces/acme/webhooks",
            json!({"url": "https://203.0.113.9/hook", "events": ["conection.*"]}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains("conection.*"));
    let r = app
        .post(
            "/v1/workspaces/acme/webhooks",
            json!({"url": "https://203.0.113.9/hook", "bogus": 1}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(app.get("/v1/workspaces/acme/webhooks").await.body["items"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_hanging_endpoint_times_out_a_huge_answer_is_not_read_and_a_dead_one_is_disabled() {
    let app = spawn_app_with(|c| {
        c.background_tick = Duration::from_millis(100);
        c.webhook_retry_base = Duration::from_millis(200);
        c.webhook_timeout = Duration::from_secs(1);
        c.webhook_disable_after = Duration::from_secs(2);
    })
    .await;
    app.workspace("acme").await;
    let rx = Receiver::start(&[]).await;
    let mut hooks = vec![];
    for path in ["hang", "huge"] {
        let r = app
            .post(
                "/v1/workspaces/acme/webhooks",
                json!({"url": format!("{}/{path}", rx.url), "events": ["flow.*"]}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        hooks.push(r.body["id"].as_str().unwrap().to_string());
    }
    let f = app
        .post("/v1/workspaces/acme/flows", json!({"name": "nightly"}))
        .await;
    assert_eq!(f.status, 201, "{}", f.text);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (hang, huge) = (&hooks[0], &hooks[1]);
    loop {
        let h = app
            .get(&format!("/v1/workspaces/acme/webhooks/{hang}/deliveries"))
            .await;
        let z = app
            .get(&format!("/v1/workspaces/acme/webhooks/{huge}/deliveries"))
            .await;
        let hang_item = &h.body["items"][0];
        let huge_item = &z.body["items"][0];
        let hook = app
            .get(&format!("/v1/workspaces/acme/webhooks/{hang}"))
            .await;
        if hook.body["enabled"] == false && huge_item["status"] == "succeeded" {
            assert!(
                hang_item["last_error"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("did not answer within 1 s"),
                "{}",
                h.text
            );
            assert!(hook.body["disabled_reason"].is_string());
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}\n{}\n{}",
            h.text,
            z.text,
            hook.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let events = app.get("/v1/workspaces/acme/events?limit=100").await;
    assert!(
        events.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "webhook.disabled" && e["target_id"] == hang.as_str()),
        "{}",
        events.text
    );
    // Re-enabling clears the record.
    let r = app
        .patch(
            &format!("/v1/workspaces/acme/webhooks/{hang}"),
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["enabled"], true);
    assert!(r.body["disabled_reason"].is_null());
}

/// Reads SSE events from a stream until `n` arrived; answers (id, type) pairs.
async fn read_sse(resp: reqwest::Response, n: usize) -> Vec<(String, String)> {
    use futures::StreamExt;
    let mut out = vec![];
    let mut buf = String::new();
    let mut body = resp.bytes_stream();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while out.len() < n {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("events arrive in time")
            .expect("the stream stays open")
            .unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame = buf[..end].to_string();
            buf.drain(..end + 2);
            let mut id = String::new();
            let mut kind = String::new();
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().to_string();
                }
                if let Some(v) = line.strip_prefix("event:") {
                    kind = v.trim().to_string();
                }
            }
            if !id.is_empty() {
                out.push((id, kind));
            }
        }
    }
    out
}

#[tokio::test]
async fn the_event_stream_resumes_after_the_last_event_id() {
    let app = quick_app().await;
    app.workspace("acme").await;
    let stream = |last: Option<String>| {
        let mut req = app
            .client
            .get(format!("{}/v1/workspaces/acme/events/stream", app.url))
            .bearer_auth(&app.admin_key);
        if let Some(l) = last {
            req = req.header("Last-Event-ID", l);
        }
        req.send()
    };
    let first = stream(None).await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    for name in ["a", "b"] {
        assert_eq!(
            app.post("/v1/workspaces/acme/flows", json!({"name": name}))
                .await
                .status,
            201
        );
    }
    let got = read_sse(first, 2).await;
    assert_eq!(got[0].1, "flow.created");
    assert_eq!(got[1].1, "flow.created");
    // Disconnected after the first; three more happen meanwhile; the reconnect gets exactly
    // the ones after the first, in order, none twice.
    for name in ["c", "d"] {
        assert_eq!(
            app.post("/v1/workspaces/acme/flows", json!({"name": name}))
                .await
                .status,
            201
        );
    }
    let resumed = stream(Some(got[0].0.clone())).await.unwrap();
    assert_eq!(resumed.status(), 200);
    let again = read_sse(resumed, 3).await;
    assert_eq!(again[0].0, got[1].0, "resumes right after the last id seen");
    assert!(again[1].0 > again[0].0 && again[2].0 > again[1].0);
    let bad = stream(Some("nonsense".into())).await.unwrap();
    assert_eq!(bad.status(), 422);
}
