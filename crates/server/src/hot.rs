//! The hot path's memory: which workspace and connection a request's `{ws}` and `{conn}` name,
//! kept per `(ws, conn)` pair of path keys for token reads and proxied calls, so that these do
//! not query the store on every request (see docs/decisions/0004-hot-path-cache.md).
//!
//! * An entry is used for at most [`HOT_RECHECK`]; then the store is asked again. In a cluster
//!   this bounds how long an instance may act on a connection another instance changed.
//! * Every change made through this instance drops the entries of that connection (or
//!   workspace) at once, and a load that raced with such a change is not remembered.
//! * When an entry is due, one caller reads the store and every concurrent caller of the same
//!   pair awaits that read (a storm of readers costs two queries, not two per reader).
//! * Only a found pair is remembered. A missing workspace or connection is answered from the
//!   shared read without asking the store again; a store error sends the request down the
//!   ordinary path, which gives the ordinary answer.
//!
//! Access is checked per caller on every request (`Caller::can_see`, scopes); only the lookup
//! is shared.

use crate::inject::Injection;
use crate::FastMap;
use futures::future::{BoxFuture, FutureExt, Shared};
use latchkey_core::ids::{ConnectionId, WorkspaceId};
use latchkey_core::model::{ConnectionRecord, Workspace};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// How long a resolved `(workspace, connection)` may be used before the store is asked again.
pub const HOT_RECHECK: Duration = Duration::from_secs(1);
/// Bound on remembered pairs; past it the map starts over (a cache, not a store).
const MAX_ENTRIES: usize = 50_000;

/// A workspace and one of its connections, as read from the store.
#[derive(Clone)]
pub struct Resolved {
    pub ws: Arc<Workspace>,
    pub conn: Arc<ConnectionRecord>,
}

/// What one read of the store found for a pair.
#[derive(Clone)]
pub enum Found {
    Both(Resolved),
    /// The workspace exists; the connection does not.
    NoConnection(Arc<Workspace>),
    NoWorkspace,
}

type Key = (Box<str>, Box<str>);
/// `None`: the store failed.
type Lookup = Shared<BoxFuture<'static, Option<Found>>>;

struct Entry {
    found: Resolved,
    checked: Instant,
}

/// A connection version found to lead only to bound destinations.
struct Checked {
    version: i64,
    settings: u64,
    record: Weak<ConnectionRecord>,
}

/// Remembered pairs by workspace key, then connection key: a lookup borrows the request's
/// own strings (no key is built per request).
#[derive(Default)]
struct Pairs {
    by_ws: FastMap<Box<str>, FastMap<Box<str>, Entry>>,
    len: usize,
}

impl Pairs {
    fn get(&self, ws: &str, conn: &str) -> Option<&Entry> {
        self.by_ws.get(ws)?.get(conn)
    }

    fn insert(&mut self, (ws, conn): Key, entry: Entry) {
        if self.len >= MAX_ENTRIES {
            *self = Pairs::default();
        }
        if self
            .by_ws
            .entry(ws)
            .or_default()
            .insert(conn, entry)
            .is_none()
        {
            self.len += 1;
        }
    }

    fn retain(&mut self, keep: impl Fn(&Entry) -> bool) {
        let mut len = 0;
        self.by_ws.retain(|_, conns| {
            conns.retain(|_, e| keep(e));
            len += conns.len();
            !conns.is_empty()
        });
        self.len = len;
    }
}

#[derive(Default)]
pub struct HotPaths {
    entries: Mutex<Pairs>,
    loading: Mutex<FastMap<Key, Lookup>>,
    /// Decrypted static credentials (API key, basic) ready to inject, by connection and version.
    statics: Mutex<FastMap<ConnectionId, (i64, StaticCall)>>,
    /// Moves on every invalidation: a load that started before one is not remembered.
    generation: AtomicU64,
    /// Connection versions whose settings were found to lead only where their secret material
    /// is bound (see [`crate::destinations::guard`]), with the fingerprint of the settings
    /// checked and, when it was shared, the very record that was checked.
    destinations: Mutex<FastMap<ConnectionId, Checked>>,
}

impl HotPaths {
    /// The pair, if it was read from the store less than [`HOT_RECHECK`] ago.
    pub fn get(&self, ws: &str, conn: &str) -> Option<Resolved> {
        let entries = self.entries.lock().expect("hot entries");
        let e = entries.get(ws, conn)?;
        (e.checked.elapsed() <= HOT_RECHECK).then(|| e.found.clone())
    }

