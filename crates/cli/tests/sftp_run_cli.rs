//! `latchkey run` with an SFTP connection's private key: the command gets the path of a file
//! (mode 0600, in a private directory) holding the key, never the key itself, and the file is
//! gone when the command ends: after success, after a failure, and when `latchkey` is asked to
//! stop (SIGTERM) while the command runs. A Redis connection gives its URL, which `redis-cli`
//! uses against the local Redis.

mod common;

use common::*;
use latchkey_testkit::{spawn_app, TestApp};
use serde_json::json;
use std::path::Path;
use std::process::Command;

/// A fresh OpenSSH Ed25519 private key from ssh-keygen, or `None` (a failure under CI).
fn new_key() -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&path)
        .status();
    match made {
        Ok(s) if s.success() => Some(std::fs::read_to_string(&path).unwrap()),
        _ if std::env::var_os("CI").is_some() => panic!("CI is set, but ssh-keygen is missing"),
        _ => {
            eprintln!("skipping: ssh-keygen (openssh-client) is missing");
            None
        }
    }
}

async fn sftp_connection(app: &TestApp, key: &str) {
    let made = app
        .post(
            "/v1/workspaces/acme/connections",
            json!({"name": "drop", "app": "sftp", "verify": false,
                "credentials": {"host": "sftp.example.com", "port": 22, "username": "etl",
                    "private_key": key}}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
}

const SHOW: &str = r#"printf '%s\n' "$KEY_FILE"; stat -c %a "$KEY_FILE"; stat -c %a "$(dirname "$KEY_FILE")"; cmp -s "$KEY_FILE" "$EXPECTED_KEY_FILE" && echo same; test "$USER_NAME" = etl && echo user"#;

#[tokio::test]
async fn run_gives_the_sftp_key_as_a_private_file_removed_afterwards() {
    let Some(key) = new_key() else { return };
    let app = spawn_app().await;
    app.workspace("acme").await;
    sftp_connection(&app, &key).await;
    let expected = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(expected.path(), &key).unwrap();
    let expected_path = expected.path().display().to_string();

    for (script, code) in [(SHOW.to_string(), 0), (format!("{SHOW}; exit 3"), 3)] {
        let out = run_env(
            &app,
            &[("EXPECTED_KEY_FILE", &expected_path)],
            &[
                "run",
                "-w",
                "acme",
                "--env",
                "KEY_FILE=drop.private_key_file",
                "--env",
                "USER_NAME=drop.username",
                "--",
                "sh",
                "-c",
                &script,
            ],
            None,
        )
        .await;
        out.assert_code(code);
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(
            &lines[1..],
            ["600", "700", "same", "user"],
            "{}",
            out.stdout
        );
        assert!(
            !Path::new(lines[0]).exists(),
            "the key file outlived the command"
        );
        assert!(!Path::new(lines[0]).parent().unwrap().exists());
        let body = key.lines().nth(1).unwrap();
        assert!(!out.stdout.contains(body) && !out.stderr.contains(body));
    }

    // The key itself is never put in a variable.
    let out = run(
        &app,
        &[
            "run",
            "-w",
            "acme",
            "--env",
            "K=drop.private_key",
            "--",
            "true",
        ],
    )
    .await;
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("private_key_file"), "{}", out.stderr);

    // Asked to stop while the command runs: the file goes all the same.
    let mut live = Live::start(
        &app,
        &[
            "run",
            "-w",
            "acme",
            "--env",
            "KEY_FILE=drop.private_key_file",
            "--",
            "sh",
            "-c",
            r#"printf '%s\n' "$KEY_FILE"; exec sleep 30"#,
        ],
        "",
    )
    .await;
    let path = live.next_line().await;
    assert!(Path::new(&path).exists());
    let killed = Command::new("kill")
        .args(["-TERM", &live.pid()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = live.finish().await;
    assert_eq!(out.code, 128 + 15, "{}", out.stderr);
    assert!(
        !Path::new(&path).exists(),
        "the key file outlived a stopped run"
    );
}

#[tokio::test]
async fn run_gives_a_redis_url_that_redis_cli_uses() {
    let app = spawn_app().await;
    app.workspace("acme").await;
    let made = app
        .post(
            "/v1/workspaces/acme/connections",
            json!({"name": "cache", "app": "redis", "verify": false,
                "credentials": {"host": "127.0.0.1", "port": 6379, "database": 2}}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let out = run(
        &app,
        &[
            "run",
            "-w",
            "acme",
            "--env",
            "REDIS_URL=cache.url",
            "--",
            "sh",
            "-c",
            r#"printf '%s' "$REDIS_URL""#,
        ],
    )
    .await;
    out.assert_code(0);
    assert_eq!(out.stdout, "redis://127.0.0.1:6379/2");
    let reachable = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", "6379", "PING"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG");
    if !reachable {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set, but redis-cli cannot reach Redis"
        );
        eprintln!("skipping the redis-cli part: no redis-cli or no Redis at 127.0.0.1:6379");
        return;
    }
    let out = run(
        &app,
        &[
            "run",
            "-w",
            "acme",
            "--env",
            "REDIS_URL=cache.url",
            "--",
            "sh",
            "-c",
            r#"redis-cli -u "$REDIS_URL" PING"#,
        ],
    )
    .await;
    out.assert_code(0);
    assert_eq!(out.stdout.trim(), "PONG");
}
