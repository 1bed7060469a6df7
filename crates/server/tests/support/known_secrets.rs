//! Two connections with secrets the tests know (an API key, a basic password), served by a
//! test application, for tests that then search for those secrets where they must not be.

use latchkey_testkit::upstream::Upstream;
use latchkey_testkit::TestApp;
use serde_json::json;

pub const API_KEY: &str = "sk-live-7f3a9c1e5b2d4f6a8c0e";
pub const PASSWORD: &str = "pw-9d8c7b6a5f4e3d2c1b0a";

pub async fn store_known_secrets(app: &TestApp) -> Upstream {
    let up = Upstream::start(API_KEY, "svc-user", PASSWORD).await;
    let ws = app.workspace("acme").await;
    let a = app
        .post(&format!("/v1/workspaces/{ws}/connections"), json!({"name": "key", "app": "generic-api-key",
            "settings": {"base_url": up.url, "verify_path": "/me"}, "credentials": {"api_key": API_KEY}}))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let b = app
        .post(&format!("/v1/workspaces/{ws}/connections"), json!({"name": "basic", "app": "generic-basic",
            "settings": {"base_url": up.url, "verify_path": "/me"}, "credentials": {"username": "svc-user", "password": PASSWORD}}))
        .await;
    assert_eq!(b.status, 201, "{}", b.text);
    // Every answer that is not the credentials endpoint stays clean.
    for path in [
        format!("/v1/workspaces/{ws}/connections"),
        format!("/v1/workspaces/{ws}/connections/key"),
        format!("/v1/workspaces/{ws}/events"),
    ] {
        let a = app.get(&path).await;
        assert!(
            !a.text.contains(API_KEY) && !a.text.contains(PASSWORD),
            "{path} leaked: {}",
            a.text
        );
    }
    let c = app
        .get(&format!(
            "/v1/workspaces/{ws}/connections/basic/credentials"
        ))
        .await;
    assert_eq!(c.body["credentials"]["password"], PASSWORD);
    up
}
