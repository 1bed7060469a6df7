//! Configuration: defaults, then the TOML file named by `LATCHKEY_CONFIG`, then
//! `LATCHKEY_*` variables, read once into a validated [`Config`] that is passed down.

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use latchkey_core::outbound::{AllowList, Rewrites};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// The keys a configuration file or `LATCHKEY_*` variable may set.
const KEYS: &[&str] = &[
    "data_dir",
    "database_url",
    "listen",
    "public_url",
    "master_key",
    "master_key_file",
    "previous_master_key",
    "outbound_rewrites",
    "outbound_allow",
    "proxy_queue_timeout",
    "proxy_recovery_interval",
    "health_interval",
    "http_threads",
    "catalog_dir",
    "log",
    "log_format",
    "trusted_proxies",
    "metrics_public",
    "oidc_issuer",
    "oidc_client_id",
    "oidc_client_secret",
    "oidc_roles_claim",
    "oidc_scopes",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Raw {
    data_dir: String,
    database_url: Option<String>,
    listen: String,
    public_url: Option<String>,
    master_key: Option<String>,
    master_key_file: Option<String>,
    previous_master_key: Option<String>,
    outbound_rewrites: String,
    outbound_allow: String,
    proxy_queue_timeout: u64,
    proxy_recovery_interval: u64,
    health_interval: u64,
    http_threads: u64,
    catalog_dir: Option<String>,
    log: String,
    log_format: String,
    trusted_proxies: String,
    metrics_public: bool,
    oidc_issuer: Option<String>,
    oidc_client_id: Option<String>,
    oidc_client_secret: Option<String>,
    oidc_roles_claim: String,
    oidc_scopes: String,
}

impl Default for Raw {
    fn default() -> Self {
        Self {
            data_dir: "./latchkey-data".into(),
            database_url: None,
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            master_key: None,
            master_key_file: None,
            previous_master_key: None,
            outbound_rewrites: String::new(),
            outbound_allow: String::new(),
            proxy_queue_timeout: 60,
            proxy_recovery_interval: 10,
            health_interval: 3600,
            http_threads: 0,
            catalog_dir: None,
            log: "info".into(),
            log_format: "text".into(),
            trusted_proxies: String::new(),
            metrics_public: false,
            oidc_issuer: None,
            oidc_client_id: None,
            oidc_client_secret: None,
            oidc_roles_claim: "groups".into(),
            oidc_scopes: "openid profile email".into(),
        }
    }
}

/// Where the master key comes from.
#[derive(Clone)]
pub enum MasterKeySource {
    /// `LATCHKEY_MASTER_KEY`: the base64 text itself.
    Inline(secrecy::SecretString),
    /// `LATCHKEY_MASTER_KEY_FILE` or `<data dir>/master.key`; created on first start when absent
    /// and `create` is true (only the default file is created).
    File { path: PathBuf, create: bool },
}

impl std::fmt::Debug for MasterKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MasterKeySource::Inline(_) => f.write_str("Inline([REDACTED])"),
            MasterKeySource::File { path, create } => {
                write!(f, "File({}, create: {create})", path.display())
            }
        }
    }
}

/// Single sign-on with an OpenID Connect provider (`LATCHKEY_OIDC_*`).
#[derive(Clone)]
pub struct OidcSettings {
    /// The issuer, exactly as the provider names itself (no trailing slash added or removed).
    pub issuer: String,
    pub client_id: String,
    pub client_secret: secrecy::SecretString,
    /// The claim whose values grant roles (`latchkey:<workspace>:<role>`, `latchkey:admin`).
    pub roles_claim: String,
    /// Space-separated; always includes `openid`.
    pub scopes: String,
}

