//! A throwaway PostgreSQL database for the PostgreSQL runs, dropped when its guard goes.

use anyhow::Context;
use sqlx::{Connection, PgConnection};
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct PgDb {
    admin_url: String,
    name: String,
    /// The throwaway database's URL.
    pub url: String,
}

impl PgDb {
    /// Creates `latchkey_bench_<random>` on the server of `admin_url`.
    pub async fn create(admin_url: &str) -> anyhow::Result<PgDb> {
        let name = format!("latchkey_bench_{:016x}", rand::random::<u64>());
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(admin_url))
            .await
            .context("connecting to PostgreSQL timed out")?
            .context("cannot connect to PostgreSQL")?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .with_context(|| format!("cannot create database {name}"))?;
        let _ = conn.close().await;
        let mut url = url::Url::parse(admin_url).context("the PostgreSQL URL")?;
        url.set_path(&format!("/{name}"));
        Ok(PgDb {
            admin_url: admin_url.to_string(),
            name,
            url: url.to_string(),
        })
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin_url.clone(), self.name.clone());
        // Drop may run inside the runtime: use a thread with a runtime of its own, and wait.
        let dropper = std::thread::spawn(move || -> Result<(), String> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let mut c = PgConnection::connect(&admin)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut c)
                    .await
                    .map_err(|e| e.to_string())?;
                c.close().await.map_err(|e| e.to_string())
            })
        });
        match dropper.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop database {}: {e}", self.name),
            Err(_) => eprintln!("could not drop database {}", self.name),
        }
    }
}
