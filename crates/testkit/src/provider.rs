//! A generic OAuth 2.0 and API provider simulator configured from catalog entries: every
//! origin an entry names (its authorization, token and API hosts, with settings filled in) gets
//! a loopback listener, and requests are answered the way the entry says its provider behaves.
//! It is strict where Latchkey must follow the entry: the scope separator, PKCE, the client
//! authentication method, the token request encoding, the extra authorize and token
//! parameters, the injection rule and fixed headers. Its token answers put each field where the
//! entry's `token_fields` says, add the `keep` fields, and rotate refresh tokens (the old one
//! dies) when the entry says they rotate. A problem is answered 400 with a reason that names
//! the entry, so a failing row says what Latchkey got wrong.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use latchkey_core::catalog::{
    AppEntry, ClientAuthMethod, InjectStyle, RefreshStyle, TokenBody, VerifySpec,
};
use latchkey_core::model::AuthMode;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
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

/// A service account's assertion or a token exchange's login, answered with a new token.
fn direct_exchange(
    sim: &Sim,
    origin: &str,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Option<Response> {
    use crate::exchange_sim as x;
    let at = |u: Option<Url>| {
        u.is_some_and(|u| u.origin().ascii_serialization() == origin && u.path() == path)
    };
    let form: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let found = if form.get("grant_type").map(String::as_str)
        == Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        let url = sim
            .rows
            .iter()
            .find_map(|r| r.sa_token_url().filter(|u| at(Some(u.clone()))))?;
        x::check_assertion(&sim.rows, url.as_str(), &form).map(|i| (i, None))
    } else {
        let logins: Vec<usize> = (0..sim.rows.len())
            .filter(|&i| at(sim.rows[i].login_url()))
            .collect();
        if logins.is_empty() {
            return None;
        }
        let json_body = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("application/json"));
        x::check_login(&sim.rows, &logins, json_body, body).map(|i| (i, Some(())))
    };
    let (i, login) = match found {
        Ok(f) => f,
        Err(why) => return Some(bad("exchange", why)),
    };
    let row = &sim.rows[i];
    note(
        sim,
        row,
        if login.is_some() {
            "login"
        } else {
            "token:jwt-bearer"
        },
    );
    let mut g = sim.grants.lock().unwrap();
    g.counter += 1;
    let at = format!("at-{:016x}-{}", rand::random::<u64>(), g.counter);
    g.access.insert(at.clone(), i);
    g.issued.insert(at.clone(), std::time::Instant::now());
    Some(match login {
        Some(()) => axum::Json(x::login_answer(row, &at)).into_response(),
        None => axum::Json(json!({"access_token": at, "token_type": "Bearer", "expires_in": 3599}))
            .into_response(),
    })
}

fn authorize(sim: &Sim, i: usize, row: &SimRow, q: &HashMap<String, String>) -> Response {
    let id = &row.entry.id;
    let o = row.entry.oauth.as_ref().expect("oauth");
    if q.get("response_type").map(String::as_str) != Some("code") {
        return bad(id, "response_type must be code");
    }
    let Some(redirect) = q.get("redirect_uri") else {
        return bad(id, "no redirect_uri");
    };
    let Some(state) = q.get("state") else {
        return bad(id, "no state");
    };
    let want = row.scopes().join(&o.scope_separator);
    if !want.is_empty() && q.get("scope") != Some(&want) {
        return bad(
            id,
            format!(
                "scope must be `{want}` (separator `{}`), got {:?}",
                o.scope_separator,
                q.get("scope")
            ),
        );
    }
    let challenge = q.get("code_challenge").cloned();
    if o.pkce != challenge.is_some() {
        return bad(
            id,
            format!(
                "PKCE is {} for this provider",
                if o.pkce { "required" } else { "not used" }
            ),
        );
    }
    if o.pkce && q.get("code_challenge_method").map(String::as_str) != Some("S256") {
        return bad(id, "code_challenge_method must be S256");
    }
    let s = row.settings_with_defaults();
    for (k, v) in &o.authorize_params {
        let v = row.entry.fill_text(v, &s);
        if q.get(k) != Some(&v) {
            return bad(id, format!("authorize parameter {k} must be {v}"));
        }
    }
    note(sim, row, "authorize");
    let mut g = sim.grants.lock().unwrap();
    g.counter += 1;
    let code = format!("code-{id}-{}", g.counter);
    g.codes
        .insert(code.clone(), (i, challenge, redirect.clone()));
    let mut loc = Url::parse(redirect).expect("redirect uri");
    loc.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", state);
    (StatusCode::FOUND, [("location", loc.to_string())]).into_response()
}

