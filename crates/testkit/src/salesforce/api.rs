//! The REST API of the instance (My Domain host): versions, limits, sobjects, a tiny query
//! engine over fixed records, and `/services/apexrest/echo` for proxy tests.

// Early answers are axum `Response`s, as handlers return them.
#![allow(clippy::result_large_err)]

use super::oauth::{bearer, pairs};
use super::state::has_api;
use super::{Ctx, Shared, User, API_VERSIONS};
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::sync::atomic::Ordering;
use std::time::Duration;

const DAILY_API_MAX: usize = 5000;
const BODY_LIMIT: usize = 10 * 1024 * 1024;

pub(super) fn routes() -> Router<Ctx> {
    Router::new()
        .route("/services/data", get(versions))
        .route("/services/data/", get(versions))
        .route("/services/data/{version}", get(resources))
        .route("/services/data/{version}/", get(resources))
        .route("/services/data/{version}/limits", get(limits))
        .route("/services/data/{version}/limits/", get(limits))
        .route("/services/data/{version}/sobjects", get(sobjects))
        .route("/services/data/{version}/sobjects/", get(sobjects))
        .route("/services/data/{version}/query", get(query).post(query))
        .route("/services/data/{version}/query/", get(query).post(query))
        .route("/services/apexrest/echo", any(echo))
        .route("/services/apexrest/echo/{*rest}", any(echo))
}

fn rest_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!([{"message": message, "errorCode": code}])),
    )
        .into_response()
}

pub(super) async fn not_found() -> Response {
    rest_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}

/// Keeps an API request counted as in flight until dropped.
struct InFlight<'a>(&'a Shared);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.api_in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts the request in flight, applies the concurrency limit and the configured delay.
async fn enter(shared: &Shared) -> Result<InFlight<'_>, Response> {
    let now = shared.api_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let guard = InFlight(shared);
    shared.api_in_flight_max.fetch_max(now, Ordering::SeqCst);
    let limit = shared.api_concurrency_limit.load(Ordering::SeqCst);
    if limit > 0 && now > limit {
        return Err(rest_error(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "ConcurrentPerOrgLongTxn Limit exceeded.",
        ));
    }
    let delay = shared.api_delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    Ok(guard)
}

/// The user of a live token with the `api` scope; the 401 Salesforce gives otherwise.
fn authorize(ctx: &Ctx, headers: &HeaderMap) -> Result<User, Response> {
    let expired = || {
        rest_error(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        )
    };
    let token = bearer(headers).ok_or_else(expired)?;
    let mut st = ctx.shared.lock();
    let (access, user) = st.use_access_token(&token).ok_or_else(expired)?;
    if !has_api(&access.scopes) {
        let mut refused = rest_error(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "This session is not valid for use with the REST API",
        );
        // Salesforce's answers set a browser cookie, errors included.
        refused.headers_mut().insert(
            axum::http::header::SET_COOKIE,
            HeaderValue::from_static("BrowserId=sim; Path=/; Secure"),
        );
        return Err(refused);
    }
    st.api_requests += 1;
    Ok(user)
}

/// A successful answer with `Sforce-Limit-Info`.
fn ok(ctx: &Ctx, body: Value) -> Response {
    let used = ctx.shared.lock().api_requests;
    let mut r = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("api-usage={used}/{DAILY_API_MAX}")) {
        r.headers_mut().insert("sforce-limit-info", v);
    }
    r
}

/// `v62.0` → `62.0` when the instance serves it (every version from 20.0 up to the newest).
fn served_version(v: &str) -> Option<String> {
    let n = v
        .strip_prefix('v')?
        .strip_suffix(".0")?
        .parse::<u32>()
        .ok()?;
    let newest = API_VERSIONS
        .iter()
        .filter_map(|(v, _)| v.strip_suffix(".0")?.parse::<u32>().ok())
        .max()?;
    (20..=newest).contains(&n).then(|| format!("{n}.0"))
}

/// Entry, version check and authentication common to versioned resources.
macro_rules! api_call {
    ($ctx:expr, $headers:expr, $version:expr) => {{
        let _in_flight = match enter(&$ctx.shared).await {
            Ok(g) => g,
            Err(r) => return r,
        };
        let Some(v) = served_version(&$version) else {
            return not_found().await;
        };
        let user = match authorize(&$ctx, &$headers) {
            Ok(u) => u,
            Err(r) => return r,
        };
        (_in_flight, v, user)
    }};
}

