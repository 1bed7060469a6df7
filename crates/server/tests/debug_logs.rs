//! Secrets never show in the logs, even at debug level. A test binary of its own: the test
//! captures the logs with a subscriber of its thread, and other tests running beside it in the
//! same process could change which log lines are enabled while it runs.

#[path = "support/known_secrets.rs"]
mod known_secrets;
#[path = "support/log_capture.rs"]
mod log_capture;

use known_secrets::{store_known_secrets, API_KEY, PASSWORD};
use latchkey_testkit::spawn_app;
use log_capture::Capture;
use serde_json::json;

#[tokio::test(flavor = "current_thread")]
async fn debug_logs_never_show_a_secret() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.subscriber("debug"));
    let mut app = spawn_app().await;
    let up = store_known_secrets(&app).await;
    // A failing verification and an edit also pass through the logs.
    let bad = app
        .post("/v1/workspaces/acme/connections", json!({"name": "bad", "app": "generic-api-key",
            "settings": {"base_url": up.url, "api_key_in": "query", "api_key_name": "api_key"}, "credentials": {"api_key": format!("{API_KEY}-x")}}))
        .await;
    assert_eq!(bad.status, 422);
    assert!(!bad.text.contains(API_KEY), "{}", bad.text);
    app.patch(
        "/v1/workspaces/acme/connections/basic",
        json!({"credentials": {"password": PASSWORD}}),
    )
    .await;
    app.stop().await;
    let logs = capture.text();
    assert!(
        logs.len() > 1000,
        "debug logging captured too little to mean anything:\n{logs}"
    );
    assert!(!logs.contains(API_KEY), "a log line holds the API key");
    assert!(!logs.contains(PASSWORD), "a log line holds the password");
}
