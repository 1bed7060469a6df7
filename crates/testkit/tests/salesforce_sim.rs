//! The Salesforce simulator, driven over real HTTP the way Latchkey and a browser would.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use latchkey_testkit::salesforce::{
    ConnectedApp, SalesforceConfig, SalesforceSim, User, DEFAULT_CONSUMER_KEY,
    DEFAULT_CONSUMER_SECRET, DEFAULT_PASSWORD, DEFAULT_USERNAME, SANDBOX_PASSWORD,
    SANDBOX_USERNAME, TEST_PRIVATE_KEY_PEM,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const CALLBACK: &str = "http://127.0.0.1:9/oauth/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-and-some-more-entropy";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn sim_with(tweak: impl FnOnce(&mut ConnectedApp)) -> SalesforceSim {
    let config = SalesforceConfig::default().edit_app(DEFAULT_CONSUMER_KEY, |a| {
        a.callback_urls.push(CALLBACK.into());
        tweak(a);
    });
    SalesforceSim::start_with(config).await
}

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A browser-facing authorize URL on a public origin, as Latchkey would build it.
fn authorize_url(origin: &str, scope: &str, state: &str, pkce: bool) -> String {
    let mut url = url::Url::parse(&format!("{origin}/services/oauth2/authorize")).unwrap();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", DEFAULT_CONSUMER_KEY)
            .append_pair("redirect_uri", CALLBACK)
            .append_pair("scope", scope)
            .append_pair("state", state);
        if pkce {
            q.append_pair("code_challenge", &challenge(VERIFIER))
                .append_pair("code_challenge_method", "S256");
        }
    }
    url.to_string()
}

fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn post_form(url: String, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = client().post(url).form(form).send().await.expect("sent");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn token(base: &str, form: &[(&str, &str)]) -> (u16, Value) {
    post_form(format!("{base}/services/oauth2/token"), form).await
}

/// Logs in through the browser and exchanges the code (with PKCE) for tokens.
async fn authorize_and_exchange(sim: &SalesforceSim, scope: &str) -> Value {
    let origin = sim.production_origin().to_string();
    let location = sim
        .login_via_browser(
            &authorize_url(&origin, scope, "s", true),
            DEFAULT_USERNAME,
            DEFAULT_PASSWORD,
        )
        .await
        .expect("login");
    let code = query_param(&location, "code").expect("code");
    let (status, body) = token(
        sim.production_url(),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", DEFAULT_CONSUMER_KEY),
            ("client_secret", DEFAULT_CONSUMER_SECRET),
            ("redirect_uri", CALLBACK),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn refresh(sim: &SalesforceSim, refresh_token: &str) -> (u16, Value) {
    token(
        sim.production_url(),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", DEFAULT_CONSUMER_KEY),
            ("client_secret", DEFAULT_CONSUMER_SECRET),
        ],
    )
    .await
}

async fn api_get(sim: &SalesforceSim, path: &str, access_token: &str) -> (u16, Value) {
    let resp = client()
        .get(format!("{}{path}", sim.my_domain_url()))
        .bearer_auth(access_token)
        .send()
        .await
        .expect("sent");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

fn assert_session_expired(status: u16, body: &Value) {
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        body,
        &json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    );
}

fn assert_oauth_error(status: u16, body: &Value, error: &str, description: &str) {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_description"], description, "{body}");
}

#[tokio::test]
async fn code_flow_with_pkce_end_to_end() {
    let sim = sim_with(|a| a.require_pkce = true).await;
    let user = sim.user(DEFAULT_USERNAME).expect("default user");

    // The login page carries the request in hidden fields and posts back to the same path.
    let url = authorize_url(
        sim.production_origin(),
        "api refresh_token openid",
        "xyz",
        true,
    );
    let page = client()
        .get(sim.to_loopback(&url))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("action=\"/services/oauth2/authorize\""),
        "{html}"
    );
    assert!(html.contains("name=\"username\"") && html.contains("name=\"password\""));
    assert!(html.contains("name=\"code_challenge\""));

    let location = sim
        .login_via_browser(&url, DEFAULT_USERNAME, DEFAULT_PASSWORD)
        .await
        .expect("login");
    assert!(location.starts_with(CALLBACK), "{location}");
    assert_eq!(query_param(&location, "state").as_deref(), Some("xyz"));
    let code = query_param(&location, "code").expect("code");
    assert_eq!(sim.codes_issued(), 1);

    // Client authentication as HTTP Basic with form-url-encoded parts (RFC 6749 §2.3.1).
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let basic = STANDARD.encode(format!(
        "{}:{}",
        enc(DEFAULT_CONSUMER_KEY),
        enc(DEFAULT_CONSUMER_SECRET)
    ));
    let exchange = |verifier: &'static str, code: String| {
        let basic = basic.clone();
        let url = format!("{}/services/oauth2/token", sim.production_url());
        async move {
            let resp = client()
                .post(url)
                .header("Authorization", format!("Basic {basic}"))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", CALLBACK),
                    ("code_verifier", verifier),
                ])
                .send()
                .await
                .expect("sent");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.expect("json"))
        }
    };

    let (status, body) = exchange("not-the-verifier", code.clone()).await;
    assert_oauth_error(status, &body, "invalid_grant", "invalid code verifier");

    // The failed attempt used the code up: codes are single use.
    let (status, body) = exchange(VERIFIER, code).await;
    assert_oauth_error(status, &body, "invalid_grant", "expired authorization code");

    let location = sim
        .login_via_browser(&url, DEFAULT_USERNAME, DEFAULT_PASSWORD)
        .await
        .expect("login");
    let (status, body) = exchange(VERIFIER, query_param(&location, "code").unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("expires_in").is_none(), "{body}");
    let issued_at = str_of(&body, "issued_at");
    assert!(issued_at.len() >= 13 && issued_at.bytes().all(|b| b.is_ascii_digit()));
    let id = str_of(&body, "id");
    assert_eq!(
        id,
        format!(
            "https://login.salesforce.com/id/{}/{}",
            user.org_id, user.user_id
        )
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(DEFAULT_CONSUMER_SECRET.as_bytes()).unwrap();
    mac.update(format!("{id}{issued_at}").as_bytes());
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(str_of(&body, "signature"), expected);
    assert!(str_of(&body, "access_token").starts_with(&format!("{}!", user.org_id)));
    assert!(!str_of(&body, "refresh_token").is_empty());
    assert_eq!(str_of(&body, "scope"), "api refresh_token openid");
    assert_eq!(
        str_of(&body, "instance_url"),
        "https://acme.my.salesforce.com"
    );
    assert_eq!(str_of(&body, "token_type"), "Bearer");
    assert_eq!(str_of(&body, "id_token").split('.').count(), 3);
    assert_eq!(sim.token_requests("authorization_code"), 3);

    // The token works on the instance, not on the login host.
    let access = str_of(&body, "access_token");
    let resp = client()
        .get(format!(
            "{}/services/data/v62.0/limits",
            sim.my_domain_url()
        ))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let usage = resp.headers()["sforce-limit-info"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(usage.starts_with("api-usage="), "{usage}");
    let limits: Value = resp.json().await.unwrap();
    assert_eq!(limits["DailyApiRequests"]["Max"], 5000);
    let resp = client()
        .get(format!(
            "{}/services/data/v62.0/limits",
            sim.production_url()
        ))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    let info: Value = client()
        .get(format!("{}/services/oauth2/userinfo", sim.my_domain_url()))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["user_id"], user.user_id.as_str());
    assert_eq!(info["organization_id"], user.org_id.as_str());
    assert_eq!(info["preferred_username"], DEFAULT_USERNAME);
}

