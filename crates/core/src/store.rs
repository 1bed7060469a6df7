//! The storage traits. Each is narrow; [`Store`] composes them and the server holds an
//! `Arc<dyn Store>`. Every backend (SQLite, PostgreSQL) passes the same conformance suite
//! (`latchkey_store::conformance`).
//!
//! Rules every implementation keeps:
//! * Lookups are always scoped by workspace: a record of another workspace is simply absent.
//! * Uniqueness violations come back as [`StoreError::Duplicate`] with the constraint's name
//!   (`workspace_slug`, `connection_name`, `flow_name`), never as a backend error.
//! * Connection writes are fenced on `version` ([`StoreError::Stale`] when it moved).

use crate::health::{AttemptOutcome, Delivery, DueConnection, HealthRecord, ProbeOutcome, Webhook};
use crate::ids::{
    ApiKeyId, ConnectSessionId, ConnectionId, DataKeyId, DeliveryId, FlowId, UserId, WebhookId,
    WorkspaceId,
};
use crate::model::{
    ApiKey, ConnectSession, ConnectionRecord, ConnectionStatus, Event, Flow, InstanceEvent,
    Membership, OAuthClientRecord, OAuthState, SessionSubject, UiSession, User, Workspace,
    WrappedDataKey,
};
use crate::rate_limit::LoweredLevel;
use crate::StoreError;
use async_trait::async_trait;

/// One page of a list: at most `limit` items whose id sorts after `after` (ascending lists) or
/// before it (the newest-first event list).
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The most items to return, used as is: the HTTP layer bounds it (and asks one more than
    /// it shows, to know whether a next page exists).
    pub limit: u32,
    /// The id to continue from (the last id of the previous page); `None` for the first page.
    pub after: Option<String>,
}

/// Filters of the connection list; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct ConnectionFilter {
    /// Only connections of this catalog application id.
    pub app: Option<String>,
    /// Only connections of this environment (its wire name).
    pub environment: Option<String>,
    /// Only connections in this status.
    pub status: Option<ConnectionStatus>,
    /// Only connections made for this end user (the platform's own user id).
    pub end_user_id: Option<String>,
}

/// What every store call answers: the value, or why the backend could not give it.
pub type StoreResult<T> = Result<T, StoreError>;

/// A write of one connection that events accompany (see
/// [`ConnectionStore::change_connection`]).
#[derive(Debug, Clone, Copy)]
pub enum ConnectionChange<'a> {
    /// Inserts the connection (as [`ConnectionStore::insert_connection`]).
    Insert(&'a ConnectionRecord),
    /// Writes the connection fenced on `expected_version` (as
    /// [`ConnectionStore::update_connection`]).
    Update {
        /// The connection as it is to be written, `version` already bumped.
        conn: &'a ConnectionRecord,
        /// The version the stored record must still have, or the write is refused as stale.
        expected_version: i64,
    },
    /// Deletes the connection (as [`ConnectionStore::delete_connection`]).
    Delete {
        /// The workspace the connection belongs to.
        ws: &'a WorkspaceId,
        /// The connection to delete.
        id: &'a ConnectionId,
    },
}

/// Workspaces and the data key each one is created with.
#[async_trait]
pub trait WorkspaceStore: Send + Sync {
    /// Creates the workspace and its wrapped data key in one transaction.
    async fn create_workspace(&self, ws: &Workspace, key: &WrappedDataKey) -> StoreResult<()>;
    /// The workspace with this slug, if any.
    async fn workspace_by_slug(&self, slug: &str) -> StoreResult<Option<Workspace>>;
    /// The workspace with this id, if any.
    async fn workspace_by_id(&self, id: &WorkspaceId) -> StoreResult<Option<Workspace>>;
    /// Ascending by id.
    async fn list_workspaces(&self, page: &Page) -> StoreResult<Vec<Workspace>>;
    /// Updates `name`, `branding` and `updated_at`.
    async fn update_workspace(&self, ws: &Workspace) -> StoreResult<()>;
    /// Deletes the workspace with everything in it (connections, flows, events, its API keys and
    /// its data key). False when it did not exist.
    async fn delete_workspace(&self, id: &WorkspaceId) -> StoreResult<bool>;
}

