//! One module per command group; each holds its clap definitions and what they do.

pub mod app;
pub mod authorize;
pub mod connect_session;
pub mod connection;
pub mod events;
pub mod flow;
pub mod key;
pub mod master_key;
pub mod oauth_client;
pub mod proxy;
pub mod run;
mod run_derived;
pub mod token;
pub mod user;
pub mod webhook;
pub mod workspace;

use crate::client::Failure;
use serde_json::Value;
use std::io::{IsTerminal, Read};

/// `<workspace>/<name>`: split on the first `/` (names cannot contain one, slugs neither).
#[derive(Debug, Clone)]
pub struct Ref {
    pub workspace: String,
    pub name: String,
}

impl std::fmt::Display for Ref {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.workspace, self.name)
    }
}

pub fn parse_ref(s: &str) -> Result<Ref, String> {
    match s.split_once('/') {
        Some((ws, name)) if !ws.trim().is_empty() && !name.trim().is_empty() => Ok(Ref {
            workspace: ws.to_string(),
            name: name.to_string(),
        }),
        _ => Err(format!(
            "`{s}` should be WORKSPACE/NAME, like acme/orders-api"
        )),
    }
}

/// The server's hints name API paths; on the command line the command that does it reads
/// better. `app` is the application when the caller knows it.
pub fn cli_hint(mut f: Failure, target: &Ref, app: Option<&str>) -> Failure {
    let Some(hint) = f.hint.as_deref() else {
        return f;
    };
    let (ws, name) = (&target.workspace, &target.name);
    let better = if hint.contains("…/authorize") {
        format!("authorize it in a browser with `latchkey connection authorize {target}`")
    } else if hint.contains("…/verify") {
        format!("check it with `latchkey connection verify {target}`")
    } else if hint.contains("…/credentials") {
        format!(
            "read its secret fields with `latchkey connection credentials {target}`, or hand them \
             to a command with `latchkey run --workspace {ws} --env VAR={name}.FIELD -- …`"
        )
    } else if hint.contains("/oauth-client") {
        format!(
            "set the workspace's client with `latchkey oauth-client set {ws} {} --client-id ID \
             --client-secret-stdin`, or give `--secret client_id=ID --secret-stdin client_secret` \
             on the connection",
            app.unwrap_or("APP")
        )
    } else {
        return f;
    };
    f.hint = Some(better);
    f
}

/// `key=value` with the value taken as JSON when it is a number, boolean, array or object
/// (`concurrency_level=3`, `pkce=false`, `scopes=["api"]`), as text otherwise.
pub fn parse_setting(s: &str) -> Result<(String, Value), String> {
    let (k, v) = split_pair(s)?;
    let value = match serde_json::from_str::<Value>(&v) {
        Ok(j @ (Value::Number(_) | Value::Bool(_) | Value::Array(_) | Value::Object(_))) => j,
        _ => Value::String(v),
    };
    Ok((k, value))
}

/// `key=value` with the value always text (credential fields are strings).
pub fn parse_secret(s: &str) -> Result<(String, String), String> {
    split_pair(s)
}

/// The whole of stdin when piped; one line when typed (the terminal echoes it, so piping from a
/// file or a password manager is better). `flag` names the option in the error.
pub fn read_stdin_value(prompt: &str, flag: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let mut value = String::new();
    if stdin.is_terminal() {
        eprint!("{prompt}: ");
        stdin.read_line(&mut value)?;
    } else {
        stdin.lock().read_to_string(&mut value)?;
    }
    let value = value
        .strip_suffix('\n')
        .map(|v| v.strip_suffix('\r').unwrap_or(v))
        .unwrap_or(&value)
        .to_string();
    if value.is_empty() {
        return Err(Failure::new(format!("{flag}: nothing was read from stdin"))
            .with_hint(format!(
                "pipe the value in, e.g. `pass show my/secret | latchkey … {flag}`"
            ))
            .into());
    }
    Ok(value)
}

/// Ctrl-C (SIGINT) as events: once listening, it no longer ends this process. Listening starts
/// when this is made, so that no interrupt slips by in between.
pub struct Interrupts {
    #[cfg(unix)]
    sigint: Option<tokio::signal::unix::Signal>,
}

impl Interrupts {
    pub fn listen() -> Self {
        Self {
            #[cfg(unix)]
            sigint: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok(),
        }
    }

    /// Resolves at each interrupt; never when none can be received.
    pub async fn next(&mut self) {
        #[cfg(unix)]
        let got = match &mut self.sigint {
            Some(s) => s.recv().await.is_some(),
            None => false,
        };
        #[cfg(not(unix))]
        let got = tokio::signal::ctrl_c().await.is_ok();
        if !got {
            std::future::pending::<()>().await;
        }
    }
}

fn split_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err("expected KEY=VALUE".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_split_on_the_first_slash() {
        let r = parse_ref("acme/my conn").unwrap();
        assert_eq!((r.workspace.as_str(), r.name.as_str()), ("acme", "my conn"));
        let r = parse_ref("acme/a/b").unwrap();
        assert_eq!(r.name, "a/b");
        assert!(parse_ref("acme").is_err());
        assert!(parse_ref("/x").is_err());
        assert!(parse_ref("acme/").is_err());
    }

    #[test]
    fn settings_values_are_json_when_they_look_like_it() {
        assert_eq!(parse_setting("concurrency_level=3").unwrap().1, json!(3));
        assert_eq!(parse_setting("pkce=false").unwrap().1, json!(false));
        assert_eq!(parse_setting("scopes=[\"api\"]").unwrap().1, json!(["api"]));
        assert_eq!(
            parse_setting("base_url=http://x/y=1").unwrap(),
            ("base_url".into(), json!("http://x/y=1"))
        );
        assert_eq!(parse_setting("name=null").unwrap().1, json!("null"));
        assert_eq!(
            parse_setting("api_key_prefix=Bearer ").unwrap().1,
            json!("Bearer ")
        );
        assert_eq!(parse_setting("empty=").unwrap().1, json!(""));
        assert!(parse_setting("novalue").is_err());
        assert!(parse_setting("=x").is_err());
    }
}
