//! Address ranges: CIDR blocks (IPv4 and IPv6) as the IP rules and the trusted proxies take
//! them, parsed with `ipnet`, and the allow/deny decision of an [`IpRules`].
//!
//! A bare address is a block of one (`10.0.0.1` = `10.0.0.1/32`, `::1` = `::1/128`). A block
//! with host bits set (`10.1.2.3/8`) is refused with the block it probably means, so that a
//! typo cannot widen or narrow a rule silently. IPv4-mapped IPv6 addresses are compared as
//! the IPv4 address they carry (clients are canonicalised before any rule sees them).

use std::net::IpAddr;

use ipnet::IpNet;

/// A set of CIDR blocks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CidrSet {
    blocks: Vec<IpNet>,
}

/// Who may talk to a listener or a route: an address in `deny` is refused; when `allow` is
/// not empty, an address outside it is refused too.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpRules {
    /// Addresses let through (empty: every address not denied).
    pub allow: CidrSet,
    /// Addresses refused, whatever `allow` says.
    pub deny: CidrSet,
}

// === impl CidrSet ===

impl CidrSet {
    /// Parses one block or address.
    pub fn parse_block(text: &str) -> Result<IpNet, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty address range".to_owned());
        }
        if !text.contains('/') {
            let ip: IpAddr = text
                .parse()
                .map_err(|_| format!("{text:?} is not an IP address or CIDR block"))?;
            return Ok(IpNet::from(ip.to_canonical()));
        }
        let net: IpNet = text.parse().map_err(|_| {
            format!("{text:?} is not a CIDR block (such as 10.0.0.0/8 or 2001:db8::/32)")
        })?;
        if net.trunc() != net {
            return Err(format!(
                "{text:?} has host bits set: did you mean {}?",
                net.trunc()
            ));
        }
        Ok(net)
    }

    /// Parses a comma-separated list (as the flags take it).
    pub fn parse_list(text: &str) -> Result<CidrSet, String> {
        let blocks = text
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(Self::parse_block)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CidrSet { blocks })
    }

    /// A set of these blocks.
    pub fn new(blocks: Vec<IpNet>) -> Self {
        CidrSet { blocks }
    }

    /// The blocks, in the order given.
    pub fn blocks(&self) -> &[IpNet] {
        &self.blocks
    }

    /// True when it holds no block.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// True when `ip` is in one of the blocks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.blocks.iter().any(|b| b.contains(&ip))
    }
}

// === impl IpRules ===

impl IpRules {
    /// True when `ip` may pass.
    pub fn admits(&self, ip: IpAddr) -> bool {
        !self.deny.contains(ip) && (self.allow.is_empty() || self.allow.contains(ip))
    }

    /// True when the rules refuse nobody.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_and_bare_addresses() {
        let set = CidrSet::parse_list("10.0.0.0/8, 192.168.1.7,2001:db8::/32,::1").unwrap();
        assert!(set.contains(ip("10.255.0.1")));
        assert!(set.contains(ip("192.168.1.7")));
        assert!(!set.contains(ip("192.168.1.8")));
        assert!(set.contains(ip("2001:db8::42")));
        assert!(set.contains(ip("::1")));
        assert!(!set.contains(ip("2001:db9::1")));
        // An IPv4-mapped IPv6 address is the IPv4 address it carries.
        assert!(set.contains(ip("::ffff:10.1.2.3")));
    }

    #[test]
    fn mistakes_are_refused_with_the_fix() {
        let err = CidrSet::parse_block("10.1.2.3/8").unwrap_err();
        assert!(err.contains("did you mean 10.0.0.0/8"), "{err}");
        assert!(CidrSet::parse_block("10.0.0.0/33").is_err());
        assert!(CidrSet::parse_block("example.com").is_err());
        assert!(CidrSet::parse_block("").is_err());
        assert!(CidrSet::parse_list("10.0.0.0/8,nope").is_err());
    }

    #[test]
    fn deny_wins_and_allow_narrows() {
        let rules = IpRules {
            allow: CidrSet::parse_list("10.0.0.0/8").unwrap(),
            deny: CidrSet::parse_list("10.6.6.0/24").unwrap(),
        };
        assert!(rules.admits(ip("10.1.1.1")));
        assert!(!rules.admits(ip("10.6.6.6")), "deny wins");
        assert!(!rules.admits(ip("192.0.2.1")), "outside allow");
        let deny_only = IpRules {
            deny: CidrSet::parse_list("::/0").unwrap(),
            ..IpRules::default()
        };
        assert!(deny_only.admits(ip("127.0.0.1")), "::/0 is IPv6 only");
        assert!(!deny_only.admits(ip("::1")));
    }
}
