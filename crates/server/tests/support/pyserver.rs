//! Starts one of the Python counterparts under `tests/support/` (from the virtual environment
//! `scripts/install-test-tools.sh` makes) on a loopback port, and stops it when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct PyServer {
    child: Child,
    pub url: String,
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The venv's Python, or `None` (after saying why) when it is absent and `CI` is not set.
pub fn python(what: &str) -> Option<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join("target/test-tools/venv/bin/python");
    let ok = python.exists()
        && Command::new(&python)
            .args(["-c", &format!("import {what}")])
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "run scripts/install-test-tools.sh: {what} is missing from target/test-tools/venv"
        );
        eprintln!("skipping: {what} is not installed (run scripts/install-test-tools.sh)");
        return None;
    }
    Some(python)
}

/// Starts `tests/support/<script>` with its JSON configuration and waits (at most 30 s) for the
/// port it listens on.
pub fn start(python: &std::path::Path, script: &str, config: &serde_json::Value) -> PyServer {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(script);
    let mut child = Command::new(python)
        .arg(path)
        .arg(config.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{script} did not say its port within 30 s"));
    let port: u16 = line
        .trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{script} said {line:?} instead of its port"));
    PyServer {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}
