//! `latchkey connect-session`: links through which a platform's end users connect their own
//! accounts (the hosted connect page).

use crate::output::{self, text, time};
use crate::Ctx;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum ConnectSessionCmd {
    /// Start a session for an end user and print its connect URL (shown once).
    Create(Box<CreateArgs>),
    /// List a workspace's connect sessions.
    List {
        /// The workspace (its slug).
        #[arg(long, short = 'w')]
        workspace: String,
    },
    /// Show one connect session.
    Show {
        /// The workspace (its slug).
        #[arg(long, short = 'w')]
        workspace: String,
        /// The connect session id (`cs_…`).
        id: String,
    },
    /// Cancel a connect session: its link stops working at once.
    Delete {
        /// The workspace (its slug).
        #[arg(long, short = 'w')]
        workspace: String,
        /// The connect session id (`cs_…`).
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The workspace (its slug).
    #[arg(long, short = 'w')]
    workspace: String,
    /// The platform's id of the end user.
    #[arg(long)]
    end_user: String,
    /// The end user's email address, shown on the connection.
    #[arg(long)]
    email: Option<String>,
    /// The end user's name, shown on the connect page and the connection.
    #[arg(long)]
    display_name: Option<String>,
    /// The platform's id of the end user's organization.
    #[arg(long)]
    organization: Option<String>,
    /// The organization's name, shown on the connection.
    #[arg(long)]
    organization_name: Option<String>,
    /// An application the end user may connect (repeatable; `latchkey app list` names them).
    #[arg(long = "app", value_name = "APP")]
    apps: Vec<String>,
    /// The environment of the connection made (default: production).
    #[arg(long)]
    env: Option<String>,
    /// Reconnect this existing connection (id or name) in place instead.
    #[arg(long, value_name = "ID_OR_NAME")]
    connection: Option<String>,
    /// An origin that may embed the page and receive its message (repeatable).
    #[arg(long = "origin", value_name = "https://app.example.com")]
    origins: Vec<String>,
    /// Lifetime of the link in seconds (60 to 86400; default 1800).
    #[arg(long)]
    expires_in: Option<i64>,
    /// Open the connect page in this machine's browser.
    #[arg(long)]
    open: bool,
}

pub async fn run(ctx: &Ctx, cmd: ConnectSessionCmd) -> anyhow::Result<ExitCode> {
    let c = &ctx.client;
    match cmd {
        ConnectSessionCmd::Create(args) => {
            let CreateArgs {
                workspace,
                end_user,
                email,
                display_name,
                organization,
                organization_name,
                apps,
                env,
                connection,
                origins,
                expires_in,
                open,
            } = *args;
            let mut body = json!({
                "end_user": {"id": end_user, "email": email, "display_name": display_name},
                "allowed_apps": apps,
                "allowed_origins": origins,
            });
            if let Some(o) = organization {
                body["organization"] = json!({"id": o, "display_name": organization_name});
            }
            if let Some(e) = env {
                body["environment"] = json!(e);
            }
            if let Some(conn) = connection {
                body["connection"] = json!(conn);
            }
            if let Some(s) = expires_in {
                body["expires_in_seconds"] = json!(s);
            }
            let s = c
                .post(&["v1", "workspaces", &workspace, "connect-sessions"], &body)
                .await?;
            let url = text(&s, "connect_url");
            if ctx.json {
                output::json(&s);
            } else {
                output::line(format!(
                    "Created connect session {} (until {}).",
                    text(&s, "id"),
                    time(&s, "expires_at")
                ));
                output::line(format!("Connect URL (shown once): {url}"));
            }
            if open {
                super::authorize::open_browser(&url);
            }
        }
        ConnectSessionCmd::List { workspace } => {
            let list = c
                .list_all(
                    &["v1", "workspaces", &workspace, "connect-sessions"],
                    &[],
                    None,
                )
                .await?;
            if ctx.json {
                output::json(&list);
            } else if output::items(&list).is_empty() {
                output::line(format!("No connect sessions in `{workspace}`."));
            } else {
                output::line(table(output::items(&list)));
            }
        }
        ConnectSessionCmd::Show { workspace, id } => {
            let s = c
                .get(
                    &["v1", "workspaces", &workspace, "connect-sessions", &id],
                    &[],
                )
                .await?;
            if ctx.json {
                output::json(&s);
            } else {
                output::line(table(std::slice::from_ref(&s)));
            }
        }
        ConnectSessionCmd::Delete { workspace, id } => {
            c.delete(
                &["v1", "workspaces", &workspace, "connect-sessions", &id],
                &[],
            )
            .await?;
            if ctx.json {
                output::json(&json!({"cancelled": true, "id": id}));
            } else {
                output::line(format!("Cancelled connect session {id}."));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn table(rows: &[Value]) -> comfy_table::Table {
    let mut t = output::table(["ID", "STATUS", "END USER", "APPS", "CONNECTION", "EXPIRES"]);
    for s in rows {
        let apps: Vec<String> = s
            .get("allowed_apps")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        t.add_row(vec![
            text(s, "id"),
            text(s, "status"),
            text(&s["end_user"], "id"),
            apps.join(", "),
            text(s, "connection_id"),
            time(s, "expires_at"),
        ]);
    }
    t
}
