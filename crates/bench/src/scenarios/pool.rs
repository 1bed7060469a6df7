//! Figure 4: pools. 100 callers send through the proxy on connections with concurrency levels
//! 1, 5 and 25 to an upstream that answers after 20 ms. The reference is the upstream itself,
//! measured in the same run with as many callers as the level (what the level allows at best,
//! timer rounding included). A fair FIFO pool gives every caller about the same wait,
//! (callers / level − 1) × the upstream's own latency; the figure is the `Latchkey-Queue-Ms` p50
//! and p99 against that ideal, and the throughput against the upstream's own rate.

use super::{measure, secs};
use crate::load::LoadSpec;
use crate::report::{Row, Table, Unit};
use crate::servers::UPSTREAM_KEY;
use crate::setup::{Backend, Stack, POOL_CONNECTIONS};

const FIG: &str = "4 pools";
pub const DELAY_MS: u64 = 20;

/// The upstream's own rate and median latency with `level` callers, one figure per run.
async fn upstream_alone(stack: &Stack, level: usize) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let o = stack.opts();
    let url = format!("{}/delay?ms={DELAY_MS}", stack.upstream.url);
    let spec = LoadSpec::get(url, level, secs(o.duration), secs(o.warmup))
        .header("x-api-key", UPSTREAM_KEY);
    let (mut rps, mut p50) = (Vec::new(), Vec::new());
    for run in 0..o.runs {
        let what = format!("upstream alone, {level} callers {}/{}", run + 1, o.runs);
        let r = measure(&what, &spec).await?;
        rps.push(r.rps());
        p50.push(r.ms(0.5));
    }
    Ok((rps, p50))
}

pub async fn run(stack: &Stack, table: &mut Table) -> anyhow::Result<()> {
    let o = stack.opts().clone();
    let callers = o.pool_callers;
    let mut alone = Vec::new();
    for (_, level) in POOL_CONNECTIONS {
        alone.push(upstream_alone(stack, level).await?);
    }
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(lk) = stack.latchkey(backend, table).await? else {
            continue;
        };
        for ((name, level), (ref_rps, ref_ms)) in POOL_CONNECTIONS.iter().zip(&alone) {
            let url = format!(
                "{}/v1/workspaces/acme/connections/{name}/proxy/delay?ms={DELAY_MS}",
                lk.url
            );
            let spec = LoadSpec::get(url, callers, secs(o.duration), secs(o.warmup))
                .bearer(&lk.key)
                .capture("latchkey-queue-ms");
            let (mut p50, mut p99, mut rps) = (Vec::new(), Vec::new(), Vec::new());
            for run in 0..o.runs {
                let what = format!(
                    "pool level {level} {}/{} on {}",
                    run + 1,
                    o.runs,
                    backend.label()
                );
                let r = measure(&what, &spec).await?;
                anyhow::ensure!(
                    !r.captured.is_empty(),
                    "no Latchkey-Queue-Ms header in the answers"
                );
                let (q50, q99) = (
                    r.captured.value_at_quantile(0.5) as f64,
                    r.captured.value_at_quantile(0.99) as f64,
                );
                eprintln!("    queue wait p50 {q50} ms, p99 {q99} ms");
                p50.push(q50);
                p99.push(q99);
                rps.push(r.rps());
            }
            let waits = (callers as f64 / *level as f64 - 1.0).max(0.0);
            let ideal: Vec<f64> = ref_ms.iter().map(|ms| waits * ms).collect();
            let case = format!(
                "{}, level {level}, {callers} callers, {DELAY_MS} ms upstream",
                backend.label()
            );
            table.push(
                Row::new(FIG, &case, "queue wait p50", Unit::Ms, p50)
                    .reference("ideal FIFO", ideal.clone()),
            );
            table.push(
                Row::new(FIG, &case, "queue wait p99", Unit::Ms, p99)
                    .reference("ideal FIFO", ideal),
            );
            table.push(
                Row::new(FIG, &case, "requests/s", Unit::PerSecond, rps)
                    .reference("upstream alone at the level", ref_rps.clone()),
            );
        }
    }
    Ok(())
}