    /// The pair from memory, or read once for every concurrent caller by `load` (`None`: the
    /// store failed).
    pub async fn resolve<F>(&self, ws: &str, conn: &str, load: F) -> Option<Found>
    where
        F: FnOnce() -> BoxFuture<'static, Option<Found>>,
    {
        if let Some(found) = self.get(ws, conn) {
            return Some(Found::Both(found));
        }
        let key: Key = (Box::from(ws), Box::from(conn));
        // Taken before joining a read: a read that began before an invalidation is then never
        // remembered (see `forget_connection` for the other half).
        let generation = self.generation.load(Ordering::Acquire);
        let flight = {
            let mut loading = self.loading.lock().expect("hot loading");
            // A read whose callers all hung up stays parked until its pair is asked for again;
            // many such pairs (names that do not exist, say) must not pile up.
            if loading.len() >= MAX_ENTRIES {
                loading.clear();
            }
            loading
                .entry(key.clone())
                .or_insert_with(|| load().shared())
                .clone()
        };
        let found = flight.await;
        // The first caller back clears the flight; later ones find it gone (or a newer one).
        {
            let mut loading = self.loading.lock().expect("hot loading");
            if loading.get(&key).is_some_and(|f| f.peek().is_some()) {
                loading.remove(&key);
            }
        }
        if let Some(Found::Both(f)) = &found {
            let mut entries = self.entries.lock().expect("hot entries");
            // Checked under the entries lock, which invalidations hold while they move it.
            if self.generation.load(Ordering::Acquire) == generation {
                entries.insert(
                    key,
                    Entry {
                        found: f.clone(),
                        checked: Instant::now(),
                    },
                );
            }
        }
        found
    }

    /// Drops everything remembered of a connection (after any change to it).
    pub fn forget_connection(&self, id: &ConnectionId) {
        self.forget(|e| e.found.conn.id != *id);
        self.statics.lock().expect("hot statics").remove(id);
        self.destinations
            .lock()
            .expect("hot destinations")
            .remove(id);
    }

    /// Whether this version of the connection was found to lead only to bound destinations.
    /// The record a check was made on, while it is still shared from this memory, is taken at
    /// its word; any other is fingerprinted (`settings`): a row changed behind Latchkey's back
    /// without a new version is checked again. A shared record (`shared`, the same as `c`)
    /// found good by its fingerprint is remembered as checked.
    pub fn destinations_checked(
        &self,
        c: &ConnectionRecord,
        shared: Option<&Arc<ConnectionRecord>>,
        settings: impl FnOnce() -> u64,
    ) -> bool {
        let mut d = self.destinations.lock().expect("hot destinations");
        let Some(checked) = d.get(&c.id).filter(|k| k.version == c.version) else {
            return false;
        };
        if checked.record.strong_count() > 0 && std::ptr::eq(checked.record.as_ptr(), c) {
            // The very record checked, still alive (so its address names nothing else).
            return true;
        }
        let fingerprint = checked.settings;
        drop(d);
        if settings() != fingerprint {
            return false;
        }
        if let Some(shared) = shared {
            d = self.destinations.lock().expect("hot destinations");
            if let Some(checked) = d.get_mut(&c.id).filter(|k| k.version == c.version) {
                checked.record = Arc::downgrade(shared);
            }
        }
        true
    }

    /// Notes that `c` leads only where its secret material is bound; `shared` is the record
    /// itself when it is shared from this memory.
    pub fn destinations_ok(
        &self,
        c: &ConnectionRecord,
        settings: u64,
        shared: Option<&Arc<ConnectionRecord>>,
    ) {
        let mut d = self.destinations.lock().expect("hot destinations");
        if d.len() >= MAX_ENTRIES {
            d.clear();
        }
        let checked = Checked {
            version: c.version,
            settings,
            record: shared.map(Arc::downgrade).unwrap_or_default(),
        };
        d.insert(c.id.clone(), checked);
    }

    /// In this order: reads under way may have seen the old rows, so later callers start new
    /// ones; then, under the entries lock, the generation moves (what the reads under way bring
    /// back is not remembered) and the matching entries go.
    fn forget(&self, keep: impl Fn(&Entry) -> bool) {
        self.loading.lock().expect("hot loading").clear();
        let mut entries = self.entries.lock().expect("hot entries");
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.retain(keep);
    }