#[tokio::test]
async fn pkce_required_and_no_refresh_token_without_the_scope() {
    let sim = sim_with(|a| a.require_pkce = true).await;
    let location = sim
        .login_via_browser(
            &authorize_url(sim.production_origin(), "api", "s1", false),
            DEFAULT_USERNAME,
            DEFAULT_PASSWORD,
        )
        .await
        .expect("redirect");
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("invalid_request")
    );
    assert_eq!(query_param(&location, "state").as_deref(), Some("s1"));

    let body = authorize_and_exchange(&sim, "api id").await;
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert!(body.get("id_token").is_none(), "{body}");
    assert_eq!(sim.active_grants(DEFAULT_USERNAME, DEFAULT_CONSUMER_KEY), 0);
}

#[tokio::test]
async fn refresh_without_rotation_keeps_the_refresh_token() {
    let sim = sim_with(|_| {}).await;
    let first = authorize_and_exchange(&sim, "api refresh_token").await;
    let rt = str_of(&first, "refresh_token");
    for _ in 0..2 {
        let (status, body) = refresh(&sim, rt).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("refresh_token").is_none(), "{body}");
        assert!(body.get("expires_in").is_none(), "{body}");
        assert!(body["issued_at"].is_string());
        assert_ne!(body["access_token"], first["access_token"]);
        let (status, _) = api_get(
            &sim,
            "/services/data/v62.0/sobjects",
            str_of(&body, "access_token"),
        )
        .await;
        assert_eq!(status, 200);
    }
    assert_eq!(sim.refresh_count(), 2);

    let (status, body) = refresh(&sim, "5Aep861-not-a-token").await;
    assert_oauth_error(
        status,
        &body,
        "invalid_grant",
        "expired access/refresh token",
    );

    // A wrong secret is refused; refresh also works without a secret (public client).
    let (status, body) = token(
        sim.production_url(),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", DEFAULT_CONSUMER_KEY),
            ("client_secret", "wrong"),
        ],
    )
    .await;
    assert_oauth_error(
        status,
        &body,
        "invalid_client",
        "invalid client credentials",
    );
    let (status, _) = token(
        sim.production_url(),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", DEFAULT_CONSUMER_KEY),
        ],
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn rotation_reuse_revokes_the_whole_grant() {
    let sim = sim_with(|a| a.rotate_refresh_tokens = true).await;
    let first = authorize_and_exchange(&sim, "api refresh_token").await;
    let old = str_of(&first, "refresh_token").to_string();

    let (status, second) = refresh(&sim, &old).await;
    assert_eq!(status, 200, "{second}");
    let new = str_of(&second, "refresh_token").to_string();
    assert_ne!(new, old);
    let access = str_of(&second, "access_token").to_string();
    assert_eq!(
        api_get(&sim, "/services/data/v62.0/limits", &access)
            .await
            .0,
        200
    );

    // Reuse of the rotated token: refused, and the grant with all its tokens dies.
    let (status, body) = refresh(&sim, &old).await;
    assert_oauth_error(
        status,
        &body,
        "invalid_grant",
        "expired access/refresh token",
    );
    let (status, body) = refresh(&sim, &new).await;
    assert_oauth_error(
        status,
        &body,
        "invalid_grant",
        "expired access/refresh token",
    );
    let (status, body) = api_get(&sim, "/services/data/v62.0/limits", &access).await;
    assert_session_expired(status, &body);
    assert_eq!(sim.active_grants(DEFAULT_USERNAME, DEFAULT_CONSUMER_KEY), 0);
}

