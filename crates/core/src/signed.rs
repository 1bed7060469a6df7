//! The catalog's description of OAuth 1.0a three-legged authorization (RFC 5849 §2): where
//! the temporary credentials are asked for, where the user is sent to approve them, and where
//! they are exchanged for the token credentials.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The three endpoints of an OAuth 1.0a provider, each a URL template over the settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuth1Spec {
    /// The temporary credential request endpoint (RFC 5849 §2.1).
    pub request_token_url: String,
    /// The resource owner authorization endpoint (RFC 5849 §2.2), opened in the browser.
    pub authorize_url: String,
    /// The token request endpoint (RFC 5849 §2.3).
    pub access_token_url: String,
    /// Extra query parameters of the authorization page (Trello's `name`, `scope`,
    /// `expiration`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub authorize_params: BTreeMap<String, String>,
}
