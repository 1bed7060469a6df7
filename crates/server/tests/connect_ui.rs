//! The hosted connect page in a real browser (headless Chromium through chromedriver): a
//! platform's page served from another loopback origin loads `/connect/sdk.js`, opens the connect
//! page in a pop-up window and in an iframe, and receives the connection id when an API-key
//! connection is checked and a Salesforce authorization completes through the simulator. A page
//! from an origin the session does not allow receives nothing. Every wait is bounded;
//! screenshots at 1280 px and 375 px go to `target/ui-screenshots/`.

#[path = "ui/browser.rs"]
#[allow(dead_code)]
mod browser;

use browser::{popup_window, salesforce_setup, start_browser, windows_left, Browser};
use latchkey_testkit::salesforce::{self};
use latchkey_testkit::upstream::Upstream;
use latchkey_testkit::TestApp;
use reqwest::Method;
use serde_json::{json, Value};

/// The platform's own page: loads the SDK from Latchkey and records what reaches it.
fn host_page(latchkey: &str) -> String {
    format!(
        r##"<!doctype html><html><head><meta charset="utf-8"><title>Platform</title></head><body>
<h1>Platform settings</h1>
<button id="go-popup" type="button">Connect in a window</button>
<button id="go-frame" type="button">Connect here</button>
<div id="frame-box"></div>
<pre id="result"></pre>
<script src="{latchkey}/connect/sdk.js"></script>
<script>
window.received = [];
window.addEventListener("message", function (ev) {{ window.received.push({{origin: ev.origin, data: ev.data}}); }});
function start(container) {{
  window.outcome = null;
  Latchkey.connect({{connectUrl: window.connectUrl, container: container}}).then(
    function (r) {{ window.outcome = {{ok: true, connectionId: r.connectionId, app: r.app}}; }},
    function (e) {{ window.outcome = {{ok: false, code: e.code, message: e.message}}; }});
}}
document.getElementById("go-popup").addEventListener("click", function () {{ start(); }});
document.getElementById("go-frame").addEventListener("click", function () {{ start("#frame-box"); }});
</script></body></html>"##
    )
}

