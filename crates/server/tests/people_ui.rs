//! People in the web UI, in headless Chromium: password sign-in (a wrong password is refused
//! with a message), the person's name and role in the header, and each role's view: only the
//! actions the role allows are offered, and the Members page lets owners add, change and remove
//! members. Without chromedriver the test is skipped (a failure under CI).

#[path = "ui/browser.rs"]
#[allow(dead_code)]
mod browser;

use browser::{start_browser, Browser};
use futures::FutureExt;
use latchkey_testkit::upstream::Upstream;
use latchkey_testkit::{spawn_app, TestApp};
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

const PASSWORD: &str = "a long enough password";

#[tokio::test]
async fn each_role_sees_only_what_it_may_do() {
    let Some(browser) = start_browser().await else {
        return;
    };
    let app = spawn_app().await;
    let up = Upstream::start("key-right-123", "u", "p").await;
    let outcome = std::panic::AssertUnwindSafe(scenario(&browser, &app, &up))
        .catch_unwind()
        .await;
    if outcome.is_err() {
        browser.screenshot("people-failure").await;
        browser.print_console().await;
    }
    let Browser {
        client, mut driver, ..
    } = browser;
    let _ = tokio::time::timeout(Duration::from_secs(20), client.close()).await;
    let _ = driver.kill().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn person(app: &TestApp, email: &str, name: &str, role: Option<&str>) {
    let made = app
        .post(
            "/v1/users",
            json!({"email": email, "display_name": name, "password": PASSWORD}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    if let Some(r) = role {
        let m = app
            .call(
                Method::PUT,
                &format!("/v1/workspaces/acme/members/{email}"),
                Some(json!({"role": r})),
            )
            .await;
        assert_eq!(m.status, 200, "{}", m.text);
    }
}

async fn sign_in(b: &Browser, app: &TestApp, email: &str, password: &str) {
    b.goto(&format!("{}/ui/login", app.url)).await;
    b.fill("#email", email).await;
    b.fill("#password", password).await;
    b.click("#password-submit").await;
}

async fn sign_out(b: &Browser) {
    b.click("form.signout button[type=submit]").await;
    b.find("#email").await;
}

/// Whether the element exists and is shown.
async fn shown(b: &Browser, css: &str) -> bool {
    match b.client.find(fantoccini::Locator::Css(css)).await {
        Ok(e) => e.is_displayed().await.unwrap_or(false),
        Err(_) => false,
    }
}

/// The connections page, once the sign-in that came before has landed (a `goto` issued while
/// its redirect is under way would be overtaken by it).
async fn connections_page(b: &Browser, app: &TestApp) {
    b.find("form.signout").await;
    b.goto(&format!("{}/ui/connections?ws=acme", app.url)).await;
    b.find("#conn-list tr[data-name=\"crm\"]").await;
}

async fn scenario(b: &Browser, app: &TestApp, up: &Upstream) {
    app.workspace("acme").await;
    let c = app
        .post(
            "/v1/workspaces/acme/connections",
            json!({"name": "crm", "app": "generic-api-key", "environment": "production",
                   "auth_mode": "api_key", "settings": {"base_url": up.url, "verify_path": "/me"},
                   "credentials": {"api_key": "key-right-123"}}),
        )
        .await;
    assert_eq!(c.status, 201, "{}", c.text);
    person(app, "olga@example.test", "Olga Owner", Some("owner")).await;
    person(app, "ed@example.test", "Ed Editor", Some("editor")).await;
    person(app, "vi@example.test", "Vi Viewer", Some("viewer")).await;
    person(app, "nemo@example.test", "Nemo Nobody", None).await;

    // A wrong password is refused with a message that does not say whether the email exists.
    sign_in(b, app, "vi@example.test", "not the password").await;
    b.text_with("#login-error", "wrong email or password").await;

    // The viewer: their name and role in the header; no action that changes anything.
    sign_in(b, app, "vi@example.test", PASSWORD).await;
    connections_page(b, app).await;
    b.text_with("#who-name", "Vi Viewer").await;
    b.text_with("#who-role", "viewer").await;
    b.screenshot("people-viewer").await;
    for css in [
        "#new-conn",
        "button[data-action=\"verify\"]",
        "button[data-action=\"edit\"]",
        "button[data-action=\"delete\"]",
        "#ws-new",
    ] {
        assert!(!shown(b, css).await, "a viewer must not be offered {css}");
    }
    b.goto(&format!("{}/ui/members?ws=acme", app.url)).await;
    b.find("tr[data-email=\"olga@example.test\"]").await;
    assert!(!shown(b, "#member-form").await, "only owners add members");
    assert!(!shown(b, "[data-action=\"member-remove\"]").await);
    sign_out(b).await;

    // The editor: creates, edits and verifies, but deletes nothing.
    sign_in(b, app, "ed@example.test", PASSWORD).await;
    connections_page(b, app).await;
    b.text_with("#who-role", "editor").await;
    b.find("#new-conn").await;
    b.find("#conn-list tr[data-name=\"crm\"] button[data-action=\"verify\"]")
        .await;
    b.find("#conn-list tr[data-name=\"crm\"] button[data-action=\"edit\"]")
        .await;
    assert!(
        !shown(b, "#conn-list button[data-action=\"delete\"]").await,
        "an editor deletes nothing"
    );
    sign_out(b).await;

    // The owner: everything, and the Members page adds, changes and removes members.
    sign_in(b, app, "olga@example.test", PASSWORD).await;
    connections_page(b, app).await;
    b.text_with("#who-name", "Olga Owner").await;
    b.text_with("#who-role", "owner").await;
    b.find("#conn-list tr[data-name=\"crm\"] button[data-action=\"delete\"]")
        .await;
    b.goto(&format!("{}/ui/members?ws=acme", app.url)).await;
    b.find("tr[data-email=\"vi@example.test\"]").await;
    b.fill("#member-email", "nemo@example.test").await;
    b.choose("#member-role", "editor").await;
    b.click("#member-add").await;
    b.find("tr[data-email=\"nemo@example.test\"]").await;
    b.screenshot("people-members").await;
    let role_of = |email: &str| {
        let email = email.to_string();
        async move {
            app.get("/v1/workspaces/acme/members").await.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["email"] == email.as_str())
                .map(|m| m["role"].as_str().unwrap().to_string())
        }
    };
    assert_eq!(
        role_of("nemo@example.test").await.as_deref(),
        Some("editor")
    );
    b.choose("tr[data-email=\"vi@example.test\"] select", "admin")
        .await;
    b.until(
        "the role change",
        "return !!document.querySelector('#toast') && document.querySelector('#toast').textContent.includes('is now admin')",
    )
    .await;
    assert_eq!(role_of("vi@example.test").await.as_deref(), Some("admin"));
    b.click("tr[data-email=\"nemo@example.test\"] [data-action=\"member-remove\"]")
        .await;
    b.until(
        "the member to go",
        "return !document.querySelector('tr[data-email=\"nemo@example.test\"]')",
    )
    .await;
    assert_eq!(role_of("nemo@example.test").await, None);
    sign_out(b).await;

    // Someone with no role anywhere signs in and sees no workspace, and cannot make one.
    sign_in(b, app, "nemo@example.test", PASSWORD).await;
    b.find("#ws-empty").await;
    b.text_with("#who-name", "Nemo Nobody").await;
    assert!(!shown(b, "#ws-new").await);
    assert!(!shown(b, "#ws-empty button").await);
}
