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

/// The upper bounds, in seconds, of the buckets every duration histogram counts into: from a
/// quarter of a millisecond (a token read from memory) to a minute (a proxied call to a slow
/// application, or one that waited for its pool).
pub const DURATION_BUCKETS: [f64; 17] = [
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0,
];

/// The process-wide Prometheus recorder (installed once, shared by every server in the process).
/// Durations are histograms with fixed buckets rather than summaries: the buckets of several
/// instances add up (a cluster's p99 is computed from all of them, which quantiles worked out by
/// each instance cannot give), and counting a sample into one is a few comparisons where a
/// summary's sketch costs hundreds of instructions per sample.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&DURATION_BUCKETS)
                .expect("the bucket list is not empty")
                .build_recorder();
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

/// Metric handles kept after their first lookup, by a small key and a name: a lookup by name
/// and labels costs a few allocations and a hash of every label, which a request would pay on
/// every count. The keys are few (the router's routes, the catalog's apps, HTTP statuses).
type Kept<K, V> = std::sync::RwLock<crate::FastMap<K, crate::FastMap<String, V>>>;

/// The handle of `(key, name)` in `kept`, made by `make` the first time.
fn kept<K: std::hash::Hash + Eq, V: Clone>(
    kept: &Kept<K, V>,
    key: K,
    name: &str,
    make: impl FnOnce() -> V,
) -> V {
    if let Some(v) = kept
        .read()
        .expect("kept metrics")
        .get(&key)
        .and_then(|m| m.get(name))
    {
        return v.clone();
    }
    let v = make();
    kept.write()
        .expect("kept metrics")
        .entry(key)
        .or_default()
        .insert(name.to_string(), v.clone());
    v
}

/// The series of one method, route and status.
type HttpSeries = (metrics::Counter, metrics::Histogram);

/// The request counter and duration histogram of `method`, `route` and `status`.
pub fn http_series(method: &http::Method, route: &str, status: u16) -> HttpSeries {
    static SERIES: std::sync::LazyLock<Kept<(http::Method, u16), HttpSeries>> =
        std::sync::LazyLock::new(Kept::default);
    kept(&SERIES, (method.clone(), status), route, || {
        let (m, r) = (method.to_string(), route.to_string());
        (
            metrics::counter!("latchkey_http_requests_total", "method" => m.clone(), "route" => r.clone(), "status" => status.to_string()),
            metrics::histogram!("latchkey_http_request_duration_seconds", "method" => m, "route" => r),
        )
    })
}

/// The counter of the application's answers to proxied calls of `app` with `status`.
pub fn upstream_responses(app: &str, status: http::StatusCode) -> metrics::Counter {
    static COUNTERS: std::sync::LazyLock<Kept<u16, metrics::Counter>> =
        std::sync::LazyLock::new(Kept::default);
    let code = status.as_u16();
    kept(
        &COUNTERS,
        code,
        app,
        || metrics::counter!("latchkey_proxy_upstream_responses_total", "app" => app.to_string(), "status" => code.to_string()),
    )
}
