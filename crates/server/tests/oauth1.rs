//! OAuth 1.0a (`oauth1_token`, `oauth1`) against a provider whose every check is oauthlib's:
//! requests signed with HMAC-SHA256 and HMAC-SHA1, query parameters and form bodies in the
//! signature, the NetSuite realm, a wrong secret refused (and the verification saying so), the
//! three-legged flow end to end through the Trello entry, bad input, and no secret in answers.

mod support {
    pub mod pyserver;
}

use latchkey_core::outbound::Rewrites;
use latchkey_testkit::{send_for_json, spawn_app_with, TestApp};
use serde_json::{json, Value};
use support::pyserver::{self, PyServer};

const CONSUMER_KEY: &str = "nsconsumerkey0123456789abcdef";
const CONSUMER_SECRET: &str = "nsconsumersecret-9f8e7d6c5b4a";
const TOKEN_ID: &str = "nstokenid0123456789abcdefabcd";
const TOKEN_SECRET: &str = "nstokensecret-1a2b3c4d5e6f7a8b";
const TRELLO_KEY: &str = "trelloapikey0123456789abcdef01";
const TRELLO_SECRET: &str = "trelloconsumersecret-5e6f7a8b9c";
const NETSUITE: &str = "https://1234567-sb1.suitetalk.api.netsuite.com";

async fn started() -> Option<(TestApp, PyServer)> {
    let python = pyserver::python("oauthlib")?;
    let provider = pyserver::start(
        &python,
        "oauth1_provider.py",
        &json!({
            "clients": {CONSUMER_KEY: CONSUMER_SECRET, TRELLO_KEY: TRELLO_SECRET},
            "tokens": {TOKEN_ID: [CONSUMER_KEY, TOKEN_SECRET]},
        }),
    );
    let rewrites = format!(
        "{NETSUITE}={u},https://trello.com={u},https://api.trello.com={u}",
        u = provider.url
    );
    let app = spawn_app_with(|c| c.outbound_rewrites = Rewrites::parse(&rewrites).unwrap()).await;
    app.workspace("acme").await;
    Some((app, provider))
}

fn netsuite(name: &str, settings: Value, token_secret: &str) -> Value {
    let mut s = json!({"account_id": "1234567-sb1"});
    for (k, v) in settings.as_object().unwrap() {
        s[k] = v.clone();
    }
    json!({"name": name, "app": "netsuite", "auth_mode": "oauth1_token", "settings": s,
        "credentials": {"consumer_key": CONSUMER_KEY, "consumer_secret": CONSUMER_SECRET,
            "token_id": TOKEN_ID, "token_secret": token_secret}})
}

