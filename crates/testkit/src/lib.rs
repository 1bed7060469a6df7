//! Test helpers: [`spawn_app`] starts the real server on a random loopback port with a temporary
//! data folder; [`upstream`] is a small REST API that checks credentials the way applications do.

pub mod exchange_sim;
pub mod provider;
pub mod salesforce;
pub mod upstream;

use latchkey_server::config::Config;
use latchkey_server::Application;
use reqwest::Method;
use serde_json::Value;
use std::path::PathBuf;
use tokio::sync::oneshot;

pub use latchkey_store::testing::{throwaway_postgres, PostgresGuard};

/// Which store a test server uses.
pub enum Backend {
    Sqlite,
    /// A throwaway PostgreSQL database (see [`throwaway_postgres`]).
    Postgres(String),
}

/// A running server and a client already holding its admin key.
pub struct TestApp {
    pub url: String,
    pub admin_key: String,
    pub client: reqwest::Client,
    pub data_dir: PathBuf,
    pub config: Config,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<PostgresGuard>,
    shutdown: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
}

/// Starts a server on SQLite in a fresh temporary folder.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a server on SQLite after `tweak` has adjusted the test configuration.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::for_tests(dir.path());
    tweak(&mut config);
    let mut app = start(config).await;
    app._dir = Some(dir);
    app
}

/// Starts a server on a throwaway PostgreSQL database; `None` (after printing why) when
/// `LATCHKEY_TEST_POSTGRES_URL` is not set outside CI.
pub async fn spawn_app_postgres() -> Option<TestApp> {
    spawn_app_postgres_with(|_| {}).await
}

/// Like [`spawn_app_postgres`], after `tweak` has adjusted the test configuration.
pub async fn spawn_app_postgres_with(tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
    let (url, guard) = throwaway_postgres().await?;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::for_tests(dir.path());
    tweak(&mut config);
    config.database_url = url;
    let mut app = start(config).await;
    app._dir = Some(dir);
    app._pg = Some(guard);
    Some(app)
}

/// Starts a server with exactly this configuration (its data folder is not removed).
pub async fn start(config: Config) -> TestApp {
    start_inner(config, None).await
}

/// Another instance of a cluster: its own data folder, the same store and master key.
pub async fn start_peer(first: &TestApp) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = first.config.clone();
    config.data_dir = dir.path().to_path_buf();
    let key = std::fs::read_to_string(first.data_dir.join("master.key"))
        .expect("the first instance's master key");
    config.master_key =
        latchkey_server::config::MasterKeySource::Inline(key.trim().to_string().into());
    let mut app = start_inner(config, Some(first.admin_key.clone())).await;
    app._dir = Some(dir);
    app
}

async fn start_inner(config: Config, admin: Option<String>) -> TestApp {
    let data_dir = config.data_dir.clone();
    let app = Application::build(config.clone())
        .await
        .expect("the server starts");
    let url = format!("http://{}", app.address());
    let admin_key = match (&app.first_admin_key, admin) {
        (Some(k), _) => k.clone(),
        (None, Some(k)) => k,
        (None, None) => std::fs::read_to_string(data_dir.join("admin.key"))
            .expect("admin.key exists")
            .trim()
            .to_string(),
    };
    let (tx, rx) = oneshot::channel::<()>();
    let done = tokio::spawn(async move {
        let _ = app
            .run_until(async {
                let _ = rx.await;
            })
            .await;
    });
    TestApp {
        url,
        admin_key,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        data_dir,
        config,
        _dir: None,
        _pg: None,
        shutdown: Some(tx),
        done: Some(done),
    }
}

/// An answer: status and parsed JSON body (`Value::Null` when the body is not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

impl TestApp {
    /// Sends a request with the admin key.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call_as(&self.admin_key.clone(), method, path, body)
            .await
    }

    /// Sends a request with the given API key.
    pub async fn call_as(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { status, body, text }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.call(Method::DELETE, path, None).await
    }

    /// Creates a workspace and returns its slug.
    pub async fn workspace(&self, slug: &str) -> String {
        let a = self
            .post(
                "/v1/workspaces",
                serde_json::json!({"slug": slug, "name": slug}),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.text);
        slug.to_string()
    }

    /// Creates a workspace key with these scopes and returns it.
    pub async fn workspace_key(&self, slug: &str, scopes: &[&str]) -> String {
        let a = self
            .post(
                "/v1/api-keys",
                serde_json::json!({"name": "test", "workspace": slug, "scopes": scopes}),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.text);
        a.body["key"].as_str().expect("key").to_string()
    }

    /// Stops serving (requests in flight finish first); the data folder stays until drop.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(done) = self.done.take() {
            let _ = done.await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The URL of the local MariaDB/MySQL admin account for tests, or `None` (printing why) when
/// `LATCHKEY_TEST_MYSQL_URL` is unset outside CI. Under CI a missing server is a failure.
pub fn mysql_url() -> Option<String> {
    match std::env::var("LATCHKEY_TEST_MYSQL_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var_os("CI").is_some() => {
            panic!("LATCHKEY_TEST_MYSQL_URL must be set under CI")
        }
        _ => {
            eprintln!("skipping: LATCHKEY_TEST_MYSQL_URL is not set");
            None
        }
    }
}

/// Polls `check` every 20 ms until it holds, failing the test with `what` when `limit` passes
/// first: tests wait for the state they need, never for a guessed amount of time.
pub async fn eventually<F, Fut>(what: &str, limit: std::time::Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + limit;
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "still waiting after {limit:?}: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Fails the test when any of the SQLite files in `data_dir` (the database, its `-wal` and
/// `-shm`) holds one of `needles` as plain bytes, or when there was no such file to read. A
/// `-wal` or `-shm` file that goes away between the listing and the read is skipped.
pub fn assert_sqlite_files_hold_none(data_dir: &std::path::Path, needles: &[&str]) {
    let mut scanned = 0;
    for entry in std::fs::read_dir(data_dir).expect("the data folder") {
        let path = entry.expect("a data folder entry").path();
        let is_db = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("latchkey.db"));
        if !is_db {
            continue;
        }
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("{}: {e}", path.display()),
        };
        scanned += bytes.len();
        for needle in needles.iter().filter(|n| !n.is_empty()) {
            let found = bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
            assert!(!found, "{} holds `{needle}` in plaintext", path.display());
        }
    }
    assert!(scanned > 0, "no SQLite file was found to scan");
}

impl TestApp {
    /// A request through the proxy of the connection `conn` of workspace `acme`, with the
    /// admin key.
    pub fn proxy_request(&self, method: Method, conn: &str, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(
                method,
                format!(
                    "{}/v1/workspaces/acme/connections/{conn}/proxy/{path}",
                    self.url
                ),
            )
            .bearer_auth(&self.admin_key)
    }
}

/// Sends `r` and answers its status, its body as JSON (`Null` when it is not JSON) and as text.
pub async fn send_for_json(r: reqwest::RequestBuilder) -> (u16, Value, String) {
    let resp = r.send().await.expect("an answer");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    )
}
