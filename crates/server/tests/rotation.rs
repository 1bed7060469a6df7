//! Master key rotation: a new master key re-wraps every data key while the server keeps
//! serving; afterwards the store opens with the new key alone, and no longer with the old one.

use latchkey_server::config::MasterKeySource;
use latchkey_testkit::upstream::Upstream;
use latchkey_testkit::{spawn_app, spawn_app_with, start, TestApp};
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

async fn seed(app: &TestApp, up: &Upstream, n: usize) {
    for i in 0..n {
        let ws = app.workspace(&format!("ws{i}")).await;
        let a = app
            .post(&format!("/v1/workspaces/{ws}/connections"), json!({"name": "api", "app": "generic-api-key",
                "settings": {"base_url": up.url, "verify_path": "/health"}, "credentials": {"api_key": format!("key-{i}")}}))
            .await;
        assert_eq!(a.status, 201, "{}", a.text);
    }
}

async fn all_secrets_readable(app: &TestApp, n: usize) {
    for i in 0..n {
        let c = app
            .get(&format!("/v1/workspaces/ws{i}/connections/api/credentials"))
            .await;
        assert_eq!(c.status, 200, "{}", c.text);
        assert_eq!(c.body["credentials"]["api_key"], format!("key-{i}"));
    }
}

#[tokio::test]
async fn rotate_under_load_then_restart_with_only_the_new_key() {
    let mut app = spawn_app().await;
    let up = Upstream::start("unused", "u", "p").await;
    seed(&app, &up, 6).await;
    let old_key = std::fs::read_to_string(app.data_dir.join("master.key")).unwrap();

    // Reads and writes keep running during the rotation.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for w in 0..4 {
        let (client, url, key, up_url) = (
            app.client.clone(),
            app.url.clone(),
            app.admin_key.clone(),
            up.url.clone(),
        );
        let (stop, failures, done) = (stop.clone(), failures.clone(), done.clone());
        load.push(tokio::spawn(async move {
            for n in 0..2000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let ok = if n % 5 == 0 {
                    let r = client
                        .post(format!("{url}/v1/workspaces/ws{w}/connections"))
                        .bearer_auth(&key)
                        .json(&json!({"name": format!("load-{n}"), "app": "generic-api-key", "verify": false,
                            "settings": {"base_url": up_url}, "credentials": {"api_key": "k"}}))
                        .send()
                        .await
                        .unwrap();
                    r.status() == 201
                } else {
                    let r = client.get(format!("{url}/v1/workspaces/ws{w}/connections/api/credentials")).bearer_auth(&key).send().await.unwrap();
                    r.status() == 200
                };
                if !ok {
                    failures.fetch_add(1, Ordering::SeqCst);
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let r = app.post("/v1/admin/master-key/rotate", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["retired"], true, "{}", r.text);
    assert_eq!(r.body["data_keys_rewrapped"], 6);
    assert!(
        r.body["new_key"].is_null(),
        "with a key file the new key is not shown"
    );
    // A workspace created after the rotation is wrapped by the new key too.
    let mid = app.workspace("after").await;
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    stop.store(true, Ordering::SeqCst);
    for t in load {
        t.await.unwrap();
    }
    assert!(done.load(Ordering::SeqCst) > 20, "the load really ran");
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "no request failed during the rotation"
    );

    let status = app.get("/v1/admin/master-key").await;
    let new_id = r.body["master_key_id"].as_str().unwrap();
    assert_eq!(status.body["master_key_id"], new_id);
    assert_eq!(
        status.body["data_keys_by_master_key"]
            .as_object()
            .unwrap()
            .len(),
        1,
        "{}",
        status.text
    );
    assert!(
        !app.data_dir.join("master.key.previous").exists(),
        "the old key is retired"
    );
    let new_key = std::fs::read_to_string(app.data_dir.join("master.key")).unwrap();
    assert_ne!(new_key, old_key);

    // Restart with only the new key: every secret decrypts.
    app.stop().await;
    let mut config = app.config.clone();
    std::fs::remove_file(app.data_dir.join("master.key")).unwrap();
    config.master_key = MasterKeySource::Inline(new_key.trim().to_string().into());
    let again = start(config.clone()).await;
    all_secrets_readable(&again, 6).await;
    assert_eq!(
        again.get(&format!("/v1/workspaces/{mid}")).await.status,
        200
    );
    let mut again = again;
    again.stop().await;
    // The old key alone no longer opens the store.
    config.master_key = MasterKeySource::Inline(old_key.trim().to_string().into());
    let err = latchkey_server::Application::build(config)
        .await
        .err()
        .expect("the old key must be refused");
    assert!(format!("{err:#}").contains("master key"), "{err:#}");
}

#[tokio::test]
async fn an_environment_key_is_rotated_and_shown_once() {
    let (_, text) = latchkey_core::crypto::MasterKey::generate();
    let inline = text.to_string();
    let mut app =
        spawn_app_with(move |c| c.master_key = MasterKeySource::Inline(inline.into())).await;
    let up = Upstream::start("unused", "u", "p").await;
    seed(&app, &up, 2).await;
    let workspace_key = app.workspace_key("ws0", &["read"]).await;
    let r = app
        .call_as(
            &workspace_key,
            reqwest::Method::POST,
            "/v1/admin/master-key/rotate",
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 403, "only admin keys rotate");
    let r = app.post("/v1/admin/master-key/rotate", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let new_key = r.body["new_key"]
        .as_str()
        .expect("the generated key is shown once")
        .to_string();
    assert!(r.body["next_steps"][0]
        .as_str()
        .unwrap()
        .contains("LATCHKEY_MASTER_KEY"));
    app.stop().await;
    let mut config = app.config.clone();
    config.master_key = MasterKeySource::Inline(new_key.into());
    let again = start(config).await;
    all_secrets_readable(&again, 2).await;
}
