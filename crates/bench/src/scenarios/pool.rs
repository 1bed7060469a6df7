//! Figure 4: pools. 100 callers send through the proxy on connections with concurrency levels
//! 1, 5 and 25 to an upstream that answers after 20 ms. The reference is the upstream itself,
//! measured in the same run with as many callers as the level (what the level allows at best,
//! timer rounding included). A fair FIFO pool gives every caller about the same wait,
//! (callers / level − 1) × the upstream's own latency; the figure is the `Latchkey-Queue-Ms` p50
//! and p99 against that ideal, and the throughput against the upstream's own rate.
//!
//! The cases: SQLite, PostgreSQL, and PostgreSQL with two instances (a second `latchkey serve`
//! on the same database and master key): there the callers are split evenly between the two,
//! each sending to its own instance with the same workspace key, all in one measured window, so
//! the level must hold across the cluster (the servers share it through slot rows in the
//! database); the queue waits are those of every answer together, the throughput is the sum.
//! Each case also reads the most `/delay` requests the upstream had in flight at once (reset
//! before each run, warm-up included): it must never exceed the level.

use super::{measure, secs};
use crate::load::{LoadResult, LoadSpec};
use crate::report::{Row, Table, Target, Unit};
use crate::servers::UPSTREAM_KEY;
use crate::setup::{Backend, Latchkey, Stack, POOL_CONNECTIONS};

const FIG: &str = "4 pools";
pub const DELAY_MS: u64 = 20;

/// The upstream's own rate and median latency at one level, one figure per run.
struct Alone {
    rps: Vec<f64>,
    p50: Vec<f64>,
}

/// The upstream's own rate and median latency with `level` callers, one figure per run.
async fn upstream_alone(stack: &Stack, level: usize) -> anyhow::Result<Alone> {
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
    Ok(Alone { rps, p50 })
}

/// Sets the upstream's "most in flight at once" back to what is in flight now.
async fn reset_max_in_flight(stack: &Stack) -> anyhow::Result<()> {
    let resp = stack
        .http
        .post(format!("{}/stats/reset", stack.upstream.url))
        .header("x-api-key", UPSTREAM_KEY)
        .send()
        .await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "the upstream's stats reset answered {}",
        resp.status()
    );
    Ok(())
}

/// The most `/delay` requests the upstream had in flight at once since the last reset.
async fn max_in_flight(stack: &Stack) -> anyhow::Result<f64> {
    let stats: serde_json::Value = stack
        .http
        .get(format!("{}/stats", stack.upstream.url))
        .header("x-api-key", UPSTREAM_KEY)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let max = stats["max_in_flight"]
        .as_f64()
        .ok_or_else(|| anyhow::anyhow!("no max_in_flight in the upstream's stats: {stats}"))?;
    Ok(max)
}

/// One case of the figure: its label, and the instances its callers are spread over.
struct Case<'a> {
    label: &'static str,
    instances: Vec<&'a Latchkey>,
}

impl Case<'_> {
    /// The load on connection `name`: the callers spread evenly over the instances, each to its
    /// own instance's URL, all with the same workspace key.
    fn load(&self, stack: &Stack, name: &str) -> LoadSpec {
        let o = stack.opts();
        let url = |lk: &Latchkey| {
            format!(
                "{}/v1/workspaces/acme/connections/{name}/proxy/delay?ms={DELAY_MS}",
                lk.url
            )
        };
        let first = self.instances[0];
        let mut spec = LoadSpec::get(url(first), o.pool_callers, secs(o.duration), secs(o.warmup))
            .bearer(&first.key)
            .capture("latchkey-queue-ms");
        for lk in &self.instances[1..] {
            spec = spec.also(url(lk));
        }
        spec
    }

    /// How the callers are split, for the table: "100 callers" or "100 callers (50 each)".
    fn callers(&self, callers: usize) -> String {
        match self.instances.len() {
            1 => format!("{callers} callers"),
            n => format!("{callers} callers ({} each)", callers / n),
        }
    }
}

