//! What a newcomer ran into in the web UI, each checked in the browser: Cancel during a slow
//! "Save & check" leaves nothing, messages of the create pane are where the eye is and take
//! the focus, required markers tell the truth, no jargon, sandbox and database defaults, a
//! connection made for a cancelled flow goes away, loading states, layout at 375 px, acting
//! from the Credentials page, editing flows, and the audit log's filters and refused attempts.

use crate::browser::{popup_window, salesforce_setup, start_browser, windows_left, Browser};
use latchkey_testkit::salesforce::{self};
use latchkey_testkit::upstream::Upstream;
use latchkey_testkit::TestApp;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn a_newcomer_finds_the_ui_clear() {
    let Some(browser) = start_browser().await else {
        return;
    };
    let (_sim, app, up) = salesforce_setup().await;
    let outcome = browser
        .attempt("newcomer", scenario(&browser, &app, &up))
        .await;
    browser.close(outcome).await;
}

async fn js(b: &Browser, script: &str) -> Value {
    b.client.execute(script, vec![]).await.expect("script runs")
}

/// The page's visible text has none of the words a newcomer should not meet.
async fn no_jargon(b: &Browser, page: &str) {
    let text = js(b, "return document.body.innerText").await;
    let text = text.as_str().unwrap_or_default();
    for bad in [
        "`",
        "authorize_url",
        "GET /v1",
        "PUT /v1",
        "key_",
        "connection.created",
    ] {
        assert!(!text.contains(bad), "{page} shows `{bad}`:\n{text}");
    }
}

async fn conn_count(app: &TestApp) -> usize {
    app.get("/v1/workspaces/acme/connections").await.body["items"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0)
}