/// Serves the host page on a loopback port of its own; answers its base URL.
async fn start_host(latchkey: String) -> String {
    let html = host_page(&latchkey);
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let h = html.clone();
            async move { axum::response::Html(h) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://127.0.0.1:{port}")
}

async fn new_session(app: &TestApp, apps: &[&str], origin: &str, user: &str) -> Value {
    let a = app
        .call(
            Method::POST,
            "/v1/workspaces/acme/connect-sessions",
            Some(json!({
                "end_user": {"id": user, "display_name": "Jane Doe"},
                "organization": {"id": "org-9"},
                "allowed_apps": apps,
                "allowed_origins": [origin],
            })),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    a.body
}

#[tokio::test]
async fn a_platform_page_connects_accounts_through_the_sdk() {
    let Some(browser) = start_browser().await else {
        return;
    };
    let (_sim, app, up) = salesforce_setup().await;
    let host = start_host(app.url.clone()).await;
    let outcome = browser
        .attempt("connect", scenario(&browser, &app, &up, &host))
        .await;
    browser.close(outcome).await;
}

async fn outcome(b: &Browser) -> Value {
    b.until("Latchkey.connect to settle", "return !!window.outcome")
        .await;
    b.client
        .execute("return window.outcome", vec![])
        .await
        .unwrap()
}

async fn conn_of(app: &TestApp, user: &str) -> Value {
    let list = app
        .get(&format!(
            "/v1/workspaces/acme/connections?end_user_id={user}"
        ))
        .await;
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", list.text);
    items[0].clone()
}

async fn scenario(b: &Browser, app: &TestApp, up: &Upstream, host: &str) {
    app.workspace("acme").await;
    let logo = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
    let branded = app
        .patch(
            "/v1/workspaces/acme",
            json!({"branding": {"display_name": "Acme Cloud", "primary_color": "#7a1fa2", "logo_url": logo}}),
        )
        .await;
    assert_eq!(branded.status, 200, "{}", branded.text);
    let put = app
        .call(
            Method::PUT,
            "/v1/workspaces/acme/apps/salesforce/oauth-client",
            Some(json!({"client_id": salesforce::DEFAULT_CONSUMER_KEY,
                        "client_secret": salesforce::DEFAULT_CONSUMER_SECRET})),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);

    // 1. A pop-up window: the picker, the pane's fields and check, then the id reaches the host.
    let s = new_session(
        app,
        &["generic-api-key", "salesforce", "postgres"],
        host,
        "u-popup",
    )
    .await;
    b.goto(host).await;
    let main = b.client.window().await.unwrap();
    b.client
        .execute(
            "window.connectUrl = arguments[0]",
            vec![s["connect_url"].clone()],
        )
        .await
        .unwrap();
    b.click("#go-popup").await;
    let popup = popup_window(b, &main).await;
    // A message that does not come from the connect page's origin and window is ignored.
    b.client
        .execute(
            "window.postMessage({type: 'latchkey:connected', connection_id: 'conn_forged', app: 'x'}, '*')",
            vec![],
        )
        .await
        .unwrap();
    b.client.switch_to_window(popup.clone()).await.unwrap();
    b.text_with("#cx-for", "Acme Cloud").await;
    b.until(
        "the brand colour",
        "return getComputedStyle(document.documentElement).getPropertyValue('--primary').trim() === '#7a1fa2'",
    )
    .await;
    b.find("#cx-logo").await;
    b.find("[data-app=salesforce]").await;
    b.screenshot("connect-picker-1280").await;
    b.fill("#cx-search", "postgre").await;
    b.until(
        "the search to filter",
        "return document.querySelectorAll('#cx-apps [data-app]').length === 1 && !!document.querySelector('[data-app=postgres]')",
    )
    .await;
    b.fill("#cx-search", "rest api").await;
    b.click("[data-app=generic-api-key]").await;
    b.find("#fld-s-base_url").await;
    b.until(
        "the name, environment and pool fields to be hidden",
        "return !document.querySelector('#f-name').offsetParent && !document.querySelector('#f-env').offsetParent && !document.querySelector('#f-borrow').offsetParent",
    )
    .await;
    b.fill("#fld-s-base_url", &up.url).await;
    b.fill("#fld-c-api_key", "key-wrong").await;
    assert_eq!(
        b.find("#pane-save").await.text().await.unwrap(),
        "Save & check"
    );
    b.click("#pane-save").await;
    let shown = b.text_with("#pane-error", "401").await;
    assert!(shown.contains("Hint"), "{shown}");
    b.screenshot("connect-pane-error-1280").await;
    b.fill("#fld-c-api_key", "key-right-123").await;
    b.click("#pane-save").await;
    b.client.switch_to_window(main.clone()).await.unwrap();
    windows_left(b, 1).await;
    let got = outcome(b).await;
    let conn = conn_of(app, "u-popup").await;
    assert_eq!(got["ok"], true, "{got}");
    assert_eq!(got["connectionId"], conn["id"], "{got}");
    assert_eq!(got["app"], "generic-api-key");
    assert_eq!(conn["status"], "active");
    let received: Value = b
        .client
        .execute("return window.received", vec![])
        .await
        .unwrap();
    for m in received.as_array().unwrap() {
        if m["data"]["connection_id"] != "conn_forged" {
            assert_eq!(
                m["origin"],
                app.url.as_str(),
                "only Latchkey talks to the host: {m}"
            );
        }
    }

    // 2. An iframe: a Salesforce authorization through the simulator's login in a pop-up.
    let s = new_session(app, &["salesforce"], host, "u-frame").await;
    b.goto(host).await;
    b.client
        .execute(
            "window.connectUrl = arguments[0]",
            vec![s["connect_url"].clone()],
        )
        .await
        .unwrap();
    b.click("#go-frame").await;
    b.find("#frame-box iframe").await;
    b.client.enter_frame(0).await.unwrap();
    b.click("[data-app=salesforce]").await;
    b.find("#fld-s-account_type").await;
    let asks_client: Value = b
        .client
        .execute(
            "return !!document.querySelector('#fld-c-client_id')",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        asks_client, false,
        "the workspace's OAuth client is not the end user's business"
    );
    b.choose("#f-mode", "oauth2_code").await;
    assert_eq!(
        b.find("#pane-save").await.text().await.unwrap(),
        "Save & authorize"
    );
    b.click("#pane-save").await;
    let login = popup_window(b, &main).await;
    b.client.switch_to_window(login).await.unwrap();
    b.fill("input[name=username]", salesforce::DEFAULT_USERNAME)
        .await;
    b.fill("input[name=password]", salesforce::DEFAULT_PASSWORD)
        .await;
    let _ = b.find("button[name=approve]").await.click().await;
    b.client.switch_to_window(main.clone()).await.unwrap();
    windows_left(b, 1).await;
    let got = outcome(b).await;
    let conn = conn_of(app, "u-frame").await;
    assert_eq!(got["ok"], true, "{got}");
    assert_eq!(got["connectionId"], conn["id"], "{got}");
    assert_eq!(got["app"], "salesforce");
    assert_eq!(conn["status"], "active", "{conn}");
    b.until(
        "the SDK to remove the frame",
        "return !document.querySelector('#frame-box iframe')",
    )
    .await;

    // 3. A page of an origin the session does not allow (localhost is not 127.0.0.1): the
    //    connection is made, but nothing reaches that page.
    let s = new_session(app, &["generic-api-key"], host, "u-foreign").await;
    let foreign = host.replace("127.0.0.1", "localhost");
    b.goto(&foreign).await;
    b.client
        .execute(
            "window.connectUrl = arguments[0]",
            vec![s["connect_url"].clone()],
        )
        .await
        .unwrap();
    b.click("#go-popup").await;
    let popup = popup_window(b, &main).await;
    b.client.switch_to_window(popup).await.unwrap();
    b.client.set_window_size(375, 812).await.unwrap();
    b.find("[data-app=generic-api-key]").await;
    b.until(
        "no sideways scrolling at 375 px",
        "return document.documentElement.scrollWidth <= window.innerWidth",
    )
    .await;
    b.screenshot("connect-picker-375").await;
    b.click("[data-app=generic-api-key]").await;
    b.fill("#fld-s-base_url", &up.url).await;
    b.fill("#fld-c-api_key", "key-right-123").await;
    b.screenshot("connect-pane-375").await;
    b.click("#pane-save").await;
    b.client.switch_to_window(main.clone()).await.unwrap();
    windows_left(b, 1).await;
    let got = outcome(b).await;
    assert_eq!(got["ok"], false, "{got}");
    assert_eq!(got["code"], "closed", "{got}");
    assert_eq!(conn_of(app, "u-foreign").await["status"], "active");
    let received: Value = b
        .client
        .execute("return window.received", vec![])
        .await
        .unwrap();
    assert!(
        !received.to_string().contains("latchkey:connected"),
        "a page outside allowed_origins heard: {received}"
    );
    b.client.set_window_size(1280, 900).await.unwrap();

    // 4. A spent link and a forged one: pages that say so and offer nothing.
    b.goto(s["connect_url"].as_str().unwrap()).await;
    b.text_with("#cx-closed", "already used").await;
    b.goto(&format!("{}/connect/lkcs_{}", app.url, "A".repeat(43)))
        .await;
    b.text_with("#cx-closed", "not valid").await;
    let offers: Value = b
        .client
        .execute(
            "return document.querySelectorAll('button, input, a[href], form').length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(offers, 0, "a dead link offers nothing");
    b.screenshot("connect-invalid-1280").await;

    // 5. Reconnect: the same connection, its new key checked in the pane, back to active.
    let old = app
        .post(
            "/v1/workspaces/acme/connections",
            json!({"name": "crm-old", "app": "generic-api-key", "verify": false,
                   "settings": {"base_url": up.url}, "credentials": {"api_key": "key-old"}}),
        )
        .await;
    assert_eq!(old.status, 201, "{}", old.text);
    let r = app
        .post(
            "/v1/workspaces/acme/connect-sessions",
            json!({"end_user": {"id": "u-re"}, "connection": "crm-old", "allowed_origins": [host]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    b.goto(host).await;
    b.client
        .execute(
            "window.connectUrl = arguments[0]",
            vec![r.body["connect_url"].clone()],
        )
        .await
        .unwrap();
    b.click("#go-popup").await;
    let popup = popup_window(b, &main).await;
    b.client.switch_to_window(popup).await.unwrap();
    b.text_with("#cx-reconnect-title", "Reconnect").await;
    b.click("#cx-reconnect-go").await;
    b.fill("#fld-c-api_key", "key-right-123").await;
    b.click("#pane-save").await;
    b.client.switch_to_window(main.clone()).await.unwrap();
    windows_left(b, 1).await;
    let got = outcome(b).await;
    assert_eq!(got["ok"], true, "{got}");
    assert_eq!(got["connectionId"], old.body["id"], "{got}");
    let now = app.get("/v1/workspaces/acme/connections/crm-old").await;
    assert_eq!(now.body["status"], "active", "{}", now.text);

    // The operator's connections list shows whom each end user's connection is for.
    b.goto(&format!("{}/ui/login", app.url)).await;
    b.sign_in(&app.admin_key).await;
    b.goto(&format!("{}/ui/connections?ws=acme", app.url)).await;
    let name = conn_of(app, "u-frame").await["name"]
        .as_str()
        .unwrap()
        .to_string();
    let cell = b
        .text_with(
            &format!("#conn-list tr[data-name=\"{name}\"] td[data-label=Name]"),
            "for Jane Doe",
        )
        .await;
    assert!(cell.contains("org-9"), "{cell}");
    b.screenshot("connect-end-users-in-list-1280").await;

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
    assert!(bad.is_empty(), "{bad:#?}");
}
