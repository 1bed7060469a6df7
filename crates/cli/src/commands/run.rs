//! `latchkey run`: runs a command with fresh secrets in its environment (R15). Every value is
//! fetched before the command starts; none is ever printed. A private key is given as a file
//! (`CONN.private_key_file`), removed when the command ends.

use super::run_derived::{self, KeyFiles, KEY_FILE_FIELD, URL_FIELD};
use super::{cli_hint, Interrupts, Ref};
use crate::client::Failure;
use crate::output::text;
use crate::Ctx;
use clap::Args;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::ffi::OsString;
use std::process::{ExitCode, ExitStatus};

/// Fields of the token answer an OAuth connection's `<conn>.field` may name.
const TOKEN_FIELDS: [&str; 5] = [
    "access_token",
    "token_type",
    "expires_at",
    "instance_url",
    "scope",
];
/// What a shell answers when a command cannot be run.
const CANNOT_RUN: u8 = 127;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The workspace (slug) whose connections the variables name.
    #[arg(long, short = 'w')]
    workspace: String,
    /// VAR=CONNECTION[.FIELD] (repeatable). A connection alone gives its access token (OAuth,
    /// service account, token exchange)
    /// or its only secret field (an API key); .FIELD picks a credential field (password, host,
    /// …) or, for OAuth, a token field (access_token, instance_url, expires_at, scope).
    /// .private_key_file gives the path of a file (mode 0600, in a private directory removed
    /// when the command ends) holding the connection's private key: the way an SFTP key is
    /// given. .url gives a Redis connection's URL (redis:// or rediss://).
    #[arg(long = "env", value_name = "VAR=CONNECTION[.FIELD]", value_parser = parse_env, required = true)]
    env: Vec<EnvSpec>,
    /// The command to run and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

#[derive(Debug, Clone)]
pub struct EnvSpec {
    var: String,
    reference: String,
}

impl EnvSpec {
    /// How error messages name this variable.
    fn label(&self) -> String {
        format!("--env {}={}", self.var, self.reference)
    }
}

fn parse_env(s: &str) -> Result<EnvSpec, String> {
    let usage =
        "expected VAR=CONNECTION[.FIELD], like SF_TOKEN=sf-prod or PG_PASSWORD=warehouse.password";
    let (var, reference) = s.split_once('=').ok_or(usage)?;
    let var = var.trim();
    let well_formed = var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && var.chars().next().is_some_and(|c| !c.is_ascii_digit());
    if !well_formed {
        return Err(format!(
            "`{var}` is not a variable name (letters, digits and _, not starting with a digit)"
        ));
    }
    let reference = reference.trim();
    if reference.is_empty() {
        return Err(usage.to_string());
    }
    Ok(EnvSpec {
        var: var.to_string(),
        reference: reference.to_string(),
    })
}

pub async fn run(ctx: &Ctx, a: RunArgs) -> anyhow::Result<ExitCode> {
    let mut resolver = Resolver::new(ctx, &a.workspace);
    let vars = resolver.all(&a.env).await?;
    // Key files live until the command has ended (dropped, and so removed, when this returns).
    let mut files = std::mem::take(&mut resolver.files);
    let (program, args) = a.command.split_first().expect("clap requires the command");
    // Installed before the command starts: Ctrl-C reaches it, and this process waits for it.
    let mut interrupts = Interrupts::listen();
    let mut stop = Stop::listen();
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).envs(vars);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot run `{}`: {e}", program.to_string_lossy());
            if e.kind() == std::io::ErrorKind::NotFound {
                eprintln!("hint: check the command's name, or give its full path");
            }
            return Ok(ExitCode::from(CANNOT_RUN));
        }
    };
    let status = loop {
        tokio::select! {
            s = child.wait() => break s?,
            () = interrupts.next() => {}
            sig = stop.next() => {
                // Asked to stop (SIGTERM, SIGHUP): the key files go first, then the command.
                files.remove();
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Ok(ExitCode::from(u8::try_from(128 + sig).unwrap_or(1)));
            }
        }
    };
    files.remove();
    Ok(exit_code(status))
}

/// SIGTERM and SIGHUP as events, so that key files are removed before this process ends.
struct Stop {
    #[cfg(unix)]
    signals: Vec<(i32, tokio::signal::unix::Signal)>,
}

