//! `latchkey master-key status|rotate` against a real server.

mod common;

use common::{api_key_connection, run, API_KEY};
use latchkey_testkit::spawn_app;
use latchkey_testkit::upstream::Upstream;

#[tokio::test]
async fn rotate_prints_what_happened_and_secrets_stay_readable() {
    let app = spawn_app().await;
    let up = Upstream::start(API_KEY, "u", "p").await;
    app.workspace("acme").await;
    api_key_connection(&app, &up, "billing").await;

    let before = run(&app, &["master-key", "status"]).await;
    before.assert_code(0);
    assert!(
        before.stdout.contains("current master key: mk_"),
        "{}",
        before.stdout
    );

    let key_file = app.data_dir.join("next.key");
    let (_, text) = latchkey_core::crypto::MasterKey::generate();
    std::fs::write(&key_file, format!("{}\n", text.as_str())).unwrap();
    let out = run(
        &app,
        &[
            "master-key",
            "rotate",
            "--new-key-file",
            key_file.to_str().unwrap(),
        ],
    )
    .await;
    out.assert_code(0);
    assert!(
        out.stdout.contains("1 data key(s) re-wrapped"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("retired"), "{}", out.stdout);
    assert!(
        !out.stdout.contains(text.as_str()),
        "a key the operator gave is not echoed"
    );
    let saved = std::fs::read_to_string(app.data_dir.join("master.key")).unwrap();
    assert_eq!(
        saved.trim(),
        text.trim(),
        "the key file now holds the new key"
    );

    let again = run(
        &app,
        &[
            "--json",
            "master-key",
            "rotate",
            "--new-key-file",
            key_file.to_str().unwrap(),
        ],
    )
    .await;
    again.assert_code(1);
    assert!(
        again.stderr.contains("already the master key"),
        "{}",
        again.stderr
    );

    let creds = run(
        &app,
        &["--json", "connection", "credentials", "acme/billing"],
    )
    .await;
    creds.assert_code(0);
    assert_eq!(creds.json()["credentials"]["api_key"], API_KEY);
}
