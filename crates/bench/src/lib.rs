//! Latchkey's benchmark harness: `cargo run --release -p latchkey-bench -- all` starts the real
//! `latchkey serve` release binary, a trivial upstream, the Salesforce simulator and a
//! throwaway PostgreSQL database, drives load with the hyper load generator in [`load`], and
//! prints a table of medians with min, max, the reference measured in the same run, and the
//! issue's targets. See BENCHMARKS.md.

pub mod children;
pub mod db;
pub mod load;
pub mod nginx;
pub mod pg;
pub mod report;
pub mod rss;
pub mod scenarios;
pub mod servers;
pub mod setup;
pub mod tap;

use clap::{Args, Parser, Subcommand, ValueEnum};
use report::Table;
use setup::{Ctx, Stack};
use std::path::PathBuf;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "latchkey-bench",
    about = "Measures Latchkey: token reads, proxy, refresh storm, pools, memory, scale, cold start"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub opts: Options,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Every figure.
    All,
    /// Figure 1: token reads, SQLite and PostgreSQL, against a bare axum server.
    Tokens,
    /// Figure 2: the proxy against the upstream directly, 1 KB and 1 MB.
    Proxy,
    /// Figure 3: 1,000 concurrent token reads on an expired connection.
    Storm,
    /// Figure 4: pools at levels 1, 5 and 25 under 100 callers, against the upstream at the level.
    Pool,
    /// Figure 5: RSS idle, under token reads, streaming 200 MB.
    Memory,
    /// Figure 6: 100,000 connections against 100.
    Scale,
    /// Figure 7: time from start to the first successful /healthz.
    Coldstart,
    /// Figure 8: 100,000 connections with probes on: token reads, and the store statements
    /// the background issues.
    Probes,
    /// One short round of token reads and proxy (what `cargo test` runs).
    Smoke,
    /// (internal) the bare reference server.
    #[command(hide = true)]
    ServeReference {
        /// A file holding the JSON to answer at the token path.
        #[arg(long)]
        body: Option<PathBuf>,
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
    /// (internal) the upstream.
    #[command(hide = true)]
    ServeUpstream,
    /// (internal) a bare reverse proxy to the upstream.
    #[command(hide = true)]
    ServeBareProxy {
        #[arg(long)]
        upstream: String,
    },
}

/// The measured scenarios, in the order `all` runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    Coldstart,
    Memory,
    Tokens,
    Proxy,
    Storm,
    Pool,
    Scale,
    Probes,
}

#[derive(Args, Debug, Clone)]
pub struct Options {
    /// Runs per figure: each figure is their median, with min and max.
    #[arg(long, default_value_t = 3, global = true)]
    pub runs: usize,
    /// Seconds of measured load per run.
    #[arg(long, default_value_t = 3.0, global = true)]
    pub duration: f64,
    /// Seconds of load before each measurement, not measured.
    #[arg(long, default_value_t = 1.0, global = true)]
    pub warmup: f64,
    /// Concurrent callers for token reads.
    #[arg(long, default_value_t = 64, global = true)]
    pub callers: usize,
    /// Concurrent callers for the proxy throughput figure.
    #[arg(long, default_value_t = 16, global = true)]
    pub proxy_callers: usize,
    /// Callers of the refresh storm.
    #[arg(long, default_value_t = 1000, global = true)]
    pub storm_callers: usize,
    /// Callers of the pool-fairness figure.
    #[arg(long, default_value_t = 100, global = true)]
    pub pool_callers: usize,
    /// Connections stored for the scale figure.
    #[arg(long, default_value_t = 100_000, global = true)]
    pub scale_connections: usize,
    /// Admin URL of the PostgreSQL server where a throwaway database is created and dropped.
    #[arg(
        long,
        env = "LATCHKEY_TEST_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres",
        global = true
    )]
    pub postgres_url: String,
    /// Skip the PostgreSQL runs.
    #[arg(long, global = true)]
    pub no_postgres: bool,
    /// The answer sizes of the proxy figure (`1kb`, `1mb`; both by default).
    #[arg(long, global = true, value_delimiter = ',', default_values = ["1kb", "1mb"])]
    pub sizes: Vec<scenarios::proxy::Size>,
    /// Record `perf record` (DWARF call graphs) of the server during the first token-read and proxy runs into this folder.
    #[arg(long, global = true)]
    pub perf: Option<PathBuf>,
    /// Also write the table (Markdown) to this file.
    #[arg(long, global = true)]
    pub output: Option<PathBuf>,
    /// Run every server inside this process (the smoke test does).
    #[arg(long, global = true, hide = true)]
    pub in_process: bool,
}

impl Options {
    /// One short round with few workers.
    fn smoke(mut self) -> Self {
        self.runs = 1;
        self.duration = 1.0;
        self.warmup = 0.2;
        self.callers = 4;
        self.proxy_callers = 2;
        self
    }
}

