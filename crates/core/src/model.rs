//! The records Latchkey keeps. These are storage-shaped: the HTTP layer builds its own answers
//! from them, so a secret-bearing field can never be serialized by accident.

use crate::crypto::Sealed;
use crate::ids::{
    ApiKeyId, ConnectSessionId, ConnectionId, DataKeyId, EventId, FlowId, UserId, WorkspaceId,
};
use crate::names::{ConnectionName, Environment, FlowName, Slug};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A workspace: connections, flows, OAuth clients and keys belong to exactly one (R7).
#[derive(Debug, Clone, PartialEq)]
pub struct Workspace {
    /// Stable identifier (`ws_…`).
    pub id: WorkspaceId,
    /// URL-safe short name, unique across the instance.
    pub slug: Slug,
    /// Human-readable name shown in the web UI; free text.
    pub name: String,
    /// The data key that encrypts this workspace's secrets.
    pub data_key_id: DataKeyId,
    /// How the hosted connect page presents the platform (its name, colour and logo).
    pub branding: Option<Branding>,
    /// When the workspace was created.
    pub created_at: DateTime<Utc>,
    /// When the workspace's name or branding last changed.
    pub updated_at: DateTime<Utc>,
}

/// The platform's look on the hosted connect page. Every field is optional; the checks of what
/// a valid value is live at the HTTP edge, which is the only writer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Branding {
    /// The name end users see ("Connect your account to <display_name>").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// `#rrggbb`: buttons and accents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_color: Option<String>,
    /// An `https://` URL (stored, not fetched by the page) or a `data:image/…;base64,` URL
    /// (shown on the page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_url: Option<String>,
}

/// The platform's customer a connection belongs to (the person who connected it through a
/// connect session). Identifiers are the platform's own; Latchkey only stores them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EndUser {
    /// The platform's identifier for the end user, opaque to Latchkey.
    pub id: String,
    /// The end user's email address, if the platform gave one; shown, never used to sign in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The name to show for the end user, if the platform gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// The platform's customer organization an end user belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Organization {
    /// The platform's identifier for the organization, opaque to Latchkey.
    pub id: String,
    /// The name to show for the organization, if the platform gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// Whose a connection is, when an end user made it through a connect session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionOwner {
    /// The end user who made the connection.
    pub end_user: EndUser,
    /// The end user's organization, when the platform groups its end users that way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<Organization>,
}

/// A connect session as stored: only the SHA-256 of its bearer token is kept. The token lets
/// its holder list `allowed_apps`, create one connection for `owner` (or re-authorize
/// `connection`), and drive that connection's authorization, until it expires, is cancelled, or
/// succeeds once.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectSession {
    /// The session's identifier, safe to show (unlike its token).
    pub id: ConnectSessionId,
    /// The workspace the session creates connections in.
    pub workspace_id: WorkspaceId,
    /// Hex SHA-256 of the bearer token; the token itself is shown once, at creation.
    pub token_hash: String,
    /// The end user (and organization) the new connection will belong to.
    pub owner: ConnectionOwner,
    /// Catalog application ids the end user may pick from; any other is refused.
    pub allowed_apps: Vec<String>,
    /// The environment the connection is created in.
    pub environment: Environment,
    /// The connection to re-authorize in place (reconnect), if any.
    pub connection_id: Option<ConnectionId>,
    /// The connection the session made or re-authorized (set when it starts one).
    pub result_connection_id: Option<ConnectionId>,
    /// Exact origins (`scheme://host[:port]`) that may embed the page and receive its messages.
    pub allowed_origins: Vec<String>,
    /// The API key that made the session.
    pub created_by: String,
    /// When the session was created.
    pub created_at: DateTime<Utc>,
    /// After this instant the token is refused.
    pub expires_at: DateTime<Utc>,
    /// When the session made its connection; `None` while still usable.
    pub completed_at: Option<DateTime<Utc>>,
    /// When the session was cancelled by the platform; `None` if it was not.
    pub cancelled_at: Option<DateTime<Utc>>,
}

/// A data key as stored: wrapped by the master key named by `master_key_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct WrappedDataKey {
    /// The data key's identifier, also the associated data of its wrapping.
    pub id: DataKeyId,
    /// Which master key wrapped it, so a rotated-out master key can still be found.
    pub master_key_id: String,
    /// The data key sealed with the master key (format byte, nonce, AES-256-GCM ciphertext
    /// and tag).
    pub wrapped: Vec<u8>,
    /// When the data key was generated.
    pub created_at: DateTime<Utc>,
}

macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }
        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The wire name (as stored and serialized).
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        // Written by hand: the schema must list the wire names, not the variant names.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }
        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }
        impl FromStr for $name {
            type Err = crate::CoreError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(crate::CoreError::invalid(
                        stringify!($name),
                        format!("`{}` is not one of: {}", s, [$($text),+].join(", ")),
                    )),
                }
            }
        }
    };
}

string_enum!(
    /// How a connection authenticates. The application decides which are allowed.
    AuthMode {
        /// OAuth 2.0 authorization code (RFC 6749 §4.1), with PKCE (RFC 7636) where allowed.
        OAuth2Code = "oauth2_code",
        /// OAuth 2.0 client credentials (RFC 6749 §4.4).
        OAuth2ClientCredentials = "oauth2_client_credentials",
        /// JWT bearer assertion (RFC 7523).
        OAuth2JwtBearer = "oauth2_jwt_bearer",
        /// A static key sent in a header or query parameter the application names.
        ApiKey = "api_key",
        /// HTTP Basic authentication with a username and password.
        Basic = "basic",
        /// A database login, handed to processes as a connection string; never proxied.
        Database = "database",
        /// A service-account key file (Google's JSON format) whose RS256-signed JWT is
        /// exchanged for an access token (RFC 7523 §2.1).
        ServiceAccount = "service_account",
        /// Credentials posted to the application's login endpoint for a short-lived session
        /// token.
        TokenExchange = "token_exchange",
        /// OAuth 1.0a three-legged (RFC 5849 §2): request token, user authorization, access
        /// token; every request then signed with the consumer and token secrets.
        OAuth1 = "oauth1",
        /// OAuth 1.0a with a consumer and token pair issued beforehand (NetSuite token-based
        /// authentication): every request signed, nothing to authorize in a browser.
        OAuth1Token = "oauth1_token",
        /// AWS Signature Version 4: every request signed with an access key and its secret.
        AwsSigv4 = "aws_sigv4",
        /// An SSH login (password or private key) to an SFTP server, whose host key is pinned.
        Sftp = "sftp",
    }
);

impl AuthMode {
    /// Modes whose credential is not a header but a signature computed over each request.
    pub fn is_signed(self) -> bool {
        matches!(
            self,
            AuthMode::OAuth1 | AuthMode::OAuth1Token | AuthMode::AwsSigv4
        )
    }

    /// Connections Latchkey hands to a process but never proxies (databases, SFTP servers):
    /// they have no concurrency level and lend none.
    pub fn is_direct(self) -> bool {
        matches!(self, AuthMode::Database | AuthMode::Sftp)
    }

    /// The OAuth 2.0 modes (code, client credentials, JWT bearer), which need an OAuth client.
    pub fn is_oauth(self) -> bool {
        matches!(
            self,
            AuthMode::OAuth2Code | AuthMode::OAuth2ClientCredentials | AuthMode::OAuth2JwtBearer
        )
    }

    /// Whether the connection holds an access token that is obtained, kept sealed and renewed
    /// ahead of its expiry: the OAuth modes, service accounts and token exchanges.
    pub fn has_tokens(self) -> bool {
        self.is_oauth() || matches!(self, AuthMode::ServiceAccount | AuthMode::TokenExchange)
    }

    /// Whether the token is obtained from the stored credential alone, without a browser step
    /// or an OAuth client: a service account's signed assertion or a token exchange's login.
    pub fn is_direct_exchange(self) -> bool {
        matches!(self, AuthMode::ServiceAccount | AuthMode::TokenExchange)
    }
}

string_enum!(
    /// Where a connection stands.
    ConnectionStatus {
        /// Saved, waiting for the browser authorization step.
        PendingAuthorization = "pending_authorization",
        /// Verified and in use.
        Active = "active",
        /// The last check or refresh failed; `status_reason` and `hint` say why.
        Failing = "failing",
        /// The provider revoked the grant; re-authorize.
        Revoked = "revoked",
        /// Saved with verification skipped on purpose.
        Unverified = "unverified",
    }
);

string_enum!(
    /// What a workspace API key may do. Admin keys may do everything everywhere.
    Scope {
        /// List and show workspaces' connections, flows, apps and events.
        Read = "read",
        /// Create, edit and delete connections, flows and OAuth clients.
        Write = "write",
        /// Read decrypted credentials and tokens.
        Secrets = "secrets",
        /// Call applications through the proxy.
        Proxy = "proxy",
        /// Read the instance's Prometheus metrics at `/metrics` (counts and latencies by route
        /// template, pool gauges by connection id; never a name or a secret).
        Metrics = "metrics",
    }
);

