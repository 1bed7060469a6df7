//! Figure 4: pool fairness. 100 callers send through the proxy on a connection with
//! concurrency level 5 to an upstream that answers after a fixed 20 ms. A fair FIFO pool gives
//! every caller about the same wait, (callers / level − 1) × service time; the figure is the
//! `Latchkey-Queue-Ms` p50 and p99 against that ideal, and the throughput against level / delay.

use super::{measure, secs};
use crate::load::LoadSpec;
use crate::report::{Row, Table, Unit};
use crate::setup::{Backend, Stack};

const FIG: &str = "4 pool fairness";
pub const LEVEL: usize = 5;
pub const DELAY_MS: u64 = 20;

pub async fn run(stack: &Stack, table: &mut Table) -> anyhow::Result<()> {
    let o = stack.opts().clone();
    let callers = o.pool_callers;
    let ideal_wait = (callers as f64 / LEVEL as f64 - 1.0).max(0.0) * DELAY_MS as f64;
    let ideal_rps = LEVEL as f64 * 1000.0 / DELAY_MS as f64;
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(lk) = stack.latchkey(backend, table).await? else {
            continue;
        };
        let url = format!(
            "{}/v1/workspaces/acme/connections/slow/proxy/delay?ms={DELAY_MS}",
            lk.url
        );
        let spec = LoadSpec::get(url, callers, secs(o.duration), secs(o.warmup))
            .bearer(&lk.key)
            .capture("latchkey-queue-ms");
        let (mut p50, mut p99, mut rps) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..o.runs {
            let what = format!("pool {}/{} on {}", run + 1, o.runs, backend.label());
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
        let n = |v: &Vec<f64>| vec![ideal_wait; v.len()];
        let case = format!(
            "{}, level {LEVEL}, {callers} callers, {DELAY_MS} ms upstream",
            backend.label()
        );
        table.push(
            Row::new(FIG, &case, "queue wait p50", Unit::Ms, p50.clone())
                .reference("ideal FIFO", n(&p50)),
        );
        table.push(
            Row::new(FIG, &case, "queue wait p99", Unit::Ms, p99.clone())
                .reference("ideal FIFO", n(&p99)),
        );
        table.push(
            Row::new(FIG, &case, "requests/s", Unit::PerSecond, rps.clone())
                .reference("level / delay", vec![ideal_rps; rps.len()]),
        );
    }
    Ok(())
}
