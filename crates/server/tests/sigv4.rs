//! AWS Signature Version 4 (`aws_sigv4`) against a loopback upstream where botocore computes
//! the signature AWS expects: S3-style calls with a query and a body, temporary credentials
//! with a session token, the STS verification call and a form-encoded STS request (a service
//! whose paths are encoded twice), a wrong secret refused (and the verification saying so), bad
//! input, and no secret in answers or debug logs.

mod support {
    pub mod log_capture;
    pub mod pyserver;
}

use latchkey_core::outbound::Rewrites;
use latchkey_testkit::{send_for_json, spawn_app_with, TestApp};
use serde_json::{json, Value};
use support::log_capture::Capture;
use support::pyserver::{self, PyServer};

const AKID: &str = "AKIALATCHKEYTEST0001";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYLATCHKEY1";
const TEMP_AKID: &str = "ASIALATCHKEYTEMP0002";
const TEMP_SECRET: &str = "tEmPsEcReT/K7MDENG+bPxRfiCYLATCHKEY2";
const SESSION: &str = "IQoJb3JpZ2luX2VjEKnsessiontokenLATCHKEY//////////wEaCXVzLWVhc3QtMQ==";
const STS: &str = "https://sts.eu-west-1.amazonaws.com";
const SQS: &str = "https://sqs.eu-west-1.amazonaws.com";

async fn started() -> Option<(TestApp, PyServer)> {
    logs();
    let python = pyserver::python("botocore")?;
    let up = pyserver::start(
        &python,
        "sigv4_upstream.py",
        &json!({"keys": {
            AKID: {"secret": SECRET, "session_token": null},
            TEMP_AKID: {"secret": TEMP_SECRET, "session_token": SESSION},
        }}),
    );
    let rewrites = format!("{STS}={u},{SQS}={u}", u = up.url);
    let app = spawn_app_with(|c| c.outbound_rewrites = Rewrites::parse(&rewrites).unwrap()).await;
    app.workspace("acme").await;
    Some((app, up))
}

fn s3(name: &str, up: &PyServer, creds: Value) -> Value {
    json!({"name": name, "app": "amazon-s3", "auth_mode": "aws_sigv4",
        "settings": {"region": "us-east-1", "base_url": up.url}, "credentials": creds})
}

