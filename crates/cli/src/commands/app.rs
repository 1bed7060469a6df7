use crate::output::{self, show, text};
use crate::Ctx;
use clap::Subcommand;
use serde_json::Value;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum AppCmd {
    /// List the catalog (with --workspace: how many connections each application has there).
    List {
        #[arg(long, short = 'w')]
        workspace: Option<String>,
        /// Only applications of this category (crm, erp, finance, support, marketing, hr,
        /// ecommerce, storage, collaboration, developer-tools, data-warehouse, cloud, …).
        #[arg(long, short = 'c')]
        category: Option<String>,
        /// Words that must all appear in the id, name, description or categories.
        #[arg(long, short = 's', alias = "q")]
        search: Option<String>,
    },
    /// Show an application's auth modes, settings and credential fields.
    Show { app: String },
}

pub async fn run(ctx: &Ctx, cmd: AppCmd) -> anyhow::Result<ExitCode> {
    let c = &ctx.client;
    match cmd {
        AppCmd::List {
            workspace,
            category,
            search,
        } => {
            let mut query: Vec<(&str, String)> = vec![];
            if let Some(cat) = category {
                query.push(("category", cat));
            }
            if let Some(q) = search {
                query.push(("q", q));
            }
            let list = match &workspace {
                Some(ws) => {
                    c.list_all(&["v1", "workspaces", ws, "apps"], &query, None)
                        .await?
                }
                None => c.list_all(&["v1", "apps"], &query, None).await?,
            };
            if ctx.json {
                output::json(&list);
                return Ok(ExitCode::SUCCESS);
            }
            let mut headers = vec!["ID", "NAME", "AUTH MODES", "CATEGORIES"];
            if workspace.is_some() {
                headers.push("CONNECTIONS");
            }
            let mut t = output::table(headers);
            for a in output::items(&list) {
                let mut row = vec![
                    text(a, "id"),
                    text(a, "name"),
                    text(a, "auth_modes"),
                    text(a, "categories"),
                ];
                if workspace.is_some() {
                    row.push(text(a, "connection_count"));
                }
                t.add_row(row);
            }
            output::line(t);
        }
        AppCmd::Show { app } => {
            let a = c.get(&["v1", "apps", &app], &[]).await?;
            if ctx.json {
                output::json(&a);
            } else {
                print_app(&a);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_app(a: &Value) {
    output::line(format!("{} ({})", text(a, "name"), text(a, "id")));
    let desc = text(a, "description");
    if !desc.is_empty() {
        output::line(desc);
    }
    output::line("");
    let mut about = vec![("Auth modes", text(a, "auth_modes"))];
    if a.get("base_url").is_some() {
        about.push(("API base", text(a, "base_url")));
    }
    if let Some(oauth) = a.get("oauth") {
        about.push(("Default scopes", text(oauth, "default_scopes")));
    }
    if let Some(v) = a.get("verify") {
        let how = match v.get("kind").and_then(Value::as_str) {
            Some("http") => {
                let path = match v.get("path").and_then(Value::as_str) {
                    Some(p) => p.to_string(),
                    None => format!("the path in the `{}` setting", text(v, "path_setting")),
                };
                format!(
                    "{} request to {path}; a 2xx answer passes",
                    text(v, "method")
                )
            }
            Some(db) => format!("a {db} connection that runs SELECT 1"),
            None => String::new(),
        };
        about.push(("Verified by", how));
    }
    if a.get("docs_url").is_some() {
        about.push(("Docs", text(a, "docs_url")));
    }
    output::line(output::fields(&about));
    output::line("\nSettings");
    output::line(field_table(a.get("settings"), true));
    output::line("Every connection also takes concurrency_level (1-25, default 5) and borrow_concurrency_from.");
    output::line("\nCredentials (secret; never shown in answers)");
    output::line(field_table(a.get("credentials"), false));
}

fn field_table(fields: Option<&Value>, with_default: bool) -> comfy_table::Table {
    let mut headers = vec!["NAME", "TYPE", "REQUIRED", "AUTH MODES"];
    if with_default {
        headers.push("DEFAULT");
    }
    headers.push("DESCRIPTION");
    let mut t = output::table(headers);
    for f in fields
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let required = if f.get("required").and_then(Value::as_bool).unwrap_or(false) {
            "yes".to_string()
        } else if f.get("required_for").is_some() {
            format!("for {}", text(f, "required_for"))
        } else {
            String::new()
        };
        let mut kind = text(f, "type");
        if f.get("choices").is_some() {
            kind = format!("{kind}: {}", text(f, "choices").replace(", ", " | "));
        }
        let modes = match text(f, "auth_modes") {
            m if m.is_empty() => "all".to_string(),
            m => m,
        };
        let mut description = text(f, "label");
        let more = text(f, "description");
        if !more.is_empty() {
            description = format!("{description}: {more}");
        }
        let mut row = vec![text(f, "name"), kind, required, modes];
        if with_default {
            row.push(f.get("default").map(show).unwrap_or_default());
        }
        row.push(description);
        t.add_row(row);
    }
    t
}
