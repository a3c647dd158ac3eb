//! Listen addresses (`:3000`, `127.0.0.1:3000`, `[::1]:3000`) and backend URLs
//! (`http://localhost:8080`, `https://api.internal`, `h2c://localhost:50051`), parsed once
//! when the configuration is
//! built.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

/// Where a listener binds. `ip: None` is Go's `:3000`: every interface, IPv6 and IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenAddr {
    /// The interface address, or `None` for all interfaces.
    pub ip: Option<IpAddr>,
    /// The port; `0` asks the kernel for a free one.
    pub port: u16,
}

/// Why a listen address did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenAddrError {
    /// No `:port` part.
    #[error("expected HOST:PORT or :PORT, e.g. :3000 or 127.0.0.1:3000")]
    MissingPort,
    /// The port is not a number from 0 to 65535.
    #[error("port {0:?} is not a number from 0 to 65535")]
    BadPort(String),
    /// The host is not an IP address or `localhost`.
    #[error("host {0:?} is not an IP address (use e.g. 127.0.0.1, [::1] or leave it out for all interfaces)")]
    BadHost(String),
}

impl FromStr for ListenAddr {
    type Err = ListenAddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (host, port) = s.rsplit_once(':').ok_or(ListenAddrError::MissingPort)?;
        let port: u16 = port
            .parse()
            .map_err(|_| ListenAddrError::BadPort(port.to_owned()))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let ip = match host {
            "" | "*" => None,
            "localhost" => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            _ => Some(
                host.parse::<IpAddr>()
                    .map_err(|_| ListenAddrError::BadHost(host.to_owned()))?,
            ),
        };
        Ok(ListenAddr { ip, port })
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            None => write!(f, ":{}", self.port),
            Some(ip) => write!(f, "{}", SocketAddr::new(ip, self.port)),
        }
    }
}

/// How a backend is spoken to, from its URL's scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Scheme {
    /// `http://`: plain TCP, HTTP/1.1 (or HTTP/2 with prior knowledge when the pool says `h2`).
    #[default]
    Http,
    /// `https://`: TLS, verified as the pool's `tls` says (see `upstream::tls`); ALPN picks
    /// the HTTP version.
    Https,
    /// `h2c://`: cleartext HTTP/2 with prior knowledge, as Traefik spells it.
    H2c,
}

/// One backend: where to connect and what to put in front of the request path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BackendUrl {
    /// The scheme: plain or TLS.
    pub scheme: Scheme,
    /// Host name or IP address, without brackets. For `https`, also the name its
    /// certificate is verified against and sent as SNI (no SNI for an IP address), unless
    /// the pool's `tls.server_name` says otherwise.
    pub host: String,
    /// TCP port (the scheme's default, 80 or 443, when the URL gives none).
    pub port: u16,
    /// Path prefix joined in front of every request path (`""` for none), as Go's
    /// `NewSingleHostReverseProxy` does.
    pub base_path: String,
}

/// Why a backend URL did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendUrlError {
    /// Not `http(s)://host[:port][/path]`.
    #[error("is not a URL of the form http://host:port or https://host:port")]
    Malformed,
    /// A scheme other than http, https and h2c.
    #[error("scheme {0:?} is not supported (use http://, https:// or h2c://)")]
    Scheme(String),
    /// No host.
    #[error("has no host")]
    NoHost,
    /// The port is not a number from 1 to 65535.
    #[error("port {0:?} is not a number from 1 to 65535")]
    BadPort(String),
    /// A query, fragment or user info, which a backend address cannot carry.
    #[error("must not contain a query, fragment or user info")]
    Extra,
    /// Neither a host name nor an IP address (an IPv6 address goes in brackets).
    #[error("host {0:?} is not a host name or IP address (IPv6 in brackets: http://[::1]:8080)")]
    BadHost(String),
    /// A base path that is not a valid URL path.
    #[error("path {0:?} is not a valid URL path")]
    BadPath(String),
}

impl FromStr for BackendUrl {
    type Err = BackendUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (scheme, rest) = s.split_once("://").ok_or(BackendUrlError::Malformed)?;
        let scheme =
            Scheme::from_name(scheme).ok_or_else(|| BackendUrlError::Scheme(scheme.to_owned()))?;
        if rest.contains(['?', '#', '@']) || rest.contains(char::is_whitespace) {
            return Err(BackendUrlError::Extra);
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let (host, port) = split_host_port(authority)?;
        if host.is_empty() {
            return Err(BackendUrlError::NoHost);
        }
        // Found by fuzzing: a host of any bytes was taken, and printed back as something
        // that no longer parsed. A host is a name, an IPv4 address, or (bracketed) IPv6.
        let bracketed = authority.starts_with('[');
        let host_ok = if bracketed {
            host.parse::<std::net::Ipv6Addr>().is_ok()
        } else {
            host.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        };
        if !host_ok {
            return Err(BackendUrlError::BadHost(host.to_owned()));
        }
        if !path.is_empty() && path.parse::<http::uri::PathAndQuery>().is_err() {
            return Err(BackendUrlError::BadPath(path.to_owned()));
        }
        let port = match port {
            None => scheme.default_port(),
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p != 0 => p,
                _ => return Err(BackendUrlError::BadPort(p.to_owned())),
            },
        };
        Ok(BackendUrl {
            scheme,
            host: host.to_owned(),
            port,
            base_path: path.trim_end_matches('/').to_owned(),
        })
    }
}

fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), BackendUrlError> {
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or(BackendUrlError::Malformed)?;
        return match after {
            "" => Ok((host, None)),
            _ => after
                .strip_prefix(':')
                .map(|p| (host, Some(p)))
                .ok_or(BackendUrlError::Malformed),
        };
    }
    Ok(match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

// === impl Scheme ===

impl Scheme {
    /// The scheme called `name` (any case).
    pub fn from_name(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("http") {
            Some(Scheme::Http)
        } else if name.eq_ignore_ascii_case("https") {
            Some(Scheme::Https)
        } else if name.eq_ignore_ascii_case("h2c") {
            Some(Scheme::H2c)
        } else {
            None
        }
    }

    /// The scheme as written in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::H2c => "h2c",
        }
    }

    /// The port of a URL that gives none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http | Scheme::H2c => 80,
            Scheme::Https => 443,
        }
    }

    /// True when connections are made over TLS.
    pub fn is_tls(self) -> bool {
        match self {
            Scheme::Http | Scheme::H2c => false,
            Scheme::Https => true,
        }
    }
}

// === impl BackendUrl ===

impl BackendUrl {
    /// A plain `http://host:port` backend without a base path.
    pub fn http(host: &str, port: u16) -> Self {
        BackendUrl {
            scheme: Scheme::Http,
            host: host.to_owned(),
            port,
            base_path: String::new(),
        }
    }

    /// `host:port`, an IPv6 host in brackets: the `Host` (or `:authority`) it answers to.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for BackendUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.scheme.as_str();
        write!(f, "{scheme}://{}{}", self.authority(), self.base_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        assert_eq!(
            ":3000".parse(),
            Ok(ListenAddr {
                ip: None,
                port: 3000
            })
        );
        let v4: ListenAddr = "127.0.0.1:0".parse().unwrap();
        assert_eq!(v4.ip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        let v6: ListenAddr = "[::1]:3000".parse().unwrap();
        assert_eq!(v6.to_string(), "[::1]:3000");
        assert_eq!(
            ":99999".parse::<ListenAddr>(),
            Err(ListenAddrError::BadPort("99999".into()))
        );
        assert_eq!(
            "3000".parse::<ListenAddr>(),
            Err(ListenAddrError::MissingPort)
        );
        assert!(matches!(
            "example.com:80".parse::<ListenAddr>(),
            Err(ListenAddrError::BadHost(_))
        ));
    }

    #[test]
    fn backend_forms() {
        let b: BackendUrl = "http://localhost:8080".parse().unwrap();
        assert_eq!(
            (b.host.as_str(), b.port, b.base_path.as_str()),
            ("localhost", 8080, "")
        );
        let b: BackendUrl = "http://[::1]:81/api/".parse().unwrap();
        assert_eq!(
            (b.host.as_str(), b.port, b.base_path.as_str()),
            ("::1", 81, "/api")
        );
        assert_eq!(b.to_string(), "http://[::1]:81/api");
        let b: BackendUrl = "HTTP://example.com".parse().unwrap();
        assert_eq!((b.scheme, b.port), (Scheme::Http, 80));
        let b: BackendUrl = "https://api.internal/v1".parse().unwrap();
        assert_eq!((b.scheme, b.port), (Scheme::Https, 443));
        assert_eq!(b.to_string(), "https://api.internal:443/v1");
        assert_eq!(b.authority(), "api.internal:443");
        let b: BackendUrl = "HTTPS://[::1]:8443".parse().unwrap();
        assert_eq!(
            (b.scheme, b.authority()),
            (Scheme::Https, "[::1]:8443".into())
        );
        let b: BackendUrl = "h2c://127.0.0.1:50051".parse().unwrap();
        assert_eq!(b.scheme, Scheme::H2c);
        assert_eq!(b.to_string(), "h2c://127.0.0.1:50051");
        assert_eq!(b.authority(), "127.0.0.1:50051");
        assert_eq!(
            "ftp://x".parse::<BackendUrl>(),
            Err(BackendUrlError::Scheme("ftp".into()))
        );
        assert_eq!(
            "localhost:8080".parse::<BackendUrl>(),
            Err(BackendUrlError::Malformed)
        );
        assert_eq!(
            "http://:80".parse::<BackendUrl>(),
            Err(BackendUrlError::NoHost)
        );
        assert_eq!(
            "http://h:0".parse::<BackendUrl>(),
            Err(BackendUrlError::BadPort("0".into()))
        );
        assert_eq!(
            "http://h/?q".parse::<BackendUrl>(),
            Err(BackendUrlError::Extra)
        );
    }

    /// Found by the `addr` fuzz target: a host of arbitrary bytes parsed, and its printed
    /// form (bracketed, for its colons) did not parse back.
    #[test]
    fn garbage_hosts_and_paths_are_refused() {
        let crash = "hTTP://`2||||||r:::rr\u{1}]\0\0<7:386";
        assert!(matches!(
            crash.parse::<BackendUrl>(),
            Err(BackendUrlError::BadHost(_))
        ));
        assert!(matches!(
            "http://::1:80".parse::<BackendUrl>(),
            Err(BackendUrlError::BadHost(_))
        ));
        assert!(matches!(
            "http://[not-v6]:80".parse::<BackendUrl>(),
            Err(BackendUrlError::BadHost(_))
        ));
        assert!(matches!(
            "http://a.example:80/x\u{1}y".parse::<BackendUrl>(),
            Err(BackendUrlError::BadPath(_))
        ));
        for ok in [
            "http://my_service:80",
            "https://10.0.0.1",
            "h2c://[2001:db8::1]:9000/v1",
        ] {
            let url: BackendUrl = ok.parse().expect(ok);
            assert_eq!(
                url.to_string().parse::<BackendUrl>().as_ref(),
                Ok(&url),
                "{ok}"
            );
        }
    }
}
