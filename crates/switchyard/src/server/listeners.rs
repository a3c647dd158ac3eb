//! The set of listening sockets, published to every worker. Building the set for a new
//! configuration reuses the sockets of addresses that stay (never re-bound: nothing is
//! refused while reloading) and binds only the new ones.

use std::net::{Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};

use super::StartError;
use crate::config::{Config, ListenAddr, ListenerConfig};

/// Every listener in force.
#[derive(Debug, Default)]
pub struct ListenerSet {
    /// Proxy listeners first, then the admin listener if there is one.
    pub entries: Vec<ListenerEntry>,
}

/// One listener.
#[derive(Debug, Clone)]
pub struct ListenerEntry {
    /// Changes whenever the socket or its settings change, so workers restart its accept
    /// loop.
    pub id: u64,
    /// The configured address.
    pub addr: ListenAddr,
    /// The bound address (the real port when the configuration said 0).
    pub local_addr: SocketAddr,
    /// The socket.
    pub socket: Arc<std::net::TcpListener>,
    /// Timeouts and limits of its connections.
    pub settings: ListenerConfig,
    /// Serves only the admin endpoints.
    pub admin_only: bool,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl ListenerSet {
    /// The listeners `config` asks for. Addresses already in `current` keep their socket;
    /// the first proxy listener takes `first` when given (a socket the caller bound).
    pub fn bind(
        config: &Config,
        current: Option<&ListenerSet>,
        mut first: Option<std::net::TcpListener>,
    ) -> Result<ListenerSet, StartError> {
        let admin = config.admin.listen.map(|addr| ListenerConfig {
            addr,
            ..config.listeners.first().copied().unwrap_or_default()
        });
        let wanted = config
            .listeners
            .iter()
            .map(|l| (*l, false))
            .chain(admin.map(|l| (l, true)));
        let mut entries: Vec<ListenerEntry> = Vec::new();
        for (settings, admin_only) in wanted {
            // An address that stays keeps its socket. Addresses with port 0 ("any free
            // port") are all alike: the n-th of them keeps the n-th such socket. A socket is
            // never given to two listeners.
            let kept = current.and_then(|c| {
                c.entries.iter().find(|e| {
                    e.addr == settings.addr
                        && e.admin_only == admin_only
                        && !entries
                            .iter()
                            .any(|taken| Arc::ptr_eq(&taken.socket, &e.socket))
                })
            });
            let entry = match (kept, first.take()) {
                (Some(kept), unused) => {
                    first = unused;
                    ListenerEntry {
                        id: if kept.settings == settings {
                            kept.id
                        } else {
                            NEXT_ID.fetch_add(1, Ordering::Relaxed)
                        },
                        settings,
                        ..kept.clone()
                    }
                }
                (None, given) => {
                    let socket = match given {
                        Some(socket) => socket,
                        None => bind(settings.addr)?,
                    };
                    let local_addr = socket.local_addr().map_err(|source| StartError::Bind {
                        addr: settings.addr,
                        source,
                    })?;
                    ListenerEntry {
                        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                        addr: settings.addr,
                        local_addr,
                        socket: Arc::new(socket),
                        settings,
                        admin_only,
                    }
                }
            };
            entries.push(entry);
        }
        Ok(ListenerSet { entries })
    }
}

/// Binds a listening socket: `:port` binds IPv6 `[::]` accepting IPv4 too (as Go does),
/// falling back to `0.0.0.0` on machines without IPv6.
pub fn bind(addr: ListenAddr) -> Result<std::net::TcpListener, StartError> {
    let result = match addr.ip {
        Some(ip) => bind_socket(SocketAddr::new(ip, addr.port), false),
        None => bind_socket(
            SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), addr.port),
            true,
        )
        .or_else(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => Err(e),
            _ => bind_socket(SocketAddr::from(([0, 0, 0, 0], addr.port)), false),
        }),
    };
    result.map_err(|source| match source.kind() {
        std::io::ErrorKind::AddrInUse => StartError::AddrInUse { addr },
        _ => StartError::Bind { addr, source },
    })
}

fn bind_socket(addr: SocketAddr, dual_stack: bool) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if dual_stack {
        socket.set_only_v6(false)?;
    }
    // Restarting must not wait for old connections in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}
