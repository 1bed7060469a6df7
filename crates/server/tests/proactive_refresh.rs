//! Proactive refresh under continuous reads: a Salesforce connection (the Salesforce simulator
//! with 20-second sessions) and a generic OAuth 2.0 connection (the provider simulator issuing
//! 20-second tokens) on one server, each read in a loop by a few readers for two minutes, both
//! at once. Every read answers a token the provider still honours; no read waits for a refresh
//! (the server's count of requests that waited on one stays 0, and its background refreshes
//! account for what the providers saw); each provider sees one refresh per token life, never
//! two within one.

use latchkey_core::catalog::Catalog;
use latchkey_core::model::AuthMode;
use latchkey_core::outbound::Rewrites;
use latchkey_testkit::provider::{ProviderSim, SimRow};
use latchkey_testkit::salesforce::{self, SalesforceConfig, SalesforceSim};
use latchkey_testkit::{spawn_app_with, TestApp};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The life of every access token, in seconds.
const LIFE: u64 = 20;
/// How long the readers read.
const WINDOW: Duration = Duration::from_secs(120);
/// Readers per connection.
const READERS: usize = 3;
/// Where in a token's life the background refreshes it (the server's rule).
const REFRESH_AT: f64 = 0.8;

const GENERIC: &str = "generic-oauth2";

/// The built-in Salesforce entry with a session timeout allowed down to 10 s (the entry's own
/// minimum is 300 s, Salesforce's shortest real setting being longer still): an operator's
/// catalog override, the way a test shortens a token's life without touching the product.
fn short_session_catalog() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../catalog/salesforce.toml");
    let text = std::fs::read_to_string(path).expect("the Salesforce entry");
    let marker = "name = \"session_timeout_seconds\"";
    let at = text.find(marker).expect("the session timeout setting");
    let (head, tail) = text.split_at(at);
    let tail = tail.replacen("min = 300", "min = 10", 1);
    assert_ne!(
        tail,
        text[at..],
        "the setting's minimum is where this test expects it"
    );
    std::fs::write(dir.path().join("salesforce.toml"), format!("{head}{tail}")).expect("write");
    dir
}

fn generic_row() -> SimRow {
    let entry = Catalog::embedded()
        .get(GENERIC)
        .expect("the generic OAuth entry")
        .clone();
    let settings: Map<String, Value> = serde_json::from_value(json!({
        "token_url": "https://auth.generic-provider.test/oauth/token",
        "base_url": "https://api.generic-provider.test",
        "verify_path": "/me",
    }))
    .expect("settings");
    SimRow {
        entry,
        mode: AuthMode::OAuth2ClientCredentials,
        settings,
        creds: BTreeMap::new(),
    }
}

/// The sum of a counter's series whose labels contain `labels` (0 when it was never counted).
async fn counter(app: &TestApp, name: &str, labels: &str) -> f64 {
    let m = app
        .client
        .get(format!("{}/metrics", app.url))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .expect("metrics");
    assert_eq!(m.status(), 200);
    let text = m.text().await.expect("metrics text");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Timestamps of every refresh a provider saw, sampled every 100 ms from its count.
struct Refreshes {
    at: Mutex<Vec<Instant>>,
}

impl Refreshes {
    fn watch(count: impl Fn() -> usize + Send + 'static, stop: Arc<AtomicBool>) -> Arc<Self> {
        let me = Arc::new(Refreshes {
            at: Mutex::new(vec![]),
        });
        let out = me.clone();
        tokio::spawn(async move {
            let mut seen = count();
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let now = count();
                for _ in seen..now {
                    out.at.lock().unwrap().push(Instant::now());
                }
                seen = now;
            }
        });
        me
    }

    fn times(&self) -> Vec<Instant> {
        self.at.lock().unwrap().clone()
    }
}