impl Stop {
    fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let signals = [(15, SignalKind::terminate()), (1, SignalKind::hangup())]
                .into_iter()
                .filter_map(|(n, k)| signal(k).ok().map(|s| (n, s)))
                .collect();
            Self { signals }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Resolves with the signal's number when one arrives.
    async fn next(&mut self) -> i32 {
        #[cfg(unix)]
        {
            if self.signals.is_empty() {
                return std::future::pending().await;
            }
            let waits = self.signals.iter_mut().map(|(n, s)| {
                let n = *n;
                Box::pin(async move {
                    s.recv().await;
                    n
                })
            });
            futures::future::select_all(waits).await.0
        }
        #[cfg(not(unix))]
        std::future::pending().await
    }
}

/// The command's exit code, or 128 + the signal that ended it (as shells report it).
fn exit_code(status: ExitStatus) -> ExitCode {
    if let Some(code) = status.code() {
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return ExitCode::from(u8::try_from(128 + sig).unwrap_or(1));
        }
    }
    ExitCode::FAILURE
}

/// Fetches what the variables name, each connection, token and credential once.
struct Resolver<'a> {
    ctx: &'a Ctx,
    workspace: &'a str,
    connections: HashMap<String, Option<Value>>,
    tokens: HashMap<String, Value>,
    credentials: HashMap<String, Map<String, Value>>,
    files: KeyFiles,
}

impl<'a> Resolver<'a> {
    fn new(ctx: &'a Ctx, workspace: &'a str) -> Self {
        Self {
            ctx,
            workspace,
            connections: HashMap::new(),
            tokens: HashMap::new(),
            credentials: HashMap::new(),
            files: KeyFiles::default(),
        }
    }

    async fn all(&mut self, specs: &[EnvSpec]) -> anyhow::Result<Vec<(String, String)>> {
        let mut out = Vec::with_capacity(specs.len());
        for spec in specs {
            let value = self.value(spec).await.map_err(|f| Failure {
                message: format!("{}: {}", spec.label(), f.message),
                ..f
            })?;
            if value.contains('\0') {
                return Err(Failure::new(format!(
                    "{}: the value contains a NUL byte, which an environment variable cannot hold",
                    spec.label()
                ))
                .into());
            }
            out.push((spec.var.clone(), value));
        }
        Ok(out)
    }

    async fn value(&mut self, spec: &EnvSpec) -> Result<String, Failure> {
        let (conn, field) = self.connection(&spec.reference).await?;
        let name = text(&conn, "name");
        let target = Ref {
            workspace: self.workspace.to_string(),
            name: name.clone(),
        };
        // Connections with a token: OAuth, service accounts and token exchanges.
        let mode = text(&conn, "auth_mode");
        let oauth =
            mode.starts_with("oauth2") || mode == "service_account" || mode == "token_exchange";
        if oauth && field.as_deref().is_none_or(|f| TOKEN_FIELDS.contains(&f)) {
            let field = field.as_deref().unwrap_or("access_token");
            let token = self
                .token(&name)
                .await
                .map_err(|f| cli_hint(f, &target, None))?;
            return present(token.get(field)).ok_or_else(|| {
                Failure::new(format!("the token of `{name}` has no {field}"))
                    .with_hint("instance_url is only there for applications that answer one (Salesforce); expires_at only when the provider says when the token expires")
            });
        }
        let creds = self
            .credentials(&name)
            .await
            .map_err(|f| cli_hint(f, &target, None))?;
        if let Some(v) = self.derived(&conn, &name, field.as_deref(), &creds)? {
            return Ok(v);
        }
        let fields: Vec<&str> = creds.keys().map(String::as_str).collect();
        let listed = if fields.is_empty() {
            "none".to_string()
        } else {
            fields.join(", ")
        };
        match field {
            None if creds.len() == 1 => Ok(present(creds.values().next()).unwrap_or_default()),
            None => Err(Failure::new(format!(
                "connection `{name}` has {} secret fields; say which one",
                creds.len()
            ))
            .with_hint(format!(
                "write {}.FIELD, with FIELD one of: {listed}",
                spec.reference
            ))),
            Some(f) => present(creds.get(&f)).ok_or_else(|| {
                let mut known = listed.clone();
                if oauth {
                    known = format!("{known}; token fields: {}", TOKEN_FIELDS.join(", "));
                }
                Failure::new(format!("connection `{name}` has no field `{f}`"))
                    .with_hint(format!("its fields: {known}"))
            }),
        }
    }

