//! What a token refresh relies on: tokens beside the credentials, the refresh lease, and the
//! cheap version poll.

use super::{new_connection, new_workspace, now};
use chrono::{DateTime, Duration, Utc};
use latchkey_core::crypto::Sealed;
use latchkey_core::ids::{ConnectionId, DataKeyId};
use latchkey_core::model::{ConnectionRecord, TokenMeta, Workspace};
use latchkey_core::store::Store;
use latchkey_core::StoreError;

fn token_meta(at: DateTime<Utc>, failures: u32) -> TokenMeta {
    TokenMeta {
        token_type: Some("Bearer".into()),
        scope: Some("api refresh_token".into()),
        instance_url: Some("https://eu1.example.test".into()),
        id_url: Some("https://login.example.test/id/00D/005".into()),
        provider_user_id: Some("005".into()),
        provider_org_id: Some("00D".into()),
        username: Some("ops@example.test".into()),
        client_id: Some("3MVG9".into()),
        authorized_at: Some(at - Duration::days(3)),
        issued_at: Some(at),
        expires_at: Some(at + Duration::hours(2)),
        has_refresh_token: true,
        failures,
        ..TokenMeta::default()
    }
}

/// The record as a refresh writes it: new tokens and meta, the next version.
fn refreshed(
    conn: &ConnectionRecord,
    key_id: &DataKeyId,
    ciphertext: Vec<u8>,
    failures: u32,
) -> ConnectionRecord {
    let at = now();
    let mut next = conn.clone();
    next.version = conn.version + 1;
    next.tokens = Some(Sealed {
        key_id: key_id.clone(),
        ciphertext,
    });
    next.token_meta = Some(TokenMeta {
        refreshed_at: Some(at),
        retry_after: (failures > 0).then(|| at + Duration::minutes(5)),
        ..token_meta(at, failures)
    });
    next.updated_at = at;
    next
}

/// Tokens and their meta read back exactly, apart from the credentials; a fenced update
/// replaces them, a stale one does not, and they can be cleared.
pub async fn tokens(store: &dyn Store) {
    let ws = new_workspace(store, "tokens").await;
    let mut conn = super::connection_fixture(&ws, "oauth", "salesforce");
    conn.tokens = Some(Sealed {
        key_id: ws.data_key_id.clone(),
        ciphertext: (0..=255u8).rev().collect(),
    });
    conn.token_meta = Some(token_meta(now(), 0));
    store.insert_connection(&conn).await.expect("insert");
    assert_eq!(
        store.connection(&ws.id, &conn.id).await.expect("by id"),
        Some(conn.clone()),
        "tokens and token meta read back exactly as written"
    );
    let bare = new_connection(store, &ws, "no tokens", "salesforce").await;
    let back = store.connection(&ws.id, &bare.id).await.expect("by id");
    assert_eq!(
        back.as_ref().map(|c| (&c.tokens, &c.token_meta)),
        Some((&None, &None))
    );

    let next = refreshed(&conn, &ws.data_key_id, vec![4, 5, 6], 0);
    store
        .update_connection(&next, conn.version)
        .await
        .expect("fenced update");
    let stored = store.connection(&ws.id, &conn.id).await.expect("by id");
    assert_eq!(
        stored.as_ref(),
        Some(&next),
        "a fenced update replaces the tokens"
    );
    assert_eq!(
        stored.and_then(|c| c.credentials),
        conn.credentials,
        "a token refresh leaves the credentials alone"
    );

    let late = refreshed(&conn, &ws.data_key_id, vec![6, 6, 6], 3);
    assert!(
        matches!(
            store.update_connection(&late, conn.version).await,
            Err(StoreError::Stale)
        ),
        "a refresh from an old version is fenced off"
    );
    assert_eq!(
        store.connection(&ws.id, &conn.id).await.expect("by id"),
        Some(next.clone()),
        "a stale refresh leaves the newer tokens in place"
    );

    let mut cleared = next.clone();
    cleared.version = next.version + 1;
    cleared.tokens = None;
    cleared.token_meta = None;
    store
        .update_connection(&cleared, next.version)
        .await
        .expect("clear tokens");
    assert_eq!(
        store.connection(&ws.id, &conn.id).await.expect("by id"),
        Some(cleared)
    );
}

