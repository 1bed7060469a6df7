//! Database connections are verified with a real connection and `SELECT 1` (R9) against the
//! local PostgreSQL and MariaDB: the right password saves, a wrong one is refused with the
//! database's own words and nothing is stored. `scripts/test-services.sh` creates the
//! `latchkey_pw_check` accounts whose passwords are really checked.

use latchkey_testkit::{mysql_url, spawn_app, throwaway_postgres, TestApp};
use serde_json::json;

const PG_PASSWORD: &str = "pg-check-Secret-1";
const MY_PASSWORD: &str = "my-check-Secret-1";

async fn create(
    app: &TestApp,
    app_id: &str,
    name: &str,
    port: u16,
    database: &str,
    password: &str,
    tls: &str,
) -> latchkey_testkit::Answer {
    app.post(
        "/v1/workspaces/acme/connections",
        json!({"name": name, "app": app_id, "auth_mode": "database", "settings": {"tls": tls},
            "credentials": {"host": "127.0.0.1", "port": port, "database": database,
                "username": "latchkey_pw_check", "password": password}}),
    )
    .await
}

#[tokio::test]
async fn postgres_right_and_wrong_password() {
    // Only here to know PostgreSQL is expected (skips outside CI when it is not configured).
    let Some((_url, _guard)) = throwaway_postgres().await else {
        return;
    };
    let app = spawn_app().await;
    app.workspace("acme").await;
    let ok = create(
        &app,
        "postgres",
        "warehouse",
        5432,
        "postgres",
        PG_PASSWORD,
        "prefer",
    )
    .await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    assert_eq!(ok.body["status"], "active");
    assert_eq!(
        ok.body["credential_fields"],
        json!(["host", "port", "database", "username", "password"])
    );
    assert!(!ok.text.contains(PG_PASSWORD));

    let bad = create(
        &app,
        "postgres",
        "warehouse-bad",
        5432,
        "postgres",
        "wrong-Pw-Xy7q",
        "prefer",
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert_eq!(bad.body["error"], "verification_failed");
    assert!(
        bad.body["message"]
            .as_str()
            .unwrap()
            .contains("password authentication failed"),
        "{}",
        bad.text
    );
    assert!(
        bad.body["hint"]
            .as_str()
            .unwrap()
            .contains("username and password"),
        "{}",
        bad.text
    );
    assert!(!bad.text.contains("wrong-Pw-Xy7q"));
    assert_eq!(
        app.get("/v1/workspaces/acme/connections/warehouse-bad")
            .await
            .status,
        404
    );

    let nodb = create(
        &app,
        "postgres",
        "nodb",
        5432,
        "no_such_database_here",
        PG_PASSWORD,
        "disable",
    )
    .await;
    assert_eq!(nodb.status, 422);
    assert!(
        nodb.body["hint"]
            .as_str()
            .unwrap()
            .contains("database name"),
        "{}",
        nodb.text
    );

    // The local server offers TLS (Debian's default certificate): `require` connects over it.
    let tls = create(
        &app,
        "postgres",
        "tls",
        5432,
        "postgres",
        PG_PASSWORD,
        "require",
    )
    .await;
    assert_eq!(tls.status, 201, "{}", tls.text);

    let closed = create(
        &app,
        "postgres",
        "closed",
        1,
        "postgres",
        PG_PASSWORD,
        "disable",
    )
    .await;
    assert_eq!(closed.status, 422);
    assert!(
        closed.body["hint"]
            .as_str()
            .unwrap()
            .contains("host and port"),
        "{}",
        closed.text
    );

    // Editing re-verifies: a wrong new password is refused and the stored one is kept.
    let e = app
        .patch(
            "/v1/workspaces/acme/connections/warehouse",
            json!({"credentials": {"password": "wrong-again"}}),
        )
        .await;
    assert_eq!(e.status, 422);
    let c = app
        .get("/v1/workspaces/acme/connections/warehouse/credentials")
        .await;
    assert_eq!(c.body["credentials"]["password"], PG_PASSWORD);
    assert_eq!(c.body["credentials"]["port"], "5432");
}

#[tokio::test]
async fn mariadb_right_and_wrong_password() {
    let Some(_admin) = mysql_url() else { return };
    let app = spawn_app().await;
    app.workspace("acme").await;
    let ok = create(
        &app,
        "mysql",
        "orders",
        3306,
        "latchkey_check",
        MY_PASSWORD,
        "prefer",
    )
    .await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    assert_eq!(ok.body["status"], "active");

    let bad = create(
        &app,
        "mysql",
        "orders-bad",
        3306,
        "latchkey_check",
        "wrong-Pw-Xy7q",
        "prefer",
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert!(
        bad.body["message"]
            .as_str()
            .unwrap()
            .contains("Access denied"),
        "{}",
        bad.text
    );
    assert!(
        bad.body["hint"]
            .as_str()
            .unwrap()
            .contains("username and password"),
        "{}",
        bad.text
    );
    assert_eq!(
        app.get("/v1/workspaces/acme/connections/orders-bad")
            .await
            .status,
        404
    );

    // The local MariaDB has no TLS: `require` must refuse rather than fall back to plaintext.
    let tls = create(
        &app,
        "mysql",
        "orders-tls",
        3306,
        "latchkey_check",
        MY_PASSWORD,
        "require",
    )
    .await;
    assert_eq!(tls.status, 422, "{}", tls.text);
    assert_eq!(
        app.get("/v1/workspaces/acme/connections/orders-tls")
            .await
            .status,
        404
    );

    let v = app
        .post("/v1/workspaces/acme/connections/orders/verify", json!({}))
        .await;
    assert_eq!(v.body["ok"], true, "{}", v.text);
}
