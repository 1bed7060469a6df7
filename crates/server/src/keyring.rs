//! The master key and the unwrapped data keys, kept in memory so that a secret read costs one
//! AES-GCM open, not a database round trip.

use chrono::Utc;
use latchkey_core::crypto::{record_aad, DataKey, MasterKey, Sealed};
use latchkey_core::ids::DataKeyId;
use latchkey_core::model::WrappedDataKey;
use latchkey_core::secret::SecretFields;
use latchkey_core::store::Store;
use latchkey_core::CoreError;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Why the master keys and the store's data keys do not fit together.
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    /// The store could not list or re-wrap the data keys.
    #[error(transparent)]
    Store(#[from] latchkey_core::StoreError),
    /// A data key is wrapped by a master key that is not configured.
    #[error(
        "this store's data key {data_key} is wrapped by master key {wrapped_by}, but the configured master key is {configured}; \
         set LATCHKEY_MASTER_KEY or LATCHKEY_MASTER_KEY_FILE to the key this store was created with \
         (and LATCHKEY_PREVIOUS_MASTER_KEY to the older one if a rotation did not finish)"
    )]
    UnknownMaster {
        data_key: String,
        wrapped_by: String,
        configured: String,
    },
    /// A data key does not unwrap with the master key that should wrap it.
    #[error("data key {data_key} does not unwrap with master key {master}")]
    NoUnwrap { data_key: String, master: String },
}

impl KeyRingError {
    fn no_unwrap(data_key: &DataKeyId, master: &str) -> Self {
        Self::NoUnwrap {
            data_key: data_key.to_string(),
            master: master.to_string(),
        }
    }
}

pub struct KeyRing {
    /// The master key that wraps new data keys.
    master: RwLock<MasterKey>,
    /// Older master keys still wrapping some data keys (during a rotation, or one that stopped
    /// half-way); retired once nothing uses them.
    previous: RwLock<Vec<MasterKey>>,
    store: Arc<dyn Store>,
    keys: RwLock<HashMap<DataKeyId, DataKey>>,
}

/// What a rotation did.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RotationReport {
    pub master_key_id: String,
    pub previous_master_key_ids: Vec<String>,
    /// Data keys re-wrapped by this run.
    pub data_keys_rewrapped: usize,
    /// Data keys still wrapped by an older key (zero when the rotation is complete).
    pub data_keys_remaining: usize,
    /// True when no data key uses an older master key any more, so it was forgotten.
    pub retired: bool,
}

impl KeyRing {
    pub fn new(master: MasterKey, store: Arc<dyn Store>) -> Self {
        Self::with_previous(master, vec![], store)
    }

    pub fn with_previous(
        master: MasterKey,
        previous: Vec<MasterKey>,
        store: Arc<dyn Store>,
    ) -> Self {
        Self {
            master: RwLock::new(master),
            previous: RwLock::new(previous),
            store,
            keys: RwLock::new(HashMap::new()),
        }
    }

    fn current(&self) -> MasterKey {
        self.master.read().expect("keyring lock").clone()
    }

    pub fn master_key_id(&self) -> String {
        self.current().id().to_string()
    }

    /// The master key that wrapped a data key, among the current and the previous ones.
    fn master_for(&self, id: &str) -> Option<MasterKey> {
        let cur = self.current();
        if cur.id() == id {
            return Some(cur);
        }
        self.previous
            .read()
            .expect("keyring lock")
            .iter()
            .find(|k| k.id() == id)
            .cloned()
    }

    /// Checks at start that the configured master keys unwrap every data key of the store, so a
    /// wrong key is reported at once rather than at the first secret read.
    pub async fn check_master_key(&self) -> Result<(), KeyRingError> {
        let keys = self.store.list_data_keys().await?;
        for k in keys {
            let Some(master) = self.master_for(&k.master_key_id) else {
                return Err(KeyRingError::UnknownMaster {
                    data_key: k.id.to_string(),
                    wrapped_by: k.master_key_id.to_string(),
                    configured: self.master_key_id().to_string(),
                });
            };
            let dk = master
                .unwrap_key(&k.id, &k.wrapped)
                .map_err(|_| KeyRingError::no_unwrap(&k.id, master.id()))?;
            self.keys.write().expect("keyring lock").insert(k.id, dk);
        }
        Ok(())
    }

    /// Whether some data key is still wrapped by an older master key.
    pub fn has_previous(&self) -> bool {
        !self.previous.read().expect("keyring lock").is_empty()
    }