/// One of several racing acquirers gets the lease; while held nobody else does, however
/// often they try; only the owner's release frees it; an expired lease can be taken over; a
/// fenced update does not drop it; another workspace cannot touch it.
pub async fn refresh_lease(store: &dyn Store) {
    let ws = new_workspace(store, "lease").await;
    let other = new_workspace(store, "lease-other").await;
    let conn = new_connection(store, &ws, "leased", "salesforce").await;
    let t0 = now();
    let until = t0 + Duration::seconds(30);
    let (holder, loser) = one_racing_acquirer_wins(store, &ws, &conn, t0, until).await;
    let race = Race {
        store,
        ws: &ws,
        other: &other,
        conn: &conn,
        holder,
        loser,
        t0,
    };
    a_held_lease_is_exclusive(&race, until).await;
    let next = a_fenced_update_keeps_the_lease(&race).await;
    only_the_owner_releases_it(&race).await;
    an_expired_lease_is_taken_over(&race, next).await;

    assert!(
        !store
            .acquire_refresh_lease(&ws.id, &ConnectionId::generate(), &race.holder, until, t0)
            .await
            .expect("acquire missing"),
        "there is no lease on a missing connection"
    );
}

/// The lease after the first race: who holds it and one who lost.
struct Race<'a> {
    store: &'a dyn Store,
    ws: &'a Workspace,
    other: &'a Workspace,
    conn: &'a ConnectionRecord,
    holder: String,
    loser: String,
    t0: DateTime<Utc>,
}

impl Race<'_> {
    /// Tries to take the lease for thirty seconds from `now`.
    async fn acquire(&self, owner: &str, now: DateTime<Utc>) -> bool {
        self.store
            .acquire_refresh_lease(
                &self.ws.id,
                &self.conn.id,
                owner,
                now + Duration::seconds(30),
                now,
            )
            .await
            .expect("acquire")
    }
}

/// Exactly one of eight racing acquirers wins. Answers the holder and one loser.
async fn one_racing_acquirer_wins(
    store: &dyn Store,
    ws: &Workspace,
    conn: &ConnectionRecord,
    t0: DateTime<Utc>,
    until: DateTime<Utc>,
) -> (String, String) {
    let owners: Vec<String> = (0..8).map(|i| format!("instance-{i}")).collect();
    let results = futures::future::join_all(
        owners
            .iter()
            .map(|o| store.acquire_refresh_lease(&ws.id, &conn.id, o, until, t0)),
    )
    .await;
    let winners: Vec<&String> = owners
        .iter()
        .zip(&results)
        .filter(|(_, r)| matches!(r, Ok(true)))
        .map(|(o, _)| o)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one acquirer wins: {results:?}");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let holder = winners[0].clone();
    let loser = owners
        .iter()
        .find(|o| **o != holder)
        .expect("a loser")
        .clone();
    (holder, loser)
}

/// A held lease cannot be taken, not even again by its holder, up to and including its expiry,
/// nor from another workspace.
async fn a_held_lease_is_exclusive(r: &Race<'_>, until: DateTime<Utc>) {
    let (holder, loser, t0) = (&r.holder, &r.loser, r.t0);
    assert!(!r.acquire(loser, t0).await, "a held lease cannot be taken");
    assert!(!r.acquire(holder, t0).await, "not even again by its holder");
    assert!(
        !r.acquire(loser, until).await,
        "a lease is held up to and including its expiry"
    );
    assert!(
        !r.store
            .acquire_refresh_lease(
                &r.other.id,
                &r.conn.id,
                loser,
                until,
                until + Duration::hours(1)
            )
            .await
            .expect("acquire elsewhere"),
        "another workspace cannot take the lease"
    );
}

