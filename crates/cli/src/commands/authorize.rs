//! The browser step of an `oauth2_code` connection (R4): print the authorization URL, open the
//! browser, and wait until the connection is active, the authorization failed, the user cancels
//! (Ctrl-C) or the time is up.

use super::Interrupts;
use crate::client::Failure;
use crate::output::{self, text};
use crate::Ctx;
use clap::Args;
use serde_json::Value;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;
use tokio::time::Instant;

const POLL_EVERY: Duration = Duration::from_secs(1);
/// The exit status after Ctrl-C, as shells report a process ended by SIGINT.
const CANCELLED: u8 = 130;
/// How the server words a failed browser step in `status_reason`.
const FAILED_PREFIX: &str = "authorization failed";

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Print the authorization URL without opening a browser.
    #[arg(long)]
    pub no_browser: bool,
    /// Return once the authorization URL is printed instead of waiting for the login.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for the browser authorization, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 600,
        value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: u64,
}

/// What Ctrl-C does while waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnCancel {
    /// The connection was created by this command: cancelling leaves nothing behind.
    Delete,
    /// An existing connection: it stays as it is.
    Keep,
}

/// One authorization to follow: the server's answer and the connection it is about.
pub struct Pending<'a> {
    pub workspace: &'a str,
    /// The connection as the answer shows it (before the browser step).
    pub connection: &'a Value,
    pub authorize_url: &'a str,
    /// What `--json --no-wait` prints: the server's whole answer.
    pub answer: &'a Value,
    pub on_cancel: OnCancel,
}

