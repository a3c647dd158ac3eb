//! `X-Forwarded-For` (`proxy/auth/ip.rs` `client_addr`): fuzzed header values, trusted
//! proxies and peer. A peer that is not trusted is always the client; a derived client is
//! the peer or an address named in the headers.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use arbitrary::{Arbitrary, Unstructured};
use http::{HeaderMap, HeaderName};
use libfuzzer_sys::fuzz_target;
use switchyard::config::CidrSet;
use switchyard::proxy::auth::ip::client_addr;
use switchyard_fuzz::{header_value, string};

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let trusted = match u8::arbitrary(&mut u).unwrap_or(0) % 3 {
        0 => CidrSet::parse_list("0.0.0.0/0,::/0"),
        1 => CidrSet::parse_list("10.0.0.0/8,2001:db8::/32"),
        _ => CidrSet::parse_list(&string(&mut u)),
    };
    let Ok(trusted) = trusted else {
        return;
    };
    let ip = if bool::arbitrary(&mut u).unwrap_or(false) {
        IpAddr::V6(Ipv6Addr::from(u128::arbitrary(&mut u).unwrap_or_default()))
    } else {
        IpAddr::V4(Ipv4Addr::from(u32::arbitrary(&mut u).unwrap_or_default()))
    };
    let peer = SocketAddr::new(ip.to_canonical(), u16::arbitrary(&mut u).unwrap_or(1));
    let xff = HeaderName::from_static("x-forwarded-for");
    let mut headers = HeaderMap::new();
    // `arbitrary` gives defaults once the input is used up: stop there, and after 16.
    for _ in 0..16 {
        if u.is_empty() {
            break;
        }
        if let Some(v) = header_value(&mut u) {
            headers.append(&xff, v);
        }
    }
    let client = client_addr(peer, &headers, &trusted);
    if !trusted.contains(peer.ip()) {
        assert_eq!(client, peer);
    } else if client != peer {
        let named = headers
            .get_all(&xff)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains(&client.ip().to_string()) || v.contains(':'));
        assert!(
            named || client.ip() == peer.ip(),
            "{client} from {headers:?}"
        );
    }
});
