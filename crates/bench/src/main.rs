//! `latchkey-bench`: see the crate documentation and BENCHMARKS.md.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = latchkey_bench::Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(latchkey_bench::main(cli));
    // Servers started in this process stop with the runtime; children stop with their guards.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("error: a scenario failed (see the notes under the table)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
