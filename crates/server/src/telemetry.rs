//! Logging and metrics set-up.

use crate::config::{Config, LogFormat};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use tracing_subscriber::EnvFilter;

pub use crate::config::log_filter;

/// Installs the log subscriber for a `latchkey serve` process (logs go to stderr). Colours
/// only for a terminal: a file or a pipe gets plain text (and `NO_COLOR` turns them off).
pub fn init_logging(config: &Config) {
    let filter = log_filter(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The process-wide Prometheus recorder (installed once, shared by every server in the process).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            // Histogram samples wait in buffers until upkeep folds them in; without it they pile
            // up for as long as nobody scrapes /metrics (the soak showed RSS climbing).
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(std::time::Duration::from_secs(5));
                    upkeep.run_upkeep();
                })
                .expect("the metrics upkeep thread starts");
            handle
        })
        .clone()
}

/// The series of one method, route and status.
type HttpSeries = (metrics::Counter, metrics::Histogram);
type SeriesByRoute = std::collections::HashMap<String, HttpSeries>;

/// The request counter and duration histogram of `method`, `route` and `status`, looked up by
/// name and labels once and then kept: a lookup costs a few allocations and a hash of every
/// label, which every request would pay twice.
pub fn http_series(method: &http::Method, route: &str, status: u16) -> HttpSeries {
    use std::collections::HashMap;
    use std::sync::{LazyLock, RwLock};
    static SERIES: LazyLock<RwLock<HashMap<(http::Method, u16), SeriesByRoute>>> =
        LazyLock::new(RwLock::default);
    let key = (method.clone(), status);
    if let Some(found) = SERIES
        .read()
        .expect("http series")
        .get(&key)
        .and_then(|m| m.get(route))
    {
        return found.clone();
    }
    let (m, r) = (method.to_string(), route.to_string());
    let series = (
        metrics::counter!("latchkey_http_requests_total", "method" => m.clone(), "route" => r.clone(), "status" => status.to_string()),
        metrics::histogram!("latchkey_http_request_duration_seconds", "method" => m, "route" => r),
    );
    let mut all = SERIES.write().expect("http series");
    // Routes are the router's patterns (or `unmatched`), methods a handful: this stays small.
    all.entry(key)
        .or_default()
        .insert(route.to_string(), series.clone());
    series
}

/// The counter of the application's answers to proxied calls of `app` with `status`, kept
/// after its first lookup like [`http_series`].
pub fn upstream_responses(app: &str, status: http::StatusCode) -> metrics::Counter {
    use std::collections::HashMap;
    use std::sync::{LazyLock, RwLock};
    type ByApp = HashMap<String, metrics::Counter>;
    static COUNTERS: LazyLock<RwLock<HashMap<u16, ByApp>>> = LazyLock::new(RwLock::default);
    let code = status.as_u16();
    if let Some(c) = COUNTERS
        .read()
        .expect("upstream counters")
        .get(&code)
        .and_then(|m| m.get(app))
    {
        return c.clone();
    }
    let counter = metrics::counter!("latchkey_proxy_upstream_responses_total", "app" => app.to_string(), "status" => code.to_string());
    // Apps are the catalog's entries and statuses a few hundred at most: this stays small.
    COUNTERS
        .write()
        .expect("upstream counters")
        .entry(code)
        .or_default()
        .insert(app.to_string(), counter.clone());
    counter
}