/// `READERS` readers of one connection's token for the window; each checks with the provider
/// that the token it was answered is alive. Answers the reads and the failures.
async fn read_for_window(
    app: Arc<TestApp>,
    name: &'static str,
    alive: Arc<dyn Fn(&str) -> bool + Send + Sync>,
) -> (usize, Vec<String>) {
    let reads = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let mut tasks = vec![];
    for _ in 0..READERS {
        let (app, alive, reads, failures) =
            (app.clone(), alive.clone(), reads.clone(), failures.clone());
        tasks.push(tokio::spawn(async move {
            while start.elapsed() < WINDOW {
                let t = app
                    .get(&format!("/v1/workspaces/acme/connections/{name}/token"))
                    .await;
                let n = reads.fetch_add(1, Ordering::Relaxed);
                let token = t.body["access_token"].as_str().unwrap_or_default();
                if t.status != 200 {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("{name} read {n}: {} {}", t.status, t.text));
                } else if !alive(token) {
                    failures.lock().unwrap().push(format!(
                        "{name} read {n} at {:?}: answered a token the provider no longer honours",
                        start.elapsed()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("reader");
    }
    let failures = failures.lock().unwrap().clone();
    (reads.load(Ordering::Relaxed), failures)
}

/// Refreshes within the window: one per refresh interval, and never two within one token life
/// (the next refresh comes at about `REFRESH_AT` of the new token's life).
fn check_refreshes(who: &str, times: &[Instant]) {
    let expected = WINDOW.as_secs_f64() / (REFRESH_AT * LIFE as f64);
    let n = times.len() as f64;
    assert!(
        (n - expected).abs() <= 1.5,
        "{who}: {n} refreshes in {WINDOW:?} of {LIFE} s tokens, expected about {expected:.1}"
    );
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_secs(LIFE) * 7 / 10,
            "{who}: two refreshes {gap:?} apart within one {LIFE} s token life"
        );
    }
}

async fn authorize_salesforce(app: &TestApp, sim: &SalesforceSim) {
    sim.add_callback_url(
        salesforce::DEFAULT_CONSUMER_KEY,
        &format!("{}/oauth/callback", app.url),
    );
    let c = app
        .call(reqwest::Method::PUT, "/v1/workspaces/acme/apps/salesforce/oauth-client",
            Some(json!({"client_id": salesforce::DEFAULT_CONSUMER_KEY, "client_secret": salesforce::DEFAULT_CONSUMER_SECRET})))
        .await;
    assert_eq!(c.status, 200, "{}", c.text);
    let created = app
        .post(
            "/v1/workspaces/acme/connections",
            json!({"name": "sf", "app": "salesforce", "auth_mode": "oauth2_code",
                "settings": {"account_type": "production", "session_timeout_seconds": LIFE,
                    "health_check_interval_seconds": 0}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let location = sim
        .login_via_browser(
            created.body["authorize_url"].as_str().unwrap(),
            salesforce::DEFAULT_USERNAME,
            salesforce::DEFAULT_PASSWORD,
        )
        .await
        .unwrap();
    assert_eq!(
        app.client.get(&location).send().await.unwrap().status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_minutes_of_reads_never_wait_and_each_token_life_costs_one_refresh() {
    let sf = Arc::new(
        SalesforceSim::start_with(
            SalesforceConfig::default().with_session_timeout(Duration::from_secs(LIFE)),
        )
        .await,
    );
    let row = generic_row();
    let generic = Arc::new(ProviderSim::start(vec![row.clone()], &[]).await);
    generic.set_token_lifetime(LIFE);
    let catalog = short_session_catalog();
    let rewrites =
        Rewrites::parse(&format!("{},{}", sf.rewrites(), generic.rewrites())).expect("rewrites");
    let app = spawn_app_with(|c| {
        c.outbound_rewrites = rewrites;
        c.catalog_dir = Some(catalog.path().to_path_buf());
        c.background_tick = Duration::from_millis(200);
    })
    .await;
    app.workspace("acme").await;
    authorize_salesforce(&app, &sf).await;
    let r = app
        .post(
            "/v1/workspaces/acme/connections",
            json!({"name": "api", "app": GENERIC, "auth_mode": "oauth2_client_credentials",
                "settings": {"token_url": row.settings["token_url"], "base_url": row.settings["base_url"],
                    "verify_path": "/me", "health_check_interval_seconds": 0},
                "credentials": {"client_id": row.client_id(), "client_secret": row.client_secret()}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    for name in ["sf", "api"] {
        let c = app
            .get(&format!("/v1/workspaces/acme/connections/{name}"))
            .await;
        assert_eq!(c.body["status"], "active", "{}", c.text);
    }

    let waits_before = counter(&app, "latchkey_token_refresh_waits_total", "").await;
    let background_before = counter(
        &app,
        "latchkey_proactive_refreshes_total",
        "outcome=\"refreshed\"",
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let sf_refreshes = {
        let sim = sf.clone();
        Refreshes::watch(move || sim.refresh_count(), stop.clone())
    };
    let generic_refreshes = {
        let sim = generic.clone();
        Refreshes::watch(
            move || {
                sim.seen(GENERIC)
                    .iter()
                    .filter(|k| *k == "token:client_credentials")
                    .count()
            },
            stop.clone(),
        )
    };
    let app = Arc::new(app);
    let sf_alive: Arc<dyn Fn(&str) -> bool + Send + Sync> = {
        let sim = sf.clone();
        Arc::new(move |t| sim.access_token_alive(t))
    };
    let generic_alive: Arc<dyn Fn(&str) -> bool + Send + Sync> = {
        let sim = generic.clone();
        Arc::new(move |t| sim.access_token_alive(t))
    };
    let ((sf_reads, sf_failures), (generic_reads, generic_failures)) = tokio::join!(
        read_for_window(app.clone(), "sf", sf_alive),
        read_for_window(app.clone(), "api", generic_alive),
    );
    stop.store(true, Ordering::Relaxed);

    let failures: Vec<String> = sf_failures.into_iter().chain(generic_failures).collect();
    assert!(
        failures.is_empty(),
        "{} bad reads: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(
        sf_reads > 500 && generic_reads > 500,
        "continuous reads: {sf_reads} and {generic_reads}"
    );
    let waits = counter(&app, "latchkey_token_refresh_waits_total", "").await - waits_before;
    assert_eq!(waits, 0.0, "requests that waited on a refresh");
    let (sf_times, generic_times) = (sf_refreshes.times(), generic_refreshes.times());
    eprintln!(
        "reads: {sf_reads} Salesforce, {generic_reads} generic; refreshes seen by the providers: \
         {} Salesforce, {} generic",
        sf_times.len(),
        generic_times.len()
    );
    let background = counter(
        &app,
        "latchkey_proactive_refreshes_total",
        "outcome=\"refreshed\"",
    )
    .await
        - background_before;
    let seen = (sf_times.len() + generic_times.len()) as f64;
    // Every refresh the providers saw was the background's (one may straddle the window's end).
    assert!(
        background >= seen - 1.0 && background <= seen + 2.0,
        "{background} background refreshes for {seen} the providers saw"
    );
    check_refreshes("Salesforce", &sf_times);
    check_refreshes("generic OAuth", &generic_times);
}
