//! How requests to an application's API carry the credential, and what the catalog knows of
//! the API's rate limits and pagination.

use serde::{Deserialize, Serialize};

/// How the credential goes on each request to the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InjectSpec {
    /// Where the credential goes: a bearer header, a named header, a query parameter or HTTP Basic.
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
    /// `basic` style: the password template; `None` sends an empty password (or the
    /// `password` credential in the `basic` auth mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// Where on the request the credential is put.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InjectStyle {
    /// `Authorization: Bearer <token>` (RFC 6750 §2.1).
    Bearer,
    /// A header named by `name`, carrying `value`.
    Header,
    /// A query parameter named by `name`, carrying `value`.
    Query,
    /// HTTP Basic (RFC 7617).
    Basic,
}

/// Rate-limit headers the application sends (for callers and the proxy's back-off).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    /// The header giving the request quota of the current window; `None` if the API sends none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_header: Option<String>,
    /// The header giving the requests left in the current window; `None` if the API sends none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_header: Option<String>,
    /// The header saying when the window resets (read as `reset_style` says); `None` if none.
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
    /// The request parameter carrying the page size; `None` when the API has no such parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_param: Option<String>,
    /// Where the next cursor is in the answer (dotted path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_path: Option<String>,
}
