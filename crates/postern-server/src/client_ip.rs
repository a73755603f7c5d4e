//! Who a request comes from, for per-client limits.
//!
//! The TCP peer is the client, unless the peer is one of the configured
//! trusted proxies (`--trusted-proxies CIDR,...`, `trusted_proxies` in the
//! file): only then do `X-Forwarded-For` and `X-Real-IP` count. Anyone can
//! send those headers; believing them from anyone would let a client pick
//! a fresh identity per request and dodge every per-client limit.
//!
//! Behind trusted proxies, `X-Forwarded-For` is read from its last hop
//! backwards (each proxy appends the address it received from): trusted
//! hops are skipped, and the first hop that is not a trusted proxy is the
//! client. Hops before it were written by the client and are ignored. A
//! hop that is not an IP address stops the walk at the last address known
//! (the proxy that appended it), rather than trusting anything further.
//!
//! IPv6 clients are grouped by /64: one end site routinely holds a whole
//! /64, so a limit per address would be a limit per nothing.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use serde::Deserialize;

/// An address range, e.g. `10.0.0.0/8`, `::1/128` or a bare address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a range could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("`{0}` is not an IP address or CIDR range")]
    Address(String),
    #[error("`{0}`: the prefix length is too long for the address")]
    Prefix(String),
    #[error("`{0}`: bits are set past the prefix length")]
    HostBits(String),
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, CidrError> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (
                address,
                Some(
                    prefix
                        .parse::<u8>()
                        .map_err(|_| CidrError::Address(text.to_string()))?,
                ),
            ),
            None => (text, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| CidrError::Address(text.to_string()))?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        if prefix > bits {
            return Err(CidrError::Prefix(text.to_string()));
        }
        let cidr = Cidr { network, prefix };
        // `10.0.0.1/8` is a typo for something: refuse it rather than guess.
        if mask(network, prefix) != network {
            return Err(CidrError::HostBits(text.to_string()));
        }
        Ok(cidr)
    }
}

impl TryFrom<String> for Cidr {
    type Error = CidrError;
    fn try_from(text: String) -> Result<Self, CidrError> {
        text.parse()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// `ip` with every bit past `prefix` cleared.
fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let keep = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & keep).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let keep = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & keep).into())
        }
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && mask(ip, self.prefix) == self.network
    }
}

/// The proxies whose forwarded headers are believed (none by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn new(ranges: Vec<Cidr>) -> Self {
        Self(ranges)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|range| range.contains(ip))
    }
}

/// The client a request counts against in per-client limits: the TCP
/// `peer`, or what the trusted proxies in front said (see the module
/// docs). An IPv4 address, or an IPv6 /64 (`2001:db8:1:2::/64`).
pub(crate) fn client_of(trusted: &TrustedProxies, headers: &HeaderMap, peer: IpAddr) -> String {
    limit_key(forwarded_client(trusted, headers, peer.to_canonical()))
}

fn forwarded_client(trusted: &TrustedProxies, headers: &HeaderMap, peer: IpAddr) -> IpAddr {
    if !trusted.contains(peer) {
        return peer;
    }
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(forwarded) = text("x-forwarded-for") {
        let mut client = peer;
        for hop in forwarded.rsplit(',').map(str::trim) {
            match hop.parse::<IpAddr>() {
                Ok(hop) => {
                    client = hop.to_canonical();
                    if !trusted.contains(client) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        return client;
    }
    text("x-real-ip")
        .and_then(|v| v.trim().parse::<IpAddr>().ok())
        .map_or(peer, |ip| ip.to_canonical())
}

fn limit_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let site = Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64));
            format!("{site}/64")
        }
    }
}

/// The TCP peer of a request, from the connection (see `crate::server`).
/// `None` only for a request that did not come over a socket (a test
/// driving the router in process); callers then use the unspecified
/// address, one shared client.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub Option<SocketAddr>);

impl Peer {
    pub fn ip(self) -> IpAddr {
        self.0.map_or(IpAddr::V4([0, 0, 0, 0].into()), |a| a.ip())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|r| r.parse().unwrap()).collect())
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, value.parse().unwrap());
        }
        h
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ranges_parse_strictly_and_match_by_prefix() {
        let r: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(r.contains(ip("10.1.255.3")));
        assert!(!r.contains(ip("10.2.0.1")));
        assert!(r.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped IPv6");
        assert!("::1".parse::<Cidr>().unwrap().contains(ip("::1")));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("8.8.8.8")));
        assert!(!"0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("::2")));
        assert_eq!(
            "10.0.0.1/8".parse::<Cidr>(),
            Err(CidrError::HostBits("10.0.0.1/8".into()))
        );
        assert_eq!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(CidrError::Prefix("10.0.0.0/33".into()))
        );
        assert_eq!(
            "proxy.local".parse::<Cidr>(),
            Err(CidrError::Address("proxy.local".into()))
        );
    }

    #[test]
    fn forwarded_headers_from_an_untrusted_peer_are_ignored() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("x-real-ip", "5.6.7.8")]);
        assert_eq!(
            client_of(&TrustedProxies::default(), &h, ip("9.9.9.9")),
            "9.9.9.9"
        );
        assert_eq!(
            client_of(&ranges(&["10.0.0.0/8"]), &h, ip("9.9.9.9")),
            "9.9.9.9"
        );
    }

    #[test]
    fn behind_trusted_proxies_the_first_untrusted_hop_from_the_right_is_the_client() {
        let trusted = ranges(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.7")]);
        assert_eq!(
            client_of(&trusted, &h, peer),
            "1.2.3.4",
            "6.6.6.6 is client-written"
        );
        let h = headers(&[("x-forwarded-for", "10.0.0.9, 10.0.0.7")]);
        assert_eq!(
            client_of(&trusted, &h, peer),
            "10.0.0.9",
            "all trusted: the first"
        );
        let h = headers(&[("x-forwarded-for", "1.2.3.4, junk")]);
        assert_eq!(client_of(&trusted, &h, peer), "10.0.0.1", "stops at junk");
        let h = headers(&[("x-real-ip", "5.6.7.8")]);
        assert_eq!(client_of(&trusted, &h, peer), "5.6.7.8");
        assert_eq!(client_of(&trusted, &HeaderMap::new(), peer), "10.0.0.1");
    }

    #[test]
    fn ipv6_clients_are_grouped_by_slash_64() {
        let none = TrustedProxies::default();
        let h = HeaderMap::new();
        assert_eq!(
            client_of(&none, &h, ip("2001:db8:1:2:aaaa::1")),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            client_of(&none, &h, ip("2001:db8:1:2:bbbb::2")),
            "2001:db8:1:2::/64"
        );
        assert_eq!(client_of(&none, &h, ip("::ffff:1.2.3.4")), "1.2.3.4");
    }
}