pub(crate) fn set_path(doc: &mut Value, path: &str, v: Value) {
    let parts: Vec<&str> = path.split('.').collect();
    let mut cur = doc;
    for (n, p) in parts.iter().enumerate() {
        if n + 1 == parts.len() {
            cur[*p] = v;
            return;
        }
        if !cur.get(*p).is_some_and(Value::is_object) {
            cur[*p] = json!({});
        }
        cur = cur.get_mut(*p).expect("object");
    }
}

fn token(sim: &Sim, candidates: &[usize], headers: &HeaderMap, body: &Bytes) -> Response {
    let ctype = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let form: HashMap<String, String> = if ctype.starts_with("application/json") {
        serde_json::from_slice::<Map<String, Value>>(body)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string())))
            .collect()
    } else {
        url::form_urlencoded::parse(body).into_owned().collect()
    };
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        });
    let cid = basic
        .as_ref()
        .map(|(a, _)| a.clone())
        .or_else(|| form.get("client_id").cloned())
        .unwrap_or_default();
    let Some(&i) = candidates.iter().find(|&&i| sim.rows[i].client_id() == cid) else {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client", "error_description": format!("unknown client {cid}")}))).into_response();
    };
    let row = &sim.rows[i];
    let id = &row.entry.id;
    let o = row.entry.oauth.as_ref().expect("oauth");
    let json_body = ctype.starts_with("application/json");
    if (o.token_body == TokenBody::Json) != json_body {
        return bad(
            id,
            format!(
                "the token request must be {:?}, got content type {ctype}",
                o.token_body
            ),
        );
    }
    match o.client_auth.unwrap_or(ClientAuthMethod::ClientSecretBasic) {
        ClientAuthMethod::ClientSecretBasic => {
            if basic.as_ref().map(|(_, s)| s.clone()) != Some(row.client_secret())
                || form.contains_key("client_secret")
            {
                return bad(
                    id,
                    "client_secret_basic: the client must authenticate with HTTP Basic only",
                );
            }
        }
        ClientAuthMethod::ClientSecretPost => {
            if basic.is_some() || form.get("client_secret") != Some(&row.client_secret()) {
                return bad(
                    id,
                    "client_secret_post: id and secret must be in the body, no Basic header",
                );
            }
        }
    }
    let s = row.settings_with_defaults();
    for (k, v) in &o.token_params {
        let v = row.entry.fill_text(v, &s);
        if form.get(k) != Some(&v) {
            return bad(id, format!("token parameter {k} must be {v}"));
        }
    }
    let grant = form.get("grant_type").cloned().unwrap_or_default();
    let mut g = sim.grants.lock().unwrap();
    match grant.as_str() {
        "authorization_code" => {
            let code = form.get("code").cloned().unwrap_or_default();
            let Some((ci, challenge, redirect)) = g.codes.remove(&code) else {
                return oauth_error(row, StatusCode::BAD_REQUEST, "invalid_grant");
            };
            if ci != i || form.get("redirect_uri") != Some(&redirect) {
                return bad(id, "the code belongs to another client or redirect_uri");
            }
            if let Some(ch) = challenge {
                let v = form.get("code_verifier").cloned().unwrap_or_default();
                let h = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(Sha256::digest(v.as_bytes()));
                if h != ch {
                    return bad(id, "the PKCE verifier does not match");
                }
            } else if form.contains_key("code_verifier") {
                return bad(id, "a code_verifier without PKCE");
            }
        }
        "refresh_token" => {
            let rt = form.get("refresh_token").cloned().unwrap_or_default();
            if g.refresh.get(&rt) != Some(&i) {
                return oauth_error(row, StatusCode::BAD_REQUEST, "invalid_grant");
            }
            if o.refresh == RefreshStyle::Rotate {
                g.refresh.remove(&rt);
            }
        }
        "client_credentials" if row.mode == AuthMode::OAuth2ClientCredentials => {}
        other => return bad(id, format!("unexpected grant_type {other}")),
    }
    drop(g);
    note(sim, row, &format!("token:{grant}"));
    let mut g = sim.grants.lock().unwrap();
    g.counter += 1;
    // Opaque: a token that spells the entry id would be scrubbed out of every echo of it.
    let at = format!("at-{:016x}-{}", rand::random::<u64>(), g.counter);
    g.access.insert(at.clone(), i);
    g.issued.insert(at.clone(), std::time::Instant::now());
    let mut doc = json!({});
    let f = &o.token_fields;
    set_path(&mut doc, f.path("access_token"), json!(at));
    set_path(&mut doc, f.path("token_type"), json!("Bearer"));
    let issue_refresh = grant == "authorization_code" && o.refresh != RefreshStyle::None
        || grant == "refresh_token" && o.refresh == RefreshStyle::Rotate;
    if issue_refresh {
        let rt = format!("rt-{:016x}-{}", rand::random::<u64>(), g.counter);
        g.refresh.insert(rt.clone(), i);
        set_path(&mut doc, f.path("refresh_token"), json!(rt));
    }
    if o.refresh != RefreshStyle::None || row.mode == AuthMode::OAuth2ClientCredentials {
        set_path(
            &mut doc,
            f.path("expires_in"),
            json!(sim.lifetime().as_secs()),
        );
    }
    let scope = row.scopes().join(&o.scope_separator);
    set_path(&mut doc, f.path("scope"), json!(scope));
    for (name, path) in &o.keep {
        set_path(&mut doc, path, json!(kept_value(id, name)));
    }
    if row.entry.quirks.iter().any(|q| q == "slack_ok_envelope") {
        doc["ok"] = json!(true);
    }
    axum::Json(doc).into_response()
}