/// A connection as stored. `credentials` is ciphertext; settings are plain JSON and never secret.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionRecord {
    /// Stable identifier (`conn_…`).
    pub id: ConnectionId,
    /// The workspace the connection belongs to.
    pub workspace_id: WorkspaceId,
    /// Unique within the workspace; what flows and the proxy refer to.
    pub name: ConnectionName,
    /// The catalog application id (`salesforce`, `stripe`, …).
    pub app: String,
    /// The environment the connection serves (production, sandbox, …).
    pub environment: Environment,
    /// How the connection authenticates; one of the modes the application allows.
    pub auth_mode: AuthMode,
    /// Where the connection stands; see `status_reason` and `hint` when not active.
    pub status: ConnectionStatus,
    /// Why the connection is not active, as the last failure said it; `None` when active.
    pub status_reason: Option<String>,
    /// What a person should do to fix it; `None` when active or when there is no advice.
    pub hint: Option<String>,
    /// App settings plus `concurrency_level` and `borrow_concurrency_from` (a connection id).
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// The credential fields (passwords, keys, client secrets), sealed; `None` when none are
    /// stored.
    pub credentials: Option<Sealed>,
    /// OAuth tokens (`access_token`, `refresh_token`), sealed like the credentials but apart
    /// from them (field `tokens`), so that a refresh never rewrites the credential.
    pub tokens: Option<Sealed>,
    /// What is known about the tokens that is not secret.
    pub token_meta: Option<TokenMeta>,
    /// Bumped on every write; writes are fenced on it.
    pub version: i64,
    /// When the connection was created.
    pub created_at: DateTime<Utc>,
    /// When the record was last written.
    pub updated_at: DateTime<Utc>,
    /// When a check last succeeded; `None` if never, or since it went back to pending authorization.
    pub verified_at: Option<DateTime<Utc>>,
    /// The end user (and organization) the connection was made for, through a connect session.
    pub owner: Option<ConnectionOwner>,
}

impl ConnectionRecord {
    /// Working, checked at `at`: no reason, no hint.
    pub fn mark_active(&mut self, at: DateTime<Utc>) {
        self.status = ConnectionStatus::Active;
        self.status_reason = None;
        self.hint = None;
        self.verified_at = Some(at);
    }

    /// Not working for now (a check or a refresh failed); it may recover by itself.
    pub fn mark_failing(&mut self, reason: impl Into<String>, hint: Option<String>) {
        self.status = ConnectionStatus::Failing;
        self.status_reason = Some(reason.into());
        self.hint = hint;
    }

    /// The provider gave the grant up for good: only a new authorization brings it back.
    pub fn mark_revoked(&mut self, reason: impl Into<String>, hint: impl Into<String>) {
        self.status = ConnectionStatus::Revoked;
        self.status_reason = Some(reason.into());
        self.hint = Some(hint.into());
    }

    /// Waiting for someone to authorize it in a browser; it is not verified until then.
    pub fn mark_pending_authorization(
        &mut self,
        reason: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.status = ConnectionStatus::PendingAuthorization;
        self.status_reason = Some(reason.into());
        self.hint = Some(hint.into());
        self.verified_at = None;
    }
}

/// The non-secret facts about an OAuth connection's tokens, kept as JSON beside them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenMeta {
    /// The token type the provider named, usually `Bearer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// The scopes granted (space-separated, as the provider said them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The API base the provider named (Salesforce `instance_url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_url: Option<String>,
    /// Salesforce's identity URL (`…/id/{orgId}/{userId}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_url: Option<String>,
    /// The provider's id for the user who authorized, when the token answer or identity says it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_user_id: Option<String>,
    /// The provider's id for the user's organization (Salesforce org id), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_org_id: Option<String>,
    /// The provider's login name for the user who authorized, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The OAuth client (connected app) the grant belongs to: with the user, the key of
    /// Salesforce's five-approvals limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// When the user authorized (the grant's age: Salesforce evicts the oldest first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorized_at: Option<DateTime<Utc>>,
    /// When the current access token was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<DateTime<Utc>>,
    /// When the access token is taken to expire (from `expires_in`, or the session timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// When the tokens were last refreshed; `None` if never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshed_at: Option<DateTime<Utc>>,
    /// Whether a refresh token is stored, i.e. whether the access token can be renewed unattended.
    #[serde(default)]
    pub has_refresh_token: bool,
    /// Refresh failures in a row (not counting `invalid_grant`, which stops refreshing).
    #[serde(default)]
    pub failures: u32,
    /// No refresh is attempted before this (back-off after failures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<DateTime<Utc>>,
    /// Fields of the token answer the catalog entry keeps (team id, API domain, …): never secret.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub extra: std::collections::BTreeMap<String, String>,
}

