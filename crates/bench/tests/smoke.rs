//! `cargo test` runs one short round of the harness (servers in this process): it starts,
//! measures token reads and the proxy for a second, and prints the table. It asserts that numbers
//! came out, never what they are: benchmarks are not tests.

use clap::Parser;
use latchkey_bench::{run, Cli};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smoke_round_produces_a_table() {
    let cli = Cli::parse_from(["latchkey-bench", "smoke", "--in-process", "--no-postgres"]);
    let table = run(&cli.command, cli.opts)
        .await
        .expect("the smoke round runs");
    println!("{}", table.markdown());
    let failures: Vec<_> = table
        .notes
        .iter()
        .filter(|n| n.starts_with("FAILED"))
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
    for figure in ["1 token reads", "2 proxy"] {
        assert!(
            table.rows.iter().any(|r| r.figure == figure),
            "no row for {figure}"
        );
    }
    for row in &table.rows {
        assert!(!row.values.is_empty(), "{row:?}");
        assert!(row.values.iter().all(|v| v.is_finite()), "{row:?}");
    }
}
