use crate::output::{self, text, time};
use crate::Ctx;
use clap::Subcommand;
use serde_json::json;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Create an API key: with --workspace a key limited to that workspace and its scopes, or
    /// with --admin a key that may do everything everywhere (one of the two is required).
    #[command(group(clap::ArgGroup::new("kind").required(true).args(["workspace", "admin"])))]
    Create {
        /// A name to recognise the key by.
        #[arg(long)]
        name: String,
        /// Limit the key to this workspace (it then needs at least one --scope).
        #[arg(long, short = 'w')]
        workspace: Option<String>,
        /// Make an admin key: every workspace, every action, key management included.
        #[arg(long)]
        admin: bool,
        /// What a workspace key may do (repeatable): read (metadata and events), write (create,
        /// edit, delete), secrets (tokens and credentials), proxy (call the application through
        /// Latchkey), metrics (read /metrics).
        #[arg(long = "scope", value_parser = ["read", "write", "secrets", "proxy", "metrics"], requires = "workspace")]
        scopes: Vec<String>,
    },
    /// List API keys (never the keys themselves).
    List {
        /// Only this workspace's keys.
        #[arg(long, short = 'w')]
        workspace: Option<String>,
    },
    /// Revoke an API key; it stops working at once.
    Revoke {
        /// The key's id (`latchkey key list`).
        id: String,
    },
}

pub async fn run(ctx: &Ctx, cmd: KeyCmd) -> anyhow::Result<ExitCode> {
    let c = &ctx.client;
    match cmd {
        KeyCmd::Create {
            name,
            workspace,
            admin: _,
            scopes,
        } => {
            // `workspace: null` is said explicitly for an admin key: the server refuses to
            // guess one from a missing field.
            let body = json!({ "name": name, "workspace": workspace, "scopes": scopes });
            let key = c.post(&["v1", "api-keys"], &body).await?;
            if ctx.json {
                output::json(&key);
            } else {
                let scope = match text(&key, "workspace") {
                    ws if ws.is_empty() => "an admin key".to_string(),
                    ws => format!("for workspace {ws}, scopes {}", text(&key, "scopes")),
                };
                output::line(format!(
                    "Created API key `{}` ({}), {scope}:",
                    text(&key, "name"),
                    text(&key, "id")
                ));
                output::line("");
                output::line(format!("    {}", text(&key, "key")));
                output::line("");
                output::line("This key will not be shown again: store it now (for example as LATCHKEY_API_KEY).");
            }
        }
        KeyCmd::List { workspace } => {
            let query: Vec<(&str, String)> =
                workspace.map(|w| ("workspace", w)).into_iter().collect();
            let list = c.list_all(&["v1", "api-keys"], &query, None).await?;
            if ctx.json {
                output::json(&list);
            } else {
                let mut t = output::table([
                    "ID",
                    "NAME",
                    "WORKSPACE",
                    "SCOPES",
                    "PREFIX",
                    "CREATED",
                    "REVOKED",
                ]);
                for k in output::items(&list) {
                    let (ws, scopes) = match text(k, "workspace") {
                        w if w.is_empty() => ("(admin)".to_string(), "all".to_string()),
                        w => (w, text(k, "scopes")),
                    };
                    t.add_row(vec![
                        text(k, "id"),
                        text(k, "name"),
                        ws,
                        scopes,
                        text(k, "prefix"),
                        time(k, "created_at"),
                        time(k, "revoked_at"),
                    ]);
                }
                output::line(t);
            }
        }
        KeyCmd::Revoke { id } => {
            c.delete(&["v1", "api-keys", &id], &[]).await?;
            if ctx.json {
                output::json(&json!({ "revoked": true, "id": id }));
            } else {
                output::line(format!("Revoked API key {id}."));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
