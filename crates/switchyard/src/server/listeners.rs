//! The set of listening sockets, published to every worker. Building the set for a new
//! configuration reuses the sockets of addresses that stay (never re-bound: nothing is
//! refused while reloading) and binds only the new ones. An HTTPS listener that stays keeps
//! its TLS acceptor, into which the server puts the new certificates once the reload is
//! certain ([`ListenerSet::prepare_tls`]).

use std::net::{Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};

use super::tls::{Prepared, TlsAcceptor, TlsError};
use super::StartError;
use crate::config::tls::CertificateStatus;
use crate::config::ConnLimits;
use crate::config::{Config, ListenAddr, ListenerConfig};
use crate::proxy::context::ListenerPolicy;
use crate::proxy::limits::conn::ConnCounter;

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
    /// The TLS side of an HTTPS listener.
    pub tls: Option<Arc<TlsAcceptor>>,
    /// What it does to requests beyond proxying them (redirect, identity headers removed).
    pub policy: Option<Arc<ListenerPolicy>>,
    /// Its connection limits (`[limits]`).
    pub limits: ConnLimits,
    /// Its connections, counted for those limits over every worker; kept while the
    /// socket stays, so a reload does not forget the connections open.
    pub conns: Arc<ConnCounter>,
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
        // The admin listener takes the first listener's timeouts and head limit and nothing
        // else: plaintext, no IP rules (its address is the restriction; `/metrics` can take a
        // token), no PROXY protocol, `[limits]`' connection limits.
        let first_settings = config.listeners.first().cloned().unwrap_or_default();
        let admin = config.admin.listen.map(|addr| ListenerConfig {
            addr,
            read_timeout: first_settings.read_timeout,
            write_timeout: first_settings.write_timeout,
            max_header_bytes: first_settings.max_header_bytes,
            ..ListenerConfig::default()
        });
        let wanted = config
            .listeners
            .iter()
            .map(|l| (l.clone(), false))
            .chain(admin.map(|l| (l, true)));
        let mut entries: Vec<ListenerEntry> = Vec::new();
        for (settings, admin_only) in wanted {
            let limits = settings.conn_limits(&config.limits.connections);
            let policy = if admin_only {
                None
            } else {
                ListenerPolicy::for_listener(&settings, &config.listeners)
            };
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
                    let tls = match (&kept.tls, &settings.tls) {
                        (Some(acceptor), Some(_)) => Some(acceptor.clone()),
                        (None, Some(tls)) => Some(acceptor(kept.local_addr, tls)?),
                        (_, None) => None,
                    };
                    ListenerEntry {
                        id: if kept.settings == settings
                            && kept.policy == policy
                            && kept.limits == limits
                        {
                            kept.id
                        } else {
                            NEXT_ID.fetch_add(1, Ordering::Relaxed)
                        },
                        settings,
                        tls,
                        policy,
                        limits,
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
                    let tls = match &settings.tls {
                        Some(tls) => Some(acceptor(local_addr, tls)?),
                        None => None,
                    };
                    ListenerEntry {
                        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                        addr: settings.addr,
                        local_addr,
                        socket: Arc::new(socket),
                        settings,
                        admin_only,
                        tls,
                        policy,
                        limits,
                        conns: Arc::default(),
                    }
                }
            };
            entries.push(entry);
        }
        Ok(ListenerSet { entries })
    }

    /// The TLS acceptors of the HTTPS listeners.
    pub fn acceptors(&self) -> impl Iterator<Item = &Arc<TlsAcceptor>> {
        self.entries.iter().filter_map(|e| e.tls.as_ref())
    }

    /// For each acceptor this set took over from `current`, its new settings and
    /// certificates, read now but not in force yet: the caller commits them once the reload
    /// is certain.
    pub fn prepare_tls(&self, current: &ListenerSet) -> Result<Vec<Prepared>, StartError> {
        let mut prepared = Vec::new();
        for entry in &self.entries {
            let (Some(acceptor), Some(settings)) = (&entry.tls, &entry.settings.tls) else {
                continue;
            };
            if current.acceptors().any(|a| Arc::ptr_eq(a, acceptor)) {
                let loaded = acceptor
                    .prepare(settings)
                    .map_err(|source| StartError::Tls {
                        listener: entry.local_addr,
                        source,
                    })?;
                prepared.push((acceptor.clone(), loaded));
            }
        }
        Ok(prepared)
    }

    /// The certificates every HTTPS listener serves.
    pub fn certificates(&self) -> Vec<CertificateStatus> {
        self.acceptors().flat_map(|a| a.statuses()).collect()
    }
}

/// The TLS acceptor of the listener bound at `local_addr`.
fn acceptor(
    local_addr: SocketAddr,
    tls: &Arc<crate::config::TlsConfig>,
) -> Result<Arc<TlsAcceptor>, StartError> {
    TlsAcceptor::new(local_addr.to_string(), tls)
        .map(Arc::new)
        .map_err(|source: TlsError| StartError::Tls {
            listener: local_addr,
            source,
        })
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