    /// Drops everything remembered of a workspace (renamed or deleted).
    pub fn forget_workspace(&self, id: &WorkspaceId) {
        self.forget(|e| e.found.ws.id != *id);
        self.statics.lock().expect("hot statics").clear();
        self.destinations.lock().expect("hot destinations").clear();
    }

    /// The injection of a static credential and its API base, if this version of the
    /// connection was decrypted.
    pub fn static_injection(&self, id: &ConnectionId, version: i64) -> Option<StaticCall> {
        let statics = self.statics.lock().expect("hot statics");
        statics
            .get(id)
            .filter(|(v, _)| *v == version)
            .map(|(_, call)| call.clone())
    }

    pub fn remember_injection(&self, id: &ConnectionId, version: i64, call: StaticCall) {
        let mut statics = self.statics.lock().expect("hot statics");
        if statics.len() >= MAX_ENTRIES {
            statics.clear();
        }
        match statics.get(id) {
            Some((v, _)) if *v > version => {}
            _ => {
                statics.insert(id.clone(), (version, call));
            }
        }
    }
}

/// What a proxied call of a connection with a static credential needs of one version of it:
/// the injection, and its API base already checked against the outbound rules and rewritten
/// (both depend only on the entry, the settings and the credential).
#[derive(Clone)]
pub struct StaticCall {
    pub inj: Arc<Injection>,
    /// The API base as the settings give it (proxied paths may not climb above its path).
    pub base: Arc<url::Url>,
    /// The same base where requests are sent: rewritten, its address allowed.
    pub target: Arc<url::Url>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use latchkey_core::ids::DataKeyId;
    use latchkey_core::model::{AuthMode, ConnectionStatus};
    use latchkey_core::names::{ConnectionName, Environment, Slug};
    use std::sync::atomic::AtomicUsize;

    fn pair(version: i64) -> Resolved {
        let now = Utc::now();
        let ws = Workspace {
            id: WorkspaceId::generate(),
            slug: Slug::parse("acme").unwrap(),
            name: "Acme".into(),
            data_key_id: DataKeyId::generate(),
            branding: None,
            created_at: now,
            updated_at: now,
        };
        let conn = ConnectionRecord {
            id: ConnectionId::generate(),
            workspace_id: ws.id.clone(),
            name: ConnectionName::parse("billing").unwrap(),
            app: "generic-api-key".into(),
            environment: Environment::parse("production").unwrap(),
            auth_mode: AuthMode::ApiKey,
            status: ConnectionStatus::Active,
            status_reason: None,
            hint: None,
            settings: Default::default(),
            credentials: None,
            tokens: None,
            token_meta: None,
            version,
            created_at: now,
            updated_at: now,
            verified_at: None,
            owner: None,
        };
        Resolved {
            ws: Arc::new(ws),
            conn: Arc::new(conn),
        }
    }

    fn both(found: Option<Found>) -> Resolved {
        match found {
            Some(Found::Both(r)) => r,
            _ => panic!("the pair was not found"),
        }
    }

