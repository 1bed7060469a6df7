//! The router: one module per resource, assembled with the OpenAPI document generated from the
//! handlers' annotations, so `/openapi.json` always describes what is served.

pub mod admin;
pub mod apps;
pub mod connect_sessions;
pub mod connections;
pub mod events;
pub mod flows;
pub mod keys;
pub mod members;
pub mod oauth;
mod proxied;
pub use proxied::ProxyFirst;
pub mod system;
pub mod users;
pub mod webhooks;
pub mod workspaces;

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::time::Instant;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use crate::limits::{BODY_LIMIT, HEADER_LIMIT};

#[derive(OpenApi)]
#[openapi(
    info(title = "Latchkey", description = "Credential vault and connection broker for integration flows. \
        Every error answers `{error, message, hint, details}`; lists answer `{items, next_cursor}`."),
    modifiers(&BearerAuth),
    security(("api_key" = [])),
    components(schemas(crate::error::ErrorBody)),
    tags((name = "apps"), (name = "workspaces"), (name = "connections"), (name = "flows"), (name = "connect-sessions"), (name = "connect"), (name = "oauth"), (name = "api-keys"), (name = "users"), (name = "members"), (name = "events"), (name = "webhooks"), (name = "admin"), (name = "system"), (name = "mcp"))
)]
struct ApiDoc;

#[derive(OpenApi)]
#[openapi(paths(
    crate::proxy::proxy_get,
    crate::proxy::proxy_post,
    crate::proxy::proxy_put,
    crate::proxy::proxy_patch,
    crate::proxy::proxy_delete
))]
struct ProxyDoc;

#[derive(OpenApi)]
#[openapi(paths(crate::mcp::openapi_doc))]
struct McpDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("lk_…")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "connect_session",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("lkcs_…")
                    .description(Some(
                        "the token of a connect session (only the /v1/connect endpoints take it)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The whole HTTP surface with its state, proxied calls taken first.
pub fn router(state: AppState) -> ProxyFirst {
    let api_routes = [
        workspace_routes,
        connection_routes,
        connect_routes,
        access_routes,
        event_routes,
        instance_routes,
    ];
    let (api_router, api) = api_routes
        .into_iter()
        .fold(
            OpenApiRouter::with_openapi(ApiDoc::openapi()),
            |r, group| group(r),
        )
        .split_for_parts();
    let mut api = api;
    api.merge(ProxyDoc::openapi());
    api.merge(McpDoc::openapi());
    let api_json = api
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    let api: Router = api_router
        // Proxied calls have their own upstream timeout; everything else answers within a minute.
        .layer(middleware::from_fn(deadline))
        .route(
            proxied::ROUTE,
            axum::routing::any(crate::proxy::handle)
                .layer(DefaultBodyLimit::disable())
                .layer(middleware::from_fn(proxied_answer_headers)),
        )
        .route(
            "/openapi.json",
            get(move || {
                let body = api_json.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        body,
                    )
                }
            }),
        )
        .merge(crate::ui::router())
        .merge(crate::connect::page::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone());
    // The MCP tools call the API in-process, through everything above.
    let in_process = api.clone().layer(CatchPanicLayer::custom(panicked));
    let app = api.merge(crate::mcp::router(state.clone(), in_process));
    let app = app
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(record_metrics))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let route = req
                .extensions()
                .get::<MatchedPath>()
                .map_or("unmatched", MatchedPath::as_str);
            tracing::info_span!("request", method = %req.method(), route = %route)
        }))
        .layer(middleware::from_fn(header_limit))
        .layer(CatchPanicLayer::custom(panicked));
    ProxyFirst::new(state, app)
}

/// The API's router while its routes are added, with the OpenAPI document they describe.
type ApiRouter = OpenApiRouter<AppState>;

/// The catalog and the workspaces.
fn workspace_routes(r: ApiRouter) -> ApiRouter {
    r.routes(routes!(apps::list_apps))
        .routes(routes!(apps::get_app))
        .routes(routes!(apps::list_workspace_apps))
        .routes(routes!(
            workspaces::create_workspace,
            workspaces::list_workspaces
        ))
        .routes(routes!(
            workspaces::get_workspace,
            workspaces::edit_workspace,
            workspaces::delete_workspace
        ))
}

/// Connections, and their OAuth clients, authorizations and tokens.
fn connection_routes(r: ApiRouter) -> ApiRouter {
    r.routes(routes!(
        connections::create_connection,
        connections::list_connections
    ))
    .routes(routes!(
        connections::get_connection,
        connections::edit_connection,
        connections::delete_connection
    ))
    .routes(routes!(connections::verify_connection))
    .routes(routes!(connections::cancel_create))
    .routes(routes!(connections::get_credentials))
    .routes(routes!(
        oauth::put_oauth_client,
        oauth::get_oauth_client,
        oauth::delete_oauth_client
    ))
    .routes(routes!(oauth::authorize))
    .routes(routes!(oauth::get_token))
    .routes(routes!(oauth::refresh_token))
    .routes(routes!(oauth::callback))
}

