//! API keys: admin keys, or workspace keys with scopes. A key made by a person belongs to that
//! person and never does more than they may do at the moment it is used; a key made with a key
//! of the instance belongs to the instance. Admins manage every key; a workspace's admins and
//! owners manage that workspace's keys.

use crate::auth::{generate_key, hash_key, key_prefix, Caller, Need};
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::pagination::{self, List};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use latchkey_core::ids::ApiKeyId;
use latchkey_core::model::{ApiKey, Scope, SessionSubject};
use latchkey_core::secret::RevealOnce;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Workspace keys of the instance manage no keys (a key could otherwise make a stronger one).
fn people_or_admins(caller: &Caller) -> ApiResult<()> {
    if caller.person.is_some() || caller.is_admin() {
        Ok(())
    } else {
        Err(
            ApiError::forbidden("workspace API keys cannot manage API keys")
                .hint("use an admin key, or sign in as a person with the admin role"),
        )
    }
}

/// Admins revoke any key; a person their own keys; a workspace's admins that workspace's keys.
/// A key out of the caller's sight answers 404.
async fn may_revoke(state: &AppState, caller: &Caller, key: &ApiKey) -> ApiResult<()> {
    if caller.is_admin() {
        return Ok(());
    }
    let own = caller.key.is_none()
        && caller
            .person
            .as_ref()
            .is_some_and(|p| key.user_id.as_ref() == Some(&p.id));
    if own {
        return Ok(());
    }
    let Some(ws_id) = &key.workspace_id else {
        return Err(ApiError::not_found("API key", key.id.as_str()));
    };
    match state.store.workspace_by_id(ws_id).await? {
        Some(w) if caller.can_see(&w) => caller.check(&w.id, Need::Manage),
        _ => Err(ApiError::not_found("API key", key.id.as_str())),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    pub name: String,
    /// A workspace slug for a workspace key, or `null` for an admin key. Required: an admin key
    /// is made only when `null` is said explicitly, never because the field was forgotten.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, required = true)]
    pub workspace: Option<Option<String>>,
    /// For workspace keys: any of `read`, `write`, `secrets`, `proxy`, `metrics`. Admin keys
    /// may do everything.
    #[serde(default)]
    pub scopes: Vec<Scope>,
}

/// Tells a field given as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    /// The workspace slug, or null for an admin key.
    pub workspace: Option<String>,
    pub scopes: Vec<Scope>,
    /// The person the key belongs to (`user_…`), or null for a key of the instance.
    pub user_id: Option<String>,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A new key: the only answer that ever carries the key itself.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub view: KeyView,
    /// The key. It is shown this once; only its hash is stored.
    #[schema(value_type = String)]
    pub key: RevealOnce,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct KeyQuery {
    /// Only this workspace's keys (slug).
    pub workspace: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

async fn view(state: &AppState, k: ApiKey) -> ApiResult<KeyView> {
    let workspace = match &k.workspace_id {
        Some(id) => state
            .store
            .workspace_by_id(id)
            .await?
            .map(|w| w.slug.to_string()),
        None => None,
    };
    Ok(KeyView {
        id: k.id.to_string(),
        name: k.name,
        workspace,
        scopes: k.scopes,
        user_id: k.user_id.map(|u| u.to_string()),
        prefix: k.prefix,
        created_at: k.created_at,
        revoked_at: k.revoked_at,
    })
}

/// Creates an API key; the answer carries the key once.
#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys", request_body = CreateKey,
    responses((status = 201, body = CreatedKey), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateKey>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    people_or_admins(&caller)?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "name",
            "a key name is 1 to 100 printable characters",
        ));
    }
    let ws = match &body.workspace {
        None => return Err(ApiError::invalid(
            "workspace",
            "say which workspace the key is for, or `\"workspace\": null` for an admin key",
        )
        .hint(
            "an admin key may do everything everywhere: it is made only when asked for explicitly",
        )),
        Some(Some(slug)) => {
            let w = state
                .store
                .workspace_by_slug(slug)
                .await?
                .filter(|w| caller.can_see(w))
                .ok_or_else(|| {
                    ApiError::invalid("workspace", format!("there is no workspace `{slug}`"))
                })?;
            // A person's key never does more than the person may, so anyone with a role in
            // the workspace may make one of their own.
            caller.check(&w.id, Need::Read)?;
            Some(w)
        }
        Some(None) => {
            caller.require_admin()?;
            None
        }
    };
    let mut scopes = body.scopes.clone();
    scopes.sort();
    scopes.dedup();
    if ws.is_some() && scopes.is_empty() {
        return Err(
            ApiError::invalid("scopes", "a workspace key needs at least one scope")
                .hint("scopes are read, write, secrets, proxy and metrics"),
        );
    }
    if ws.is_none() {
        scopes.clear();
    }
    let key = generate_key();
    let record = ApiKey {
        id: ApiKeyId::generate(),
        name: name.to_string(),
        workspace_id: ws.as_ref().map(|w| w.id.clone()),
        user_id: caller.person.as_ref().map(|p| p.id.clone()),
        scopes,
        hash: hash_key(&key),
        prefix: key_prefix(&key),
        created_at: Utc::now(),
        revoked_at: None,
    };
    state.store.insert_api_key(&record).await?;
    let details = json!({
        "admin": ws.is_none(),
        "workspace": ws.as_ref().map(|w| w.slug.to_string()),
        "scopes": record.scopes,
    });
    if let Some(w) = &ws {
        state
            .audit(
                &w.id,
                &caller.actor(),
                "api_key.created",
                Some(record.id.as_str()),
                Some(&record.name),
                details.clone(),
            )
            .await;
    }
    state
        .audit_instance(
            &caller.actor(),
            "api_key.created",
            Some(record.id.as_str()),
            Some(&record.name),
            details,
        )
        .await;
    tracing::info!(key = %record.id, admin = ws.is_none(), "API key created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            view: view(&state, record).await?,
            key: RevealOnce::new(key),
        }),
    ))
}

