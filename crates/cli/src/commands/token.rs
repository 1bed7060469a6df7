//! `latchkey token <ws>/<conn>`: a fresh access token, read by reference (R15), printed alone so
//! that `$(latchkey token acme/sf-prod)` works.

use super::{cli_hint, parse_ref, Ref};
use crate::client::Failure;
use crate::output;
use crate::Ctx;
use clap::Args;
use serde_json::{json, Value};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The OAuth connection, as workspace/name.
    #[arg(value_name = "WORKSPACE/CONNECTION", value_parser = parse_ref)]
    target: Ref,
    /// Refresh the token first even if it looks valid (after the application answered 401).
    #[arg(long)]
    refresh: bool,
}

pub async fn run(ctx: &Ctx, a: TokenArgs) -> anyhow::Result<ExitCode> {
    let answer = fetch(ctx, &a.target, a.refresh).await?;
    if ctx.json {
        output::json(&answer);
        return Ok(ExitCode::SUCCESS);
    }
    match answer.get("access_token").and_then(Value::as_str) {
        Some(t) if !t.is_empty() => output::line(t),
        _ => {
            return Err(Failure::new(format!(
                "the server answered no access token for `{}`",
                a.target
            ))
            .into())
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `GET …/token` (fresh, refreshed first when due) or `POST …/token/refresh` (forced).
pub async fn fetch(ctx: &Ctx, target: &Ref, refresh: bool) -> anyhow::Result<Value> {
    let mut path = vec![
        "v1",
        "workspaces",
        target.workspace.as_str(),
        "connections",
        target.name.as_str(),
        "token",
    ];
    let answer = if refresh {
        path.push("refresh");
        ctx.client.post(&path, &json!({})).await
    } else {
        ctx.client.get(&path, &[]).await
    };
    Ok(answer.map_err(|f| cli_hint(f, target, None))?)
}
