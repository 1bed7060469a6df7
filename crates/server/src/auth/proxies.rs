//! Which peers may tell us the client's address (`X-Forwarded-For`).

/// An entry of `LATCHKEY_TRUSTED_PROXIES` that is neither a CIDR range nor an address.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{0}` is not a CIDR range (10.0.0.0/8, fd00::/8) or an address")]
pub struct BadProxyEntry(pub String);

/// The networks whose `X-Forwarded-For` is believed (`LATCHKEY_TRUSTED_PROXIES`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    /// Comma-separated CIDR ranges or single addresses; empty trusts nobody.
    pub fn parse(text: &str) -> Result<Self, BadProxyEntry> {
        let mut nets = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = match item.parse::<ipnet::IpNet>() {
                Ok(n) => n,
                Err(_) => match item.parse::<std::net::IpAddr>() {
                    Ok(ip) => ipnet::IpNet::from(ip),
                    Err(_) => return Err(BadProxyEntry(item.to_string())),
                },
            };
            nets.push(net.trunc());
        }
        Ok(Self(nets))
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client's address: the direct peer, unless the peer is a trusted proxy; then the
    /// nearest address in `X-Forwarded-For` that is not one of ours (the entries a proxy
    /// appended last are the only ones it vouches for; the leftmost are the client's word).
    pub fn client(
        &self,
        peer: std::net::IpAddr,
        headers: &axum::http::HeaderMap,
    ) -> std::net::IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let hops: Vec<std::net::IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().parse::<std::net::IpAddr>().map(canonical))
            .collect::<Result<_, _>>()
            .unwrap_or_default();
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            client = hop;
            if !self.contains(hop) {
                break;
            }
        }
        client
    }
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they are.
fn canonical(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", v.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, ::1").unwrap();
        let client: std::net::IpAddr = "203.0.113.7".parse().unwrap();
        let proxy: std::net::IpAddr = "10.1.2.3".parse().unwrap();
        let outsider: std::net::IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(trusted.client(proxy, &xff("203.0.113.7")), client);
        // A client's own claim at the left is not believed past the proxy's entry.
        assert_eq!(
            trusted.client(proxy, &xff("1.2.3.4, 203.0.113.7, 10.0.0.9")),
            client
        );
        assert_eq!(trusted.client(outsider, &xff("203.0.113.7")), outsider);
        assert_eq!(trusted.client(proxy, &HeaderMap::new()), proxy);
        assert_eq!(trusted.client(proxy, &xff("garbage")), proxy);
        let none = TrustedProxies::parse("").unwrap();
        assert_eq!(none.client(proxy, &xff("203.0.113.7")), proxy);
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("nope").is_err());
    }
}
