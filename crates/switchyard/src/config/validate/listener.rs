//! `[[listeners]]`: addresses (none twice, see [`overlaps`]), timeouts, the header limit, TLS
//! (`tls.rs`) and the redirect of a plaintext listener to HTTPS.

use std::path::Path;
use std::sync::Arc;

use toml::Spanned;

use super::{tls, Checker};
use crate::config::file::ListenerFile;
use crate::config::tls::ServerNames;
use crate::config::{ListenAddr, ListenerConfig};

/// The port HTTPS redirects go to when neither `https_port` nor an HTTPS listener says.
const HTTPS_PORT: u16 = 443;

/// The listeners of the file (without any, the default one, `:3000`), and for each HTTPS one
/// the names its certificates are served for. Relative certificate paths are taken from
/// `base`.
pub(super) fn listeners(
    files: &[Spanned<ListenerFile>],
    base: &Path,
    c: &mut Checker<'_>,
) -> (Vec<ListenerConfig>, Vec<Vec<ServerNames>>) {
    if files.is_empty() {
        return (vec![ListenerConfig::default()], Vec::new());
    }
    let mut out: Vec<ListenerConfig> = Vec::new();
    let mut served = Vec::new();
    let mut seen: Vec<(ListenAddr, usize)> = Vec::new();
    for (i, l) in files.iter().enumerate() {
        let Some(addr) = address(i, l.get_ref(), &seen, c) else {
            continue;
        };
        seen.push((addr, i));
        let mut listener = listener(i, addr, l.get_ref(), c);
        if let Some(file) = &l.get_ref().tls {
            if let Some((config, names)) = tls::tls(file, &format!("listeners[{i}].tls"), base, c) {
                listener.tls = Some(Arc::new(config));
                served.push(names);
            }
        }
        out.push(listener);
    }
    let https_port = out
        .iter()
        .find(|l| l.tls.is_some() && l.addr.port != 0)
        .map_or(HTTPS_PORT, |l| l.addr.port);
    for ((i, l), listener) in seen.iter().map(|(_, i)| (*i, &files[*i])).zip(&mut out) {
        redirect(i, l.get_ref(), listener, https_port, c);
    }
    (out, served)
}

/// `redirect_to_https` (plaintext listeners only) and `https_port` (only with it).
fn redirect(
    i: usize,
    l: &ListenerFile,
    listener: &mut ListenerConfig,
    https_port: u16,
    c: &mut Checker<'_>,
) {
    let on = l.redirect_to_https.as_ref().filter(|r| *r.get_ref());
    match (on, &l.https_port) {
        (Some(r), _) if l.tls.is_some() => c.error(
            r.span(),
            format!("listeners[{i}].redirect_to_https"),
            "is for plaintext listeners; this one is HTTPS already",
        ),
        (Some(_), Some(port)) if *port.get_ref() == 0 => c.error(
            port.span(),
            format!("listeners[{i}].https_port"),
            "must be a port from 1 to 65535",
        ),
        (Some(_), port) => {
            listener.redirect_to_https = Some(port.as_ref().map_or(https_port, |p| *p.get_ref()));
        }
        (None, Some(port)) => c.error(
            port.span(),
            format!("listeners[{i}].https_port"),
            "is the port of redirect_to_https, which is not set",
        ),
        (None, None) => {}
    }
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
    listener.ip_rules = super::access::ip_rules(
        l.allow_ip.as_deref(),
        l.deny_ip.as_deref(),
        &format!("listeners[{i}]"),
        c,
    );
    listener.proxy_protocol = l.proxy_protocol.as_ref().is_some_and(|p| *p.get_ref());
    listener.max_connections = l.max_connections;
    listener.max_connections_per_ip = l.max_connections_per_ip;
    listener
}

/// A listener with `proxy_protocol` believes the header only from `[access]
/// trusted_proxies`: without them the setting could never apply.
pub(super) fn proxy_protocol_trust(
    files: &[Spanned<ListenerFile>],
    trusted: bool,
    c: &mut Checker<'_>,
) {
    if trusted {
        return;
    }
    for (i, l) in files.iter().enumerate() {
        if let Some(p) = l.get_ref().proxy_protocol.as_ref().filter(|p| *p.get_ref()) {
            c.error(
                p.span(),
                format!("listeners[{i}].proxy_protocol"),
                "needs [access] trusted_proxies: the PROXY header is believed only from them",
            );
        }
    }
}

/// Two listen addresses that cannot both be bound (same port, and one of them is every
/// interface or both are the same address).
pub(super) fn overlaps(a: &ListenAddr, b: &ListenAddr) -> bool {
    a.port == b.port && a.port != 0 && (a.ip.is_none() || b.ip.is_none() || a.ip == b.ip)
}
