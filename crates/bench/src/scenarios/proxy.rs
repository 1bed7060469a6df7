//! Figure 2: the proxy (`GET …/proxy/bytes?n=N`) against the same request sent straight to the
//! upstream, 1 KB and 1 MB answers. Throughput and latency under load (16 callers, under the
//! connection's concurrency level of 25 so no request queues), and the added p50 with one
//! caller, which is the proxy's own cost per request without CPU contention. A bare reverse
//! proxy (axum + reqwest, no auth, no lookups) shows what any proxy can reach on this machine;
//! nginx `proxy_pass` (see [`crate::nginx`]), what a mature general-purpose proxy reaches, is the
//! reference Latchkey's throughput and p50 at 16 callers are also compared with.

use super::{measure, measure_profiled, secs, Series};
use crate::load::LoadSpec;
use crate::report::{Row, Table, Target, Unit};
use crate::servers::{self, UPSTREAM_KEY};
use crate::setup::{Backend, Latchkey, Stack};

const FIG: &str = "2 proxy";

/// The answer sizes measured: label and bytes.
pub const SIZES: [(&str, usize); 2] = [("1 KB", 1024), ("1 MB", 1024 * 1024)];

/// An answer size that `--sizes` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Size {
    #[value(name = "1kb")]
    Kb,
    #[value(name = "1mb")]
    Mb,
}

/// The sizes of [`SIZES`] that `--sizes` kept, in their order.
pub fn chosen(sizes: &[Size]) -> Vec<(&'static str, usize)> {
    [Size::Kb, Size::Mb]
        .iter()
        .zip(SIZES)
        .filter(|(s, _)| sizes.contains(s))
        .map(|(_, size)| size)
        .collect()
}

struct Case {
    direct: Series,
    direct_one: Series,
    bare: Series,
    bare_one: Series,
    nginx: Series,
    nginx_one: Series,
    via: Vec<Series>,
    via_one: Vec<Series>,
}

