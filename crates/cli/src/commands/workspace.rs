use crate::output::{self, text, time};
use crate::Ctx;
use clap::Subcommand;
use serde_json::{json, Value};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum WorkspaceCmd {
    /// Create a workspace (admin key).
    Create {
        /// Lowercase letters, digits and dashes, like `acme`.
        slug: String,
        /// A display name (default: the slug).
        #[arg(long)]
        name: Option<String>,
    },
    /// List the workspaces this key can see.
    List,
    /// Show one workspace.
    Show {
        /// The workspace (slug).
        workspace: String,
    },
    /// Delete a workspace (admin key).
    Delete {
        /// The workspace (slug).
        workspace: String,
        /// Also delete its connections and flows (refused otherwise while it has any).
        #[arg(long)]
        force: bool,
    },
}

pub async fn run(ctx: &Ctx, cmd: WorkspaceCmd) -> anyhow::Result<ExitCode> {
    let c = &ctx.client;
    match cmd {
        WorkspaceCmd::Create { slug, name } => {
            let mut body = json!({ "slug": slug });
            if let Some(n) = name {
                body["name"] = json!(n);
            }
            let ws = c.post(&["v1", "workspaces"], &body).await?;
            if ctx.json {
                output::json(&ws);
            } else {
                output::line(format!(
                    "Created workspace `{}` ({}, {}).",
                    text(&ws, "slug"),
                    text(&ws, "name"),
                    text(&ws, "id")
                ));
            }
        }
        WorkspaceCmd::List => {
            let list = c.list_all(&["v1", "workspaces"], &[], None).await?;
            if ctx.json {
                output::json(&list);
            } else if output::items(&list).is_empty() {
                output::line(
                    "No workspaces yet: create one with `latchkey workspace create <slug>`.",
                );
            } else {
                let mut t = output::table(["SLUG", "NAME", "ID", "CREATED"]);
                for w in output::items(&list) {
                    t.add_row(vec![
                        text(w, "slug"),
                        text(w, "name"),
                        text(w, "id"),
                        time(w, "created_at"),
                    ]);
                }
                output::line(t);
            }
        }
        WorkspaceCmd::Show { workspace } => {
            let ws = c.get(&["v1", "workspaces", &workspace], &[]).await?;
            if ctx.json {
                output::json(&ws);
            } else {
                output::line(show(&ws));
            }
        }
        WorkspaceCmd::Delete { workspace, force } => {
            let query = if force {
                vec![("force", "true".to_string())]
            } else {
                vec![]
            };
            c.delete(&["v1", "workspaces", &workspace], &query).await?;
            if ctx.json {
                output::json(&json!({ "deleted": true, "workspace": workspace }));
            } else {
                output::line(format!("Deleted workspace `{workspace}`."));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show(ws: &Value) -> comfy_table::Table {
    output::fields(&[
        ("Slug", text(ws, "slug")),
        ("Name", text(ws, "name")),
        ("ID", text(ws, "id")),
        ("Created", time(ws, "created_at")),
        ("Updated", time(ws, "updated_at")),
    ])
}
