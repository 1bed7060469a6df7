//! Webhooks of a workspace: endpoints that receive its events, signed per the Standard Webhooks
//! specification, with their deliveries (scope `write` to manage, `read` to look).

use crate::access::Need;
use crate::auth::Caller;
use crate::background::webhooks::{check_url, new_secret};
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::pagination::{self, List, PageQuery};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use latchkey_core::health::{pattern_is_known, Delivery, DeliveryStatus, Webhook};
use latchkey_core::ids::{DeliveryId, WebhookId};
use latchkey_core::model::Workspace;
use latchkey_core::secret::{SecretFields, SecretString};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// How long the secret a rotation replaced keeps signing beside the new one.
const ROTATION_OVERLAP_HOURS: i64 = 24;
const MAX_DESCRIPTION: usize = 500;
const MAX_URL: usize = 2048;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// An https URL (http only for hosts LATCHKEY_OUTBOUND_ALLOW lists); private, loopback and
    /// link-local addresses are refused unless allowed the same way.
    pub url: String,
    /// Event types or families (`connection.*`, `*`); default `["*"]`.
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditWebhook {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    /// Re-enabling a disabled webhook clears its failure record.
    pub enabled: Option<bool>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub enabled: bool,
    /// Why the webhook was disabled (after failing for days).
    pub disabled_reason: Option<String>,
    /// Since when every delivery has failed.
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the secret a rotation replaced still signs.
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// `whsec_…`: only in the answers of create and rotate-secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl From<Webhook> for WebhookView {
    fn from(h: Webhook) -> Self {
        Self {
            id: h.id.to_string(),
            url: h.url,
            events: h.events,
            description: h.description,
            enabled: h.enabled,
            disabled_reason: h.disabled_reason,
            failing_since: h.failing_since,
            previous_secret_until: h.previous_until.filter(|u| *u > Utc::now()),
            created_at: h.created_at,
            updated_at: h.updated_at,
            secret: None,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    /// The message id (`webhook-id` header), the same on every attempt.
    pub id: String,
    pub webhook_id: String,
    pub event_id: String,
    pub event_type: String,
    /// `pending`, `succeeded` or `failed` (gave up).
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The body sent: `{type, timestamp, data}`.
    #[schema(value_type = Object)]
    pub payload: Value,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id.to_string(),
            webhook_id: d.webhook_id.to_string(),
            event_id: d.event_id,
            event_type: d.event_type,
            status: d.status.as_str().to_string(),
            attempts: d.attempts,
            next_attempt_at: d
                .next_attempt_at
                .filter(|_| d.status == DeliveryStatus::Pending),
            last_attempt_at: d.last_attempt_at,
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            created_at: d.created_at,
            payload: serde_json::from_str(&d.payload).unwrap_or(Value::Null),
        }
    }
}

fn check_events(events: Option<Vec<String>>) -> ApiResult<Vec<String>> {
    let events = events.unwrap_or_else(|| vec!["*".to_string()]);
    if events.is_empty() || events.len() > 50 {
        return Err(ApiError::invalid(
            "events",
            "give 1 to 50 event types or families (`connection.*`, `*`)",
        ));
    }
    for e in &events {
        if e.len() > 100 || !pattern_is_known(e) {
            return Err(ApiError::invalid(
                "events",
                format!(
                    "`{}` matches no event type",
                    e.chars().take(100).collect::<String>()
                ),
            )
            .hint(format!(
                "use one of: {}, a family such as `connection.*`, or `*`",
                latchkey_core::health::DELIVERED_EVENT_TYPES.join(", ")
            )));
        }
    }
    Ok(events)
}

async fn checked_url(state: &AppState, raw: &str) -> ApiResult<String> {
    if raw.len() > MAX_URL {
        return Err(ApiError::invalid(
            "url",
            "the URL is longer than 2048 characters",
        ));
    }
    check_url(&state.outbound, raw)
        .await
        .map(|u| u.to_string())
        .map_err(|(rule, message)| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, rule, message)
                .hint("use a public https endpoint, or list the host in LATCHKEY_OUTBOUND_ALLOW")
                .details(json!({ "field": "url", "rule": rule }))
        })
}