/// `update_connection` leaves a held lease in place. Answers the connection as updated.
async fn a_fenced_update_keeps_the_lease(r: &Race<'_>) -> ConnectionRecord {
    let conn = r.conn;
    let mut next = conn.clone();
    next.version = conn.version + 1;
    next.hint = Some("refreshed".into());
    r.store
        .update_connection(&next, conn.version)
        .await
        .expect("fenced update under the lease");
    assert!(
        !r.acquire(&r.loser, r.t0).await,
        "update_connection leaves a held lease in place"
    );
    next
}

/// A release by a non-owner or in another workspace does nothing; the owner's frees the lease.
async fn only_the_owner_releases_it(r: &Race<'_>) {
    let (store, ws, conn) = (r.store, r.ws, r.conn);
    let (holder, loser, t0) = (&r.holder, &r.loser, r.t0);
    store
        .release_refresh_lease(&ws.id, &conn.id, loser)
        .await
        .expect("release by a non-owner");
    assert!(
        !r.acquire(loser, t0).await,
        "a non-owner's release does nothing"
    );
    store
        .release_refresh_lease(&r.other.id, &conn.id, holder)
        .await
        .expect("release elsewhere");
    assert!(
        !r.acquire(loser, t0).await,
        "a release in another workspace does nothing"
    );

    store
        .release_refresh_lease(&ws.id, &conn.id, holder)
        .await
        .expect("release by the owner");
    assert!(
        r.acquire(loser, t0).await,
        "the owner's release frees the lease"
    );
}

/// An expired lease can be taken over, and the former owner's release does not free it; the
/// lease changes nothing a reader sees.
async fn an_expired_lease_is_taken_over(r: &Race<'_>, next: ConnectionRecord) {
    let (store, ws, conn) = (r.store, r.ws, r.conn);
    let (holder, loser) = (&r.holder, &r.loser);
    let later = r.t0 + Duration::seconds(31);
    assert!(
        r.acquire(holder, later).await,
        "an expired lease can be taken over"
    );
    store
        .release_refresh_lease(&ws.id, &conn.id, loser)
        .await
        .expect("release by the former owner");
    assert!(
        !r.acquire(loser, later).await,
        "the former owner's release does not free its successor's lease"
    );
    assert_eq!(
        store.connection(&ws.id, &conn.id).await.expect("by id"),
        Some(next),
        "the lease changes nothing a reader sees, not even the version"
    );
}

/// The version poll follows every fenced update, is scoped by workspace, and is `None` once
/// the connection is gone.
pub async fn connection_version(store: &dyn Store) {
    let ws = new_workspace(store, "version").await;
    let other = new_workspace(store, "version-other").await;
    let conn = new_connection(store, &ws, "polled", "salesforce").await;
    assert_eq!(
        store
            .connection_version(&ws.id, &conn.id)
            .await
            .expect("version"),
        Some(conn.version)
    );
    let next = refreshed(&conn, &ws.data_key_id, vec![1], 0);
    store
        .update_connection(&next, conn.version)
        .await
        .expect("update");
    let mut last = next.clone();
    last.version = next.version + 5;
    store
        .update_connection(&last, next.version)
        .await
        .expect("update");
    assert_eq!(
        store
            .connection_version(&ws.id, &conn.id)
            .await
            .expect("version"),
        Some(last.version),
        "the poll sees the stored version, whatever step the writer took"
    );
    assert_eq!(
        store
            .connection_version(&other.id, &conn.id)
            .await
            .expect("version"),
        None,
        "another workspace does not see it"
    );
    assert!(store
        .delete_connection(&ws.id, &conn.id)
        .await
        .expect("delete"));
    assert_eq!(
        store
            .connection_version(&ws.id, &conn.id)
            .await
            .expect("version"),
        None
    );
}
