//! Secrets stay secret: encrypted before they reach the store (searched for in the raw SQLite
//! file and the PostgreSQL rows), bound to their record, and unreadable with another master
//! key. Their absence from debug logs is checked in `debug_logs.rs`.

use latchkey_server::config::{Config, MasterKeySource};
use latchkey_testkit::upstream::Upstream;
use latchkey_testkit::{spawn_app, spawn_app_postgres, start};
use serde_json::json;
use sqlx::Connection;

#[path = "support/known_secrets.rs"]
mod known_secrets;
use known_secrets::{store_known_secrets, API_KEY, PASSWORD};

#[tokio::test]
async fn sqlite_file_holds_no_plaintext_secret() {
    let mut app = spawn_app().await;
    store_known_secrets(&app).await;
    let data_dir = app.data_dir.clone();
    app.stop().await;
    latchkey_testkit::assert_sqlite_files_hold_none(&data_dir, &[API_KEY, PASSWORD]);
}

#[tokio::test]
async fn postgres_rows_hold_no_plaintext_secret() {
    let Some(app) = spawn_app_postgres().await else {
        return;
    };
    store_known_secrets(&app).await;
    let mut conn = sqlx::PgConnection::connect(&app.config.database_url)
        .await
        .unwrap();
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(tables.iter().any(|(t,)| t == "connections"));
    for (t,) in tables {
        let dump: Option<String> = sqlx::query_scalar(&format!(
            "SELECT string_agg(CAST(x AS text), '|') FROM \"{t}\" x"
        ))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        let dump = dump.unwrap_or_default();
        assert!(
            !dump.contains(API_KEY) && !dump.contains(PASSWORD),
            "table {t} holds a secret in plaintext"
        );
        // bytea renders as hex: look for the hex of the secret too.
        let hex_key: String = API_KEY.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(
            !dump.contains(&hex_key),
            "table {t} holds the API key's bytes"
        );
    }
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_record_does_not_decrypt() {
    let app = spawn_app().await;
    store_known_secrets(&app).await;
    let mut conn = sqlx::SqliteConnection::connect(&app.config.database_url)
        .await
        .unwrap();
    sqlx::query("UPDATE connections SET cred_ciphertext = (SELECT cred_ciphertext FROM connections WHERE name = 'key') WHERE name = 'basic'")
        .execute(&mut conn)
        .await
        .unwrap();
    let a = app
        .get("/v1/workspaces/acme/connections/basic/credentials")
        .await;
    assert_eq!(a.status, 500, "{}", a.text);
    assert_eq!(a.body["error"], "decryption_failed");
    assert!(!a.text.contains(API_KEY));
    let ok = app
        .get("/v1/workspaces/acme/connections/key/credentials")
        .await;
    assert_eq!(ok.body["credentials"]["api_key"], API_KEY);
}

#[tokio::test]
async fn another_master_key_is_refused_at_start() {
    let mut app = spawn_app().await;
    store_known_secrets(&app).await;
    let mut config: Config = app.config.clone();
    app.stop().await;
    let (_, other) = latchkey_core::crypto::MasterKey::generate();
    config.master_key = MasterKeySource::Inline(other.to_string().into());
    let err = latchkey_server::Application::build(config.clone())
        .await
        .err()
        .expect("a wrong master key must stop the start");
    let msg = format!("{err:#}");
    assert!(msg.contains("master key"), "{msg}");
    // With the right key (the file) everything is readable again.
    config.master_key = MasterKeySource::File {
        path: config.data_dir.join("master.key"),
        create: false,
    };
    let again = start(config).await;
    let c = again
        .get("/v1/workspaces/acme/connections/key/credentials")
        .await;
    assert_eq!(c.body["credentials"]["api_key"], API_KEY);
}

#[tokio::test]
async fn private_addresses_need_the_allow_list() {
    let app = latchkey_testkit::spawn_app_with(|c| c.outbound_allow = Default::default()).await;
    let up = Upstream::start(API_KEY, "u", "p").await;
    let ws = app.workspace("acme").await;
    let a = app
        .post(
            &format!("/v1/workspaces/{ws}/connections"),
            json!({"name": "k", "app": "generic-api-key",
            "settings": {"base_url": up.url}, "credentials": {"api_key": API_KEY}}),
        )
        .await;
    assert_eq!(a.status, 422, "{}", a.text);
    assert!(
        a.body["message"]
            .as_str()
            .unwrap()
            .contains("LATCHKEY_OUTBOUND_ALLOW"),
        "{}",
        a.text
    );
    assert_eq!(
        up.hits(),
        0,
        "the blocked request must not reach the address"
    );
    let by_name = app
        .post(&format!("/v1/workspaces/{ws}/connections"), json!({"name": "k2", "app": "generic-api-key",
            "settings": {"base_url": up.url.replace("127.0.0.1", "localhost")}, "credentials": {"api_key": API_KEY}}))
        .await;
    assert_eq!(by_name.status, 422, "{}", by_name.text);
    assert_eq!(
        up.hits(),
        0,
        "a name resolving to loopback must be refused after resolution"
    );
}

#[tokio::test]
async fn user_given_oauth_urls_are_held_to_the_same_rule() {
    let app = latchkey_testkit::spawn_app_with(|c| c.outbound_allow = Default::default()).await;
    let ws = app.workspace("acme").await;
    for token_url in [
        "http://127.0.0.1:9/token",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:9/token",
    ] {
        let a = app
            .post(
                &format!("/v1/workspaces/{ws}/connections"),
                json!({"name": "cc", "app": "generic-oauth2",
                "auth_mode": "oauth2_client_credentials",
                "settings": {"token_url": token_url, "base_url": "https://api.example.com"},
                "credentials": {"client_id": "id", "client_secret": "secret"}}),
            )
            .await;
        assert_eq!(a.status, 422, "{token_url}: {}", a.text);
        assert!(
            a.body["message"]
                .as_str()
                .unwrap()
                .contains("LATCHKEY_OUTBOUND_ALLOW"),
            "{token_url}: {}",
            a.text
        );
    }
}
