//! `latchkey`: runs the server (`latchkey serve`) and talks to one as a command-line client.

mod client;
mod commands;
mod output;
mod serve;

use clap::{Args, CommandFactory, Parser, Subcommand};
use client::{Client, Failure};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "latchkey",
    version,
    about = "Latchkey: a credential vault and connection broker for integration flows"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options of every client command.
#[derive(Debug, Args)]
struct Global {
    /// The Latchkey server to talk to.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "LATCHKEY_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// The API key (default: the admin key in <data dir>/admin.key, data dir from LATCHKEY_DATA_DIR or ./latchkey-data).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "LATCHKEY_API_KEY",
        hide_env_values = true
    )]
    api_key: Option<String>,
    /// Print the server's JSON answer (pretty) instead of tables.
    #[arg(long, global = true, help_heading = "Global options")]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the server (API, web UI, OAuth callback), configured by LATCHKEY_* variables.
    Serve,
    /// Workspaces: the isolation boundary of connections, flows and keys.
    #[command(subcommand)]
    Workspace(commands::workspace::WorkspaceCmd),
    /// The catalog of applications connections can be made to.
    #[command(subcommand)]
    App(commands::app::AppCmd),
    /// Connections: named, verified credentials for an application.
    #[command(subcommand)]
    Connection(commands::connection::ConnectionCmd),
    /// Connect sessions: links through which end users connect their own accounts.
    #[command(subcommand)]
    ConnectSession(commands::connect_session::ConnectSessionCmd),
    /// Flows: named consumers of connections.
    #[command(subcommand)]
    Flow(commands::flow::FlowCmd),
    /// API keys: admin keys, or workspace keys with scopes.
    #[command(subcommand)]
    Key(commands::key::KeyCmd),
    /// The audit log of a workspace, newest first.
    Events(commands::events::EventsArgs),
    /// Print a fresh access token of an OAuth connection (for `$(latchkey token acme/sf-prod)`).
    Token(commands::token::TokenArgs),
    /// Run a command with fresh secrets of connections in its environment.
    Run(commands::run::RunArgs),
    /// Send one request to an application through Latchkey's proxy; the answer goes to stdout.
    Proxy(commands::proxy::ProxyArgs),
    /// A workspace's OAuth client (connected app) for an application.
    #[command(subcommand)]
    OauthClient(commands::oauth_client::OAuthClientCmd),
    /// The master key: rotate it, or see which key wraps what (admin keys only).
    #[command(subcommand)]
    MasterKey(commands::master_key::MasterKeyCmd),
}

/// What a client command needs: the server and how to print.
pub struct Ctx {
    pub client: Client,
    pub json: bool,
}

impl Ctx {
    /// A spinner is only for a person watching a terminal.
    pub fn spinner_allowed(&self) -> bool {
        !self.json && std::io::IsTerminal::is_terminal(&std::io::stderr())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Serve = cli.command {
        return serve::run();
    }
    let result = api_key(cli.global.api_key.as_deref())
        .and_then(|key| Client::new(&cli.global.url, key))
        .and_then(|client| {
            let ctx = Ctx {
                client,
                json: cli.global.json,
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(dispatch(&ctx, cli.command))
        });
    match result {
        Ok(code) => code,
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(ctx: &Ctx, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve => unreachable!("handled before a client is built"),
        Command::Workspace(c) => commands::workspace::run(ctx, c).await,
        Command::App(c) => commands::app::run(ctx, c).await,
        Command::Connection(c) => commands::connection::run(ctx, c).await,
        Command::ConnectSession(c) => commands::connect_session::run(ctx, c).await,
        Command::Flow(c) => commands::flow::run(ctx, c).await,
        Command::Key(c) => commands::key::run(ctx, c).await,
        Command::Events(a) => commands::events::run(ctx, a).await,
        Command::Token(a) => commands::token::run(ctx, a).await,
        Command::Run(a) => commands::run::run(ctx, a).await,
        Command::Proxy(a) => commands::proxy::run(ctx, a).await,
        Command::OauthClient(c) => commands::oauth_client::run(ctx, c).await,
        Command::MasterKey(c) => commands::master_key::run(ctx, c).await,
    }
}

/// The key from `--api-key`/`LATCHKEY_API_KEY`, else the admin key a local server wrote.
fn api_key(given: Option<&str>) -> anyhow::Result<String> {
    if let Some(k) = given.map(str::trim).filter(|k| !k.is_empty()) {
        return Ok(k.to_string());
    }
    let dir = std::env::var_os("LATCHKEY_DATA_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("./latchkey-data"));
    let path = dir.join("admin.key");
    let hint = format!(
        "pass --api-key or set LATCHKEY_API_KEY; on the server's machine the admin key is in <data dir>/admin.key \
         (set LATCHKEY_DATA_DIR if the data dir is not {})",
        dir.display()
    );
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_string()),
        Ok(_) => Err(
            Failure::new(format!("no API key: {} is empty", path.display()))
                .with_hint(hint)
                .into(),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Failure::new(format!(
            "no API key given, and {} does not exist",
            path.display()
        ))
        .with_hint(hint)
        .into()),
        Err(e) => Err(Failure::new(format!(
            "no API key given, and {} cannot be read: {e}",
            path.display()
        ))
        .with_hint(hint)
        .into()),
    }
}

fn report(e: &anyhow::Error) {
    match e.downcast_ref::<Failure>() {
        Some(f) => {
            eprintln!("error: {}", output::one_line(&f.message));
            if let Some(h) = &f.hint {
                eprintln!("hint: {}", output::one_line(h));
            }
        }
        None => eprintln!("error: {e:#}"),
    }
}

/// Ends the process with clap's usage error (exit 2) for a mistake clap cannot see; `path`
/// names the subcommand (`["connection", "edit"]`) so that its usage is the one shown.
pub fn usage_error(path: &[&str], message: impl std::fmt::Display) -> ! {
    let mut cmd = Cli::command();
    cmd.build();
    let mut sub = &mut cmd;
    for name in path {
        sub = sub
            .find_subcommand_mut(name)
            .expect("a subcommand defined above");
    }
    sub.error(clap::error::ErrorKind::ArgumentConflict, message)
        .exit()
}