/// Prints the URL, opens the browser and waits (unless told not to), and reports the outcome.
pub async fn follow(ctx: &Ctx, p: Pending<'_>, wait: &WaitArgs) -> anyhow::Result<ExitCode> {
    // Listening before the URL is printed: a Ctrl-C from then on cancels cleanly.
    let mut interrupts = Interrupts::listen();
    let name = text(p.connection, "name");
    let target = format!("{}/{name}", p.workspace);
    if ctx.json && wait.no_wait {
        if !wait.no_browser {
            open_browser(p.authorize_url);
        }
        output::json(p.answer);
        return Ok(ExitCode::SUCCESS);
    }
    let intro = format!("Open this URL in a browser to authorize `{name}`:");
    if ctx.json {
        eprintln!("{intro}\n{}", p.authorize_url);
    } else {
        output::line(intro);
        output::line(p.authorize_url);
    }
    if !wait.no_browser {
        open_browser(p.authorize_url);
    }
    if wait.no_wait {
        output::line(format!(
            "Not waiting: the connection becomes active once you log in (the link works once, \
             for 10 minutes). `latchkey connection show {target}` shows its status; \
             `latchkey connection authorize {target}` gives a new link."
        ));
        return Ok(ExitCode::SUCCESS);
    }

    let id = text(p.connection, "id");
    let path = ["v1", "workspaces", p.workspace, "connections", id.as_str()];
    let start = Start::of(p.connection);
    let deadline = Instant::now() + Duration::from_secs(wait.timeout);
    let watched = async {
        tokio::select! {
            o = poll(ctx, &path, &start, deadline) => o,
            () = interrupts.next() => Outcome::Cancelled,
        }
    };
    let message = format!("Waiting for `{name}` to be authorized in the browser (Ctrl-C cancels)");
    let outcome = output::waiting(ctx.spinner_allowed(), message, watched).await;
    let resume = format!("latchkey connection authorize {target}");
    match outcome {
        Outcome::Active(conn) => {
            if ctx.json {
                output::json(&conn);
            } else {
                let who = conn
                    .get("authorization")
                    .map(|a| text(a, "username"))
                    .filter(|u| !u.is_empty())
                    .map(|u| format!(" as {u}"))
                    .unwrap_or_default();
                output::line(format!("Connection `{name}` is active{who}."));
            }
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Failed(conn) => {
            if ctx.json {
                output::json(&conn);
            }
            let reason = text(&conn, "status_reason");
            let reason = reason
                .strip_prefix(FAILED_PREFIX)
                .map(|r| r.trim_start_matches([':', ' ']))
                .unwrap_or(&reason);
            let hint = match text(&conn, "hint") {
                h if h.is_empty() => format!("try again with `{resume}`"),
                h => format!("{h}; then try again with `{resume}`"),
            };
            Err(Failure::new(format!(
                "connection `{name}` was not authorized: {}",
                output::one_line(reason)
            ))
            .with_hint(hint)
            .into())
        }
        Outcome::Gone => Err(Failure::new(format!(
            "connection `{target}` was deleted while waiting for its authorization"
        ))
        .into()),
        Outcome::Error(f) => Err(f.into()),
        Outcome::TimedOut(last) => {
            if ctx.json {
                output::json(last.as_ref().unwrap_or(p.connection));
            }
            Err(Failure::new(format!(
                "the authorization of `{target}` did not finish within {} s",
                wait.timeout
            ))
            .with_hint(format!(
                "the connection is kept; when you are ready, run `{resume}` for a new link"
            ))
            .into())
        }
        Outcome::Cancelled => {
            cancel(ctx, &path, &target, p.on_cancel).await;
            Ok(ExitCode::from(CANCELLED))
        }
    }
}

async fn cancel(ctx: &Ctx, path: &[&str], target: &str, on_cancel: OnCancel) {
    match on_cancel {
        OnCancel::Keep => eprintln!(
            "Cancelled: stopped waiting; `{target}` is unchanged (the link stays valid for 10 minutes)."
        ),
        OnCancel::Delete => match ctx.client.delete(path, &[]).await {
            Ok(_) => eprintln!("Cancelled: the pending connection `{target}` was deleted."),
            Err(f) if f.code.as_deref() == Some("not_found") => {
                eprintln!("Cancelled: the pending connection `{target}` is gone.")
            }
            Err(f) => {
                eprintln!(
                    "error: cancelled, but the pending connection could not be deleted: {}",
                    output::one_line(&f.message)
                );
                eprintln!("hint: delete it with `latchkey connection delete {target}`");
            }
        },
    }
}

enum Outcome {
    Active(Value),
    Failed(Value),
    Gone,
    Error(Failure),
    /// With the connection as last seen.
    TimedOut(Option<Value>),
    Cancelled,
}

/// Reads the connection every second until the browser step ends one way or another.
async fn poll(ctx: &Ctx, path: &[&str], start: &Start, deadline: Instant) -> Outcome {
    let mut last = None;
    loop {
        let read = async {
            tokio::time::sleep(POLL_EVERY).await;
            ctx.client.get(path, &[]).await
        };
        match tokio::time::timeout_at(deadline, read).await {
            Err(_) => return Outcome::TimedOut(last),
            Ok(Ok(now)) => match start.progress(&now) {
                Progress::Active => return Outcome::Active(now),
                Progress::Failed => return Outcome::Failed(now),
                Progress::Waiting => last = Some(now),
            },
            Ok(Err(f)) if f.code.as_deref() == Some("not_found") => return Outcome::Gone,
            // The server did not answer this time (restarting, a blip): ask again.
            Ok(Err(f)) if f.code.is_none() => {}
            Ok(Err(f)) => return Outcome::Error(f),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Progress {
    Waiting,
    Active,
    Failed,
}

/// The connection before the browser step, to tell a new outcome from an old state: an
/// already active connection (re-authorized) is done when it was verified again, and a reason
/// from an earlier failed attempt is not this attempt's failure.
struct Start {
    status: String,
    version: Option<i64>,
    verified_at: Value,
    reason: Value,
}

impl Start {
    fn of(conn: &Value) -> Self {
        Self {
            status: text(conn, "status"),
            version: conn.get("version").and_then(Value::as_i64),
            verified_at: conn.get("verified_at").cloned().unwrap_or(Value::Null),
            reason: conn.get("status_reason").cloned().unwrap_or(Value::Null),
        }
    }

    fn progress(&self, now: &Value) -> Progress {
        let status = text(now, "status");
        let verified_at = now.get("verified_at").unwrap_or(&Value::Null);
        if status == "active" && (self.status != "active" || *verified_at != self.verified_at) {
            return Progress::Active;
        }
        let reason_value = now.get("status_reason").unwrap_or(&Value::Null);
        let changed = now.get("version").and_then(Value::as_i64) != self.version
            || *reason_value != self.reason;
        let reason = text(now, "status_reason").to_ascii_lowercase();
        let failed = reason.starts_with(FAILED_PREFIX) || reason.contains("access_denied");
        if status != "active" && changed && failed {
            return Progress::Failed;
        }
        Progress::Waiting
    }
}

/// Opens `url` in the user's browser with the system's opener; a failure is only reported.
pub(crate) fn open_browser(url: &str) {
    let (program, mut cmd) = opener(url);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match cmd.spawn() {
        Ok(mut child) => {
            // Reaped on a thread so that the wait goes on; a failure is worth a note.
            std::thread::spawn(move || {
                if let Ok(status) = child.wait() {
                    if !status.success() {
                        eprintln!("note: could not open a browser ({program} {status}); open the URL above yourself");
                    }
                }
            });
        }
        Err(e) => {
            eprintln!(
                "note: could not open a browser ({program}: {e}); open the URL above yourself"
            )
        }
    }
}

#[cfg(target_os = "macos")]
fn opener(url: &str) -> (&'static str, Command) {
    let mut c = Command::new("open");
    c.arg(url);
    ("open", c)
}

#[cfg(windows)]
fn opener(url: &str) -> (&'static str, Command) {
    // `start` is a cmd built-in; `^` keeps cmd from reading `&` in the query as a separator.
    let mut c = Command::new("cmd");
    c.args(["/c", "start", ""]).arg(url.replace('&', "^&"));
    ("cmd /c start", c)
}

#[cfg(not(any(target_os = "macos", windows)))]
fn opener(url: &str) -> (&'static str, Command) {
    let mut c = Command::new("xdg-open");
    c.arg(url);
    ("xdg-open", c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pending_connection_is_done_when_active_or_newly_failed() {
        let pending = json!({"status": "pending_authorization", "version": 1, "verified_at": null,
            "status_reason": "waiting for the browser authorization"});
        let start = Start::of(&pending);
        assert_eq!(start.progress(&pending), Progress::Waiting);
        let active = json!({"status": "active", "version": 2, "verified_at": "2025-01-01T00:00:00Z", "status_reason": null});
        assert_eq!(start.progress(&active), Progress::Active);
        let denied = json!({"status": "pending_authorization", "version": 2, "verified_at": null,
            "status_reason": "authorization failed: the provider answered access_denied"});
        assert_eq!(start.progress(&denied), Progress::Failed);
        // An earlier attempt's failure is not this attempt's outcome.
        assert_eq!(Start::of(&denied).progress(&denied), Progress::Waiting);
    }

    #[test]
    fn an_active_connection_is_done_when_verified_again() {
        let active =
            json!({"status": "active", "version": 4, "verified_at": "2025-01-01T00:00:00Z"});
        let start = Start::of(&active);
        let refreshed =
            json!({"status": "active", "version": 5, "verified_at": "2025-01-01T00:00:00Z"});
        assert_eq!(start.progress(&refreshed), Progress::Waiting);
        let again =
            json!({"status": "active", "version": 6, "verified_at": "2025-01-02T00:00:00Z"});
        assert_eq!(start.progress(&again), Progress::Active);
    }
}
