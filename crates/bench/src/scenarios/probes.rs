//! Figure 8: probes at scale. PostgreSQL holds 100,000 connections (copies of the upstream
//! connection, see [`db::set_copy_probes`]). First their probes are off: the token reads are
//! measured, and so are the store statements the background issues while nothing is due (its
//! claim of due work, once a tick). Then their probes are spread over the default interval
//! (3600 s, so about 28 probes a second): the statements and probes of a quiet window give the
//! statements each probe costs, and the token reads are measured again while probes run.
//! Statements are the server's own count (`latchkey_store_statements_total`: every statement,
//! begin and commit it sends), read from `/metrics`.

use super::{measure, token_load, Series};
use crate::db::{self, Probes};
use crate::report::{Row, Table, Target, Unit};
use crate::setup::{Backend, Latchkey, Stack};
use std::time::{Duration, Instant};

const FIG: &str = "8 probes";
/// The default probe interval.
const INTERVAL_MS: i64 = 3_600_000;

/// A counter's value summed over its series (0 when never counted).
async fn counter(stack: &Stack, lk: &Latchkey, name: &str) -> anyhow::Result<f64> {
    let text = stack
        .http
        .get(format!("{}/metrics", lk.url))
        .bearer_auth(&lk.admin_key)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// Statements and probes per second over `window` with no requests but the two scrapes.
async fn quiet_rates(stack: &Stack, lk: &Latchkey, window: Duration) -> anyhow::Result<(f64, f64)> {
    let (s0, p0) = (
        counter(stack, lk, "latchkey_store_statements_total").await?,
        counter(stack, lk, "latchkey_probes_total").await?,
    );
    let t = Instant::now();
    tokio::time::sleep(window).await;
    let (s1, p1) = (
        counter(stack, lk, "latchkey_store_statements_total").await?,
        counter(stack, lk, "latchkey_probes_total").await?,
    );
    let secs = t.elapsed().as_secs_f64();
    // The second scrape's own statements (the gauges it computes) are not the background's.
    Ok((((s1 - s0) - 2.0).max(0.0) / secs, (p1 - p0) / secs))
}

async fn token_reads(stack: &Stack, lk: &Latchkey, label: &str) -> anyhow::Result<Series> {
    let o = stack.opts();
    let mut s = Series::default();
    for run in 0..o.runs {
        let what = format!("token reads, {label}, run {}/{}", run + 1, o.runs);
        s.add(&measure(&what, &token_load(stack, lk, o.callers)).await?);
    }
    Ok(s)
}

pub async fn run(stack: &Stack, table: &mut Table) -> anyhow::Result<()> {
    let Some(lk) = stack.latchkey(Backend::Postgres, table).await? else {
        table.note("the probes figure needs PostgreSQL: skipped");
        return Ok(());
    };
    let o = stack.opts().clone();
    let n = o.scale_connections;
    let t = Instant::now();
    db::clone_connections(&lk.database_url, "up", "copy", 0, n).await?;
    db::set_copy_probes(&lk.database_url, "copy", Probes::Off).await?;
    eprintln!(
        "  {n} connections with probes off in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let window = Duration::from_secs_f64(o.duration.max(5.0) * 2.0);
    // Whatever the server claimed before the probes were parked finishes first.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (idle_statements, _) = quiet_rates(stack, &lk, window).await?;
    let off = token_reads(stack, &lk, &format!("{n} connections, probes off")).await?;

    db::set_copy_probes(
        &lk.database_url,
        "copy",
        Probes::Spread {
            interval_ms: INTERVAL_MS,
        },
    )
    .await?;
    let (statements, probes) = quiet_rates(stack, &lk, window).await?;
    let on = token_reads(stack, &lk, &format!("{n} connections, probes on")).await?;
    let per_probe = if probes > 0.0 {
        (statements - idle_statements).max(0.0) / probes
    } else {
        f64::NAN
    };
    eprintln!(
        "  idle: {idle_statements:.1} statements/s; probing: {statements:.1} statements/s, \
         {probes:.1} probes/s, {per_probe:.2} statements per probe"
    );
    let case = format!("PostgreSQL, {n} connections, interval 3600 s");
    table.push(
        Row::new(
            FIG,
            &case,
            "token requests/s, probes on",
            Unit::PerSecond,
            on.rps,
        )
        .reference("probes off", off.rps)
        .target(Target::RatioAtLeast(0.9)),
    );
    table.push(
        Row::new(FIG, &case, "token p99, probes on", Unit::Ms, on.p99)
            .reference("probes off", off.p99),
    );
    table.push(
        Row::new(
            FIG,
            &case,
            "store statements/s, nothing due (scheduler only)",
            Unit::PerSecond,
            vec![idle_statements],
        )
        .target(Target::Below(5.0)),
    );
    table.push(Row::new(
        FIG,
        &case,
        "store statements/s, probing",
        Unit::PerSecond,
        vec![statements],
    ));
    table.push(Row::new(
        FIG,
        &case,
        "probes/s",
        Unit::PerSecond,
        vec![probes],
    ));
    table.push(Row::new(
        FIG,
        &case,
        "store statements per probe (its pool slot, its outcome, its share of claims and reads)",
        Unit::Count,
        vec![per_probe],
    ));
    Ok(())
}
