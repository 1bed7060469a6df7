//! Salesforce's five-approvals limit: Salesforce keeps five refresh tokens per user per
//! connected app and revokes the oldest on the sixth. Latchkey sees only its own connections,
//! so its warnings count those and say so.

use crate::state::AppState;
use latchkey_core::model::{ConnectionRecord, ConnectionStatus, Workspace};
use latchkey_core::store::{ConnectionFilter, Page};

pub const LIMIT: usize = 5;

/// Every OAuth code connection of the workspace for Salesforce-family apps.
async fn salesforce_grants(state: &AppState, ws: &Workspace) -> Vec<ConnectionRecord> {
    let mut out = Vec::new();
    for app in state
        .catalog
        .iter()
        .filter(|a| super::provider::is_salesforce(a))
    {
        let filter = ConnectionFilter {
            app: Some(app.id.clone()),
            ..Default::default()
        };
        let mut after = None;
        for _ in 0..200 {
            let page = Page {
                limit: 500,
                after: after.clone(),
            };
            let Ok(rows) = state.store.list_connections(&ws.id, &filter, &page).await else {
                break;
            };
            let done = rows.len() < 500;
            after = rows.last().map(|r| r.id.to_string());
            out.extend(rows.into_iter().filter(|r| {
                r.auth_mode == latchkey_core::model::AuthMode::OAuth2Code
                    && r.status != ConnectionStatus::Revoked
                    && r.token_meta
                        .as_ref()
                        .is_some_and(|m| m.provider_user_id.is_some())
            }));
            if done {
                break;
            }
        }
    }
    out
}

fn key(c: &ConnectionRecord) -> Option<(String, String)> {
    let m = c.token_meta.as_ref()?;
    Some((m.client_id.clone()?, m.provider_user_id.clone()?))
}

fn authorized_at(c: &ConnectionRecord) -> Option<chrono::DateTime<chrono::Utc>> {
    c.token_meta.as_ref().and_then(|m| m.authorized_at)
}

fn who(c: &ConnectionRecord) -> String {
    let m = c.token_meta.as_ref();
    m.and_then(|m| m.username.clone())
        .or_else(|| m.and_then(|m| m.provider_user_id.clone()))
        .unwrap_or_else(|| "?".into())
}

/// Warnings before an authorization with `client_id`: users that already hold five approvals
/// of that connected app through this workspace's connections.
pub async fn warnings_before(state: &AppState, ws: &Workspace, client_id: &str) -> Vec<String> {
    let grants = salesforce_grants(state, ws).await;
    let mut by_user: std::collections::BTreeMap<String, Vec<&ConnectionRecord>> =
        Default::default();
    for g in &grants {
        if let Some((c, u)) = key(g) {
            if c == client_id {
                by_user.entry(u).or_default().push(g);
            }
        }
    }
    by_user
        .values()
        .filter(|v| v.len() >= LIMIT)
        .map(|v| {
            let mut v = v.clone();
            v.sort_by_key(|c| authorized_at(c));
            format!(
                "Salesforce user {} already has {} approvals of this connected app through Latchkey's connections in this workspace (other tools may hold more); authorizing as that user again revokes the oldest approval, which would be connection `{}`",
                who(v[0]), v.len(), v[0].name
            )
        })
        .collect()
}

/// After a successful authorization: connections of the same user and app beyond the five
/// newest cannot hold a valid grant any more. Marks them `revoked` and names them.
pub async fn mark_evicted(
    state: &AppState,
    ws: &Workspace,
    fresh: &ConnectionRecord,
) -> Vec<String> {
    let Some(k) = key(fresh) else { return vec![] };
    let mut same: Vec<ConnectionRecord> = salesforce_grants(state, ws)
        .await
        .into_iter()
        .filter(|g| key(g).as_ref() == Some(&k))
        .collect();
    if same.len() <= LIMIT {
        return vec![];
    }
    same.sort_by_key(|c| std::cmp::Reverse(authorized_at(c)));
    let mut evicted = Vec::new();
    for mut old in same.into_iter().skip(LIMIT) {
        let expected = old.version;
        old.mark_revoked(
            format!(
                "Salesforce revoked this grant: user {} authorized this connected app a sixth time (connection `{}`), and Salesforce keeps only five approvals per user per connected app",
                who(fresh), fresh.name
            ),
            "re-authorize this connection, preferably as a dedicated integration user, or delete connections you no longer need",
        );
        old.version += 1;
        old.updated_at = chrono::Utc::now();
        state.forget_connection(&old.id);
        if state.store.update_connection(&old, expected).await.is_ok() {
            state
                .audit(
                    &ws.id,
                    "system",
                    "connection.revoked",
                    Some(old.id.as_str()),
                    Some(old.name.as_str()),
                    serde_json::json!({"reason": "five_approvals", "by": fresh.name}),
                )
                .await;
            evicted.push(old.name.to_string());
        }
    }
    evicted
}

/// For a refresh that failed with `invalid_grant`: whether the five-approvals limit explains it.
pub async fn eviction_note(
    state: &AppState,
    ws: &Workspace,
    dead: &ConnectionRecord,
) -> Option<String> {
    let k = key(dead)?;
    let newer: Vec<String> = salesforce_grants(state, ws)
        .await
        .into_iter()
        .filter(|g| {
            g.id != dead.id && key(g).as_ref() == Some(&k) && authorized_at(g) > authorized_at(dead)
        })
        .map(|g| g.name.to_string())
        .collect();
    (newer.len() >= LIMIT).then(|| {
        format!(
            "user {} authorized this connected app {} more times since (connections {}); Salesforce keeps five approvals per user per connected app and revoked this one",
            who(dead), newer.len(), newer.join(", ")
        )
    })
}