impl std::fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[REDACTED]")
            .field("roles_claim", &self.roles_claim)
            .field("scopes", &self.scopes)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub listen: SocketAddr,
    /// `None` means "derive from the address actually bound" (`http://<listen>`).
    pub public_url: Option<Url>,
    pub master_key: MasterKeySource,
    /// The master key a rotation replaced, while some data key may still be wrapped by it
    /// (`LATCHKEY_PREVIOUS_MASTER_KEY`; with a key file, `<file>.previous` serves the same).
    pub previous_master_key: Option<secrecy::SecretString>,
    pub outbound_rewrites: Rewrites,
    pub outbound_allow: AllowList,
    pub proxy_queue_timeout: Duration,
    /// `LATCHKEY_PROXY_RECOVERY_INTERVAL`: how long a pool whose level 429s lowered must go
    /// without a 429 before its level climbs by one.
    pub proxy_recovery_interval: Duration,
    /// `LATCHKEY_HEALTH_INTERVAL`: how often every connection is probed (a connection's
    /// `health_check_interval_seconds` setting overrides it; 0 there turns probes off).
    pub health_interval: Duration,
    /// `LATCHKEY_HTTP_THREADS`: threads that serve connections (0, the default: one per core).
    pub http_threads: usize,
    /// The background worker (probes, proactive refreshes, webhook deliveries) looks for due
    /// work this often. Not a variable: one second keeps it to one statement a second per
    /// kind of work when nothing is due.
    pub background_tick: Duration,
    /// Set false to run no background work at all (some tests count provider calls exactly).
    pub background: bool,
    /// How long a webhook endpoint may take to answer before the attempt counts as failed.
    pub webhook_timeout: Duration,
    /// The first retry of a failed delivery waits this long; each next one twice as long.
    pub webhook_retry_base: Duration,
    /// A delivery is retried for this long after its event, then given up.
    pub webhook_retry_for: Duration,
    /// An endpoint whose deliveries all failed for this long is disabled.
    pub webhook_disable_after: Duration,
    pub catalog_dir: Option<PathBuf>,
    pub log: String,
    pub log_format: LogFormat,
    /// Peers whose `X-Forwarded-For` names the client (`LATCHKEY_TRUSTED_PROXIES`).
    pub trusted_proxies: crate::auth::proxies::TrustedProxies,
    /// Whether `/metrics` answers without a key (`LATCHKEY_METRICS_PUBLIC`).
    pub metrics_public: bool,
    /// Single sign-on, when `LATCHKEY_OIDC_ISSUER` is set.
    pub oidc: Option<OidcSettings>,
}