#[tokio::test]
async fn sixth_approval_evicts_the_oldest_grant() {
    let sim = sim_with(|_| {}).await;
    let mut grants = Vec::new();
    for _ in 0..6 {
        grants.push(authorize_and_exchange(&sim, "api refresh_token").await);
    }
    assert_eq!(sim.active_grants(DEFAULT_USERNAME, DEFAULT_CONSUMER_KEY), 5);

    let (status, body) = refresh(&sim, str_of(&grants[0], "refresh_token")).await;
    assert_oauth_error(
        status,
        &body,
        "invalid_grant",
        "expired access/refresh token",
    );
    let (status, body) = api_get(
        &sim,
        "/services/data/v62.0/limits",
        str_of(&grants[0], "access_token"),
    )
    .await;
    assert_session_expired(status, &body);
    for g in &grants[1..] {
        let (status, body) = refresh(&sim, str_of(g, "refresh_token")).await;
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test]
async fn client_credentials_only_on_my_domain() {
    let sim = sim_with(|_| {}).await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", DEFAULT_CONSUMER_KEY),
        ("client_secret", DEFAULT_CONSUMER_SECRET),
    ];
    for base in [sim.production_url(), sim.sandbox_url()] {
        let (status, body) = token(base, &form).await;
        assert_oauth_error(
            status,
            &body,
            "invalid_grant",
            "request not supported on this domain",
        );
    }

    let (status, body) = token(sim.my_domain_url(), &form).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert!(body.get("expires_in").is_none(), "{body}");
    assert!(body["issued_at"].is_string());
    assert_eq!(
        body["id"],
        sim.user(DEFAULT_USERNAME).unwrap().id_url.as_str()
    );
    let (status, _) = api_get(
        &sim,
        "/services/data/v62.0/limits",
        str_of(&body, "access_token"),
    )
    .await;
    assert_eq!(status, 200);

    let (status, body) = token(
        sim.my_domain_url(),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_CONSUMER_KEY),
            ("client_secret", "wrong"),
        ],
    )
    .await;
    assert_oauth_error(
        status,
        &body,
        "invalid_client",
        "invalid client credentials",
    );

    sim.edit_app(DEFAULT_CONSUMER_KEY, |a| a.client_credentials_user = None);
    let (status, body) = token(sim.my_domain_url(), &form).await;
    assert_oauth_error(
        status,
        &body,
        "invalid_grant",
        "no client credentials user enabled",
    );
    assert_eq!(sim.token_requests("client_credentials"), 5);
}

fn assertion(sub: &str, aud: &str, exp_in: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = json!({"iss": DEFAULT_CONSUMER_KEY, "sub": sub, "aud": aud, "exp": now + exp_in});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(TEST_PRIVATE_KEY_PEM.as_bytes()).unwrap(),
    )
    .unwrap()
}

async fn jwt(base: &str, assertion: &str) -> (u16, Value) {
    token(
        base,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion),
        ],
    )
    .await
}

