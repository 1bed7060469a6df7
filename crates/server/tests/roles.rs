//! Roles on every endpoint: one table of endpoints × roles → expected status, run with each
//! person's own API key (which carries every scope, so the person's role is what limits it);
//! then what changes at once when a person is demoted or removed, what the audit log says, and
//! password sign-in to the web UI with its throttle.

use latchkey_testkit::upstream::Upstream;
use latchkey_testkit::{spawn_app, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashMap;

/// The people of the table, in the order of the expectation columns.
const ROLES: [&str; 6] = ["owner", "admin", "editor", "viewer", "outsider", "instance"];
const PASSWORD: &str = "a long enough password";

#[path = "support/people.rs"]
mod people;

use people::{as_session, connection, sign_in};

struct World {
    app: TestApp,
    up: Upstream,
    /// Each person's own key (every scope, workspace acme).
    keys: HashMap<&'static str, String>,
    emails: HashMap<&'static str, String>,
}

/// acme with one person of each role (each with a key of their own), an outsider with no role,
/// and an instance administrator; plus things to delete per person.
async fn world() -> World {
    let app = spawn_app().await;
    let up = Upstream::start("key-right-123", "u", "p").await;
    app.workspace("acme").await;
    app.workspace("other").await;
    let mut keys = HashMap::new();
    let mut emails = HashMap::new();
    for r in ROLES {
        let email = format!("{r}@example.test");
        let made = app
            .post(
                "/v1/users",
                json!({"email": email, "display_name": format!("The {r}"), "password": PASSWORD,
                       "instance_admin": r == "instance"}),
            )
            .await;
        assert_eq!(made.status, 201, "{}", made.text);
        assert!(
            !made.text.contains("argon2"),
            "no hash in answers: {}",
            made.text
        );
        if !matches!(r, "outsider" | "instance") {
            let m = app
                .call(
                    Method::PUT,
                    &format!("/v1/workspaces/acme/members/{email}"),
                    Some(json!({"role": r})),
                )
                .await;
            assert_eq!(m.status, 200, "{}", m.text);
        }
        // Everyone signs in with their password and makes a key of their own.
        let s = sign_in(&app, &email, PASSWORD)
            .await
            .unwrap_or_else(|a| panic!("{r}: {}", a.text));
        let ws = if r == "outsider" { "other" } else { "acme" };
        if r == "outsider" {
            app.call(
                Method::PUT,
                &format!("/v1/workspaces/other/members/{email}"),
                Some(json!({"role": "admin"})),
            )
            .await;
        }
        let k = as_session(
            &app,
            &s,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": format!("{r}'s key"), "workspace": if r == "instance" { Value::Null } else { json!(ws) },
                        "scopes": if r == "instance" { json!([]) } else { json!(["read", "write", "secrets", "proxy", "metrics"]) }})),
        )
        .await;
        assert_eq!(k.status, 201, "{r}: {}", k.text);
        assert_eq!(
            k.body["user_id"], made.body["id"],
            "the key belongs to its maker"
        );
        keys.insert(r, k.body["key"].as_str().unwrap().to_string());
        emails.insert(r, email);
    }
    let a = app
        .post("/v1/workspaces/acme/connections", connection("base", &up))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    for r in ROLES {
        let a = app
            .post(
                "/v1/workspaces/acme/connections",
                connection(&format!("del-{r}"), &up),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.text);
        let f = app
            .post("/v1/workspaces/acme/flows", json!({"name": format!("delflow-{r}"), "environment": "production", "active": false, "connections": []}))
            .await;
        assert_eq!(f.status, 201, "{}", f.text);
    }
    let f = app
        .post("/v1/workspaces/acme/flows", json!({"name": "base-flow", "environment": "production", "active": false, "connections": ["base"]}))
        .await;
    assert_eq!(f.status, 201, "{}", f.text);
    World {
        app,
        up,
        keys,
        emails,
    }
}

