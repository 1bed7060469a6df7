//! `latchkey user create|list|delete|set-role` against a real server.

mod common;

use common::{run, run_env};
use latchkey_testkit::spawn_app;
use reqwest::Method;

#[tokio::test]
async fn people_are_added_given_roles_listed_and_removed() {
    let app = spawn_app().await;
    app.workspace("acme").await;

    let made = run_env(
        &app,
        &[],
        &[
            "user",
            "create",
            "Ada@Example.test",
            "--name",
            "Ada",
            "--password-stdin",
            "--role",
            "acme=editor",
        ],
        Some("a long enough password\n"),
    )
    .await;
    made.assert_code(0);
    assert!(made.stdout.contains("ada@example.test"), "{}", made.stdout);
    assert!(made.stdout.contains("acme:editor"), "{}", made.stdout);
    assert!(!made.stdout.contains("long enough"), "{}", made.stdout);

    let listed = run(&app, &["user", "list"]).await;
    listed.assert_code(0);
    assert!(listed.stdout.contains("Ada"), "{}", listed.stdout);
    assert!(listed.stdout.contains("password"), "{}", listed.stdout);
    assert!(listed.stdout.contains("acme:editor"), "{}", listed.stdout);

    let promoted = run(
        &app,
        &[
            "user",
            "set-role",
            "ada@example.test",
            "-w",
            "acme",
            "owner",
        ],
    )
    .await;
    promoted.assert_code(0);
    assert!(
        promoted.stdout.contains("is now owner in acme"),
        "{}",
        promoted.stdout
    );
    let json = run(&app, &["--json", "user", "list"]).await;
    json.assert_code(0);
    let items = json.json()["items"].clone();
    assert_eq!(items[0]["roles"][0]["role"], "owner", "{items}");
    assert_eq!(items[0]["has_password"], true);

    // A role that does not exist is refused before anything is sent.
    let bad = run(
        &app,
        &["user", "set-role", "ada@example.test", "-w", "acme", "boss"],
    )
    .await;
    assert_ne!(bad.code, 0);

    let removed = run(
        &app,
        &[
            "user",
            "set-role",
            "ada@example.test",
            "-w",
            "acme",
            "--remove",
        ],
    )
    .await;
    removed.assert_code(0);
    let members = app.get("/v1/workspaces/acme/members").await;
    assert_eq!(
        members.body["items"].as_array().unwrap().len(),
        0,
        "{}",
        members.text
    );

    // A workspace key cannot manage people: the server's refusal comes with a hint.
    let ws_key = app.workspace_key("acme", &["read", "write"]).await;
    let refused = run_env(
        &app,
        &[("LATCHKEY_API_KEY", &ws_key)],
        &["user", "list"],
        None,
    )
    .await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("instance administrator"),
        "{}",
        refused.stderr
    );

    let deleted = run(&app, &["user", "delete", "ada@example.test"]).await;
    deleted.assert_code(0);
    let gone = app
        .call(Method::GET, "/v1/users/ada@example.test", None)
        .await;
    assert_eq!(gone.status, 404, "{}", gone.text);
    let again = run(&app, &["user", "delete", "ada@example.test"]).await;
    assert_eq!(again.code, 1, "{}", again.stderr);
}