fn check_description(d: Option<String>) -> ApiResult<Option<String>> {
    match d {
        Some(d) if d.chars().count() > MAX_DESCRIPTION => Err(ApiError::invalid(
            "description",
            "the description is longer than 500 characters",
        )),
        other => Ok(other),
    }
}

async fn seal(
    state: &AppState,
    ws: &Workspace,
    id: &WebhookId,
    current: &SecretString,
    previous: Option<&SecretString>,
) -> ApiResult<latchkey_core::crypto::Sealed> {
    let mut f = SecretFields::new();
    f.insert("current", current.clone());
    if let Some(p) = previous {
        f.insert("previous", p.clone());
    }
    Ok(state
        .keyring
        .seal_fields(&ws.data_key_id, "webhook", id.as_str(), "secret", &f)
        .await?)
}

async fn find(state: &AppState, ws: &Workspace, id: &str) -> ApiResult<Webhook> {
    let parsed = WebhookId::parse(id).map_err(|_| ApiError::not_found("webhook", id))?;
    state
        .store
        .webhook(&ws.id, &parsed)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook", id))
}

/// Creates a webhook. The answer carries its signing `secret`, once.
#[utoipa::path(post, path = "/v1/workspaces/{ws}/webhooks", tag = "webhooks", request_body = CreateWebhook,
    responses((status = 201, body = WebhookView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    Json(body): Json<CreateWebhook>,
) -> ApiResult<(StatusCode, Json<WebhookView>)> {
    let ws = state.workspace(&caller, &ws, Need::Manage).await?;
    let events = check_events(body.events)?;
    let url = checked_url(&state, &body.url).await?;
    let description = check_description(body.description)?;
    let id = WebhookId::generate();
    let secret = new_secret();
    let now = Utc::now();
    let hook = Webhook {
        id: id.clone(),
        workspace_id: ws.id.clone(),
        url,
        events,
        description,
        enabled: body.enabled.unwrap_or(true),
        secret: seal(&state, &ws, &id, &secret, None).await?,
        previous_until: None,
        failing_since: None,
        disabled_reason: None,
        created_at: now,
        updated_at: now,
    };
    state.store.insert_webhook(&hook).await?;
    state
        .audit(
            &ws.id,
            &caller.actor(),
            "webhook.created",
            Some(id.as_str()),
            Some(hook.url.as_str()),
            json!({ "events": hook.events }),
        )
        .await;
    let mut view = WebhookView::from(hook);
    view.secret = Some(secret.expose_secret().to_string());
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(get, path = "/v1/workspaces/{ws}/webhooks", tag = "webhooks", params(PageQuery),
    responses((status = 200, body = List<WebhookView>), (status = 404, body = ErrorBody)))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<List<WebhookView>>> {
    let ws = state.workspace(&caller, &ws, Need::Read).await?;
    let (page, limit) = pagination::page(q.limit, q.cursor.as_deref())?;
    let rows = state.store.list_webhooks(&ws.id, &page).await?;
    Ok(Json(pagination::finish(
        rows,
        limit,
        |h| h.id.to_string(),
        WebhookView::from,
    )))
}

#[utoipa::path(get, path = "/v1/workspaces/{ws}/webhooks/{id}", tag = "webhooks",
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody)))]
pub async fn get_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
) -> ApiResult<Json<WebhookView>> {
    let ws = state.workspace(&caller, &ws, Need::Read).await?;
    Ok(Json(find(&state, &ws, &id).await?.into()))
}

#[utoipa::path(patch, path = "/v1/workspaces/{ws}/webhooks/{id}", tag = "webhooks", request_body = EditWebhook,
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn edit_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
    Json(body): Json<EditWebhook>,
) -> ApiResult<Json<WebhookView>> {
    let ws = state.workspace(&caller, &ws, Need::Manage).await?;
    let mut hook = find(&state, &ws, &id).await?;
    if let Some(u) = &body.url {
        hook.url = checked_url(&state, u).await?;
    }
    if body.events.is_some() {
        hook.events = check_events(body.events)?;
    }
    if body.description.is_some() {
        hook.description = check_description(body.description)?;
    }
    if let Some(e) = body.enabled {
        if e && !hook.enabled {
            hook.failing_since = None;
            hook.disabled_reason = None;
        }
        hook.enabled = e;
    }
    hook.updated_at = Utc::now();
    if !state.store.update_webhook(&hook).await? {
        return Err(ApiError::not_found("webhook", &id));
    }
    state
        .audit(
            &ws.id,
            &caller.actor(),
            "webhook.updated",
            Some(hook.id.as_str()),
            Some(hook.url.as_str()),
            json!({ "events": hook.events, "enabled": hook.enabled }),
        )
        .await;
    Ok(Json(hook.into()))
}

