//! First start: the data folder, the master key file and the first admin API key.

use crate::auth::{generate_key, hash_key, key_prefix};
use crate::config::{Config, MasterKeySource};
use anyhow::{bail, Context};
use chrono::Utc;
use latchkey_core::crypto::MasterKey;
use latchkey_core::ids::ApiKeyId;
use latchkey_core::model::ApiKey;
use latchkey_core::store::Store;
use secrecy::ExposeSecret;
use std::io::Write;
use std::path::Path;

/// Creates the data folder (mode 0700) when missing.
pub fn ensure_data_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the data folder {}", dir.display()))?;
        set_mode(dir, 0o700)?;
    }
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the permissions of {}", path.display()))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> anyhow::Result<()> {
    Ok(())
}

/// Writes a new file readable by its owner only; refuses to overwrite one.
pub fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(content.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// The master key from the configuration; the default file is created on first start.
pub fn load_master_key(config: &Config) -> anyhow::Result<MasterKey> {
    match &config.master_key {
        MasterKeySource::Inline(text) => Ok(MasterKey::from_base64(text.expose_secret())?),
        MasterKeySource::File { path, create } => {
            if path.exists() {
                let text =
                    zeroize::Zeroizing::new(std::fs::read_to_string(path).with_context(|| {
                        format!("cannot read the master key file {}", path.display())
                    })?);
                MasterKey::from_base64(&text)
                    .with_context(|| format!("the master key file {} is not valid", path.display()))
            } else if *create {
                let (key, text) = MasterKey::generate();
                write_private(path, &format!("{}\n", text.as_str()))?;
                tracing::info!(path = %path.display(), key_id = key.id(), "created a new master key");
                Ok(key)
            } else {
                bail!(
                    "the master key file {} (LATCHKEY_MASTER_KEY_FILE) does not exist",
                    path.display()
                )
            }
        }
    }
}

/// Where a rotation keeps the replaced key until nothing uses it (key-file setups only).
pub fn previous_key_file(config: &Config) -> Option<std::path::PathBuf> {
    match &config.master_key {
        MasterKeySource::File { path, .. } => {
            let mut p = path.as_os_str().to_owned();
            p.push(".previous");
            Some(p.into())
        }
        MasterKeySource::Inline(_) => None,
    }
}

/// Older master keys to try: `LATCHKEY_PREVIOUS_MASTER_KEY` and `<key file>.previous`.
pub fn load_previous_keys(config: &Config) -> anyhow::Result<Vec<MasterKey>> {
    let mut out = Vec::new();
    if let Some(k) = &config.previous_master_key {
        out.push(MasterKey::from_base64(k.expose_secret())?);
    }
    if let Some(path) = previous_key_file(config).filter(|p| p.exists()) {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        );
        out.push(
            MasterKey::from_base64(&text)
                .with_context(|| format!("{} is not a valid master key", path.display()))?,
        );
    }
    Ok(out)
}

/// Replaces the key file with `new_text` (keeping the old key in `<file>.previous` until the
/// rotation is complete). Each step is a whole-file write and a rename, so a crash leaves either
/// the old or the new key in place, and the previous one beside it.
pub fn replace_key_file(
    config: &Config,
    new_text: &str,
) -> anyhow::Result<Option<std::path::PathBuf>> {
    let MasterKeySource::File { path, .. } = &config.master_key else {
        return Ok(None);
    };
    let previous = previous_key_file(config).expect("a key file has a previous file");
    let old = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?,
    );
    if !previous.exists() {
        let tmp = previous.with_extension("previous.tmp");
        let _ = std::fs::remove_file(&tmp);
        write_private(&tmp, &old)?;
        std::fs::rename(&tmp, &previous)?;
    }
    let tmp = path.with_extension("key.tmp");
    let _ = std::fs::remove_file(&tmp);
    write_private(&tmp, &format!("{new_text}\n"))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(Some(path.clone()))
}

/// On a store with no API key at all, creates the first admin key and writes it to
/// `<data dir>/admin.key`. Returns the key so that `serve` can print it once.
pub async fn first_admin_key(store: &dyn Store, data_dir: &Path) -> anyhow::Result<Option<String>> {
    if store.count_api_keys().await? > 0 {
        return Ok(None);
    }
    let key = generate_key();
    let record = ApiKey {
        id: ApiKeyId::generate(),
        name: "admin (first start)".into(),
        workspace_id: None,
        user_id: None,
        scopes: vec![],
        hash: hash_key(&key),
        prefix: key_prefix(&key),
        created_at: Utc::now(),
        revoked_at: None,
    };
    store.insert_api_key(&record).await?;
    let path = data_dir.join("admin.key");
    if path.exists() {
        std::fs::remove_file(&path)
            .with_context(|| format!("cannot replace the stale {}", path.display()))?;
    }
    write_private(&path, &format!("{key}\n"))?;
    Ok(Some(key))
}
