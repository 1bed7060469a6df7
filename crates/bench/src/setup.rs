//! What a scenario runs against: the Salesforce simulator (in this process) behind a recording
//! tap, the upstream, and Latchkey instances on SQLite or a throwaway PostgreSQL database, each
//! prepared with a workspace `acme`, an authorized Salesforce connection `sf-prod`, API-key
//! connections `up` (concurrency 25), `slow` (5) and `single` (1) to the upstream, and a
//! workspace key with the scopes `read`, `secrets` and `proxy`. A PostgreSQL instance can get a
//! second one on the same database and master key (a two-instance cluster).

use crate::children::{self, ChildGuard};
use crate::pg::PgDb;
use crate::report::Table;
use crate::servers::{self, Service, UPSTREAM_KEY};
use crate::tap::Tap;
use crate::Options;
use anyhow::{bail, Context};
use latchkey_testkit::salesforce::{self, SalesforceSim};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const WS: &str = "acme";
pub const SF: &str = "sf-prod";
pub const TOKEN_PATH: &str = "/v1/workspaces/acme/connections/sf-prod/token";

/// How the harness runs: options, and the `latchkey` binary (`None`: servers in this process).
#[derive(Clone)]
pub struct Ctx {
    pub opts: Options,
    pub latchkey_bin: Option<PathBuf>,
}