#[tokio::test]
async fn jwt_bearer_checks_signature_audience_and_approval() {
    let sim = SalesforceSim::start_with(
        SalesforceConfig::default().with_user(User::new("unapproved@acme.example.com", "pw")),
    )
    .await;

    let (status, body) = jwt(
        sim.production_url(),
        &assertion(DEFAULT_USERNAME, "https://login.salesforce.com", 180),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for absent in ["refresh_token", "signature", "issued_at", "expires_in"] {
        assert!(body.get(absent).is_none(), "{absent} in {body}");
    }
    assert_eq!(
        str_of(&body, "instance_url"),
        "https://acme.my.salesforce.com"
    );
    assert_eq!(str_of(&body, "token_type"), "Bearer");
    let (status, _) = api_get(
        &sim,
        "/services/data/v62.0/limits",
        str_of(&body, "access_token"),
    )
    .await;
    assert_eq!(status, 200);

    // A sandbox user asks test.salesforce.com with that audience; the id names test.salesforce.com.
    let (status, body) = jwt(
        sim.sandbox_url(),
        &assertion(SANDBOX_USERNAME, "https://test.salesforce.com", 180),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(str_of(&body, "id").starts_with("https://test.salesforce.com/id/"));

    let (status, body) = jwt(
        sim.production_url(),
        &assertion(
            "unapproved@acme.example.com",
            "https://login.salesforce.com",
            180,
        ),
    )
    .await;
    assert_oauth_error(
        status,
        &body,
        "invalid_grant",
        "user hasn't approved this consumer",
    );

    let (status, body) = jwt(
        sim.production_url(),
        &assertion(DEFAULT_USERNAME, "https://test.salesforce.com", 180),
    )
    .await;
    assert_oauth_error(status, &body, "invalid_grant", "Audience validation failed");

    // A payload swapped under a valid signature.
    let good = assertion(DEFAULT_USERNAME, "https://login.salesforce.com", 180);
    let other = assertion(SANDBOX_USERNAME, "https://login.salesforce.com", 180);
    let parts: Vec<&str> = good.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        other.split('.').nth(1).unwrap(),
        parts[2]
    );
    let (status, body) = jwt(sim.production_url(), &forged).await;
    assert_oauth_error(status, &body, "invalid_grant", "invalid assertion");

    let (status, body) = jwt(
        sim.production_url(),
        &assertion(DEFAULT_USERNAME, "https://login.salesforce.com", -10),
    )
    .await;
    assert_oauth_error(status, &body, "invalid_grant", "invalid assertion");
}

#[tokio::test]
async fn expired_access_tokens_answer_invalid_session_id_until_refreshed() {
    let sim = sim_with(|_| {}).await;
    let tokens = authorize_and_exchange(&sim, "api refresh_token").await;
    let access = str_of(&tokens, "access_token");
    assert_eq!(
        api_get(&sim, "/services/data/v62.0/limits", access).await.0,
        200
    );

    sim.expire_access_tokens();
    let (status, body) = api_get(&sim, "/services/data/v62.0/limits", access).await;
    assert_session_expired(status, &body);
    let (status, body) = api_get(&sim, "/services/data/v62.0/limits", "00Dnope!garbage").await;
    assert_session_expired(status, &body);

    let (status, body) = refresh(&sim, str_of(&tokens, "refresh_token")).await;
    assert_eq!(status, 200, "{body}");
    let fresh = str_of(&body, "access_token").to_string();
    assert_eq!(
        api_get(&sim, "/services/data/v62.0/limits", &fresh).await.0,
        200
    );

    // The session slides with use and dies after the org's timeout of idleness.
    sim.advance(Duration::from_secs(7000));
    assert_eq!(
        api_get(&sim, "/services/data/v62.0/limits", &fresh).await.0,
        200
    );
    sim.advance(Duration::from_secs(7000));
    assert_eq!(
        api_get(&sim, "/services/data/v62.0/limits", &fresh).await.0,
        200
    );
    sim.advance(Duration::from_secs(7201));
    let (status, body) = api_get(&sim, "/services/data/v62.0/limits", &fresh).await;
    assert_session_expired(status, &body);
}

#[tokio::test]
async fn token_without_api_scope_is_not_valid_for_rest() {
    let sim = sim_with(|_| {}).await;
    let tokens = authorize_and_exchange(&sim, "id refresh_token").await;
    let (status, body) = api_get(
        &sim,
        "/services/data/v62.0/limits",
        str_of(&tokens, "access_token"),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        body[0]["message"],
        "This session is not valid for use with the REST API"
    );
}

#[tokio::test]
async fn bad_redirect_uri_or_client_shows_an_error_page_without_redirect() {
    let sim = sim_with(|_| {}).await;
    let url = authorize_url(sim.production_origin(), "api", "s", false)
        .replace("127.0.0.1%3A9", "127.0.0.1%3A10");
    let resp = client().get(sim.to_loopback(&url)).send().await.unwrap();
    assert!(!resp.status().is_redirection());
    assert!(resp.headers().get("location").is_none());
    let text = resp.text().await.unwrap();
    assert!(text.contains("error=redirect_uri_mismatch"), "{text}");
    let err = sim
        .login_via_browser(&url, DEFAULT_USERNAME, DEFAULT_PASSWORD)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("redirect_uri_mismatch"), "{err}");

    let url =
        authorize_url(sim.production_origin(), "api", "s", false).replace("3MVG9Sim", "3MVG9Other");
    let resp = client().get(sim.to_loopback(&url)).send().await.unwrap();
    assert!(resp.headers().get("location").is_none());
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("error=invalid_client_id"));
    assert_eq!(sim.codes_issued(), 0);
    assert_eq!(sim.authorize_count(), 3);
}

