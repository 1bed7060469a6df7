//! Figure 5: resident memory of the `latchkey` process (VmRSS, sampled every 10 ms): idle after
//! start and setup, peak under the token-read load, and peak while one 200 MB answer streams
//! through the proxy (added = peak − RSS just before). Each run uses a fresh instance on SQLite;
//! the reference is the bare axum server's RSS under the same conditions.

use super::{measure, reference, token_load};
use crate::load::{self, LoadSpec};
use crate::report::{Row, Table, Target, Unit};
use crate::rss::{mb, rss_bytes, Sampler};
use crate::setup::{Backend, Stack, TOKEN_PATH};
use std::time::Duration;

const FIG: &str = "5 memory (RSS)";
pub const STREAM_BYTES: usize = 200 * 1024 * 1024;
const SETTLE: Duration = Duration::from_secs(1);

/// The median of a few readings a little apart.
async fn steady_rss(pid: u32) -> anyhow::Result<u64> {
    let mut v = Vec::new();
    for _ in 0..5 {
        v.push(rss_bytes(pid).ok_or_else(|| anyhow::anyhow!("cannot read /proc/{pid}/status"))?);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    v.sort_unstable();
    Ok(v[v.len() / 2])
}

pub async fn run(stack: &Stack, table: &mut Table) -> anyhow::Result<()> {
    let o = stack.opts().clone();
    let (mut idle, mut loaded, mut added, mut stream_peak) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut ref_idle, mut ref_loaded) = (Vec::new(), Vec::new());
    for run in 0..o.runs {
        eprintln!("memory, run {}/{}", run + 1, o.runs);
        let lk = stack
            .latchkey(Backend::Sqlite, table)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no Latchkey on SQLite"))?;
        let body = stack.token_body(&lk).await?;
        let bare = reference(stack, &body).await?;
        tokio::time::sleep(SETTLE).await;
        idle.push(mb(steady_rss(lk.pid).await?));
        ref_idle.push(mb(steady_rss(bare.pid).await?));

        let sampler = Sampler::start(lk.pid);
        measure(
            "token reads (RSS sampled)",
            &token_load(stack, &lk, o.callers),
        )
        .await?;
        loaded.push(mb(sampler.finish().0));
        let sampler = Sampler::start(bare.pid);
        let bare_spec = LoadSpec::get(
            format!("{}{TOKEN_PATH}", bare.url),
            o.callers,
            super::secs(o.duration),
            super::secs(o.warmup),
        );
        measure("bare axum (RSS sampled)", &bare_spec).await?;
        ref_loaded.push(mb(sampler.finish().0));

        tokio::time::sleep(SETTLE).await;
        let before = steady_rss(lk.pid).await?;
        let sampler = Sampler::start(lk.pid);
        let url = format!(
            "{}/v1/workspaces/acme/connections/up/proxy/bytes?n={STREAM_BYTES}",
            lk.url
        );
        let dest = load::target(&url)?;
        let headers = vec![(
            hyper::header::AUTHORIZATION,
            hyper::header::HeaderValue::from_str(&format!("Bearer {}", lk.key))?,
        )];
        let mut sender = load::connect(&dest.authority).await?;
        let t0 = std::time::Instant::now();
        let (status, _, n) =
            load::exchange(&mut sender, load::request(&dest, &headers), None).await?;
        let took = t0.elapsed();
        let (peak, samples) = sampler.finish();
        anyhow::ensure!(
            status == 200 && n == STREAM_BYTES as u64,
            "the stream answered {status} with {n} bytes"
        );
        eprintln!(
            "  streamed 200 MB in {:.0} ms ({:.0} MB/s); RSS {:.1} MB before, peak {:.1} MB ({samples} samples)",
            took.as_secs_f64() * 1000.0,
            200.0 / took.as_secs_f64(),
            mb(before),
            mb(peak)
        );
        added.push(mb(peak.saturating_sub(before)));
        stream_peak.push(mb(peak));
    }
    let case = "SQLite";
    table.push(
        Row::new(FIG, case, "idle", Unit::Mb, idle)
            .reference("bare axum", ref_idle)
            .target(Target::Below(30.0)),
    );
    table.push(
        Row::new(
            FIG,
            &format!("{case}, token reads, {} callers", o.callers),
            "peak",
            Unit::Mb,
            loaded,
        )
        .reference("bare axum", ref_loaded),
    );
    table.push(Row::new(
        FIG,
        &format!("{case}, streaming 200 MB"),
        "peak",
        Unit::Mb,
        stream_peak,
    ));
    table.push(
        Row::new(
            FIG,
            &format!("{case}, streaming 200 MB"),
            "added while streaming",
            Unit::Mb,
            added,
        )
        .target(Target::Below(20.0)),
    );
    Ok(())
}
