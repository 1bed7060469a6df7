//! Token-exchange connections: the catalog's Looker entry against a loopback stand-in for a
//! Looker instance (its origin rewritten to it). The client id and secret are posted to the
//! login endpoint; the session token is kept sealed, injected as `Authorization: token …`,
//! renewed at expiry and after a 401, each time by exactly one login however many callers wait.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use latchkey_core::outbound::Rewrites;
use latchkey_testkit::{spawn_app_with, TestApp};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENT_ID: &str = "lk-client-5b1f0c";
const SECRET: &str = "lk-secret-9e2d7a4c8b6f1e3d";

#[derive(Default)]
struct Looker {
    /// session token → when it ends
    sessions: HashMap<String, Instant>,
    lifetime: u64,
    logins: u64,
    served: u64,
}

type Shared = Arc<Mutex<Looker>>;

async fn login(State(s): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    if form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || form.get("client_secret").map(String::as_str) != Some(SECRET)
    {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "Not found", "documentation_url": "https://cloud.google.com/looker/docs/"})),
        )
            .into_response();
    }
    let mut l = s.lock().unwrap();
    l.logins += 1;
    let token = format!("lkss{:016x}{}", rand::random::<u64>(), l.logins);
    let life = l.lifetime;
    l.sessions
        .insert(token.clone(), Instant::now() + Duration::from_secs(life));
    Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": life})).into_response()
}

async fn api(State(s): State<Shared>, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut l = s.lock().unwrap();
    let ok = auth
        .strip_prefix("token ")
        .and_then(|t| l.sessions.get(t))
        .is_some_and(|end| *end > Instant::now());
    if !ok {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Requires authentication.", "documentation_url": "https://cloud.google.com/looker/docs/"})),
        )
            .into_response();
    }
    l.served += 1;
    Json(json!({"id": "7", "display_name": "ETL", "path": uri.path()})).into_response()
}

async fn looker() -> (String, Shared) {
    let state: Shared = Arc::new(Mutex::new(Looker {
        lifetime: 2,
        ..Looker::default()
    }));
    let app = axum::Router::new()
        .route("/api/4.0/login", axum::routing::post(login))
        .fallback(api)
        .with_state(state.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (url, state)
}

async fn started() -> (TestApp, Shared) {
    let (url, state) = looker().await;
    let rewrites = Rewrites::parse(&format!("https://acme.cloud.looker.com={url}")).unwrap();
    // Renewals here come from the reads and the 401s, not from the background.
    let app = spawn_app_with(|c| {
        c.outbound_rewrites = rewrites;
        c.background = false;
    })
    .await;
    app.workspace("bi").await;
    (app, state)
}

fn body(secret: &str) -> Value {
    json!({"name": "looker", "app": "looker", "auth_mode": "token_exchange",
           "settings": {"instance": "acme"},
           "credentials": {"api_key": CLIENT_ID, "api_secret": secret}})
}

async fn token(app: &TestApp) -> String {
    let t = app.get("/v1/workspaces/bi/connections/looker/token").await;
    assert_eq!(t.status, 200, "{}", t.text);
    t.body["access_token"].as_str().unwrap().to_string()
}

fn logins(s: &Shared) -> u64 {
    s.lock().unwrap().logins
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_token_is_kept_injected_and_renewed_once() {
    let (app, looker) = started().await;

    // Wrong credentials: refused, nothing stored, the secret not echoed.
    let wrong = "lk-secret-wrong-0a1b2c3d4e5f";
    let r = app.post("/v1/workspaces/bi/connections", body(wrong)).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["error"], "verification_failed", "{}", r.text);
    assert!(r.body["hint"]
        .as_str()
        .unwrap()
        .contains("login endpoint refused"));
    assert!(
        !r.text.contains(wrong) && !r.text.contains(SECRET),
        "{}",
        r.text
    );

    let created = app
        .post("/v1/workspaces/bi/connections", body(SECRET))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["status"], "active", "{}", created.text);
    assert_eq!(logins(&looker), 1, "the create logged in once");

    // The token read answers the session token; the proxy injects it.
    let first = token(&app).await;
    assert!(looker.lock().unwrap().sessions.contains_key(&first));
    let p = app
        .get("/v1/workspaces/bi/connections/looker/proxy/user")
        .await;
    assert_eq!(p.status, 200, "{}", p.text);
    assert_eq!(p.body["path"], "/api/4.0/user");

    // Expired (two-second sessions): the next read logs in again.
    let deadline = Instant::now() + Duration::from_secs(10);
    let second = loop {
        let t = token(&app).await;
        if t != first {
            break t;
        }
        assert!(Instant::now() < deadline, "the session was never renewed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(looker.lock().unwrap().sessions.contains_key(&second));
    assert_eq!(logins(&looker), 2);

    // A long session, then the instance forgets every session: twenty proxied calls at once
    // get 401s, and exactly one login renews the session for all of them.
    looker.lock().unwrap().lifetime = 3600;
    let forced = app
        .post(
            "/v1/workspaces/bi/connections/looker/token/refresh",
            json!({}),
        )
        .await;
    assert_eq!(forced.status, 200, "{}", forced.text);
    looker.lock().unwrap().sessions.clear();
    let before = logins(&looker);
    let app_ref = &app;
    let calls = futures::future::join_all((0..20).map(|i| async move {
        app_ref
            .get(&format!(
                "/v1/workspaces/bi/connections/looker/proxy/dashboards/{i}"
            ))
            .await
    }))
    .await;
    for c in &calls {
        assert_eq!(c.status, 200, "{}", c.text);
    }
    assert_eq!(
        logins(&looker) - before,
        1,
        "exactly one login after the 401s"
    );
    let now = token(&app).await;
    assert!(looker.lock().unwrap().sessions.contains_key(&now));

    // Neither the secret nor a session token is in an answer, an event or the SQLite file.
    for path in [
        "/v1/workspaces/bi/connections",
        "/v1/workspaces/bi/connections/looker",
        "/v1/workspaces/bi/events?limit=500",
    ] {
        let a = app.get(path).await;
        assert!(
            !a.text.contains(SECRET) && !a.text.contains(&now),
            "{path}: {}",
            a.text
        );
    }
    let data_dir = app.data_dir.clone();
    let mut app = app;
    app.stop().await;
    latchkey_testkit::assert_sqlite_files_hold_none(
        &data_dir,
        &[SECRET, now.as_str(), first.as_str()],
    );
}