#[utoipa::path(delete, path = "/v1/workspaces/{ws}/webhooks/{id}", tag = "webhooks",
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let ws = state.workspace(&caller, &ws, Need::Manage).await?;
    let hook = find(&state, &ws, &id).await?;
    if state.store.delete_webhook(&ws.id, &hook.id).await? {
        state
            .audit(
                &ws.id,
                &caller.actor(),
                "webhook.deleted",
                Some(hook.id.as_str()),
                Some(hook.url.as_str()),
                json!({}),
            )
            .await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A new signing secret (answered once). For 24 hours every message carries the signatures of
/// both the new and the old secret, so receivers can switch without losing a message.
#[utoipa::path(post, path = "/v1/workspaces/{ws}/webhooks/{id}/rotate-secret", tag = "webhooks",
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
) -> ApiResult<Json<WebhookView>> {
    let ws = state.workspace(&caller, &ws, Need::Manage).await?;
    let mut hook = find(&state, &ws, &id).await?;
    let old = crate::background::webhooks::secrets(&state, &hook)
        .await
        .map_err(|_| ApiError::internal())?;
    let current = old.first().cloned().ok_or_else(ApiError::internal)?;
    let secret = new_secret();
    hook.secret = seal(&state, &ws, &hook.id, &secret, Some(&current)).await?;
    let now = Utc::now();
    hook.previous_until = Some(now + Duration::hours(ROTATION_OVERLAP_HOURS));
    hook.updated_at = now;
    if !state.store.update_webhook(&hook).await? {
        return Err(ApiError::not_found("webhook", &id));
    }
    state
        .audit(
            &ws.id,
            &caller.actor(),
            "webhook.secret_rotated",
            Some(hook.id.as_str()),
            Some(hook.url.as_str()),
            json!({ "previous_secret_until": hook.previous_until }),
        )
        .await;
    let mut view = WebhookView::from(hook);
    view.secret = Some(secret.expose_secret().to_string());
    Ok(Json(view))
}

/// The webhook's messages, newest first.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/webhooks/{id}/deliveries", tag = "webhooks", params(PageQuery),
    responses((status = 200, body = List<DeliveryView>), (status = 404, body = ErrorBody)))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id)): Path<(String, String)>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<List<DeliveryView>>> {
    let ws = state.workspace(&caller, &ws, Need::Read).await?;
    let hook = find(&state, &ws, &id).await?;
    let (page, limit) = pagination::page(q.limit, q.cursor.as_deref())?;
    let rows = state.store.list_deliveries(&ws.id, &hook.id, &page).await?;
    Ok(Json(pagination::finish(
        rows,
        limit,
        |d| d.id.to_string(),
        DeliveryView::from,
    )))
}

/// Sends a message again now (whatever its state), keeping its id.
#[utoipa::path(post, path = "/v1/workspaces/{ws}/webhooks/{id}/deliveries/{delivery}/retry", tag = "webhooks",
    responses((status = 202, body = DeliveryView), (status = 404, body = ErrorBody)))]
pub async fn retry_delivery(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, id, delivery)): Path<(String, String, String)>,
) -> ApiResult<(StatusCode, Json<DeliveryView>)> {
    let ws = state.workspace(&caller, &ws, Need::Manage).await?;
    let hook = find(&state, &ws, &id).await?;
    let did =
        DeliveryId::parse(&delivery).map_err(|_| ApiError::not_found("delivery", &delivery))?;
    let found = state
        .store
        .delivery(&ws.id, &did)
        .await?
        .filter(|d| d.webhook_id == hook.id)
        .ok_or_else(|| ApiError::not_found("delivery", &delivery))?;
    state
        .store
        .retry_delivery(&ws.id, &found.id, Utc::now())
        .await?;
    state.background.events.notify_waiters();
    let now = state
        .store
        .delivery(&ws.id, &did)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery", &delivery))?;
    Ok((StatusCode::ACCEPTED, Json(now.into())))
}
