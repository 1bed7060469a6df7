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

pub struct KeyRing {
    master: MasterKey,
    store: Arc<dyn Store>,
    keys: RwLock<HashMap<DataKeyId, DataKey>>,
}

impl KeyRing {
    pub fn new(master: MasterKey, store: Arc<dyn Store>) -> Self {
        Self {
            master,
            store,
            keys: RwLock::new(HashMap::new()),
        }
    }

    pub fn master_key_id(&self) -> &str {
        self.master.id()
    }

    /// Checks at start that this master key unwraps the store's data keys, so a wrong key is
    /// reported at once rather than at the first secret read.
    pub async fn check_master_key(&self) -> Result<(), String> {
        let keys = self
            .store
            .list_data_keys()
            .await
            .map_err(|e| e.to_string())?;
        if let Some(k) = keys.iter().find(|k| k.master_key_id != self.master.id()) {
            return Err(format!(
                "this store's data keys are wrapped by master key {}, but the configured master key is {}; \
                 set LATCHKEY_MASTER_KEY or LATCHKEY_MASTER_KEY_FILE to the key this store was created with",
                k.master_key_id,
                self.master.id()
            ));
        }
        for k in keys {
            let dk = self.master.unwrap_key(&k.id, &k.wrapped).map_err(|_| {
                format!(
                    "data key {} does not unwrap with master key {}",
                    k.id,
                    self.master.id()
                )
            })?;
            self.keys.write().expect("keyring lock").insert(k.id, dk);
        }
        Ok(())
    }

    /// A new data key, wrapped for storage (with the workspace that will own it).
    pub fn new_data_key(&self) -> (WrappedDataKey, DataKey) {
        let id = DataKeyId::generate();
        let dk = DataKey::generate();
        let wrapped = WrappedDataKey {
            id: id.clone(),
            master_key_id: self.master.id().to_string(),
            wrapped: self.master.wrap(&id, &dk),
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
        let dk = self.master.unwrap_key(id, &wrapped.wrapped)?;
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
