//! Lists answer `{"items": [...], "next_cursor": "<opaque>" | null}` and take `limit`
//! (default 50, at most 500) and `cursor`.

use crate::error::{ApiError, ApiResult};
use base64::Engine;
use latchkey_core::store::Page;
use serde::{Deserialize, Serialize};

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Items per page, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct List<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The store page for a query: one more item than asked, to know whether another page exists.
pub fn page(limit: Option<u32>, cursor: Option<&str>) -> ApiResult<(Page, u32)> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("limit must be from 1 to {MAX_LIMIT}"),
        ));
    }
    let after = match cursor.filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(decode_cursor(c)?),
    };
    Ok((
        Page {
            limit: limit + 1,
            after,
        },
        limit,
    ))
}

fn decode_cursor(c: &str) -> ApiResult<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|s| s.len() <= 200)
        .ok_or_else(|| {
            ApiError::invalid("cursor", "the cursor is not one this server gave out")
                .hint("start again without a cursor")
        })
}

pub fn encode_cursor(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.as_bytes())
}

/// Cuts the extra item off and makes the cursor from the last item kept.
pub fn finish<R, T>(
    mut rows: Vec<R>,
    limit: u32,
    key: impl Fn(&R) -> String,
    view: impl FnMut(R) -> T,
) -> List<T> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(|r| encode_cursor(&key(r)))
    } else {
        None
    };
    List {
        items: rows.into_iter().map(view).collect(),
        next_cursor,
    }
}
