//! The web UI in a real browser: headless Chromium driven through WebDriver (chromedriver) from
//! Rust, against a real server, the testkit's upstream API and its Salesforce simulator, all on
//! loopback. Every wait is bounded. Screenshots of the main pages, at 1280 px and at 375 px, go
//! to `target/ui-screenshots/`. Without chromedriver the browser test is skipped (a failure
//! under CI); `scripts/install-chromium.sh` installs it.

#[path = "ui/browser.rs"]
mod browser;
#[path = "ui/newcomer.rs"]
mod newcomer;

use browser::{popup_window, salesforce_setup, start_browser, windows_left, Browser};
use latchkey_testkit::salesforce::{self};
use latchkey_testkit::upstream::Upstream;
use latchkey_testkit::{spawn_app, spawn_app_with, start_peer, TestApp};
use serde_json::{json, Value};
use std::time::Duration;

/// The row of a connection in the list.
fn row(name: &str) -> String {
    format!("#conn-list tr[data-name=\"{name}\"]")
}

#[tokio::test]
async fn the_ui_works_in_a_real_browser() {
    let Some(browser) = start_browser().await else {
        return;
    };
    let (_sim, app, up) = salesforce_setup().await;
    let outcome = browser.attempt("ui", scenario(&browser, &app, &up)).await;
    browser.close(outcome).await;
}

