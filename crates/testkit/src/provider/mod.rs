//! A generic OAuth 2.0 and API provider simulator configured from catalog entries: every
//! origin an entry names (its authorization, token and API hosts, with settings filled in) gets
//! a loopback listener, and requests are answered the way the entry says its provider behaves.
//! It is strict where Latchkey must follow the entry: the scope separator, PKCE, the client
//! authentication method, the token request encoding, the extra authorize and token
//! parameters, the injection rule and fixed headers. Its token answers put each field where the
//! entry's `token_fields` says, add the `keep` fields, and rotate refresh tokens (the old one
//! dies) when the entry says they rotate. A problem is answered 400 with a reason that names
//! the entry, so a failing row says what Latchkey got wrong.

mod api;
mod oauth;

use api::api;
pub(crate) use oauth::set_path;
use oauth::{authorize, direct_exchange, token};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use latchkey_core::catalog::{AppEntry, VerifySpec};
use latchkey_core::model::AuthMode;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use url::Url;

/// One connection the simulator serves: an entry, an auth mode, the connection's settings and
/// the secret values it will be given.
#[derive(Clone)]
pub struct SimRow {
    pub entry: AppEntry,
    pub mode: AuthMode,
    pub settings: Map<String, Value>,
    /// Static credential fields (`api_key`, `username`, …) or the OAuth client.
    pub creds: BTreeMap<String, String>,
}

impl SimRow {
    pub fn client_id(&self) -> String {
        format!("cid-{}-{}", self.entry.id, self.mode)
    }
    pub fn client_secret(&self) -> String {
        format!("cs-{}-{}", self.entry.id, self.mode)
    }
    /// Values of the fields a grant keeps, and of fields quirks learn.
    pub fn kept(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for name in self.entry.kept_names() {
            out.insert(name.clone(), kept_value(&self.entry.id, &name));
        }
        out
    }
    fn settings_with_defaults(&self) -> Map<String, Value> {
        let mut s = self.settings.clone();
        for f in &self.entry.settings {
            if !s.contains_key(&f.name) {
                if let Some(d) = &f.default {
                    s.insert(f.name.clone(), d.clone());
                }
            }
        }
        s
    }
    fn scopes(&self) -> Vec<String> {
        let s = self.settings_with_defaults();
        let list: Vec<String> = match s.get("scopes") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => self
                .entry
                .oauth
                .as_ref()
                .map(|o| o.default_scopes.clone())
                .unwrap_or_default(),
        };
        list.iter().map(|x| self.entry.fill_text(x, &s)).collect()
    }
    /// The scopes a service account's assertion asks for.
    pub fn sa_scopes(&self) -> Vec<String> {
        match self.settings_with_defaults().get("scopes") {
            Some(Value::Array(a)) if !a.is_empty() => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => self
                .entry
                .service_account
                .as_ref()
                .map(|s| s.default_scopes.clone())
                .unwrap_or_default(),
        }
    }
    /// The endpoint the entry's template names, or (the generic entry, whose endpoints are
    /// the connection's own) the URL in the setting of that name.
    fn endpoint(&self, template: Option<&str>, setting: &str) -> Option<Url> {
        let s = self.settings_with_defaults();
        match template {
            Some(t) => self.entry.fill(t, &s, &BTreeMap::new()).ok(),
            None => Url::parse(s.get(setting)?.as_str()?).ok(),
        }
    }
    pub fn authorize_url(&self) -> Option<Url> {
        let o = self.entry.oauth.as_ref()?;
        self.endpoint(o.authorize_url.as_deref(), "authorization_url")
    }
    pub fn token_url(&self) -> Option<Url> {
        let o = self.entry.oauth.as_ref()?;
        self.endpoint(o.token_url.as_deref(), "token_url")
    }
    pub fn base_url(&self) -> Option<Url> {
        let s = self.settings_with_defaults();
        if let Some(b) = s.get("base_url").and_then(Value::as_str) {
            return Url::parse(b).ok();
        }
        self.entry
            .fill(self.entry.base_url.as_deref()?, &s, &self.kept())
            .ok()
    }
    /// The verification request's method and URL.
    pub fn verify_request(&self) -> Option<(String, Url)> {
        let Some(VerifySpec::Http {
            method,
            path: Some(path),
            ..
        }) = &self.entry.verify
        else {
            return None;
        };
        let s = self.settings_with_defaults();
        let url = if path.starts_with("https://") {
            self.entry.fill(path, &s, &self.kept()).ok()?
        } else {
            let base = self.base_url()?;
            let p = self.entry.fill_text(path, &s);
            let mut u = base.clone();
            let joined = format!(
                "{}/{}",
                base.path().trim_end_matches('/'),
                p.trim_start_matches('/')
            );
            match joined.split_once('?') {
                Some((a, b)) => {
                    u.set_path(a);
                    u.set_query(Some(b));
                }
                None => u.set_path(&joined),
            }
            u
        };
        Some((method.clone(), url))
    }
    /// Every origin this row's requests go to.
    pub fn origins(&self) -> Vec<String> {
        let mut out = vec![];
        for u in [
            self.authorize_url(),
            self.token_url(),
            self.base_url(),
            self.sa_token_url(),
            self.login_url(),
        ]
        .into_iter()
        .flatten()
        {
            out.push(u.origin().ascii_serialization());
        }
        if let Some((_, u)) = self.verify_request() {
            out.push(u.origin().ascii_serialization());
        }
        if self.entry.quirks.iter().any(|q| q == "mailchimp_metadata") {
            out.push("https://login.mailchimp.com".into());
        }
        out
    }
}