/// A configuration problem, said so that the operator can fix it.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Reads the process environment (and `LATCHKEY_CONFIG`'s file).
    pub fn from_env() -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Self::from_sources(&vars)
    }

    /// Reads the given variables (and the file `LATCHKEY_CONFIG` names among them).
    pub fn from_sources(vars: &[(String, String)]) -> Result<Self, ConfigError> {
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let file = match get("LATCHKEY_CONFIG") {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    ConfigError(format!("cannot read LATCHKEY_CONFIG file {path}: {e}"))
                })?;
                Some((path, text))
            }
            None => None,
        };
        Self::from_text(file.as_ref().map(|(p, t)| (p.as_str(), t.as_str())), vars)
    }

    /// The configuration from a file's text (named for messages) and variables.
    pub fn from_text(
        file: Option<(&str, &str)>,
        vars: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Raw::default()));
        if let Some((path, text)) = file {
            let table: toml::Table = text
                .parse()
                .map_err(|e| ConfigError(format!("{path} is not valid TOML: {e}")))?;
            if let Some(unknown) = table.keys().find(|k| !KEYS.contains(&k.as_str())) {
                return Err(ConfigError(format!(
                    "{path}: unknown key `{unknown}` (known keys: {})",
                    KEYS.join(", ")
                )));
            }
            fig = fig.merge(Toml::string(text));
        }
        let env: Vec<(String, String)> = vars
            .iter()
            .filter_map(|(k, v)| {
                let key = k.strip_prefix("LATCHKEY_")?.to_ascii_lowercase();
                KEYS.contains(&key.as_str()).then(|| (key, v.clone()))
            })
            .collect();
        for (k, v) in env {
            // Values are taken as strings (never guessed into numbers) except the numbers.
            fig = if k == "proxy_queue_timeout"
                || k == "health_interval"
                || k == "proxy_recovery_interval"
                || k == "http_threads"
            {
                let n: u64 = v.trim().parse().map_err(|_| {
                    let unit = if k == "http_threads" {
                        ""
                    } else {
                        " of seconds"
                    };
                    ConfigError(format!(
                        "LATCHKEY_{} must be a whole number{unit}, not `{v}`",
                        k.to_ascii_uppercase()
                    ))
                })?;
                fig.merge(Serialized::default(&k, n))
            } else if k == "metrics_public" {
                let b = match v.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" | "" => false,
                    _ => {
                        return Err(ConfigError(format!(
                            "LATCHKEY_METRICS_PUBLIC must be true or false, not `{v}`"
                        )))
                    }
                };
                fig.merge(Serialized::default(&k, b))
            } else {
                fig.merge(Serialized::default(&k, v))
            };
        }
        let raw: Raw = fig.extract().map_err(|e| ConfigError(e.to_string()))?;
        Self::validate(raw)
    }

    fn validate(raw: Raw) -> Result<Self, ConfigError> {
        let oidc = oidc_settings(&raw)?;
        let data_dir = PathBuf::from(&raw.data_dir);
        let listen = listen_address(&raw.listen)?;
        let database_url = database_url(raw.database_url, &data_dir)?;
        let public_url = public_url(raw.public_url)?;
        let master_key = master_key_source(raw.master_key, raw.master_key_file, &data_dir)?;
        let previous_master_key = previous_master_key(raw.previous_master_key)?;
        let outbound_rewrites = Rewrites::parse(&raw.outbound_rewrites)
            .map_err(|e| ConfigError(format!("LATCHKEY_OUTBOUND_REWRITES: {e}")))?;
        let outbound_allow = AllowList::parse(&raw.outbound_allow)
            .map_err(|e| ConfigError(format!("LATCHKEY_OUTBOUND_ALLOW: {e}")))?;
        if raw.http_threads > 256 {
            return Err(ConfigError("LATCHKEY_HTTP_THREADS must be 0 to 256".into()));
        }
        check_intervals(
            raw.proxy_queue_timeout,
            raw.proxy_recovery_interval,
            raw.health_interval,
        )?;
        log_filter(&raw.log)
            .map_err(|e| ConfigError(format!("LATCHKEY_LOG `{}`: {e}", raw.log)))?;
        let log_format = log_format(&raw.log_format)?;
        let trusted_proxies = crate::auth::proxies::TrustedProxies::parse(&raw.trusted_proxies)
            .map_err(|e| ConfigError(format!("LATCHKEY_TRUSTED_PROXIES: {e}")))?;
        let metrics_public = raw.metrics_public;
        let catalog_dir = catalog_dir(raw.catalog_dir)?;
        Ok(Config {
            data_dir,
            database_url,
            listen,
            public_url,
            master_key,
            previous_master_key,
            outbound_rewrites,
            outbound_allow,
            proxy_queue_timeout: std::time::Duration::from_secs(raw.proxy_queue_timeout),
            proxy_recovery_interval: Duration::from_secs(raw.proxy_recovery_interval),
            health_interval: Duration::from_secs(raw.health_interval),
            http_threads: raw.http_threads as usize,
            background_tick: Duration::from_secs(1),
            background: true,
            webhook_timeout: Duration::from_secs(10),
            webhook_retry_base: Duration::from_secs(5),
            webhook_retry_for: Duration::from_secs(24 * 3600),
            webhook_disable_after: Duration::from_secs(3 * 24 * 3600),
            catalog_dir,
            log: raw.log,
            log_format,
            trusted_proxies,
            metrics_public,
            oidc,
        })
    }

    /// A configuration for tests: everything under `data_dir`, port 0, loopback reachable.
    pub fn for_tests(data_dir: &Path) -> Self {
        let mut c = Self::validate(Raw {
            data_dir: data_dir.display().to_string(),
            listen: "127.0.0.1:0".into(),
            outbound_allow: "127.0.0.1,::1,localhost".into(),
            ..Raw::default()
        })
        .expect("test configuration is valid");
        c.log = "warn".into();
        c
    }
}

/// `LATCHKEY_LISTEN`: the address to listen on.
fn listen_address(listen: &str) -> Result<SocketAddr, ConfigError> {
    listen.parse().map_err(|_| {
        ConfigError(format!(
            "LATCHKEY_LISTEN `{listen}` is not an address like 127.0.0.1:8080 or [::1]:8080"
        ))
    })
}

/// `LATCHKEY_DATABASE_URL`: SQLite or PostgreSQL; a SQLite file in the data folder by default.
fn database_url(url: Option<String>, data_dir: &Path) -> Result<String, ConfigError> {
    match url.filter(|s| !s.trim().is_empty()) {
        Some(url) => {
            if !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
            {
                return Err(ConfigError(
                    "LATCHKEY_DATABASE_URL must start with sqlite:, postgres:// or postgresql://"
                        .into(),
                ));
            }
            Ok(url)
        }
        None => Ok(format!(
            "sqlite://{}",
            data_dir.join("latchkey.db").display()
        )),
    }
}

