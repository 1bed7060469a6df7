//! Flows: named consumers of connections (R11, R12). A flow may be created or edited with new
//! connections given inline: they are verified, then stored with the flow in one transaction.

use crate::access::Need;
use crate::auth::Caller;
use crate::error::{scrub_serde_message, ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::pagination::{self, List, PageQuery};
use crate::service::connections::{self as svc, CreateConnection};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use latchkey_core::ids::{ConnectionId, FlowId};
use latchkey_core::model::{ConnectionRecord, Flow, Workspace};
use latchkey_core::names::{Environment, FlowName};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateFlow {
    pub name: String,
    /// Default `production`. Every connection of the flow must have this environment.
    pub environment: Option<String>,
    /// Default true.
    pub active: Option<bool>,
    /// Each item is the id or name of an existing connection, or a connection create body
    /// (its environment defaults to the flow's).
    #[serde(default)]
    #[schema(value_type = Vec<serde_json::Value>)]
    pub connections: Vec<Value>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditFlow {
    pub name: Option<String>,
    pub environment: Option<String>,
    pub active: Option<bool>,
    /// Replaces the flow's connections (same forms as on create).
    #[schema(value_type = Option<Vec<serde_json::Value>>)]
    pub connections: Option<Vec<Value>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FlowConnectionView {
    pub id: String,
    pub name: String,
    pub app: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FlowView {
    pub id: String,
    pub name: String,
    pub environment: String,
    pub active: bool,
    pub connections: Vec<FlowConnectionView>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

async fn view(state: &AppState, ws: &Workspace, f: Flow) -> ApiResult<FlowView> {
    let mut connections = Vec::with_capacity(f.connections.len());
    for id in &f.connections {
        if let Some(c) = state.store.connection(&ws.id, id).await? {
            connections.push(FlowConnectionView {
                id: c.id.to_string(),
                name: c.name.to_string(),
                app: c.app,
            });
        }
    }
    Ok(FlowView {
        id: f.id.to_string(),
        name: f.name.to_string(),
        environment: f.environment.to_string(),
        active: f.active,
        connections,
        created_at: f.created_at,
        updated_at: f.updated_at,
    })
}

/// Resolves the `connections` list: existing ones by id or name, new ones built and verified.
/// Every connection must be of the flow's environment.
async fn resolve_connections(
    state: &AppState,
    ws: &Workspace,
    env: &Environment,
    items: Vec<Value>,
) -> ApiResult<(Vec<ConnectionId>, Vec<ConnectionRecord>)> {
    let mut ids = Vec::new();
    let mut new = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, item) in items.into_iter().enumerate() {
        let field = format!("connections[{i}]");
        let conn = match item {
            Value::String(key) => svc::find(state, ws, &key).await.map_err(|_| {
                ApiError::invalid(
                    &field,
                    format!("there is no connection `{key}` in this workspace"),
                )
            })?,
            Value::Object(_) => {
                let body: CreateConnection = serde_json::from_value(item).map_err(|e| {
                    ApiError::invalid(
                        &field,
                        format!("{field}: {}", scrub_serde_message(&e.to_string())),
                    )
                })?;
                let c = svc::build(state, ws, body, Some(env))
                    .await
                    .map_err(|mut e| {
                        e.message = format!("{field}: {}", e.message);
                        e
                    })?
                    .record;
                new.push(c.clone());
                c
            }
            _ => {
                return Err(ApiError::invalid(
                    &field,
                    format!("{field} must be a connection id or name, or a new connection object"),
                ))
            }
        };
        if conn.environment != *env {
            return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "environment_mismatch", format!(
                "connection `{}` is of environment `{}`, but the flow is `{env}`", conn.name, conn.environment))
                .hint("a flow may only use connections of its own environment: pick (or create) one of that environment")
                .details(json!({ "field": field })));
        }
        if names.insert(conn.name.to_string(), i).is_some() || ids.contains(&conn.id) {
            return Err(ApiError::invalid(
                &field,
                format!("connection `{}` is listed twice", conn.name),
            ));
        }
        ids.push(conn.id);
    }
    Ok((ids, new))
}

async fn find_flow(state: &AppState, ws: &Workspace, key: &str) -> ApiResult<Flow> {
    let found = if FlowId::looks_like(key) {
        match FlowId::parse(key) {
            Ok(id) => state.store.flow(&ws.id, &id).await?,
            Err(_) => None,
        }
    } else {
        state.store.flow_by_name(&ws.id, key).await?
    };
    found.ok_or_else(|| ApiError::not_found("flow", key))
}

async fn audit_new_connections(
    state: &AppState,
    ws: &Workspace,
    caller: &Caller,
    flow: &Flow,
    new: &[ConnectionRecord],
) {
    for c in new {
        state
            .audit(&ws.id, &caller.actor(), "connection.created", Some(c.id.as_str()), Some(c.name.as_str()),
                json!({ "app": c.app, "auth_mode": c.auth_mode, "environment": c.environment, "status": c.status, "flow": flow.name }))
            .await;
    }
}

/// Creates a flow, with new connections inline if given (R12): all or nothing.
#[utoipa::path(post, path = "/v1/workspaces/{ws}/flows", tag = "flows", request_body = CreateFlow,
    responses((status = 201, body = FlowView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_flow(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    Json(body): Json<CreateFlow>,
) -> ApiResult<(StatusCode, Json<FlowView>)> {
    let ws = state.workspace(&caller, &ws, Need::Edit).await?;
    let name = FlowName::parse(&body.name)?;
    let environment = match &body.environment {
        Some(e) => Environment::parse(e)?,
        None => Environment::production(),
    };
    if state
        .store
        .flow_by_name(&ws.id, name.as_str())
        .await?
        .is_some()
    {
        return Err(latchkey_core::StoreError::Duplicate {
            constraint: "flow_name".into(),
        }
        .into());
    }
    let (connections, new) =
        resolve_connections(&state, &ws, &environment, body.connections).await?;
    let now = Utc::now();
    let flow = Flow {
        id: FlowId::generate(),
        workspace_id: ws.id.clone(),
        name,
        environment,
        active: body.active.unwrap_or(true),
        connections,
        created_at: now,
        updated_at: now,
    };
    state.store.create_flow(&flow, &new).await?;
    audit_new_connections(&state, &ws, &caller, &flow, &new).await;
    state
        .audit(
            &ws.id,
            &caller.actor(),
            "flow.created",
            Some(flow.id.as_str()),
            Some(flow.name.as_str()),
            json!({ "active": flow.active, "connections": flow.connections.len() }),
        )
        .await;
    Ok((StatusCode::CREATED, Json(view(&state, &ws, flow).await?)))
}

#[utoipa::path(get, path = "/v1/workspaces/{ws}/flows", tag = "flows", params(PageQuery),
    responses((status = 200, body = List<FlowView>), (status = 404, body = ErrorBody)))]
pub async fn list_flows(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<List<FlowView>>> {
    let ws = state.workspace(&caller, &ws, Need::Read).await?;
    let (page, limit) = pagination::page(q.limit, q.cursor.as_deref())?;
    let rows = state.store.list_flows(&ws.id, &page).await?;
    let list = pagination::finish(rows, limit, |f| f.id.to_string(), |f| f);
    let mut items = Vec::with_capacity(list.items.len());
    for f in list.items {
        items.push(view(&state, &ws, f).await?);
    }
    Ok(Json(List {
        items,
        next_cursor: list.next_cursor,
    }))
}

#[utoipa::path(get, path = "/v1/workspaces/{ws}/flows/{flow}", tag = "flows",
    responses((status = 200, body = FlowView), (status = 404, body = ErrorBody)))]
pub async fn get_flow(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, flow)): Path<(String, String)>,
) -> ApiResult<Json<FlowView>> {
    let ws = state.workspace(&caller, &ws, Need::Read).await?;
    let f = find_flow(&state, &ws, &flow).await?;
    Ok(Json(view(&state, &ws, f).await?))
}

