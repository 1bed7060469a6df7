//! What a grant comes to: the tokens of a token answer, or why it failed, with the words that
//! tell a user what to check. The provider quirks read and write these too, so they live apart
//! from the token endpoint conversations.

use latchkey_core::model::TokenMeta;
use latchkey_core::scrub::{self, Scrubber};
use latchkey_core::secret::SecretString;

/// Tokens from a token answer, with the non-secret facts about them.
pub struct Tokens {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub meta: TokenMeta,
}

/// Why a grant failed. The text is the provider's code, then its description when it gave one.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GrantError {
    /// The provider answered with an OAuth error (`invalid_grant`, …).
    #[error("{error}{}", suffix(.description))]
    Provider {
        status: u16,
        error: String,
        description: String,
    },
    /// The provider could not be reached, or answered something that is not a token answer.
    #[error("{0}")]
    Transport(String),
}

/// `": description"`, or nothing when there is no description.
fn suffix(description: &str) -> String {
    if description.is_empty() {
        String::new()
    } else {
        format!(": {description}")
    }
}

impl GrantError {
    /// The error as it may be kept and shown: the provider's code only when it looks like one,
    /// its description scrubbed of every secret the request carried and cut to 300 characters.
    pub fn scrubbed(self, scrubber: &Scrubber) -> Self {
        match self {
            GrantError::Provider {
                status,
                error,
                description,
            } => GrantError::Provider {
                status,
                error: scrub::error_code(&error, scrubber)
                    .unwrap_or_else(|| "provider_error".into()),
                description: scrubber.tidy(&description),
            },
            GrantError::Transport(m) => GrantError::Transport(scrubber.tidy(&m)),
        }
    }

    pub fn code(&self) -> &str {
        match self {
            GrantError::Provider { error, .. } => error,
            GrantError::Transport(_) => "provider_unreachable",
        }
    }

    /// The user refused the authorization (`access_denied`).
    pub fn is_access_denied(&self) -> bool {
        matches!(self, GrantError::Provider { error, .. } if error == "access_denied")
    }

    /// The provider could not be reached (or, as `code()` reads it, a provider that answered
    /// with that very code).
    pub fn is_unreachable(&self) -> bool {
        match self {
            GrantError::Transport(_) => true,
            GrantError::Provider { error, .. } => error == "provider_unreachable",
        }
    }

    /// A refresh was due but the provider never issued a refresh token (`no_refresh_token`).
    pub fn lacks_refresh_token(&self) -> bool {
        matches!(self, GrantError::Provider { error, .. } if error == "no_refresh_token")
    }

    /// `invalid_grant` on a refresh: the grant is dead and only a new authorization helps.
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, GrantError::Provider { error, .. } if error == "invalid_grant")
    }

    fn description(&self) -> &str {
        match self {
            GrantError::Provider { description, .. } => description,
            GrantError::Transport(_) => "",
        }
    }

    /// What to check, in the words salesforce.md gives users (R6).
    pub fn hint(&self, during_refresh: bool, public_url: &str) -> String {
        let d = self.description().to_lowercase();
        match self.code() {
            "invalid_client_id" | "invalid_client" => "the consumer key and secret come from the connected app's \"Manage Consumer Details\"; changes to a connected app can take up to 10 minutes to take effect".into(),
            "redirect_uri_mismatch" => format!("the connected app's Callback URL must be exactly {public_url}/oauth/callback"),
            "invalid_grant" if d.contains("expired access/refresh token") => "the grant was revoked, expired by the app's refresh-token policy, or evicted by a sixth approval of the same user (Salesforce keeps five per user per connected app); re-authorize the connection".into(),
            "invalid_grant" if d.contains("authentication failure") => "the user was deactivated, locked, or changed password; re-authorize with an active user".into(),
            "invalid_grant" if d.contains("not supported on this domain") => "client credentials need the My Domain site (NAME.my.salesforce.com), not login or test".into(),
            "invalid_grant" if d.contains("no client credentials user enabled") => "enable the Client Credentials Flow on the connected app and set its Run As user".into(),
            "invalid_grant" if d.contains("hasn't approved") || d.contains("has not approved") => "pre-authorize the user: set \"Admin approved users are pre-authorized\" on the connected app and add the user's profile or a permission set to it".into(),
            "invalid_grant" if d.contains("ip restricted") || d.contains("login hours") => "the org's IP ranges or login hours refuse this login: check the user's profile and the connected app's IP relaxation".into(),
            "invalid_grant" if d.contains("audience") || d.contains("invalid assertion") => "the JWT was refused: check that the certificate uploaded to the connected app matches the private key, and the account type (production or sandbox)".into(),
            "invalid_grant" if d.contains("authorization code") => "the authorization code expired or was already used; start the authorization again".into(),
            "invalid_grant" if during_refresh => "the grant is no longer valid; re-authorize the connection".into(),
            "invalid_app_access" => "an administrator must approve the user for this connected app (Manage Connected Apps > Profiles or Permission Sets)".into(),
            "unsupported_grant_type" => "the connected app does not allow this flow: enable it in the app's OAuth settings".into(),
            "access_denied" => "the user clicked Deny; start the authorization again and click Allow".into(),
            "signature_mismatch" => "the consumer secret does not belong to this connected app: copy the consumer key and secret again from the connected app's \"Manage Consumer Details\"".into(),
            // Only a stored connection is refreshed again later; a failed create or check is not.
            "provider_unreachable" if during_refresh => "check that the provider is reachable from the Latchkey server; Latchkey will retry with back-off".into(),
            "provider_unreachable" => "check that the provider is reachable from the Latchkey server, then try again".into(),
            _ => "check the connection's OAuth client and settings against the provider's configuration".into(),
        }
    }
}