async fn scenario(b: &Browser, app: &TestApp, up: &Upstream) {
    // Sign-in: a wrong key is refused with a message; the admin key signs in.
    b.goto(&format!("{}/", app.url)).await;
    b.fill("#api_key", "lk_not-a-real-key").await;
    b.click("form button[type=submit]").await;
    let err = b.text_with("#login-error", "Sign-in failed").await;
    assert!(err.contains("unknown API key"), "{err}");
    b.screenshot("login-1280").await;
    b.sign_in(&app.admin_key).await;
    b.find("#ws-empty").await;

    // A workspace, created from the switcher.
    b.click("#ws-new").await;
    b.fill("#ws-slug", "acme").await;
    b.fill("#ws-name", "Acme Inc.").await;
    b.click("#ws-form button[type=submit]").await;
    b.until(
        "the new workspace to be selected",
        "return document.querySelector('#ws-select').value === 'acme'",
    )
    .await;

    // An API-key connection whose check fails: error and hint next to the form, nothing saved.
    b.click("#new-conn").await;
    b.choose("#f-app", "generic-api-key").await;
    b.fill("#f-name", "crm-api").await;
    b.fill("#fld-s-base_url", &up.url).await;
    b.fill("#fld-c-api_key", "key-wrong").await;
    let save = b.find("#pane-save").await;
    assert_eq!(save.text().await.unwrap(), "Save & check");
    save.click().await.unwrap();
    let shown = b.text_with("#pane-error", "401").await;
    assert!(
        shown.contains("refused the credential"),
        "the hint is shown: {shown}"
    );
    assert!(!shown.contains("key-wrong"), "{shown}");
    b.screenshot("create-pane-check-failed-1280").await;
    let list = app.get("/v1/workspaces/acme/connections").await;
    assert_eq!(
        list.body["items"].as_array().unwrap().len(),
        0,
        "{}",
        list.text
    );

    // The right key passes "Save & check" and the list shows the connection active.
    b.fill("#fld-c-api_key", "key-right-123").await;
    b.click("#pane-save").await;
    b.pane_closed().await;
    b.text_with(
        &format!("{} td[data-label=Status]", row("crm-api")),
        "Active",
    )
    .await;
    b.text_with(
        &format!("{} td[data-label=Concurrency]", row("crm-api")),
        "5",
    )
    .await;

    // Credentials by application: the green numbers before the Salesforce connection.
    b.goto(&format!("{}/ui/credentials?ws=acme", app.url)).await;
    b.text_with("[data-app=generic-api-key] .count", "1").await;
    b.text_with("[data-app=salesforce] .count", "0").await;

    // Save & authorize a Salesforce connection through the popup window.
    b.goto(&format!("{}/ui/connections?ws=acme", app.url)).await;
    b.click("#new-conn").await;
    b.choose("#f-app", "salesforce").await;
    b.fill("#f-name", "sf-prod").await;
    let kinds = b.find("#fld-s-account_type").await.text().await.unwrap();
    assert!(
        kinds.contains("Production") && kinds.contains("Sandbox"),
        "{kinds}"
    );
    let modes = b.find("#f-mode").await.text().await.unwrap();
    assert!(
        modes.contains("Refresh token") && modes.contains("JWT bearer token"),
        "{modes}"
    );
    b.choose("#f-mode", "oauth2_code").await;
    b.fill("#fld-c-client_id", salesforce::DEFAULT_CONSUMER_KEY)
        .await;
    b.fill("#fld-c-client_secret", salesforce::DEFAULT_CONSUMER_SECRET)
        .await;
    b.client
        .execute("document.querySelector('.pane-body').scrollTop = 0", vec![])
        .await
        .unwrap();
    b.screenshot("create-pane-1280").await;
    b.client
        .execute(
            "document.querySelector('#fld-s-scopes').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
    b.screenshot("create-pane-fields-1280").await;
    b.click("#advanced > summary").await;
    b.choose("#f-borrow", &conn_id(app, "crm-api").await).await;
    b.until(
        "the level to hide while borrowing",
        "return document.querySelector('#level-field').hidden",
    )
    .await;
    b.choose("#f-borrow", "").await;
    b.fill("#f-level", "10").await;
    b.screenshot("create-pane-advanced-1280").await;
    let main = b.client.window().await.unwrap();
    let save = b.find("#pane-save").await;
    assert_eq!(save.text().await.unwrap(), "Save & authorize");
    save.click().await.unwrap();
    let popup = popup_window(b, &main).await;
    b.client.switch_to_window(popup).await.unwrap();
    b.fill("input[name=username]", salesforce::DEFAULT_USERNAME)
        .await;
    b.fill("input[name=password]", salesforce::DEFAULT_PASSWORD)
        .await;
    // The popup goes to Latchkey's callback and closes itself: the click may race with that.
    let _ = b.find("button[name=approve]").await.click().await;
    b.client.switch_to_window(main.clone()).await.unwrap();
    windows_left(b, 1).await;
    b.pane_closed().await;
    b.text_with(
        &format!("{} td[data-label=Status]", row("sf-prod")),
        "Active",
    )
    .await;
    b.text_with(
        &format!("{} td[data-label=Concurrency]", row("sf-prod")),
        "10",
    )
    .await;
    let sf = app.get("/v1/workspaces/acme/connections/sf-prod").await;
    assert_eq!(sf.body["status"], "active", "{}", sf.text);

    // Cancel during Save & authorize leaves nothing behind.
    b.click("#new-conn").await;
    b.choose("#f-app", "salesforce").await;
    b.fill("#f-name", "sf-cancelled").await;
    b.fill("#fld-c-client_id", salesforce::DEFAULT_CONSUMER_KEY)
        .await;
    b.fill("#fld-c-client_secret", salesforce::DEFAULT_CONSUMER_SECRET)
        .await;
    b.click("#pane-save").await;
    popup_window(b, &main).await;
    b.text_with("#pane-status", "pop-up window").await;
    b.click("#pane-cancel").await;
    b.pane_closed().await;
    windows_left(b, 1).await;
    let gone = app
        .get("/v1/workspaces/acme/connections/sf-cancelled")
        .await;
    assert_eq!(gone.status, 404, "{}", gone.text);

    // The green number changed; a click lists the application's connections.
    b.goto(&format!("{}/ui/credentials?ws=acme", app.url)).await;
    b.text_with("[data-app=salesforce] .count", "1").await;
    b.click("[data-app=salesforce]").await;
    b.text_with("#app-conns", "sf-prod").await;
    b.screenshot("credentials-1280").await;

    // A flow that uses the API-key connection.
    b.goto(&format!("{}/ui/flows?ws=acme", app.url)).await;
    b.click("#new-flow").await;
    b.fill("#flow-name", "nightly-sync").await;
    let id = conn_id(app, "crm-api").await;
    b.click(&format!("#flow-conns input[value=\"{id}\"]")).await;
    b.click("#flow-form button[type=submit]").await;
    b.text_with("#flow-list tr[data-name=nightly-sync]", "crm-api")
        .await;
    b.screenshot("flows-1280").await;

    // Deleting the connection the active flow uses is refused, naming the flow.
    b.goto(&format!("{}/ui/connections?ws=acme", app.url)).await;
    b.click(&format!("{} [data-action=delete]", row("crm-api")))
        .await;
    b.click(&format!("{} [data-action=confirm-delete]", row("crm-api")))
        .await;
    let refusal = b.text_with("tr.row-note", "nightly-sync").await;
    assert!(
        refusal.to_lowercase().contains("delete or update"),
        "{refusal}"
    );
    assert_eq!(
        app.get("/v1/workspaces/acme/connections/crm-api")
            .await
            .status,
        200
    );
    b.screenshot("connections-1280").await;

    // Verify re-checks a connection in place.
    b.click(&format!("{} [data-action=verify]", row("sf-prod")))
        .await;
    b.text_with("tr.row-note[data-for=sf-prod]", "Verified")
        .await;

    // Re-authorize through the popup again.
    b.click(&format!("{} [data-action=re-authorize]", row("sf-prod")))
        .await;
    let popup = popup_window(b, &main).await;
    b.client.switch_to_window(popup).await.unwrap();
    b.fill("input[name=username]", salesforce::DEFAULT_USERNAME)
        .await;
    b.fill("input[name=password]", salesforce::DEFAULT_PASSWORD)
        .await;
    let _ = b.find("button[name=approve]").await.click().await;
    b.client.switch_to_window(main.clone()).await.unwrap();
    windows_left(b, 1).await;
    b.text_with("tr.row-note[data-for=sf-prod]", "authorized and active")
        .await;

    // Edit: the pane comes back filled in; a new level is saved.
    b.click(&format!("{} [data-action=edit]", row("sf-prod")))
        .await;
    b.text_with("#pane-title", "Edit connection").await;
    b.click("#advanced > summary").await;
    b.until(
        "the stored level in the form",
        "return document.querySelector('#f-level').value === '10'",
    )
    .await;
    b.fill("#f-level", "12").await;
    b.click("#pane-save").await;
    b.pane_closed().await;
    b.text_with(
        &format!("{} td[data-label=Concurrency]", row("sf-prod")),
        "12",
    )
    .await;

    // A flow with a new connection made from the flow form (verified first, then selected).
    b.goto(&format!("{}/ui/flows?ws=acme", app.url)).await;
    b.click("#new-flow").await;
    b.fill("#flow-name", "weekly-report").await;
    b.click("#flow-new-conn").await;
    b.choose("#f-app", "generic-api-key").await;
    b.fill("#f-name", "reports-api").await;
    b.fill("#fld-s-base_url", &up.url).await;
    b.fill("#fld-c-api_key", "key-right-123").await;
    b.click("#pane-save").await;
    b.pane_closed().await;
    b.until(
        "the new connection to be selected",
        "return document.querySelectorAll('#flow-conns input:checked').length === 1",
    )
    .await;
    b.click("#flow-form button[type=submit]").await;
    b.text_with("#flow-list tr[data-name=weekly-report]", "reports-api")
        .await;

    // Once its flow is deactivated, the connection can be deleted.
    b.click("#flow-list tr[data-name=nightly-sync] [data-action=deactivate]")
        .await;
    b.text_with("#flow-list tr[data-name=nightly-sync]", "Inactive")
        .await;
    b.goto(&format!("{}/ui/connections?ws=acme", app.url)).await;
    b.click(&format!("{} [data-action=delete]", row("crm-api")))
        .await;
    b.click(&format!("{} [data-action=confirm-delete]", row("crm-api")))
        .await;
    b.until(
        "the deleted row to go",
        "return !document.querySelector('#conn-list tr[data-name=\"crm-api\"]')",
    )
    .await;
    assert_eq!(
        app.get("/v1/workspaces/acme/connections/crm-api")
            .await
            .status,
        404
    );

    // The audit log lists what happened.
    b.goto(&format!("{}/ui/audit?ws=acme", app.url)).await;
    b.text_with("#event-list", "Connection created").await;
    b.screenshot("audit-1280").await;

    // Phone width.
    b.client.set_window_size(375, 812).await.unwrap();
    b.goto(&format!("{}/ui/connections?ws=acme", app.url)).await;
    b.find(&row("sf-prod")).await;
    b.screenshot("connections-375").await;
    b.click("#new-conn").await;
    b.choose("#f-app", "salesforce").await;
    b.fill("#f-name", "sf-phone").await;
    b.screenshot("create-pane-375").await;
    b.click("#pane-cancel").await;
    b.pane_closed().await;
    b.goto(&format!("{}/ui/credentials?ws=acme", app.url)).await;
    b.text_with("[data-app=salesforce] .count", "1").await;
    b.screenshot("credentials-375").await;
    b.goto(&format!("{}/ui/flows?ws=acme", app.url)).await;
    b.find("#flow-list tr[data-name=nightly-sync]").await;
    b.screenshot("flows-375").await;

    // No script error and no Content-Security-Policy violation on the way.
    let console = b.console().await;
    let bad: Vec<&String> = console
        .iter()
        .filter(|m| {
            m.contains("Uncaught")
                || m.contains("Content Security Policy")
                || m.contains("Refused to")
        })
        .collect();
    assert!(bad.is_empty(), "console: {console:#?}");

    // Sign out.
    b.client.set_window_size(1280, 900).await.unwrap();
    b.click("form.signout button").await;
    b.find("#api_key").await;
}

async fn conn_id(app: &TestApp, name: &str) -> String {
    let c = app
        .get(&format!("/v1/workspaces/acme/connections/{name}"))
        .await;
    c.body["id"].as_str().expect("connection id").to_string()
}

fn cookie_from(resp: &reqwest::Response) -> (String, String) {
    let set = resp
        .headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .to_string();
    let value = set.split(';').next().unwrap().trim().to_string();
    (value, set)
}

async fn sign_in(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .post(format!("{}/ui/login", app.url))
        .header("origin", origin)
        .form(&[("api_key", app.admin_key.as_str())])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn ui_headers_session_cookie_and_csrf() {
    let app = spawn_app().await;
    let c = &app.client;

    // The UI's pages carry the strict headers; the API and the OAuth callback do not get them.
    let login = c.get(format!("{}/ui/login", app.url)).send().await.unwrap();
    assert_eq!(login.status(), 200);
    let h = login.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    let js = c
        .get(format!("{}/ui/assets/core.js", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let api = c.get(format!("{}/healthz", app.url)).send().await.unwrap();
    assert!(api.headers().get("content-security-policy").is_none());
    let cb = c
        .get(format!("{}/oauth/callback", app.url))
        .send()
        .await
        .unwrap();
    assert!(cb.headers().get("content-security-policy").is_none());
    let home = c.get(format!("{}/", app.url)).send().await.unwrap();
    assert!(home.status().is_redirection());
    let page = c
        .get(format!("{}/ui/connections", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        page.headers()["location"],
        "/ui/login",
        "signed out: to the sign-in page"
    );

    // Sign-in from another site is refused; a wrong key is refused.
    assert_eq!(sign_in(&app, "http://evil.example").await.status(), 403);
    let wrong = c
        .post(format!("{}/ui/login", app.url))
        .header("origin", &app.url)
        .form(&[("api_key", "lk_wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());

    let ok = sign_in(&app, &app.url).await;
    assert_eq!(ok.status(), 303);
    let (cookie, set) = cookie_from(&ok);
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set.contains(attr), "{attr} missing: {set}");
    }
    assert!(!set.contains("Secure"), "plain http: {set}");
    assert!(
        !set.contains(&app.admin_key),
        "the key is not in the cookie"
    );

    // The page and GET /ui/session give the CSRF token.
    let session: Value = c
        .get(format!("{}/ui/session", app.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let csrf = session["csrf_token"].as_str().unwrap().to_string();
    assert_eq!(session["admin"], true);
    let html = c
        .get(format!("{}/ui/connections", app.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains(&format!("<meta name=\"csrf-token\" content=\"{csrf}\">")));
    assert!(!html.contains("<script>"), "no inline script");

    // Reads work with the cookie alone; writes need the CSRF header.
    let read = c
        .get(format!("{}/v1/workspaces", app.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let create = |token: Option<&str>| {
        let mut r = c
            .post(format!("{}/v1/workspaces", app.url))
            .header("cookie", &cookie)
            .json(&json!({"slug": "acme"}));
        if let Some(t) = token {
            r = r.header("x-csrf-token", t);
        }
        r.send()
    };
    let refused = create(None).await.unwrap();
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "forbidden");
    assert!(body["message"].as_str().unwrap().contains("CSRF"), "{body}");
    assert!(
        body["hint"].is_string() && body["details"].is_object(),
        "{body}"
    );
    assert_eq!(create(Some("not-the-token")).await.unwrap().status(), 403);
    assert_eq!(create(Some(&csrf)).await.unwrap().status(), 201);

    // A tampered cookie is not a session.
    let mut tampered = cookie.clone().into_bytes();
    let i = tampered.len() - 6;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let bad = c
        .get(format!("{}/v1/workspaces", app.url))
        .header("cookie", String::from_utf8(tampered).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);

    // Another instance of the cluster opens the same cookie.
    let peer = start_peer(&app).await;
    let there = c
        .get(format!("{}/v1/workspaces/acme", peer.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(there.status(), 200);

    // Sign-out clears the cookie (and ends the session: see tests/trust.rs).
    let out = c
        .post(format!("{}/ui/logout", app.url))
        .header("cookie", &cookie)
        .header("origin", &app.url)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert!(cookie_from(&out).1.contains("Max-Age=0"));

    // Behind an https public URL the cookie is Secure.
    let https = spawn_app_with(|c| {
        c.public_url = Some(url::Url::parse("https://latchkey.example.com").unwrap())
    })
    .await;
    let r = sign_in(&https, "https://latchkey.example.com").await;
    assert_eq!(r.status(), 303);
    assert!(cookie_from(&r).1.contains("; Secure"));
}

/// A page an application could serve: its script tries to read the UI's session (with the
/// CSRF token in it) and a token through Latchkey's origin, and says what it got in the title.
const PROBE_PAGE: &str = r#"<!doctype html>
<html><head><title>probe:not-run</title></head><body>
<script>
(async () => {
  const out = {};
  for (const [name, url] of [
    ["session", "/ui/session"],
    ["token", "/v1/workspaces/acme/connections/site/token"],
  ]) {
    try {
      const r = await fetch(url, { credentials: "include" });
      out[name] = r.status + " " + (await r.text()).slice(0, 300);
    } catch (e) {
      out[name] = "failed: " + e;
    }
  }
  console.log("latchkey-probe " + JSON.stringify(out));
  document.title = "probe:ran " + JSON.stringify(out);
})();
</script></body></html>"#;

/// An application on loopback that answers every request with [`PROBE_PAGE`].
async fn start_probe_upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = axum::Router::new().fallback(|| async {
        (
            [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
            PROBE_PAGE,
        )
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    url
}

#[tokio::test]
async fn a_proxied_page_cannot_read_the_ui_session() {
    let Some(browser) = start_browser().await else {
        return;
    };
    let app = spawn_app().await;
    let upstream = start_probe_upstream().await;
    let outcome = browser
        .attempt("probe", probe_scenario(&browser, &app, &upstream))
        .await;
    browser.close(outcome).await;
}

/// Waits (bounded) until the probe page's script has reported, or the browser has said it
/// blocked the script; returns the title and every console message seen.
async fn probe_outcome(b: &Browser) -> (String, Vec<String>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut console = Vec::new();
    loop {
        console.extend(b.console().await);
        let title = b.client.title().await.unwrap_or_default();
        let blocked = console
            .iter()
            .any(|m| m.contains("sandboxed") || m.contains("Content Security Policy"));
        if title.starts_with("probe:ran") || blocked {
            return (title, console);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the probe page neither ran nor was blocked; title {title:?}, console {console:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn probe_scenario(b: &Browser, app: &TestApp, upstream: &str) {
    app.workspace("acme").await;
    let c = app
        .post(
            "/v1/workspaces/acme/connections",
            json!({"name": "site", "app": "generic-api-key", "verify": false,
                "settings": {"base_url": upstream}, "credentials": {"api_key": "k-987654321"}}),
        )
        .await;
    assert_eq!(c.status, 201, "{}", c.text);
    let proxy_key = app.workspace_key("acme", &["proxy"]).await;

    // Control: opened from the application's own origin, the page's script runs and reports.
    b.goto(&format!("{upstream}/page")).await;
    let (title, _) = probe_outcome(b).await;
    assert!(title.starts_with("probe:ran"), "{title}");

    // Signed in to the UI...
    b.goto(&format!("{}/ui/login", app.url)).await;
    b.sign_in(&app.admin_key).await;
    b.find("#ws-select").await;
    let _ = b.console().await;

    // ...the browser opens the same page through the proxy, on Latchkey's origin. (A browser
    // sends no API key by itself; here every request carries the proxy key, as a client that
    // opened the page with one would.)
    b.cdp("Network.enable", json!({})).await;
    b.cdp(
        "Network.setExtraHTTPHeaders",
        json!({"headers": {"Authorization": format!("Bearer {proxy_key}")}}),
    )
    .await;
    let proxied = format!("{}/v1/workspaces/acme/connections/site/proxy/page", app.url);
    b.goto(&proxied).await;
    let (title, console) = probe_outcome(b).await;
    b.cdp("Network.setExtraHTTPHeaders", json!({"headers": {}}))
        .await;
    assert!(
        !title.contains("csrf_token") && !title.contains("access_token"),
        "the proxied page read the UI session or a token: {title}"
    );
    assert!(
        !title.starts_with("probe:ran"),
        "the proxied page's script ran on Latchkey's origin: {title}"
    );
    assert!(
        !console.iter().any(|m| m.contains("latchkey-probe")),
        "{console:#?}"
    );

    // The UI session itself is untouched.
    b.goto(&format!("{}/ui/connections", app.url)).await;
    b.find("#ws-select").await;
}

/// The create pane's application picker: search, category filter, choosing an application
/// shows its fields; monograms carry the brand colour.
#[tokio::test]
async fn the_application_picker_searches_filters_and_chooses() {
    let Some(browser) = start_browser().await else {
        return;
    };
    let app = spawn_app().await;
    app.workspace("acme").await;
    let outcome = browser
        .attempt("picker", picker_scenario(&browser, &app))
        .await;
    browser.close(outcome).await;
}

async fn picker_scenario(b: &Browser, app: &TestApp) {
    b.goto(&format!("{}/", app.url)).await;
    b.sign_in(&app.admin_key).await;
    b.goto(&format!("{}/ui/connections?ws=acme", app.url)).await;
    b.click("#new-conn").await;
    b.until(
        "the picker to list the catalog",
        "return document.querySelectorAll('#app-picker button[data-app]').length >= 150",
    )
    .await;
    // Search narrows the list as one types.
    b.fill("#f-app-search", "zendesk").await;
    b.until(
        "the search to leave Zendesk alone",
        "const l = [...document.querySelectorAll('#app-picker button[data-app]')].map(b => b.dataset.app); return l.length === 1 && l[0] === 'zendesk'",
    )
    .await;
    // The category filter: storage only, searched within.
    b.fill("#f-app-search", "").await;
    b.choose("#f-app-category", "storage").await;
    b.until(
        "only storage applications",
        "const l = [...document.querySelectorAll('#app-picker button[data-app]')].map(b => b.dataset.app); return l.includes('box') && l.includes('dropbox') && !l.includes('hubspot')",
    )
    .await;
    b.screenshot("picker-storage-1280").await;
    // Monograms in the brand colour, and different for GitHub and GitLab.
    b.choose("#f-app-category", "").await;
    b.fill("#f-app-search", "git").await;
    b.until(
        "GitHub and GitLab with different monograms",
        "const m = id => document.querySelector(`#app-picker button[data-app=${id}] .monogram`); return m('github') && m('gitlab') && m('github').textContent !== m('gitlab').textContent && getComputedStyle(m('github')).backgroundColor === 'rgb(24, 23, 23)'",
    )
    .await;
    // Choosing Zendesk shows its own fields: the subdomain its URLs need, its scopes.
    b.fill("#f-app-search", "zendesk").await;
    b.click("#app-picker button[data-app=zendesk]").await;
    b.until(
        "the select to follow the picker",
        "return document.querySelector('#f-app').value === 'zendesk'",
    )
    .await;
    b.find("#fld-s-subdomain").await;
    b.find("#fld-c-client_id").await;
    let help = b.text_with("#f-app-help", "Zendesk").await;
    assert!(help.contains("tickets"), "{help}");
    b.screenshot("picker-chosen-1280").await;
    // A service account: the key file is chosen with a file picker and read into the form.
    b.fill("#f-app-search", "bigquery").await;
    b.click("#app-picker button[data-app=google-bigquery]")
        .await;
    b.choose("#f-mode", "service_account").await;
    b.find("#fld-c-key_json").await;
    b.find("#fld-s-subject").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("etl-reader.json");
    std::fs::write(
        &path,
        serde_json::json!({"type": "service_account", "client_email": "etl@p.iam.gserviceaccount.com",
            "private_key": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
            "token_uri": "https://oauth2.googleapis.com/token"})
        .to_string(),
    )
    .unwrap();
    b.find("#fld-c-key_json-file")
        .await
        .send_keys(&path.display().to_string())
        .await
        .expect("choose the key file");
    b.until(
        "the key file to be read into the form",
        "const v = document.querySelector('#fld-c-key_json').value; return v.includes('service_account') && v.includes('etl@p.iam')",
    )
    .await;
    b.until(
        "no OAuth client fields for a service account",
        "return !document.querySelector('#fld-c-client_id') && !document.querySelector('#fld-c-client_secret')",
    )
    .await;
}