/// What a kept field holds in the simulator: an https origin (it may open the base URL).
pub fn kept_value(entry: &str, name: &str) -> String {
    format!("https://{}-{}.kept.test", entry, name.replace('_', "-"))
}

#[derive(Default)]
struct Grants {
    /// code → (row index, code_challenge, redirect_uri)
    codes: HashMap<String, (usize, Option<String>, String)>,
    access: HashMap<String, usize>,
    /// When each access token was issued (it dies a lifetime later).
    issued: HashMap<String, std::time::Instant>,
    refresh: HashMap<String, usize>,
    counter: u64,
}

impl Grants {
    /// Whether the access token was issued here and has not expired.
    fn live(&self, token: &str, lifetime: std::time::Duration) -> bool {
        self.issued
            .get(token)
            .is_some_and(|at| at.elapsed() < lifetime)
    }
}

struct Sim {
    rows: Vec<SimRow>,
    grants: Mutex<Grants>,
    /// Requests by row id and kind (`authorize`, `token:refresh_token`, `verify`, `api`).
    pub seen: Mutex<HashMap<String, Vec<String>>>,
    /// Seconds an access token lives (`expires_in`); 3600 unless a test shortens it.
    lifetime_secs: std::sync::atomic::AtomicU64,
}

impl Sim {
    fn lifetime(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.lifetime_secs
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }
}