fn assert_no_secret(text: &str) {
    for s in [CONSUMER_SECRET, TOKEN_SECRET, TRELLO_SECRET] {
        assert!(!text.contains(s), "a secret is in an answer: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_based_requests_are_signed_as_oauthlib_expects() {
    let Some((app, _provider)) = started().await else {
        return;
    };
    // HMAC-SHA256, the default, with the realm made from the account id.
    let c = app
        .post(
            "/v1/workspaces/acme/connections",
            netsuite("erp", json!({}), TOKEN_SECRET),
        )
        .await;
    assert_eq!(c.status, 201, "{}", c.text);
    assert_eq!(c.body["status"], "active", "{}", c.text);
    assert_no_secret(&c.text);

    let (s, b, t) = send_for_json(app.proxy_request(
        reqwest::Method::GET,
        "erp",
        "services/rest/record/v1/customer?q=Acme%20Inc.&limit=5&flag",
    ))
    .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(b["ok"], true);
    assert_eq!(b["realm"], "1234567_SB1");
    assert_eq!(b["signature_method"], "HMAC-SHA256");
    assert_eq!(
        b["query"],
        json!({"q": "Acme Inc.", "limit": "5", "flag": ""})
    );
    // The provider echoed the token id; the proxy scrubbed it from the answer.
    assert_eq!(b["token"], "[REDACTED]");

    // A form body is part of the signature; a JSON body is not, and both are accepted.
    let (s, b, t) = send_for_json(
        app.proxy_request(
            reqwest::Method::POST,
            "erp",
            "app/site/hosting/restlet.nl?script=12",
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=Acme+Inc.&note=a%26b%3Dc&empty="),
    )
    .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(
        b["form"],
        json!({"name": "Acme Inc.", "note": "a&b=c", "empty": ""})
    );
    assert_eq!(b["query"], json!({"script": "12"}));
    let (s, b, t) = send_for_json(
        app.proxy_request(
            reqwest::Method::POST,
            "erp",
            "services/rest/record/v1/customer",
        )
        .header("content-type", "application/json")
        .body(r#"{"companyName": "Acme"}"#),
    )
    .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(b["json"]["companyName"], "Acme");

    // HMAC-SHA1 and an explicit realm.
    let c = app
        .post(
            "/v1/workspaces/acme/connections",
            netsuite(
                "erp-sha1",
                json!({"signature_method": "HMAC-SHA1", "realm": "ACME_REALM"}),
                TOKEN_SECRET,
            ),
        )
        .await;
    assert_eq!(c.status, 201, "{}", c.text);
    let (s, b, t) =
        send_for_json(app.proxy_request(reqwest::Method::GET, "erp-sha1", "services/rest/x?a=1"))
            .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(b["signature_method"], "HMAC-SHA1");
    assert_eq!(b["realm"], "ACME_REALM");

    // Nothing that is answered holds a secret.
    for path in [
        "/v1/workspaces/acme/connections",
        "/v1/workspaces/acme/connections/erp",
        "/v1/workspaces/acme/events",
    ] {
        assert_no_secret(&app.get(path).await.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_refused_and_verification_says_so() {
    let Some((app, _provider)) = started().await else {
        return;
    };
    let wrong = "nstokensecret-wrong-0000000000";
    let c = app
        .post(
            "/v1/workspaces/acme/connections",
            netsuite("bad", json!({}), wrong),
        )
        .await;
    assert_eq!(c.status, 422, "{}", c.text);
    assert_eq!(c.body["error"], "verification_failed", "{}", c.text);
    assert!(
        c.body["message"].as_str().unwrap().contains("401"),
        "{}",
        c.text
    );
    assert!(
        c.body["hint"].as_str().unwrap().contains("credential"),
        "{}",
        c.text
    );
    assert!(!c.text.contains(wrong));
    assert_eq!(
        app.get("/v1/workspaces/acme/connections/bad").await.status,
        404
    );

    // Saved without a check, the connection's calls are refused upstream and verify says why.
    let mut body = netsuite("unchecked", json!({}), wrong);
    body["verify"] = json!(false);
    assert_eq!(
        app.post("/v1/workspaces/acme/connections", body)
            .await
            .status,
        201
    );
    let (s, _, t) =
        send_for_json(app.proxy_request(reqwest::Method::GET, "unchecked", "services/rest/x"))
            .await;
    assert_eq!(s, 401, "{t}");
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
    assert!(
        reason.contains("401") && reason.contains("invalid_signature"),
        "{reason}"
    );
    assert!(!v.text.contains(wrong));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_names_the_field() {
    let Some((app, _provider)) = started().await else {
        return;
    };
    let mut body = netsuite("missing", json!({}), TOKEN_SECRET);
    body["credentials"]
        .as_object_mut()
        .unwrap()
        .remove("token_secret");
    let r = app.post("/v1/workspaces/acme/connections", body).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(
        r.body["details"]["field"], "credentials.token_secret",
        "{}",
        r.text
    );

    let r = app
        .post(
            "/v1/workspaces/acme/connections",
            netsuite(
                "plain",
                json!({"signature_method": "PLAINTEXT"}),
                TOKEN_SECRET,
            ),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(
        r.body["details"]["field"], "settings.signature_method",
        "{}",
        r.text
    );
    assert!(r.text.contains("HMAC-SHA256"), "{}", r.text);
    assert_eq!(
        app.get("/v1/workspaces/acme/connections").await.body["items"],
        json!([])
    );
}

/// Follows Latchkey's authorize URL to the provider (which approves at once) and the provider's
/// redirect back to Latchkey's callback; answers the callback page.
async fn authorize(app: &TestApp, authorize_url: &str) -> String {
    let resp = app.client.get(authorize_url).send().await.unwrap();
    assert_eq!(resp.status(), 302, "the provider approves and redirects");
    let back = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(
        back.starts_with(&format!("{}/oauth/callback?state=", app.url)),
        "{back}"
    );
    assert!(back.contains("oauth_verifier="), "{back}");
    let page = app.client.get(&back).send().await.unwrap();
    let html = page.text().await.unwrap();
    // The same link a second time is refused: the state is single-use.
    let again = app.client.get(&back).send().await.unwrap();
    assert_eq!(again.status(), 400);
    html
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_three_legged_flow_runs_end_to_end() {
    let Some((app, _provider)) = started().await else {
        return;
    };
    for (name, method) in [("board", "HMAC-SHA1"), ("board-256", "HMAC-SHA256")] {
        let c = app
            .post(
                "/v1/workspaces/acme/connections",
                json!({"name": name, "app": "trello", "auth_mode": "oauth1",
                    "settings": {"signature_method": method},
                    "credentials": {"consumer_key": TRELLO_KEY, "consumer_secret": TRELLO_SECRET}}),
            )
            .await;
        assert_eq!(c.status, 201, "{}", c.text);
        assert_eq!(c.body["status"], "pending_authorization", "{}", c.text);
        let url = c.body["authorize_url"]
            .as_str()
            .expect("authorize_url")
            .to_string();
        assert!(
            url.contains("oauth_token=") && url.contains("name=Latchkey"),
            "{url}"
        );
        assert_no_secret(&c.text);
        // Before the authorization nothing is signed for it.
        let (s, b, t) =
            send_for_json(app.proxy_request(reqwest::Method::GET, name, "members/me")).await;
        assert_eq!(s, 409, "{t}");
        assert_eq!(b["error"], "not_authorized", "{t}");

        // An edit before the authorization checks nothing and leaves it pending.
        let e = app
            .patch(
                &format!("/v1/workspaces/acme/connections/{name}"),
                json!({"settings": {"realm": "Boards"}}),
            )
            .await;
        assert_eq!(e.status, 200, "{}", e.text);
        assert_eq!(e.body["status"], "pending_authorization", "{}", e.text);

        let html = authorize(&app, &url).await;
        assert!(html.contains("is authorized"), "{html}");
        let conn = app
            .get(&format!("/v1/workspaces/acme/connections/{name}"))
            .await;
        assert_eq!(conn.body["status"], "active", "{}", conn.text);

        let (s, b, t) = send_for_json(app.proxy_request(
            reqwest::Method::GET,
            name,
            "members/me?fields=username",
        ))
        .await;
        assert_eq!(s, 200, "{t}");
        assert_eq!(b["signature_method"], method);
        assert_eq!(b["path"], "/1/members/me");
        // The provider knew the token pair (it issued it); the answer's echo of it is scrubbed.
        assert_eq!(b["token"], "[REDACTED]");
        let creds = app
            .get(&format!(
                "/v1/workspaces/acme/connections/{name}/credentials"
            ))
            .await;
        assert!(
            creds.body["credentials"]["token_secret"]
                .as_str()
                .is_some_and(|s| s.len() >= 20),
            "{}",
            creds.text
        );
    }
    // A fresh authorization replaces the token pair (re-authorize).
    let a = app
        .post("/v1/workspaces/acme/connections/board/authorize", json!({}))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let html = authorize(&app, a.body["authorize_url"].as_str().unwrap()).await;
    assert!(html.contains("is authorized"), "{html}");
    let (s, _, t) =
        send_for_json(app.proxy_request(reqwest::Method::GET, "board", "members/me")).await;
    assert_eq!(s, 200, "{t}");
    assert_no_secret(&app.get("/v1/workspaces/acme/events").await.text);
}
