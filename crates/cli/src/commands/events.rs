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
    /// Keep printing events as they happen (Server-Sent Events; reconnects where it left off).
    #[arg(long, short = 'f')]
    follow: bool,
    /// With --follow: stop after this many new events.
    #[arg(long, requires = "follow")]
    count: Option<u64>,
}

pub async fn run(ctx: &Ctx, a: EventsArgs) -> anyhow::Result<ExitCode> {
    if a.follow {
        return follow(ctx, &a).await;
    }
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

fn print_event(ctx: &Ctx, e: &Value) {
    if ctx.json {
        output::line(e.to_string());
        return;
    }
    let target = match (text(e, "target_name"), text(e, "target_id")) {
        (n, id) if n.is_empty() => id,
        (n, _) => n,
    };
    output::line(format!(
        "{}  {:<28} {:<24} {}",
        time(e, "at"),
        text(e, "action"),
        target,
        text(e, "actor")
    ));
}

/// Follows the event stream: prints each event as it comes (one JSON object a line with
/// --json), and after a dropped connection resumes after the last event printed.
async fn follow(ctx: &Ctx, a: &EventsArgs) -> anyhow::Result<ExitCode> {
    use futures::StreamExt;
    let url = ctx
        .client
        .endpoint(&["v1", "workspaces", &a.workspace, "events", "stream"]);
    let mut last: Option<String> = None;
    let mut seen: u64 = 0;
    let mut pause = std::time::Duration::from_millis(250);
    loop {
        let mut req = ctx.client.raw(reqwest::Method::GET, url.clone());
        if let Some(id) = &last {
            req = req.header("Last-Event-ID", id);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if last.is_some() => {
                eprintln!("the event stream dropped ({e}); reconnecting");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(10));
                continue;
            }
            Err(e) => return Err(ctx.client.transport_failure(&e).into()),
        };
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            return Err(crate::client::api_failure(status, &body).into());
        }
        pause = std::time::Duration::from_millis(250);
        let mut body = resp.bytes_stream();
        let mut buf = String::new();
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else { break };
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let frame: String = buf.drain(..end + 2).collect();
                let mut id = None;
                let mut data = String::new();
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                let Some(id) = id else { continue };
                if let Ok(e) = serde_json::from_str::<Value>(&data) {
                    print_event(ctx, &e);
                }
                last = Some(id);
                seen += 1;
                if a.count.is_some_and(|c| seen >= c) {
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
        if last.is_none() {
            // Nothing was seen yet: resume from the newest event there is now.
            let newest = ctx
                .client
                .get(
                    &["v1", "workspaces", &a.workspace, "events"],
                    &[("limit", "1".to_string())],
                )
                .await?;
            last = output::items(&newest)
                .first()
                .map(|e| text(e, "id"))
                .filter(|s| !s.is_empty());
        }
        eprintln!("the event stream ended; reconnecting");
        tokio::time::sleep(pause).await;
    }
}