/// What the machine is, for the report.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "{cores} cores ({model}), {mem_gib:.1} GiB memory; load average {}",
        load.join(" ")
    )
}

/// Runs the measured part of a command and answers the table. A scenario that fails adds a
/// note (starting with `FAILED`) and the others still run.
pub async fn run(command: &Command, opts: Options) -> anyhow::Result<Table> {
    let scenarios: Vec<Scenario> = match command {
        Command::All => vec![
            Scenario::Coldstart,
            Scenario::Memory,
            Scenario::Tokens,
            Scenario::Proxy,
            Scenario::Storm,
            Scenario::Pool,
            Scenario::Scale,
            Scenario::Probes,
        ],
        Command::Tokens | Command::Smoke => vec![Scenario::Tokens],
        Command::Proxy => vec![Scenario::Proxy],
        Command::Storm => vec![Scenario::Storm],
        Command::Pool => vec![Scenario::Pool],
        Command::Memory => vec![Scenario::Memory],
        Command::Scale => vec![Scenario::Scale],
        Command::Probes => vec![Scenario::Probes],
        Command::Coldstart => vec![Scenario::Coldstart],
        Command::ServeReference { .. }
        | Command::ServeUpstream
        | Command::ServeBareProxy { .. } => {
            anyhow::bail!("not a measurement")
        }
    };
    let smoke = matches!(command, Command::Smoke);
    let in_process = opts.in_process || (smoke && cfg!(debug_assertions));
    let opts = if smoke { opts.smoke() } else { opts };
    let latchkey_bin = if in_process {
        None
    } else {
        Some(children::latchkey_binary()?)
    };
    let ctx = Ctx { opts, latchkey_bin };
    let mut table = Table {
        machine: machine(),
        ..Table::default()
    };
    eprintln!("machine: {}", table.machine);
    let mut list = scenarios;
    if smoke {
        list.push(Scenario::Proxy);
    }
    for s in list {
        eprintln!("== {s:?}");
        let result = match s {
            Scenario::Coldstart => match &ctx.latchkey_bin {
                Some(bin) => scenarios::coldstart::run(bin, &mut table).await,
                None => {
                    table.note("cold start needs the release binary: skipped in process");
                    Ok(())
                }
            },
            other => run_with_stack(&ctx, other, smoke, &mut table).await,
        };
        if let Err(e) = result {
            table.note(format!("FAILED {s:?}: {e:#}"));
        }
    }
    Ok(table)
}

async fn run_with_stack(
    ctx: &Ctx,
    s: Scenario,
    smoke: bool,
    table: &mut Table,
) -> anyhow::Result<()> {
    let stack = Stack::start(ctx).await?;
    match s {
        Scenario::Tokens => scenarios::tokens::run(&stack, table).await,
        Scenario::Proxy if smoke => {
            scenarios::proxy::run(&stack, table, &scenarios::proxy::SIZES[..1]).await
        }
        Scenario::Proxy => {
            let sizes = scenarios::proxy::chosen(&stack.opts().sizes);
            scenarios::proxy::run(&stack, table, &sizes).await
        }
        Scenario::Storm => scenarios::storm::run(&stack, table).await,
        Scenario::Pool => scenarios::pool::run(&stack, table).await,
        Scenario::Memory => scenarios::memory::run(&stack, table).await,
        Scenario::Scale => scenarios::scale::run(&stack, table).await,
        Scenario::Probes => scenarios::probes::run(&stack, table).await,
        Scenario::Coldstart => Ok(()),
    }
}

/// The whole command line: servers for the internal subcommands, else measure and print.
/// Answers whether every scenario succeeded.
pub async fn main(cli: Cli) -> anyhow::Result<bool> {
    match &cli.command {
        Command::ServeReference { body, listen } => {
            let json = match body {
                Some(p) => std::fs::read_to_string(p)?,
                None => "{}".into(),
            };
            servers::serve_as_child(
                servers::reference_router(setup::TOKEN_PATH, json.into()),
                listen,
            )
            .await?;
            Ok(true)
        }
        Command::ServeUpstream => {
            servers::serve_as_child(servers::upstream_router(), "127.0.0.1:0").await?;
            Ok(true)
        }
        Command::ServeBareProxy { upstream } => {
            servers::serve_as_child(servers::bare_proxy_router(upstream)?, "127.0.0.1:0").await?;
            Ok(true)
        }
        command => {
            let output = cli.opts.output.clone();
            let table = run(command, cli.opts.clone()).await?;
            let end = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
            let end: Vec<&str> = end.split_whitespace().take(3).collect();
            let text = format!(
                "Machine: {} at the start, {} at the end.\n\n{}",
                table.machine,
                end.join(" "),
                table.markdown()
            );
            println!("{text}");
            if let Some(path) = output {
                std::fs::write(&path, &text)?;
            }
            Ok(!table.notes.iter().any(|n| n.starts_with("FAILED")))
        }
    }
}
