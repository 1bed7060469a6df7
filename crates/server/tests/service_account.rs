//! Service-account connections against a token endpoint nobody here wrote the checks of: a
//! loopback Python server (tests/support/google_token.py) verifies each signed assertion with
//! PyJWT and cryptography against the public half of a key pair it made, checks iss, aud,
//! scope, sub, kid and the lifetime, and issues tokens living two seconds. Google's token and
//! BigQuery origins are rewritten to it, as an operator would with LATCHKEY_OUTBOUND_REWRITES.

use latchkey_core::outbound::Rewrites;
use latchkey_testkit::{spawn_app, spawn_app_with, TestApp};
use serde_json::{json, Value};
use std::io::BufRead;
use std::time::Duration;

const TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const SCOPE: &str = "https://www.googleapis.com/auth/bigquery.readonly";
const SUBJECT: &str = "analyst@example.com";
const LIFETIME: u64 = 2;

/// The Python token endpoint, stopped when dropped.
struct Google {
    child: std::process::Child,
    url: String,
    private_key: String,
    key_id: String,
    email: String,
    client: reqwest::Client,
}

impl Drop for Google {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Google {
    /// Started, or `None` (after saying why) when the test tools are missing outside CI.
    fn start() -> Option<Google> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let python = root.join("target/test-tools/venv/bin/python");
        let ready = python.exists()
            && std::process::Command::new(&python)
                .args(["-c", "import jwt, cryptography"])
                .status()
                .is_ok_and(|s| s.success());
        if !ready {
            assert!(
                std::env::var_os("CI").is_none(),
                "run scripts/install-test-tools.sh: PyJWT and cryptography are missing"
            );
            eprintln!("skipping: run scripts/install-test-tools.sh (PyJWT and cryptography)");
            return None;
        }
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/google_token.py");
        let mut child = std::process::Command::new(python)
            .arg(script)
            .args([TOKEN_URI, SCOPE, &LIFETIME.to_string(), SUBJECT])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python runs");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("the token endpoint says where it listens");
        let hello: Value = serde_json::from_str(&line).expect("a JSON line");
        Some(Google {
            child,
            url: format!("http://127.0.0.1:{}", hello["port"]),
            private_key: hello["private_key"].as_str().unwrap().to_string(),
            key_id: hello["private_key_id"].as_str().unwrap().to_string(),
            email: hello["client_email"].as_str().unwrap().to_string(),
            client: reqwest::Client::new(),
        })
    }

    fn key_file(&self) -> String {
        json!({
            "type": "service_account",
            "project_id": "latchkey-test",
            "private_key_id": self.key_id,
            "private_key": self.private_key,
            "client_email": self.email,
            "client_id": "104000000000000000042",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": TOKEN_URI,
        })
        .to_string()
    }

