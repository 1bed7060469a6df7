//! The nginx reference of the proxy figure: Debian's nginx as a plain `proxy_pass` reverse proxy
//! to the same upstream, with the same API key injected, what a well-tuned general-purpose proxy
//! does on this machine. Installed with `apt-get` when missing (Debian's `nginx-light`, else
//! `nginx`), started as a child process (`daemon off`, `master_process off`, one worker) with a
//! configuration generated in a temporary folder that also holds its pid file, logs and temp
//! paths, listening on a free loopback port; killed by its guard.

use crate::children::{self, ChildGuard};
use crate::servers::UPSTREAM_KEY;
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A running nginx: its URL (`{url}/proxy/{path}` goes to `upstream/{path}`).
pub struct Nginx {
    pub url: String,
    _child: ChildGuard,
    _dir: tempfile::TempDir,
}

/// Where the nginx binary is, if it is there.
fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
}

fn apt_get(args: &[&str]) -> bool {
    Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The nginx binary, installed from Debian's packages when missing.
pub fn binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = find() {
        return Ok(p);
    }
    eprintln!("nginx is missing: installing Debian's nginx-light with apt-get…");
    let install = |pkg: &str| apt_get(&["install", "-y", "--no-install-recommends", pkg]);
    let installed = install("nginx-light")
        || install("nginx")
        || (apt_get(&["update"]) && (install("nginx-light") || install("nginx")));
    match find() {
        Some(p) => Ok(p),
        None if installed => bail!("apt-get installed nginx but no nginx binary is on the PATH"),
        None => bail!("nginx is not installed and `apt-get install nginx-light` failed (root and Debian's package registry are needed)"),
    }
}

/// The configuration: one worker, in the foreground, no access log, keep-alive both ways.
fn config(dir: &Path, port: u16, upstream: &str) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    upstream bench_upstream {{
        server {upstream};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location /proxy/ {{
            proxy_pass http://bench_upstream/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-API-Key "{UPSTREAM_KEY}";
            proxy_max_temp_file_size 0;
        }}
    }}
}}
"#
    )
}

/// Starts nginx in front of `upstream_url` (`http://127.0.0.1:PORT`).
pub async fn start(upstream_url: &str) -> anyhow::Result<Nginx> {
    let bin = binary()?;
    let upstream = url::Url::parse(upstream_url).context("the upstream URL")?;
    let upstream = format!(
        "{}:{}",
        upstream.host_str().context("upstream host")?,
        upstream.port_or_known_default().context("upstream port")?
    );
    let dir = tempfile::tempdir()?;
    let port = children::free_port()?;
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, config(dir.path(), port, &upstream))?;
    let log = std::fs::File::create(dir.path().join("stderr.log"))?;
    let child = Command::new(&bin)
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let mut guard = ChildGuard::new(child, "nginx");
    let addr = format!("127.0.0.1:{port}");
    let end = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if tokio::net::TcpStream::connect(&addr).await.is_ok() {
            break;
        }
        if guard.exited() || std::time::Instant::now() > end {
            guard.stop();
            let why = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
                + &std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
            bail!("nginx did not start listening on {addr}: {}", why.trim());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Nginx {
        url: format!("http://{addr}"),
        _child: guard,
        _dir: dir,
    })
}
