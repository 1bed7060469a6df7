use super::{parse_ref, Ref};
use crate::output::{self, text, time};
use crate::Ctx;
use clap::Subcommand;
use serde_json::{json, Map, Value};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum FlowCmd {
    /// Create a flow that uses existing connections.
    Create {
        /// The workspace (slug).
        #[arg(long, short = 'w')]
        workspace: String,
        /// The flow's name, unique in the workspace.
        #[arg(long)]
        name: String,
        /// The environment label (default: production); its connections must have the same.
        #[arg(long)]
        env: Option<String>,
        /// Create it inactive (an inactive flow does not hold its connections in use).
        #[arg(long)]
        inactive: bool,
        /// A connection it uses, by id or name (repeatable).
        #[arg(long = "connection", value_name = "ID_OR_NAME")]
        connections: Vec<String>,
    },
    /// List a workspace's flows.
    List {
        /// The workspace (slug).
        #[arg(long, short = 'w')]
        workspace: String,
    },
    /// Change a flow.
    Edit {
        /// The flow, as workspace/name (or workspace/id).
        #[arg(value_name = "WORKSPACE/FLOW", value_parser = parse_ref)]
        target: Ref,
        /// The flow's name, unique in the workspace.
        #[arg(long)]
        name: Option<String>,
        /// A new environment label; the flow's connections must have the same.
        #[arg(long)]
        env: Option<String>,
        /// Make the flow active.
        #[arg(long, conflicts_with = "deactivate")]
        activate: bool,
        /// Make the flow inactive (its connections can then be deleted).
        #[arg(long)]
        deactivate: bool,
        /// Replaces the flow's connections with these, by id or name (repeatable).
        #[arg(long = "connection", value_name = "ID_OR_NAME")]
        connections: Vec<String>,
        /// Removes every connection from the flow.
        #[arg(long, conflicts_with = "connections")]
        no_connections: bool,
    },
    /// Delete a flow.
    Delete {
        /// The flow, as workspace/name (or workspace/id).
        #[arg(value_name = "WORKSPACE/FLOW", value_parser = parse_ref)]
        target: Ref,
    },
}

pub async fn run(ctx: &Ctx, cmd: FlowCmd) -> anyhow::Result<ExitCode> {
    let c = &ctx.client;
    match cmd {
        FlowCmd::Create {
            workspace,
            name,
            env,
            inactive,
            connections,
        } => {
            let mut body = json!({ "name": name, "active": !inactive, "connections": connections });
            if let Some(e) = env {
                body["environment"] = json!(e);
            }
            let flow = c
                .post(&["v1", "workspaces", &workspace, "flows"], &body)
                .await?;
            if ctx.json {
                output::json(&flow);
            } else {
                output::line(format!(
                    "Created flow `{}` ({}) in {}.",
                    text(&flow, "name"),
                    text(&flow, "id"),
                    workspace
                ));
                output::line(table(std::slice::from_ref(&flow)));
            }
        }
        FlowCmd::List { workspace } => {
            let list = c
                .list_all(&["v1", "workspaces", &workspace, "flows"], &[], None)
                .await?;
            if ctx.json {
                output::json(&list);
            } else if output::items(&list).is_empty() {
                output::line(format!("No flows in `{workspace}`."));
            } else {
                output::line(table(output::items(&list)));
            }
        }
        FlowCmd::Edit {
            target,
            name,
            env,
            activate,
            deactivate,
            connections,
            no_connections,
        } => {
            let mut body = Map::new();
            if let Some(n) = name {
                body.insert("name".into(), json!(n));
            }
            if let Some(e) = env {
                body.insert("environment".into(), json!(e));
            }
            if activate || deactivate {
                body.insert("active".into(), json!(activate));
            }
            if !connections.is_empty() || no_connections {
                body.insert("connections".into(), json!(connections));
            }
            if body.is_empty() {
                crate::usage_error(&["flow", "edit"], "nothing to change: give --name, --env, --activate, --deactivate, --connection or --no-connections");
            }
            let flow = c.patch(&flow_path(&target), &Value::Object(body)).await?;
            if ctx.json {
                output::json(&flow);
            } else {
                output::line(format!("Updated flow `{}`.", text(&flow, "name")));
                output::line(table(std::slice::from_ref(&flow)));
            }
        }
        FlowCmd::Delete { target } => {
            c.delete(&flow_path(&target), &[]).await?;
            if ctx.json {
                output::json(
                    &json!({ "deleted": true, "workspace": target.workspace, "flow": target.name }),
                );
            } else {
                output::line(format!("Deleted flow `{target}`."));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn flow_path(r: &Ref) -> Vec<&str> {
    vec![
        "v1",
        "workspaces",
        r.workspace.as_str(),
        "flows",
        r.name.as_str(),
    ]
}

fn table(flows: &[Value]) -> comfy_table::Table {
    let mut t = output::table(["NAME", "ENV", "STATE", "CONNECTIONS", "ID", "UPDATED"]);
    for f in flows {
        let state = if f.get("active").and_then(Value::as_bool).unwrap_or(false) {
            "active"
        } else {
            "inactive"
        };
        let conns: Vec<String> = f
            .get("connections")
            .and_then(Value::as_array)
            .map(|cs| cs.iter().map(|c| text(c, "name")).collect())
            .unwrap_or_default();
        t.add_row(vec![
            text(f, "name"),
            text(f, "environment"),
            state.to_string(),
            conns.join(", "),
            text(f, "id"),
            time(f, "updated_at"),
        ]);
    }
    t
}
