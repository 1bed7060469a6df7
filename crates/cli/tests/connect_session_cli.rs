//! `latchkey connect-session create|list|show|delete`, with `--open` handing the connect URL to
//! the system's opener (a stand-in `xdg-open` on PATH records it).

mod common;

use common::*;
use latchkey_testkit::spawn_app;
use std::time::{Duration, Instant};

#[cfg(unix)]
#[tokio::test]
async fn create_open_list_show_and_cancel() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app().await;
    app.workspace("acme").await;
    let bin = tempfile::tempdir().unwrap();
    let seen = bin.path().join("opened.txt");
    let opener = bin.path().join("xdg-open");
    std::fs::write(
        &opener,
        format!("#!/bin/sh\nprintf '%s' \"$1\" > '{}'\n", seen.display()),
    )
    .unwrap();
    std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let out = run_env(
        &app,
        &[("PATH", &path)],
        &[
            "--json",
            "connect-session",
            "create",
            "-w",
            "acme",
            "--end-user",
            "u-1",
            "--email",
            "jane@customer.example",
            "--organization",
            "org-9",
            "--app",
            "generic-api-key",
            "--app",
            "salesforce",
            "--origin",
            "https://app.example.com",
            "--expires-in",
            "600",
            "--open",
        ],
        None,
    )
    .await;
    out.assert_code(0);
    let created = out.json();
    let url = created["connect_url"].as_str().unwrap().to_string();
    assert!(
        url.starts_with(&format!("{}/connect/lkcs_", app.url)),
        "{url}"
    );
    let id = created["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(opened) = std::fs::read_to_string(&seen) {
            if !opened.is_empty() {
                assert_eq!(opened, url, "--open opens the connect URL");
                break;
            }
        }
        assert!(Instant::now() < deadline, "the opener was not run");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Bad input: the server's message and hint, exit 1.
    let bad = run(
        &app,
        &[
            "connect-session",
            "create",
            "-w",
            "acme",
            "--end-user",
            "u-1",
            "--app",
            "generic-api-key",
            "--origin",
            "*",
        ],
    )
    .await;
    bad.assert_code(1);
    assert!(bad.stderr.contains("wildcards"), "{}", bad.stderr);

    let list = run(&app, &["connect-session", "list", "-w", "acme"]).await;
    list.assert_code(0);
    assert!(
        list.stdout.contains(&id) && list.stdout.contains("open"),
        "{}",
        list.stdout
    );
    assert!(!list.stdout.contains("lkcs_"), "the token is never listed");

    run(&app, &["connect-session", "delete", "-w", "acme", &id])
        .await
        .assert_code(0);
    let shown = run(
        &app,
        &["--json", "connect-session", "show", "-w", "acme", &id],
    )
    .await;
    shown.assert_code(0);
    assert_eq!(shown.json()["status"], "cancelled");
    let page = app.client.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 410);
}