async fn versions(State(ctx): State<Ctx>) -> Response {
    let _in_flight = match enter(&ctx.shared).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    let list: Vec<Value> = API_VERSIONS
        .iter()
        .map(|(v, label)| json!({"label": label, "url": format!("/services/data/v{v}"), "version": v}))
        .collect();
    Json(Value::Array(list)).into_response()
}

async fn resources(
    State(ctx): State<Ctx>,
    Path(version): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (_g, v, _user) = api_call!(ctx, headers, version);
    let base = format!("/services/data/v{v}");
    ok(
        &ctx,
        json!({
            "limits": format!("{base}/limits"),
            "sobjects": format!("{base}/sobjects"),
            "query": format!("{base}/query"),
        }),
    )
}

async fn limits(
    State(ctx): State<Ctx>,
    Path(version): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (_g, _v, _user) = api_call!(ctx, headers, version);
    let used = ctx.shared.lock().api_requests;
    let max_remaining =
        |max: usize, used: usize| json!({"Max": max, "Remaining": max.saturating_sub(used)});
    ok(
        &ctx,
        json!({
            "DailyApiRequests": max_remaining(DAILY_API_MAX, used),
            "DailyAsyncApexExecutions": max_remaining(250000, 0),
            "DailyBulkApiBatches": max_remaining(15000, 0),
            "DataStorageMB": max_remaining(1024, 12),
            "FileStorageMB": max_remaining(1024, 3),
            "ConcurrentAsyncGetReportInstances": max_remaining(200, 0),
            "ConcurrentSyncReportRuns": max_remaining(20, 0),
            "HourlyODataCallout": max_remaining(10000, 0),
        }),
    )
}

const STANDARD_SOBJECTS: &[&str] = &[
    "Account",
    "Contact",
    "Lead",
    "Opportunity",
    "Case",
    "User",
    "Organization",
];

fn known_sobjects(ctx: &Ctx) -> Vec<String> {
    STANDARD_SOBJECTS
        .iter()
        .map(|s| s.to_string())
        .chain(ctx.shared.extra_sobjects.iter().cloned())
        .collect()
}

