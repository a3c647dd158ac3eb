//! CIDR lists (`config/cidr.rs`: `10.0.0.0/8, ::1`) and the allow/deny decision over them,
//! for addresses drawn from the same input.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use switchyard::config::{CidrSet, IpRules};

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let allow = switchyard_fuzz::string(&mut u);
    let deny = switchyard_fuzz::string(&mut u);
    let _ = CidrSet::parse_block(&allow);
    let (Ok(allow), Ok(deny)) = (CidrSet::parse_list(&allow), CidrSet::parse_list(&deny)) else {
        return;
    };
    let rules = IpRules { allow, deny };
    // `arbitrary` gives defaults once the input is used up: stop there, and after 64.
    for _ in 0..64 {
        if u.is_empty() {
            break;
        }
        let ip = if bool::arbitrary(&mut u).unwrap_or(false) {
            IpAddr::V6(Ipv6Addr::from(u128::arbitrary(&mut u).unwrap_or_default()))
        } else {
            IpAddr::V4(Ipv4Addr::from(u32::arbitrary(&mut u).unwrap_or_default()))
        };
        // An IPv4-mapped address is judged as the IPv4 address it carries.
        assert_eq!(rules.admits(ip), rules.admits(ip.to_canonical()), "{ip}");
    }
});
