use crate::output::{self, text, time};
use crate::Ctx;
use clap::Subcommand;
use serde_json::{json, Value};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Add a person who signs in to the web UI (instance administrators only).
    Create {
        /// Their email: the sign-in name for a local password.
        email: String,
        /// The name shown in the UI and the audit log.
        #[arg(long)]
        name: Option<String>,
        /// Read a local password from stdin (piped, or typed at the prompt). Without it the
        /// person signs in only by single sign-on.
        #[arg(long)]
        password_stdin: bool,
        /// Make them an instance administrator (everything, everywhere).
        #[arg(long)]
        instance_admin: bool,
        /// Give them a role in a workspace at once: WORKSPACE=ROLE (repeatable), ROLE one of
        /// owner, admin, editor, viewer.
        #[arg(long = "role", value_parser = parse_role)]
        roles: Vec<(String, String)>,
    },
    /// List people and their roles.
    List,
    /// Remove a person: their roles go, their keys are revoked and their sessions end.
    Delete {
        /// Their email or id (`user_…`).
        user: String,
    },
    /// Give a person a role in a workspace, or take it away with --remove.
    SetRole {
        /// Their email or id.
        user: String,
        /// The workspace slug.
        #[arg(long, short = 'w')]
        workspace: String,
        /// owner (members and everything), admin (connections, flows, webhooks, keys), editor
        /// (create, edit, verify, authorize; no secrets), viewer (read only).
        #[arg(value_parser = ["owner", "admin", "editor", "viewer"], required_unless_present = "remove")]
        role: Option<String>,
        /// Take their role in the workspace away.
        #[arg(long, conflicts_with = "role")]
        remove: bool,
    },
}

fn parse_role(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((ws, role))
            if !ws.trim().is_empty()
                && ["owner", "admin", "editor", "viewer"].contains(&role.trim()) =>
        {
            Ok((ws.trim().to_string(), role.trim().to_string()))
        }
        _ => Err("expected WORKSPACE=ROLE, ROLE one of owner, admin, editor, viewer".into()),
    }
}

fn roles_text(u: &Value) -> String {
    let roles: Vec<String> = u["roles"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| format!("{}:{}", text(r, "workspace"), text(r, "role")))
                .collect()
        })
        .unwrap_or_default();
    if roles.is_empty() {
        "-".into()
    } else {
        roles.join(", ")
    }
}

pub async fn run(ctx: &Ctx, cmd: UserCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        UserCmd::Create {
            email,
            name,
            password_stdin,
            instance_admin,
            roles,
        } => create(ctx, &email, name, password_stdin, instance_admin, &roles).await?,
        UserCmd::List => list(ctx).await?,
        UserCmd::Delete { user } => delete(ctx, &user).await?,
        UserCmd::SetRole {
            user,
            workspace,
            role,
            remove,
        } => set_role(ctx, &user, &workspace, role, remove).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `user create`: adds the person, then gives them each workspace role asked for.
async fn create(
    ctx: &Ctx,
    email: &str,
    name: Option<String>,
    password_stdin: bool,
    instance_admin: bool,
    roles: &[(String, String)],
) -> anyhow::Result<()> {
    let c = &ctx.client;
    let password = if password_stdin {
        Some(zeroize::Zeroizing::new(super::read_stdin_value(
            "Password",
            "--password-stdin",
        )?))
    } else {
        None
    };
    let body = json!({
        "email": email,
        "display_name": name,
        "password": password.as_ref().map(|p| p.as_str()),
        "instance_admin": instance_admin,
    });
    let mut user = c.post(&["v1", "users"], &body).await?;
    let id = text(&user, "id");
    for (ws, role) in roles {
        c.put(
            &["v1", "workspaces", ws, "members", &id],
            &json!({ "role": role }),
        )
        .await?;
    }
    if !roles.is_empty() {
        user = c.get(&["v1", "users", &id], &[]).await?;
    }
    if ctx.json {
        output::json(&user);
    } else {
        output::line(format!(
            "Added {} ({}){}; roles: {}.",
            text(&user, "email"),
            id,
            if instance_admin {
                ", instance administrator"
            } else {
                ""
            },
            roles_text(&user)
        ));
    }
    Ok(())
}

/// `user list`: every person with how they sign in and their roles.
async fn list(ctx: &Ctx) -> anyhow::Result<()> {
    let list = ctx.client.list_all(&["v1", "users"], &[], None).await?;
    if ctx.json {
        output::json(&list);
        return Ok(());
    }
    let mut t = output::table([
        "ID", "EMAIL", "NAME", "ADMIN", "SIGN-IN", "ROLES", "CREATED",
    ]);
    for u in output::items(&list) {
        let sign_in = match (u["has_password"].as_bool(), u["sso"].as_bool()) {
            (Some(true), Some(true)) => "password, sso",
            (Some(true), _) => "password",
            (_, Some(true)) => "sso",
            _ => "-",
        };
        t.add_row(vec![
            text(u, "id"),
            text(u, "email"),
            text(u, "display_name"),
            if u["instance_admin"].as_bool() == Some(true) {
                "yes"
            } else {
                ""
            }
            .to_string(),
            sign_in.to_string(),
            roles_text(u),
            time(u, "created_at"),
        ]);
    }
    output::line(t);
    Ok(())
}

/// `user delete`: removes the person (their keys are revoked, their sessions end).
async fn delete(ctx: &Ctx, user: &str) -> anyhow::Result<()> {
    ctx.client.delete(&["v1", "users", user], &[]).await?;
    if ctx.json {
        output::json(&json!({ "deleted": true, "user": user }));
    } else {
        output::line(format!(
            "Removed {user}: their keys are revoked and their sessions ended."
        ));
    }
    Ok(())
}

/// `user set-role`: gives the person a role in the workspace, or takes it away.
async fn set_role(
    ctx: &Ctx,
    user: &str,
    workspace: &str,
    role: Option<String>,
    remove: bool,
) -> anyhow::Result<()> {
    let c = &ctx.client;
    let path = ["v1", "workspaces", workspace, "members", user];
    if remove {
        c.delete(&path, &[]).await?;
        if ctx.json {
            output::json(&json!({ "removed": true, "user": user, "workspace": workspace }));
        } else {
            output::line(format!("{user} no longer has a role in {workspace}."));
        }
    } else {
        let role = role.unwrap_or_default();
        let m = c.put(&path, &json!({ "role": role })).await?;
        if ctx.json {
            output::json(&m);
        } else {
            output::line(format!(
                "{} is now {} in {workspace}.",
                text(&m, "email"),
                text(&m, "role")
            ));
        }
    }
    Ok(())
}