    /// A value made from the fields (`private_key_file`, a Redis `url`), or `None` for a field
    /// passed as it is. An SFTP connection's key is only ever given as a file.
    fn derived(
        &mut self,
        conn: &Value,
        name: &str,
        field: Option<&str>,
        creds: &Map<String, Value>,
    ) -> Result<Option<String>, Failure> {
        let sftp = text(conn, "auth_mode") == "sftp";
        match field {
            Some(KEY_FILE_FIELD) if !creds.contains_key(KEY_FILE_FIELD) => {
                let key = present(creds.get("private_key")).ok_or_else(|| {
                    Failure::new(format!("connection `{name}` has no private key"))
                        .with_hint("give it one (credentials.private_key), or use its password")
                })?;
                self.files.file_for(name, &key).map(Some)
            }
            Some("private_key") if sftp => Err(Failure::new(format!(
                "the private key of `{name}` is given to commands as a file, not as a value"
            ))
            .with_hint(format!(
                "write {name}.{KEY_FILE_FIELD}: the variable then holds the path of a file (mode 0600) that is removed when the command ends"
            ))),
            Some(URL_FIELD) if text(conn, "app") == "redis" && !creds.contains_key(URL_FIELD) => {
                run_derived::redis_url(conn, creds).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// `name` as a whole names a connection, else `conn.field` (split on the last dot, since
    /// connection names may contain dots).
    async fn connection(&mut self, reference: &str) -> Result<(Value, Option<String>), Failure> {
        let whole = self.lookup(reference).await?;
        if let Ok(conn) = whole {
            return Ok((conn, None));
        }
        let mut missing = whole.err();
        if let Some((conn, field)) = reference.rsplit_once('.') {
            if !conn.is_empty() && !field.is_empty() {
                match self.lookup(conn).await? {
                    Ok(c) => return Ok((c, Some(field.to_string()))),
                    Err(f) => missing = missing.or(Some(f)),
                }
            }
        }
        let ws = self.workspace;
        Err(match missing {
            Some(f) if f.message.starts_with("workspace") => f,
            _ => Failure::new(format!(
                "there is no connection `{reference}` in workspace `{ws}`"
            ))
            .with_hint(format!(
                "`latchkey connection list --workspace {ws}` lists them"
            )),
        })
    }

    /// A connection by name: `Ok(Err(not found))` when the server says there is none.
    async fn lookup(&mut self, name: &str) -> Result<Result<Value, Failure>, Failure> {
        if let Some(Some(c)) = self.connections.get(name) {
            return Ok(Ok(c.clone()));
        }
        let path = ["v1", "workspaces", self.workspace, "connections", name];
        match self.ctx.client.get(&path, &[]).await {
            Ok(c) => {
                self.connections.insert(name.to_string(), Some(c.clone()));
                Ok(Ok(c))
            }
            Err(f) if f.code.as_deref() == Some("not_found") => Ok(Err(f)),
            Err(f) => Err(f),
        }
    }

    async fn token(&mut self, name: &str) -> Result<Value, Failure> {
        if let Some(t) = self.tokens.get(name) {
            return Ok(t.clone());
        }
        let path = [
            "v1",
            "workspaces",
            self.workspace,
            "connections",
            name,
            "token",
        ];
        let t = self.ctx.client.get(&path, &[]).await?;
        self.tokens.insert(name.to_string(), t.clone());
        Ok(t)
    }

    async fn credentials(&mut self, name: &str) -> Result<Map<String, Value>, Failure> {
        if let Some(c) = self.credentials.get(name) {
            return Ok(c.clone());
        }
        let path = [
            "v1",
            "workspaces",
            self.workspace,
            "connections",
            name,
            "credentials",
        ];
        let answer = self.ctx.client.get(&path, &[]).await?;
        let creds = answer
            .get("credentials")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        self.credentials.insert(name.to_string(), creds.clone());
        Ok(creds)
    }
}

/// A value as the text of a variable; absent or `null` is missing.
fn present(v: Option<&Value>) -> Option<String> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_names_and_references_are_not_empty() {
        let s = parse_env("PG_PASSWORD=warehouse.password").unwrap();
        assert_eq!(
            (s.var.as_str(), s.reference.as_str()),
            ("PG_PASSWORD", "warehouse.password")
        );
        let s = parse_env("T=a=b").unwrap();
        assert_eq!(s.reference, "a=b");
        for bad in ["NOEQUALS", "=conn", "1X=conn", "A-B=conn", "X=", "X= "] {
            assert!(parse_env(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_become_text() {
        assert_eq!(present(Some(&Value::from(5432))).as_deref(), Some("5432"));
        assert_eq!(present(Some(&Value::from("pw"))).as_deref(), Some("pw"));
        assert_eq!(present(Some(&Value::Null)), None);
        assert_eq!(present(None), None);
    }
}
