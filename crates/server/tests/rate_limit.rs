//! The rate-limit aware proxy: rate-limited answers that say when to come back are waited out
//! and sent again (at most three sends, within the queue timeout, replayable bodies only), 429s
//! lower the pool's effective level and quiet intervals raise it back, and the application
//! never sees more requests in flight than the level allowed at that moment, on one instance
//! and across two sharing PostgreSQL.

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use latchkey_core::outbound::Rewrites;
use latchkey_testkit::{spawn_app_postgres_with, spawn_app_with, start_peer, TestApp};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the application answers while it rate-limits.
type Headers = Arc<dyn Fn() -> Vec<(&'static str, String)> + Send + Sync>;

/// One request as the application saw it.
#[derive(Debug, Clone)]
struct Arrival {
    at: DateTime<Utc>,
    /// Requests in progress at the application, this one included.
    in_flight: usize,
    limited: bool,
}

struct Inner {
    /// The first this many calls are rate-limited.
    limited_calls: usize,
    status: StatusCode,
    headers: Headers,
    /// How long an answer that is not rate-limited takes.
    delay: Duration,
    calls: AtomicUsize,
    in_flight: AtomicUsize,
    arrivals: Mutex<Vec<Arrival>>,
}

/// An application on loopback that rate-limits its first calls and counts what is in flight.
#[derive(Clone)]
struct Limiter {
    url: String,
    inner: Arc<Inner>,
}

impl Limiter {
    async fn start(limited_calls: usize, status: u16, headers: Headers) -> Limiter {
        let inner = Arc::new(Inner {
            limited_calls,
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            delay: Duration::from_millis(30),
            calls: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            arrivals: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Limiter { url, inner }
    }

    fn calls(&self) -> usize {
        self.inner.calls.load(Ordering::SeqCst)
    }

    fn arrivals(&self) -> Vec<Arrival> {
        self.inner.arrivals.lock().unwrap().clone()
    }
}

struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn answer(State(s): State<Arc<Inner>>, req: Request) -> Response {
    let in_flight = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _leave = Leave(&s.in_flight);
    let call = s.calls.fetch_add(1, Ordering::SeqCst) + 1;
    let limited = call <= s.limited_calls;
    s.arrivals.lock().unwrap().push(Arrival {
        at: Utc::now(),
        in_flight,
        limited,
    });
    // Read the whole request, as an application does before answering.
    let _ = axum::body::to_bytes(req.into_body(), usize::MAX).await;
    if limited {
        let mut r = (s.status, r#"{"error":"slow down"}"#).into_response();
        for (name, value) in (s.headers)() {
            r.headers_mut().insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(&value).unwrap(),
            );
        }
        return r;
    }
    tokio::time::sleep(s.delay).await;
    (StatusCode::OK, r#"{"ok":true}"#).into_response()
}

fn fixed(headers: &[(&'static str, &str)]) -> Headers {
    let h: Vec<(&'static str, String)> = headers.iter().map(|(n, v)| (*n, v.to_string())).collect();
    Arc::new(move || h.clone())
}

/// An API-key connection to `up` (not verified: the application counts every call).
async fn connect(app: &TestApp, name: &str, up: &Limiter, level: usize) -> String {
    let a = app
        .post(
            "/v1/workspaces/acme/connections",
            json!({"name": name, "app": "generic-api-key", "verify": false,
                   "settings": {"base_url": up.url, "concurrency_level": level},
                   "credentials": {"api_key": "k-rate-limits"}}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    a.body["id"].as_str().unwrap().to_string()
}

/// Status, `Latchkey-Retries` (0 when absent), `Retry-After` and the body of one proxied call.
async fn call(
    app: &TestApp,
    conn: &str,
    body: Option<reqwest::Body>,
) -> (u16, u32, Option<String>, String) {
    let url = format!(
        "{}/v1/workspaces/acme/connections/{conn}/proxy/items",
        app.url
    );
    let req = match body {
        Some(b) => app.client.post(url).body(b),
        None => app.client.get(url),
    };
    let r = req.bearer_auth(&app.admin_key).send().await.unwrap();
    let retries = r
        .headers()
        .get("latchkey-retries")
        .map(|v| v.to_str().unwrap().parse().unwrap())
        .unwrap_or(0);
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (
        r.status().as_u16(),
        retries,
        retry_after,
        r.text().await.unwrap(),
    )
}

async fn effective_level(app: &TestApp, conn: &str) -> u64 {
    let a = app
        .get(&format!("/v1/workspaces/acme/connections/{conn}"))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["effective_concurrency_level"].as_u64().unwrap()
}

/// Polls the connection answer until `ok` holds for its effective level, or fails after
/// `within`.
async fn wait_for_level(
    app: &TestApp,
    conn: &str,
    within: Duration,
    ok: impl Fn(u64) -> bool,
) -> u64 {
    let deadline = std::time::Instant::now() + within;
    loop {
        let level = effective_level(app, conn).await;
        if ok(level) {
            return level;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the effective level stayed at {level}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of a metric series whose line names every one of `labels`.
async fn metric(app: &TestApp, name: &str, labels: &[&str]) -> Option<f64> {
    let text = app
        .client
        .get(format!("{}/metrics", app.url))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|x| l.contains(x)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Every answer that was not rate-limited arrived with no more in flight than the effective
/// level allowed then: 1 after the last 429 (the level reached its floor), one more per quiet
/// interval since, never more than the configured level. The proxy saw each 429 after the
/// application sent it, so this bound is never above the proxy's own.
fn assert_within_the_level(arrivals: &[Arrival], configured: usize, step: Duration) {
    let last_429 = arrivals
        .iter()
        .filter(|a| a.limited)
        .map(|a| a.at)
        .max()
        .expect("some calls were rate-limited");
    for a in arrivals.iter().filter(|a| !a.limited) {
        let quiet = (a.at - last_429).num_milliseconds().max(0) as u128;
        let allowed = (1 + (quiet / step.as_millis()) as usize).min(configured);
        assert!(
            a.in_flight <= allowed,
            "{} in flight at {} while the level allowed {allowed}: {arrivals:?}",
            a.in_flight,
            a.at
        );
    }
}

const STEP: Duration = Duration::from_secs(3);

#[tokio::test]
async fn a_burst_of_429s_is_waited_out_lowers_the_level_and_the_level_climbs_back() {
    let app = spawn_app_with(|c| c.proxy_recovery_interval = STEP).await;
    app.workspace("acme").await;
    let up = Limiter::start(6, 429, fixed(&[("retry-after", "1")])).await;
    let conn = connect(&app, "burst", &up, 4).await;
    assert_eq!(effective_level(&app, &conn).await, 4);

    let callers: Vec<_> = (0..12)
        .map(|_| {
            let (app_url, client, key, conn) = (
                app.url.clone(),
                app.client.clone(),
                app.admin_key.clone(),
                conn.clone(),
            );
            tokio::spawn(async move {
                let r = client
                    .get(format!(
                        "{app_url}/v1/workspaces/acme/connections/{conn}/proxy/items"
                    ))
                    .bearer_auth(key)
                    .send()
                    .await
                    .unwrap();
                let retries: u32 = r
                    .headers()
                    .get("latchkey-retries")
                    .map_or(0, |v| v.to_str().unwrap().parse().unwrap());
                (r.status().as_u16(), retries)
            })
        })
        .collect();
    // The first 429 halves the level, the 429s of requests sent at the halved level halve it
    // again: it stays at 1 for a quiet interval.
    let lowest = wait_for_level(&app, &conn, Duration::from_secs(20), |l| l < 4).await;
    assert!(lowest < 4);
    let mut answers = Vec::new();
    for c in callers {
        answers.push(c.await.unwrap());
    }
    assert!(
        answers.iter().all(|(s, _)| *s == 200),
        "every caller gets through: {answers:?}"
    );
    let retried: u32 = answers.iter().map(|(_, r)| r).sum();
    assert_eq!(
        retried, 6,
        "each of the six 429s was sent again once: {answers:?}"
    );
    assert!(
        answers.iter().any(|(_, r)| *r == 0),
        "the others were sent once"
    );
    assert_eq!(up.calls(), 18);

    let arrivals = up.arrivals();
    assert!(
        arrivals.iter().all(|a| a.in_flight <= 4),
        "never above the configured level: {arrivals:?}"
    );
    assert_within_the_level(&arrivals, 4, STEP);

    let lowered = metric(&app, "latchkey_pool_level_lowered_total", &[&conn]).await;
    assert!(
        lowered.is_some_and(|n| n >= 2.0),
        "4 → 2 → 1 takes two lowerings: {lowered:?}"
    );
    // Each retried caller's last retry got through (a retry limited again is sent once more).
    let ok = metric(
        &app,
        "latchkey_proxy_retries_total",
        &[&conn, "outcome=\"ok\""],
    )
    .await;
    let callers_retried = answers.iter().filter(|(_, r)| *r > 0).count() as f64;
    assert_eq!(ok, Some(callers_retried));
    let retried = metric(
        &app,
        "latchkey_proxy_rate_limited_total",
        &[&conn, "action=\"retried\""],
    )
    .await;
    assert_eq!(retried, Some(6.0));

    // Quiet intervals raise the level back, one step at a time, up to the configured level.
    wait_for_level(&app, &conn, Duration::from_secs(60), |l| l == 4).await;
    let gauge = metric(&app, "latchkey_pool_effective_level", &[&conn]).await;
    assert_eq!(gauge, Some(4.0));
    let before = up.calls();
    let (status, retries, _, _) = call(&app, &conn, None).await;
    assert_eq!((status, retries, up.calls()), (200, 0, before + 1));
}

/// One scenario: a connection to its own application, and what one call through it got.
async fn scenario(
    app: &TestApp,
    name: &str,
    up: &Limiter,
    body: Option<reqwest::Body>,
) -> (u16, u32, Option<String>, String) {
    connect(app, name, up, 2).await;
    call(app, name, body).await
}

#[tokio::test]
async fn what_is_retried_and_what_is_passed_back() {
    let app = spawn_app_with(|c| c.proxy_recovery_interval = STEP).await;
    app.workspace("acme").await;
    let http_date = Limiter::start(
        1,
        429,
        Arc::new(|| {
            let at = Utc::now() + chrono::Duration::seconds(2);
            vec![(
                "retry-after",
                at.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
            )]
        }),
    )
    .await;
    let year = Limiter::start(usize::MAX, 429, fixed(&[("retry-after", "31536000")])).await;
    let year_date = Limiter::start(
        usize::MAX,
        503,
        fixed(&[("retry-after", "Fri, 01 Jan 2100 00:00:00 GMT")]),
    )
    .await;
    let always = Limiter::start(usize::MAX, 429, fixed(&[("retry-after", "0")])).await;
    let streamed = Limiter::start(usize::MAX, 429, fixed(&[("retry-after", "1")])).await;
    let small_body = Limiter::start(1, 429, fixed(&[("retry-after", "1")])).await;
    let unavailable = Limiter::start(1, 503, fixed(&[("retry-after", "1")])).await;
    let silent = Limiter::start(usize::MAX, 429, fixed(&[])).await;

    let chunks = futures::stream::iter(
        ["part one, ", "part two"].map(|c| Ok::<_, std::io::Error>(c.to_string())),
    );
    let (date, year_s, year_d, three, stream, small, unavail, none) = tokio::join!(
        scenario(&app, "http-date", &http_date, None),
        scenario(&app, "a-year", &year, None),
        scenario(&app, "a-year-date", &year_date, None),
        scenario(&app, "always", &always, None),
        scenario(
            &app,
            "streamed",
            &streamed,
            Some(reqwest::Body::wrap_stream(chunks))
        ),
        scenario(
            &app,
            "small-body",
            &small_body,
            Some(reqwest::Body::from("a small body"))
        ),
        scenario(&app, "unavailable", &unavailable, None),
        scenario(&app, "silent", &silent, None),
    );
    // An HTTP-date is waited for.
    assert_eq!((date.0, date.1, http_date.calls()), (200, 1, 2), "{date:?}");
    // A wait past the queue timeout is passed back at once, as the application said it.
    assert_eq!(
        (year_s.0, year_s.1, year.calls()),
        (429, 0, 1),
        "{year_s:?}"
    );
    assert_eq!(year_s.2.as_deref(), Some("31536000"));
    assert!(year_s.3.contains("slow down"));
    assert_eq!(
        (year_d.0, year_d.1, year_date.calls()),
        (503, 0, 1),
        "{year_d:?}"
    );
    assert_eq!(year_d.2.as_deref(), Some("Fri, 01 Jan 2100 00:00:00 GMT"));
    // At most three sends in all.
    assert_eq!((three.0, three.1, always.calls()), (429, 2, 3), "{three:?}");
    // A streamed body cannot be sent twice; a small one is kept and is.
    assert_eq!(
        (stream.0, stream.1, streamed.calls()),
        (429, 0, 1),
        "{stream:?}"
    );
    assert_eq!(
        (small.0, small.1, small_body.calls()),
        (200, 1, 2),
        "{small:?}"
    );
    // A 503 that says when is waited out too, and does not lower the level.
    assert_eq!(
        (unavail.0, unavail.1, unavailable.calls()),
        (200, 1, 2),
        "{unavail:?}"
    );
    assert_eq!(effective_level(&app, "unavailable").await, 2);
    // Without a word on when to come back, the 429 goes back at once (and lowers the level).
    assert_eq!((none.0, none.1, silent.calls()), (429, 0, 1), "{none:?}");
    let passed = metric(
        &app,
        "latchkey_proxy_rate_limited_total",
        &["action=\"not_replayable\""],
    )
    .await;
    assert!(passed.is_some_and(|n| n >= 1.0), "{passed:?}");
}

#[tokio::test]
async fn the_entrys_reset_header_is_waited_for() {
    let seconds = Limiter::start(1, 429, fixed(&[("x-ratelimit-reset", "1")])).await;
    let epoch = Limiter::start(
        1,
        429,
        Arc::new(|| {
            vec![(
                "x-ratelimit-reset",
                (Utc::now().timestamp() + 2).to_string(),
            )]
        }),
    )
    .await;
    let rewrites = format!(
        "https://api.datadoghq.com={},https://api.github.com={}",
        seconds.url, epoch.url
    );
    let app = spawn_app_with(|c| c.outbound_rewrites = Rewrites::parse(&rewrites).unwrap()).await;
    app.workspace("acme").await;
    let dd = app
        .post(
            "/v1/workspaces/acme/connections",
            json!({"name": "dd", "app": "datadog", "verify": false, "settings": {"site": "datadoghq.com"},
                   "credentials": {"api_key": "dd-key-1", "application_key": "dd-app-1"}}),
        )
        .await;
    assert_eq!(dd.status, 201, "{}", dd.text);
    let gh = app
        .post(
            "/v1/workspaces/acme/connections",
            json!({"name": "gh", "app": "github", "auth_mode": "api_key", "verify": false,
                   "credentials": {"api_key": "ghp-test-token"}}),
        )
        .await;
    assert_eq!(gh.status, 201, "{}", gh.text);
    // Datadog's reset header counts seconds from now; GitHub's is a time in epoch seconds.
    let (d, g) = tokio::join!(call(&app, "dd", None), call(&app, "gh", None));
    assert_eq!((d.0, d.1, seconds.calls()), (200, 1, 2), "{d:?}");
    assert_eq!((g.0, g.1, epoch.calls()), (200, 1, 2), "{g:?}");
}

#[tokio::test]
async fn the_lowered_level_holds_across_instances_on_postgres() {
    let step = Duration::from_secs(4);
    let Some(a) = spawn_app_postgres_with(|c| c.proxy_recovery_interval = step).await else {
        return;
    };
    let b = start_peer(&a).await;
    a.workspace("acme").await;
    let up = Limiter::start(6, 429, fixed(&[("retry-after", "1")])).await;
    let conn = connect(&a, "shared", &up, 4).await;

    let run = |app: &TestApp, n: usize| {
        let (url, client, key, conn) = (
            app.url.clone(),
            app.client.clone(),
            app.admin_key.clone(),
            conn.clone(),
        );
        futures::future::join_all((0..n).map(move |_| {
            let (url, client, key, conn) = (url.clone(), client.clone(), key.clone(), conn.clone());
            async move {
                let r = client
                    .get(format!(
                        "{url}/v1/workspaces/acme/connections/{conn}/proxy/items"
                    ))
                    .bearer_auth(key)
                    .send()
                    .await
                    .unwrap();
                r.status().as_u16()
            }
        }))
    };
    // Instance a meets the 429s...
    let first = run(&a, 8).await;
    assert!(first.iter().all(|s| *s == 200), "{first:?}");
    assert_eq!(up.calls(), 14, "eight calls and six sent again");
    // ...and instance b, which never saw one, keeps to the lowered level all the same.
    let second = run(&b, 8).await;
    assert!(second.iter().all(|s| *s == 200), "{second:?}");
    let arrivals = up.arrivals();
    assert!(arrivals.iter().all(|x| x.in_flight <= 4), "{arrivals:?}");
    assert_within_the_level(&arrivals, 4, step);
    // Instance b learns the level for its answers too, and both see it climb back.
    wait_for_level(&b, &conn, Duration::from_secs(20), |l| l < 4).await;
    for app in [&a, &b] {
        wait_for_level(app, &conn, Duration::from_secs(60), |l| l == 4).await;
    }
}

#[tokio::test]
async fn a_connection_answer_shows_its_effective_level() {
    let app = spawn_app_with(|_| {}).await;
    app.workspace("acme").await;
    let up = Limiter::start(0, 429, fixed(&[])).await;
    let id = connect(&app, "plain", &up, 3).await;
    assert_eq!(effective_level(&app, &id).await, 3);
    let list = app.get("/v1/workspaces/acme/connections").await;
    assert_eq!(list.body["items"][0]["effective_concurrency_level"], 3);
    let borrower = app
        .post(
            "/v1/workspaces/acme/connections",
            json!({"name": "borrower", "app": "generic-api-key", "verify": false,
                   "settings": {"base_url": up.url, "borrow_concurrency_from": id},
                   "credentials": {"api_key": "k"}}),
        )
        .await;
    assert_eq!(borrower.status, 201, "{}", borrower.text);
    assert_eq!(
        borrower.body["effective_concurrency_level"],
        Value::Null,
        "a borrower has no pool of its own"
    );
}
