//! `latchkey master-key rotate|status`: the master key that wraps every workspace's data key.

use crate::output::{self, text};
use crate::Ctx;
use clap::Subcommand;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum MasterKeyCmd {
    /// Make a new master key current and re-wrap every data key under it, while the server keeps
    /// serving. Without --new-key-file the server generates the key.
    Rotate {
        /// A file holding the new key (32 random bytes, base64), e.g. from `openssl rand -base64 32`.
        #[arg(long)]
        new_key_file: Option<PathBuf>,
    },
    /// Which master key wraps how many data keys.
    Status,
}

pub async fn run(ctx: &Ctx, cmd: MasterKeyCmd) -> anyhow::Result<ExitCode> {
    let c = &ctx.client;
    match cmd {
        MasterKeyCmd::Rotate { new_key_file } => {
            let body = match new_key_file {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
                    json!({ "new_key": text.trim() })
                }
                None => json!({}),
            };
            let report = c
                .post(&["v1", "admin", "master-key", "rotate"], &body)
                .await?;
            if ctx.json {
                output::json(&report);
                return Ok(ExitCode::SUCCESS);
            }
            output::line(format!(
                "Master key is now {}: {} data key(s) re-wrapped, {} left on an older key.",
                text(&report, "master_key_id"),
                text(&report, "data_keys_rewrapped"),
                text(&report, "data_keys_remaining"),
            ));
            if report["retired"] == Value::Bool(true) {
                output::line("The old master key is retired: nothing uses it any more.");
            }
            if let Some(k) = report["new_key"].as_str() {
                output::line("");
                output::line(format!("    {k}"));
                output::line("");
                output::line("This is the new master key; it will not be shown again.");
            }
            for step in report["next_steps"].as_array().into_iter().flatten() {
                output::line(format!("next: {}", step.as_str().unwrap_or_default()));
            }
        }
        MasterKeyCmd::Status => {
            let status = c.get(&["v1", "admin", "master-key"], &[]).await?;
            if ctx.json {
                output::json(&status);
                return Ok(ExitCode::SUCCESS);
            }
            output::line(format!(
                "current master key: {}",
                text(&status, "master_key_id")
            ));
            if let Some(by) = status["data_keys_by_master_key"].as_object() {
                for (id, n) in by {
                    output::line(format!("  {id}: {n} data key(s)"));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
