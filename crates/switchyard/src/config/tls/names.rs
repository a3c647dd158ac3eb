//! The names a server certificate covers: exact DNS names, wildcards (`*.example.com`, one
//! label, as RFC 6125 has it) and IP addresses; and whether a request's host is one of them.

use std::net::IpAddr;

/// The names a certificate is served for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerNames {
    /// Exact names, lower case.
    exact: Vec<String>,
    /// Wildcards as their suffix, with the dot: `.example.com` for `*.example.com`.
    wildcards: Vec<String>,
    /// IP addresses.
    ips: Vec<IpAddr>,
}

impl ServerNames {
    /// The names in `names`: `*.` and a name is a wildcard, an IP address is one, anything
    /// else an exact DNS name (compared case-insensitively).
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut out = ServerNames::default();
        for name in names {
            out.push(name);
        }
        out
    }

    fn push(&mut self, name: &str) {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Ok(ip) = name.trim_matches(['[', ']']).parse::<IpAddr>() {
            self.ips.push(ip);
        } else if let Some(suffix) = name.strip_prefix('*') {
            if suffix.starts_with('.') && suffix.len() > 1 {
                self.wildcards.push(suffix.to_owned());
            }
        } else if !name.is_empty() {
            self.exact.push(name);
        }
    }

    /// True when `host` (lower case, without port; an IPv6 address without brackets) is one
    /// of the names: equal to an exact name or an address, or one label in front of a
    /// wildcard's suffix.
    pub fn covers(&self, host: &str) -> bool {
        if self.exact.iter().any(|n| n == host) {
            return true;
        }
        let wildcard = self.wildcards.iter().any(|suffix| {
            host.strip_suffix(suffix.as_str())
                .is_some_and(|label| !label.is_empty() && !label.contains('.'))
        });
        if wildcard {
            return true;
        }
        !self.ips.is_empty()
            && host
                .parse::<IpAddr>()
                .is_ok_and(|ip| self.ips.contains(&ip.to_canonical()) || self.ips.contains(&ip))
    }

    /// True when `name` as configured (exact, wildcard or address) is served by these names: a
    /// wildcard only by the same wildcard.
    pub fn covers_name(&self, name: &str) -> bool {
        let lower = name.trim_end_matches('.').to_ascii_lowercase();
        match lower.strip_prefix('*') {
            Some(suffix) => self.wildcards.iter().any(|w| w == suffix),
            None => self.covers(lower.trim_matches(['[', ']'])),
        }
    }

    /// The exact names, as given (lower case).
    pub fn exact(&self) -> &[String] {
        &self.exact
    }

    /// The wildcard suffixes (`.example.com`).
    pub fn wildcards(&self) -> &[String] {
        &self.wildcards
    }

    /// True when there is no name at all.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcards.is_empty() && self.ips.is_empty()
    }

    /// Every name, as written in a certificate (`*.example.com` for wildcards).
    pub fn to_strings(&self) -> Vec<String> {
        self.exact
            .iter()
            .cloned()
            .chain(self.wildcards.iter().map(|s| format!("*{s}")))
            .chain(self.ips.iter().map(IpAddr::to_string))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_wildcard_and_address_names() {
        let names = ServerNames::new(["Example.com", "*.example.net", "127.0.0.1", "::1"]);
        assert!(names.covers("example.com"));
        assert!(!names.covers("www.example.com"));
        assert!(names.covers("a.example.net"));
        assert!(
            !names.covers("example.net"),
            "a wildcard does not cover its bare domain"
        );
        assert!(
            !names.covers("a.b.example.net"),
            "a wildcard covers one label"
        );
        assert!(!names.covers(".example.net"));
        assert!(names.covers("127.0.0.1"));
        assert!(names.covers("::1"));
        assert!(!names.covers("127.0.0.2"));
        assert!(names.covers_name("*.example.net"));
        assert!(!names.covers_name("*.example.com"));
        assert!(names.covers_name("x.example.net"));
        assert_eq!(
            names.to_strings(),
            ["example.com", "*.example.net", "127.0.0.1", "::1"]
        );
    }
}
