//! The browser harness of the UI tests: chromedriver started on a free loopback port, a
//! headless Chromium session through WebDriver, and waits that are all bounded.

use fantoccini::elements::Element;
use fantoccini::wd::WindowHandle;
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use latchkey_core::outbound::Rewrites;
use latchkey_testkit::salesforce::{self, SalesforceSim};
use latchkey_testkit::upstream::Upstream;
use latchkey_testkit::{spawn_app_with, TestApp};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const WAIT: Duration = Duration::from_secs(20);

pub struct Browser {
    pub client: Client,
    url: String,
    pub driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

pub async fn start_browser() -> Option<Browser> {
    if !std::path::Path::new(CHROMEDRIVER).exists() || !std::path::Path::new(CHROMIUM).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{CHROMEDRIVER} or {CHROMIUM} is missing under CI: run scripts/install-chromium.sh"
        );
        eprintln!("skipping the browser test: {CHROMEDRIVER} is not installed (bash scripts/install-chromium.sh)");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = tokio::process::Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver starts");
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + WAIT;
    loop {
        let ready = http.get(format!("{url}/status")).send().await;
        if matches!(&ready, Ok(r) if r.status().is_success()) {
            break;
        }
        assert!(Instant::now() < deadline, "chromedriver did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                format!("--user-data-dir={}", profile.path().display())],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = tokio::time::timeout(
        Duration::from_secs(60),
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&url),
    )
    .await
    .expect("a browser session within a minute")
    .expect("a browser session");
    Some(Browser {
        client,
        url,
        driver,
        _profile: profile,
    })
}

impl Browser {
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// The element once it is present and shown.
    pub async fn find(&self, css: &str) -> Element {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await {
                if e.is_displayed().await.unwrap_or(false) {
                    return e;
                }
            }
            assert!(Instant::now() < deadline, "`{css}` did not appear");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn click(&self, css: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let e = self.find(css).await;
            match e.click().await {
                Ok(_) => return,
                Err(err) => assert!(Instant::now() < deadline, "cannot click `{css}`: {err}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        e.clear().await.expect("clear");
        e.send_keys(text).await.expect("type");
    }

    /// Chooses an option (once the page has filled the list in).
    pub async fn choose(&self, css: &str, value: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.find(css).await.select_by_value(value).await {
                Ok(_) => return,
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "cannot choose {value} in `{css}`: {e}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Signs in with `key` on the sign-in page already shown, and waits until the signed-in
    /// page has loaded: a `goto` issued while the sign-in answer is still redirecting would
    /// otherwise be overtaken by that redirect.
    pub async fn sign_in(&self, key: &str) {
        self.fill("#api_key", key).await;
        self.click("form button[type=submit]").await;
        self.find("form.signout").await;
    }

    /// Evaluates a script until it returns `true`.
    pub async fn until(&self, what: &str, script: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Value::Bool(true)) = self.client.execute(script, vec![]).await {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text of `css` once it contains `needle`.
    pub async fn text_with(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await {
                let t = e.text().await.unwrap_or_default();
                if t.contains(needle) {
                    return t;
                }
                assert!(
                    Instant::now() < deadline,
                    "`{css}` never said `{needle}`; it says: {t}"
                );
            } else {
                assert!(Instant::now() < deadline, "`{css}` did not appear");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Prints the page's console messages (JavaScript errors included) after a failure.
    pub async fn print_console(&self) {
        eprintln!("browser console: {:#?}", self.console().await);
        if let Ok(Value::String(text)) = self
            .client
            .execute("return document.body.innerText", vec![])
            .await
        {
            eprintln!("page text at the failure:\n{text}");
        }
    }

    /// The console messages since the last call (chromedriver's log endpoint).
    pub async fn console(&self) -> Vec<String> {
        let Ok(Some(id)) = self.client.session_id().await else {
            return vec![];
        };
        let logs = reqwest::Client::new()
            .post(format!("{}/session/{id}/se/log", self.url))
            .json(&json!({"type": "browser"}))
            .send()
            .await;
        let Ok(body) = logs else { return vec![] };
        let body: Value = body.json().await.unwrap_or_default();
        body["value"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {}",
                            e["level"].as_str().unwrap_or(""),
                            e["message"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Sends a Chrome DevTools Protocol command through chromedriver.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        let id = self
            .client
            .session_id()
            .await
            .expect("session id")
            .expect("a session");
        let resp = reqwest::Client::new()
            .post(format!("{}/session/{id}/goog/cdp/execute", self.url))
            .json(&json!({"cmd": cmd, "params": params}))
            .send()
            .await
            .expect("chromedriver answers");
        assert!(resp.status().is_success(), "{cmd}: {}", resp.status());
        resp.json().await.unwrap_or_default()
    }

    pub async fn pane_closed(&self) {
        self.until(
            "the pane to close",
            "return !document.querySelector('#conn-pane').open",
        )
        .await;
    }

    pub async fn screenshot(&self, name: &str) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Runs a scenario that drives this browser; when it fails, keeps a screenshot named
    /// `<label>-failure` and prints the page's console before the failure is reported by
    /// [`Browser::close`].
    pub async fn attempt(
        &self,
        label: &str,
        scenario: impl std::future::Future<Output = ()>,
    ) -> std::thread::Result<()> {
        let outcome = std::panic::AssertUnwindSafe(scenario).catch_unwind().await;
        if outcome.is_err() {
            self.screenshot(&format!("{label}-failure")).await;
            self.print_console().await;
        }
        outcome
    }

    /// Ends the browser session and chromedriver (bounded), then fails the test if the
    /// scenario given to [`Browser::attempt`] failed.
    pub async fn close(self, outcome: std::thread::Result<()>) {
        let Browser {
            client, mut driver, ..
        } = self;
        let _ = tokio::time::timeout(Duration::from_secs(20), client.close()).await;
        let _ = driver.kill().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}

/// A server whose outbound calls to Salesforce go to a fresh simulator, with the server's
/// callback registered on the simulator's default connected app, and an API that accepts
/// `key-right-123`: what the browser scenarios that authorize a connection start from.
pub async fn salesforce_setup() -> (SalesforceSim, TestApp, Upstream) {
    let sim = SalesforceSim::start().await;
    let rewrites = Rewrites::parse(&sim.rewrites()).unwrap();
    let app = spawn_app_with(|c| c.outbound_rewrites = rewrites).await;
    sim.add_callback_url(
        salesforce::DEFAULT_CONSUMER_KEY,
        &format!("{}/oauth/callback", app.url),
    );
    let up = Upstream::start("key-right-123", "u", "p").await;
    (sim, app, up)
}

/// The handle of the window the page opened besides `main`.
pub async fn popup_window(b: &Browser, main: &WindowHandle) -> WindowHandle {
    let deadline = Instant::now() + WAIT;
    loop {
        let all = b.client.windows().await.unwrap();
        if let Some(w) = all.into_iter().find(|w| w != main) {
            return w;
        }
        assert!(Instant::now() < deadline, "no popup window opened");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn windows_left(b: &Browser, n: usize) {
    let deadline = Instant::now() + WAIT;
    loop {
        let count = b.client.windows().await.unwrap().len();
        if count == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{count} windows are open, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