/// One row: method, path and body (`{r}` is replaced by the role), then the expected status for
/// owner, admin, editor, viewer, outsider, instance administrator.
type Row = (Method, &'static str, Option<Value>, [u16; 6]);

fn table(up: &Upstream) -> Vec<Row> {
    use Method as M;
    let conn = |n: &str| connection(n, up);
    vec![
        // Workspaces.
        (
            M::GET,
            "/v1/workspaces/acme",
            None,
            [200, 200, 200, 200, 404, 200],
        ),
        (
            M::PATCH,
            "/v1/workspaces/acme",
            Some(json!({"branding": {"display_name": "Acme"}})),
            [200, 200, 403, 403, 404, 200],
        ),
        (
            M::POST,
            "/v1/workspaces",
            Some(json!({"slug": "made-by-{r}"})),
            [403, 403, 403, 403, 403, 201],
        ),
        // Catalog in the workspace.
        (
            M::GET,
            "/v1/workspaces/acme/apps",
            None,
            [200, 200, 200, 200, 404, 200],
        ),
        // Connections.
        (
            M::GET,
            "/v1/workspaces/acme/connections",
            None,
            [200, 200, 200, 200, 404, 200],
        ),
        (
            M::POST,
            "/v1/workspaces/acme/connections",
            Some(conn("made-by-{r}")),
            [201, 201, 201, 403, 404, 201],
        ),
        (
            M::GET,
            "/v1/workspaces/acme/connections/base",
            None,
            [200, 200, 200, 200, 404, 200],
        ),
        (
            M::PATCH,
            "/v1/workspaces/acme/connections/base",
            Some(json!({"settings": {"concurrency_level": 3}})),
            [200, 200, 200, 403, 404, 200],
        ),
        (
            M::POST,
            "/v1/workspaces/acme/connections/base/verify",
            None,
            [200, 200, 200, 403, 404, 200],
        ),
        (
            M::GET,
            "/v1/workspaces/acme/connections/base/credentials",
            None,
            [200, 200, 403, 403, 404, 200],
        ),
        (
            M::GET,
            "/v1/workspaces/acme/connections/base/proxy/me",
            None,
            [200, 200, 403, 403, 404, 200],
        ),
        (
            M::GET,
            "/v1/workspaces/acme/connections/base/events",
            None,
            [200, 200, 200, 200, 404, 200],
        ),
        (
            M::DELETE,
            "/v1/workspaces/acme/connections/del-{r}",
            None,
            [204, 204, 403, 403, 404, 204],
        ),
        // Flows.
        (
            M::GET,
            "/v1/workspaces/acme/flows",
            None,
            [200, 200, 200, 200, 404, 200],
        ),
        (
            M::POST,
            "/v1/workspaces/acme/flows",
            Some(
                json!({"name": "flow-{r}", "environment": "production", "active": false, "connections": []}),
            ),
            [201, 201, 201, 403, 404, 201],
        ),
        (
            M::GET,
            "/v1/workspaces/acme/flows/base-flow",
            None,
            [200, 200, 200, 200, 404, 200],
        ),
        (
            M::PATCH,
            "/v1/workspaces/acme/flows/base-flow",
            Some(json!({"active": false})),
            [200, 200, 200, 403, 404, 200],
        ),
        (
            M::DELETE,
            "/v1/workspaces/acme/flows/delflow-{r}",
            None,
            [204, 204, 403, 403, 404, 204],
        ),
        // OAuth clients.
        (
            M::PUT,
            "/v1/workspaces/acme/apps/salesforce/oauth-client",
            Some(json!({"client_id": "cid-{r}", "client_secret": "cs-{r}-123456"})),
            [200, 200, 403, 403, 404, 200],
        ),
        (
            M::GET,
            "/v1/workspaces/acme/apps/salesforce/oauth-client",
            None,
            [200, 200, 200, 200, 404, 200],
        ),
        // Webhooks.
        (
            M::GET,
            "/v1/workspaces/acme/webhooks",
            None,
            [200, 200, 200, 200, 404, 200],
        ),
        (
            M::POST,
            "/v1/workspaces/acme/webhooks",
            Some(json!({"url": format!("{}/hook-{{r}}", up.url), "events": ["connection.*"]})),
            [201, 201, 403, 403, 404, 201],
        ),
        // Connect sessions.
        (
            M::GET,
            "/v1/workspaces/acme/connect-sessions",
            None,
            [200, 200, 200, 200, 404, 200],
        ),
        (
            M::POST,
            "/v1/workspaces/acme/connect-sessions",
            Some(
                json!({"end_user": {"id": "u-{r}"}, "allowed_apps": ["generic-api-key"], "allowed_origins": ["http://127.0.0.1:9"]}),
            ),
            [201, 201, 403, 403, 404, 201],
        ),
        // The audit log.
        (
            M::GET,
            "/v1/workspaces/acme/events",
            None,
            [200, 200, 200, 200, 404, 200],
        ),
        (M::GET, "/v1/events", None, [403, 403, 403, 403, 403, 200]),
        // Members.
        (
            M::GET,
            "/v1/workspaces/acme/members",
            None,
            [200, 200, 200, 200, 404, 200],
        ),
        (
            M::PUT,
            "/v1/workspaces/acme/members/spare@example.test",
            Some(json!({"role": "viewer"})),
            [200, 403, 403, 403, 404, 200],
        ),
        // API keys: everyone may make a key of their own; listing a workspace's keys is admin work.
        (
            M::POST,
            "/v1/api-keys",
            Some(json!({"name": "more-{r}", "workspace": "acme", "scopes": ["read"]})),
            [201, 201, 201, 201, 422, 201],
        ),
        (
            M::GET,
            "/v1/api-keys?workspace=acme",
            None,
            [200, 200, 403, 403, 404, 200],
        ),
        (M::GET, "/v1/api-keys", None, [403, 403, 403, 403, 403, 200]),
        // People and the instance.
        (M::GET, "/v1/users", None, [403, 403, 403, 403, 403, 200]),
        (
            M::POST,
            "/v1/users",
            Some(json!({"email": "new-{r}@example.test"})),
            [403, 403, 403, 403, 403, 201],
        ),
        (
            M::GET,
            "/v1/admin/master-key",
            None,
            [403, 403, 403, 403, 403, 200],
        ),
        (M::GET, "/metrics", None, [403, 403, 403, 403, 403, 200]),
        // Last: deleting `other` takes the outsider's key (bound to it) along.
        (
            M::DELETE,
            "/v1/workspaces/other",
            None,
            [404, 404, 404, 404, 403, 204],
        ),
    ]
}

fn fill(v: &Value, r: &str) -> Value {
    serde_json::from_str(&v.to_string().replace("{r}", r)).unwrap()
}

#[tokio::test]
async fn every_role_gets_exactly_what_it_may_on_every_endpoint() {
    let w = world().await;
    let spare = w
        .app
        .post("/v1/users", json!({"email": "spare@example.test"}))
        .await;
    assert_eq!(spare.status, 201, "{}", spare.text);
    let mut wrong = Vec::new();
    for (method, path, body, expected) in table(&w.up) {
        for (i, r) in ROLES.iter().enumerate() {
            let path = path.replace("{r}", r);
            let got = w
                .app
                .call_as(
                    &w.keys[r],
                    method.clone(),
                    &path,
                    body.as_ref().map(|b| fill(b, r)),
                )
                .await;
            if got.status != expected[i] {
                wrong.push(format!(
                    "{method} {path} as {r}: {} (expected {}) {}",
                    got.status, expected[i], got.text
                ));
            }
            if got.status == 403 && path.starts_with("/v1/workspaces/acme") {
                assert_eq!(got.body["error"], "forbidden", "{}", got.text);
                assert!(got.body["hint"].is_string(), "{}", got.text);
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong answers:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // An editor never reads a secret, whatever the key says; the web UI session is never
    // accepted where secrets are handed out.
    let editor = sign_in(&w.app, &w.emails["editor"], PASSWORD)
        .await
        .unwrap_or_else(|a| panic!("{}", a.text));
    let creds = as_session(
        &w.app,
        &editor,
        Method::GET,
        "/v1/workspaces/acme/connections/base/credentials",
        None,
    )
    .await;
    assert_eq!(creds.status, 401, "{}", creds.text);
    let made = as_session(
        &w.app,
        &editor,
        Method::POST,
        "/v1/workspaces/acme/connections",
        Some(connection("by-editor-session", &w.up)),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.text);
    assert!(!made.text.contains("key-right-123"), "{}", made.text);
    let viewer = sign_in(&w.app, &w.emails["viewer"], PASSWORD)
        .await
        .unwrap_or_else(|a| panic!("{}", a.text));
    let refused = as_session(
        &w.app,
        &viewer,
        Method::POST,
        "/v1/workspaces/acme/connections",
        Some(connection("by-viewer", &w.up)),
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert_eq!(
        refused.body["details"]["required_role"], "editor",
        "{}",
        refused.text
    );
    assert_eq!(
        refused.body["details"]["role"], "viewer",
        "{}",
        refused.text
    );
    // A viewer's workspace list holds only the workspaces they have a role in.
    let listed = as_session(&w.app, &viewer, Method::GET, "/v1/workspaces", None).await;
    let slugs: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["acme"], "{}", listed.text);
}

#[tokio::test]
async fn keys_follow_their_persons_role_at_once_and_the_audit_log_names_people() {
    let w = world().await;
    let admin_key = &w.keys["admin"];
    let creds = "/v1/workspaces/acme/connections/base/credentials";
    assert_eq!(
        w.app
            .call_as(admin_key, Method::GET, creds, None)
            .await
            .status,
        200
    );

    // Demoted to viewer: the same key reads no secret from the next request on.
    let m = w
        .app
        .call(
            Method::PUT,
            &format!("/v1/workspaces/acme/members/{}", w.emails["admin"]),
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(m.status, 200, "{}", m.text);
    let a = w.app.call_as(admin_key, Method::GET, creds, None).await;
    assert_eq!(a.status, 403, "{}", a.text);
    let a = w
        .app
        .call_as(
            admin_key,
            Method::GET,
            "/v1/workspaces/acme/connections",
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);

    // Taken out of the workspace: it is gone from their sight.
    let d = w
        .app
        .delete(&format!(
            "/v1/workspaces/acme/members/{}",
            w.emails["admin"]
        ))
        .await;
    assert_eq!(d.status, 204, "{}", d.text);
    let a = w
        .app
        .call_as(
            admin_key,
            Method::GET,
            "/v1/workspaces/acme/connections",
            None,
        )
        .await;
    assert_eq!(a.status, 404, "{}", a.text);

    // The audit log names the person, and the key they used.
    let editor_key = &w.keys["editor"];
    let made = w
        .app
        .call_as(
            editor_key,
            Method::POST,
            "/v1/workspaces/acme/connections",
            Some(connection("audited", &w.up)),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let events = w
        .app
        .get("/v1/workspaces/acme/events?action=connection.created&target=audited")
        .await;
    let e = &events.body["items"][0];
    assert_eq!(
        e["person"]["email"], "editor@example.test",
        "{}",
        events.text
    );
    assert_eq!(e["person"]["name"], "The editor", "{}", events.text);
    assert!(
        e["key_id"].as_str().unwrap().starts_with("key_"),
        "{}",
        events.text
    );
    let by_person = w
        .app
        .get(&format!(
            "/v1/workspaces/acme/events?actor={}",
            e["person"]["id"].as_str().unwrap()
        ))
        .await;
    assert!(
        !by_person.body["items"].as_array().unwrap().is_empty(),
        "{}",
        by_person.text
    );
    let member_events = w.app.get("/v1/workspaces/acme/events?action=member.").await;
    assert!(
        member_events.text.contains("member.removed"),
        "{}",
        member_events.text
    );

    // Removed: every key of theirs stops at once, and their password no longer signs in.
    let owner_key = &w.keys["owner"];
    assert_eq!(
        w.app
            .call_as(owner_key, Method::GET, "/v1/workspaces/acme", None)
            .await
            .status,
        200
    );
    let gone = w
        .app
        .delete(&format!("/v1/users/{}", w.emails["owner"]))
        .await;
    assert_eq!(gone.status, 204, "{}", gone.text);
    let a = w
        .app
        .call_as(owner_key, Method::GET, "/v1/workspaces/acme", None)
        .await;
    assert_eq!(a.status, 401, "{}", a.text);
    let listed = w.app.get("/v1/api-keys?workspace=acme").await;
    let theirs: Vec<&Value> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["name"] == "owner's key")
        .collect();
    assert_eq!(theirs.len(), 1, "{}", listed.text);
    assert!(theirs[0]["revoked_at"].is_string(), "{}", listed.text);
    assert!(sign_in(&w.app, &w.emails["owner"], PASSWORD).await.is_err());
    // A workspace must keep an owner when its owners change their own roles.
    let only = w
        .app
        .post(
            "/v1/users",
            json!({"email": "solo@example.test", "password": PASSWORD}),
        )
        .await;
    assert_eq!(only.status, 201);
    w.app
        .call(
            Method::PUT,
            "/v1/workspaces/acme/members/solo@example.test",
            Some(json!({"role": "owner"})),
        )
        .await;
    let solo = sign_in(&w.app, "solo@example.test", PASSWORD)
        .await
        .unwrap_or_else(|a| panic!("{}", a.text));
    let down = as_session(
        &w.app,
        &solo,
        Method::PUT,
        "/v1/workspaces/acme/members/solo@example.test",
        Some(json!({"role": "viewer"})),
    )
    .await;
    assert_eq!(down.status, 409, "{}", down.text);
    assert_eq!(down.body["error"], "last_owner", "{}", down.text);
}

#[tokio::test]
async fn password_sign_in_is_throttled_and_never_says_which_emails_exist() {
    let app = spawn_app().await;
    let made = app
        .post(
            "/v1/users",
            json!({"email": "Ada@Example.test", "display_name": "Ada", "password": PASSWORD}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    assert_eq!(made.body["email"], "ada@example.test");
    let short = app
        .post(
            "/v1/users",
            json!({"email": "bob@example.test", "password": "short"}),
        )
        .await;
    assert_eq!(short.status, 422, "{}", short.text);
    let dup = app
        .post("/v1/users", json!({"email": "ADA@example.test"}))
        .await;
    assert_eq!(dup.status, 409, "{}", dup.text);

    let s = sign_in(&app, "ADA@example.test", PASSWORD)
        .await
        .unwrap_or_else(|a| panic!("{}", a.text));
    let info = as_session(&app, &s, Method::GET, "/ui/session", None).await;
    assert_eq!(info.body["person"]["name"], "Ada", "{}", info.text);
    assert_eq!(info.body["admin"], false);

    let wrong = sign_in(&app, "ada@example.test", "not the password")
        .await
        .err()
        .unwrap();
    let unknown = sign_in(&app, "nobody@example.test", PASSWORD)
        .await
        .err()
        .unwrap();
    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, 401);
    assert!(
        wrong.text.contains("wrong email or password"),
        "{}",
        wrong.text
    );
    assert!(
        unknown.text.contains("wrong email or password"),
        "{}",
        unknown.text
    );
    // Past the free failures, the address is answered 429 (the right password still works).
    let mut last = 0;
    for _ in 0..12 {
        last = sign_in(&app, "ada@example.test", "guess guess guess")
            .await
            .err()
            .unwrap()
            .status;
    }
    assert_eq!(last, 429);
    assert!(sign_in(&app, "ada@example.test", PASSWORD).await.is_ok());
}
