//! Child processes: a guard that kills its child when dropped (also on an error or a panic),
//! the `latchkey` release binary (found next to this binary, built when missing or stale), and
//! this binary's own hidden server subcommands (the bare reference server and the upstream).

use anyhow::{bail, Context};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a child may take to say where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A child process that is killed (and reaped) when the guard is dropped.
pub struct ChildGuard {
    child: Child,
    name: String,
}

impl ChildGuard {
    pub fn new(child: Child, name: &str) -> Self {
        ChildGuard {
            child,
            name: name.to_string(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the child has already ended.
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the child now and waits for it.
    pub fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if let Err(e) = self.child.kill() {
                eprintln!("could not kill {} ({}): {e}", self.name, self.child.id());
            }
        }
        let _ = self.child.wait();
    }

    /// Waits at most `limit` for the child to end by itself, then kills it.
    pub fn wait_or_kill(&mut self, limit: Duration) {
        let end = std::time::Instant::now() + limit;
        while std::time::Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Spawns `cmd` with stdout piped, and waits until it prints a line starting with `marker`;
/// answers the rest of that line. The remaining output is drained by a thread.
pub async fn spawn_announcing(
    mut cmd: Command,
    name: &str,
    marker: &str,
) -> anyhow::Result<(ChildGuard, String)> {
    cmd.stdout(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {name}"))?;
    let stdout = child.stdout.take().context("child stdout")?;
    let guard = ChildGuard::new(child, name);
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    let marker = marker.to_string();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.trim().strip_prefix(&marker) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(rest.trim().to_string());
                }
            }
        }
    });
    match tokio::time::timeout(START_TIMEOUT, rx).await {
        Ok(Ok(rest)) => Ok((guard, rest)),
        Ok(Err(_)) => bail!("{name} exited before announcing its address"),
        Err(_) => bail!("{name} did not announce its address within {START_TIMEOUT:?}"),
    }
}

/// The workspace root (this crate is `crates/bench`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `latchkey` release binary. Under `cargo run` (the `CARGO` variable is set) it is built
/// with `cargo build --release -p latchkey-cli` first, a no-op when it is up to date; when that
/// build fails (someone mid-edit) an existing binary is used with a warning.
pub fn latchkey_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("where this binary is")?;
    let mut dir = exe.parent().context("binary folder")?.to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let release = if dir.ends_with("release") {
        dir.clone()
    } else {
        dir.parent()
            .map(|p| p.join("release"))
            .unwrap_or_else(|| dir.clone())
    };
    let bin = release.join("latchkey");
    let cargo = std::env::var_os("CARGO");
    if cargo.is_some() || !bin.exists() {
        let cargo = cargo.unwrap_or_else(|| "cargo".into());
        eprintln!("building the latchkey release binary (cargo build --release -p latchkey-cli)…");
        let status = Command::new(cargo)
            .args(["build", "--release", "-p", "latchkey-cli"])
            .current_dir(workspace_root())
            .status();
        match status {
            Ok(s) if s.success() => {}
            other if bin.exists() => eprintln!(
                "warning: the build failed ({other:?}); measuring the existing {}",
                bin.display()
            ),
            other => bail!("cannot build latchkey-cli: {other:?}"),
        }
    }
    if !bin.exists() {
        bail!(
            "{} is missing after the build (is CARGO_TARGET_DIR elsewhere?)",
            bin.display()
        );
    }
    Ok(bin)
}

/// A command for one of this binary's hidden server subcommands. Its stdin is a pipe the child
/// watches: when this process goes away, the child ends too.
pub fn self_command(args: &[&str]) -> anyhow::Result<Command> {
    let exe = std::env::current_exe().context("where this binary is")?;
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stderr(Stdio::inherit());
    Ok(cmd)
}

/// In a child server: ends the process once stdin is closed (the parent is gone).
pub fn exit_when_parent_goes() {
    std::thread::spawn(|| {
        let mut sink = String::new();
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        for _ in 0..1_000_000 {
            sink.clear();
            match lock.read_line(&mut sink) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        std::process::exit(0);
    });
}

/// A free loopback port (bound, then released: a small race that is acceptable here).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Starts `perf record --call-graph dwarf` on `pid` for `secs` seconds, writing `out` (and `out.log`); `None`
/// (saying why) when perf cannot start.
pub fn perf_record(pid: u32, out: &Path, secs: f64) -> Option<ChildGuard> {
    let log = std::fs::File::create(out.with_extension("log")).ok()?;
    let child = Command::new("perf")
        .args([
            "record",
            "-F",
            "499",
            "--call-graph",
            "dwarf,16384",
            "-p",
            &pid.to_string(),
            "-o",
        ])
        .arg(out)
        .args(["--", "sleep", &format!("{secs:.1}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn();
    match child {
        Ok(c) => Some(ChildGuard::new(c, "perf")),
        Err(e) => {
            eprintln!("perf record could not start: {e}");
            None
        }
    }
}