/// The running simulator.
pub struct ProviderSim {
    sim: Arc<Sim>,
    listeners: BTreeMap<String, String>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for ProviderSim {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

type Shared = (Arc<Sim>, String);

impl ProviderSim {
    /// Starts one loopback listener per origin of the rows (and of `extra_origins`).
    pub async fn start(rows: Vec<SimRow>, extra_origins: &[String]) -> Self {
        let mut origins: Vec<String> = rows.iter().flat_map(SimRow::origins).collect();
        origins.extend(extra_origins.iter().cloned());
        origins.sort();
        origins.dedup();
        let sim = Arc::new(Sim {
            rows,
            grants: Mutex::new(Grants::default()),
            seen: Mutex::new(HashMap::new()),
            lifetime_secs: std::sync::atomic::AtomicU64::new(3600),
        });
        let mut listeners = BTreeMap::new();
        let mut tasks = vec![];
        for origin in origins {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = l.local_addr().expect("addr");
            let app = axum::Router::new()
                .fallback(handle)
                .with_state((sim.clone(), origin.clone()));
            tasks.push(tokio::spawn(async move {
                let _ = axum::serve(l, app).await;
            }));
            listeners.insert(origin, format!("http://{addr}"));
        }
        Self {
            sim,
            listeners,
            tasks,
        }
    }

    /// `LATCHKEY_OUTBOUND_REWRITES` pairs sending every origin to its listener.
    pub fn rewrites(&self) -> String {
        self.listeners
            .iter()
            .map(|(from, to)| format!("{from}={to}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A grant as another platform would hand it over: a fresh access and refresh token the
    /// simulator accepts for this row.
    pub fn mint_grant(&self, row_id: &str, mode: AuthMode) -> (String, String) {
        let idx = self
            .sim
            .rows
            .iter()
            .position(|r| r.entry.id == row_id && r.mode == mode)
            .expect("row");
        let mut g = self.sim.grants.lock().unwrap();
        g.counter += 1;
        let at = format!("at-{:016x}-m{}", rand::random::<u64>(), g.counter);
        let rt = format!("rt-{:016x}-m{}", rand::random::<u64>(), g.counter);
        g.access.insert(at.clone(), idx);
        g.issued.insert(at.clone(), std::time::Instant::now());
        g.refresh.insert(rt.clone(), idx);
        (at, rt)
    }

    /// Makes the access tokens issued from now on live `secs` seconds (`expires_in`); the API
    /// refuses a token once its life is over.
    pub fn set_token_lifetime(&self, secs: u64) {
        self.sim
            .lifetime_secs
            .store(secs, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether this access token was issued here and is still alive (asking does not use it).
    pub fn access_token_alive(&self, token: &str) -> bool {
        self.sim
            .grants
            .lock()
            .unwrap()
            .live(token, self.sim.lifetime())
    }

    /// The kinds of requests a row's provider received, in order.
    pub fn seen(&self, row_id: &str) -> Vec<String> {
        self.sim
            .seen
            .lock()
            .unwrap()
            .get(row_id)
            .cloned()
            .unwrap_or_default()
    }
}

fn bad(entry: &str, why: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(
            json!({"error": "invalid_request", "error_description": format!("[{entry}] {why}")}),
        ),
    )
        .into_response()
}

fn oauth_error(row: &SimRow, status: StatusCode, error: &str) -> Response {
    if row.entry.quirks.iter().any(|q| q == "slack_ok_envelope") {
        let slack = if error == "invalid_grant" {
            "invalid_refresh_token"
        } else {
            error
        };
        return axum::Json(json!({"ok": false, "error": slack})).into_response();
    }
    (
        status,
        axum::Json(
            json!({"error": error, "error_description": format!("[{}] {error}", row.entry.id)}),
        ),
    )
        .into_response()
}

fn note(sim: &Sim, row: &SimRow, what: &str) {
    sim.seen
        .lock()
        .unwrap()
        .entry(row.entry.id.clone())
        .or_default()
        .push(what.to_string());
}

async fn handle(
    State((sim, origin)): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let q: HashMap<String, String> = query.iter().cloned().collect();
    // The authorization endpoint.
    if method == Method::GET {
        if let Some(cid) = q.get("client_id") {
            if let Some((i, row)) = sim.rows.iter().enumerate().find(|(_, r)| {
                &r.client_id() == cid
                    && r.authorize_url().is_some_and(|u| {
                        u.origin().ascii_serialization() == origin && u.path() == path
                    })
            }) {
                return authorize(&sim, i, row, &q);
            }
        }
    }
    if method == Method::POST {
        if let Some(r) = direct_exchange(&sim, &origin, &path, &headers, &body) {
            return r;
        }
        let token_rows: Vec<usize> = sim
            .rows
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.token_url()
                    .is_some_and(|u| u.origin().ascii_serialization() == origin && u.path() == path)
            })
            .map(|(i, _)| i)
            .collect();
        if !token_rows.is_empty() {
            return token(&sim, &token_rows, &headers, &body);
        }
    }
    if path == "/oauth2/metadata" && origin == "https://login.mailchimp.com" {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let tok = auth.strip_prefix("OAuth ").unwrap_or_default();
        let g = sim.grants.lock().unwrap();
        return match g.access.get(tok) {
            Some(&i) => {
                let row = &sim.rows[i];
                axum::Json(
                    json!({"dc": "us1", "api_endpoint": kept_value(&row.entry.id, "api_endpoint")}),
                )
                .into_response()
            }
            None => (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"error": "invalid_token"})),
            )
                .into_response(),
        };
    }
    api(&sim, &origin, &method, &uri, &headers, &q)
}
