//! The catalog: `GET /v1/apps`, `GET /v1/apps/{app}`, and per workspace with counts (R10).

use crate::access::Need;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::pagination::{self, List};
use crate::state::AppState;
use axum::extract::State;
use latchkey_core::catalog::AppEntry;
use serde::Serialize;
use std::collections::HashMap;

/// A catalog entry, with the number of connections it has when listed inside a workspace.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AppView {
    /// `salesforce`, `generic-api-key`, …
    pub id: String,
    pub name: String,
    pub description: String,
    /// The main category (the first of `categories`).
    pub category: String,
    /// Where the picker lists it: `crm`, `erp`, `finance`, `support`, `marketing`, `hr`,
    /// `ecommerce`, `storage`, `collaboration`, `developer-tools`, `data-warehouse`, `cloud`, …
    pub categories: Vec<String>,
    /// `#RRGGBB`, the background of the application's monogram.
    pub brand_color: String,
    /// One or two letters for the monogram, distinct among applications of the same initials
    /// when their colours would also match.
    pub monogram: String,
    pub auth_modes: Vec<latchkey_core::model::AuthMode>,
    /// The API base when it is fixed; otherwise the `base_url` setting holds it.
    pub base_url: Option<String>,
    /// The settings a connection takes (besides `concurrency_level` and `borrow_concurrency_from`).
    pub settings: Vec<latchkey_core::catalog::FieldSpec>,
    /// The credential fields, each with the auth modes it applies to.
    pub credentials: Vec<latchkey_core::catalog::FieldSpec>,
    pub verify: Option<latchkey_core::catalog::VerifySpec>,
    pub oauth: Option<latchkey_core::catalog::OAuthSpec>,
    /// Auth mode `service_account`: the token endpoint key files name, and default scopes.
    pub service_account: Option<latchkey_core::exchange::ServiceAccountSpec>,
    /// Auth mode `token_exchange`: the login endpoint and where the session token is.
    pub token_exchange: Option<latchkey_core::exchange::TokenExchangeSpec>,
    pub docs_url: Option<String>,
    pub inject: Option<latchkey_core::catalog::InjectSpec>,
    /// Fixed headers sent with every request to the API.
    pub headers: std::collections::BTreeMap<String, String>,
    pub rate_limit: Option<latchkey_core::catalog::RateLimitSpec>,
    pub pagination: Option<latchkey_core::catalog::PaginationSpec>,
    /// Named provider quirks handled by code.
    pub quirks: Vec<String>,
    /// Connections of this application in the workspace that are not revoked (the seeds' green number).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_count: Option<i64>,
}

/// Monograms for the whole catalog: two letters each, distinct from every other entry's (a
/// clash takes the first letter with a later letter of the name: `GitHub` Gi, `GitLab` Gl).
pub fn monograms(cat: &latchkey_core::catalog::Catalog) -> HashMap<String, String> {
    let mut taken: HashMap<String, String> = HashMap::new();
    let mut out = HashMap::new();
    for e in cat.iter() {
        let base = monogram(&e.name);
        let letters: Vec<char> = e.name.chars().filter(|c| c.is_alphanumeric()).collect();
        let first = letters
            .first()
            .map(|c| c.to_uppercase().to_string())
            .unwrap_or_default();
        let mut candidates = vec![base.clone()];
        for c in letters.iter().skip(1) {
            candidates.push(format!("{first}{}", c.to_lowercase()));
        }
        for c in letters.iter().skip(1) {
            candidates.push(format!("{first}{}", c.to_uppercase()));
        }
        let pick = candidates
            .into_iter()
            .find(|c| !taken.contains_key(c))
            .unwrap_or_else(|| format!("{first}{}", taken.len() % 10));
        taken.insert(pick.clone(), e.id.clone());
        out.insert(e.id.clone(), pick);
    }
    out
}

impl AppView {
    pub(crate) fn new(
        e: &AppEntry,
        connection_count: Option<i64>,
        marks: &HashMap<String, String>,
    ) -> Self {
        Self {
            id: e.id.clone(),
            name: e.name.clone(),
            description: e.description.clone(),
            category: e.category().to_string(),
            categories: e.categories.clone(),
            brand_color: e
                .brand_color
                .clone()
                .unwrap_or_else(|| fallback_color(&e.id)),
            monogram: marks
                .get(&e.id)
                .cloned()
                .unwrap_or_else(|| monogram(&e.name)),
            auth_modes: e.auth_modes.clone(),
            base_url: e.base_url.clone(),
            settings: e.settings.clone(),
            credentials: e.credentials.clone(),
            verify: e.verify.clone(),
            oauth: e.oauth.clone(),
            service_account: e.service_account.clone(),
            token_exchange: e.token_exchange.clone(),
            docs_url: e.docs_url.clone(),
            inject: e.inject.clone(),
            headers: e.headers.clone(),
            rate_limit: e.rate_limit.clone(),
            pagination: e.pagination.clone(),
            quirks: e.quirks.clone(),
            connection_count,
        }
    }
}

