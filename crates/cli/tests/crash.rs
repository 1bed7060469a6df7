//! Crash safety: the real `latchkey serve` is killed with SIGKILL at random moments during a
//! refresh storm and during creates and edits (at least 20 kills over SQLite and PostgreSQL),
//! restarted each time, and then every connection must be intact and usable: every acknowledged
//! write present with its exact secret, and the OAuth connection still refreshing — or, in the
//! one window a rotating provider leaves (killed after the provider rotated the refresh token,
//! before it was stored), reported as `revoked` with the provider's reason, never silently broken.

use latchkey_testkit::salesforce::{self, SalesforceSim};
use latchkey_testkit::upstream::Upstream;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
    let server = Server {
        child: cmd.spawn().expect("latchkey starts"),
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{url}/healthz")).send().await {
            if r.status() == 200 {
                return server;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the server did not come up within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

struct Api {
    client: reqwest::Client,
    url: String,
    key: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), reqwest::Error> {
        let mut r = self
            .client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.key)
            .timeout(Duration::from_secs(20));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await?;
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }
}

async fn authorize(api: &Api, sim: &SalesforceSim) {
    let (status, body) = api
        .call(
            reqwest::Method::POST,
            "/v1/workspaces/acme/connections/sf/authorize",
            Some(json!({})),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let location = sim
        .login_via_browser(
            body["authorize_url"].as_str().unwrap(),
            salesforce::DEFAULT_USERNAME,
            salesforce::DEFAULT_PASSWORD,
        )
        .await
        .unwrap();
    let page = reqwest::get(&location).await.unwrap();
    assert_eq!(page.status(), 200);
}

/// What the writer knows: acknowledged secrets, and edits whose answer never came.
#[derive(Default)]
struct Ledger {
    acked: HashMap<String, String>,
    maybe: HashMap<String, String>,
}

async fn scenario(database_url: Option<String>, kills: usize) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let sim = SalesforceSim::start().await;
    sim.edit_app(salesforce::DEFAULT_CONSUMER_KEY, |a| {
        a.rotate_refresh_tokens = true
    });
    let up = Upstream::start("unused", "u", "p").await;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    sim.add_callback_url(
        salesforce::DEFAULT_CONSUMER_KEY,
        &format!("{url}/oauth/callback"),
    );
    let mut env = vec![
        (
            "LATCHKEY_DATA_DIR".to_string(),
            dir.path().display().to_string(),
        ),
        ("LATCHKEY_LISTEN".to_string(), format!("127.0.0.1:{port}")),
        ("LATCHKEY_OUTBOUND_REWRITES".to_string(), sim.rewrites()),
        (
            "LATCHKEY_OUTBOUND_ALLOW".to_string(),
            "127.0.0.1,localhost".to_string(),
        ),
        ("LATCHKEY_LOG".to_string(), "warn".to_string()),
    ];
    if let Some(db) = &database_url {
        env.push(("LATCHKEY_DATABASE_URL".to_string(), db.clone()));
    }
    let mut server = start(&env, &url).await;
    let key = std::fs::read_to_string(dir.path().join("admin.key"))
        .unwrap()
        .trim()
        .to_string();
    let api = Arc::new(Api {
        client: reqwest::Client::new(),
        url: url.clone(),
        key,
    });
    assert_eq!(
        api.call(
            reqwest::Method::POST,
            "/v1/workspaces",
            Some(json!({"slug": "acme"}))
        )
        .await
        .unwrap()
        .0,
        201
    );
    let (s, b) = api
        .call(reqwest::Method::POST, "/v1/workspaces/acme/connections", Some(json!({"name": "sf", "app": "salesforce", "auth_mode": "oauth2_code",
            "credentials": {"client_id": salesforce::DEFAULT_CONSUMER_KEY, "client_secret": salesforce::DEFAULT_CONSUMER_SECRET}})))
        .await
        .unwrap();
    assert_eq!(s, 201, "{b}");
    authorize(&api, &sim).await;
    sim.set_token_delay(Duration::from_millis(80));

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut window_hits = 0;
    for round in 0..kills {
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let api = api.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..20 {
                    let _ = api
                        .call(
                            reqwest::Method::POST,
                            "/v1/workspaces/acme/connections/sf/token/refresh",
                            Some(json!({})),
                        )
                        .await;
                }
            }));
        }
        {
            let (api, ledger, up_url) = (api.clone(), ledger.clone(), up.url.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..200 {
                    let name = format!("c{round}-{i}");
                    let secret = format!("secret-{round}-{i}");
                    let body = json!({"name": name, "app": "generic-api-key", "verify": false,
                        "settings": {"base_url": up_url}, "credentials": {"api_key": secret}});
                    ledger
                        .lock()
                        .unwrap()
                        .maybe
                        .insert(name.clone(), secret.clone());
                    match api
                        .call(
                            reqwest::Method::POST,
                            "/v1/workspaces/acme/connections",
                            Some(body),
                        )
                        .await
                    {
                        Ok((201, _)) => {
                            let mut l = ledger.lock().unwrap();
                            l.maybe.remove(&name);
                            l.acked.insert(name.clone(), secret);
                        }
                        _ => return,
                    }
                    if i % 3 == 0 {
                        let edited = format!("{name}-edited");
                        ledger
                            .lock()
                            .unwrap()
                            .maybe
                            .insert(name.clone(), edited.clone());
                        let path = format!("/v1/workspaces/acme/connections/{name}");
                        match api
                            .call(
                                reqwest::Method::PATCH,
                                &path,
                                Some(json!({"credentials": {"api_key": edited}, "verify": false})),
                            )
                            .await
                        {
                            Ok((200, _)) => {
                                let mut l = ledger.lock().unwrap();
                                l.maybe.remove(&name);
                                l.acked.insert(name, edited);
                            }
                            _ => return,
                        }
                    }
                }
            }));
        }
        let wait = rand::thread_rng().gen_range(30..400);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        drop(server); // SIGKILL
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
        server = start(&env, &url).await;

        // Every acknowledged write is there with its exact secret; an unanswered edit left either value.
        let snapshot: Vec<(String, String, Option<String>)> = {
            let l = ledger.lock().unwrap();
            l.acked
                .iter()
                .map(|(n, s)| (n.clone(), s.clone(), l.maybe.get(n).cloned()))
                .collect()
        };
        for (name, secret, pending) in snapshot {
            let (status, body) = api
                .call(
                    reqwest::Method::GET,
                    &format!("/v1/workspaces/acme/connections/{name}/credentials"),
                    None,
                )
                .await
                .unwrap();
            assert_eq!(status, 200, "round {round}: {name} lost: {body}");
            let got = body["credentials"]["api_key"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            assert!(
                got == secret || Some(&got) == pending.as_ref(),
                "round {round}: {name} holds {got:?}, expected {secret:?}"
            );
            if Some(&got) == pending.as_ref() {
                let mut l = ledger.lock().unwrap();
                l.maybe.remove(&name);
                l.acked.insert(name.clone(), got);
            }
        }
        let (status, body) = api
            .call(
                reqwest::Method::GET,
                "/v1/workspaces/acme/connections?limit=500",
                None,
            )
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        for c in body["items"].as_array().unwrap() {
            let (s, b) = api
                .call(
                    reqwest::Method::GET,
                    &format!(
                        "/v1/workspaces/acme/connections/{}/credentials",
                        c["id"].as_str().unwrap()
                    ),
                    None,
                )
                .await
                .unwrap();
            assert_eq!(
                s, 200,
                "round {round}: connection {} does not decrypt: {b}",
                c["name"]
            );
        }
        // The OAuth connection still refreshes, or says exactly why it cannot.
        let (status, body) = api
            .call(
                reqwest::Method::POST,
                "/v1/workspaces/acme/connections/sf/token/refresh",
                Some(json!({})),
            )
            .await
            .unwrap();
        match status {
            200 => assert!(body["access_token"].is_string()),
            409 => {
                assert_eq!(body["error"], "connection_revoked", "{body}");
                assert!(
                    body["message"].as_str().unwrap().contains("invalid_grant"),
                    "{body}"
                );
                window_hits += 1;
                authorize(&api, &sim).await;
            }
            other => panic!("round {round}: token refresh answered {other}: {body}"),
        }
        let (status, _) = api
            .call(
                reqwest::Method::GET,
                "/v1/workspaces/acme/connections/sf/token",
                None,
            )
            .await
            .unwrap();
        assert_eq!(status, 200);
    }
    drop(server);
    eprintln!("{kills} kills; the rotated-refresh-token window was hit {window_hits} times");
    window_hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_servers_lose_nothing_on_sqlite() {
    scenario(None, 12).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_servers_lose_nothing_on_postgres() {
    let Some((url, _guard)) = latchkey_testkit::throwaway_postgres().await else {
        return;
    };
    scenario(Some(url), 10).await;
}
