//! `latchkey`: runs the server (`latchkey serve`) and talks to one as a command-line client.

#![warn(clippy::too_many_lines, clippy::unwrap_used)]

mod client;
mod commands;
mod output;
mod serve;

use clap::{Args, CommandFactory, Parser, Subcommand};
use client::{Client, Failure};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc instead of the C library's allocator: a proxied call makes a few hundred small
/// allocations on two runtime threads, where glibc's arenas cost ~10% of the server's time in
/// the proxy benchmark (see BENCHMARKS.md). Built without transparent huge pages: with them the
/// idle server held about 18 MB more.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// `serve --help`: the variables that configure the server (the README has the details).
const SERVE_ENV_HELP: &str = "\
Environment variables (or the same keys in lower case in the TOML file LATCHKEY_CONFIG names):
  LATCHKEY_CONFIG                 a TOML file with the settings below
  LATCHKEY_DATA_DIR               data directory: database, master key, admin.key [default: ./latchkey-data]
  LATCHKEY_DATABASE_URL           sqlite://… or postgres://… [default: sqlite://<data dir>/latchkey.db]
  LATCHKEY_LISTEN                 address to serve on [default: 127.0.0.1:8080]
  LATCHKEY_PUBLIC_URL             the URL browsers reach; OAuth callback is <public url>/oauth/callback [default: http://<listen>]
  LATCHKEY_MASTER_KEY             the master key, 32 bytes in base64 [default: <data dir>/master.key, created]
  LATCHKEY_MASTER_KEY_FILE        a file holding the master key
  LATCHKEY_PREVIOUS_MASTER_KEY    the old master key while a rotation finishes
  LATCHKEY_OUTBOUND_REWRITES      ORIGIN=ORIGIN,…: send requests for the left origin to the right one
  LATCHKEY_OUTBOUND_ALLOW         hosts or CIDR ranges that may be reached although private or loopback
  LATCHKEY_PROXY_QUEUE_TIMEOUT    seconds a proxied request may wait for a pool slot [default: 60]
  LATCHKEY_PROXY_RECOVERY_INTERVAL  seconds without a 429 before a lowered pool level climbs by one [default: 10]
  LATCHKEY_HTTP_THREADS           threads serving connections [default: 0, one per core]
  LATCHKEY_CATALOG_DIR            extra catalog entries (*.toml)
  LATCHKEY_LOG                    log filter (tracing directives) [default: info]
  LATCHKEY_LOG_FORMAT             text or json [default: text]; colours only when stderr is a terminal";

/// Options of every client command.
#[derive(Debug, Args)]
struct Global {
    /// The Latchkey server to talk to [default: http://<LATCHKEY_LISTEN> when that is set, else
    /// http://127.0.0.1:8080].
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "LATCHKEY_URL",
        hide_env_values = true
    )]
    url: Option<String>,
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
    #[command(after_help = SERVE_ENV_HELP)]
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
    /// People who sign in to the web UI, and their roles in workspaces.
    #[command(subcommand)]
    User(commands::user::UserCmd),
    /// The audit log of a workspace, newest first (`--follow` to watch it live).
    Events(commands::events::EventsArgs),
    /// Webhooks: endpoints that receive a workspace's events, signed (Standard Webhooks).
    #[command(subcommand)]
    Webhook(commands::webhook::WebhookCmd),
    /// Print a fresh access token of an OAuth connection (for `$(latchkey token acme/sf-prod)`).
    Token(commands::token::TokenArgs),
    /// Run a command with fresh secrets of connections in its environment.
    Run(commands::run::RunArgs),
    /// Send one request to an application through Latchkey's proxy; the answer goes to stdout.
    #[command(
        after_help = "Exit status: 0 for a 1xx-3xx answer; 1 for an answer of 400 or more (its body is printed) \
or when Latchkey refuses the request; 22 for an answer of 400 or more with --fail (no body printed)."
    )]
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
        .and_then(|key| Client::new(&server_url(cli.global.url.as_deref()), key))
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
        Command::User(c) => commands::user::run(ctx, c).await,
        Command::Events(a) => commands::events::run(ctx, a).await,
        Command::Webhook(c) => commands::webhook::run(ctx, c).await,
        Command::Token(a) => commands::token::run(ctx, a).await,
        Command::Run(a) => commands::run::run(ctx, a).await,
        Command::Proxy(a) => commands::proxy::run(ctx, a).await,
        Command::OauthClient(c) => commands::oauth_client::run(ctx, c).await,
        Command::MasterKey(c) => commands::master_key::run(ctx, c).await,
    }
}

/// `--url`/`LATCHKEY_URL`, else the local server `LATCHKEY_LISTEN` names (a wildcard address is
/// reached on loopback), else the default address.
fn server_url(given: Option<&str>) -> String {
    if let Some(u) = given.map(str::trim).filter(|u| !u.is_empty()) {
        return u.to_string();
    }
    let listen = std::env::var("LATCHKEY_LISTEN").unwrap_or_default();
    url_of_listen(&listen).unwrap_or_else(|| "http://127.0.0.1:8080".to_string())
}

/// The URL that reaches a server listening on `listen` from this machine.
fn url_of_listen(listen: &str) -> Option<String> {
    match listen.trim().parse::<std::net::SocketAddr>() {
        Ok(addr) => {
            let ip = match addr.ip() {
                std::net::IpAddr::V4(v4) if v4.is_unspecified() => {
                    std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
                }
                std::net::IpAddr::V6(v6) if v6.is_unspecified() => {
                    std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
                }
                other => other,
            };
            Some(format!(
                "http://{}",
                std::net::SocketAddr::new(ip, addr.port())
            ))
        }
        Err(_) => None,
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

pub fn report(e: &anyhow::Error) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_listen_address_is_reached_on_loopback() {
        assert_eq!(
            url_of_listen("0.0.0.0:9000").as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(
            url_of_listen("[::]:9000").as_deref(),
            Some("http://[::1]:9000")
        );
        assert_eq!(
            url_of_listen(" 127.0.0.2:81 ").as_deref(),
            Some("http://127.0.0.2:81")
        );
        assert_eq!(url_of_listen("nowhere"), None);
    }

    /// Every argument of every command says what it is for in `--help`.
    #[test]
    fn every_argument_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        walk(&cmd, "latchkey", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:#?}");
    }
}
