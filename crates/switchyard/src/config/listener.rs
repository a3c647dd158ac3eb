//! `[[listeners]]` in force: a listener's address, timeouts, head limit, TLS, redirect, IP
//! rules, PROXY protocol and its own connection limits.

use std::sync::Arc;
use std::time::Duration;

use super::{defaults, ConnLimits, IpRules, ListenAddr, TlsConfig};

/// One listener and its client-side (downstream) limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Address.
    pub addr: ListenAddr,
    /// Deadline for a request head, counted from the first byte or from the end of the
    /// previous response (so it is also the keep-alive idle timeout, as in Go); also the
    /// longest wait for the next piece of a request body.
    pub read_timeout: Duration,
    /// Longest a response write may stall, waiting for the client or for the backend's
    /// next body bytes.
    pub write_timeout: Duration,
    /// Limit on the request line plus headers; larger gets `431`.
    pub max_header_bytes: usize,
    /// HTTPS only, with these settings; `None`: plaintext.
    pub tls: Option<Arc<TlsConfig>>,
    /// A plaintext listener that answers every request (the admin endpoints aside) with a
    /// `308` to the same URL over HTTPS on this port.
    pub redirect_to_https: Option<u16>,
    /// Which client addresses may talk to it (`None`: any).
    pub ip_rules: Option<Arc<IpRules>>,
    /// Connections from `[access] trusted_proxies` start with a PROXY protocol header, whose
    /// source address is the client (`server::proxy_protocol`).
    pub proxy_protocol: bool,
    /// This listener's own `max_connections` (`None`: `[limits]`'s).
    pub max_connections: Option<u32>,
    /// This listener's own `max_connections_per_ip` (`None`: `[limits]`'s).
    pub max_connections_per_ip: Option<u32>,
}

impl ListenerConfig {
    /// The connection limits of this listener: `[limits]`' with its own counts over them.
    pub fn conn_limits(&self, limits: &ConnLimits) -> ConnLimits {
        ConnLimits {
            max_connections: self.max_connections.unwrap_or(limits.max_connections),
            max_connections_per_ip: self
                .max_connections_per_ip
                .unwrap_or(limits.max_connections_per_ip),
            ..*limits
        }
    }
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            addr: ListenAddr {
                ip: None,
                port: 3000,
            },
            read_timeout: defaults::READ_TIMEOUT,
            write_timeout: defaults::WRITE_TIMEOUT,
            max_header_bytes: defaults::MAX_HEADER_BYTES,
            tls: None,
            redirect_to_https: None,
            ip_rules: None,
            proxy_protocol: false,
            max_connections: None,
            max_connections_per_ip: None,
        }
    }
}
