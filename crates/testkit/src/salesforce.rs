//! A Salesforce simulator on loopback, behaving as `shared/salesforce.md` describes, so that
//! Latchkey's OAuth and proxy code can be tested without the real service.
//!
//! Three listeners, one per host role: production login (`https://login.salesforce.com`), sandbox
//! login (`https://test.salesforce.com`) and a My Domain host (`https://acme.my.salesforce.com`,
//! also the `instance_url` that serves the REST API). Every role answers
//! `/services/oauth2/{authorize,token,revoke,introspect,userinfo}`; only My Domain serves
//! `/services/data/…` and `/services/apexrest/echo`. Token answers name the public https origins, as
//! real Salesforce does; [`SalesforceSim::rewrites`] maps them to the loopback ports for
//! `LATCHKEY_OUTBOUND_REWRITES`.
//!
//! Time inside the simulator (code lifetime, session timeout, `issued_at`, JWT `exp`) follows a
//! clock that [`SalesforceSim::advance`] moves forward, so tests need not sleep.

mod api;
mod browser;
mod oauth;
mod state;

use axum::Router;
use state::State;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Test-only RSA private key (PKCS#8 PEM) whose public half [`TEST_PUBLIC_KEY_PEM`] the default
/// connected app trusts for the JWT bearer flow. It is public: never trust it outside tests.
pub const TEST_PRIVATE_KEY_PEM: &str = include_str!("../fixtures/salesforce_test_private.pem");
/// Test-only RSA public key (SPKI PEM) matching [`TEST_PRIVATE_KEY_PEM`].
pub const TEST_PUBLIC_KEY_PEM: &str = include_str!("../fixtures/salesforce_test_public.pem");

pub const PRODUCTION_ORIGIN: &str = "https://login.salesforce.com";
pub const SANDBOX_ORIGIN: &str = "https://test.salesforce.com";
pub const DEFAULT_MY_DOMAIN_ORIGIN: &str = "https://acme.my.salesforce.com";

pub const DEFAULT_CONSUMER_KEY: &str =
    "3MVG9SimLatchkey.TestConsumerKey_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN";
pub const DEFAULT_CONSUMER_SECRET: &str =
    "5C1B0E9F7A3D2C4B6E8F0A1B2C3D4E5F6A7B8C9D0E1F2A3B4C5D6E7F8A9B0C1D";
/// The default app's only callback URL; add Latchkey's real one with
/// [`SalesforceSim::add_callback_url`] once its port is known.
pub const DEFAULT_CALLBACK_URL: &str = "http://127.0.0.1:8080/oauth/callback";

pub const PRODUCTION_ORG_ID: &str = "00DSIM000000001AAA";
pub const SANDBOX_ORG_ID: &str = "00DSIM000000002AAA";
/// A production user of [`PRODUCTION_ORG_ID`], pre-approved for JWT and run-as user of the
/// default app's client credentials flow.
pub const DEFAULT_USERNAME: &str = "integration@acme.example.com";
pub const DEFAULT_PASSWORD: &str = "Sim-Passw0rd!";
/// A sandbox user of [`SANDBOX_ORG_ID`]: logs in at test.salesforce.com (or My Domain).
pub const SANDBOX_USERNAME: &str = "integration@acme.example.com.uat";
pub const SANDBOX_PASSWORD: &str = "Sim-Sandb0x!";

/// API versions the instance serves (`GET /services/data/`), with their release names.
pub const API_VERSIONS: &[(&str, &str)] = &[
    ("62.0", "Winter '25"),
    ("63.0", "Spring '25"),
    ("64.0", "Summer '25"),
    ("65.0", "Winter '26"),
    ("66.0", "Spring '26"),
    ("67.0", "Summer '26"),
];

/// A connected app: consumer key and secret, callback URLs (exact match) and policies.
#[derive(Debug, Clone)]
pub struct ConnectedApp {
    pub consumer_key: String,
    pub consumer_secret: String,
    pub callback_urls: Vec<String>,
    /// The app's selected OAuth scopes; granted when an authorize request names none.
    pub scopes: Vec<String>,
    pub rotate_refresh_tokens: bool,
    pub require_pkce: bool,
    /// "Require Secret for Web Server Flow": the code exchange must carry the secret.
    pub require_secret: bool,
    /// Client credentials flow: `Some(run-as username)` when enabled.
    pub client_credentials_user: Option<String>,
    /// JWT bearer flow: the certificate's public key (PEM) and the pre-approved usernames.
    pub jwt_public_key_pem: Option<String>,
    pub jwt_preapproved: Vec<String>,
}

impl ConnectedApp {
    /// An app with the usual scopes and no optional flow enabled.
    pub fn new(consumer_key: &str, consumer_secret: &str) -> Self {
        ConnectedApp {
            consumer_key: consumer_key.into(),
            consumer_secret: consumer_secret.into(),
            callback_urls: Vec::new(),
            scopes: [
                "api",
                "refresh_token",
                "offline_access",
                "id",
                "profile",
                "email",
                "openid",
            ]
            .map(String::from)
            .to_vec(),
            rotate_refresh_tokens: false,
            require_pkce: false,
            require_secret: true,
            client_credentials_user: None,
            jwt_public_key_pem: None,
            jwt_preapproved: Vec::new(),
        }
    }

    pub fn callback(mut self, url: &str) -> Self {
        self.callback_urls.push(url.into());
        self
    }

    pub fn scopes(mut self, scopes: &[&str]) -> Self {
        self.scopes = scopes.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn rotation(mut self, on: bool) -> Self {
        self.rotate_refresh_tokens = on;
        self
    }

    pub fn pkce_required(mut self, on: bool) -> Self {
        self.require_pkce = on;
        self
    }

    pub fn secret_required(mut self, on: bool) -> Self {
        self.require_secret = on;
        self
    }

    pub fn client_credentials(mut self, run_as: Option<&str>) -> Self {
        self.client_credentials_user = run_as.map(String::from);
        self
    }

    pub fn jwt(mut self, public_key_pem: &str, preapproved: &[&str]) -> Self {
        self.jwt_public_key_pem = Some(public_key_pem.into());
        self.jwt_preapproved = preapproved.iter().map(|s| s.to_string()).collect();
        self
    }
}

/// A Salesforce user.
#[derive(Debug, Clone)]
pub struct User {
    pub username: String,
    pub password: String,
    /// `005…`, 18 characters.
    pub user_id: String,
    /// `00D…`, 18 characters.
    pub org_id: String,
    /// The user's org is a sandbox: logs in at test.salesforce.com, `id` URLs name it.
    pub sandbox: bool,
    pub active: bool,
    pub email: String,
    pub name: String,
}

impl User {
    /// An active production user of [`PRODUCTION_ORG_ID`] whose id derives from the username.
    pub fn new(username: &str, password: &str) -> Self {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(username.as_bytes());
        let tail: String = digest.iter().take(6).map(|b| format!("{b:02X}")).collect();
        let local = username.split('@').next().unwrap_or(username);
        User {
            username: username.into(),
            password: password.into(),
            user_id: format!("005{tail}AAA"),
            org_id: PRODUCTION_ORG_ID.into(),
            sandbox: false,
            active: true,
            email: username.into(),
            name: format!("Sim {local}"),
        }
    }

    /// Moves the user to the sandbox org [`SANDBOX_ORG_ID`].
    pub fn sandbox(mut self) -> Self {
        self.sandbox = true;
        self.org_id = SANDBOX_ORG_ID.into();
        self
    }

    pub fn org(mut self, org_id: &str) -> Self {
        self.org_id = org_id.into();
        self
    }

    pub fn inactive(mut self) -> Self {
        self.active = false;
        self
    }
}

/// Everything the simulator starts with; `Default` gives the default app (all flows on,
/// JWT trusting [`TEST_PUBLIC_KEY_PEM`] for [`DEFAULT_USERNAME`]) and the two default users.
#[derive(Debug, Clone)]
pub struct SalesforceConfig {
    pub apps: Vec<ConnectedApp>,
    pub users: Vec<User>,
    /// The org's session timeout, reset by each use (sliding).
    pub session_timeout: Duration,
    /// The public My Domain origin, also the `instance_url`.
    pub my_domain_origin: String,
    /// Object names listed by `/sobjects` besides the standard ones (e.g. `c2g__codaCompany__c`).
    pub extra_sobjects: Vec<String>,
}

impl Default for SalesforceConfig {
    fn default() -> Self {
        SalesforceConfig {
            apps: vec![
                ConnectedApp::new(DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET)
                    .callback(DEFAULT_CALLBACK_URL)
                    .client_credentials(Some(DEFAULT_USERNAME))
                    .jwt(TEST_PUBLIC_KEY_PEM, &[DEFAULT_USERNAME, SANDBOX_USERNAME]),
            ],
            users: vec![
                User::new(DEFAULT_USERNAME, DEFAULT_PASSWORD),
                User::new(SANDBOX_USERNAME, SANDBOX_PASSWORD).sandbox(),
            ],
            session_timeout: Duration::from_secs(7200),
            my_domain_origin: DEFAULT_MY_DOMAIN_ORIGIN.into(),
            extra_sobjects: Vec::new(),
        }
    }
}

impl SalesforceConfig {
    /// No app and no user.
    pub fn empty() -> Self {
        SalesforceConfig {
            apps: Vec::new(),
            users: Vec::new(),
            ..Default::default()
        }
    }

    /// Adds an app (replacing one with the same consumer key).
    pub fn with_app(mut self, app: ConnectedApp) -> Self {
        self.apps.retain(|a| a.consumer_key != app.consumer_key);
        self.apps.push(app);
        self
    }

    /// Changes the app with this consumer key (no-op when there is none).
    pub fn edit_app(mut self, consumer_key: &str, f: impl FnOnce(&mut ConnectedApp)) -> Self {
        if let Some(a) = self
            .apps
            .iter_mut()
            .find(|a| a.consumer_key == consumer_key)
        {
            f(a);
        }
        self
    }

    /// Adds a user (replacing one with the same username).
    pub fn with_user(mut self, user: User) -> Self {
        self.users.retain(|u| u.username != user.username);
        self.users.push(user);
        self
    }

    pub fn with_session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    pub fn with_sobject(mut self, name: &str) -> Self {
        self.extra_sobjects.push(name.into());
        self
    }
}

/// Which public host a listener stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostRole {
    Production,
    Sandbox,
    MyDomain,
}

/// What a test may want to know about a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub username: String,
    pub user_id: String,
    pub org_id: String,
    /// The identity URL, as in token answers.
    pub id_url: String,
    pub active: bool,
}

