//! `latchkey serve`: configuration from the environment, the first admin key shown once, then
//! the server until Ctrl-C or SIGTERM.

use anyhow::Context;
use latchkey_server::config::Config;
use latchkey_server::{telemetry, Application};
use std::process::ExitCode;

pub fn run() -> ExitCode {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("hint: see the LATCHKEY_* variables in the README (or the file LATCHKEY_CONFIG names)");
            return ExitCode::from(2);
        }
    };
    telemetry::init_logging(&config);
    // Requests run on the server's serving threads (one per core, each with a runtime of its
    // own); this thread's runtime runs the listener and the background work.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let key_file = config.data_dir.join("admin.key");
    let key_file = std::path::absolute(&key_file).unwrap_or(key_file);
    let app = Application::build(config)
        .await
        .context("Latchkey could not start")?;
    if let Some(key) = &app.first_admin_key {
        // Printed, not logged: log lines are kept and shipped, this must be seen once only.
        println!();
        println!("Created the first admin API key. It is shown only this once:");
        println!();
        println!("    {key}");
        println!();
        println!(
            "It was also written to {} (readable by you only);",
            key_file.display()
        );
        println!("client commands on this machine read it from there.");
        println!();
    }
    let shutdown = shutdown_signal()?;
    println!("Latchkey listening on http://{}", app.address());
    tracing::info!(address = %app.address(), public_url = %app.public_url(), "serving");
    app.run_until(shutdown)
        .await
        .context("the server stopped with an error")?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM; the server then finishes the requests in flight. The
/// handlers are installed here, before the address is announced, so that a signal sent as soon
/// as the `listening` line appears already stops the server gracefully.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down: finishing the requests in flight");
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: finishing the requests in flight");
    })
}