/// `LATCHKEY_PUBLIC_URL`: an http(s) URL without a query, when given.
fn public_url(url: Option<String>) -> Result<Option<Url>, ConfigError> {
    match url.filter(|s| !s.trim().is_empty()) {
        None => Ok(None),
        Some(s) => {
            let u = Url::parse(s.trim())
                .map_err(|_| ConfigError(format!("LATCHKEY_PUBLIC_URL `{s}` is not a URL")))?;
            if !matches!(u.scheme(), "http" | "https")
                || u.host_str().is_none()
                || u.query().is_some()
            {
                return Err(ConfigError(format!(
                    "LATCHKEY_PUBLIC_URL `{s}` must be an http(s) URL such as https://latchkey.example.com"
                )));
            }
            Ok(Some(u))
        }
    }
}

/// Where the master key comes from: `LATCHKEY_MASTER_KEY` (checked here), the file
/// `LATCHKEY_MASTER_KEY_FILE` names, or a file in the data folder created on first start.
fn master_key_source(
    inline: Option<String>,
    file: Option<String>,
    data_dir: &Path,
) -> Result<MasterKeySource, ConfigError> {
    Ok(match (inline.filter(|s| !s.is_empty()), file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError(
                "set LATCHKEY_MASTER_KEY or LATCHKEY_MASTER_KEY_FILE, not both".into(),
            ))
        }
        (Some(k), None) => {
            latchkey_core::crypto::MasterKey::from_base64(&k)
                .map_err(|e| ConfigError(format!("LATCHKEY_MASTER_KEY: {e}")))?;
            MasterKeySource::Inline(k.into())
        }
        (None, Some(f)) => MasterKeySource::File {
            path: f.into(),
            create: false,
        },
        (None, None) => MasterKeySource::File {
            path: data_dir.join("master.key"),
            create: true,
        },
    })
}

/// `LATCHKEY_PREVIOUS_MASTER_KEY`: the key being rotated away from, checked, when given.
fn previous_master_key(key: Option<String>) -> Result<Option<secrecy::SecretString>, ConfigError> {
    match key.filter(|s| !s.is_empty()) {
        Some(k) => {
            latchkey_core::crypto::MasterKey::from_base64(&k)
                .map_err(|e| ConfigError(format!("LATCHKEY_PREVIOUS_MASTER_KEY: {e}")))?;
            Ok(Some(secrecy::SecretString::from(k)))
        }
        None => Ok(None),
    }
}

/// The proxy's queue timeout and recovery interval (1 to 3600 seconds) and the health interval
/// (at least 5 seconds).
fn check_intervals(
    queue_timeout: u64,
    recovery_interval: u64,
    health_interval: u64,
) -> Result<(), ConfigError> {
    if !(1..=3600).contains(&queue_timeout) {
        return Err(ConfigError(
            "LATCHKEY_PROXY_QUEUE_TIMEOUT must be 1 to 3600 seconds".into(),
        ));
    }
    if !(1..=3600).contains(&recovery_interval) {
        return Err(ConfigError(
            "LATCHKEY_PROXY_RECOVERY_INTERVAL must be 1 to 3600 seconds".into(),
        ));
    }
    if health_interval < 5 {
        return Err(ConfigError(
            "LATCHKEY_HEALTH_INTERVAL must be at least 5 seconds".into(),
        ));
    }
    Ok(())
}

/// `LATCHKEY_LOG_FORMAT`: text (the default) or json.
fn log_format(format: &str) -> Result<LogFormat, ConfigError> {
    match format {
        "text" | "" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(ConfigError(format!(
            "LATCHKEY_LOG_FORMAT must be text or json, not `{other}`"
        ))),
    }
}

/// `LATCHKEY_CATALOG_DIR`: a folder of extra catalog entries, when given.
fn catalog_dir(dir: Option<String>) -> Result<Option<PathBuf>, ConfigError> {
    let dir = dir.filter(|s| !s.is_empty()).map(PathBuf::from);
    if let Some(dir) = &dir {
        if !Path::new(dir).is_dir() {
            return Err(ConfigError(format!(
                "LATCHKEY_CATALOG_DIR {} is not a folder",
                dir.display()
            )));
        }
    }
    Ok(dir)
}