    /// Makes `new` the master key and re-wraps every data key under it while the server keeps
    /// serving (data keys themselves, and so every secret, stay as they are). Each re-wrap is a
    /// compare-and-set on the wrapping master key id, so it is safe to run twice or on two
    /// instances, and resumable after a crash. The older key is forgotten once nothing uses it.
    pub async fn rotate(&self, new: Option<MasterKey>) -> Result<RotationReport, KeyRingError> {
        if let Some(new) = new {
            let mut cur = self.master.write().expect("keyring lock");
            if cur.id() != new.id() {
                let old = std::mem::replace(&mut *cur, new);
                let mut prev = self.previous.write().expect("keyring lock");
                prev.retain(|k| k.id() != old.id());
                prev.push(old);
            }
        }
        let current = self.current();
        let mut rewrapped = 0;
        let mut remaining = 0;
        // A workspace created while the first pass runs may have been wrapped by the old key.
        for _ in 0..3 {
            remaining = 0;
            let keys = self.store.list_data_keys().await?;
            for k in keys.iter().filter(|k| k.master_key_id != current.id()) {
                let Some(old) = self.master_for(&k.master_key_id) else {
                    remaining += 1;
                    continue;
                };
                let dk = old
                    .unwrap_key(&k.id, &k.wrapped)
                    .map_err(|_| KeyRingError::no_unwrap(&k.id, old.id()))?;
                let wrapped = current.wrap(&k.id, &dk);
                if self
                    .store
                    .rewrap_data_key(&k.id, &k.master_key_id, current.id(), &wrapped)
                    .await?
                {
                    rewrapped += 1;
                }
                self.keys
                    .write()
                    .expect("keyring lock")
                    .insert(k.id.clone(), dk);
            }
            let left = self.store.list_data_keys().await?;
            remaining += left
                .iter()
                .filter(|k| k.master_key_id != current.id())
                .count();
            if remaining == 0 {
                break;
            }
        }
        let previous_ids: Vec<String> = self
            .previous
            .read()
            .expect("keyring lock")
            .iter()
            .map(|k| k.id().to_string())
            .collect();
        let retired = remaining == 0;
        if retired {
            self.previous.write().expect("keyring lock").clear();
        }
        Ok(RotationReport {
            master_key_id: current.id().to_string(),
            previous_master_key_ids: previous_ids,
            data_keys_rewrapped: rewrapped,
            data_keys_remaining: remaining,
            retired,
        })
    }

    /// A new data key, wrapped for storage (with the workspace that will own it).
    pub fn new_data_key(&self) -> (WrappedDataKey, DataKey) {
        let master = self.current();
        let id = DataKeyId::generate();
        let dk = DataKey::generate();
        let wrapped = WrappedDataKey {
            id: id.clone(),
            master_key_id: master.id().to_string(),
            wrapped: master.wrap(&id, &dk),
            created_at: Utc::now(),
        };
        (wrapped, dk)
    }

    /// Remembers a data key this process created, once it is stored.
    pub fn remember(&self, id: DataKeyId, dk: DataKey) {
        self.keys.write().expect("keyring lock").insert(id, dk);
    }

    async fn data_key(&self, id: &DataKeyId) -> Result<DataKey, CoreError> {
        if let Some(k) = self.keys.read().expect("keyring lock").get(id) {
            return Ok(k.clone());
        }
        let wrapped = self.store.data_key(id).await?.ok_or(CoreError::Decrypt)?;
        let master = self
            .master_for(&wrapped.master_key_id)
            .ok_or(CoreError::Decrypt)?;
        let dk = master.unwrap_key(id, &wrapped.wrapped)?;
        self.remember(id.clone(), dk.clone());
        Ok(dk)
    }

    /// Encrypts a record's secret fields under the given data key, bound to (kind, id, field).
    pub async fn seal_fields(
        &self,
        key_id: &DataKeyId,
        kind: &str,
        record_id: &str,
        field: &str,
        fields: &SecretFields,
    ) -> Result<Sealed, CoreError> {
        let dk = self.data_key(key_id).await?;
        let ciphertext = dk.seal(&record_aad(kind, record_id, field), &fields.to_plaintext());
        Ok(Sealed {
            key_id: key_id.clone(),
            ciphertext,
        })
    }

    pub async fn open_fields(
        &self,
        sealed: &Sealed,
        kind: &str,
        record_id: &str,
        field: &str,
    ) -> Result<SecretFields, CoreError> {
        let dk = self.data_key(&sealed.key_id).await?;
        let plain = dk.open(&record_aad(kind, record_id, field), &sealed.ciphertext)?;
        SecretFields::from_plaintext(&plain)
    }
}