fn assert_no_secret(text: &str) {
    for s in [SECRET, TEMP_SECRET, SESSION] {
        assert!(!text.contains(s), "a secret is in: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_requests_are_signed_as_botocore_expects() {
    let Some((app, up)) = started().await else {
        return;
    };
    let c = app
        .post(
            "/v1/workspaces/acme/connections",
            s3(
                "bucket",
                &up,
                json!({"access_key_id": AKID, "secret_access_key": SECRET}),
            ),
        )
        .await;
    assert_eq!(c.status, 201, "{}", c.text);
    assert_eq!(c.body["status"], "active", "{}", c.text);
    assert_no_secret(&c.text);

    let (s, b, t) = send_for_json(app.proxy_request(
        reqwest::Method::GET,
        "bucket",
        "reports?list-type=2&prefix=2025%2F11%20q&max-keys=10",
    ))
    .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(b["service"], "s3");
    assert_eq!(b["region"], "us-east-1");
    assert_eq!(
        b["query"],
        json!({"list-type": "2", "prefix": "2025/11 q", "max-keys": "10"})
    );

    let (s, b, t) = send_for_json(
        app.proxy_request(reqwest::Method::PUT, "bucket", "reports/2025/summary.csv")
            .header("content-type", "text/csv")
            .header("x-amz-meta-owner", "finance")
            .body("month,total\n11,42\n"),
    )
    .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(b["method"], "PUT");
    assert_eq!(b["path"], "/reports/2025/summary.csv");
    assert_eq!(b["body"], "month,total\n11,42\n");
    assert_eq!(b["session_token"], false);

    // Temporary credentials: the session token goes as x-amz-security-token, signed.
    let c = app
        .post(
            "/v1/workspaces/acme/connections",
            s3("temp", &up, json!({"access_key_id": TEMP_AKID, "secret_access_key": TEMP_SECRET, "session_token": SESSION})),
        )
        .await;
    assert_eq!(c.status, 201, "{}", c.text);
    let (s, b, t) =
        send_for_json(app.proxy_request(reqwest::Method::GET, "temp", "reports?list-type=2")).await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(b["session_token"], true);
    for path in [
        "/v1/workspaces/acme/connections",
        "/v1/workspaces/acme/connections/temp",
        "/v1/workspaces/acme/events",
    ] {
        assert_no_secret(&app.get(path).await.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sts_verification_and_a_form_request_are_signed() {
    let Some((app, _up)) = started().await else {
        return;
    };
    // STS: the verification is GetCallerIdentity, signed for the service `sts`.
    let c = app
        .post(
            "/v1/workspaces/acme/connections",
            json!({"name": "sts", "app": "aws-sts", "auth_mode": "aws_sigv4",
                "settings": {"region": "eu-west-1"},
                "credentials": {"access_key_id": AKID, "secret_access_key": SECRET}}),
        )
        .await;
    assert_eq!(c.status, 201, "{}", c.text);
    assert_eq!(c.body["status"], "active", "{}", c.text);
    // SQS: a form-encoded query-protocol call to a queue URL (a service whose paths are
    // normalised and encoded twice in the signature).
    let c = app
        .post(
            "/v1/workspaces/acme/connections",
            json!({"name": "queue", "app": "amazon-sqs", "auth_mode": "aws_sigv4",
                "settings": {"region": "eu-west-1"},
                "credentials": {"access_key_id": AKID, "secret_access_key": SECRET}}),
        )
        .await;
    assert_eq!(c.status, 201, "{}", c.text);
    assert_eq!(c.body["status"], "active", "{}", c.text);
    let form = "Action=SendMessage&MessageBody=order%20%2342%20shipped&Version=2012-11-05";
    let (s, b, t) = send_for_json(
        app.proxy_request(
            reqwest::Method::POST,
            "queue",
            "123456789012/orders%20queue",
        )
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(form),
    )
    .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(b["service"], "sqs");
    assert_eq!(b["region"], "eu-west-1");
    assert_eq!(b["body"], form);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_refused_and_verification_says_so() {
    let Some((app, up)) = started().await else {
        return;
    };
    let wrong = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYWRONGWRONG";
    let c = app
        .post(
            "/v1/workspaces/acme/connections",
            s3(
                "bad",
                &up,
                json!({"access_key_id": AKID, "secret_access_key": wrong}),
            ),
        )
        .await;
    assert_eq!(c.status, 422, "{}", c.text);
    assert_eq!(c.body["error"], "verification_failed", "{}", c.text);
    assert!(c.text.contains("SignatureDoesNotMatch"), "{}", c.text);
    assert!(!c.text.contains(wrong));

    let mut body = s3(
        "unchecked",
        &up,
        json!({"access_key_id": AKID, "secret_access_key": wrong}),
    );
    body["verify"] = json!(false);
    assert_eq!(
        app.post("/v1/workspaces/acme/connections", body)
            .await
            .status,
        201
    );
    let (s, _, t) = send_for_json(app.proxy_request(reqwest::Method::GET, "unchecked", "x")).await;
    assert_eq!(s, 403, "{t}");
    let v = app
        .post(
            "/v1/workspaces/acme/connections/unchecked/verify",
            json!({}),
        )
        .await;
    assert_eq!(v.status, 200, "{}", v.text);
    assert_eq!(v.body["ok"], false, "{}", v.text);
    assert_eq!(v.body["connection"]["status"], "failing", "{}", v.text);
    let reason = v.body["connection"]["status_reason"].as_str().unwrap();
    assert!(reason.contains("SignatureDoesNotMatch"), "{reason}");
    assert!(!v.text.contains(wrong));

    // A missing secret is named.
    let r = app
        .post(
            "/v1/workspaces/acme/connections",
            s3("missing", &up, json!({"access_key_id": AKID})),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(
        r.body["details"]["field"], "credentials.secret_access_key",
        "{}",
        r.text
    );
}

/// Every test of this file logs at debug level into one buffer, installed before any of them
/// logs anything (a subscriber per test misses events when tests run side by side).
fn logs() -> &'static Capture {
    static CAPTURE: std::sync::OnceLock<Capture> = std::sync::OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        tracing::subscriber::set_global_default(capture.subscriber("debug"))
            .expect("one subscriber");
        capture
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_logs_never_show_the_keys() {
    let Some((mut app, up)) = started().await else {
        return;
    };
    let c = app
        .post(
            "/v1/workspaces/acme/connections",
            s3("temp", &up, json!({"access_key_id": TEMP_AKID, "secret_access_key": TEMP_SECRET, "session_token": SESSION})),
        )
        .await;
    assert_eq!(c.status, 201, "{}", c.text);
    let (s, _, t) = send_for_json(
        app.proxy_request(reqwest::Method::PUT, "temp", "k")
            .body("v"),
    )
    .await;
    assert_eq!(s, 200, "{t}");
    app.stop().await;
    let logs = logs().text();
    assert!(
        logs.len() > 1000,
        "debug logging captured too little ({} bytes)",
        logs.len()
    );
    for s in [SECRET, TEMP_SECRET, SESSION] {
        assert!(!logs.contains(s), "a log line holds a secret");
    }
}