    async fn stats(&self) -> Value {
        self.client
            .get(format!("{}/stats", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn exchanges(&self) -> u64 {
        self.stats().await["exchanges"].as_u64().unwrap()
    }

    fn rewrites(&self) -> Rewrites {
        Rewrites::parse(&format!(
            "https://oauth2.googleapis.com={u},https://bigquery.googleapis.com={u}",
            u = self.url
        ))
        .unwrap()
    }
}

/// Pieces of the private key as they would appear anywhere: lines of its base64 body.
fn key_pieces(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 40)
        .take(5)
        .map(str::to_string)
        .collect()
}

async fn create(app: &TestApp, name: &str, key: &str, settings: Value) -> latchkey_testkit::Answer {
    app.post(
        "/v1/workspaces/gcp/connections",
        json!({"name": name, "app": "google-bigquery", "auth_mode": "service_account",
               "settings": settings, "credentials": {"key_json": key}}),
    )
    .await
}

async fn token(app: &TestApp, name: &str) -> Value {
    let t = app
        .get(&format!("/v1/workspaces/gcp/connections/{name}/token"))
        .await;
    assert_eq!(t.status, 200, "{}", t.text);
    t.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_exchanges_signed_assertions_for_tokens_once_at_a_time() {
    let Some(google) = Google::start() else {
        return;
    };
    // No background refresh here: the reads at expiry are what renews the token.
    let rewrites = google.rewrites();
    let app = spawn_app_with(|c| {
        c.outbound_rewrites = rewrites;
        c.background = false;
    })
    .await;
    app.workspace("gcp").await;
    let created = create(&app, "bq", &google.key_file(), json!({})).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["status"], "active", "{}", created.text);
    assert_eq!(created.body["auth_mode"], "service_account");
    assert_eq!(
        created.body["authorization"]["username"],
        google.email.as_str()
    );
    assert_eq!(google.exchanges().await, 1, "the create exchanged once");

    // The token read answers the exchanged token, and the proxy injects it.
    let first = token(&app, "bq").await;
    let at = first["access_token"].as_str().unwrap().to_string();
    assert!(at.starts_with("ya29."), "{first}");
    assert!(first["expires_at"].is_string());
    let p = app
        .get("/v1/workspaces/gcp/connections/bq/proxy/projects?maxResults=1")
        .await;
    assert_eq!(p.status, 200, "{}", p.text);
    assert_eq!(p.body["caller"], google.email.as_str(), "{}", p.text);

    // At expiry, 50 readers at once: one exchange, one new token for all of them.
    let expires: chrono::DateTime<chrono::Utc> =
        first["expires_at"].as_str().unwrap().parse().unwrap();
    let left = (expires - chrono::Utc::now()).to_std().unwrap_or_default();
    // Time passing is the point here (nothing is awaited but the clock).
    tokio::time::sleep(left + Duration::from_millis(50)).await;
    let before = google.exchanges().await;
    let reads = futures::future::join_all((0..50).map(|_| token(&app, "bq"))).await;
    let seen: std::collections::BTreeSet<&str> = reads
        .iter()
        .map(|t| t["access_token"].as_str().unwrap())
        .collect();
    assert_eq!(seen.len(), 1, "every reader got the same token: {seen:?}");
    assert!(!seen.contains(at.as_str()), "the token was renewed");
    assert_eq!(google.exchanges().await - before, 1, "exactly one exchange");

    // Domain-wide delegation: the subject is the `sub` of the assertion.
    let as_user = create(
        &app,
        "bq-as-user",
        &google.key_file(),
        json!({"subject": SUBJECT}),
    )
    .await;
    assert_eq!(as_user.status, 201, "{}", as_user.text);
    let p = app
        .get("/v1/workspaces/gcp/connections/bq-as-user/proxy/projects")
        .await;
    assert_eq!(p.status, 200, "{}", p.text);
    assert_eq!(p.body["caller"], SUBJECT, "{}", p.text);
    let refused = google.stats().await["refused"].clone();
    assert_eq!(
        refused,
        json!([]),
        "the endpoint refused assertions: {refused}"
    );

    // The key is in no answer and no event; the SQLite file holds neither it nor a token.
    let pieces = key_pieces(&google.private_key);
    assert!(!pieces.is_empty());
    let last = token(&app, "bq").await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    for path in [
        "/v1/workspaces/gcp/connections",
        "/v1/workspaces/gcp/connections/bq",
        "/v1/workspaces/gcp/events?limit=500",
    ] {
        let a = app.get(path).await;
        assert_eq!(a.status, 200, "{}", a.text);
        for p in &pieces {
            assert!(!a.text.contains(p.as_str()), "{path} shows the key");
        }
        assert!(!a.text.contains(&last), "{path} shows the token");
    }
    let data_dir = app.data_dir.clone();
    let mut app = app;
    app.stop().await;
    latchkey_testkit::assert_sqlite_files_hold_none(
        &data_dir,
        &pieces
            .iter()
            .map(String::as_str)
            .chain([last.as_str()])
            .collect::<Vec<_>>(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_renews_a_service_account_token_before_it_expires() {
    let Some(google) = Google::start() else {
        return;
    };
    let rewrites = google.rewrites();
    let app = spawn_app_with(|c| c.outbound_rewrites = rewrites).await;
    app.workspace("gcp").await;
    let created = create(&app, "bq", &google.key_file(), json!({})).await;
    assert_eq!(created.status, 201, "{}", created.text);
    // Nobody reads the token: the proactive refresh alone exchanges again.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while google.exchanges().await < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "no proactive renewal: {}",
            google.stats().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let c = app.get("/v1/workspaces/gcp/connections/bq").await;
    assert_eq!(c.body["status"], "active", "{}", c.text);
    let t = token(&app, "bq").await;
    let expires: chrono::DateTime<chrono::Utc> = t["expires_at"].as_str().unwrap().parse().unwrap();
    assert!(expires > chrono::Utc::now(), "{t}");
}

#[tokio::test]
async fn a_key_file_that_is_not_one_is_refused_without_echoing_it() {
    let app = spawn_app().await;
    app.workspace("gcp").await;
    let good_key = latchkey_testkit::exchange_sim::SIM_PRIVATE_KEY;
    let file = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut m = json!({
            "type": "service_account", "client_email": "a@b.iam.gserviceaccount.com",
            "private_key": good_key, "private_key_id": "k1", "token_uri": TOKEN_URI,
        })
        .as_object()
        .unwrap()
        .clone();
        f(&mut m);
        Value::Object(m).to_string()
    };
    let broken_pem = "-----BEGIN PRIVATE KEY-----\nTUlJRXZRSUJBREFOQmdrcWhraUc5dzBCQVFFRkFBU0NCS2N3Z2dTakFnRUFBb0lCQVFD\n-----END PRIVATE KEY-----\n";
    let cases: Vec<(String, &str, &str)> = vec![
        (
            "not json at all".into(),
            "credentials.key_json",
            "it is not JSON",
        ),
        ("[1, 2]".into(), "credentials.key_json", "not a JSON object"),
        (
            file(&|m| {
                m.insert("type".into(), json!("authorized_user"));
            }),
            "credentials.key_json",
            "type is not \"service_account\"",
        ),
        (
            file(&|m| {
                m.remove("client_email");
                m.remove("token_uri");
            }),
            "credentials.key_json",
            "missing: client_email, token_uri",
        ),
        (
            file(&|m| {
                m.insert("private_key".into(), json!(broken_pem));
            }),
            "credentials.key_json.private_key",
            "private_key",
        ),
        (
            file(&|m| {
                m.insert("private_key".into(), json!("just words"));
            }),
            "credentials.key_json.private_key",
            "private_key",
        ),
        (
            file(&|m| {
                m.insert("token_uri".into(), json!("https://evil.example/token"));
            }),
            "credentials.key_json.token_uri",
            "https://evil.example",
        ),
    ];
    for (key, field, words) in cases {
        let r = create(&app, "bad", &key, json!({})).await;
        assert_eq!(r.status, 422, "{key}: {}", r.text);
        assert_eq!(r.body["details"]["field"], field, "{}", r.text);
        let message = r.body["message"].as_str().unwrap();
        assert!(message.contains(words), "{message}");
        if field == "credentials.key_json" {
            assert!(
                message.contains("service_account") && message.contains("client_email"),
                "the refusal says what was expected: {message}"
            );
        }
        for p in key_pieces(good_key)
            .iter()
            .chain([&"TUlJRXZRSUJBREFOQmdrcWhraUc5dzBC".to_string()])
        {
            assert!(
                !r.text.contains(p.as_str()),
                "the refusal echoes the key: {}",
                r.text
            );
        }
    }
    let list = app.get("/v1/workspaces/gcp/connections").await;
    assert_eq!(list.body["items"], json!([]), "nothing was stored");
    // The credential field is documented in the catalog for the create pane.
    let entry = app.get("/v1/apps/google-bigquery").await;
    assert!(entry.text.contains("key_json"), "{}", entry.text);
    assert!(entry.body["auth_modes"]
        .as_array()
        .unwrap()
        .contains(&json!("service_account")));
}
