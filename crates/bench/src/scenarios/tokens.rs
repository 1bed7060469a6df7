//! Figure 1: token reads (`GET …/token` of a valid Salesforce token) with 64 concurrent
//! callers, on SQLite and PostgreSQL, against a bare axum server answering the same JSON.

use super::{measure, measure_profiled, reference, secs, token_load, Series};
use crate::load::LoadSpec;
use crate::report::{Row, Table, Target, Unit};
use crate::setup::{Backend, Stack, TOKEN_PATH};

const FIG: &str = "1 token reads";

pub async fn run(stack: &Stack, table: &mut Table) -> anyhow::Result<()> {
    let o = stack.opts().clone();
    let mut servers = Vec::new();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if let Some(lk) = stack.latchkey(backend, table).await? {
            servers.push(lk);
        }
    }
    let Some(first) = servers.first() else {
        anyhow::bail!("no Latchkey instance started");
    };
    let body = stack.token_body(first).await?;
    let bare = reference(stack, &body).await?;
    let bare_spec = LoadSpec::get(
        format!("{}{TOKEN_PATH}", bare.url),
        o.callers,
        secs(o.duration),
        secs(o.warmup),
    );
    let mut reference_series = Series::default();
    let mut series = vec![Series::default(); servers.len()];
    for run in 0..o.runs {
        eprintln!("token reads, run {}/{}", run + 1, o.runs);
        reference_series.add(&measure("bare axum reference", &bare_spec).await?);
        for (lk, s) in servers.iter().zip(series.iter_mut()) {
            let spec = token_load(stack, lk, o.callers);
            let what = format!("latchkey on {}", lk.backend.label());
            let name = format!("tokens-{}", lk.backend.label().to_lowercase());
            s.add(&measure_profiled(stack, lk, run == 0, &name, &what, &spec).await?);
        }
    }
    let case = |b: Backend| format!("{}, {} callers", b.label(), o.callers);
    for (lk, s) in servers.iter().zip(series) {
        let r = &reference_series;
        table.push(
            Row::new(FIG, &case(lk.backend), "requests/s", Unit::PerSecond, s.rps)
                .reference("bare axum", r.rps.clone())
                .target(Target::RatioAtLeast(0.5)),
        );
        table.push(
            Row::new(FIG, &case(lk.backend), "p50", Unit::Ms, s.p50)
                .reference("bare axum", r.p50.clone()),
        );
        table.push(
            Row::new(FIG, &case(lk.backend), "p99", Unit::Ms, s.p99)
                .reference("bare axum", r.p99.clone())
                .target(Target::Below(5.0)),
        );
    }
    Ok(())
}