/// Connect sessions, and the API their tokens open for an end user's connection.
fn connect_routes(r: ApiRouter) -> ApiRouter {
    r.routes(routes!(
        connect_sessions::create_connect_session,
        connect_sessions::list_connect_sessions
    ))
    .routes(routes!(
        connect_sessions::get_connect_session,
        connect_sessions::delete_connect_session
    ))
    .routes(routes!(crate::connect::api::session_info))
    .routes(routes!(crate::connect::api::list_apps))
    .routes(routes!(crate::connect::api::create_connection))
    .routes(routes!(
        crate::connect::api::get_connection,
        crate::connect::api::edit_connection,
        crate::connect::api::delete_connection
    ))
    .routes(routes!(crate::connect::api::authorize))
}

/// Flows, API keys, people and their workspace roles.
fn access_routes(r: ApiRouter) -> ApiRouter {
    r.routes(routes!(flows::create_flow, flows::list_flows))
        .routes(routes!(
            flows::get_flow,
            flows::edit_flow,
            flows::delete_flow
        ))
        .routes(routes!(keys::create_key, keys::list_keys))
        .routes(routes!(keys::revoke_key))
        .routes(routes!(users::create_user, users::list_users))
        .routes(routes!(
            users::get_user,
            users::edit_user,
            users::delete_user
        ))
        .routes(routes!(members::list_members))
        .routes(routes!(members::put_member, members::delete_member))
}

/// The audit events and the webhooks that deliver them.
fn event_routes(r: ApiRouter) -> ApiRouter {
    r.routes(routes!(events::list_events))
        .routes(routes!(events::list_instance_events))
        .routes(routes!(events::stream_events))
        .routes(routes!(events::connection_events))
        .routes(routes!(webhooks::create_webhook, webhooks::list_webhooks))
        .routes(routes!(
            webhooks::get_webhook,
            webhooks::edit_webhook,
            webhooks::delete_webhook
        ))
        .routes(routes!(webhooks::rotate_secret))
        .routes(routes!(webhooks::list_deliveries))
        .routes(routes!(webhooks::retry_delivery))
}

/// The instance: master key rotation, health and metrics.
fn instance_routes(r: ApiRouter) -> ApiRouter {
    r.routes(routes!(admin::master_key_status))
        .routes(routes!(admin::rotate_master_key))
        .routes(routes!(system::healthz))
        .routes(routes!(system::metrics))
}

fn panicked(_: Box<dyn std::any::Any + Send>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::internal().into_response()
}

async fn header_limit(req: Request, next: Next) -> Response {
    match headers_too_large(req.headers()) {
        Some(refused) => refused,
        None => next.run(req).await,
    }
}

/// The 431 of a request whose headers total more than [`HEADER_LIMIT`] bytes.
fn headers_too_large(headers: &axum::http::HeaderMap) -> Option<Response> {
    let total: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    (total > HEADER_LIMIT).then(|| {
        ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!(
                "the request's headers total {total} bytes; at most {HEADER_LIMIT} are accepted"
            ),
        )
        .hint("send large values in the body")
        .into_response()
    })
}

/// The policy every proxied answer carries, whatever the application sent: the answer is the
/// application's content, not Latchkey's, so a browser must never run its script with
/// Latchkey's origin (where the web UI lives) nor guess a type the application did not say.
pub const PROXY_CSP: &str = "sandbox; default-src 'none'";

async fn proxied_answer_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    proxy_policy(resp.headers_mut());
    resp
}

/// Puts [`PROXY_CSP`] and `nosniff` on a proxied answer, in place of what the application said.
fn proxy_policy(h: &mut axum::http::HeaderMap) {
    use axum::http::{header, HeaderValue};
    // Made once: a value made from a string checks each of its bytes every time.
    static CSP: HeaderValue = HeaderValue::from_static(PROXY_CSP);
    static NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
    h.remove(header::CONTENT_SECURITY_POLICY_REPORT_ONLY);
    h.insert(header::CONTENT_SECURITY_POLICY, CSP.clone());
    h.insert(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF.clone());
}

/// The longest an API request may take (verification and refresh included).
pub const REQUEST_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

async fn deadline(req: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_DEADLINE, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "request_timeout",
            format!(
                "the request did not finish within {} s",
                REQUEST_DEADLINE.as_secs()
            ),
        )
        .hint("an application or database Latchkey had to reach is slow; retry later")
        .into_response(),
    }
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "there is no route for {} {}",
            req.method(),
            req.uri().path()
        ),
    )
    .hint("see /openapi.json for the API")
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

/// Counts requests and their latency by route template (never by raw path: names are not labels).
async fn record_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let resp = next.run(req).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let (requests, duration) =
        crate::telemetry::http_series(&method, route, resp.status().as_u16());
    requests.increment(1);
    duration.record(start.elapsed().as_secs_f64());
    resp
}
