//! `latchkey oauth-client`: the workspace's registered app at a provider (Salesforce "connected
//! app"), used by its connections that carry no client of their own. Secrets are never shown.

use super::read_stdin_value;
use crate::client::Failure;
use crate::output::{self, text, time};
use crate::Ctx;
use clap::Subcommand;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum OAuthClientCmd {
    /// Set (or replace) the workspace's OAuth client for an application.
    Set {
        /// The workspace (slug).
        workspace: String,
        /// The catalog id, like salesforce.
        app: String,
        /// The consumer key (client id).
        #[arg(long)]
        client_id: String,
        /// Read the consumer secret from stdin, keeping it out of the shell history.
        #[arg(long, conflicts_with = "client_secret")]
        client_secret_stdin: bool,
        /// The consumer secret (prefer --client-secret-stdin).
        #[arg(long, value_name = "SECRET")]
        client_secret: Option<String>,
        /// A PEM file with the RSA private key for JWT bearer.
        #[arg(long, value_name = "PEM")]
        private_key_file: Option<PathBuf>,
        /// An origin (https://auth.example.com) the client may be sent to; repeat for more.
        /// Required for applications whose connections give their own OAuth URLs.
        #[arg(long = "allowed-origin", value_name = "ORIGIN")]
        allowed_origins: Vec<String>,
    },
    /// Show the OAuth client (never its secret) and the redirect URI to register.
    Show {
        /// The workspace (slug).
        workspace: String,
        /// The catalog id, like salesforce.
        app: String,
    },
    /// Delete the OAuth client; connections that rely on it stop refreshing.
    Delete {
        /// The workspace (slug).
        workspace: String,
        /// The catalog id, like salesforce.
        app: String,
    },
}

pub async fn run(ctx: &Ctx, cmd: OAuthClientCmd) -> anyhow::Result<ExitCode> {
    let c = &ctx.client;
    match cmd {
        OAuthClientCmd::Set {
            workspace,
            app,
            client_id,
            client_secret_stdin,
            client_secret,
            private_key_file,
            allowed_origins,
        } => {
            let mut body = json!({ "client_id": client_id });
            if !allowed_origins.is_empty() {
                body["allowed_origins"] = json!(allowed_origins);
            }
            let secret = if client_secret_stdin {
                Some(read_stdin_value("client secret", "--client-secret-stdin")?)
            } else {
                client_secret
            };
            if let Some(s) = secret {
                body["client_secret"] = json!(s);
            }
            if let Some(path) = private_key_file {
                let pem = std::fs::read_to_string(&path).map_err(|e| {
                    Failure::new(format!("cannot read {}: {e}", path.display())).with_hint(
                        "give a PEM file with an RSA private key (-----BEGIN PRIVATE KEY-----)",
                    )
                })?;
                body["private_key"] = json!(pem);
            }
            let answer = c.put(&path(&workspace, &app), &body).await?;
            if ctx.json {
                output::json(&answer);
            } else {
                output::line(format!(
                    "Saved the OAuth client of `{app}` in {workspace} (client id {}).",
                    text(&answer, "client_id")
                ));
                print_redirect(&answer);
            }
        }
        OAuthClientCmd::Show { workspace, app } => {
            let answer = c.get(&path(&workspace, &app), &[]).await?;
            if ctx.json {
                output::json(&answer);
            } else {
                output::line(output::fields(&[
                    ("Application", text(&answer, "app")),
                    ("Client ID", text(&answer, "client_id")),
                    ("Client secret", stored(&answer, "has_client_secret")),
                    ("Private key", stored(&answer, "has_private_key")),
                    (
                        "Allowed origins",
                        answer["allowed_origins"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(Value::as_str)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            })
                            .unwrap_or_else(|| "the application's hosts".into()),
                    ),
                    ("Redirect URI", text(&answer, "redirect_uri")),
                    ("Created", time(&answer, "created_at")),
                    ("Updated", time(&answer, "updated_at")),
                ]));
                print_redirect(&answer);
            }
        }
        OAuthClientCmd::Delete { workspace, app } => {
            c.delete(&path(&workspace, &app), &[]).await?;
            if ctx.json {
                output::json(&json!({ "deleted": true, "workspace": workspace, "app": app }));
            } else {
                output::line(format!(
                    "Deleted the OAuth client of `{app}` in {workspace}."
                ));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn path<'a>(workspace: &'a str, app: &'a str) -> [&'a str; 6] {
    ["v1", "workspaces", workspace, "apps", app, "oauth-client"]
}

fn stored(answer: &Value, key: &str) -> String {
    match answer.get(key).and_then(Value::as_bool) {
        Some(true) => "stored".into(),
        _ => "none".into(),
    }
}

fn print_redirect(answer: &Value) {
    let uri = text(answer, "redirect_uri");
    if !uri.is_empty() {
        output::line(format!(
            "Register this redirect URI (callback URL) in the provider's app: {uri}"
        ));
    }
}