/// What the runs of one case at one level measured.
#[derive(Default)]
struct Runs {
    p50: Vec<f64>,
    p99: Vec<f64>,
    rps: Vec<f64>,
    max_in_flight: Vec<f64>,
}

impl Runs {
    /// Adds one run: the queue wait quantiles of every answer, the rate, the upstream's most in
    /// flight.
    fn add(&mut self, r: &LoadResult, max_in_flight: f64) -> anyhow::Result<()> {
        anyhow::ensure!(
            !r.captured.is_empty(),
            "no Latchkey-Queue-Ms header in the answers"
        );
        let (q50, q99) = (
            r.captured.value_at_quantile(0.5) as f64,
            r.captured.value_at_quantile(0.99) as f64,
        );
        let split: Vec<String> = r.ok_by_url.iter().map(u64::to_string).collect();
        eprintln!(
            "    queue wait p50 {q50} ms, p99 {q99} ms; upstream max in flight {max_in_flight}; answers per instance {}",
            split.join(" / ")
        );
        self.p50.push(q50);
        self.p99.push(q99);
        self.rps.push(r.rps());
        self.max_in_flight.push(max_in_flight);
        Ok(())
    }
}

/// Measures `case` on connection `name` (concurrency `level`) and adds its rows.
async fn measure_level(
    stack: &Stack,
    table: &mut Table,
    case: &Case<'_>,
    (name, level): (&str, usize),
    alone: &Alone,
) -> anyhow::Result<()> {
    let o = stack.opts();
    let spec = case.load(stack, name);
    let mut runs = Runs::default();
    for run in 0..o.runs {
        let what = format!(
            "pool level {level} {}/{} on {}",
            run + 1,
            o.runs,
            case.label
        );
        reset_max_in_flight(stack).await?;
        let r = measure(&what, &spec).await?;
        runs.add(&r, max_in_flight(stack).await?)?;
    }
    let callers = o.pool_callers;
    let waits = (callers as f64 / level as f64 - 1.0).max(0.0);
    let ideal: Vec<f64> = alone.p50.iter().map(|ms| waits * ms).collect();
    let row = format!(
        "{}, level {level}, {}, {DELAY_MS} ms upstream",
        case.label,
        case.callers(callers)
    );
    table.push(
        Row::new(FIG, &row, "queue wait p50", Unit::Ms, runs.p50)
            .reference("ideal FIFO", ideal.clone()),
    );
    table.push(
        Row::new(FIG, &row, "queue wait p99", Unit::Ms, runs.p99).reference("ideal FIFO", ideal),
    );
    table.push(
        Row::new(FIG, &row, "requests/s", Unit::PerSecond, runs.rps)
            .reference("upstream alone at the level", alone.rps.clone()),
    );
    table.push(
        Row::new(
            FIG,
            &row,
            "max in flight at the upstream",
            Unit::Count,
            runs.max_in_flight,
        )
        .target(Target::AtMost(level as f64)),
    );
    Ok(())
}

/// Every level of `case`, against the upstream alone at each level.
async fn measure_case(
    stack: &Stack,
    table: &mut Table,
    case: &Case<'_>,
    alone: &[Alone],
) -> anyhow::Result<()> {
    for (connection, alone) in POOL_CONNECTIONS.into_iter().zip(alone) {
        measure_level(stack, table, case, connection, alone).await?;
    }
    Ok(())
}

pub async fn run(stack: &Stack, table: &mut Table) -> anyhow::Result<()> {
    let mut alone = Vec::new();
    for (_, level) in POOL_CONNECTIONS {
        alone.push(upstream_alone(stack, level).await?);
    }
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(lk) = stack.latchkey(backend, table).await? else {
            continue;
        };
        let one = Case {
            label: backend.label(),
            instances: vec![&lk],
        };
        measure_case(stack, table, &one, &alone).await?;
        if backend == Backend::Postgres {
            // Declared after `lk`, so dropped (stopped) before it and its database.
            let second = stack.second_instance(&lk).await?;
            let two = Case {
                label: "PostgreSQL, two instances",
                instances: vec![&lk, &second],
            };
            measure_case(stack, table, &two, &alone).await?;
        }
    }
    Ok(())
}