pub(crate) struct Shared {
    state: Mutex<State>,
    my_domain_origin: String,
    extra_sobjects: Vec<String>,
    api_delay_ms: AtomicU64,
    token_delay_ms: AtomicU64,
    api_in_flight: AtomicUsize,
    api_in_flight_max: AtomicUsize,
    /// 0 = no limit on concurrent API requests.
    api_concurrency_limit: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Clone)]
pub(crate) struct Ctx {
    shared: Arc<Shared>,
    role: HostRole,
}

/// The running simulator; its listeners stop when it is dropped.
pub struct SalesforceSim {
    shared: Arc<Shared>,
    production_url: String,
    sandbox_url: String,
    my_domain_url: String,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for SalesforceSim {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl SalesforceSim {
    /// Starts with [`SalesforceConfig::default`].
    pub async fn start() -> SalesforceSim {
        Self::start_with(SalesforceConfig::default()).await
    }

    pub async fn start_with(config: SalesforceConfig) -> SalesforceSim {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(&config)),
            my_domain_origin: config.my_domain_origin.trim_end_matches('/').to_string(),
            extra_sobjects: config.extra_sobjects.clone(),
            api_delay_ms: AtomicU64::new(0),
            token_delay_ms: AtomicU64::new(0),
            api_in_flight: AtomicUsize::new(0),
            api_in_flight_max: AtomicUsize::new(0),
            api_concurrency_limit: AtomicUsize::new(0),
        });
        let mut tasks = Vec::new();
        let mut urls = Vec::new();
        for role in [HostRole::Production, HostRole::Sandbox, HostRole::MyDomain] {
            let ctx = Ctx {
                shared: shared.clone(),
                role,
            };
            let mut router: Router<Ctx> = oauth::routes();
            if role == HostRole::MyDomain {
                router = router.merge(api::routes());
            }
            let app = router.fallback(api::not_found).with_state(ctx);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind salesforce simulator");
            urls.push(format!("http://{}", listener.local_addr().expect("addr")));
            tasks.push(tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }));
        }
        SalesforceSim {
            shared,
            production_url: urls[0].clone(),
            sandbox_url: urls[1].clone(),
            my_domain_url: urls[2].clone(),
            tasks,
        }
    }

    pub fn production_origin(&self) -> &str {
        PRODUCTION_ORIGIN
    }

    pub fn sandbox_origin(&self) -> &str {
        SANDBOX_ORIGIN
    }

    /// The public My Domain origin (also `instance_url`).
    pub fn my_domain_origin(&self) -> &str {
        &self.shared.my_domain_origin
    }

    /// `http://127.0.0.1:PORT` standing for login.salesforce.com.
    pub fn production_url(&self) -> &str {
        &self.production_url
    }

    /// `http://127.0.0.1:PORT` standing for test.salesforce.com.
    pub fn sandbox_url(&self) -> &str {
        &self.sandbox_url
    }

    /// `http://127.0.0.1:PORT` standing for the My Domain host.
    pub fn my_domain_url(&self) -> &str {
        &self.my_domain_url
    }

    /// The loopback base URL of a role.
    pub fn url_of(&self, role: HostRole) -> &str {
        match role {
            HostRole::Production => &self.production_url,
            HostRole::Sandbox => &self.sandbox_url,
            HostRole::MyDomain => &self.my_domain_url,
        }
    }

    /// The value for `LATCHKEY_OUTBOUND_REWRITES`: each public origin = its loopback origin.
    pub fn rewrites(&self) -> String {
        format!(
            "{}={},{}={},{}={}",
            PRODUCTION_ORIGIN,
            self.production_url,
            SANDBOX_ORIGIN,
            self.sandbox_url,
            self.my_domain_origin(),
            self.my_domain_url
        )
    }

    /// `url` with a public Salesforce origin replaced by its loopback one (unchanged otherwise).
    pub fn to_loopback(&self, url: &str) -> String {
        for (public, local) in [
            (PRODUCTION_ORIGIN, &self.production_url),
            (SANDBOX_ORIGIN, &self.sandbox_url),
            (self.my_domain_origin(), &self.my_domain_url),
        ] {
            if let Some(rest) = url.strip_prefix(public) {
                if rest.is_empty() || rest.starts_with(['/', '?', '#']) {
                    return format!("{local}{rest}");
                }
            }
        }
        url.to_string()
    }

    // ---- counters ----

    /// Token endpoint requests (successful or not) with this `grant_type`, on any host.
    pub fn token_requests(&self, grant_type: &str) -> usize {
        self.shared
            .lock()
            .token_requests
            .get(grant_type)
            .copied()
            .unwrap_or(0)
    }

    /// Token endpoint requests with `grant_type=refresh_token` (successful or not).
    pub fn refresh_count(&self) -> usize {
        self.token_requests("refresh_token")
    }

    /// Requests (GET or POST) that reached `/services/oauth2/authorize`.
    pub fn authorize_count(&self) -> usize {
        self.shared.lock().authorize_requests
    }

    /// Authorization codes issued (the user logged in and allowed access).
    pub fn codes_issued(&self) -> usize {
        self.shared.lock().codes_issued
    }

    /// API requests answered by the instance (`/services/data`, `/services/apexrest`).
    pub fn api_requests(&self) -> usize {
        self.shared.lock().api_requests
    }

    pub fn api_in_flight(&self) -> usize {
        self.shared.api_in_flight.load(Ordering::SeqCst)
    }

    /// The most API requests in flight at once since start or [`Self::reset_in_flight_max`].
    pub fn api_in_flight_max(&self) -> usize {
        self.shared.api_in_flight_max.load(Ordering::SeqCst)
    }

    pub fn reset_in_flight_max(&self) {
        self.shared.api_in_flight_max.store(
            self.shared.api_in_flight.load(Ordering::SeqCst),
            Ordering::SeqCst,
        );
    }

    /// Alive refresh-token grants of this user for this app (at most five).
    pub fn active_grants(&self, username: &str, client_id: &str) -> usize {
        self.shared.lock().active_grants(username, client_id)
    }

    pub fn user(&self, username: &str) -> Option<UserInfo> {
        let st = self.shared.lock();
        let u = st.users.get(username)?;
        Some(UserInfo {
            username: u.username.clone(),
            user_id: u.user_id.clone(),
            org_id: u.org_id.clone(),
            id_url: oauth::id_url(u),
            active: u.active,
        })
    }

    // ---- controls ----

    /// Every access token issued so far stops working; refresh tokens still work.
    pub fn expire_access_tokens(&self) {
        self.shared.lock().expire_access_tokens();
    }

    /// Revokes every grant and token of this user, in every app.
    pub fn revoke_all_grants_of(&self, username: &str) {
        self.shared.lock().revoke_user(username);
    }

    /// The user can no longer log in; their tokens fail (refresh: "authentication failure").
    pub fn deactivate_user(&self, username: &str) {
        self.set_user_active(username, false);
    }

    pub fn set_user_active(&self, username: &str, active: bool) {
        if let Some(u) = self.shared.lock().users.get_mut(username) {
            u.active = active;
        }
    }

    pub fn set_password(&self, username: &str, password: &str) {
        if let Some(u) = self.shared.lock().users.get_mut(username) {
            u.password = password.into();
        }
    }

    pub fn add_user(&self, user: User) {
        self.shared.lock().users.insert(user.username.clone(), user);
    }

    /// Adds or replaces a connected app.
    pub fn add_app(&self, app: ConnectedApp) {
        self.shared
            .lock()
            .apps
            .insert(app.consumer_key.clone(), app);
    }

    /// Changes a connected app in place (no-op when unknown).
    pub fn edit_app(&self, consumer_key: &str, f: impl FnOnce(&mut ConnectedApp)) {
        if let Some(a) = self.shared.lock().apps.get_mut(consumer_key) {
            f(a);
        }
    }

    /// Registers one more callback URL on an app (no-op when the app is unknown).
    pub fn add_callback_url(&self, consumer_key: &str, url: &str) {
        self.edit_app(consumer_key, |a| a.callback_urls.push(url.into()));
    }

    /// Whether this access token is alive now (asking does not slide its session).
    pub fn access_token_alive(&self, token: &str) -> bool {
        self.shared.lock().access_token_alive(token)
    }

    pub fn set_session_timeout(&self, timeout: Duration) {
        self.shared.lock().session_timeout = timeout;
    }

    /// Moves the simulator's clock forward (codes age, sessions idle out, `issued_at` grows).
    pub fn advance(&self, by: Duration) {
        self.shared.lock().offset += by;
    }

    /// A pause before each API request is answered (while it counts as in flight).
    pub fn set_api_delay(&self, delay: Duration) {
        self.shared
            .api_delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// A pause before each token request is handled.
    pub fn set_token_delay(&self, delay: Duration) {
        self.shared
            .token_delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Above this many concurrent API requests, the extra ones answer 403 REQUEST_LIMIT_EXCEEDED.
    pub fn set_api_concurrency_limit(&self, limit: Option<usize>) {
        self.shared
            .api_concurrency_limit
            .store(limit.unwrap_or(0), Ordering::SeqCst);
    }

    /// All token endpoint request counts, by grant type.
    pub fn token_request_counts(&self) -> HashMap<String, usize> {
        self.shared.lock().token_requests.clone()
    }

    // ---- browser ----

    /// Plays the user in a browser: opens `authorize_url` (a public Salesforce URL is sent to its
    /// loopback listener), logs in with these credentials, clicks Allow and returns the redirect
    /// `Location` (to the app's callback) without following it. An error page, a refused login
    /// or a missing redirect is an `Err` carrying the page text.
    pub async fn login_via_browser(
        &self,
        authorize_url: &str,
        username: &str,
        password: &str,
    ) -> anyhow::Result<String> {
        browser::submit(self, authorize_url, username, password, false).await
    }

    /// Like [`Self::login_via_browser`], but clicks Deny.
    pub async fn deny_via_browser(
        &self,
        authorize_url: &str,
        username: &str,
        password: &str,
    ) -> anyhow::Result<String> {
        browser::submit(self, authorize_url, username, password, true).await
    }
}
