//! The one HTTP client for requests Latchkey sends out (verification now; token endpoints and
//! the proxy later). It never follows redirects, applies `LATCHKEY_OUTBOUND_REWRITES`, and refuses
//! loopback, private and link-local destinations unless `LATCHKEY_OUTBOUND_ALLOW` lists them,
//! checking the addresses DNS actually answered, not only the name. The proxy sends through its
//! own client under the same rules (the `direct` module).

mod direct;

pub use direct::{web_tls, Answer, Call, Direct, DirectError};

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
    direct: Arc<Direct>,
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
            let allowed = resolve_permitted(&policy, name.as_str())
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
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
            direct: Arc::new(Direct::new(policy.clone())),
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

    /// The proxy's client (see the `direct` module).
    pub fn direct(&self) -> &Arc<Direct> {
        &self.direct
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

    /// Resolves a database host once and checks every answer against the policy. The caller
    /// connects to the address returned, never to the name again: a second lookup could answer
    /// differently (DNS rebinding).
    pub async fn check_host(&self, host: &str, port: u16) -> Result<IpAddr, OutboundError> {
        let host = host.trim_matches(['[', ']']);
        if let Ok(ip) = host.parse::<IpAddr>() {
            return if self.policy.permits(host, ip) {
                Ok(ip)
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
        Ok(addrs[0].ip())
    }

    /// The addresses an HTTP request to `host` may go to, resolved once (what the client's
    /// resolver hands to the connector, which connects to these and looks nothing up again).
    pub async fn resolve_checked(&self, host: &str) -> Result<Vec<SocketAddr>, OutboundError> {
        resolve_permitted(&self.policy, host).await
    }
}

async fn resolve_permitted(policy: &Policy, host: &str) -> Result<Vec<SocketAddr>, OutboundError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|e| OutboundError::BadUrl(format!("cannot resolve {host}: {e}")))?
        .collect();
    let allowed: Vec<SocketAddr> = addrs
        .iter()
        .copied()
        .filter(|a| policy.permits(host, a.ip()))
        .collect();
    if allowed.is_empty() {
        return Err(OutboundError::Blocked(blocked_message(host)));
    }
    Ok(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_name_leads_only_to_the_addresses_that_were_checked() {
        // `localhost` answers loopback addresses; with only 127.0.0.1 allowed, the resolver
        // hands the connector 127.0.0.1 alone, and nothing when nothing is allowed.
        let only_v4 = Outbound::new(Rewrites::default(), AllowList::parse("127.0.0.1").unwrap());
        let addrs = only_v4.resolve_checked("localhost").await.unwrap();
        assert!(!addrs.is_empty());
        assert!(
            addrs.iter().all(|a| a.ip() == IpAddr::from([127, 0, 0, 1])),
            "{addrs:?}"
        );
        let none = Outbound::new(Rewrites::default(), AllowList::default());
        assert!(matches!(
            none.resolve_checked("localhost").await,
            Err(OutboundError::Blocked(_))
        ));
        assert!(none.check_host("localhost", 5432).await.is_err());
        assert_eq!(
            only_v4.check_host("127.0.0.1", 5432).await.unwrap(),
            IpAddr::from([127, 0, 0, 1])
        );
        assert!(only_v4.check_host("::ffff:10.0.0.1", 5432).await.is_err());
    }
}
