use crate::output::{self, text, time};
use crate::Ctx;
use clap::Subcommand;
use serde_json::{json, Value};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum WebhookCmd {
    /// Create a webhook; prints its signing secret (`whsec_…`) once.
    Create {
        /// The workspace (its slug).
        #[arg(long, short = 'w')]
        workspace: String,
        /// An https URL (http only for hosts LATCHKEY_OUTBOUND_ALLOW lists).
        #[arg(long)]
        url: String,
        /// An event type or family such as `connection.*` (repeatable; default: every type).
        #[arg(long = "event", value_name = "TYPE")]
        events: Vec<String>,
        /// What the webhook is for, shown in lists.
        #[arg(long)]
        description: Option<String>,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// List a workspace's webhooks.
    List {
        /// The workspace (its slug).
        #[arg(long, short = 'w')]
        workspace: String,
    },
    /// Show one webhook.
    Show {
        /// The workspace (its slug).
        #[arg(long, short = 'w')]
        workspace: String,
        /// The webhook id (`wh_…`).
        id: String,
    },
    /// Delete a webhook (its pending messages go with it).
    Delete {
        /// The workspace (its slug).
        #[arg(long, short = 'w')]
        workspace: String,
        /// The webhook id (`wh_…`).
        id: String,
    },
    /// A webhook's messages, newest first: status, attempts, last answer.
    Deliveries {
        /// The workspace (its slug).
        #[arg(long, short = 'w')]
        workspace: String,
        /// The webhook id (`wh_…`).
        id: String,
        /// How many messages to show at most.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Send a message again now (it keeps its id).
    Retry {
        /// The workspace (its slug).
        #[arg(long, short = 'w')]
        workspace: String,
        /// The webhook id (`wh_…`).
        id: String,
        /// The message id (`msg_…`) from `latchkey webhook deliveries`.
        delivery: String,
    },
}

fn table(hooks: &[Value]) -> comfy_table::Table {
    let mut t = output::table(["ID", "URL", "EVENTS", "ENABLED", "FAILING SINCE"]);
    for h in hooks {
        let events = h["events"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        t.add_row(vec![
            text(h, "id"),
            text(h, "url"),
            events,
            h["enabled"].to_string(),
            time(h, "failing_since"),
        ]);
    }
    t
}

pub async fn run(ctx: &Ctx, cmd: WebhookCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        WebhookCmd::Create {
            workspace,
            url,
            events,
            description,
            disabled,
        } => create(ctx, &workspace, &url, events, description, disabled).await?,
        WebhookCmd::List { workspace } => list(ctx, &workspace).await?,
        WebhookCmd::Show { workspace, id } => show(ctx, &workspace, &id).await?,
        WebhookCmd::Delete { workspace, id } => delete(ctx, &workspace, &id).await?,
        WebhookCmd::Deliveries {
            workspace,
            id,
            limit,
        } => deliveries(ctx, &workspace, &id, limit).await?,
        WebhookCmd::Retry {
            workspace,
            id,
            delivery,
        } => retry(ctx, &workspace, &id, &delivery).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `webhook create`: creates the webhook and shows its signing secret, once.
async fn create(
    ctx: &Ctx,
    workspace: &str,
    url: &str,
    events: Vec<String>,
    description: Option<String>,
    disabled: bool,
) -> anyhow::Result<()> {
    let mut body = json!({ "url": url, "enabled": !disabled });
    if !events.is_empty() {
        body["events"] = json!(events);
    }
    if let Some(d) = description {
        body["description"] = json!(d);
    }
    let h = ctx
        .client
        .post(&["v1", "workspaces", workspace, "webhooks"], &body)
        .await?;
    if ctx.json {
        output::json(&h);
    } else {
        output::line(format!(
            "Created webhook {} for {}.",
            text(&h, "id"),
            text(&h, "url")
        ));
        output::line(format!(
            "Signing secret (shown once, keep it with the receiver): {}",
            text(&h, "secret")
        ));
    }
    Ok(())
}

/// `webhook list`: the workspace's webhooks.
async fn list(ctx: &Ctx, workspace: &str) -> anyhow::Result<()> {
    let list = ctx
        .client
        .list_all(&["v1", "workspaces", workspace, "webhooks"], &[], None)
        .await?;
    if ctx.json {
        output::json(&list);
    } else if output::items(&list).is_empty() {
        output::line(format!("No webhooks in `{workspace}`."));
    } else {
        output::line(table(output::items(&list)));
    }
    Ok(())
}

/// `webhook show`: one webhook, with why it was disabled when it was.
async fn show(ctx: &Ctx, workspace: &str, id: &str) -> anyhow::Result<()> {
    let h = ctx
        .client
        .get(&["v1", "workspaces", workspace, "webhooks", id], &[])
        .await?;
    if ctx.json {
        output::json(&h);
    } else {
        output::line(table(std::slice::from_ref(&h)));
        if !text(&h, "disabled_reason").is_empty() {
            output::line(format!("Disabled: {}", text(&h, "disabled_reason")));
        }
    }
    Ok(())
}

/// `webhook delete`.
async fn delete(ctx: &Ctx, workspace: &str, id: &str) -> anyhow::Result<()> {
    ctx.client
        .delete(&["v1", "workspaces", workspace, "webhooks", id], &[])
        .await?;
    if ctx.json {
        output::json(&json!({ "deleted": id }));
    } else {
        output::line(format!("Deleted webhook {id}."));
    }
    Ok(())
}

/// `webhook deliveries`: the webhook's messages, at most `limit`, newest first.
async fn deliveries(ctx: &Ctx, workspace: &str, id: &str, limit: usize) -> anyhow::Result<()> {
    let list = ctx
        .client
        .list_all(
            &["v1", "workspaces", workspace, "webhooks", id, "deliveries"],
            &[],
            Some(limit),
        )
        .await?;
    if ctx.json {
        output::json(&list);
    } else if output::items(&list).is_empty() {
        output::line("No deliveries yet.");
    } else {
        let mut t = output::table([
            "ID", "EVENT", "STATUS", "ATTEMPTS", "LAST", "CODE", "ERROR", "NEXT",
        ]);
        for d in output::items(&list) {
            t.add_row(vec![
                text(d, "id"),
                text(d, "event_type"),
                text(d, "status"),
                d["attempts"].to_string(),
                time(d, "last_attempt_at"),
                text(d, "last_status_code"),
                text(d, "last_error"),
                time(d, "next_attempt_at"),
            ]);
        }
        output::line(t);
    }
    Ok(())
}

/// `webhook retry`: sends one message again now.
async fn retry(ctx: &Ctx, workspace: &str, id: &str, delivery: &str) -> anyhow::Result<()> {
    let d = ctx
        .client
        .post(
            &[
                "v1",
                "workspaces",
                workspace,
                "webhooks",
                id,
                "deliveries",
                delivery,
                "retry",
            ],
            &json!({}),
        )
        .await?;
    if ctx.json {
        output::json(&d);
    } else {
        output::line(format!(
            "Delivery {} will be sent again now.",
            text(&d, "id")
        ));
    }
    Ok(())
}
