//! The one HTTP client for requests Latchkey sends out (verification now; token endpoints and
//! the proxy later). It never follows redirects, applies `LATCHKEY_OUTBOUND_REWRITES`, and refuses
//! loopback, private and link-local destinations unless `LATCHKEY_OUTBOUND_ALLOW` lists them,
//! checking the addresses DNS actually answered, not only the name.

use latchkey_core::outbound::{AllowList, Rewrites};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("{0}")]
    Blocked(String),
    #[error("{0}")]
    BadUrl(String),
}

#[derive(Clone)]
pub struct Outbound {
    client: reqwest::Client,
    rewrites: Rewrites,
    policy: Arc<Policy>,
}

struct Policy {
    allow: AllowList,
    /// Hosts that are rewrite targets: the operator chose them, so they may be private.
    rewrite_hosts: Vec<String>,
}

impl Policy {
    fn permits(&self, host: &str, ip: IpAddr) -> bool {
        self.allow.permits(host, ip) || self.rewrite_hosts.iter().any(|h| h == host)
    }
}

struct CheckedResolver(Arc<Policy>);

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| policy.permits(&host, a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(OutboundError::Blocked(blocked_message(&host))) as _);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

fn blocked_message(host: &str) -> String {
    format!(
        "{host} resolves only to loopback, private or link-local addresses, which Latchkey does not contact unless LATCHKEY_OUTBOUND_ALLOW lists them"
    )
}

impl Outbound {
    pub fn new(rewrites: Rewrites, allow: AllowList) -> Self {
        let rewrite_hosts = rewrites.target_hosts();
        let policy = Arc::new(Policy {
            allow,
            rewrite_hosts,
        });
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("latchkey/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(CheckedResolver(policy.clone())))
            .build()
            .expect("the outbound HTTP client builds");
        Self {
            client,
            rewrites,
            policy,
        }
    }

    /// Whether LATCHKEY_OUTBOUND_ALLOW (or a rewrite target) names this host, or the address
    /// it is written as.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_matches(['[', ']']);
        self.policy.allow.allows_host(host)
            || self.policy.rewrite_hosts.iter().any(|h| h == host)
            || host
                .parse::<IpAddr>()
                .is_ok_and(|ip| self.policy.allow.allows_ip(ip))
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The URL a request must really go to (after rewrites), or why it may not go anywhere.
    pub fn prepare(&self, url: &Url) -> Result<Url, OutboundError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(OutboundError::BadUrl(format!(
                "{} is not an http(s) URL",
                url.scheme()
            )));
        }
        let url = self.rewrites.apply(url).unwrap_or_else(|| url.clone());
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check_ip(&url, IpAddr::V4(ip))?,
            Some(url::Host::Ipv6(ip)) => self.check_ip(&url, IpAddr::V6(ip))?,
            Some(url::Host::Domain(_)) => {}
            None => return Err(OutboundError::BadUrl("the URL has no host".into())),
        }
        Ok(url)
    }

    fn check_ip(&self, url: &Url, ip: IpAddr) -> Result<(), OutboundError> {
        let host = url
            .host_str()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_string();
        if self.policy.permits(&host, ip) {
            Ok(())
        } else {
            Err(OutboundError::Blocked(format!(
                "{ip} is a loopback, private or link-local address, which Latchkey does not contact unless LATCHKEY_OUTBOUND_ALLOW lists it"
            )))
        }
    }

    /// Resolves a database host and checks every answer against the policy.
    pub async fn check_host(&self, host: &str, port: u16) -> Result<(), OutboundError> {
        let host = host.trim_matches(['[', ']']);
        if let Ok(ip) = host.parse::<IpAddr>() {
            return if self.policy.permits(host, ip) {
                Ok(())
            } else {
                Err(OutboundError::Blocked(blocked_message(host)))
            };
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| OutboundError::BadUrl(format!("cannot resolve {host}: {e}")))?
            .collect();
        if addrs.is_empty() || addrs.iter().any(|a| !self.policy.permits(host, a.ip())) {
            return Err(OutboundError::Blocked(blocked_message(host)));
        }
        Ok(())
    }
}