/// The single sign-on settings: none without an issuer; with one, a client id and secret too.
fn oidc_settings(raw: &Raw) -> Result<Option<OidcSettings>, ConfigError> {
    fn given(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }
    let Some(issuer) = given(&raw.oidc_issuer) else {
        return Ok(None);
    };
    let u = Url::parse(issuer)
        .map_err(|_| ConfigError(format!("LATCHKEY_OIDC_ISSUER `{issuer}` is not a URL")))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() || u.query().is_some() {
        return Err(ConfigError(format!(
            "LATCHKEY_OIDC_ISSUER `{issuer}` must be an http(s) URL such as https://login.example.com"
        )));
    }
    let client_id = given(&raw.oidc_client_id).ok_or_else(|| {
        ConfigError("LATCHKEY_OIDC_ISSUER is set: set LATCHKEY_OIDC_CLIENT_ID too".into())
    })?;
    let secret = given(&raw.oidc_client_secret).ok_or_else(|| {
        ConfigError("LATCHKEY_OIDC_ISSUER is set: set LATCHKEY_OIDC_CLIENT_SECRET too".into())
    })?;
    let roles_claim = raw.oidc_roles_claim.trim();
    if roles_claim.is_empty() {
        return Err(ConfigError(
            "LATCHKEY_OIDC_ROLES_CLAIM must name a claim".into(),
        ));
    }
    let mut scopes: Vec<&str> = raw.oidc_scopes.split_whitespace().collect();
    if !scopes.contains(&"openid") {
        scopes.insert(0, "openid");
    }
    Ok(Some(OidcSettings {
        issuer: issuer.to_string(),
        client_id: client_id.to_string(),
        client_secret: secrecy::SecretString::from(secret.to_string()),
        roles_claim: roles_claim.to_string(),
        scopes: scopes.join(" "),
    }))
}

