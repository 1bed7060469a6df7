//! The command line with a service account: the key file given with `--secret-file`, and
//! `latchkey run` handing the command the access token its signed assertion was exchanged for.
//! The token endpoint and the API are the testkit's provider simulator (it verifies the
//! assertion's signature, account, audience and scopes), reached through outbound rewrites.

mod common;

use common::{run, BIN};
use latchkey_core::catalog::Catalog;
use latchkey_core::model::AuthMode;
use latchkey_core::outbound::Rewrites;
use latchkey_testkit::provider::{ProviderSim, SimRow};
use latchkey_testkit::spawn_app_with;
use serde_json::{json, Map};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_from_a_file_and_its_token_in_run() {
    let _ = BIN;
    let entry = Catalog::embedded().get("google-pubsub").unwrap().clone();
    let key = latchkey_testkit::exchange_sim::key_file(&entry);
    let settings: Map<String, serde_json::Value> = json!({"project_id": "acme-project"})
        .as_object()
        .unwrap()
        .clone();
    let row = SimRow {
        entry,
        mode: AuthMode::ServiceAccount,
        settings,
        creds: [("key_json".to_string(), key.clone())]
            .into_iter()
            .collect(),
    };
    let sim = ProviderSim::start(vec![row], &[]).await;
    let rewrites = Rewrites::parse(&sim.rewrites()).unwrap();
    let app = spawn_app_with(|c| c.outbound_rewrites = rewrites).await;
    app.workspace("acme").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pubsub-sa.json");
    std::fs::write(&path, &key).unwrap();
    let file_arg = format!("key_json={}", path.display());

    let out = run(
        &app,
        &[
            "connection",
            "create",
            "-w",
            "acme",
            "--name",
            "events",
            "--app",
            "google-pubsub",
            "--auth-mode",
            "service_account",
            "--set",
            "project_id=acme-project",
            "--secret-file",
            &file_arg,
            "--json",
        ],
    )
    .await;
    out.assert_code(0);
    assert!(!out.stdout.contains("PRIVATE KEY"), "{}", out.stdout);
    let c = app.get("/v1/workspaces/acme/connections/events").await;
    assert_eq!(c.body["status"], "active", "{}", c.text);
    assert_eq!(c.body["auth_mode"], "service_account");
    assert!(sim
        .seen("google-pubsub")
        .iter()
        .any(|s| s == "token:jwt-bearer"));

    let token = app
        .get("/v1/workspaces/acme/connections/events/token")
        .await;
    let at = token.body["access_token"].as_str().unwrap().to_string();
    let out = run(
        &app,
        &[
            "run",
            "-w",
            "acme",
            "--env",
            "GOOGLE_TOKEN=events",
            "--",
            "sh",
            "-c",
            "printf '%s' \"$GOOGLE_TOKEN\"",
        ],
    )
    .await;
    out.assert_code(0);
    assert_eq!(
        out.stdout, at,
        "run hands the command the current access token"
    );

    // A file that cannot be read is said so, with the path.
    let out = run(
        &app,
        &[
            "connection",
            "create",
            "-w",
            "acme",
            "--name",
            "other",
            "--app",
            "google-pubsub",
            "--set",
            "project_id=p",
            "--secret-file",
            "key_json=/nonexistent/key.json",
        ],
    )
    .await;
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("/nonexistent/key.json"),
        "{}",
        out.stderr
    );
}
