//! How requests to an application's API carry the credential, and what the catalog knows of
//! the API's rate limits and pagination.

use serde::{Deserialize, Serialize};

/// How the credential goes on each request to the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InjectSpec {
    pub style: InjectStyle,
    /// The header or query parameter name (`header` and `query` styles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the value is, a template over the credential fields (`Token {api_key}`); for OAuth
    /// the access token is `{access_token}`. Default: `{access_token}` or `{api_key}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `basic` style: the user name and password templates (`{api_key}`, `X`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InjectStyle {
    /// `Authorization: Bearer <token>` (RFC 6750 §2.1).
    Bearer,
    Header,
    Query,
    /// HTTP Basic (RFC 7617).
    Basic,
}

/// Rate-limit headers the application sends (for callers and the proxy's back-off).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_header: Option<String>,
    /// How the reset header counts: `seconds` (the default) or `milliseconds` from now, a
    /// `duration` from now (`6m0s`), `epoch` seconds or `epoch_ms` milliseconds since 1970.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_style: Option<String>,
    /// Whether a 429 carries `Retry-After`.
    #[serde(default)]
    pub retry_after: bool,
}

/// How the application pages its lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaginationSpec {
    /// `cursor`, `offset`, `page`, `link_header` or `none`.
    pub style: String,
    /// The request parameter carrying the cursor, offset or page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_param: Option<String>,
    /// Where the next cursor is in the answer (dotted path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_path: Option<String>,
}