#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys", params(KeyQuery),
    responses((status = 200, body = List<KeyView>), (status = 403, body = ErrorBody)))]
pub async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<KeyQuery>,
) -> ApiResult<Json<List<KeyView>>> {
    people_or_admins(&caller)?;
    let (page, limit) = pagination::page(q.limit, q.cursor.as_deref())?;
    let ws = match &q.workspace {
        Some(slug) => Some(state.workspace(&caller, slug, Need::Manage).await?),
        None => {
            caller.require_admin().map_err(|e| {
                e.hint("name a workspace you administer: GET /v1/api-keys?workspace=<slug>")
            })?;
            None
        }
    };
    let rows = state
        .store
        .list_api_keys(ws.as_ref().map(|w| &w.id), &page)
        .await?;
    let list = pagination::finish(rows, limit, |k| k.id.to_string(), |k| k);
    let mut items = Vec::new();
    for k in list.items {
        items.push(view(&state, k).await?);
    }
    Ok(Json(List {
        items,
        next_cursor: list.next_cursor,
    }))
}

/// Revokes a key: it stops working at once on this instance (within 10 s on the others).
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "api-keys",
    responses((status = 204), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    people_or_admins(&caller)?;
    let id = ApiKeyId::parse(&id).map_err(|_| ApiError::not_found("API key", &id))?;
    if caller.key_id() == Some(&id) {
        return Err(ApiError::invalid("id", "a key cannot revoke itself")
            .hint("revoke it with another admin key"));
    }
    let key = state
        .store
        .api_key(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("API key", id.as_str()))?;
    may_revoke(&state, &caller, &key).await?;
    if state.store.revoke_api_key(&id, Utc::now()).await? {
        state.keys.forget(&id);
        // Web UI sessions made with the key end with it, on every instance.
        let ended = state
            .store
            .delete_sessions_of(&SessionSubject::ApiKey(id.clone()))
            .await?;
        let details = json!({ "admin": key.workspace_id.is_none(), "sessions_ended": ended });
        if let Some(ws) = &key.workspace_id {
            state
                .audit(
                    ws,
                    &caller.actor(),
                    "api_key.revoked",
                    Some(id.as_str()),
                    Some(&key.name),
                    details.clone(),
                )
                .await;
        }
        state
            .audit_instance(
                &caller.actor(),
                "api_key.revoked",
                Some(id.as_str()),
                Some(&key.name),
                details,
            )
            .await;
    }
    Ok(StatusCode::NO_CONTENT)
}
