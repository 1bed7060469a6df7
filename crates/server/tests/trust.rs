//! Trust: a key that may use a connection can never obtain its secret. Destinations bound to the
//! secret material, no echo of a secret anywhere, queued proxy requests that see deletes and
//! credential changes, forced refreshes that collapse, bounded input.

#[path = "support/log_capture.rs"]
mod log_capture;

use base64::Engine as _;
use latchkey_core::outbound::Rewrites;
use latchkey_testkit::salesforce::{self, SalesforceSim};
use latchkey_testkit::upstream::Upstream;
use latchkey_testkit::{spawn_app, spawn_app_with, TestApp};
use log_capture::Capture;
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tracing_subscriber::util::SubscriberInitExt;

const KEY: &str = "up-key-Trust-7c1d";
const DB_PASSWORD: &str = "db-Pw-Secret-77x";

// ---------------------------------------------------------------------------------------------
// Log capture: every log line of every server in this test binary, at debug level.

fn capture_logs() -> &'static Capture {
    static LOGS: OnceLock<Capture> = OnceLock::new();
    LOGS.get_or_init(|| {
        let capture = Capture::default();
        // `try_init` also takes in lines written through the `log` crate.
        let _ = capture
            .subscriber(
                "info,latchkey_server=debug,latchkey_core=debug,latchkey_store=debug,tower_http=debug",
            )
            .try_init();
        capture
    })
}

// ---------------------------------------------------------------------------------------------
// A loopback application that answers every request by echoing all of it back.

const ACCESS: &str = "at-Echo9Kq2Lm7Vx4Rz";
const REFRESH: &str = "rt-Echo5Hs8Np3Wd6Ty";

#[derive(Clone)]
struct Echo {
    url: String,
    hits: Arc<AtomicUsize>,
}

async fn echo_server() -> Echo {
    use axum::response::IntoResponse;
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
            let body = String::from_utf8_lossy(&body).to_string();
            let headers: Vec<String> = parts
                .headers
                .iter()
                .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("?")))
                .collect();
            let dump = format!(
                "{} {} | {} | {}",
                parts.method,
                parts.uri,
                headers.join("; "),
                body
            );
            let path = parts.uri.path().to_string();
            let grant = url::form_urlencoded::parse(body.as_bytes())
                .find(|(k, _)| k == "grant_type")
                .map(|(_, v)| v.to_string())
                .unwrap_or_default();
            let json = |status: u16, v: Value| {
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    [("content-type", "application/json")],
                    v.to_string(),
                )
                    .into_response()
            };
            match path.as_str() {
                "/token" if grant == "authorization_code" => json(
                    200,
                    json!({"access_token": ACCESS, "refresh_token": REFRESH, "token_type": "Bearer", "expires_in": 3600}),
                ),
                "/token" | "/services/oauth2/token" => json(
                    400,
                    json!({"error": "invalid_grant", "error_description": dump}),
                ),
                "/bigtoken" => (
                    axum::http::StatusCode::OK,
                    [("content-type", "application/json")],
                    r#"{"access_token":"big-token-0001","expires_in":1e13,"issued_at":"99999999999999999"}"#,
                )
                    .into_response(),
                "/ok" => json(200, json!({})),
                "/json" => json(401, json!({"error": "unauthorized", "message": dump})),
                "/nested" => json(400, json!({"error": {"code": 400, "message": dump}})),
                "/sf" => json(403, json!([{"errorCode": "INSUFFICIENT_ACCESS", "message": dump}])),
                "/html" => (
                    axum::http::StatusCode::NOT_FOUND,
                    [("content-type", "text/html")],
                    format!("<html><body><p>{dump}</p></body></html>"),
                )
                    .into_response(),
                _ => (
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    [("content-type", "text/plain")],
                    dump,
                )
                    .into_response(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Echo { url, hits }
}

/// Every form a secret could take in text, as an attacker would look for it. A secret whose name
/// has a `:` joins a public part (a user name, a client id) to a secret one: it is looked for
/// whole in every encoding, its pieces through the secret part alone.
fn encodings(secret: &str, pieces: bool) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let b64u = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut out = vec![
        secret.to_string(),
        url::form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
        percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
            .to_string(),
        b64.encode(secret).trim_end_matches('=').to_string(),
        b64u.encode(secret),
        serde_json::to_string(secret)
            .unwrap()
            .trim_matches('"')
            .to_string(),
        secret.split_whitespace().collect::<Vec<_>>().join(" "),
    ];
    let chars: Vec<char> = secret.chars().collect();
    if pieces {
        for w in chars.windows(8) {
            out.push(w.iter().collect());
        }
    }
    out.sort();
    out.dedup();
    out
}

