//! Redis connections against the local Redis (127.0.0.1:6379) with an ACL user this test makes
//! (random name and password) and removes: the right password verifies, a wrong one is refused
//! with Redis's own words, a database out of range is named, and a user disabled in Redis turns
//! the connection `failing` at its next check.

use latchkey_testkit::{spawn_app, TestApp};
use serde_json::{json, Value};

const REDIS: &str = "redis://127.0.0.1:6379/";

async fn admin() -> Option<redis::aio::MultiplexedConnection> {
    let found = async {
        let client = redis::Client::open(REDIS).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .ok()?;
        Some(conn)
    };
    match tokio::time::timeout(std::time::Duration::from_secs(5), found).await {
        Ok(Some(c)) => Some(c),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI is set, but no Redis answers at 127.0.0.1:6379 (scripts/test-services.sh starts it)")
        }
        _ => {
            eprintln!("skipping the Redis tests: no Redis answers at 127.0.0.1:6379");
            None
        }
    }
}

fn random(prefix: &str) -> String {
    use rand::Rng;
    let n: u64 = rand::thread_rng().gen();
    format!("{prefix}{n:016x}")
}

/// Removes the ACL user when dropped, whatever the test's outcome.
struct AclUser {
    name: String,
}

impl Drop for AclUser {
    fn drop(&mut self) {
        if let Ok(client) = redis::Client::open(REDIS) {
            if let Ok(mut conn) = client.get_connection() {
                let _ = redis::cmd("ACL")
                    .arg("DELUSER")
                    .arg(&self.name)
                    .exec(&mut conn);
            }
        }
    }
}

async fn create(app: &TestApp, name: &str, creds: Value) -> latchkey_testkit::Answer {
    let mut credentials = json!({"host": "127.0.0.1", "port": 6379});
    for (k, v) in creds.as_object().unwrap() {
        credentials[k] = v.clone();
    }
    app.post(
        "/v1/workspaces/acme/connections",
        json!({"name": name, "app": "redis", "credentials": credentials,
            "settings": {"health_check_interval_seconds": 0}}),
    )
    .await
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

#[tokio::test]
async fn redis_acl_user_verifies_and_a_disabled_one_fails() {
    let Some(mut redis_admin) = admin().await else {
        return;
    };
    let user = random("latchkey-test-");
    let password = random("pw-");
    let _cleanup = AclUser { name: user.clone() };
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&user)
        .arg("reset")
        .arg("on")
        .arg(format!(">{password}"))
        .arg("~*")
        .arg("+@connection")
        .arg("+select")
        .query_async::<()>(&mut redis_admin)
        .await
        .expect("ACL SETUSER");
    let app = spawn_app().await;
    app.workspace("acme").await;

    let ok = create(
        &app,
        "cache",
        json!({"username": user, "password": password, "database": 1}),
    )
    .await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    assert_eq!(ok.body["status"], "active");
    assert_eq!(ok.body["auth_mode"], "database");
    assert_eq!(ok.body["settings"]["username"], user.as_str());
    assert_eq!(ok.body["settings"]["tls"], "disable");
    assert!(!ok.text.contains(&password));

    let wrong = create(
        &app,
        "cache-wrong",
        json!({"username": user, "password": "not-it-Pw-3"}),
    )
    .await;
    assert_eq!(wrong.status, 422, "{}", wrong.text);
    assert_eq!(wrong.body["error"], "verification_failed");
    assert!(
        text(&wrong.body["message"]).contains("WRONGPASS"),
        "{}",
        wrong.text
    );
    assert!(text(&wrong.body["hint"]).contains("username and password"));
    assert!(!wrong.text.contains("not-it-Pw-3"));
    let gone = app.get("/v1/workspaces/acme/connections/cache-wrong").await;
    assert_eq!(gone.status, 404, "a failed verification stores nothing");

    let far = create(
        &app,
        "cache-far",
        json!({"username": user, "password": password, "database": 60000}),
    )
    .await;
    assert_eq!(far.status, 422, "{}", far.text);
    assert!(
        text(&far.body["message"]).contains("SELECT 60000"),
        "{}",
        far.text
    );

    let no_pw = create(&app, "cache-nopw", json!({"username": user})).await;
    assert_eq!(no_pw.status, 422, "{}", no_pw.text);
    assert_eq!(no_pw.body["details"]["field"], "credentials.password");

    // Disabled in Redis: the next check fails and says why.
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&user)
        .arg("off")
        .query_async::<()>(&mut redis_admin)
        .await
        .expect("ACL SETUSER off");
    let check = app
        .post("/v1/workspaces/acme/connections/cache/verify", json!({}))
        .await;
    let shown = app.get("/v1/workspaces/acme/connections/cache").await;
    assert_eq!(
        shown.body["status"], "failing",
        "{} / {}",
        check.text, shown.text
    );
    assert!(text(&shown.body["status_reason"]).contains("AUTH was refused"));
    assert!(
        text(&shown.body["hint"]).contains("enabled"),
        "{}",
        shown.text
    );

    // Enabled again: the check passes.
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&user)
        .arg("on")
        .query_async::<()>(&mut redis_admin)
        .await
        .expect("ACL SETUSER on");
    app.post("/v1/workspaces/acme/connections/cache/verify", json!({}))
        .await;
    let shown = app.get("/v1/workspaces/acme/connections/cache").await;
    assert_eq!(shown.body["status"], "active", "{}", shown.text);

    // Never proxied, and its password is only in the credentials answer.
    let proxied = app
        .get("/v1/workspaces/acme/connections/cache/proxy/anything")
        .await;
    assert_eq!(proxied.status, 422, "{}", proxied.text);
    let creds = app
        .get("/v1/workspaces/acme/connections/cache/credentials")
        .await;
    assert_eq!(creds.body["credentials"]["password"], password.as_str());
}