impl Ctx {
    pub fn in_process(&self) -> bool {
        self.latchkey_bin.is_none()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn label(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// The connections of the pool figure and their concurrency levels.
pub const POOL_CONNECTIONS: [(&str, usize); 3] = [("single", 1), ("slow", 5), ("up", 25)];

/// The simulator, the tap in front of its login host, and the upstream.
pub struct Stack {
    pub ctx: Ctx,
    pub sim: SalesforceSim,
    pub tap: Tap,
    pub upstream: Service,
    pub http: reqwest::Client,
}

enum Server {
    Process(ChildGuard),
    InProcess(Box<latchkey_testkit::TestApp>),
}

/// A prepared Latchkey instance. Fields drop in order: the server goes before its data.
pub struct Latchkey {
    server: Server,
    pub url: String,
    pub admin_key: String,
    /// The workspace key (`read`, `secrets`, `proxy`).
    pub key: String,
    pub pid: u32,
    pub backend: Backend,
    pub database_url: String,
    pub data_dir: PathBuf,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<PgDb>,
}

impl Latchkey {
    pub fn is_process(&self) -> bool {
        matches!(self.server, Server::Process(_))
    }

    /// Stops the server now.
    pub async fn stop(&mut self) {
        match &mut self.server {
            Server::Process(g) => g.stop(),
            Server::InProcess(app) => app.stop().await,
        }
    }
}

/// The environment for `latchkey serve`: every inherited `LATCHKEY_*` variable removed but
/// `LATCHKEY_HTTP_THREADS`, which passes through so that thread counts can be compared.
pub fn latchkey_command(
    bin: &Path,
    data_dir: &Path,
    listen: &str,
    extra: &[(&str, &str)],
) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("serve");
    for (k, _) in std::env::vars_os() {
        let k_text = k.to_string_lossy();
        if k_text.starts_with("LATCHKEY_") && k_text != "LATCHKEY_HTTP_THREADS" {
            cmd.env_remove(k);
        }
    }
    cmd.env("LATCHKEY_DATA_DIR", data_dir)
        .env("LATCHKEY_LISTEN", listen)
        .env("LATCHKEY_OUTBOUND_ALLOW", "127.0.0.1,::1,localhost")
        .env("LATCHKEY_LOG", "warn")
        .stdin(std::process::Stdio::null());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    if let Ok(log) = std::fs::File::create(data_dir.join("server.log")) {
        cmd.stderr(log);
    }
    cmd
}

impl Stack {
    pub async fn start(ctx: &Ctx) -> anyhow::Result<Stack> {
        let sim = SalesforceSim::start().await;
        let tap = Tap::start(sim.production_url()).await?;
        let upstream = if ctx.in_process() {
            servers::in_process(servers::upstream_router()).await?
        } else {
            servers::child(&["serve-upstream"], "upstream").await?
        };
        Ok(Stack {
            ctx: ctx.clone(),
            sim,
            tap,
            upstream,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .build()?,
        })
    }

    pub fn opts(&self) -> &Options {
        &self.ctx.opts
    }

    /// `LATCHKEY_OUTBOUND_REWRITES`: the login host through the tap, the others straight.
    pub fn rewrites(&self) -> String {
        format!(
            "{}={},{}={},{}={}",
            salesforce::PRODUCTION_ORIGIN,
            self.tap.url,
            salesforce::SANDBOX_ORIGIN,
            self.sim.sandbox_url(),
            self.sim.my_domain_origin(),
            self.sim.my_domain_url()
        )
    }

    /// A prepared Latchkey on `backend`; `None` (with a note) when PostgreSQL is unavailable
    /// or not wanted.
    pub async fn latchkey(
        &self,
        backend: Backend,
        table: &mut Table,
    ) -> anyhow::Result<Option<Latchkey>> {
        let mut pg = None;
        if backend == Backend::Postgres {
            if self.opts().no_postgres || self.ctx.in_process() {
                return Ok(None);
            }
            match PgDb::create(&self.opts().postgres_url).await {
                Ok(db) => pg = Some(db),
                Err(e) => {
                    table.note(format!("PostgreSQL runs skipped: {e:#}"));
                    return Ok(None);
                }
            }
        }
        let mut lk = match &self.ctx.latchkey_bin {
            None => self.in_process().await?,
            Some(bin) => {
                let dir = tempfile::tempdir()?;
                let database_url = match &pg {
                    Some(db) => db.url.clone(),
                    None => format!("sqlite://{}/latchkey.db", dir.path().display()),
                };
                let mut lk = self.process(bin, dir, backend, &database_url, &[]).await?;
                lk.admin_key = std::fs::read_to_string(lk.data_dir.join("admin.key"))
                    .context("reading admin.key")?
                    .trim()
                    .to_string();
                lk
            }
        };
        lk._pg = pg;
        self.prepare(&mut lk)
            .await
            .with_context(|| format!("preparing Latchkey on {}", backend.label()))?;
        Ok(Some(lk))
    }

    /// `latchkey serve` on `database_url` with `dir` as its data folder and `extra` variables;
    /// no keys yet.
    async fn process(
        &self,
        bin: &Path,
        dir: tempfile::TempDir,
        backend: Backend,
        database_url: &str,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Latchkey> {
        let rewrites = self.rewrites();
        let mut vars = vec![
            ("LATCHKEY_OUTBOUND_REWRITES", rewrites.as_str()),
            ("LATCHKEY_DATABASE_URL", database_url),
        ];
        vars.extend_from_slice(extra);
        let cmd = latchkey_command(bin, dir.path(), "127.0.0.1:0", &vars);
        let (guard, url) =
            children::spawn_announcing(cmd, "latchkey", "Latchkey listening on").await?;
        Ok(Latchkey {
            pid: guard.pid(),
            server: Server::Process(guard),
            url,
            admin_key: String::new(),
            key: String::new(),
            backend,
            database_url: database_url.to_string(),
            data_dir: dir.path().to_path_buf(),
            _dir: Some(dir),
            _pg: None,
        })
    }

    /// A second `latchkey serve` on `first`'s PostgreSQL database: a data folder of its own, the
    /// first one's master key file (`LATCHKEY_MASTER_KEY_FILE`, never created), so that it opens
    /// the same data keys and credentials. The migrations are already applied (sqlx skips them)
    /// and the store has API keys, so no admin key is created: it answers to `first`'s keys. Drop
    /// it before `first`, which owns the database and the key file.
    pub async fn second_instance(&self, first: &Latchkey) -> anyhow::Result<Latchkey> {
        let Some(bin) = &self.ctx.latchkey_bin else {
            bail!("a second instance needs the release binary");
        };
        anyhow::ensure!(
            first.backend == Backend::Postgres,
            "instances share a PostgreSQL store only"
        );
        let master_key = first.data_dir.join("master.key");
        let master_key = master_key.to_string_lossy();
        let extra = [("LATCHKEY_MASTER_KEY_FILE", master_key.as_ref())];
        let dir = tempfile::tempdir()?;
        let mut lk = self
            .process(bin, dir, first.backend, &first.database_url, &extra)
            .await
            .context("starting the second instance")?;
        anyhow::ensure!(
            !lk.data_dir.join("admin.key").exists(),
            "the second instance created an admin key of its own"
        );
        lk.admin_key = first.admin_key.clone();
        lk.key = first.key.clone();
        // The workspace key and the stored credentials work there too.
        self.expect_token(&lk)
            .await
            .context("a token read on the second instance")?;
        Ok(lk)
    }

    async fn in_process(&self) -> anyhow::Result<Latchkey> {
        let rewrites = latchkey_core::outbound::Rewrites::parse(&self.rewrites())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let app = latchkey_testkit::spawn_app_with(|c| c.outbound_rewrites = rewrites).await;
        Ok(Latchkey {
            url: app.url.clone(),
            admin_key: app.admin_key.clone(),
            key: String::new(),
            pid: std::process::id(),
            backend: Backend::Sqlite,
            database_url: app.config.database_url.clone(),
            data_dir: app.data_dir.clone(),
            server: Server::InProcess(Box::new(app)),
            _dir: None,
            _pg: None,
        })
    }

    /// Sends a request with the admin key; answers status and JSON body.
    pub async fn call(
        &self,
        lk: &Latchkey,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", lk.url))
            .bearer_auth(&lk.admin_key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("calling {path}"))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    async fn expect(
        &self,
        lk: &Latchkey,
        method: reqwest::Method,
        path: &str,
        body: Value,
        want: u16,
    ) -> anyhow::Result<Value> {
        let (status, answer) = self.call(lk, method, path, Some(body)).await?;
        if status != want {
            bail!("{path} answered {status} (wanted {want}): {answer}");
        }
        Ok(answer)
    }

    async fn prepare(&self, lk: &mut Latchkey) -> anyhow::Result<()> {
        use reqwest::Method;
        self.expect(
            lk,
            Method::POST,
            "/v1/workspaces",
            json!({"slug": WS, "name": "Acme"}),
            201,
        )
        .await?;
        self.expect(lk, Method::PUT, "/v1/workspaces/acme/apps/salesforce/oauth-client",
            json!({"client_id": salesforce::DEFAULT_CONSUMER_KEY, "client_secret": salesforce::DEFAULT_CONSUMER_SECRET}), 200)
            .await?;
        self.sim.add_callback_url(
            salesforce::DEFAULT_CONSUMER_KEY,
            &format!("{}/oauth/callback", lk.url),
        );
        let created = self
            .expect(lk, Method::POST, "/v1/workspaces/acme/connections",
                json!({"name": SF, "app": "salesforce", "auth_mode": "oauth2_code", "settings": {"account_type": "production"}}), 201)
            .await?;
        let url = created["authorize_url"]
            .as_str()
            .context("authorize_url")?
            .replace(&self.tap.url, self.sim.production_url());
        let location = self
            .sim
            .login_via_browser(
                &url,
                salesforce::DEFAULT_USERNAME,
                salesforce::DEFAULT_PASSWORD,
            )
            .await?;
        let page = self.http.get(&location).send().await?;
        if page.status() != 200 {
            bail!(
                "the OAuth callback answered {}: {}",
                page.status(),
                page.text().await.unwrap_or_default()
            );
        }
        for (name, level) in [("up", 25), ("slow", 5), ("single", 1)] {
            self.expect(lk, Method::POST, "/v1/workspaces/acme/connections", json!({
                "name": name, "app": "generic-api-key",
                "settings": {"base_url": self.upstream.url, "verify_path": "/health", "concurrency_level": level},
                "credentials": {"api_key": UPSTREAM_KEY}}), 201)
                .await?;
        }
        let key = self
            .expect(
                lk,
                Method::POST,
                "/v1/api-keys",
                json!({"name": "bench", "workspace": WS, "scopes": ["read", "secrets", "proxy"]}),
                201,
            )
            .await?;
        lk.key = key["key"].as_str().context("the new key")?.to_string();
        // The token is readable with it.
        self.expect_token(lk).await
    }

    /// Reads the token with the workspace key; fails unless it answers 200.
    async fn expect_token(&self, lk: &Latchkey) -> anyhow::Result<()> {
        let t = self
            .http
            .get(format!("{}{TOKEN_PATH}", lk.url))
            .bearer_auth(&lk.key)
            .send()
            .await?;
        if t.status() != 200 {
            bail!(
                "the token read answered {}: {}",
                t.status(),
                t.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    /// The token answer's body, as a caller receives it.
    pub async fn token_body(&self, lk: &Latchkey) -> anyhow::Result<String> {
        let t = self
            .http
            .get(format!("{}{TOKEN_PATH}", lk.url))
            .bearer_auth(&lk.key)
            .send()
            .await?;
        Ok(t.text().await?)
    }
}
