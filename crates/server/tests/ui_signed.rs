//! The signed modes in the create pane of a real browser (headless Chromium): a NetSuite
//! connection by token-based authentication and an Amazon S3 connection by access key, each
//! checked by the counterpart that verifies its signature (oauthlib, botocore), and a Trello
//! connection authorized through the popup window (OAuth 1.0a three-legged).

#[path = "ui/browser.rs"]
#[allow(dead_code)]
mod browser;
mod support {
    pub mod pyserver;
}

use browser::{popup_window, start_browser, windows_left, Browser};
use futures::FutureExt;
use latchkey_core::outbound::Rewrites;
use latchkey_testkit::{spawn_app_with, TestApp};
use serde_json::json;
use std::time::Duration;
use support::pyserver::{self, PyServer};

const CONSUMER_KEY: &str = "uiconsumerkey0123456789abcdef";
const CONSUMER_SECRET: &str = "uiconsumersecret-9f8e7d6c5b4a";
const TOKEN_ID: &str = "uitokenid0123456789abcdefabcd";
const TOKEN_SECRET: &str = "uitokensecret-1a2b3c4d5e6f7a8b";
const TRELLO_KEY: &str = "uitrellokey0123456789abcdef01";
const TRELLO_SECRET: &str = "uitrellosecret-5e6f7a8b9c0d1e";
const AKID: &str = "AKIALATCHKEYUITEST01";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYLATCHKEYUI";

fn row(name: &str) -> String {
    format!("#conn-list tr[data-name=\"{name}\"] td[data-label=Status]")
}

#[tokio::test]
async fn signed_modes_in_the_create_pane() {
    let (Some(py_oauth), Some(py_aws)) =
        (pyserver::python("oauthlib"), pyserver::python("botocore"))
    else {
        return;
    };
    let Some(browser) = start_browser().await else {
        return;
    };
    let provider = pyserver::start(
        &py_oauth,
        "oauth1_provider.py",
        &json!({"clients": {CONSUMER_KEY: CONSUMER_SECRET, TRELLO_KEY: TRELLO_SECRET},
            "tokens": {TOKEN_ID: [CONSUMER_KEY, TOKEN_SECRET]}}),
    );
    let aws = pyserver::start(
        &py_aws,
        "sigv4_upstream.py",
        &json!({"keys": {AKID: {"secret": SECRET, "session_token": null}}}),
    );
    let rewrites = format!(
        "https://1234567-sb1.suitetalk.api.netsuite.com={u},https://trello.com={u},https://api.trello.com={u}",
        u = provider.url
    );
    let app = spawn_app_with(|c| c.outbound_rewrites = Rewrites::parse(&rewrites).unwrap()).await;
    app.workspace("acme").await;
    let outcome = std::panic::AssertUnwindSafe(scenario(&browser, &app, &aws))
        .catch_unwind()
        .await;
    if outcome.is_err() {
        browser.screenshot("signed-failure").await;
        browser.print_console().await;
    }
    let Browser {
        client, mut driver, ..
    } = browser;
    let _ = tokio::time::timeout(Duration::from_secs(20), client.close()).await;
    let _ = driver.kill().await;
    drop(provider);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn scenario(b: &Browser, app: &TestApp, aws: &PyServer) {
    b.goto(&format!("{}/", app.url)).await;
    b.sign_in(&app.admin_key).await;
    b.goto(&format!("{}/ui/connections?ws=acme", app.url)).await;

    // NetSuite: token-based authentication, the four fields and the signature method.
    b.click("#new-conn").await;
    b.choose("#f-app", "netsuite").await;
    b.fill("#f-name", "erp").await;
    let mode = b.find("#f-mode-static").await.text().await.unwrap();
    assert!(mode.contains("OAuth 1.0a token"), "{mode}");
    let methods = b
        .find("#fld-s-signature_method")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        methods.contains("HMAC-SHA256") && methods.contains("HMAC-SHA1"),
        "{methods}"
    );
    b.fill("#fld-s-account_id", "1234567-sb1").await;
    b.fill("#fld-c-consumer_key", CONSUMER_KEY).await;
    b.fill("#fld-c-consumer_secret", CONSUMER_SECRET).await;
    b.fill("#fld-c-token_id", TOKEN_ID).await;
    b.fill("#fld-c-token_secret", "uitokensecret-wrong-000000000")
        .await;
    b.screenshot("create-pane-netsuite-1280").await;
    let save = b.find("#pane-save").await;
    assert_eq!(save.text().await.unwrap(), "Save & check");
    save.click().await.unwrap();
    let shown = b.text_with("#pane-error", "401").await;
    assert!(shown.contains("invalid_signature"), "{shown}");
    b.fill("#fld-c-token_secret", TOKEN_SECRET).await;
    b.click("#pane-save").await;
    b.pane_closed().await;
    b.text_with(&row("erp"), "Active").await;

    // Amazon S3 by access key, at an S3-compatible endpoint.
    b.click("#new-conn").await;
    b.choose("#f-app", "amazon-s3").await;
    b.fill("#f-name", "files").await;
    let mode = b.find("#f-mode-static").await.text().await.unwrap();
    assert!(mode.contains("Signature Version 4"), "{mode}");
    b.fill("#fld-s-base_url", &aws.url).await;
    b.fill("#fld-c-access_key_id", AKID).await;
    b.fill("#fld-c-secret_access_key", SECRET).await;
    b.click("#pane-save").await;
    b.pane_closed().await;
    b.text_with(&row("files"), "Active").await;

    // Trello: Save & authorize opens the provider in a popup, which approves and closes.
    b.click("#new-conn").await;
    b.choose("#f-app", "trello").await;
    b.fill("#f-name", "boards").await;
    b.fill("#fld-c-consumer_key", TRELLO_KEY).await;
    b.fill("#fld-c-consumer_secret", TRELLO_SECRET).await;
    let main = b.client.window().await.unwrap();
    let save = b.find("#pane-save").await;
    assert_eq!(save.text().await.unwrap(), "Save & authorize");
    save.click().await.unwrap();
    let _ = popup_window(b, &main).await;
    windows_left(b, 1).await;
    b.client.switch_to_window(main).await.unwrap();
    b.pane_closed().await;
    b.text_with(&row("boards"), "Active").await;
    b.screenshot("signed-connections-1280").await;

    let list = app.get("/v1/workspaces/acme/connections").await;
    for s in [CONSUMER_SECRET, TOKEN_SECRET, TRELLO_SECRET, SECRET] {
        assert!(!list.text.contains(s));
    }
}
