use super::authorize::{self, OnCancel, Pending, WaitArgs};
use super::{cli_hint, parse_ref, parse_secret, parse_setting, read_stdin_value, Ref};
use crate::client::Failure;
use crate::output::{self, show, text, time};
use crate::Ctx;
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use std::process::ExitCode;

const AUTH_MODES: [&str; 12] = [
    "oauth2_code",
    "oauth2_client_credentials",
    "oauth2_jwt_bearer",
    "api_key",
    "basic",
    "database",
    "service_account",
    "token_exchange",
    "oauth1",
    "oauth1_token",
    "aws_sigv4",
    "sftp",
];
const STATUSES: [&str; 5] = [
    "pending_authorization",
    "active",
    "failing",
    "revoked",
    "unverified",
];

#[derive(Debug, Subcommand)]
pub enum ConnectionCmd {
    /// Create a connection; its credential is checked against the application before it is saved.
    Create(CreateArgs),
    /// List a workspace's connections.
    List {
        /// The workspace (slug).
        #[arg(long, short = 'w')]
        workspace: String,
        /// Only this application's connections.
        #[arg(long)]
        app: Option<String>,
        /// Only this environment's connections.
        #[arg(long)]
        env: Option<String>,
        /// Only connections with this status.
        #[arg(long, value_parser = STATUSES)]
        status: Option<String>,
        /// Every page, not only the first 50 connections.
        #[arg(long)]
        all: bool,
    },
    /// Show a connection (never its secret values).
    Show {
        /// The connection, as workspace/name (or workspace/id).
        #[arg(value_name = "WORKSPACE/CONNECTION", value_parser = parse_ref)]
        target: Ref,
    },
    /// Change a connection; a changed credential or setting is checked again before it is saved.
    Edit(EditArgs),
    /// Authorize an `oauth2_code` connection (again) in a browser: prints a fresh link, opens
    /// it, and waits until the connection is active.
    Authorize {
        /// The connection, as workspace/name (or workspace/id).
        #[arg(value_name = "WORKSPACE/CONNECTION", value_parser = parse_ref)]
        target: Ref,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Check a stored connection against the application again.
    Verify {
        /// The connection, as workspace/name (or workspace/id).
        #[arg(value_name = "WORKSPACE/CONNECTION", value_parser = parse_ref)]
        target: Ref,
    },
    /// Delete a connection (refused while an active flow uses it).
    Delete {
        /// The connection, as workspace/name (or workspace/id).
        #[arg(value_name = "WORKSPACE/CONNECTION", value_parser = parse_ref)]
        target: Ref,
    },
    /// Print a connection's decrypted credential fields (needs the `secrets` scope).
    Credentials {
        /// The connection, as workspace/name (or workspace/id).
        #[arg(value_name = "WORKSPACE/CONNECTION", value_parser = parse_ref)]
        target: Ref,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The workspace (slug).
    #[arg(long, short = 'w')]
    workspace: String,
    /// Unique in the workspace; shown everywhere.
    #[arg(long)]
    name: String,
    /// The catalog id (`latchkey app list`), like generic-api-key or postgres.
    #[arg(long)]
    app: String,
    /// The environment label (default: production).
    #[arg(long)]
    env: Option<String>,
    /// The auth mode (default: the application's only one; oauth2_code for applications that
    /// take several, like salesforce).
    #[arg(long, value_parser = AUTH_MODES)]
    auth_mode: Option<String>,
    #[command(flatten)]
    values: Values,
    /// Save without checking the credential (the connection is then `unverified`).
    #[arg(long)]
    no_verify: bool,
    /// For oauth2_code: the browser step.
    #[command(flatten)]
    wait: WaitArgs,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    /// The connection, as workspace/name (or workspace/id).
    #[arg(value_name = "WORKSPACE/CONNECTION", value_parser = parse_ref)]
    target: Ref,
    /// A new name.
    #[arg(long)]
    name: Option<String>,
    /// A new environment label.
    #[arg(long)]
    env: Option<String>,
    #[command(flatten)]
    values: Values,
    /// Remove a setting (back to its default).
    #[arg(long, value_name = "KEY")]
    unset: Vec<String>,
    /// Save without checking the credential (the connection is then `unverified`).
    #[arg(long)]
    no_verify: bool,
}

/// Settings and secret fields given on the command line.
#[derive(Debug, Args)]
struct Values {
    /// A setting, like base_url=https://api.example.com or concurrency_level=3 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_setting)]
    settings: Vec<(String, Value)>,
    /// A credential field, like api_key=… (repeatable; prefer --secret-stdin for real secrets).
    #[arg(long = "secret", value_name = "KEY=VALUE", value_parser = parse_secret)]
    secrets: Vec<(String, String)>,
    /// Read this credential field from stdin, keeping it out of the shell history.
    #[arg(long, value_name = "KEY")]
    secret_stdin: Option<String>,
    /// A credential field read from a file, like key_json=./service-account.json (a
    /// service account's key file) or private_key=./id_ed25519 (repeatable).
    #[arg(long = "secret-file", value_name = "KEY=PATH", value_parser = parse_secret)]
    secret_files: Vec<(String, String)>,
    /// Salesforce and Certinia: log in at login.salesforce.com (production) or
    /// test.salesforce.com (sandbox). Sets settings.account_type.
    #[arg(long, value_parser = ["production", "sandbox"])]
    account_type: Option<String>,
    /// Salesforce and Certinia: the My Domain host, like acme.my.salesforce.com (no https://).
    #[arg(long, value_name = "HOST")]
    site: Option<String>,
    /// An OAuth scope to ask for, replacing the defaults (repeatable: --scope api --scope
    /// refresh_token). Sets settings.scopes.
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
}

impl Values {
    fn settings(&self) -> Map<String, Value> {
        let mut settings: Map<String, Value> = self.settings.iter().cloned().collect();
        if let Some(t) = &self.account_type {
            settings.insert("account_type".into(), json!(t));
        }
        if let Some(site) = &self.site {
            settings.insert("site".into(), json!(site.trim()));
        }
        if !self.scopes.is_empty() {
            settings.insert("scopes".into(), json!(split_scopes(&self.scopes)));
        }
        settings
    }

    fn credentials(&self) -> anyhow::Result<Map<String, Value>> {
        let mut creds: Map<String, Value> = self
            .secrets
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        for (key, path) in &self.secret_files {
            let value = std::fs::read_to_string(path).map_err(|e| {
                Failure::new(format!("--secret-file {key}: cannot read {path}: {e}"))
                    .with_hint("give the path of a readable text file, like key_json=./key.json or private_key=./id_ed25519")
            })?;
            creds.insert(key.clone(), Value::String(value));
        }
        if let Some(key) = &self.secret_stdin {
            let flag = format!("--secret-stdin {key}");
            creds.insert(key.clone(), Value::String(read_stdin_value(key, &flag)?));
        }
        Ok(creds)
    }
}

/// `--scope api --scope "refresh_token offline_access"`: each scope once, in order.
fn split_scopes(given: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in given.iter().flat_map(|g| g.split([' ', ','])) {
        if !s.is_empty() && !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    out
}

fn conn_path<'a>(r: &'a Ref, rest: &[&'a str]) -> Vec<&'a str> {
    let mut p = vec![
        "v1",
        "workspaces",
        r.workspace.as_str(),
        "connections",
        r.name.as_str(),
    ];
    p.extend_from_slice(rest);
    p
}

pub async fn run(ctx: &Ctx, cmd: ConnectionCmd) -> anyhow::Result<ExitCode> {
    let c = &ctx.client;
    match cmd {
        ConnectionCmd::Create(a) => return create(ctx, a).await,
        ConnectionCmd::List {
            workspace,
            app,
            env,
            status,
            all,
        } => {
            let mut query = Vec::new();
            for (k, v) in [("app", app), ("environment", env), ("status", status)] {
                if let Some(v) = v {
                    query.push((k, v));
                }
            }
            let segs = ["v1", "workspaces", workspace.as_str(), "connections"];
            let list = if all {
                c.list_all(&segs, &query, None).await?
            } else {
                c.get(&segs, &query).await?
            };
            if ctx.json {
                output::json(&list);
            } else {
                print_list(&workspace, &list);
            }
        }
        ConnectionCmd::Show { target } => {
            let conn = c.get(&conn_path(&target, &[]), &[]).await?;
            if ctx.json {
                output::json(&conn);
            } else {
                print_detail(&conn);
            }
        }
        ConnectionCmd::Edit(a) => edit(ctx, a).await?,
        ConnectionCmd::Authorize { target, wait } => {
            let answer = c
                .post(&conn_path(&target, &["authorize"]), &json!({}))
                .await
                .map_err(|f| cli_hint(f, &target, None))?;
            output::warnings(&answer);
            let conn = answer.get("connection").cloned().unwrap_or(Value::Null);
            let url = text(&answer, "authorize_url");
            let pending = Pending {
                workspace: &target.workspace,
                connection: &conn,
                authorize_url: &url,
                answer: &answer,
                on_cancel: OnCancel::Keep,
            };
            return authorize::follow(ctx, pending, &wait).await;
        }
        ConnectionCmd::Verify { target } => {
            let (path, body) = (conn_path(&target, &["verify"]), json!({}));
            let call = c.post(&path, &body);
            let answer = output::waiting(
                ctx.spinner_allowed(),
                format!("Checking {target} against the application"),
                call,
            )
            .await?;
            let ok = answer.get("ok").and_then(Value::as_bool).unwrap_or(false);
            let conn = answer.get("connection").cloned().unwrap_or(Value::Null);
            if ctx.json {
                output::json(&answer);
            } else if ok {
                output::line(format!(
                    "Connection `{}` works: it is {}.",
                    text(&conn, "name"),
                    text(&conn, "status")
                ));
            }
            if !ok {
                let mut f = Failure::new(format!(
                    "connection `{}` failed its check: {}",
                    text(&conn, "name"),
                    text(&conn, "status_reason")
                ));
                f.hint = conn.get("hint").and_then(Value::as_str).map(str::to_string);
                return Err(f.into());
            }
        }
        ConnectionCmd::Delete { target } => {
            c.delete(&conn_path(&target, &[]), &[]).await?;
            if ctx.json {
                output::json(
                    &json!({ "deleted": true, "workspace": target.workspace, "connection": target.name }),
                );
            } else {
                output::line(format!("Deleted connection `{target}`."));
            }
        }
        ConnectionCmd::Credentials { target } => {
            let answer = c.get(&conn_path(&target, &["credentials"]), &[]).await?;
            if ctx.json {
                output::json(&answer);
            } else {
                let mut t = output::table(["FIELD", "VALUE"]);
                if let Some(fields) = answer.get("credentials").and_then(Value::as_object) {
                    for (k, v) in fields {
                        t.add_row(vec![k.clone(), show(v)]);
                    }
                }
                output::line(t);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Applications with several auth modes that include `oauth2_code` (Salesforce) default to it:
/// "Save & authorize" is what people mean when they name no mode.
async fn default_auth_mode(ctx: &Ctx, app: &str) -> Option<String> {
    let entry = ctx.client.get(&["v1", "apps", app], &[]).await.ok()?;
    let modes: Vec<&str> = entry
        .get("auth_modes")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    (modes.len() > 1 && modes.contains(&"oauth2_code")).then(|| "oauth2_code".to_string())
}

async fn create(ctx: &Ctx, a: CreateArgs) -> anyhow::Result<ExitCode> {
    let mut body = json!({
        "name": a.name,
        "app": a.app,
        "settings": a.values.settings(),
        "credentials": a.values.credentials()?,
    });
    if let Some(e) = a.env {
        body["environment"] = json!(e);
    }
    let mode = match a.auth_mode {
        Some(m) => Some(m),
        None => default_auth_mode(ctx, &a.app).await,
    };
    if let Some(m) = mode {
        body["auth_mode"] = json!(m);
    }
    if a.no_verify {
        body["verify"] = json!(false);
    }
    let segs = ["v1", "workspaces", a.workspace.as_str(), "connections"];
    let message = if a.no_verify {
        "Saving the connection".to_string()
    } else {
        format!("Checking the credential against {}", a.app)
    };
    let conn = output::waiting(
        ctx.spinner_allowed(),
        message,
        ctx.client.post(&segs, &body),
    )
    .await
    .map_err(|f| {
        let target = Ref {
            workspace: a.workspace.clone(),
            name: a.name.clone(),
        };
        cli_hint(f, &target, Some(&a.app))
    })?;
    let url = text(&conn, "authorize_url");
    if text(&conn, "status") == "pending_authorization" && !url.is_empty() {
        output::warnings(&conn);
        if !ctx.json {
            output::line(format!(
                "Created connection `{}` ({}) in {}: it waits for the browser authorization.",
                text(&conn, "name"),
                text(&conn, "id"),
                a.workspace,
            ));
        }
        let pending = Pending {
            workspace: &a.workspace,
            connection: &conn,
            authorize_url: &url,
            answer: &conn,
            on_cancel: OnCancel::Delete,
        };
        return authorize::follow(ctx, pending, &a.wait).await;
    }
    if ctx.json {
        output::warnings(&conn);
        output::json(&conn);
    } else {
        output::line(format!(
            "Created connection `{}` ({}) in {}: {}.",
            text(&conn, "name"),
            text(&conn, "id"),
            a.workspace,
            text(&conn, "status")
        ));
        print_notes(&conn);
    }
    Ok(ExitCode::SUCCESS)
}

async fn edit(ctx: &Ctx, a: EditArgs) -> anyhow::Result<()> {
    let mut body = Map::new();
    if let Some(n) = a.name {
        body.insert("name".into(), json!(n));
    }
    if let Some(e) = a.env {
        body.insert("environment".into(), json!(e));
    }
    let mut settings = a.values.settings();
    for k in a.unset {
        if settings.contains_key(&k) {
            crate::usage_error(
                &["connection", "edit"],
                format!("`{k}` is both set and unset"),
            );
        }
        settings.insert(k, Value::Null);
    }
    if !settings.is_empty() {
        body.insert("settings".into(), Value::Object(settings));
    }
    let creds = a.values.credentials()?;
    if !creds.is_empty() {
        body.insert("credentials".into(), Value::Object(creds));
    }
    if body.is_empty() {
        crate::usage_error(
            &["connection", "edit"],
            "nothing to change: give --name, --env, --set, --unset, --secret, --secret-stdin or --secret-file",
        );
    }
    let checks = body.contains_key("settings") || body.contains_key("credentials");
    if a.no_verify {
        body.insert("verify".into(), json!(false));
    }
    let (path, body) = (conn_path(&a.target, &[]), Value::Object(body));
    let call = ctx.client.patch(&path, &body);
    let conn = output::waiting(
        ctx.spinner_allowed() && checks,
        format!("Updating {}", a.target),
        call,
    )
    .await?;
    if ctx.json {
        output::json(&conn);
    } else {
        output::line(format!(
            "Updated connection `{}` ({}): {}.",
            text(&conn, "name"),
            text(&conn, "id"),
            text(&conn, "status")
        ));
        print_notes(&conn);
    }
    if ctx.json {
        output::warnings(&conn);
    }
    Ok(())
}

/// The level, or who lends this connection its pool.
fn concurrency(conn: &Value) -> String {
    let settings = conn.get("settings").unwrap_or(&Value::Null);
    match settings
        .get("borrow_concurrency_from")
        .and_then(Value::as_str)
    {
        Some(lender) => format!("borrows {lender}"),
        None => text(settings, "concurrency_level"),
    }
}

fn print_list(workspace: &str, list: &Value) {
    let items = output::items(list);
    if items.is_empty() {
        output::line(format!("No connections found in `{workspace}`."));
        return;
    }
    let mut t = output::table(["NAME", "APP", "ENV", "AUTH", "STATUS", "CONCURRENCY", "ID"]);
    for c in items {
        t.add_row(vec![
            text(c, "name"),
            text(c, "app"),
            text(c, "environment"),
            text(c, "auth_mode"),
            text(c, "status"),
            concurrency(c),
            text(c, "id"),
        ]);
    }
    output::line(t);
    for c in items
        .iter()
        .filter(|c| c.get("status_reason").is_some_and(|r| !r.is_null()))
    {
        output::line(format!(
            "{} is {}: {}",
            text(c, "name"),
            text(c, "status"),
            output::one_line(&text(c, "status_reason"))
        ));
        let hint = text(c, "hint");
        if !hint.is_empty() {
            output::line(format!("  hint: {hint}"));
        }
    }
    if list.get("next_cursor").is_some_and(|c| !c.is_null()) {
        eprintln!("(more connections: add --all to list every page)");
    }
}

fn print_detail(conn: &Value) {
    let mut rows = vec![
        ("Name", text(conn, "name")),
        ("ID", text(conn, "id")),
        ("Application", text(conn, "app")),
        ("Environment", text(conn, "environment")),
        ("Auth mode", text(conn, "auth_mode")),
        ("Status", text(conn, "status")),
        ("Concurrency", concurrency(conn)),
        ("Credential fields", text(conn, "credential_fields")),
        ("Created", time(conn, "created_at")),
        ("Updated", time(conn, "updated_at")),
    ];
    if conn.get("verified_at").is_some_and(|v| !v.is_null()) {
        rows.push(("Verified", time(conn, "verified_at")));
    }
    output::line(output::fields(&rows));
    if let Some(settings) = conn
        .get("settings")
        .and_then(Value::as_object)
        .filter(|s| !s.is_empty())
    {
        let mut t = output::table(["SETTING", "VALUE"]);
        for (k, v) in settings {
            t.add_row(vec![k.clone(), show(v)]);
        }
        output::line(t);
    }
    print_notes(conn);
}

/// What a person should act on: why the connection is not active, warnings, a browser step.
fn print_notes(conn: &Value) {
    let reason = output::one_line(&text(conn, "status_reason"));
    if !reason.is_empty() {
        output::line(format!("{}: {reason}", text(conn, "status")));
    }
    let hint = text(conn, "hint");
    if !hint.is_empty() {
        output::line(format!("hint: {hint}"));
    }
    output::warnings(conn);
    let url = text(conn, "authorize_url");
    if !url.is_empty() {
        output::line(format!("Authorize it in a browser: {url}"));
    }
}