/// Two letters of a name for its monogram: the initials of its first two words, or the first
/// two letters of a one-word name (`Google Sheets` → `GS`, `Slack` → `Sl`).
pub fn monogram(name: &str) -> String {
    let words: Vec<&str> = name
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let first = |w: &str| {
        w.chars()
            .next()
            .map(|c| c.to_uppercase().to_string())
            .unwrap_or_default()
    };
    match words.as_slice() {
        [] => "?".into(),
        [one] => {
            let mut cs = one.chars();
            let a = cs
                .next()
                .map(|c| c.to_uppercase().to_string())
                .unwrap_or_default();
            let b = cs
                .next()
                .map(|c| c.to_lowercase().to_string())
                .unwrap_or_default();
            format!("{a}{b}")
        }
        [a, b, ..] => format!("{}{}", first(a), first(b)),
    }
}

/// A colour for an entry that names none, derived from its id.
fn fallback_color(id: &str) -> String {
    let h = id.bytes().fold(2166136261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16777619)
    });
    format!("#{:06X}", h & 0x7F7F7F)
}

/// The picker's filters.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AppQuery {
    /// Only applications of this category (`crm`, `storage`, …).
    pub category: Option<String>,
    /// Words that must all appear in the id, name, description or categories (any case).
    pub q: Option<String>,
    /// Items per page, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn matches(a: &AppEntry, q: &AppQuery) -> bool {
    if let Some(c) = q.category.as_deref().filter(|c| !c.is_empty()) {
        if !a.categories.iter().any(|x| x.eq_ignore_ascii_case(c)) {
            return false;
        }
    }
    match q.q.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => true,
        Some(words) => {
            let hay = format!(
                "{} {} {} {}",
                a.id,
                a.name,
                a.description,
                a.categories.join(" ")
            )
            .to_lowercase();
            words
                .to_lowercase()
                .split_whitespace()
                .take(10)
                .all(|w| hay.contains(w))
        }
    }
}

fn listed(
    state: &AppState,
    q: &AppQuery,
    counts: Option<&HashMap<String, i64>>,
) -> ApiResult<List<AppView>> {
    let (page, limit) = pagination::page(q.limit, q.cursor.as_deref())?;
    if let Some(c) = q.category.as_deref().filter(|c| !c.is_empty()) {
        if !latchkey_core::catalog::CATEGORIES.contains(&c) {
            return Err(ApiError::invalid(
                "category",
                format!(
                    "unknown category `{}`",
                    c.chars().take(40).collect::<String>()
                ),
            )
            .hint(format!(
                "categories are: {}",
                latchkey_core::catalog::CATEGORIES.join(", ")
            )));
        }
    }
    if q.q.as_deref().is_some_and(|s| s.len() > 200) {
        return Err(ApiError::invalid(
            "q",
            "the search is longer than 200 characters",
        ));
    }
    let marks = monograms(&state.catalog);
    let rows: Vec<&AppEntry> = state
        .catalog
        .iter()
        .filter(|a| matches(a, q))
        .filter(|a| {
            page.after
                .as_deref()
                .is_none_or(|after| a.id.as_str() > after)
        })
        .take(page.limit as usize)
        .collect();
    Ok(pagination::finish(
        rows,
        limit,
        |a| a.id.clone(),
        |a| {
            AppView::new(
                a,
                counts.map(|c| c.get(&a.id).copied().unwrap_or(0)),
                &marks,
            )
        },
    ))
}

/// The catalog of applications, filtered by category and searched by words.
#[utoipa::path(get, path = "/v1/apps", tag = "apps", params(AppQuery),
    responses((status = 200, body = List<AppView>), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_apps(
    State(state): State<AppState>,
    _caller: Caller,
    Query(q): Query<AppQuery>,
) -> ApiResult<Json<List<AppView>>> {
    Ok(Json(listed(&state, &q, None)?))
}

/// One catalog entry: auth modes, settings and credential fields, verification.
#[utoipa::path(get, path = "/v1/apps/{app}", tag = "apps",
    responses((status = 200, body = AppView), (status = 404, body = ErrorBody)))]
pub async fn get_app(
    State(state): State<AppState>,
    _caller: Caller,
    Path(app): Path<String>,
) -> ApiResult<Json<AppView>> {
    let entry = state
        .catalog
        .get(&app)
        .ok_or_else(|| ApiError::not_found("application", &app))?;
    Ok(Json(AppView::new(entry, None, &monograms(&state.catalog))))
}

/// The catalog with each application's `connection_count` in this workspace (the seeds' green number).
#[utoipa::path(get, path = "/v1/workspaces/{ws}/apps", tag = "apps", params(AppQuery),
    responses((status = 200, body = List<AppView>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_workspace_apps(
    State(state): State<AppState>,
    caller: Caller,
    Path(ws): Path<String>,
    Query(q): Query<AppQuery>,
) -> ApiResult<Json<List<AppView>>> {
    let ws = state.workspace(&caller, &ws, Need::Read).await?;
    let counts: HashMap<String, i64> = state
        .store
        .connection_counts(&ws.id)
        .await?
        .into_iter()
        .collect();
    Ok(Json(listed(&state, &q, Some(&counts))?))
}