/// A workspace's OAuth client for one application (Salesforce "connected app").
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthClientRecord {
    /// The workspace the client belongs to.
    pub workspace_id: WorkspaceId,
    /// The catalog application id the client is for; one client per application per workspace.
    pub app: String,
    /// The client id the provider issued; not secret.
    pub client_id: String,
    /// `client_secret` and `private_key`, sealed (field `oauth_client`).
    pub secret: Option<Sealed>,
    /// When the client was registered.
    pub created_at: DateTime<Utc>,
    /// When the client id or secret last changed.
    pub updated_at: DateTime<Utc>,
}

/// A pending authorization: the `state` of an authorization request, stored hashed, bound to
/// one connection, with its PKCE verifier sealed. Single use; expires after ten minutes.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthState {
    /// Hex SHA-256 of the `state` parameter, which is the lookup key on the callback.
    pub state_hash: String,
    /// The workspace of the connection being authorized.
    pub workspace_id: WorkspaceId,
    /// The connection the callback completes.
    pub connection_id: ConnectionId,
    /// The PKCE code verifier, sealed; `None` when the application does not use PKCE.
    pub verifier: Option<Sealed>,
    /// The redirect URI sent in the authorization request, sent again when exchanging the code.
    pub redirect_uri: String,
    /// When the authorization request started.
    pub created_at: DateTime<Utc>,
    /// After this instant the callback is refused.
    pub expires_at: DateTime<Utc>,
}

/// A flow: a named consumer of connections (R11, R12). Latchkey stores flows, it does not run them.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    /// Stable identifier (`flow_…`).
    pub id: FlowId,
    /// The workspace the flow belongs to.
    pub workspace_id: WorkspaceId,
    /// Unique within the workspace.
    pub name: FlowName,
    /// The environment the flow runs in.
    pub environment: Environment,
    /// Whether the flow is in use: a connection an active flow uses cannot be deleted. Latchkey
    /// runs nothing either way.
    pub active: bool,
    /// The connections the flow uses, in the order given.
    pub connections: Vec<ConnectionId>,
    /// When the flow was created.
    pub created_at: DateTime<Utc>,
    /// When the flow was last edited.
    pub updated_at: DateTime<Utc>,
}

/// An API key as stored: only the SHA-256 of the key is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    /// Stable identifier (`key_…`), shown in events; not the key itself.
    pub id: ApiKeyId,
    /// A label chosen at creation, to tell keys apart.
    pub name: String,
    /// `None` for an admin key.
    pub workspace_id: Option<WorkspaceId>,
    /// The person the key belongs to (it never does more than that person may do at the moment
    /// it is used); `None` for a key of the instance.
    pub user_id: Option<UserId>,
    /// What the key may do; admin keys may do everything whatever this says.
    pub scopes: Vec<Scope>,
    /// Hex SHA-256 of the key, the lookup key when a request presents it.
    pub hash: String,
    /// The first characters of the key, to recognise it in a list.
    pub prefix: String,
    /// When the key was created.
    pub created_at: DateTime<Utc>,
    /// When the key was revoked; a revoked key authenticates nothing.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// Whether the key belongs to no workspace and so acts on all of them.
    pub fn is_admin(&self) -> bool {
        self.workspace_id.is_none()
    }
}

/// An audit event: who did what to which record, and when. Never carries a secret.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Stable identifier (`evt_…`).
    pub id: EventId,
    /// The workspace the event happened in.
    pub workspace_id: WorkspaceId,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// `key_…` id of the API key that acted, or `system`.
    pub actor: String,
    /// `connection.created`, `connection.verified`, `connection.credentials_read`, …
    pub action: String,
    /// The id of the record acted on (connection, flow, key, …), if any.
    pub target_id: Option<String>,
    /// The name of that record at the time, so the event reads well after a rename or deletion.
    pub target_name: Option<String>,
    /// Action-specific facts as JSON (changed fields, counts, error kinds); never a secret.
    pub details: serde_json::Value,
}

/// An audit event that belongs to no workspace: admin keys created or revoked, and every key
/// event as the instance's administrators see it.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceEvent {
    /// Stable identifier (`evt_…`).
    pub id: EventId,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// `key_…` id of the API key that acted, or `system`.
    pub actor: String,
    /// `api_key.created`, `api_key.revoked`, …
    pub action: String,
    /// The id of the record acted on (usually a key), if any.
    pub target_id: Option<String>,
    /// The name of that record at the time of the event.
    pub target_name: Option<String>,
    /// Action-specific facts as JSON; never a secret.
    pub details: serde_json::Value,
}

