//! `[[listeners]]`: addresses (none twice, see [`overlaps`]), timeouts and the header limit.

use toml::Spanned;

use super::Checker;
use crate::config::file::ListenerFile;
use crate::config::{ListenAddr, ListenerConfig};

/// The listeners of the file; without any, the default one (`:3000`).
pub(super) fn listeners(
    files: &[Spanned<ListenerFile>],
    c: &mut Checker<'_>,
) -> Vec<ListenerConfig> {
    if files.is_empty() {
        return vec![ListenerConfig::default()];
    }
    let mut out: Vec<ListenerConfig> = Vec::new();
    let mut seen: Vec<(ListenAddr, usize)> = Vec::new();
    for (i, l) in files.iter().enumerate() {
        let Some(addr) = address(i, l.get_ref(), &seen, c) else {
            continue;
        };
        seen.push((addr, i));
        out.push(listener(i, addr, l.get_ref(), c));
    }
    out
}

/// The address of `listeners[i]`, unless it is invalid or overlaps one `seen` before it.
fn address(
    i: usize,
    l: &ListenerFile,
    seen: &[(ListenAddr, usize)],
    c: &mut Checker<'_>,
) -> Option<ListenAddr> {
    let key = format!("listeners[{i}].address");
    let addr = match l.address.get_ref().0.parse::<ListenAddr>() {
        Ok(addr) => addr,
        Err(e) => {
            c.error(
                l.address.span(),
                key,
                format!("{:?} {e}", l.address.get_ref().0),
            );
            return None;
        }
    };
    if let Some((_, first)) = seen.iter().find(|(a, _)| overlaps(a, &addr)) {
        c.error(
            l.address.span(),
            key,
            format!("duplicate listener address {addr} (also listeners[{first}])"),
        );
        return None;
    }
    Some(addr)
}

/// `listeners[i]` on `addr`, with its timeouts and header limit.
fn listener(i: usize, addr: ListenAddr, l: &ListenerFile, c: &mut Checker<'_>) -> ListenerConfig {
    let mut listener = ListenerConfig {
        addr,
        ..ListenerConfig::default()
    };
    if let Some(d) = l.read_timeout {
        listener.read_timeout = d.0;
    }
    if let Some(d) = l.write_timeout {
        listener.write_timeout = d.0;
    }
    if let Some(n) = &l.max_header_bytes {
        if (8192..=1 << 20).contains(n.get_ref()) {
            listener.max_header_bytes = *n.get_ref();
        } else {
            c.error(
                n.span(),
                format!("listeners[{i}].max_header_bytes"),
                "must be between 8192 and 1048576",
            );
        }
    }
    listener
}

/// Two listen addresses that cannot both be bound (same port, and one of them is every
/// interface or both are the same address).
pub(super) fn overlaps(a: &ListenAddr, b: &ListenAddr) -> bool {
    a.port == b.port && a.port != 0 && (a.ip.is_none() || b.ip.is_none() || a.ip == b.ip)
}