async fn scenario(b: &Browser, app: &TestApp, up: &Upstream) {
    app.workspace("acme").await;
    b.client.set_window_size(375, 812).await.unwrap();
    b.goto(&format!("{}/ui/login", app.url)).await;
    b.screenshot("login-375").await;
    b.client.set_window_size(1280, 900).await.unwrap();
    b.sign_in(&app.admin_key).await;
    b.until(
        "the workspace to be selected",
        "return document.querySelector('#ws-select').value === 'acme'",
    )
    .await;

    // Loading: the list says so while its answer is on the way.
    let shown = js(
        b,
        "const f = window.fetch; window.fetch = (...a) => new Promise((r) => setTimeout(r, 1500)).then(() => f(...a)); \
         document.querySelector('#filters').dispatchEvent(new Event('change')); \
         const l = document.querySelector('#conn-list .loading'); \
         return !!l && l.textContent.includes('Loading connections') && document.querySelector('#conn-list').getAttribute('aria-busy') === 'true';",
    )
    .await;
    assert_eq!(shown, true, "no loading state while the list loads");
    b.text_with("#conn-list", "No connections yet").await;
    assert_eq!(
        js(
            b,
            "return document.querySelector('#conn-list').hasAttribute('aria-busy')"
        )
        .await,
        false
    );
    b.goto(&format!("{}/ui/connections?ws=acme", app.url)).await;

    // Required markers: Name has its * and an inline error; the verification path is in view.
    b.click("#new-conn").await;
    b.choose("#f-app", "generic-api-key").await;
    let name_label = b.find("label[for=f-name]").await.text().await.unwrap();
    assert!(name_label.contains('*'), "{name_label}");
    b.find("#fld-s-verify_path").await; // shown without opening Advanced settings
    assert_eq!(
        js(b, "return document.querySelector('#advanced').open").await,
        false
    );
    b.click("#pane-save").await;
    let err = b.text_with("#f-name-err", "Name is required").await;
    assert!(!err.is_empty());
    assert_eq!(
        js(b, "return document.activeElement.id").await,
        "f-name",
        "the focus goes to the missing name"
    );

    // A concurrency level out of range: said next to Save, with the focus.
    b.fill("#f-name", "crm-api").await;
    b.click("#advanced > summary").await;
    b.fill("#f-level", "30").await;
    b.click("#pane-save").await;
    b.text_with("#pane-error", "1 to 25").await;
    b.until(
        "the level error to take the focus",
        "return document.activeElement === document.querySelector('#pane-error')",
    )
    .await;
    b.fill("#f-level", "5").await;

    // A failed check: the error is on screen, next to Save, and has the focus (375 px too).
    for width in [1280u32, 375] {
        b.client.set_window_size(width, 812).await.unwrap();
        b.fill("#f-name", "crm-api").await;
        b.fill("#fld-s-base_url", &up.url).await;
        b.fill("#fld-c-api_key", "key-wrong").await;
        b.click("#pane-save").await;
        b.text_with("#pane-error", "401").await;
        b.until(
            "the error to take the focus, in view",
            "const e = document.querySelector('#pane-error'); const r = e.getBoundingClientRect(); \
             return document.activeElement === e && r.top >= 0 && r.bottom <= window.innerHeight;",
        )
        .await;
        no_jargon(b, "the create pane").await;
        b.screenshot(&format!("create-pane-error-{width}")).await;
    }
    b.client.set_window_size(1280, 900).await.unwrap();

    // Cancel during a 4-second "Save & check", pressed after 1 s: nothing is left behind.
    up.set_delay(Duration::from_secs(4));
    b.fill("#f-name", "slow-api").await;
    b.fill("#fld-c-api_key", "key-right-123").await;
    let hits = up.hits();
    b.click("#pane-save").await;
    b.text_with("#pane-status", "Checking").await;
    b.until(
        "the progress to take the focus",
        "return document.activeElement === document.querySelector('#pane-status')",
    )
    .await;
    b.screenshot("create-pane-checking-1280").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    b.click("#pane-cancel").await;
    b.pane_closed().await;
    // Until the check would have answered, and a little more.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while up.hits() == hits && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    up.set_delay(Duration::ZERO);
    assert_eq!(
        app.get("/v1/workspaces/acme/connections/slow-api")
            .await
            .status,
        404,
        "Cancel left the connection behind"
    );
    assert_eq!(conn_count(app).await, 0);

    // A working connection, then a database one (never proxied, never a lender).
    let ok = app
        .post(
            "/v1/workspaces/acme/connections",
            json!({"name": "crm-api", "app": "generic-api-key",
                "settings": {"base_url": up.url}, "credentials": {"api_key": "key-right-123"}}),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    let db = app
        .post(
            "/v1/workspaces/acme/connections",
            json!({"name": "warehouse-db", "app": "postgres", "verify": false,
                "credentials": {"host": "db.internal", "port": 5432, "database": "sales",
                    "username": "reporter", "password": "pw-Secret-77"}}),
        )
        .await;
    assert_eq!(db.status, 201, "{}", db.text);
    let db_id = db.body["id"].as_str().unwrap().to_string();
    b.goto(&format!("{}/ui/connections?ws=acme", app.url)).await;
    let cell = b
        .text_with(
            "#conn-list tr[data-name=\"warehouse-db\"] td[data-label=Concurrency]",
            "not proxied",
        )
        .await;
    assert!(!cell.chars().any(|c| c.is_ascii_digit()), "{cell}");
    b.text_with(
        "#conn-list tr[data-name=\"warehouse-db\"]",
        "reporter@db.internal:5432/sales",
    )
    .await;
    b.click("#new-conn").await;
    b.choose("#f-app", "generic-api-key").await;
    b.click("#advanced > summary").await;
    b.until(
        "the lenders to be listed",
        "return document.querySelectorAll('#f-borrow option').length >= 2",
    )
    .await;
    let offered = js(
        b,
        &format!("return !!document.querySelector('#f-borrow option[value=\"{db_id}\"]')"),
    )
    .await;
    assert_eq!(offered, false, "a database is offered as a lender");
    b.choose("#f-app", "postgres").await;
    b.until(
        "no concurrency for a database",
        "return document.querySelector('#level-field').hidden && document.querySelector('#borrow-field').hidden",
    )
    .await;

    // A Sandbox account goes under the sandbox environment.
    b.choose("#f-app", "salesforce").await;
    b.find("#fld-s-account_type").await;
    assert_eq!(
        js(b, "return document.querySelector('#f-env').value").await,
        "production"
    );
    b.choose("#fld-s-account_type", "sandbox").await;
    b.until(
        "the environment to follow the account type",
        "return document.querySelector('#f-env').value === 'sandbox'",
    )
    .await;
    // The consumer key and secret are required while the workspace has no OAuth client.
    for f in ["client_id", "client_secret"] {
        let label = b
            .find(&format!("#fld-c-{f}-label"))
            .await
            .text()
            .await
            .unwrap();
        assert!(
            label.contains('*') && !label.contains("optional"),
            "{label}"
        );
    }
    b.click("#pane-cancel").await;
    b.pane_closed().await;
    let put = app
        .client
        .put(format!(
            "{}/v1/workspaces/acme/apps/salesforce/oauth-client",
            app.url
        ))
        .bearer_auth(&app.admin_key)
        .json(&json!({"client_id": salesforce::DEFAULT_CONSUMER_KEY,
            "client_secret": salesforce::DEFAULT_CONSUMER_SECRET}))
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    b.click("#new-conn").await;
    b.choose("#f-app", "salesforce").await;
    let label = b.text_with("#fld-c-client_id-label", "optional").await;
    assert!(!label.contains('*'), "{label}");

    // A denied authorization: its hint is said once.
    let main = b.client.window().await.unwrap();
    b.fill("#f-name", "sf-denied").await;
    b.click("#pane-save").await;
    let popup = popup_window(b, &main).await;
    b.client.switch_to_window(popup).await.unwrap();
    b.fill("input[name=username]", salesforce::DEFAULT_USERNAME)
        .await;
    b.fill("input[name=password]", salesforce::DEFAULT_PASSWORD)
        .await;
    let _ = b.find("button[name=deny]").await.click().await;
    b.client.switch_to_window(main.clone()).await.unwrap();
    let shown = b.text_with("#pane-error", "Deny").await;
    assert_eq!(
        shown.matches("clicked Deny").count(),
        1,
        "the hint is repeated: {shown}"
    );
    b.until(
        "the denial to take the focus",
        "return document.activeElement === document.querySelector('#pane-error')",
    )
    .await;
    no_jargon(b, "the denied authorization").await;
    b.screenshot("create-pane-denied-1280").await;
    // Close the sign-in window if it stayed open; Cancel deletes the pending connection.
    if let Ok(handles) = b.client.windows().await {
        for h in handles.into_iter().filter(|h| *h != main) {
            b.client.switch_to_window(h).await.unwrap();
            let _ = b.client.close_window().await;
        }
        b.client.switch_to_window(main.clone()).await.unwrap();
    }
    windows_left(b, 1).await;
    b.click("#pane-cancel").await;
    b.pane_closed().await;
    assert_eq!(
        app.get("/v1/workspaces/acme/connections/sf-denied")
            .await
            .status,
        404
    );

    // A pending connection's hint is in plain words.
    let pending = app
        .post(
            "/v1/workspaces/acme/connections",
            json!({"name": "sf-later", "app": "salesforce", "auth_mode": "oauth2_code"}),
        )
        .await;
    assert_eq!(pending.status, 201, "{}", pending.text);
    b.goto(&format!("{}/ui/connections?ws=acme", app.url)).await;
    b.text_with(
        "#conn-list tr[data-name=\"sf-later\"]",
        "authorization link",
    )
    .await;
    no_jargon(b, "the connections page").await;

    // A connection made for a flow whose form is then cancelled goes away.
    b.goto(&format!("{}/ui/flows?ws=acme", app.url)).await;
    b.click("#new-flow").await;
    b.fill("#flow-name", "abandoned").await;
    b.click("#flow-new-conn").await;
    b.choose("#f-app", "generic-api-key").await;
    b.fill("#f-name", "made-for-flow").await;
    b.fill("#fld-s-base_url", &up.url).await;
    b.fill("#fld-c-api_key", "key-right-123").await;
    b.click("#pane-save").await;
    b.pane_closed().await;
    b.until(
        "the new connection to be selected",
        "return document.querySelectorAll('#flow-conns input:checked').length === 1",
    )
    .await;
    assert_eq!(
        app.get("/v1/workspaces/acme/connections/made-for-flow")
            .await
            .status,
        200
    );
    b.click("#flow-cancel").await;
    b.until(
        "the flow form to close",
        "return document.querySelector('#flow-create').hidden",
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while app
        .get("/v1/workspaces/acme/connections/made-for-flow")
        .await
        .status
        != 404
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the connection made for the cancelled flow survived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Flows can be edited.
    let flow = app
        .post(
            "/v1/workspaces/acme/flows",
            json!({"name": "nightly-sync", "connections": []}),
        )
        .await;
    assert_eq!(flow.status, 201, "{}", flow.text);
    b.goto(&format!("{}/ui/flows?ws=acme", app.url)).await;
    b.click("#flow-list tr[data-name=nightly-sync] [data-action=edit]")
        .await;
    b.text_with("#flow-create-title", "Edit flow").await;
    b.fill("#flow-name", "nightly-account-sync").await;
    let crm = app.get("/v1/workspaces/acme/connections/crm-api").await;
    let crm_id = crm.body["id"].as_str().unwrap().to_string();
    b.click(&format!("#flow-conns input[value=\"{crm_id}\"]"))
        .await;
    b.click("#flow-submit").await;
    b.text_with("#flow-list tr[data-name=nightly-account-sync]", "crm-api")
        .await;
    assert_eq!(
        app.get("/v1/workspaces/acme/flows/nightly-account-sync")
            .await
            .body["connections"][0]["name"],
        "crm-api"
    );

    // The Credentials page: distinct monograms, acting on a connection, counts explained.
    b.goto(&format!("{}/ui/credentials?ws=acme", app.url)).await;
    b.find("[data-app=generic-basic]").await;
    let distinct = js(
        b,
        "const m = [...document.querySelectorAll('[data-monogram]')].map((e) => e.dataset.monogram); \
         return m.length > 3 && new Set(m).size === m.length;",
    )
    .await;
    assert_eq!(distinct, true, "two applications share a monogram");
    b.text_with("main .page-head", "revoked connections are not counted")
        .await;
    b.click("[data-app=postgres]").await;
    b.click("#app-conns li[data-name=\"warehouse-db\"] [data-action=delete]")
        .await;
    b.click("#app-conns li[data-name=\"warehouse-db\"] [data-action=confirm-delete]")
        .await;
    b.text_with("#app-conns", "No connection").await;
    b.text_with("[data-app=postgres] .count", "0").await;
    assert_eq!(
        app.get("/v1/workspaces/acme/connections/warehouse-db")
            .await
            .status,
        404
    );

    // A refused delete (the flow uses the connection) is in the audit log, found by a filter.
    b.goto(&format!("{}/ui/connections?ws=acme", app.url)).await;
    let row = "#conn-list tr[data-name=\"crm-api\"]";
    b.click(&format!("{row} [data-action=delete]")).await;
    b.click(&format!("{row} [data-action=confirm-delete]"))
        .await;
    b.text_with("tr.row-note", "nightly-account-sync").await;

    // A long dashed name, to see that names do not break at their dashes.
    let long = app
        .post(
            "/v1/workspaces/acme/connections",
            json!({"name": "salesforce-production-eu-west-accounts", "app": "generic-api-key",
                "settings": {"base_url": up.url}, "credentials": {"api_key": "key-right-123"}}),
        )
        .await;
    assert_eq!(long.status, 201, "{}", long.text);

    // The toast never covers a row's buttons (1280 and 375 px).
    for width in [1280u32, 375] {
        b.client.set_window_size(width, 812).await.unwrap();
        b.goto(&format!("{}/ui/connections?ws=acme", app.url)).await;
        b.find("#conn-list tr[data-name=\"sf-later\"]").await;
        js(b, "document.querySelector('#toast').textContent = 'Connection “x” deleted'; document.querySelector('#toast').hidden = false; return true;").await;
        // Wherever the page is scrolled, no button in view overlaps the toast.
        let covered = js(
            b,
            "const t = document.querySelector('#toast').getBoundingClientRect(); const out = []; \
             for (const y of [0, document.documentElement.scrollHeight]) { window.scrollTo(0, y); \
               for (const btn of document.querySelectorAll('#conn-list [data-action]')) { \
                 const r = btn.getBoundingClientRect(); \
                 if (r.bottom < 0 || r.top > window.innerHeight) continue; \
                 if (r.left < t.right && t.left < r.right && r.top < t.bottom && t.top < r.bottom) out.push(btn.getAttribute('aria-label')); } } \
             window.scrollTo(0, 0); return out;",
        )
        .await;
        assert_eq!(covered, json!([]), "covered at {width} px");
        // Names stay on one line.
        let broken = js(
            b,
            "return [...document.querySelectorAll('.name')].filter((n) => n.getClientRects().length !== 1 || \
               n.getBoundingClientRect().height > 1.8 * parseFloat(getComputedStyle(n).fontSize)).map((n) => n.textContent);",
        )
        .await;
        assert_eq!(broken, json!([]), "names wrap at {width} px");
        b.screenshot(&format!("connections-newcomer-{width}")).await;
    }

    // The audit log in words, with filters; nothing clipped at 375 px.
    for width in [1280u32, 375] {
        b.client.set_window_size(width, 812).await.unwrap();
        b.goto(&format!("{}/ui/audit?ws=acme", app.url)).await;
        b.text_with("#event-list", "Connection created").await;
        b.text_with("#event-list", "API key").await;
        no_jargon(b, "the audit page").await;
        let clipped = js(
            b,
            "const over = [...document.querySelectorAll('#event-list td, #event-list dd, #event-list dt')] \
               .filter((e) => e.scrollWidth > e.clientWidth + 1).map((e) => e.textContent); \
             if (document.documentElement.scrollWidth > window.innerWidth) over.push('page wider than the window'); \
             return over;",
        )
        .await;
        assert_eq!(clipped, json!([]), "clipped at {width} px");
        b.screenshot(&format!("audit-newcomer-{width}")).await;
        if width == 375 {
            b.screenshot("audit-375").await; // the other test keeps audit-1280
        }
        b.choose("#flt-what", "refused").await;
        b.text_with("#event-list", "Connection delete refused")
            .await;
        b.until(
            "only refused attempts",
            "return [...document.querySelectorAll('#event-list tbody tr')].every((r) => r.dataset.refused === 'true')",
        )
        .await;
        b.screenshot(&format!("audit-refused-{width}")).await;
    }
    b.client.set_window_size(1280, 900).await.unwrap();

    // A long workspace name fits its switcher.
    let long = app
        .post(
            "/v1/workspaces",
            json!({"slug": "globex", "name": "Globex Corporation Europe"}),
        )
        .await;
    assert_eq!(long.status, 201, "{}", long.text);
    b.goto(&format!("{}/ui/connections?ws=globex", app.url))
        .await;
    b.until(
        "the long workspace to be selected",
        "return document.querySelector('#ws-select').value === 'globex'",
    )
    .await;
    b.screenshot("workspace-switcher-1280").await;
    b.client.set_window_size(375, 812).await.unwrap();
    b.screenshot("workspace-switcher-375").await;
    b.client.set_window_size(1280, 900).await.unwrap();

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
}
