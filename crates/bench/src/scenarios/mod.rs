//! The figures. Each scenario starts what it needs, measures `runs` times, and adds rows.

pub mod coldstart;
pub mod memory;
pub mod pool;
pub mod probes;
pub mod proxy;
pub mod scale;
pub mod storm;
pub mod tokens;

use crate::load::{self, LoadResult, LoadSpec};
use crate::servers::{self, Service};
use crate::setup::{Latchkey, Stack, TOKEN_PATH};
use axum::body::Bytes;
use std::time::Duration;

/// Requests/s and latency quantiles of several runs.
#[derive(Default, Clone, Debug)]
pub struct Series {
    pub rps: Vec<f64>,
    pub p50: Vec<f64>,
    pub p99: Vec<f64>,
}

impl Series {
    pub fn add(&mut self, r: &LoadResult) {
        self.rps.push(r.rps());
        self.p50.push(r.ms(0.5));
        self.p99.push(r.ms(0.99));
    }
}

pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

/// The token-read load against `lk` with `workers` callers.
pub fn token_load(stack: &Stack, lk: &Latchkey, workers: usize) -> LoadSpec {
    let o = stack.opts();
    LoadSpec::get(
        format!("{}{TOKEN_PATH}", lk.url),
        workers,
        secs(o.duration),
        secs(o.warmup),
    )
    .bearer(&lk.key)
}

/// Runs a load, saying what it measured.
pub async fn measure(what: &str, spec: &LoadSpec) -> anyhow::Result<LoadResult> {
    let r = load::run(spec).await?;
    eprintln!(
        "  {what:<44} {:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({} errors)",
        r.rps(),
        r.ms(0.5),
        r.ms(0.99),
        r.errors
    );
    Ok(r)
}

/// Like [`measure`]; with `--perf DIR` and `profile`, records `perf record -g` of the server
/// meanwhile into `DIR/{name}.perf.data`.
pub async fn measure_profiled(
    stack: &Stack,
    lk: &Latchkey,
    profile: bool,
    name: &str,
    what: &str,
    spec: &LoadSpec,
) -> anyhow::Result<LoadResult> {
    let o = stack.opts();
    let perf = match &o.perf {
        Some(dir) if profile && lk.is_process() => {
            std::fs::create_dir_all(dir)?;
            let out = dir.join(format!("{name}.perf.data"));
            crate::children::perf_record(lk.pid, &out, o.warmup + o.duration)
        }
        _ => None,
    };
    let r = measure(what, spec).await;
    if let Some(mut p) = perf {
        p.wait_or_kill(Duration::from_secs(10));
    }
    r
}

/// The bare reference server answering `body` at the token path (and `/healthz`).
pub async fn reference(stack: &Stack, body: &str) -> anyhow::Result<Service> {
    if stack.ctx.in_process() {
        servers::in_process(servers::reference_router(
            TOKEN_PATH,
            Bytes::from(body.to_string()),
        ))
        .await
    } else {
        let file = tempfile::NamedTempFile::new()?;
        std::fs::write(file.path(), body)?;
        let path = file.path().display().to_string();
        let svc = servers::child(&["serve-reference", "--body", &path], "reference server").await?;
        drop(file);
        Ok(svc)
    }
}
