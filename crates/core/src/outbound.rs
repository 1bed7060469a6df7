//! Rules for requests Latchkey sends out: origin rewrites (`LATCHKEY_OUTBOUND_REWRITES`) and the
//! allow-list that lets an operator reach loopback, private or link-local addresses
//! (`LATCHKEY_OUTBOUND_ALLOW`), which are refused otherwise so that a user-given URL cannot
//! reach the vault's own network (SSRF).

use crate::CoreError;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr};
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

    /// Whether no rewrite is configured (every URL goes where it says).
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

    /// Whether the host name is listed (compared without case).
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        self.hosts.contains(&host)
    }

    /// Whether the address falls in one of the listed addresses or CIDR ranges.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// Whether a resolved address may be contacted for a request to `host`.
    pub fn permits(&self, host: &str, ip: IpAddr) -> bool {
        is_public(ip) || self.allows_ip(ip) || self.allows_host(host)
    }
}

/// True for addresses on the public internet; false for loopback, private, link-local (cloud
/// metadata at 169.254.169.254), shared, unique-local, site-local, multicast, unspecified and
/// documentation ranges. IPv6 addresses that carry an IPv4 address (IPv4-mapped and -compatible,
/// NAT64 `64:ff9b::/96`, 6to4 `2002::/16`, Teredo `2001::/32`) are judged by the IPv4 address
/// they lead to, so that a blocked IPv4 destination cannot be reached in IPv6 clothing.
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
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let v4_at = |hi: u16, lo: u16| {
                Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)
            };
            // IPv4-mapped ::ffff:a.b.c.d and the deprecated IPv4-compatible ::a.b.c.d (which
            // also covers :: and ::1).
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            if s[..6].iter().all(|x| *x == 0) {
                return is_public(IpAddr::V4(v4_at(s[6], s[7])));
            }
            // NAT64, well-known prefix (RFC 6052): the IPv4 address is the last 32 bits.
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6].iter().all(|x| *x == 0) {
                return is_public(IpAddr::V4(v4_at(s[6], s[7])));
            }
            // 6to4 (RFC 3056): 2002:AABB:CCDD::/48 carries AA.BB.CC.DD.
            if s[0] == 0x2002 {
                return is_public(IpAddr::V4(v4_at(s[1], s[2])));
            }
            // Teredo (RFC 4380): the server's IPv4 address in bits 32-63, the client's
            // (inverted) in the last 32.
            if s[0] == 0x2001 && s[1] == 0 {
                return is_public(IpAddr::V4(v4_at(s[2], s[3])))
                    && is_public(IpAddr::V4(v4_at(!s[6], !s[7])));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // unique-local fc00::/7
                || (s[0] & 0xfe00) == 0xfc00
                // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfe80
                // site-local fec0::/10 (deprecated, still routed inside some networks)
                || (s[0] & 0xffc0) == 0xfec0
                // documentation 2001:db8::/32
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                // NAT64 local-use 64:ff9b:1::/48 (RFC 8215) and the rest of 64:ff9b::/32
                || (s[0] == 0x64 && s[1] == 0xff9b)
                // discard-only 100::/64
                || (s[0] == 0x100 && s[1..4].iter().all(|x| *x == 0)))
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
    }

    #[test]
    fn ipv6_addresses_carrying_a_blocked_ipv4_address_are_not_public() {
        for ip in [
            // IPv4-mapped and IPv4-compatible
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "::10.1.1.1",
            "::",
            // NAT64 well-known prefix, and local-use NAT64
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::808:808",
            // 6to4
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::",
            "2002:c0a8:101::5",
            // Teredo: server 127.0.0.1, or client 10.0.0.1 (inverted: f5ff:fffe)
            "2001:0:7f00:1::",
            "2001:0:808:808::f5ff:fffe",
            // site-local, unique-local, link-local, multicast, documentation
            "fec0::1",
            "feff::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "100::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        assert!(is_public("8.8.8.8".parse().unwrap()));
        for ip in [
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2001:0:808:808::f7f7:f7f7",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
        let allow = AllowList::parse("127.0.0.1, 10.0.0.0/8, db.internal").unwrap();
        assert!(allow.permits("x", "10.9.9.9".parse().unwrap()));
        assert!(allow.permits("db.internal", "192.168.0.5".parse().unwrap()));
        assert!(!allow.permits("x", "192.168.0.5".parse().unwrap()));
        assert!(AllowList::parse("bad host!").is_err());
    }
}