/// Who a web UI session acts as: an API key (the bootstrap sign-in) or a person.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SessionSubject {
    /// Signed in with this API key; revoking the key ends the session.
    ApiKey(ApiKeyId),
    /// A person signed in (single sign-on or password); removing the person ends the session,
    /// and their roles are read afresh on every request.
    User(UserId),
}

impl SessionSubject {
    /// The kind as stored (`api_key`, `user`).
    pub fn kind(&self) -> &'static str {
        match self {
            SessionSubject::ApiKey(_) => "api_key",
            SessionSubject::User(_) => "user",
        }
    }

    /// The subject's id as stored.
    pub fn id(&self) -> &str {
        match self {
            SessionSubject::ApiKey(id) => id.as_str(),
            SessionSubject::User(id) => id.as_str(),
        }
    }

    /// The subject from its stored kind and id.
    pub fn parse(kind: &str, id: &str) -> Result<Self, crate::CoreError> {
        match kind {
            "api_key" => Ok(SessionSubject::ApiKey(ApiKeyId::parse(id)?)),
            "user" => Ok(SessionSubject::User(UserId::parse(id)?)),
            other => Err(crate::CoreError::invalid(
                "session subject",
                format!("unknown subject kind `{other}`"),
            )),
        }
    }
}

string_enum!(
    /// What a person may do in one workspace. Each role includes everything of the ones after it.
    Role {
        /// Everything in the workspace, members included.
        Owner = "owner",
        /// Connections, flows, webhooks, OAuth clients, connect sessions and API keys, secrets
        /// included.
        Admin = "admin",
        /// Creates, edits, verifies and authorizes connections and flows; never reads a secret.
        Editor = "editor",
        /// Reads metadata only.
        Viewer = "viewer",
    }
);

impl Role {
    /// How much the role may do: a higher rank includes every lower one.
    pub fn rank(self) -> u8 {
        match self {
            Role::Owner => 4,
            Role::Admin => 3,
            Role::Editor => 2,
            Role::Viewer => 1,
        }
    }
}

/// A person. The password hash (argon2id, PHC string) is present only for a local password;
/// people who sign in by single sign-on have the provider's subject instead.
#[derive(Clone, PartialEq)]
pub struct User {
    /// Stable identifier (`user_…`).
    pub id: UserId,
    /// The name shown in the web UI and in member lists.
    pub display_name: String,
    /// Lower case; unique.
    pub email: String,
    /// Argon2id PHC string; `None` for people who sign in only by single sign-on.
    pub password_hash: Option<String>,
    /// The OpenID provider's `sub` for this person (unique), once they signed in that way.
    pub sso_subject: Option<String>,
    /// Whether the person administers the whole instance (all workspaces, admin keys, people).
    pub instance_admin: bool,
    /// When the person was added.
    pub created_at: DateTime<Utc>,
    /// When the person's name, email, password or admin flag last changed.
    pub updated_at: DateTime<Utc>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("display_name", &self.display_name)
            .field("email", &self.email)
            .field("has_password", &self.password_hash.is_some())
            .field("sso_subject", &self.sso_subject)
            .field("instance_admin", &self.instance_admin)
            .finish_non_exhaustive()
    }
}

/// A person's role in one workspace.
#[derive(Debug, Clone, PartialEq)]
pub struct Membership {
    /// The workspace the role applies to.
    pub workspace_id: WorkspaceId,
    /// The person who has the role.
    pub user_id: UserId,
    /// What the person may do there.
    pub role: Role,
    /// When the person was given access to the workspace.
    pub created_at: DateTime<Utc>,
}

/// A web UI session as the server keeps it. The cookie carries a random id of 256 bits; only
/// its SHA-256 is stored, so whoever reads the database cannot take over a session.
#[derive(Clone, PartialEq)]
pub struct UiSession {
    /// Hex SHA-256 of the session id.
    pub id_hash: String,
    /// Who the session acts as.
    pub subject: SessionSubject,
    /// The token scripts send in `X-CSRF-Token` on requests that change something.
    pub csrf_token: String,
    /// When the session began (at sign-in).
    pub created_at: DateTime<Utc>,
    /// After this instant the cookie is refused and the person must sign in again.
    pub expires_at: DateTime<Utc>,
}

impl fmt::Debug for UiSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UiSession")
            .field("subject", &self.subject)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The concurrency level a connection gets when none is set.
pub const DEFAULT_CONCURRENCY_LEVEL: i64 = 5;
/// The highest concurrency level allowed (seed 1: "up to 25").
pub const MAX_CONCURRENCY_LEVEL: i64 = 25;
