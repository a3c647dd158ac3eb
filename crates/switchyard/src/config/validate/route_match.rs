//! A route's `match` table: host (exact or `*.` wildcard), path (exact or prefix), methods,
//! headers and the client's certificate.

use http::Method;

use super::headers::header_pair;
use super::{valid_path, Checker};
use crate::config::file::MatchFile;
use crate::config::route::{ClientMatch, HostMatch, PathMatch, RouteMatch};

/// The conditions of `routes[N].match` (`key` is `routes[N]`); without a table, none.
pub(super) fn route_match(m: Option<&MatchFile>, key: &str, c: &mut Checker<'_>) -> RouteMatch {
    let mut out = RouteMatch::default();
    let Some(m) = m else {
        return out;
    };
    if let Some(host) = &m.host {
        if let Some(h) = host_match(&host.get_ref().0, host.span(), key, c) {
            out.host = h;
        }
    }
    if let Some(p) = path_match(m, key, c) {
        out.path = p;
    }
    for m in m.methods.iter().flatten() {
        let raw = &m.get_ref().0;
        match Method::from_bytes(raw.to_ascii_uppercase().as_bytes()) {
            Ok(method) if method != Method::CONNECT => out.methods.push(method),
            _ => c.error(
                m.span(),
                format!("{key}.match.methods"),
                format!("{raw:?} is not a method"),
            ),
        }
    }
    for (name, value) in m.headers.iter().flatten() {
        let hkey = format!("{key}.match.headers.{}", name.get_ref());
        if let Some(pair) = header_pair(name, value, hkey, c) {
            out.headers.push(pair);
        }
    }
    if m.client_cert.as_ref().is_some_and(|v| *v.get_ref()) {
        out.client = ClientMatch::Certificate;
    }
    if let Some(san) = &m.client_san {
        if san.get_ref().0.trim().is_empty() {
            c.error(san.span(), format!("{key}.match.client_san"), "is empty");
        } else {
            out.client = ClientMatch::San(san.get_ref().0.clone());
        }
    }
    out
}

/// `match.host`: a host name or IP address (no port), or `*.` and a host name.
fn host_match(
    raw: &str,
    span: std::ops::Range<usize>,
    key: &str,
    c: &mut Checker<'_>,
) -> Option<HostMatch> {
    let h = raw.to_ascii_lowercase();
    let valid_label = |s: &str| {
        !s.is_empty()
            && s.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
            })
    };
    if let Some(suffix) = h.strip_prefix("*.") {
        if valid_label(suffix) {
            return Some(HostMatch::Wildcard(format!(".{suffix}")));
        }
        c.error(
            span,
            format!("{key}.match.host"),
            format!("{h:?} is not a valid wildcard host"),
        );
        None
    } else if valid_label(&h) || h.parse::<std::net::IpAddr>().is_ok() {
        Some(HostMatch::Exact(h))
    } else {
        c.error(
            span,
            format!("{key}.match.host"),
            format!("{h:?} is not a host name (use e.g. api.example.com or *.example.com, without port)"),
        );
        None
    }
}

/// `match.path` or `match.path_prefix` (not both); a prefix of `/` is no condition.
fn path_match(m: &MatchFile, key: &str, c: &mut Checker<'_>) -> Option<PathMatch> {
    match (&m.path, &m.path_prefix) {
        (Some(p), Some(_)) => {
            c.error(
                p.span(),
                format!("{key}.match.path"),
                "use either path or path_prefix, not both",
            );
            None
        }
        (Some(p), None) if valid_path(&p.get_ref().0) => {
            Some(PathMatch::Exact(p.get_ref().0.clone()))
        }
        (Some(p), None) => {
            c.error(p.span(), format!("{key}.match.path"), "must start with /");
            None
        }
        (None, Some(p)) if valid_path(&p.get_ref().0) => {
            (p.get_ref().0 != "/").then(|| PathMatch::Prefix(p.get_ref().0.clone()))
        }
        (None, Some(p)) => {
            c.error(
                p.span(),
                format!("{key}.match.path_prefix"),
                "must start with /",
            );
            None
        }
        (None, None) => None,
    }
}