#[tokio::test]
async fn deny_and_bad_credentials() {
    let sim = sim_with(|_| {}).await;
    let url = authorize_url(sim.production_origin(), "api", "st", false);
    let location = sim
        .deny_via_browser(&url, DEFAULT_USERNAME, DEFAULT_PASSWORD)
        .await
        .unwrap();
    assert_eq!(
        location,
        format!("{CALLBACK}?error=access_denied&error_description=end-user+denied+authorization&state=st")
    );

    let err = sim
        .login_via_browser(&url, DEFAULT_USERNAME, "wrong")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("check your username and password"),
        "{err}"
    );

    // A sandbox user is unknown to the production login host, known to test.salesforce.com.
    assert!(sim
        .login_via_browser(&url, SANDBOX_USERNAME, SANDBOX_PASSWORD)
        .await
        .is_err());
    let sandbox_url = authorize_url(sim.sandbox_origin(), "api", "st", false);
    assert!(sim
        .login_via_browser(&sandbox_url, SANDBOX_USERNAME, SANDBOX_PASSWORD)
        .await
        .is_ok());

    sim.deactivate_user(DEFAULT_USERNAME);
    assert!(sim
        .login_via_browser(&url, DEFAULT_USERNAME, DEFAULT_PASSWORD)
        .await
        .is_err());
}

#[tokio::test]
async fn userinfo_with_a_bad_token_is_403_bad_oauth_token() {
    let sim = sim_with(|_| {}).await;
    for base in [sim.production_url(), sim.my_domain_url()] {
        let resp = client()
            .get(format!("{base}/services/oauth2/userinfo"))
            .bearer_auth("00Dbogus!token")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        assert_eq!(resp.text().await.unwrap(), "Bad_OAuth_Token");
    }
}

#[tokio::test]
async fn revoke_and_introspect() {
    let sim = sim_with(|_| {}).await;
    let tokens = authorize_and_exchange(&sim, "api refresh_token").await;
    let access = str_of(&tokens, "access_token");
    let rt = str_of(&tokens, "refresh_token");
    let introspect = |t: String| {
        let url = format!("{}/services/oauth2/introspect", sim.production_url());
        async move {
            post_form(
                url,
                &[
                    ("token", t.as_str()),
                    ("token_type_hint", "access_token"),
                    ("client_id", DEFAULT_CONSUMER_KEY),
                    ("client_secret", DEFAULT_CONSUMER_SECRET),
                ],
            )
            .await
        }
    };
    let (status, body) = introspect(access.to_string()).await;
    assert_eq!(status, 200);
    assert_eq!(body["active"], true);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let exp = body["exp"].as_u64().expect("exp in seconds");
    assert!(exp > now + 7000 && exp <= now + 7201, "{exp}");

    let revoke = |t: String| {
        let url = format!("{}/services/oauth2/revoke", sim.production_url());
        async move {
            let r = client()
                .post(url)
                .form(&[("token", t)])
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, body) = revoke("nope".into()).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_token");
    assert_eq!(revoke(rt.to_string()).await.0, 200);
    assert_eq!(
        introspect(access.to_string()).await.1,
        json!({"active": false})
    );
    let (status, body) = refresh(&sim, rt).await;
    assert_oauth_error(
        status,
        &body,
        "invalid_grant",
        "expired access/refresh token",
    );
    assert_eq!(revoke(rt.to_string()).await.0, 400);
}

#[tokio::test]
async fn api_delay_and_in_flight_counters() {
    let sim = SalesforceSim::start_with(
        SalesforceConfig::default()
            .edit_app(DEFAULT_CONSUMER_KEY, |a| {
                a.callback_urls.push(CALLBACK.into())
            })
            .with_sobject("c2g__codaCompany__c"),
    )
    .await;
    let tokens = authorize_and_exchange(&sim, "api").await;
    let access = str_of(&tokens, "access_token").to_string();

    let (status, body) = api_get(&sim, "/services/data/v62.0/sobjects", &access).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = body["sobjects"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["name"].as_str())
        .collect();
    assert!(names.contains(&"Account") && names.contains(&"c2g__codaCompany__c"));
    let (status, body) = api_get(
        &sim,
        "/services/data/v62.0/query?q=SELECT+Id,+Name+FROM+c2g__codaCompany__c+LIMIT+1",
        &access,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totalSize"], 1);
    assert!(body["records"][0]["Name"].is_string());

    sim.set_api_delay(Duration::from_millis(800));
    let results = concurrent_limits(&sim, &access, 4).await;
    assert!(results.iter().all(|(s, _)| *s == 200));
    assert_eq!(sim.api_in_flight_max(), 4);
    assert_eq!(sim.api_in_flight(), 0);
    sim.reset_in_flight_max();
    assert_eq!(sim.api_in_flight_max(), 0);

    sim.set_api_concurrency_limit(Some(2));
    let results = concurrent_limits(&sim, &access, 3).await;
    let refused: Vec<_> = results.iter().filter(|(s, _)| *s == 403).collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].1[0]["errorCode"], "REQUEST_LIMIT_EXCEEDED");
}