type Pair = (String, String);

/// The credential the row's rule puts on a request, as (header name, value) or a query pair.
fn expected(row: &SimRow, token: Option<&str>) -> (Vec<Pair>, Option<Pair>) {
    let lookup = |k: &str| -> String {
        if k == "access_token" {
            return token.unwrap_or_default().to_string();
        }
        row.creds
            .get(k)
            .cloned()
            .or_else(|| {
                row.settings
                    .get(k)
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_default()
    };
    let fill = |t: &str| -> String {
        let mut out = t.to_string();
        for name in [
            "access_token",
            "api_key",
            "username",
            "password",
            "api_secret",
            "application_key",
            "secret_key",
        ] {
            out = out.replace(&format!("{{{name}}}"), &lookup(name));
        }
        out
    };
    let default = if token.is_some() {
        "{access_token}"
    } else if row.mode == AuthMode::Basic {
        "{username}"
    } else {
        "{api_key}"
    };
    let mut headers = vec![];
    let mut query = None;
    match &row.entry.inject {
        None if token.is_some() => headers.push((
            "authorization".into(),
            format!("Bearer {}", lookup("access_token")),
        )),
        None if row.mode == AuthMode::Basic => {
            let b = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                lookup("username"),
                lookup("password")
            ));
            headers.push(("authorization".into(), format!("Basic {b}")));
        }
        None if row.entry.setting("api_key_name").is_none() => headers.push((
            "authorization".into(),
            format!("Bearer {}", lookup("api_key")),
        )),
        None => {
            let s = row.settings_with_defaults();
            let name = s
                .get("api_key_name")
                .and_then(Value::as_str)
                .unwrap_or("X-API-Key")
                .to_ascii_lowercase();
            headers.push((name, lookup("api_key")));
        }
        Some(rule) => {
            let value = fill(rule.value.as_deref().unwrap_or(default));
            match rule.style {
                InjectStyle::Bearer => {
                    headers.push(("authorization".into(), format!("Bearer {value}")))
                }
                InjectStyle::Header => headers.push((
                    rule.name
                        .clone()
                        .unwrap_or("Authorization".into())
                        .to_ascii_lowercase(),
                    value,
                )),
                InjectStyle::Query => {
                    query = Some((rule.name.clone().unwrap_or("key".into()), value))
                }
                InjectStyle::Basic => {
                    let user = fill(rule.username.as_deref().unwrap_or(default));
                    let pass = fill(rule.password.as_deref().unwrap_or(
                        if row.mode == AuthMode::Basic {
                            "{password}"
                        } else {
                            ""
                        },
                    ));
                    let b =
                        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
                    headers.push(("authorization".into(), format!("Basic {b}")));
                }
            }
        }
    }
    let s = row.settings_with_defaults();
    for (k, v) in &row.entry.headers {
        let mut v = fill(v);
        for (sk, sv) in &s {
            if let Some(sv) = sv.as_str() {
                v = v.replace(&format!("{{{sk}}}"), sv);
            }
        }
        headers.push((k.to_ascii_lowercase(), v));
    }
    (headers, query)
}