/// The log filter `LATCHKEY_LOG` describes. Field values in it match literally, never as
/// regular expressions: a pattern such as `{f=a.........}` would otherwise compile into an
/// automaton of gigabytes at start (found by the `configuration` fuzz target).
pub fn log_filter(
    directives: &str,
) -> Result<tracing_subscriber::EnvFilter, tracing_subscriber::filter::ParseError> {
    tracing_subscriber::EnvFilter::builder()
        .with_regex(false)
        .parse(directives)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn a_log_filter_field_value_is_no_regular_expression() {
        // Found by the `configuration` fuzz target: a field value of many `.` compiled, as a
        // regular expression, into an automaton of more than 2 GB.
        let log = format!("info,[request{{route=x{}y}}]=debug", ".".repeat(60));
        let c = Config::from_sources(&vars(&[("LATCHKEY_LOG", &log)]));
        assert!(c.is_ok(), "{:?}", c.err().map(|e| e.to_string()));
        let filter = log_filter(&log).unwrap();
        assert!(filter.to_string().contains("route"), "{filter}");
        // The fuzzer's own input: answered (here refused) at once.
        let fuzzed = format!(
            "[<88__8{{oobi=04:8{}8a~tab.:.:nd_}}w4rizk_7=",
            ".".repeat(50)
        );
        assert!(Config::from_sources(&vars(&[("LATCHKEY_LOG", &fuzzed)])).is_err());
    }

    #[test]
    fn single_sign_on_settings() {
        let c = Config::from_sources(&[]).unwrap();
        assert!(c.oidc.is_none());
        let c = Config::from_sources(&vars(&[
            ("LATCHKEY_OIDC_ISSUER", "https://login.example.com"),
            ("LATCHKEY_OIDC_CLIENT_ID", "latchkey"),
            ("LATCHKEY_OIDC_CLIENT_SECRET", "very-secret-value"),
        ]))
        .unwrap();
        let o = c.oidc.clone().unwrap();
        assert_eq!(o.roles_claim, "groups");
        assert_eq!(o.scopes, "openid profile email");
        assert!(!format!("{c:?}").contains("very-secret-value"));
        let err = Config::from_sources(&vars(&[(
            "LATCHKEY_OIDC_ISSUER",
            "https://login.example.com",
        )]))
        .unwrap_err();
        assert!(err.to_string().contains("LATCHKEY_OIDC_CLIENT_ID"), "{err}");
        let toml = "oidc_issuer = \"https://login.example.com\"\noidc_client_id = \"lk\"\n\
                    oidc_client_secret = \"s3cret-value\"\noidc_roles_claim = \"roles\"\n\
                    oidc_scopes = \"profile email roles\"\n";
        let c = Config::from_text(Some(("latchkey.toml", toml)), &[]).unwrap();
        let o = c.oidc.unwrap();
        assert_eq!(
            (o.client_id.as_str(), o.roles_claim.as_str()),
            ("lk", "roles")
        );
        assert_eq!(
            o.scopes, "openid profile email roles",
            "openid is always asked for"
        );
    }

    #[test]
    fn defaults() {
        let c = Config::from_sources(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url, "sqlite://./latchkey-data/latchkey.db");
        assert_eq!(c.proxy_queue_timeout.as_secs(), 60);
        assert_eq!(c.health_interval.as_secs(), 3600);
        let err = Config::from_sources(&vars(&[("LATCHKEY_HEALTH_INTERVAL", "4")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least 5"), "{err}");
        let c = Config::from_sources(&vars(&[("LATCHKEY_HEALTH_INTERVAL", "5")])).unwrap();
        assert_eq!(c.health_interval.as_secs(), 5);
        assert_eq!(c.http_threads, 0, "one serving thread per core");
        for (bad, says) in [("257", "0 to 256"), ("two", "whole number, not `two`")] {
            let e = Config::from_sources(&vars(&[("LATCHKEY_HTTP_THREADS", bad)])).unwrap_err();
            assert!(e.to_string().contains(says), "{e}");
        }
        assert!(matches!(
            c.master_key,
            MasterKeySource::File { create: true, .. }
        ));
    }

    #[test]
    fn environment_overrides_file_and_errors_are_clear() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("latchkey.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\nproxy_queue_timeout = 5\nlog = \"debug\"\n",
        )
        .unwrap();
        let f = file.display().to_string();
        let c = Config::from_sources(&vars(&[("LATCHKEY_CONFIG", &f), ("LATCHKEY_LOG", "warn")]))
            .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.proxy_queue_timeout.as_secs(), 5);
        assert_eq!(c.log, "warn");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let err = Config::from_sources(&vars(&[("LATCHKEY_CONFIG", &f)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown key `lisen`"), "{err}");
        let err = Config::from_sources(&vars(&[("LATCHKEY_LISTEN", "nowhere")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("LATCHKEY_LISTEN"), "{err}");
        let err = Config::from_sources(&vars(&[("LATCHKEY_MASTER_KEY", "c2hvcnQ=")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("32 bytes"), "{err}");
        let err = Config::from_sources(&vars(&[("LATCHKEY_OUTBOUND_REWRITES", "x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("LATCHKEY_OUTBOUND_REWRITES"), "{err}");
        let err = Config::from_sources(&vars(&[("LATCHKEY_DATABASE_URL", "mysql://x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("LATCHKEY_DATABASE_URL"), "{err}");
        // A numeric-looking value stays a string where a string is expected.
        let c = Config::from_sources(&vars(&[("LATCHKEY_OUTBOUND_ALLOW", "10.0.0.0/8")])).unwrap();
        assert!(c.outbound_allow.allows_ip("10.1.1.1".parse().unwrap()));
    }

    #[test]
    fn trusted_proxies_and_public_metrics() {
        let c = Config::from_sources(&[]).unwrap();
        assert!(!c.metrics_public);
        assert!(!c.trusted_proxies.contains("127.0.0.1".parse().unwrap()));
        let c = Config::from_sources(&vars(&[
            ("LATCHKEY_TRUSTED_PROXIES", "10.0.0.0/8,192.168.1.1"),
            ("LATCHKEY_METRICS_PUBLIC", "true"),
        ]))
        .unwrap();
        assert!(c.metrics_public);
        assert!(c.trusted_proxies.contains("10.9.9.9".parse().unwrap()));
        assert!(c.trusted_proxies.contains("192.168.1.1".parse().unwrap()));
        assert!(!c.trusted_proxies.contains("192.168.1.2".parse().unwrap()));
        let err = Config::from_sources(&vars(&[("LATCHKEY_TRUSTED_PROXIES", "10.0.0.0/99")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("LATCHKEY_TRUSTED_PROXIES"), "{err}");
        let err = Config::from_sources(&vars(&[("LATCHKEY_METRICS_PUBLIC", "maybe")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("LATCHKEY_METRICS_PUBLIC"), "{err}");
    }
}