/// `n` concurrent `GET …/limits` calls, each on its own task.
async fn concurrent_limits(sim: &SalesforceSim, access: &str, n: usize) -> Vec<(u16, Value)> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let url = format!("{}/services/data/v62.0/limits", sim.my_domain_url());
        let access = access.to_string();
        tasks.push(tokio::spawn(async move {
            let resp = client().get(url).bearer_auth(access).send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn echo_returns_what_it_received() {
    let sim = sim_with(|_| {}).await;
    let tokens = authorize_and_exchange(&sim, "api").await;
    let access = str_of(&tokens, "access_token");
    let resp = client()
        .put(format!(
            "{}/services/apexrest/echo/a/b?x=1&y=two",
            sim.my_domain_url()
        ))
        .bearer_auth(access)
        .header("X-Custom", "hello")
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["method"], "PUT");
    assert_eq!(body["path"], "/services/apexrest/echo/a/b");
    assert_eq!(body["query"], "x=1&y=two");
    assert_eq!(body["headers"]["x-custom"], "hello");
    assert_eq!(body["headers"]["authorization"], format!("Bearer {access}"));
    assert_eq!(body["body"], "payload");

    let versions: Value = client()
        .get(format!("{}/services/data/", sim.my_domain_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(versions
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["version"] == "62.0" && v["url"] == "/services/data/v62.0"));
}

#[tokio::test]
async fn rewrites_name_every_public_origin() {
    let sim = SalesforceSim::start().await;
    let rewrites = sim.rewrites();
    assert_eq!(
        rewrites,
        format!(
            "https://login.salesforce.com={},https://test.salesforce.com={},https://acme.my.salesforce.com={}",
            sim.production_url(),
            sim.sandbox_url(),
            sim.my_domain_url()
        )
    );
    for id in [
        sim.user(DEFAULT_USERNAME).unwrap(),
        sim.user(SANDBOX_USERNAME).unwrap(),
    ] {
        assert_eq!(id.org_id.len(), 18);
        assert_eq!(id.user_id.len(), 18);
        assert!(id.org_id.starts_with("00D") && id.user_id.starts_with("005"));
    }
    assert!(sim
        .user(SANDBOX_USERNAME)
        .unwrap()
        .id_url
        .starts_with("https://test.salesforce.com/id/"));
}