/// Whether a request carries the row's signature: an OAuth 1.0a header naming its consumer,
/// token, method and realm, or an AWS SigV4 header naming its key, region and service (with
/// the date, the payload hash and the session token beside it). The signatures themselves are
/// checked by oauthlib and botocore in the tests of those modes.
fn signed_ok(row: &SimRow, headers: &HeaderMap) -> bool {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let cred = |n: &str| row.creds.get(n).cloned().unwrap_or_default();
    let s = row.settings_with_defaults();
    let set = |n: &str| {
        s.get(n)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let auth = h("authorization");
    match row.mode {
        AuthMode::OAuth1 | AuthMode::OAuth1Token => {
            let realm = match set("realm") {
                r if !r.is_empty() => Some(r),
                _ => Some(set("account_id").to_ascii_uppercase().replace('-', "_"))
                    .filter(|r| !r.is_empty()),
            };
            auth.starts_with("OAuth ")
                && auth.contains(&format!("oauth_consumer_key=\"{}\"", cred("consumer_key")))
                && auth.contains(&format!("oauth_token=\"{}\"", cred("token_id")))
                && auth.contains(&format!(
                    "oauth_signature_method=\"{}\"",
                    set("signature_method")
                ))
                && auth.contains("oauth_signature=\"")
                && realm.is_none_or(|r| auth.contains(&format!("realm=\"{r}\"")))
        }
        AuthMode::AwsSigv4 => {
            let scope = format!("/{}/{}/aws4_request", set("region"), set("service"));
            auth.starts_with(&format!(
                "AWS4-HMAC-SHA256 Credential={}/",
                cred("access_key_id")
            )) && auth.contains(&scope)
                && !h("x-amz-date").is_empty()
                && h("x-amz-content-sha256").len() == 64
                && row
                    .creds
                    .get("session_token")
                    .is_none_or(|t| h("x-amz-security-token") == t)
        }
        _ => false,
    }
}

fn api(
    sim: &Sim,
    origin: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
) -> Response {
    let header_ok = |want: &[(String, String)]| {
        want.iter()
            .all(|(k, v)| headers.get(k.as_str()).and_then(|h| h.to_str().ok()) == Some(v.as_str()))
    };
    let lifetime = sim.lifetime();
    let access: Vec<(String, usize)> = {
        let g = sim.grants.lock().unwrap();
        g.access
            .iter()
            .filter(|(k, _)| g.live(k, lifetime))
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    };
    let mut found: Option<usize> = None;
    let mut near: Option<String> = None;
    for (i, row) in sim.rows.iter().enumerate() {
        let on_origin = row
            .base_url()
            .is_some_and(|u| u.origin().ascii_serialization() == origin)
            || row
                .verify_request()
                .is_some_and(|(_, u)| u.origin().ascii_serialization() == origin);
        if !on_origin {
            continue;
        }
        if row.mode.is_signed() {
            if signed_ok(row, headers) {
                found = Some(i);
                break;
            }
            continue;
        }
        let tokens: Vec<Option<&str>> = if row.mode.has_tokens() {
            access
                .iter()
                .filter(|(_, r)| *r == i)
                .map(|(t, _)| Some(t.as_str()))
                .collect()
        } else {
            vec![None]
        };
        for t in tokens {
            let (want_h, want_q) = expected(row, t);
            let q_ok = want_q.as_ref().is_none_or(|(k, v)| q.get(k) == Some(v));
            if q_ok && header_ok(&want_h) {
                found = Some(i);
                break;
            }
            if want_h.iter().take(1).all(|(k, v)| {
                headers.get(k.as_str()).and_then(|h| h.to_str().ok()) == Some(v.as_str())
            }) && q_ok
            {
                near = Some(format!(
                    "[{}] the credential is right but the fixed headers are not: want {:?}",
                    row.entry.id,
                    want_h.iter().map(|(k, _)| k).collect::<Vec<_>>()
                ));
            }
        }
        if found.is_some() {
            break;
        }
    }
    let Some(i) = found else {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_token", "message": near.unwrap_or_else(|| "no known credential".into())}))).into_response();
    };
    let row = &sim.rows[i];
    if let Some((m, u)) = row.verify_request() {
        let mut got_q: Vec<(String, String)> =
            url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let mut want_q: Vec<(String, String)> = u.query_pairs().into_owned().collect();
        if let Some(rule) = row
            .entry
            .inject
            .as_ref()
            .filter(|r| r.style == InjectStyle::Query)
        {
            got_q.retain(|(k, _)| Some(k) != rule.name.as_ref());
        }
        got_q.sort();
        want_q.sort();
        if u.origin().ascii_serialization() == origin
            && u.path() == uri.path()
            && m == method.as_str()
            && got_q == want_q
        {
            note(sim, row, "verify");
            let mut doc = json!({"id": format!("user-{}", row.entry.id)});
            if let Some(VerifySpec::Http {
                expect_pointer: Some(p),
                expect_value,
                ..
            }) = &row.entry.verify
            {
                let path = p.trim_start_matches('/').replace('/', ".");
                set_path(
                    &mut doc,
                    &path,
                    expect_value.clone().unwrap_or(json!("present")),
                );
            }
            return axum::Json(doc).into_response();
        }
    }
    note(sim, row, "api");
    axum::Json(json!({"sim": "echo", "entry": row.entry.id, "method": method.as_str(), "path": uri.path()})).into_response()
}
