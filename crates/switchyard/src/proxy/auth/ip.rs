//! Who the client is. Without trusted proxies, the peer of the connection. With them
//! (`access.trusted_proxies`, `--trusted-proxies`), a peer in those blocks is a proxy in
//! front of switchyard, and its `X-Forwarded-For` is read from the right: each address is a
//! hop that the one after it saw; the first that is not itself a trusted proxy is the
//! client. Addresses to its left were written by the client and are never believed. When
//! every hop is trusted, the leftmost is the client; an entry that is not an address stops
//! the walk at the last hop believed. A peer that is not trusted is the client, whatever
//! its headers say.
//!
//! Only the client's address is derived here; `X-Forwarded-For` is forwarded as before, with
//! the peer appended (`proxy/rewrite.rs`).

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

use crate::config::CidrSet;

const X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");

/// The client's address for a request from `peer` with these headers (a derived address has
/// port 0: the port is the proxy's business).
pub fn client_addr(peer: SocketAddr, headers: &HeaderMap, trusted: &CidrSet) -> SocketAddr {
    if !trusted.contains(peer.ip()) {
        return peer;
    }
    let mut client = peer.ip();
    let hops = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .rev()
        .flat_map(|v| v.to_str().unwrap_or("?").rsplit(','));
    for hop in hops {
        let Some(ip) = parse_hop(hop) else {
            break;
        };
        client = ip;
        if !trusted.contains(ip) {
            break;
        }
    }
    if client == peer.ip() {
        peer
    } else {
        SocketAddr::new(client, 0)
    }
}

/// One `X-Forwarded-For` entry: `1.2.3.4`, `2001:db8::1`, `1.2.3.4:80` or `[2001:db8::1]:80`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let ip = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append(X_FORWARDED_FOR, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn rightmost_untrusted_hop_is_the_client() {
        let trusted = CidrSet::parse_list("10.0.0.0/8").unwrap();
        let peer: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        let h = headers(&["6.6.6.6, 203.0.113.7", "10.0.0.9"]);
        assert_eq!(
            client_addr(peer, &h, &trusted).ip().to_string(),
            "203.0.113.7"
        );
        // All trusted: the leftmost.
        let h = headers(&["10.1.1.1, 10.2.2.2"]);
        assert_eq!(client_addr(peer, &h, &trusted).ip().to_string(), "10.1.1.1");
        // Garbage stops the walk at the last hop believed.
        let h = headers(&["203.0.113.7, junk, 10.3.3.3"]);
        assert_eq!(client_addr(peer, &h, &trusted).ip().to_string(), "10.3.3.3");
        // Ports and brackets.
        let h = headers(&["[2001:db8::5]:443"]);
        assert_eq!(
            client_addr(peer, &h, &trusted).ip().to_string(),
            "2001:db8::5"
        );
        // No header: the peer itself, port kept.
        assert_eq!(client_addr(peer, &HeaderMap::new(), &trusted), peer);
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let trusted = CidrSet::parse_list("10.0.0.0/8").unwrap();
        let peer: SocketAddr = "198.51.100.1:5000".parse().unwrap();
        let h = headers(&["10.0.0.1"]);
        assert_eq!(client_addr(peer, &h, &trusted), peer);
    }
}