/// Edits a flow: rename, change environment, activate or deactivate, replace its connections.
#[utoipa::path(patch, path = "/v1/workspaces/{ws}/flows/{flow}", tag = "flows", request_body = EditFlow,
    responses((status = 200, body = FlowView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn edit_flow(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, flow)): Path<(String, String)>,
    Json(body): Json<EditFlow>,
) -> ApiResult<Json<FlowView>> {
    let ws = state.workspace(&caller, &ws, Need::Edit).await?;
    let mut f = find_flow(&state, &ws, &flow).await?;
    if let Some(n) = &body.name {
        f.name = FlowName::parse(n)?;
    }
    let env_changed = match &body.environment {
        Some(e) => {
            let e = Environment::parse(e)?;
            let changed = e != f.environment;
            f.environment = e;
            changed
        }
        None => false,
    };
    if let Some(a) = body.active {
        f.active = a;
    }
    let mut new = Vec::new();
    let items = match body.connections {
        Some(items) => Some(items),
        None if env_changed => Some(
            f.connections
                .iter()
                .map(|id| Value::String(id.to_string()))
                .collect(),
        ),
        None => None,
    };
    if let Some(items) = items {
        let (ids, created) = resolve_connections(&state, &ws, &f.environment, items).await?;
        f.connections = ids;
        new = created;
    }
    f.updated_at = Utc::now();
    state.store.update_flow(&f, &new).await?;
    audit_new_connections(&state, &ws, &caller, &f, &new).await;
    state
        .audit(
            &ws.id,
            &caller.actor(),
            "flow.updated",
            Some(f.id.as_str()),
            Some(f.name.as_str()),
            json!({ "active": f.active, "connections": f.connections.len() }),
        )
        .await;
    Ok(Json(view(&state, &ws, f).await?))
}

#[utoipa::path(delete, path = "/v1/workspaces/{ws}/flows/{flow}", tag = "flows",
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_flow(
    State(state): State<AppState>,
    caller: Caller,
    Path((ws, flow)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let ws = state.workspace(&caller, &ws, Need::Manage).await?;
    let f = find_flow(&state, &ws, &flow).await?;
    if state.store.delete_flow(&ws.id, &f.id).await? {
        state
            .audit(
                &ws.id,
                &caller.actor(),
                "flow.deleted",
                Some(f.id.as_str()),
                Some(f.name.as_str()),
                json!({}),
            )
            .await;
    }
    Ok(StatusCode::NO_CONTENT)
}
