//! Printing: tables for people, pretty JSON for scripts, a spinner while waiting.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::fmt::Display;
use std::future::Future;
use std::io::Write;
use std::time::Duration;

/// Writes a line to stdout. A closed pipe (`latchkey … | head`) ends the process quietly
/// instead of panicking like `println!`.
pub fn line(text: impl Display) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

pub fn json(v: &Value) {
    line(serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()));
}

pub fn table<I, S>(headers: I) -> Table
where
    I: IntoIterator<Item = S>,
    S: Into<comfy_table::Cell>,
{
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(headers);
    t
}

/// A two-column table of labelled values.
pub fn fields(rows: &[(&str, String)]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    for (k, v) in rows {
        t.add_row(vec![k.to_string(), v.clone()]);
    }
    t
}

/// A field of a JSON object as text: strings bare, `null`/absent empty, the rest compact JSON.
pub fn text(v: &Value, key: &str) -> String {
    show(v.get(key).unwrap_or(&Value::Null))
}

pub fn show(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// A message on one line, even when it quotes a multi-line answer of the application.
pub fn one_line(text: &str) -> String {
    if text.contains('\n') {
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        text.to_string()
    }
}

/// `2025-01-02T03:04:05.678Z` as `2025-01-02 03:04:05 UTC`.
pub fn time(v: &Value, key: &str) -> String {
    let t = text(v, key);
    match (t.get(..10), t.get(11..19)) {
        (Some(d), Some(h)) if t.ends_with('Z') || t.ends_with("+00:00") => format!("{d} {h} UTC"),
        _ => t,
    }
}

/// The answer's `warnings`, each as `warning: …` on stderr (stdout stays for the answer).
pub fn warnings(answer: &Value) {
    for w in answer
        .get("warnings")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        eprintln!("warning: {}", one_line(&show(w)));
    }
}

pub fn items(v: &Value) -> &[Value] {
    v.get("items")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Runs `fut` with a spinner on stderr when `enabled` (a person at a terminal, not `--json`).
pub async fn waiting<F: Future>(enabled: bool, message: impl Into<String>, fut: F) -> F::Output {
    if !enabled {
        return fut.await;
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message.into());
    bar.enable_steady_tick(Duration::from_millis(100));
    let out = fut.await;
    bar.finish_and_clear();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_read_like_text() {
        let v = json!({"s": "x", "n": 5, "l": ["a", "b"], "o": {"k": 1}, "t": "2025-01-02T03:04:05.678Z"});
        assert_eq!(text(&v, "s"), "x");
        assert_eq!(text(&v, "n"), "5");
        assert_eq!(text(&v, "l"), "a, b");
        assert_eq!(text(&v, "o"), r#"{"k":1}"#);
        assert_eq!(text(&v, "missing"), "");
        assert_eq!(time(&v, "t"), "2025-01-02 03:04:05 UTC");
    }
}
