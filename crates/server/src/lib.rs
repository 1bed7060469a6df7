//! Latchkey's HTTP server: the API, the OAuth callback, the proxy and the UI, over the domain in
//! `latchkey-core` and a store from `latchkey-store`.

#![warn(clippy::too_many_lines, clippy::unwrap_used)]

pub mod access;
pub mod auth;
pub mod background;
pub mod bootstrap;
pub mod config;
pub mod connect;
pub mod destinations;
pub mod directory;
pub mod error;
pub mod hot;
pub mod inject;
pub mod keyring;
pub mod limits;
pub mod mcp;
pub mod oauth;
pub mod outbound;
pub mod pagination;
pub mod people;
pub mod proxy;
pub mod quirks;
pub mod routes;
pub mod service;
pub mod serving;
pub mod signing;
pub mod state;
pub mod telemetry;
pub mod ui;
pub mod vault;
pub mod verify;
/// A hash map for the per-request lookups of the hot path (remembered pairs, credentials,
/// pools, upstream connections, metric handles): foldhash instead of the standard SipHash,
/// which cost about 3,600 instructions per proxied call across these lookups. Each map has its
/// own random seed, and what goes in them is bounded and mostly the server's own (identifiers
/// it generated, origins of stored connections, names a caller with a valid key asked for while
/// their store read is in flight); colliding keys could not be chosen without the seed.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

use anyhow::Context;
use config::Config;
use latchkey_core::catalog::Catalog;
use state::{AppState, Inner};
use std::future::Future;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use url::Url;

/// A built server, bound to its address but not yet serving.
pub struct Application {
    listener: TcpListener,
    router: routes::ProxyFirst,
    address: SocketAddr,
    public_url: Url,
    /// The admin key created on this start (only on a store that had none).
    pub first_admin_key: Option<String>,
    pub state: AppState,
}

impl Application {
    /// Opens the store, loads the keys, binds the listener (port 0 picks a free port).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        bootstrap::ensure_data_dir(&config.data_dir)?;
        let master = bootstrap::load_master_key(&config)?;
        let store = latchkey_store::open(&config.database_url)
            .await
            .context("cannot open the store")?;
        if store.backend() == "sqlite" {
            // One process owns a SQLite store: leases left behind belong to a process that died.
            let cleared = store.release_all_leases().await?;
            if cleared > 0 {
                tracing::info!(cleared, "released leases left by a previous process");
            }
        }
        let previous = bootstrap::load_previous_keys(&config)?;
        let keyring = keyring::KeyRing::with_previous(master, previous, store.clone());
        keyring
            .check_master_key()
            .await
            .map_err(anyhow::Error::msg)?;
        let catalog = match &config.catalog_dir {
            Some(dir) => Catalog::with_dir(dir)?,
            None => Catalog::embedded(),
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let address = listener.local_addr()?;
        // Only once the address is ours: a key created by a start that then fails would be lost.
        let first_admin_key = bootstrap::first_admin_key(store.as_ref(), &config.data_dir).await?;
        let public_url = match &config.public_url {
            Some(u) => u.clone(),
            None => Url::parse(&format!("http://{address}")).expect("an address makes a URL"),
        };
        let outbound = outbound::Outbound::new(
            config.outbound_rewrites.clone(),
            config.outbound_allow.clone(),
        );
        let pools = proxy::pool::Pools::new(
            store.clone(),
            store.backend() == "postgres",
            config.proxy_recovery_interval,
        );
        let state = AppState::new(Inner {
            store,
            catalog,
            keyring,
            outbound,
            keys: auth::KeyCache::default(),
            throttle: auth::AuthThrottle::default(),
            tokens: oauth::tokens::TokenManager::default(),
            hot: hot::HotPaths::default(),
            pools,
            public_url: public_url.clone(),
            metrics: telemetry::metrics_handle(),
            background: background::Shared::default(),
            pending: Default::default(),
            config,
        });
        if state.keyring.has_previous() {
            let st = state.clone();
            tokio::spawn(async move { routes::admin::finish_rotation(&st).await });
        }
        let router = routes::router(state.clone());
        Ok(Self {
            listener,
            router,
            address,
            public_url,
            first_admin_key,
            state,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn public_url(&self) -> &Url {
        &self.public_url
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let workers = background::start(&self.state);
        let threads = serving::thread_count(self.state.config.http_threads);
        let served = serving::serve(self.listener, self.router, threads, shutdown).await;
        for w in workers {
            w.abort();
        }
        served
    }
}
