//! The client's address for throttling: the TCP peer, or — only when the peer is one of the
//! configured `trusted_proxies` — the address the proxies recorded in `X-Forwarded-For`.
//! Without this, every client behind the shipped nginx shared the proxy's address, so a few
//! bogus sign-ins locked everyone out; trusting the header from anyone would let a client pick
//! a fresh address for every guess.
use std::net::IpAddr;
use std::str::FromStr;

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

/// A proxy address or network, `10.0.0.5` or `10.0.0.0/8`, as written in `trusted_proxies`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TrustedProxy(ipnet::IpNet);

impl TrustedProxy {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 peer may arrive as an IPv4-mapped IPv6 address on a dual-stack socket.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.contains(&ip)
    }
}

impl FromStr for TrustedProxy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        s.parse::<ipnet::IpNet>()
            .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from))
            .map(TrustedProxy)
            .map_err(|_| format!("trusted proxy {s:?} is neither an IP address nor a network like 10.0.0.0/8"))
    }
}

impl TryFrom<String> for TrustedProxy {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<TrustedProxy> for String {
    fn from(p: TrustedProxy) -> String {
        p.0.to_string()
    }
}

/// The client's address: walks `X-Forwarded-For` from the right (the entry the nearest proxy
/// added) while the hop so far is a trusted proxy; the first address not trusted is the client.
/// A malformed entry stops the walk at the last trusted hop.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[TrustedProxy]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|t| t.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_addresses_count_only_through_trusted_proxies() {
        let trusted: Vec<TrustedProxy> = ["10.0.0.0/8", "192.0.2.7"].iter().map(|s| s.parse().unwrap()).collect();
        // Not from a proxy: the header is the client's own claim and is ignored.
        assert_eq!(client_ip(ip("198.51.100.1"), &xff(&["203.0.113.9"]), &trusted), ip("198.51.100.1"));
        // Through one proxy.
        assert_eq!(client_ip(ip("10.1.2.3"), &xff(&["203.0.113.9"]), &trusted), ip("203.0.113.9"));
        // A client that forges a left-hand entry gets its real address (the one the proxy added).
        assert_eq!(client_ip(ip("10.1.2.3"), &xff(&["1.2.3.4, 203.0.113.9"]), &trusted), ip("203.0.113.9"));
        // Through two proxies, in one header or two.
        assert_eq!(client_ip(ip("192.0.2.7"), &xff(&["203.0.113.9, 10.9.9.9"]), &trusted), ip("203.0.113.9"));
        assert_eq!(client_ip(ip("192.0.2.7"), &xff(&["203.0.113.9", "10.9.9.9"]), &trusted), ip("203.0.113.9"));
        // A proxy without the header, or a malformed entry: the last trusted hop.
        assert_eq!(client_ip(ip("10.1.2.3"), &HeaderMap::new(), &trusted), ip("10.1.2.3"));
        assert_eq!(client_ip(ip("10.1.2.3"), &xff(&["203.0.113.9, junk"]), &trusted), ip("10.1.2.3"));
        // IPv4-mapped peers match IPv4 networks.
        assert_eq!(client_ip(ip("::ffff:10.1.2.3"), &xff(&["203.0.113.9"]), &trusted), ip("203.0.113.9"));
        assert!("10.0.0.0/33".parse::<TrustedProxy>().is_err());
        assert!("proxy.example".parse::<TrustedProxy>().is_err());
    }
}
