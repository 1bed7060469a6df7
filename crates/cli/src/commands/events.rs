use crate::output::{self, text, time};
use crate::Ctx;
use clap::Args;
use serde_json::Value;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// The workspace (slug).
    #[arg(long, short = 'w')]
    workspace: String,
    /// How many events, newest first.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    limit: u32,
}

pub async fn run(ctx: &Ctx, a: EventsArgs) -> anyhow::Result<ExitCode> {
    let list = ctx
        .client
        .list_all(
            &["v1", "workspaces", &a.workspace, "events"],
            &[],
            Some(a.limit as usize),
        )
        .await?;
    if ctx.json {
        output::json(&list);
        return Ok(ExitCode::SUCCESS);
    }
    if output::items(&list).is_empty() {
        output::line(format!("No events in `{}` yet.", a.workspace));
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = output::table(["AT", "ACTOR", "ACTION", "TARGET", "DETAILS"]);
    for e in output::items(&list) {
        let target = match (text(e, "target_name"), text(e, "target_id")) {
            (n, id) if n.is_empty() => id,
            (n, id) if id.is_empty() || n == id => n,
            (n, id) => format!("{n} ({id})"),
        };
        let details = match e.get("details") {
            Some(Value::Object(m)) if m.is_empty() => String::new(),
            Some(d) => d.to_string(),
            None => String::new(),
        };
        t.add_row(vec![
            time(e, "at"),
            text(e, "actor"),
            text(e, "action"),
            target,
            details,
        ]);
    }
    output::line(t);
    Ok(ExitCode::SUCCESS)
}
