//! Rules for requests Latchkey sends out: origin rewrites (`LATCHKEY_OUTBOUND_REWRITES`) and the
//! allow-list that lets an operator reach loopback, private or link-local addresses
//! (`LATCHKEY_OUTBOUND_ALLOW`), which are refused otherwise so that a user-given URL cannot
//! reach the vault's own network (SSRF).

use crate::CoreError;
use ipnet::IpNet;
use std::net::IpAddr;
use url::Url;

/// `ORIGIN=ORIGIN` pairs: an outbound URL whose origin equals the left side goes to the right.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rewrites(Vec<(String, Url)>);

impl Rewrites {
    /// Parses `https://login.salesforce.com=http://127.0.0.1:9001,https://a.example=http://b`.
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        let mut out = Vec::new();
        for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (from, to) = pair.split_once('=').ok_or_else(|| {
                CoreError::invalid_with_hint(
                    "outbound_rewrites",
                    format!("`{pair}` is not an ORIGIN=ORIGIN pair"),
                    "write pairs like https://login.salesforce.com=http://127.0.0.1:9001, separated by commas",
                )
            })?;
            let from = parse_origin(from)?;
            let to = parse_origin(to)?;
            out.push((from.origin().ascii_serialization(), to));
        }
        Ok(Self(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The URL with its origin replaced when a rule matches; `None` when none does.
    pub fn apply(&self, url: &Url) -> Option<Url> {
        let origin = url.origin().ascii_serialization();
        let (_, to) = self.0.iter().find(|(from, _)| *from == origin)?;
        let mut out = url.clone();
        out.set_scheme(to.scheme()).ok()?;
        out.set_host(to.host_str()).ok()?;
        out.set_port(to.port()).ok()?;
        Some(out)
    }

    /// The hosts rewrites send requests to (the operator chose them, so they may be private).
    pub fn target_hosts(&self) -> Vec<String> {
        self.0
            .iter()
            .filter_map(|(_, to)| {
                to.host_str()
                    .map(|h| h.trim_matches(['[', ']']).to_string())
            })
            .collect()
    }
}

fn parse_origin(s: &str) -> Result<Url, CoreError> {
    let url = Url::parse(s.trim()).map_err(|_| {
        CoreError::invalid(
            "outbound_rewrites",
            format!("`{}` is not an origin", s.trim()),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || url.path() != "/"
        || url.query().is_some()
    {
        return Err(CoreError::invalid(
            "outbound_rewrites",
            format!("`{}` must be scheme://host[:port] with no path", s.trim()),
        ));
    }
    Ok(url)
}

/// Hosts and networks that outbound requests may reach although they are not public.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AllowList {
    hosts: Vec<String>,
    nets: Vec<IpNet>,
}

impl AllowList {
    /// Parses `127.0.0.1,10.0.0.0/8,db.internal`.
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        let mut list = Self::default();
        for item in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if let Ok(net) = item.parse::<IpNet>() {
                list.nets.push(net);
            } else if let Ok(ip) = item.trim_matches(['[', ']']).parse::<IpAddr>() {
                list.nets.push(IpNet::from(ip));
            } else if item
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            {
                list.hosts.push(item.to_ascii_lowercase());
            } else {
                return Err(CoreError::invalid_with_hint(
                    "outbound_allow",
                    format!("`{item}` is neither a host name, an IP address nor a CIDR range"),
                    "write entries like 127.0.0.1, 10.0.0.0/8 or db.internal, separated by commas",
                ));
            }
        }
        Ok(list)
    }

    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        self.hosts.contains(&host)
    }

    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// Whether a resolved address may be contacted for a request to `host`.
    pub fn permits(&self, host: &str, ip: IpAddr) -> bool {
        is_public(ip) || self.allows_ip(ip) || self.allows_host(host)
    }
}

/// True for addresses on the public internet; false for loopback, private, link-local (cloud
/// metadata at 169.254.169.254), unique-local, multicast, unspecified and documentation ranges.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || (s[0] == 0x64 && s[1] == 0xff9b))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_replace_the_origin_only() {
        let r = Rewrites::parse("https://login.salesforce.com=http://127.0.0.1:9001").unwrap();
        let u = Url::parse("https://login.salesforce.com/services/oauth2/token?a=b").unwrap();
        assert_eq!(
            r.apply(&u).unwrap().as_str(),
            "http://127.0.0.1:9001/services/oauth2/token?a=b"
        );
        assert!(r
            .apply(&Url::parse("https://test.salesforce.com/x").unwrap())
            .is_none());
        assert!(Rewrites::parse("nonsense").is_err());
        assert!(Rewrites::parse("https://a.com/path=http://b").is_err());
    }

    #[test]
    fn private_and_metadata_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "169.254.169.254",
            "192.168.1.1",
            "::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        assert!(is_public("8.8.8.8".parse().unwrap()));
        let allow = AllowList::parse("127.0.0.1, 10.0.0.0/8, db.internal").unwrap();
        assert!(allow.permits("x", "10.9.9.9".parse().unwrap()));
        assert!(allow.permits("db.internal", "192.168.0.5".parse().unwrap()));
        assert!(!allow.permits("x", "192.168.0.5".parse().unwrap()));
        assert!(AllowList::parse("bad host!").is_err());
    }
}