fn assert_no_secret(what: &str, text: &str, secrets: &[(&str, String)]) {
    for (name, secret) in secrets {
        for form in encodings(secret, !name.contains(':')) {
            assert!(
                !text.contains(&form),
                "{what} carries {name} as {form:?}:\n{}",
                &text[text.find(&form).unwrap().saturating_sub(300)..]
                    .chars()
                    .take(700)
                    .collect::<String>()
            );
        }
    }
}

fn state_of(authorize_url: &str) -> String {
    url::Url::parse(authorize_url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .to_string()
}

#[tokio::test]
async fn no_answer_status_reason_event_database_or_log_line_carries_a_secret() {
    capture_logs();
    let echo = echo_server().await;
    let rewrites = Rewrites::parse(&format!("https://login.salesforce.com={}", echo.url)).unwrap();
    let app = spawn_app_with(|c| c.outbound_rewrites = rewrites).await;
    app.workspace("acme").await;
    let api_key = "ak_live/Q7+xZp9Rw=T3vK";
    let (user, password) = ("svc-user", "pw Hk3#r8&Lq2!z Vb");
    let client_id = "client-id-echo";
    let client_secret = "cs-Sh4/Xy8+Vq1=Zr6 Kp";
    let ws_secret = "wcs-Qm9Tf2Lw8Bz5Nc";
    let key_body: String = salesforce::TEST_PRIVATE_KEY_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let secrets: Vec<(&str, String)> = vec![
        ("api key", api_key.into()),
        ("password", password.into()),
        ("user:password", format!("{user}:{password}")),
        ("client secret", client_secret.into()),
        (
            "client id:secret",
            format!("{}:{}", enc(client_id), enc(client_secret)),
        ),
        (
            "client id:secret (raw)",
            format!("{client_id}:{client_secret}"),
        ),
        ("workspace client secret", ws_secret.into()),
        ("access token", ACCESS.into()),
        ("refresh token", REFRESH.into()),
        ("private key", key_body.clone()),
        ("database password", DB_PASSWORD.into()),
    ];
    let mut answers: Vec<String> = Vec::new();
    let conns = "/v1/workspaces/acme/connections";

    // Static credentials, each verified against every error shape the application may use.
    let statics = [
        (
            "generic-api-key",
            "api_key",
            json!({"api_key_name": "Authorization", "api_key_prefix": "Bearer "}),
            json!({"api_key": api_key}),
        ),
        (
            "generic-api-key",
            "api_key",
            json!({"api_key_in": "query", "api_key_name": "key"}),
            json!({"api_key": api_key}),
        ),
        (
            "generic-basic",
            "basic",
            json!({}),
            json!({"username": user, "password": password}),
        ),
    ];
    let mut n = 0;
    for (app_id, mode, extra, creds) in statics {
        for path in ["/json", "/nested", "/sf", "/html", "/text"] {
            n += 1;
            let mut settings = json!({"base_url": echo.url, "verify_path": path});
            for (k, v) in extra.as_object().unwrap() {
                settings[k] = v.clone();
            }
            let body = json!({"name": format!("s{n}"), "app": app_id, "auth_mode": mode, "settings": settings, "credentials": creds});
            let refused = app.post(conns, body.clone()).await;
            assert_eq!(refused.status, 422, "{}", refused.text);
            answers.push(refused.text.clone());
            let mut later = body;
            later["verify"] = json!(false);
            let saved = app.post(conns, later).await;
            assert_eq!(saved.status, 201, "{}", saved.text);
            let v = app.post(&format!("{conns}/s{n}/verify"), json!({})).await;
            assert_eq!(v.body["connection"]["status"], "failing", "{}", v.text);
            answers.push(v.text.clone());
        }
    }

    // Through the proxy: the application echoes the request, credential included.
    for c in ["s1", "s6", "s11"] {
        for path in ["anything?x=1", "json", "sf"] {
            let a = app.get(&format!("{conns}/{c}/proxy/{path}")).await;
            assert!(a.status >= 400, "{}", a.text);
            assert!(a.text.contains("[REDACTED]"), "{c}/{path}: {}", a.text);
            answers.push(a.text.clone());
        }
    }

    // Client credentials with the connection's own client, in the header and in the body.
    for (i, auth) in ["client_secret_basic", "client_secret_post"]
        .iter()
        .enumerate()
    {
        let body = json!({"name": format!("cc{i}"), "app": "generic-oauth2", "auth_mode": "oauth2_client_credentials",
            "settings": {"token_url": format!("{}/token", echo.url), "base_url": echo.url, "client_auth": auth},
            "credentials": {"client_id": client_id, "client_secret": client_secret}});
        let refused = app.post(conns, body).await;
        assert_eq!(refused.status, 422, "{}", refused.text);
        answers.push(refused.text.clone());
    }
    // … and with the workspace's client.
    let put = app
        .call(Method::PUT, "/v1/workspaces/acme/apps/generic-oauth2/oauth-client",
            Some(json!({"client_id": client_id, "client_secret": ws_secret, "allowed_origins": [echo.url]})))
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    answers.push(put.text.clone());
    let refused = app
        .post(
            conns,
            json!({"name": "ccw", "app": "generic-oauth2", "auth_mode": "oauth2_client_credentials",
            "settings": {"token_url": format!("{}/token", echo.url), "base_url": echo.url}}),
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    answers.push(refused.text.clone());

    // Authorization code: the exchange works, then the check, a refresh and a denial echo.
    let created = app
        .post(conns, json!({"name": "code", "app": "generic-oauth2", "auth_mode": "oauth2_code",
            "settings": {"authorization_url": format!("{}/authorize", echo.url), "token_url": format!("{}/token", echo.url),
                "base_url": echo.url, "verify_path": "/ok"},
            "credentials": {"client_id": client_id, "client_secret": client_secret}}))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    answers.push(created.text.clone());
    let state = state_of(created.body["authorize_url"].as_str().unwrap());
    let page = app
        .client
        .get(format!(
            "{}/oauth/callback?code=code-Echo-1&state={state}",
            app.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    answers.push(page.text().await.unwrap());
    for path in ["anything", "json"] {
        let a = app.get(&format!("{conns}/code/proxy/{path}")).await;
        assert!(a.text.contains("[REDACTED]"), "{}", a.text);
        answers.push(a.text.clone());
    }
    let edited = app
        .patch(
            &format!("{conns}/code"),
            json!({"settings": {"verify_path": "/json"}}),
        )
        .await;
    assert_eq!(edited.status, 200, "{}", edited.text);
    let v = app.post(&format!("{conns}/code/verify"), json!({})).await;
    assert_eq!(v.body["ok"], false, "{}", v.text);
    answers.push(v.text.clone());
    let r = app
        .post(&format!("{conns}/code/token/refresh"), json!({}))
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    answers.push(r.text.clone());
    let denied = app
        .post(conns, json!({"name": "code2", "app": "generic-oauth2", "auth_mode": "oauth2_code",
            "settings": {"authorization_url": format!("{}/authorize", echo.url), "token_url": format!("{}/token", echo.url), "base_url": echo.url},
            "credentials": {"client_id": client_id, "client_secret": client_secret}}))
        .await;
    let state = state_of(denied.body["authorize_url"].as_str().unwrap());
    let page = app
        .client
        .get(format!("{}/oauth/callback", app.url))
        .query(&[
            ("error", "access_denied"),
            ("error_description", &format!("denied for {client_secret}")),
            ("state", &state),
        ])
        .send()
        .await
        .unwrap();
    answers.push(page.text().await.unwrap());

    // JWT bearer (Salesforce, rewritten to the echo).
    let refused = app
        .post(conns, json!({"name": "jwt", "app": "salesforce", "auth_mode": "oauth2_jwt_bearer",
            "credentials": {"client_id": client_id, "private_key": salesforce::TEST_PRIVATE_KEY_PEM, "jwt_subject": "u@example.com"}}))
        .await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    answers.push(refused.text.clone());

    // A database that refuses the login (or is not there: the answer is checked all the same).
    let refused = app
        .post(
            conns,
            json!({"name": "db", "app": "postgres", "auth_mode": "database",
            "credentials": {"host": "127.0.0.1", "port": 5432, "database": "postgres",
                "username": "latchkey_pw_check", "password": DB_PASSWORD}}),
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    answers.push(refused.text.clone());

    // What a `read` key sees, and the audit log.
    let reader = app.workspace_key("acme", &["read"]).await;
    for path in [
        conns.to_string(),
        "/v1/workspaces/acme/events?limit=500".to_string(),
    ] {
        let a = app.call_as(&reader, Method::GET, &path, None).await;
        assert_eq!(a.status, 200);
        answers.push(a.text.clone());
    }
    for c in ["s1", "s6", "s11", "code", "code2"] {
        let a = app
            .call_as(&reader, Method::GET, &format!("{conns}/{c}"), None)
            .await;
        assert!(a.body["status_reason"].is_string(), "{c}: {}", a.text);
        answers.push(a.text.clone());
    }
    assert!(echo.hits.load(Ordering::SeqCst) > 30);

    for (i, a) in answers.iter().enumerate() {
        assert_no_secret(&format!("answer {i}"), a, &secrets);
    }
    // The database files' text: every run of printable characters (each form of each secret
    // is printable; the rest of the files is binary and empty pages).
    let mut db = String::new();
    for f in ["latchkey.db", "latchkey.db-wal"] {
        if let Ok(bytes) = std::fs::read(app.data_dir.join(f)) {
            for run in bytes.split(|b| !(0x20..0x7f).contains(b)) {
                if run.len() >= 4 {
                    db.push_str(&String::from_utf8_lossy(run));
                    db.push('\n');
                }
            }
        }
    }
    assert!(
        db.contains("INSUFFICIENT_ACCESS"),
        "the database file was read"
    );
    assert_no_secret("the database file", &db, &secrets);
    let logs = capture_logs().text();
    assert_no_secret("the logs", &logs, &secrets);
}

// ---------------------------------------------------------------------------------------------
// Destinations.

async fn billing(app: &TestApp, base: &str) {
    let a = app
        .post("/v1/workspaces/acme/connections", json!({"name": "billing", "app": "generic-api-key",
            "settings": {"base_url": base, "verify_path": "/health"}, "credentials": {"api_key": KEY}}))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
}

async fn sql(app: &TestApp, q: &str) {
    use sqlx::Connection;
    let mut c = sqlx::SqliteConnection::connect(&app.config.database_url)
        .await
        .unwrap();
    sqlx::query(q).execute(&mut c).await.unwrap();
    tokio::time::sleep(latchkey_server::hot::HOT_RECHECK + Duration::from_millis(100)).await;
}

#[tokio::test]
async fn a_key_without_secrets_cannot_send_a_secret_somewhere_new() {
    let app = spawn_app().await;
    let good = Upstream::start(KEY, "u", "p").await;
    let trap = Upstream::start("trap-only-key", "t", "t").await;
    app.workspace("acme").await;
    billing(&app, &good.url).await;
    let writer = app.workspace_key("acme", &["read", "write", "proxy"]).await;
    let keeper = app
        .workspace_key("acme", &["read", "write", "secrets"])
        .await;
    let conn = "/v1/workspaces/acme/connections/billing";

    for settings in [
        json!({"base_url": trap.url}),
        json!({"base_url": format!("{}/v2", trap.url), "verify_path": "/"}),
    ] {
        for verify in [true, false] {
            let a = app
                .call_as(
                    &writer,
                    Method::PATCH,
                    conn,
                    Some(json!({"settings": settings, "verify": verify})),
                )
                .await;
            assert_eq!(a.status, 403, "{}", a.text);
            assert_eq!(a.body["error"], "destination_change_requires_secrets");
        }
    }
    assert_eq!(trap.hits(), 0, "nothing was sent to the new place");
    assert_eq!(
        app.get(conn).await.body["settings"]["base_url"],
        good.url.as_str()
    );

    // The secret sent again in the same request: the caller knows it already.
    let a = app
        .call_as(&writer, Method::PATCH, conn, Some(json!({"settings": {"base_url": trap.url}, "credentials": {"api_key": "trap-only-key"}})))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(trap.hits(), 1);
    // Back, by a key with `secrets`.
    let a = app
        .call_as(
            &keeper,
            Method::PATCH,
            conn,
            Some(json!({"settings": {"base_url": good.url}, "credentials": {"api_key": KEY}})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let a = app
        .call_as(
            &writer,
            Method::PATCH,
            conn,
            Some(json!({"settings": {"base_url": trap.url}})),
        )
        .await;
    assert_eq!(
        a.status, 403,
        "bound to the good upstream only now: {}",
        a.text
    );
    let a = app
        .call_as(
            &keeper,
            Method::PATCH,
            conn,
            Some(json!({"settings": {"base_url": trap.url}, "verify": false})),
        )
        .await;
    assert_eq!(
        a.status, 200,
        "a key with `secrets` may move it: {}",
        a.text
    );
    let a = app
        .call_as(
            &keeper,
            Method::PATCH,
            conn,
            Some(json!({"settings": {"base_url": good.url}})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let trap_hits = trap.hits();

    // Changed behind Latchkey's back (straight in the database): nothing goes there, whoever
    // asks without `secrets`, until a key with `secrets` binds it anew.
    sql(&app, &format!("UPDATE connections SET settings = json_set(settings, '$.base_url', '{}') WHERE name = 'billing'", trap.url)).await;
    let p = app
        .call_as(
            &writer,
            Method::GET,
            &format!("{conn}/proxy/anything"),
            None,
        )
        .await;
    assert_eq!(p.status, 403, "{}", p.text);
    assert_eq!(p.body["error"], "destination_change_requires_secrets");
    let v = app
        .call_as(
            &writer,
            Method::POST,
            &format!("{conn}/verify"),
            Some(json!({})),
        )
        .await;
    assert_eq!(v.status, 403, "{}", v.text);
    assert_eq!(trap.hits(), trap_hits, "nothing reached the new place");
    let v = app
        .call_as(
            &keeper,
            Method::POST,
            &format!("{conn}/verify"),
            Some(json!({})),
        )
        .await;
    assert_eq!(v.status, 200, "{}", v.text);
    assert_eq!(trap.hits(), trap_hits + 1);
    let p = app
        .call_as(&writer, Method::GET, &format!("{conn}/proxy/health"), None)
        .await;
    assert_eq!(
        p.status, 200,
        "bound anew by the key with `secrets`: {}",
        p.text
    );
    let events = app.get("/v1/workspaces/acme/events?limit=500").await;
    assert!(
        events.text.contains("connection.destinations_bound"),
        "{}",
        events.text
    );
}

#[tokio::test]
async fn a_workspace_oauth_client_goes_only_to_its_allowed_origins() {
    let app = spawn_app().await;
    let good = Upstream::start(KEY, "ws-client", "ws-secret-0123").await;
    let trap = Upstream::start("x", "x", "x").await;
    app.workspace("acme").await;
    let path = "/v1/workspaces/acme/apps/generic-oauth2/oauth-client";
    let body = json!({"client_id": "ws-client", "client_secret": "ws-secret-0123"});
    let a = app.call(Method::PUT, path, Some(body.clone())).await;
    assert_eq!(a.status, 422, "allowed_origins is required: {}", a.text);
    for bad in [
        json!(["https://a.example/path"]),
        json!(["ftp://a.example"]),
        json!([]),
    ] {
        let mut b = body.clone();
        b["allowed_origins"] = bad;
        assert_eq!(app.call(Method::PUT, path, Some(b)).await.status, 422);
    }
    let mut b = body.clone();
    b["allowed_origins"] = json!([format!("{}/", good.url)]);
    let a = app.call(Method::PUT, path, Some(b)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["allowed_origins"], json!([good.url]));

    let writer = app.workspace_key("acme", &["read", "write"]).await;
    let cc = |name: &str, token: &str| {
        json!({"name": name, "app": "generic-oauth2", "auth_mode": "oauth2_client_credentials",
            "settings": {"token_url": format!("{token}/token"), "base_url": good.url}})
    };
    let a = app
        .call_as(
            &writer,
            Method::POST,
            "/v1/workspaces/acme/connections",
            Some(cc("leak", &trap.url)),
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.text);
    assert_eq!(a.body["error"], "destination_not_allowed");
    let a = app
        .call(
            Method::POST,
            "/v1/workspaces/acme/connections",
            Some(cc("leak2", &trap.url)),
        )
        .await;
    assert_eq!(
        a.status, 403,
        "not even an admin sends it elsewhere: {}",
        a.text
    );
    assert_eq!(trap.hits(), 0, "the workspace client secret went nowhere");
    // Its own origin is fine (the upstream is no token endpoint, so the grant fails there).
    let a = app
        .call_as(
            &writer,
            Method::POST,
            "/v1/workspaces/acme/connections",
            Some(cc("ok", &good.url)),
        )
        .await;
    assert_eq!(a.status, 422, "{}", a.text);
    assert!(good.hits() > 0);
}

// ---------------------------------------------------------------------------------------------
// Queued requests, forced refreshes, bounded input.

#[tokio::test]
async fn queued_proxy_requests_see_deletes_and_credential_changes() {
    let app = spawn_app().await;
    let up = Upstream::start(KEY, "u", "p").await;
    app.workspace("acme").await;
    for change in ["delete", "credentials"] {
        billing(&app, &up.url).await;
        app.patch(
            "/v1/workspaces/acme/connections/billing",
            json!({"settings": {"concurrency_level": 1}}),
        )
        .await;
        up.set_delay(Duration::from_millis(1500));
        let start = up.hits();
        let send = || {
            let (client, url, key) = (
                app.client.clone(),
                format!(
                    "{}/v1/workspaces/acme/connections/billing/proxy/echo",
                    app.url
                ),
                app.admin_key.clone(),
            );
            tokio::spawn(async move {
                let r = client.get(url).bearer_auth(key).send().await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            })
        };
        let first = send();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while up.hits() == start {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the first request never arrived"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let second = send();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let expected = if change == "delete" {
            assert_eq!(
                app.delete("/v1/workspaces/acme/connections/billing")
                    .await
                    .status,
                204
            );
            404
        } else {
            let a = app
                .patch(
                    "/v1/workspaces/acme/connections/billing",
                    json!({"credentials": {"api_key": "rotated-key-1"}, "verify": false}),
                )
                .await;
            assert_eq!(a.status, 200, "{}", a.text);
            409
        };
        assert_eq!(first.await.unwrap().0, 200);
        let (status, text) = second.await.unwrap();
        assert_eq!(status, expected, "{change}: {text}");
        assert_eq!(
            up.hits(),
            start + 1,
            "{change}: the queued request was never sent"
        );
        up.set_delay(Duration::ZERO);
        if change == "credentials" {
            app.delete("/v1/workspaces/acme/connections/billing").await;
        }
    }
}

#[tokio::test]
async fn fifty_forced_refreshes_cause_one_refresh_at_the_provider() {
    use sha2::Digest;
    let sim = SalesforceSim::start().await;
    let rewrites = Rewrites::parse(&sim.rewrites()).unwrap();
    let app = spawn_app_with(|c| c.outbound_rewrites = rewrites).await;
    sim.add_callback_url(
        salesforce::DEFAULT_CONSUMER_KEY,
        &format!("{}/oauth/callback", app.url),
    );
    app.workspace("acme").await;
    let created = app
        .post("/v1/workspaces/acme/connections", json!({"name": "sf", "app": "salesforce", "auth_mode": "oauth2_code",
            "credentials": {"client_id": salesforce::DEFAULT_CONSUMER_KEY, "client_secret": salesforce::DEFAULT_CONSUMER_SECRET}}))
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
    let old = app
        .get("/v1/workspaces/acme/connections/sf/token")
        .await
        .body["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let stale = hex::encode(sha2::Sha256::digest(old.as_bytes()));
    sim.set_token_delay(Duration::from_millis(300));
    let before = sim.refresh_count();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (client, url, key, stale) = (
            app.client.clone(),
            format!(
                "{}/v1/workspaces/acme/connections/sf/token/refresh",
                app.url
            ),
            app.admin_key.clone(),
            stale.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(key)
                .json(&json!({"stale_token_sha256": stale}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.unwrap();
            v["access_token"].as_str().unwrap().to_string()
        }));
    }
    let mut tokens = std::collections::HashSet::new();
    for t in tasks {
        tokens.insert(t.await.unwrap());
    }
    assert_eq!(
        sim.refresh_count(),
        before + 1,
        "fifty forced refreshes, one at the provider"
    );
    assert_eq!(tokens.len(), 1);
    assert!(!tokens.contains(&old));
    // A latecomer naming the old token gets the new one at once.
    let late = app
        .post(
            "/v1/workspaces/acme/connections/sf/token/refresh",
            json!({"stale_token_sha256": stale}),
        )
        .await;
    assert_eq!(late.status, 200);
    assert!(tokens.contains(late.body["access_token"].as_str().unwrap()));
    assert_eq!(sim.refresh_count(), before + 1);
    let bad = app
        .post(
            "/v1/workspaces/acme/connections/sf/token/refresh",
            json!({"stale_token_sha256": "xyz"}),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    sim.set_token_delay(Duration::ZERO);
}

/// Sends a request line exactly as written (HTTP clients normalize dot segments away).
async fn raw_get(app: &TestApp, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        app.admin_key
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn hostile_input_is_bounded() {
    let app = spawn_app().await;
    let up = Upstream::start(KEY, "u", "p").await;
    app.workspace("acme").await;
    let a = app
        .post("/v1/workspaces/acme/connections", json!({"name": "billing", "app": "generic-api-key",
            "settings": {"base_url": format!("{}/v1/api", up.url), "verify_path": "/"}, "credentials": {"api_key": KEY}, "verify": false}))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let base = "/v1/workspaces/acme/connections/billing/proxy";
    for path in [
        "/../../health",
        "/a/%2e%2e/%2E%2e/health",
        "/a/.%2e/x",
        "/a%2f..%2f..%2fhealth",
        "/a%5C..",
        "/%252e%252e/x",
    ] {
        assert_eq!(raw_get(&app, &format!("{base}{path}")).await, 400, "{path}");
    }
    assert_eq!(up.hits(), 0, "nothing climbed above the base path");
    assert_eq!(raw_get(&app, &format!("{base}/echo")).await, 200);

    for settings in [
        json!({"api_key_name": "X Key"}),
        json!({"api_key_prefix": "Bearer\r\nX-Injected: 1 "}),
        json!({"api_key_in": "query", "api_key_name": "a&b"}),
    ] {
        let mut s = json!({"base_url": up.url});
        for (k, v) in settings.as_object().unwrap() {
            s[k] = v.clone();
        }
        let a = app
            .post("/v1/workspaces/acme/connections", json!({"name": "bad", "app": "generic-api-key", "settings": s, "credentials": {"api_key": KEY}, "verify": false}))
            .await;
        assert_eq!(a.status, 422, "{settings}: {}", a.text);
        let e = app
            .patch(
                "/v1/workspaces/acme/connections/billing",
                json!({"settings": settings}),
            )
            .await;
        assert_eq!(e.status, 422, "{settings}: {}", e.text);
    }
    for name in [".", ".."] {
        let a = app
            .post("/v1/workspaces/acme/connections", json!({"name": name, "app": "generic-api-key", "settings": {"base_url": up.url}, "credentials": {"api_key": KEY}, "verify": false}))
            .await;
        assert_eq!(a.status, 422, "{name}: {}", a.text);
        let f = app.post("/v1/workspaces/acme/flows", json!({"name": name, "environment": "production", "active": true, "connections": []})).await;
        assert_eq!(f.status, 422, "{name}: {}", f.text);
        let w = app
            .post("/v1/workspaces", json!({"slug": "dots", "name": name}))
            .await;
        assert_eq!(w.status, 422, "{name}: {}", w.text);
    }

    // A provider's absurd numbers are clamped, never a 500.
    let echo = echo_server().await;
    let a = app
        .post("/v1/workspaces/acme/connections", json!({"name": "big", "app": "generic-oauth2", "auth_mode": "oauth2_client_credentials",
            "settings": {"token_url": format!("{}/bigtoken", echo.url), "base_url": echo.url, "verify_path": "/ok"},
            "credentials": {"client_id": "c", "client_secret": "s-0123456789"}}))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let t = app.get("/v1/workspaces/acme/connections/big/token").await;
    assert_eq!(t.status, 200, "{}", t.text);
    let expires: chrono::DateTime<chrono::Utc> =
        t.body["expires_at"].as_str().unwrap().parse().unwrap();
    assert!((expires - chrono::Utc::now()).num_days() <= 366);
}