    #[tokio::test]
    async fn a_missing_connection_is_answered_but_not_remembered() {
        let hot = HotPaths::default();
        let ws = pair(1).ws;
        let found = hot
            .resolve("acme", "nope", move || {
                async move { Some(Found::NoConnection(ws)) }.boxed()
            })
            .await;
        assert!(matches!(found, Some(Found::NoConnection(_))));
        assert!(hot.get("acme", "nope").is_none());
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_store_read() {
        let hot = Arc::new(HotPaths::default());
        let reads = Arc::new(AtomicUsize::new(0));
        let found = pair(1);
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (hot, reads, found) = (hot.clone(), reads.clone(), found.clone());
            tasks.push(tokio::spawn(async move {
                hot.resolve("acme", "billing", move || {
                    async move {
                        reads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Some(Found::Both(found))
                    }
                    .boxed()
                })
                .await
            }));
        }
        for t in tasks {
            assert_eq!(both(t.await.unwrap()).conn.version, 1);
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        assert!(hot.get("acme", "billing").is_some(), "remembered");
    }

    #[tokio::test]
    async fn a_read_overtaken_by_a_change_is_not_remembered() {
        let hot = Arc::new(HotPaths::default());
        let old = pair(1);
        let id = old.conn.id.clone();
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let slow = {
            let (hot, old) = (hot.clone(), old.clone());
            tokio::spawn(async move {
                hot.resolve("acme", "billing", move || {
                    async move {
                        let _ = wait.await;
                        Some(Found::Both(old))
                    }
                    .boxed()
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The connection changes while the read of its old row is under way.
        hot.forget_connection(&id);
        // A caller after the change starts its own read instead of joining the old one.
        let newer = tokio::time::timeout(
            Duration::from_secs(5),
            hot.resolve("acme", "billing", || {
                async { Some(Found::Both(pair(2))) }.boxed()
            }),
        )
        .await
        .expect("not stuck behind the old read");
        let newer = both(newer);
        assert_eq!(newer.conn.version, 2);
        let _ = go.send(());
        assert_eq!(both(slow.await.unwrap()).conn.version, 1);
        assert_eq!(
            hot.get("acme", "billing").unwrap().conn.version,
            2,
            "the old row did not replace the new one"
        );
        hot.forget_connection(&newer.conn.id);
        assert!(hot.get("acme", "billing").is_none());
    }

    #[test]
    fn a_checked_record_is_trusted_while_shared_and_any_other_is_fingerprinted() {
        let hot = HotPaths::default();
        let shared = pair(3).conn;
        let calls = AtomicUsize::new(0);
        let print = |v: u64| {
            let calls = &calls;
            move || {
                calls.fetch_add(1, Ordering::SeqCst);
                v
            }
        };
        assert!(!hot.destinations_checked(&shared, Some(&shared), print(7)));
        hot.destinations_ok(&shared, 7, Some(&shared));
        let before = calls.load(Ordering::SeqCst);
        assert!(hot.destinations_checked(&shared, Some(&shared), print(7)));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            before,
            "the same record: no fingerprint"
        );

        // A copy (read again from the store) is fingerprinted: other settings are not trusted.
        let copy = Arc::new((*shared).clone());
        assert!(!hot.destinations_checked(&copy, Some(&copy), print(8)));
        assert!(hot.destinations_checked(&copy, Some(&copy), print(7)));
        // Found good by its fingerprint, the copy is now the record taken at its word.
        let before = calls.load(Ordering::SeqCst);
        assert!(hot.destinations_checked(&copy, Some(&copy), print(8)));
        assert_eq!(calls.load(Ordering::SeqCst), before);

        // A record no longer shared is never trusted by its address.
        drop(copy);
        let again = (*shared).clone();
        assert!(!hot.destinations_checked(&again, None, print(9)));
        // Another version of the connection is checked afresh.
        let mut newer = (*shared).clone();
        newer.version = 4;
        assert!(!hot.destinations_checked(&newer, None, print(7)));
        hot.forget_connection(&shared.id);
        assert!(!hot.destinations_checked(&shared, Some(&shared), print(7)));
    }

    #[test]
    fn pairs_are_found_by_both_keys_forgotten_by_connection_and_bounded() {
        let mut pairs = Pairs::default();
        let entry = |r: &Resolved| Entry {
            found: r.clone(),
            checked: Instant::now(),
        };
        let (a, b) = (pair(1), pair(1));
        pairs.insert(("acme".into(), "billing".into()), entry(&a));
        pairs.insert(("acme".into(), "crm".into()), entry(&b));
        pairs.insert(("acme".into(), "crm".into()), entry(&b));
        assert_eq!(pairs.len, 2, "a pair put twice counts once");
        assert!(pairs.get("acme", "billing").is_some());
        assert!(pairs.get("acme", "nope").is_none() && pairs.get("nope", "billing").is_none());
        pairs.retain(|e| e.found.conn.id != a.conn.id);
        assert!(pairs.get("acme", "billing").is_none() && pairs.get("acme", "crm").is_some());
        assert_eq!(pairs.len, 1);
        pairs.retain(|_| false);
        assert!(pairs.by_ws.is_empty() && pairs.len == 0);
        for i in 0..MAX_ENTRIES + 5 {
            pairs.insert(
                (format!("w{}", i % 7).into(), i.to_string().into()),
                entry(&a),
            );
        }
        assert!(pairs.len <= MAX_ENTRIES, "bounded: {}", pairs.len);
    }
}