async fn sobjects(
    State(ctx): State<Ctx>,
    Path(version): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (_g, v, _user) = api_call!(ctx, headers, version);
    let list: Vec<Value> = known_sobjects(&ctx)
        .into_iter()
        .map(|name| {
            let url = format!("/services/data/v{v}/sobjects/{name}");
            json!({
                "name": name,
                "label": name.trim_end_matches("__c").replace('_', " "),
                "custom": name.ends_with("__c"),
                "queryable": true,
                "urls": {
                    "sobject": url,
                    "describe": format!("{url}/describe"),
                    "rowTemplate": format!("{url}/{{ID}}"),
                },
            })
        })
        .collect();
    ok(
        &ctx,
        json!({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": list}),
    )
}

/// The fixed rows of an object, each a list of (field, value).
fn records_of(object: &str, user: &User, extra: &[String]) -> Option<Vec<Vec<(String, Value)>>> {
    let row = |fields: &[(&str, Value)]| -> Vec<(String, Value)> {
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    };
    let lower = object.to_ascii_lowercase();
    let rows = match lower.as_str() {
        "account" => [
            ("001SIM000000001AAA", "Acme Corporation", "Technology"),
            ("001SIM000000002AAA", "Globex", "Manufacturing"),
            ("001SIM000000003AAA", "Initech", "Finance"),
        ]
        .iter()
        .map(|(id, name, industry)| {
            row(&[
                ("Id", json!(id)),
                ("Name", json!(name)),
                ("Industry", json!(industry)),
            ])
        })
        .collect(),
        "contact" => [
            ("003SIM000000001AAA", "Ada", "Lovelace"),
            ("003SIM000000002AAA", "Grace", "Hopper"),
        ]
        .iter()
        .map(|(id, first, last)| {
            row(&[
                ("Id", json!(id)),
                ("FirstName", json!(first)),
                ("LastName", json!(last)),
                ("Name", json!(format!("{first} {last}"))),
                (
                    "Email",
                    json!(format!("{}@acme.example.com", first.to_lowercase())),
                ),
                ("AccountId", json!("001SIM000000001AAA")),
            ])
        })
        .collect(),
        "user" => vec![row(&[
            ("Id", json!(user.user_id)),
            ("Username", json!(user.username)),
            ("Name", json!(user.name)),
            ("Email", json!(user.email)),
            ("IsActive", json!(user.active)),
        ])],
        "organization" => vec![row(&[
            ("Id", json!(user.org_id)),
            ("Name", json!("Acme")),
            ("IsSandbox", json!(user.sandbox)),
            ("OrganizationType", json!("Enterprise Edition")),
        ])],
        "lead" | "opportunity" | "case" => Vec::new(),
        _ => {
            let name = extra.iter().find(|e| e.eq_ignore_ascii_case(object))?;
            (1..=2)
                .map(|i| {
                    row(&[
                        ("Id", json!(format!("a0XSIM00000000{i}AAA"))),
                        ("Name", json!(format!("{name} {i}"))),
                    ])
                })
                .collect()
        }
    };
    Some(rows)
}

/// `SELECT f1, f2 FROM Object [… LIMIT n]`; WHERE and ORDER BY are ignored.
fn run_query(ctx: &Ctx, user: &User, v: &str, q: &str) -> Result<Value, Response> {
    let malformed = |m: &str| rest_error(StatusCode::BAD_REQUEST, "MALFORMED_QUERY", m);
    let words: Vec<&str> = q.split_whitespace().collect();
    let from = words
        .iter()
        .position(|w| w.eq_ignore_ascii_case("from"))
        .ok_or_else(|| malformed("unexpected token: missing FROM"))?;
    if !words
        .first()
        .is_some_and(|w| w.eq_ignore_ascii_case("select"))
        || from < 2
    {
        return Err(malformed("unexpected token: expected SELECT"));
    }
    let object = *words
        .get(from + 1)
        .ok_or_else(|| malformed("unexpected token: missing object"))?;
    let fields: Vec<String> = words[1..from]
        .join(" ")
        .split(',')
        .map(|f| f.trim().to_string())
        .filter(|f| !f.is_empty())
        .collect();
    let limit = words
        .iter()
        .position(|w| w.eq_ignore_ascii_case("limit"))
        .and_then(|i| words.get(i + 1)?.parse::<usize>().ok());
    let Some(mut rows) = records_of(object, user, &ctx.shared.extra_sobjects) else {
        return Err(rest_error(
            StatusCode::BAD_REQUEST,
            "INVALID_TYPE",
            &format!(
                "sObject type '{object}' is not supported. If you are attempting to use a custom \
                 object, be sure to append the '__c' after the entity name. Please reference your \
                 WSDL or the describe call for the appropriate names."
            ),
        ));
    };
    if let Some(n) = limit {
        rows.truncate(n);
    }
    if fields.len() == 1 && fields[0].eq_ignore_ascii_case("count()") {
        return Ok(json!({"totalSize": rows.len(), "done": true, "records": []}));
    }
    let records: Vec<Value> = rows
        .iter()
        .map(|row| {
            let id = row
                .iter()
                .find(|(k, _)| k == "Id")
                .and_then(|(_, v)| v.as_str())
                .unwrap_or_default();
            let mut rec = Map::new();
            rec.insert(
                "attributes".into(),
                json!({"type": object, "url": format!("/services/data/v{v}/sobjects/{object}/{id}")}),
            );
            for f in &fields {
                let value = row
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(f))
                    .map(|(_, v)| v.clone())
                    .unwrap_or(Value::Null);
                rec.insert(f.clone(), value);
            }
            Value::Object(rec)
        })
        .collect();
    Ok(json!({"totalSize": records.len(), "done": true, "records": records}))
}

async fn query(State(ctx): State<Ctx>, Path(version): Path<String>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let (_g, v, user) = api_call!(ctx, parts.headers, version);
    let mut q = pairs(parts.uri.query().unwrap_or_default().as_bytes())
        .remove("q")
        .filter(|q| !q.is_empty());
    if q.is_none() {
        let raw = axum::body::to_bytes(body, BODY_LIMIT)
            .await
            .unwrap_or_default();
        q = serde_json::from_slice::<Value>(&raw)
            .ok()
            .and_then(|j| j["q"].as_str().map(String::from))
            .or_else(|| pairs(&raw).remove("q"))
            .filter(|q| !q.is_empty());
    }
    let Some(q) = q else {
        return rest_error(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "A query string has to be specified",
        );
    };
    match run_query(&ctx, &user, &v, &q) {
        Ok(body) => ok(&ctx, body),
        Err(r) => r,
    }
}

async fn echo(State(ctx): State<Ctx>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let _in_flight = match enter(&ctx.shared).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    if let Err(r) = authorize(&ctx, &parts.headers) {
        return r;
    }
    let body: Bytes = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .unwrap_or_default();
    let mut headers = Map::new();
    for name in parts.headers.keys() {
        let values: Vec<String> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        headers.insert(name.as_str().to_string(), json!(values.join(", ")));
    }
    ok(
        &ctx,
        json!({
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": parts.uri.query().unwrap_or_default(),
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
        }),
    )
}