pub async fn run(stack: &Stack, table: &mut Table, sizes: &[(&str, usize)]) -> anyhow::Result<()> {
    let o = stack.opts().clone();
    let mut servers: Vec<Latchkey> = Vec::new();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if let Some(lk) = stack.latchkey(backend, table).await? {
            servers.push(lk);
        }
    }
    let bare = if stack.ctx.in_process() {
        servers::in_process(servers::bare_proxy_router(&stack.upstream.url)?).await?
    } else {
        let up = stack.upstream.url.clone();
        servers::child(&["serve-bare-proxy", "--upstream", &up], "bare proxy").await?
    };
    // Not in the smoke test (in process): it would install a package during `cargo test`.
    let nginx = if stack.ctx.in_process() {
        None
    } else {
        match crate::nginx::start(&stack.upstream.url).await {
            Ok(n) => Some(n),
            Err(e) => {
                table.note(format!("nginx reference skipped: {e:#}"));
                None
            }
        }
    };
    let spec =
        |url: String, workers: usize| LoadSpec::get(url, workers, secs(o.duration), secs(o.warmup));
    let mut cases: Vec<Case> = sizes
        .iter()
        .map(|_| Case {
            direct: Series::default(),
            direct_one: Series::default(),
            bare: Series::default(),
            bare_one: Series::default(),
            nginx: Series::default(),
            nginx_one: Series::default(),
            via: vec![Series::default(); servers.len()],
            via_one: vec![Series::default(); servers.len()],
        })
        .collect();
    for run in 0..o.runs {
        eprintln!("proxy, run {}/{}", run + 1, o.runs);
        for ((label, n), case) in sizes.iter().zip(cases.iter_mut()) {
            let direct_url = format!("{}/bytes?n={n}", stack.upstream.url);
            for (workers, series) in [
                (o.proxy_callers, &mut case.direct),
                (1, &mut case.direct_one),
            ] {
                let s = spec(direct_url.clone(), workers).header("x-api-key", UPSTREAM_KEY);
                series.add(&measure(&format!("{label} direct, {workers} callers"), &s).await?);
            }
            let bare_url = format!("{}/proxy/bytes?n={n}", bare.url);
            for (workers, series) in [(o.proxy_callers, &mut case.bare), (1, &mut case.bare_one)] {
                let what = format!("{label} bare axum+reqwest proxy, {workers} callers");
                series.add(&measure(&what, &spec(bare_url.clone(), workers)).await?);
            }
            if let Some(ng) = &nginx {
                let url = format!("{}/proxy/bytes?n={n}", ng.url);
                for (workers, series) in
                    [(o.proxy_callers, &mut case.nginx), (1, &mut case.nginx_one)]
                {
                    let what = format!("{label} nginx proxy_pass, {workers} callers");
                    series.add(&measure(&what, &spec(url.clone(), workers)).await?);
                }
            }
            for (i, lk) in servers.iter().enumerate() {
                let url = format!(
                    "{}/v1/workspaces/acme/connections/up/proxy/bytes?n={n}",
                    lk.url
                );
                for (workers, series) in [
                    (o.proxy_callers, &mut case.via[i]),
                    (1, &mut case.via_one[i]),
                ] {
                    let s = spec(url.clone(), workers).bearer(&lk.key);
                    let what = format!(
                        "{label} via latchkey ({}), {workers} callers",
                        lk.backend.label()
                    );
                    let name = format!(
                        "proxy-{}-{}-{workers}",
                        label.replace(' ', "").to_lowercase(),
                        lk.backend.label().to_lowercase()
                    );
                    series.add(&measure_profiled(stack, lk, run == 0, &name, &what, &s).await?);
                }
            }
        }
    }
    for ((label, _), case) in sizes.iter().zip(cases) {
        let c = format!("{label}, bare axum+reqwest proxy");
        table.push(
            Row::new(
                FIG,
                &format!("{c}, {} callers", o.proxy_callers),
                "requests/s",
                Unit::PerSecond,
                case.bare.rps.clone(),
            )
            .reference("direct", case.direct.rps.clone()),
        );
        let added: Vec<f64> = case
            .bare_one
            .p50
            .iter()
            .zip(&case.direct_one.p50)
            .map(|(v, d)| v - d)
            .collect();
        table.push(Row::new(
            FIG,
            &format!("{c}, 1 caller"),
            "added p50",
            Unit::Ms,
            added,
        ));
        let with_nginx = !case.nginx.rps.is_empty();
        if with_nginx {
            let many = format!("{label}, nginx proxy_pass, {} callers", o.proxy_callers);
            table.push(
                Row::new(
                    FIG,
                    &many,
                    "requests/s",
                    Unit::PerSecond,
                    case.nginx.rps.clone(),
                )
                .reference("direct", case.direct.rps.clone()),
            );
            table.push(
                Row::new(FIG, &many, "p50", Unit::Ms, case.nginx.p50.clone())
                    .reference("direct", case.direct.p50.clone()),
            );
            let one = format!("{label}, nginx proxy_pass, 1 caller");
            let added = minus(&case.nginx_one.p50, &case.direct_one.p50);
            table.push(Row::new(FIG, &one, "added p50", Unit::Ms, added));
        }
        for (i, lk) in servers.iter().enumerate() {
            let c = format!("{label}, {}", lk.backend.label());
            let many = format!("{c}, {} callers", o.proxy_callers);
            let via = &case.via[i];
            table.push(
                Row::new(FIG, &many, "requests/s", Unit::PerSecond, via.rps.clone())
                    .reference("direct", case.direct.rps.clone())
                    .target(Target::RatioAtLeast(0.6)),
            );
            table.push(
                Row::new(FIG, &many, "p50", Unit::Ms, via.p50.clone())
                    .reference("direct", case.direct.p50.clone()),
            );
            table.push(
                Row::new(FIG, &many, "p99", Unit::Ms, via.p99.clone())
                    .reference("direct", case.direct.p99.clone()),
            );
            let added: Vec<f64> = via
                .p50
                .iter()
                .zip(&case.direct.p50)
                .map(|(v, d)| v - d)
                .collect();
            table.push(Row::new(FIG, &many, "added p50", Unit::Ms, added));
            if with_nginx {
                // Latchkey / nginx: throughput (≥ 1.0× is the target) and p50.
                table.push(
                    Row::new(
                        FIG,
                        &many,
                        "requests/s vs nginx",
                        Unit::PerSecond,
                        via.rps.clone(),
                    )
                    .reference("nginx", case.nginx.rps.clone())
                    .target(Target::RatioAtLeast(1.0)),
                );
                table.push(
                    Row::new(FIG, &many, "p50 vs nginx", Unit::Ms, via.p50.clone())
                        .reference("nginx", case.nginx.p50.clone()),
                );
            }
            let one = format!("{c}, 1 caller");
            let one_via = &case.via_one[i];
            table.push(
                Row::new(FIG, &one, "p50", Unit::Ms, one_via.p50.clone())
                    .reference("direct", case.direct_one.p50.clone()),
            );
            let added: Vec<f64> = one_via
                .p50
                .iter()
                .zip(&case.direct_one.p50)
                .map(|(v, d)| v - d)
                .collect();
            table.push(
                Row::new(FIG, &one, "added p50", Unit::Ms, added.clone())
                    .target(Target::Below(0.3)),
            );
            if with_nginx {
                // Latchkey's own cost per request beyond nginx's, run by run (target: 0.05 ms).
                let nginx_added = minus(&case.nginx_one.p50, &case.direct_one.p50);
                table.push(
                    Row::new(
                        FIG,
                        &one,
                        "added p50 beyond nginx's",
                        Unit::Ms,
                        minus(&added, &nginx_added),
                    )
                    .target(Target::Below(0.05)),
                );
            }
        }
    }
    Ok(())
}

/// `a - b`, run by run.
fn minus(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x - y).collect()
}
