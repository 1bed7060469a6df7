//! Figure 6: scale. The store first holds 100 connections (the few created through the API plus
//! copies inserted with SQL), then 100,000; each time the token reads (64 callers) and
//! `GET …/connections?limit=100` (8 callers) are measured. The reference is the 100 case, held
//! by a second server (a store of its own) that runs beside the first, so that each run of the
//! 100,000 case is measured right after a run of the reference, as the other figures interleave
//! theirs: a slow drift of the machine (this figure's runs spread by 30% on a shared host)
//! then moves both alike instead of the ratio. The copies are new to the server, which places
//! each one's first probe in the background: the 100,000 case is measured once that is done,
//! and how long it took is reported.

use super::{measure, secs, token_load, Series};
use crate::db;
use crate::load::LoadSpec;
use crate::report::{Row, Table, Target, Unit};
use crate::setup::{Backend, Latchkey, Stack};
use std::time::Instant;

const FIG: &str = "6 scale";
const SMALL: usize = 100;
const LIST_CALLERS: usize = 8;

/// One run of the token reads and the list on `lk`, which holds `n` connections.
async fn measure_at(
    stack: &Stack,
    (lk, n): (&Latchkey, usize),
    run: usize,
    tokens: &mut Series,
    list: &mut Series,
) -> anyhow::Result<()> {
    let o = stack.opts();
    let list_spec = LoadSpec::get(
        format!("{}/v1/workspaces/acme/connections?limit=100", lk.url),
        LIST_CALLERS,
        secs(o.duration),
        secs(o.warmup),
    )
    .bearer(&lk.key);
    let label = format!(
        "{} connections, {} run {}/{}",
        n,
        lk.backend.label(),
        run + 1,
        o.runs
    );
    tokens.add(
        &measure(
            &format!("token reads, {label}"),
            &token_load(stack, lk, o.callers),
        )
        .await?,
    );
    list.add(&measure(&format!("list, {label}"), &list_spec).await?);
    Ok(())
}

/// Inserts copies of `up` until the store holds `want` connections.
async fn fill(lk: &Latchkey, want: usize) -> anyhow::Result<()> {
    let have = db::count_connections(&lk.database_url).await? as usize;
    if want > have {
        let t = Instant::now();
        db::clone_connections(&lk.database_url, "up", "copy", have, want - have).await?;
        eprintln!(
            "  inserted {} connections in {:.1} s ({})",
            want - have,
            t.elapsed().as_secs_f64(),
            lk.backend.label()
        );
    }
    Ok(())
}

/// Milliseconds from now until the server has placed the first probe of every connection (it
/// does so in batches as soon as their schedule rows exist), polled every 50 ms for at most
/// two minutes.
async fn placed_after(database_url: String) -> anyhow::Result<f64> {
    let start = Instant::now();
    let limit = std::time::Duration::from_secs(120);
    loop {
        if db::count_unplaced(&database_url).await? == 0 {
            return Ok(start.elapsed().as_secs_f64() * 1000.0);
        }
        anyhow::ensure!(
            start.elapsed() < limit,
            "first probes not placed within {} s",
            limit.as_secs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

pub async fn run(stack: &Stack, table: &mut Table) -> anyhow::Result<()> {
    let o = stack.opts().clone();
    let big = o.scale_connections.max(SMALL);
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(small_lk) = stack.latchkey(backend, table).await? else {
            continue;
        };
        let Some(lk) = stack.latchkey(backend, table).await? else {
            continue;
        };
        fill(&small_lk, SMALL).await?;
        fill(&lk, big).await?;
        // The server first places the copies' first probes (a burst of background work that
        // takes seconds at 100,000 new connections); the reads are measured after it, in the
        // steady state, and the burst's length is a row of its own.
        let placed = placed_after(lk.database_url.clone()).await?;
        let (mut small_tokens, mut small_list) = (Series::default(), Series::default());
        let (mut big_tokens, mut big_list) = (Series::default(), Series::default());
        for run in 0..o.runs {
            let (small, large) = ((&small_lk, SMALL), (&lk, big));
            measure_at(stack, small, run, &mut small_tokens, &mut small_list).await?;
            measure_at(stack, large, run, &mut big_tokens, &mut big_list).await?;
        }
        let case = format!("{}, {big} vs {SMALL} connections", backend.label());
        let r = format!("{SMALL} connections");
        table.push(
            Row::new(
                FIG,
                &case,
                "token requests/s",
                Unit::PerSecond,
                big_tokens.rps,
            )
            .reference(&r, small_tokens.rps)
            .target(Target::RatioAtLeast(0.9)),
        );
        table.push(
            Row::new(FIG, &case, "token p99", Unit::Ms, big_tokens.p99)
                .reference(&r, small_tokens.p99),
        );
        table.push(
            Row::new(
                FIG,
                &case,
                &format!("list limit=100 p99, {LIST_CALLERS} callers"),
                Unit::Ms,
                big_list.p99,
            )
            .reference(&r, small_list.p99),
        );
        table.push(
            Row::new(FIG, &case, "list requests/s", Unit::PerSecond, big_list.rps)
                .reference(&r, small_list.rps),
        );
        table.push(Row::new(
            FIG,
            &case,
            "first probes of the copies placed after",
            Unit::Ms,
            vec![placed],
        ));
    }
    Ok(())
}