/// Wrapped data keys; the server unwraps them with the master key named on each.
#[async_trait]
pub trait DataKeyStore: Send + Sync {
    /// One wrapped data key; `None` when no such key is stored.
    async fn data_key(&self, id: &DataKeyId) -> StoreResult<Option<WrappedDataKey>>;
    /// Every data key of the instance (what a master-key rotation re-wraps).
    async fn list_data_keys(&self) -> StoreResult<Vec<WrappedDataKey>>;
    /// Replaces the wrapping of a data key if it is still wrapped by `expected_master_key_id`.
    /// False when it was not (someone else re-wrapped it).
    async fn rewrap_data_key(
        &self,
        id: &DataKeyId,
        expected_master_key_id: &str,
        new_master_key_id: &str,
        wrapped: &[u8],
    ) -> StoreResult<bool>;
}

/// Connections, their version fencing and the refresh leases that let one instance refresh at a time.
#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// `Duplicate { constraint: "connection_name" }` when the name is taken in the workspace.
    async fn insert_connection(&self, conn: &ConnectionRecord) -> StoreResult<()>;
    /// The connection with this id in the workspace, if any.
    async fn connection(
        &self,
        ws: &WorkspaceId,
        id: &ConnectionId,
    ) -> StoreResult<Option<ConnectionRecord>>;
    /// The connection with this name in the workspace, if any.
    async fn connection_by_name(
        &self,
        ws: &WorkspaceId,
        name: &str,
    ) -> StoreResult<Option<ConnectionRecord>>;
    /// Ascending by id.
    async fn list_connections(
        &self,
        ws: &WorkspaceId,
        filter: &ConnectionFilter,
        page: &Page,
    ) -> StoreResult<Vec<ConnectionRecord>>;
    /// Writes every field of `conn` if the stored version is still `expected_version`
    /// (`conn.version` is the new version, normally `expected_version + 1`). `Stale` otherwise.
    async fn update_connection(
        &self,
        conn: &ConnectionRecord,
        expected_version: i64,
    ) -> StoreResult<()>;
    /// Deletes unless an active flow uses the connection or another connection borrows its
    /// concurrency (`InUse` naming them, checked in the same transaction). Links from inactive
    /// flows are removed with it. False when it did not exist.
    async fn delete_connection(&self, ws: &WorkspaceId, id: &ConnectionId) -> StoreResult<bool>;
    /// Makes the change and records its events (with their webhook deliveries, as
    /// [`EventStore::append_event`] does) in one transaction: both land or neither does. The
    /// change's own refusals (`Duplicate`, `Stale`, `InUse`) record no event; a failed event
    /// insert undoes the change. Answers false (and records nothing) when a deleted connection
    /// did not exist; true otherwise.
    async fn change_connection(
        &self,
        change: ConnectionChange<'_>,
        events: &[Event],
    ) -> StoreResult<bool>;
    /// `(app, count)` for every application with at least one connection in the workspace that
    /// is not revoked (revoked connections are not counted).
    async fn connection_counts(&self, ws: &WorkspaceId) -> StoreResult<Vec<(String, i64)>>;
    /// Takes the connection's refresh lease for `owner` until `until`, if nobody holds an
    /// unexpired one (`refresh_lease_until` is null or before `now`). True when taken. This is
    /// one conditional UPDATE: no transaction is held while the caller talks to the provider.
    async fn acquire_refresh_lease(
        &self,
        ws: &WorkspaceId,
        id: &ConnectionId,
        owner: &str,
        until: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool>;
    /// Extends the lease while `owner` still holds it (a refresh that takes long). False when
    /// it was lost.
    async fn renew_refresh_lease(
        &self,
        ws: &WorkspaceId,
        id: &ConnectionId,
        owner: &str,
        until: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool>;
    /// Clears every refresh lease and pool slot: only for a store one process owns (SQLite),
    /// at start, when whatever held them died with the previous process.
    async fn release_all_leases(&self) -> StoreResult<u64>;
    /// Gives the lease back if `owner` still holds it.
    async fn release_refresh_lease(
        &self,
        ws: &WorkspaceId,
        id: &ConnectionId,
        owner: &str,
    ) -> StoreResult<()>;
    /// The stored version of a connection (a cheap poll while another instance refreshes);
    /// `None` when it no longer exists.
    async fn connection_version(
        &self,
        ws: &WorkspaceId,
        id: &ConnectionId,
    ) -> StoreResult<Option<i64>>;
    /// Connections whose `borrow_concurrency_from` names `lender`.
    async fn borrowers_of(
        &self,
        ws: &WorkspaceId,
        lender: &ConnectionId,
    ) -> StoreResult<Vec<ConnectionRecord>>;
}

/// Flows and the links to the connections they use.
#[async_trait]
pub trait FlowStore: Send + Sync {
    /// Inserts the new connections and the flow (with its links) in one transaction: if any
    /// insert fails, nothing is stored.
    async fn create_flow(
        &self,
        flow: &Flow,
        new_connections: &[ConnectionRecord],
    ) -> StoreResult<()>;
    /// The flow with this id in the workspace, if any.
    async fn flow(&self, ws: &WorkspaceId, id: &FlowId) -> StoreResult<Option<Flow>>;
    /// The flow with this name in the workspace, if any.
    async fn flow_by_name(&self, ws: &WorkspaceId, name: &str) -> StoreResult<Option<Flow>>;
    /// Ascending by id.
    async fn list_flows(&self, ws: &WorkspaceId, page: &Page) -> StoreResult<Vec<Flow>>;
    /// Replaces name, environment, active, connections and `updated_at`, inserting
    /// `new_connections` first, all in one transaction.
    async fn update_flow(
        &self,
        flow: &Flow,
        new_connections: &[ConnectionRecord],
    ) -> StoreResult<()>;
    /// Deletes the flow and its links (the connections stay). False when it did not exist.
    async fn delete_flow(&self, ws: &WorkspaceId, id: &FlowId) -> StoreResult<bool>;
    /// Flows (active or not) that use the connection.
    async fn flows_using(&self, ws: &WorkspaceId, conn: &ConnectionId) -> StoreResult<Vec<Flow>>;
}

/// API keys of workspaces and of the instance, stored by hash.
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// Stores a new key; its hash must be unique.
    async fn insert_api_key(&self, key: &ApiKey) -> StoreResult<()>;
    /// A key by its hash, revoked or not.
    async fn api_key_by_hash(&self, hash: &str) -> StoreResult<Option<ApiKey>>;
    /// A key by its id, revoked or not.
    async fn api_key(&self, id: &ApiKeyId) -> StoreResult<Option<ApiKey>>;
    /// Ascending by id; `workspace` narrows to one workspace's keys.
    async fn list_api_keys(
        &self,
        workspace: Option<&WorkspaceId>,
        page: &Page,
    ) -> StoreResult<Vec<ApiKey>>;
    /// Sets `revoked_at`; false when the key does not exist or was already revoked.
    async fn revoke_api_key(
        &self,
        id: &ApiKeyId,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool>;
    /// How many keys exist at all (revoked included): zero means a first start.
    async fn count_api_keys(&self) -> StoreResult<i64>;
}

/// The audit log of workspaces and of the instance.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Records the event and, in the same transaction, one pending delivery (outbox row) for
    /// every enabled webhook of its workspace subscribed to its type: an event is never
    /// recorded without its deliveries, nor a delivery without its event. This is the one call
    /// every part of Latchkey emits events with.
    async fn append_event(&self, event: &Event) -> StoreResult<()>;
    /// Newest first; `page.after` is an event id and the page holds older events.
    async fn list_events(&self, ws: &WorkspaceId, page: &Page) -> StoreResult<Vec<Event>>;
    /// Appends an event that belongs to no workspace.
    async fn append_instance_event(&self, event: &InstanceEvent) -> StoreResult<()>;
    /// Instance events, newest first, paged like [`EventStore::list_events`].
    async fn list_instance_events(&self, page: &Page) -> StoreResult<Vec<InstanceEvent>>;
    /// Oldest first, the events after `after` (an event id; `None`: from the start), at most
    /// `limit` (the event stream).
    async fn events_after(
        &self,
        ws: &WorkspaceId,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Event>>;
    /// The newest events of one target (a connection's timeline), newest first.
    async fn events_of_target(
        &self,
        ws: &WorkspaceId,
        target_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<Event>>;
}

/// Web UI sessions, shared by every instance so that ending one ends it everywhere.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session (at sign-in).
    async fn insert_session(&self, session: &UiSession) -> StoreResult<()>;
    /// The session whose id hashes to `id_hash`, if it has not expired by `now`.
    async fn session(
        &self,
        id_hash: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Option<UiSession>>;
    /// Ends one session; false when there was none.
    async fn delete_session(&self, id_hash: &str) -> StoreResult<bool>;
    /// Ends every session of a subject (its key was revoked); how many there were.
    async fn delete_sessions_of(&self, subject: &SessionSubject) -> StoreResult<u64>;
    /// Forgets sessions that expired before `now`; how many.
    async fn delete_expired_sessions(&self, now: chrono::DateTime<chrono::Utc>)
        -> StoreResult<u64>;
}

/// The background schedule of connections: probes and proactive refreshes. Every connection
/// has one health row (written with the connection); `due_at` is the earlier of the two due
/// times, and due rows are claimed under a lease so that one instance works on each.
#[async_trait]
pub trait HealthStore: Send + Sync {
    /// Claims up to `limit` connections that are due at `now` and not leased by anyone, for
    /// `owner` until `until` (`FOR UPDATE SKIP LOCKED` on PostgreSQL: instances never wait on
    /// each other's rows).
    async fn claim_due_connections(
        &self,
        owner: &str,
        now: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> StoreResult<Vec<DueConnection>>;
    /// Writes the next probe time (`None`: probes are off), the outcome of a probe if one ran,
    /// recomputes `due_at` and gives the lease back (if `owner` still holds it).
    async fn finish_due_connection(
        &self,
        id: &ConnectionId,
        owner: &str,
        next_probe_at: Option<chrono::DateTime<chrono::Utc>>,
        outcome: Option<&ProbeOutcome>,
    ) -> StoreResult<()>;
    /// Places the first probe of connections claimed by `owner` that had none (new ones, or
    /// whose interval changed), in one statement: like [`HealthStore::finish_due_connection`]
    /// without an outcome, for each `(connection, next probe time)` (`None`: probes are off).
    async fn place_probes(
        &self,
        owner: &str,
        placed: &[(ConnectionId, Option<chrono::DateTime<chrono::Utc>>)],
    ) -> StoreResult<()>;
    /// The connections with these ids, whatever their workspace (the rows a claim found due),
    /// read in one statement; ids that no longer exist are left out.
    async fn connections_by_ids(&self, ids: &[ConnectionId]) -> StoreResult<Vec<ConnectionRecord>>;
    /// Forgets the probe placement of a connection (its interval changed): it is placed again
    /// at once.
    async fn replace_probe(&self, id: &ConnectionId) -> StoreResult<()>;
    /// The health rows of these connections.
    async fn health_of(
        &self,
        ws: &WorkspaceId,
        ids: &[ConnectionId],
    ) -> StoreResult<Vec<HealthRecord>>;
    /// `(status, count)` over every connection (the metrics gauge).
    async fn connection_status_counts(&self) -> StoreResult<Vec<(String, i64)>>;
}

/// Webhooks and their outbox.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Stores a new webhook endpoint.
    async fn insert_webhook(&self, hook: &Webhook) -> StoreResult<()>;
    /// The webhook with this id in the workspace, if any.
    async fn webhook(&self, ws: &WorkspaceId, id: &WebhookId) -> StoreResult<Option<Webhook>>;
    /// Ascending by id.
    async fn list_webhooks(&self, ws: &WorkspaceId, page: &Page) -> StoreResult<Vec<Webhook>>;
    /// Replaces every field but `id`, `workspace_id` and `created_at`. False when it is gone.
    async fn update_webhook(&self, hook: &Webhook) -> StoreResult<bool>;
    /// Records the outcome of an attempt on the endpoint without touching what its owner may be
    /// editing at the same moment: a success clears `failing_since`; a failure sets it if unset
    /// and, when it is older than `disable_before`, disables the webhook with `reason`. Answers
    /// true when this call disabled it.
    async fn record_endpoint_outcome(
        &self,
        id: &WebhookId,
        ok: bool,
        now: chrono::DateTime<chrono::Utc>,
        disable_before: chrono::DateTime<chrono::Utc>,
        reason: &str,
    ) -> StoreResult<bool>;
    /// Deletes the webhook and its deliveries. False when it did not exist.
    async fn delete_webhook(&self, ws: &WorkspaceId, id: &WebhookId) -> StoreResult<bool>;
    /// Newest first; `page.after` is a delivery id and the page holds older ones.
    async fn list_deliveries(
        &self,
        ws: &WorkspaceId,
        hook: &WebhookId,
        page: &Page,
    ) -> StoreResult<Vec<Delivery>>;
    /// The delivery with this id in the workspace, if any.
    async fn delivery(&self, ws: &WorkspaceId, id: &DeliveryId) -> StoreResult<Option<Delivery>>;
    /// Makes a delivery pending again, due at `now` (a manual retry). False when it is gone.
    async fn retry_delivery(
        &self,
        ws: &WorkspaceId,
        id: &DeliveryId,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool>;
    /// Claims up to `limit` pending deliveries due at `now` for `owner` until `until`.
    async fn claim_deliveries(
        &self,
        owner: &str,
        now: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>>;
    /// Records an attempt and releases the lease: succeeded when there is no error, pending
    /// again when `next_attempt_at` is set, failed otherwise.
    async fn finish_delivery(
        &self,
        id: &DeliveryId,
        owner: &str,
        outcome: &AttemptOutcome,
    ) -> StoreResult<()>;
    /// Pending deliveries and the creation time of the oldest (outbox depth and age).
    async fn outbox_stats(&self) -> StoreResult<(i64, Option<chrono::DateTime<chrono::Utc>>)>;
}

/// OAuth clients of workspaces and the pending authorizations (`state`) of connections.
#[async_trait]
pub trait OAuthStore: Send + Sync {
    /// Creates or replaces the workspace's OAuth client for an application.
    async fn put_oauth_client(&self, client: &OAuthClientRecord) -> StoreResult<()>;
    /// The workspace's OAuth client for an application, if one is registered.
    async fn oauth_client(
        &self,
        ws: &WorkspaceId,
        app: &str,
    ) -> StoreResult<Option<OAuthClientRecord>>;
    /// Removes the workspace's OAuth client for an application; false when there was none.
    async fn delete_oauth_client(&self, ws: &WorkspaceId, app: &str) -> StoreResult<bool>;
    /// Stores a pending authorization, to be taken once by its callback.
    async fn insert_oauth_state(&self, state: &OAuthState) -> StoreResult<()>;
    /// Removes the state and returns it (expired or not: the caller checks), so that a state
    /// is used at most once even when two callbacks race.
    async fn take_oauth_state(&self, state_hash: &str) -> StoreResult<Option<OAuthState>>;
    /// Forgets every pending state of a connection (a newer authorization supersedes them).
    async fn delete_oauth_states(&self, conn: &ConnectionId) -> StoreResult<()>;
}

/// What [`SlotStore::keep_slot_unless_wanted`] did with a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKept {
    /// Nobody else wanted the pool: the slot stays with its holder, its lease extended.
    Kept,
    /// Another holder wanted the pool: the slot is free again.
    Released,
    /// The holder no longer held the slot (its lease ran out and another took it): nothing
    /// changed.
    NotHeld,
}

/// Concurrency-pool slots shared by every instance of a cluster: slot `n` of a pool
/// is held by one request at a time, under a lease renewed while the request runs, so a dead
/// instance's slots come back when their leases run out.
#[async_trait]
pub trait SlotStore: Send + Sync {
    /// Takes a free (or expired) slot below `level` of `pool` for `holder` until `until`, in
    /// one short statement; `None` when all `level` slots are held. When rate limits lowered
    /// the pool's level ([`SlotStore::record_rate_limited`]), only slots below the effective
    /// level at `now` are taken.
    ///
    /// With `wanted_until`, a miss on a pool whose slots all exist also marks the pool as
    /// wanted by `holder` until then (in the same statement where the backend can), so that
    /// other holders give their slots back ([`SlotStore::keep_slot_unless_wanted`]). A mark
    /// is never shortened; it stops counting once its time has passed.
    async fn try_acquire_slot(
        &self,
        pool: &str,
        level: i32,
        holder: &str,
        until: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
        wanted_until: Option<chrono::DateTime<chrono::Utc>>,
    ) -> StoreResult<Option<i32>>;
    /// In one statement: if another holder's mark on `pool` is live at `now`, frees `slot`
    /// (as [`SlotStore::release_slot`] would); otherwise extends its lease to `until`. Only
    /// while `holder` still holds the slot; `holder`'s own marks never count.
    async fn keep_slot_unless_wanted(
        &self,
        pool: &str,
        slot: i32,
        holder: &str,
        until: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<SlotKept>;
    /// Deletes the marks of every pool that stopped counting before `now` (those of instances
    /// that got their slots or died); answers how many.
    async fn forget_slot_wants(&self, now: chrono::DateTime<chrono::Utc>) -> StoreResult<u64>;
    /// Extends the leases of every slot `holder` holds (the heartbeat of a live instance).
    async fn renew_slots(
        &self,
        holder: &str,
        until: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<u64>;
    /// Frees a slot if `holder` still holds it.
    async fn release_slot(&self, pool: &str, slot: i32, holder: &str) -> StoreResult<()>;
    /// How many unexpired slots of `pool` are held (for metrics and tests).
    async fn held_slots(&self, pool: &str, now: chrono::DateTime<chrono::Utc>) -> StoreResult<i64>;
    /// Records a 429 of `pool` (configured level `ceiling`) that came back at `now` for a
    /// request sent at `sent_at`, in one statement, and answers the pool's lowered level after
    /// it (the rule of [`LoweredLevel::after_limited`], with quiet steps of `step`). Slots are
    /// taken below the effective level from then on, by every instance.
    async fn record_rate_limited(
        &self,
        pool: &str,
        ceiling: i32,
        sent_at: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
        step: std::time::Duration,
    ) -> StoreResult<LoweredLevel>;
    /// The pools whose level may still be below the highest configurable level at `now`, so
    /// that every instance learns of the others' lowerings.
    async fn lowered_levels(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Vec<(String, LoweredLevel)>>;
}

/// Connect sessions: short-lived bearer credentials of end users, looked up by token hash.
#[async_trait]
pub trait ConnectSessionStore: Send + Sync {
    /// Stores a new connect session (only its token hash).
    async fn insert_connect_session(&self, s: &ConnectSession) -> StoreResult<()>;
    /// A session by the SHA-256 of its token, in whatever state it is.
    async fn connect_session_by_hash(&self, hash: &str) -> StoreResult<Option<ConnectSession>>;
    /// A session by its id in the workspace, in whatever state it is.
    async fn connect_session(
        &self,
        ws: &WorkspaceId,
        id: &ConnectSessionId,
    ) -> StoreResult<Option<ConnectSession>>;
    /// Newest last (ascending by id).
    async fn list_connect_sessions(
        &self,
        ws: &WorkspaceId,
        page: &Page,
    ) -> StoreResult<Vec<ConnectSession>>;
    /// Records the connection a session started, if it has none yet, it is this one, or the
    /// one it had was deleted since. False when the session still has another connection (one
    /// connection per session) or is no longer open.
    async fn claim_connect_session_connection(
        &self,
        id: &ConnectSessionId,
        conn: &ConnectionId,
    ) -> StoreResult<bool>;
    /// Marks the session spent, once: true for the call that did it, false when it was already
    /// completed or cancelled.
    async fn complete_connect_session(
        &self,
        id: &ConnectSessionId,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool>;
    /// Cancels an open session; false when it was already completed or cancelled.
    async fn cancel_connect_session(
        &self,
        ws: &WorkspaceId,
        id: &ConnectSessionId,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool>;
    /// Open (neither completed nor cancelled) sessions whose connection is `conn`.
    async fn open_connect_sessions_for(
        &self,
        ws: &WorkspaceId,
        conn: &ConnectionId,
    ) -> StoreResult<Vec<ConnectSession>>;
}

/// People and their roles in workspaces.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// `Duplicate { constraint: "user_email" }` when the email is taken,
    /// `Duplicate { constraint: "user_sso_subject" }` when the provider subject is.
    async fn insert_user(&self, user: &User) -> StoreResult<()>;
    /// The person with this id, if any.
    async fn user(&self, id: &UserId) -> StoreResult<Option<User>>;
    /// By email (compared in lower case).
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    /// The person who signed in by single sign-on with this provider subject (`sub`), if any.
    async fn user_by_sso_subject(&self, subject: &str) -> StoreResult<Option<User>>;
    /// Ascending by id.
    async fn list_users(&self, page: &Page) -> StoreResult<Vec<User>>;
    /// Replaces display name, email, password hash, provider subject, the instance
    /// administrator flag and `updated_at`. False when the person is gone.
    async fn update_user(&self, user: &User) -> StoreResult<bool>;
    /// Removes the person in one transaction: their memberships and web UI sessions go, and
    /// every key of theirs is revoked at `at`. False when they did not exist.
    async fn delete_user(
        &self,
        id: &UserId,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool>;
    /// Gives the person the role in the workspace (replacing the role they had there).
    async fn put_membership(&self, m: &Membership) -> StoreResult<()>;
    /// False when the person had no role there.
    async fn delete_membership(&self, ws: &WorkspaceId, user: &UserId) -> StoreResult<bool>;
    /// The person's role in the workspace; `None` when they have none there.
    async fn membership(&self, ws: &WorkspaceId, user: &UserId) -> StoreResult<Option<Membership>>;
    /// Every role of one person, in any workspace.
    async fn memberships_of(&self, user: &UserId) -> StoreResult<Vec<Membership>>;
    /// The members of a workspace, ascending by user id.
    async fn list_members(&self, ws: &WorkspaceId, page: &Page) -> StoreResult<Vec<Membership>>;
    /// Replaces every role of one person at once (a single sign-on brings the whole set).
    async fn replace_memberships(&self, user: &UserId, all: &[Membership]) -> StoreResult<()>;
}

/// Everything the server needs from storage.
#[async_trait]
pub trait Store:
    WorkspaceStore
    + DataKeyStore
    + ConnectionStore
    + FlowStore
    + ApiKeyStore
    + EventStore
    + OAuthStore
    + SlotStore
    + SessionStore
    + HealthStore
    + WebhookStore
    + ConnectSessionStore
    + UserStore
{
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// A cheap round trip, for `/healthz`.
    async fn ping(&self) -> StoreResult<()>;
}
