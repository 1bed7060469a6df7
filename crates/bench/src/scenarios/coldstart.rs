//! Figure 7: cold start on SQLite, the time from spawning `latchkey serve` to its first
//! successful `/healthz`, ten times (median, min, max): on a store that already exists (a
//! restart), and on an empty data folder (the first start: master key, migrations, admin key).
//! The reference is the bare axum server (a child process of this binary) started the same way.

use crate::children::{self, ChildGuard};
use crate::report::{Row, Table, Target, Unit};
use crate::setup::latchkey_command;
use anyhow::{bail, Context};
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FIG: &str = "7 cold start";
const STARTS: usize = 10;
const LIMIT: Duration = Duration::from_secs(20);

/// One GET of `/healthz`: `true` on a 200.
async fn healthy(addr: &str) -> bool {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let req = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 32];
    let mut n = 0;
    while n < 12 {
        match s.read(&mut buf[n..]).await {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    buf[..n].starts_with(b"HTTP/1.1 200")
}

/// Spawns `cmd` and polls `/healthz` every millisecond; answers the time to the first 200.
async fn time_to_healthy(
    mut cmd: Command,
    addr: &str,
    name: &str,
) -> anyhow::Result<(Duration, ChildGuard)> {
    let t0 = Instant::now();
    let mut guard = ChildGuard::new(
        cmd.spawn().with_context(|| format!("starting {name}"))?,
        name,
    );
    loop {
        if healthy(addr).await {
            return Ok((t0.elapsed(), guard));
        }
        if t0.elapsed() > LIMIT {
            guard.stop();
            bail!("{name} was not healthy within {LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

pub async fn run(bin: &std::path::Path, table: &mut Table) -> anyhow::Result<()> {
    let (mut restart, mut first, mut reference) = (Vec::new(), Vec::new(), Vec::new());
    let kept = tempfile::tempdir()?;
    for i in 0..STARTS {
        // First start, on an empty folder.
        let fresh = tempfile::tempdir()?;
        let port = children::free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = latchkey_command(bin, fresh.path(), &addr, &[]);
        cmd.stdout(std::process::Stdio::null());
        let (d, mut g) = time_to_healthy(cmd, &addr, "latchkey (first start)").await?;
        g.stop();
        first.push(d.as_secs_f64() * 1000.0);

        // Restart on a store that exists.
        let port = children::free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = latchkey_command(bin, kept.path(), &addr, &[]);
        cmd.stdout(std::process::Stdio::null());
        let (d, mut g) = time_to_healthy(cmd, &addr, "latchkey").await?;
        g.stop();
        // The first start of `kept` is a first start too: only restarts count.
        if i > 0 {
            restart.push(d.as_secs_f64() * 1000.0);
        }

        let port = children::free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = children::self_command(&["serve-reference", "--listen", &addr])?;
        cmd.stdout(std::process::Stdio::null());
        let (d, mut g) = time_to_healthy(cmd, &addr, "reference server").await?;
        g.stop();
        reference.push(d.as_secs_f64() * 1000.0);
    }
    // One more restart so that there are ten.
    let port = children::free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = latchkey_command(bin, kept.path(), &addr, &[]);
    cmd.stdout(std::process::Stdio::null());
    let (d, mut g) = time_to_healthy(cmd, &addr, "latchkey").await?;
    g.stop();
    restart.push(d.as_secs_f64() * 1000.0);
    eprintln!("  cold start: restarts {restart:.1?} ms; first starts {first:.1?} ms; reference {reference:.1?} ms");

    table.push(
        Row::new(
            FIG,
            "SQLite, existing store",
            "start to /healthz",
            Unit::Ms,
            restart,
        )
        .reference("bare axum", reference.clone())
        .target(Target::Below(200.0)),
    );
    table.push(
        Row::new(
            FIG,
            "SQLite, empty data folder",
            "start to /healthz",
            Unit::Ms,
            first,
        )
        .reference("bare axum", reference)
        .target(Target::Below(200.0)),
    );
    Ok(())
}
