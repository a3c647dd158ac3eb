//! `[limits]`, and each route's limits and security headers: methods that are methods,
//! media types that are media types, presets that exist, header values that can be sent.

use http::{HeaderValue, Method};
use toml::Spanned;

use super::Checker;
use crate::config::file::{
    LimitsFile, PoolFile, RouteFile, SecurityHeadersFile, SecurityHeadersTable, Str,
};
use crate::config::limits::{Limits, OverLimit, RouteLimits, SecurityHeaders};
use crate::config::{RouteAction, RouteConfig, RouteMatch};

/// The presets `security_headers` knows.
const PRESETS: &[&str] = &["recommended", "off"];

/// `[limits]`, over the defaults.
pub(super) fn limits(file: &LimitsFile, c: &mut Checker<'_>) -> Limits {
    let mut limits = Limits::default();
    if let Some(size) = file.max_body_size {
        limits.max_body_size = size.0;
    }
    if let Some(len) = &file.max_uri_length {
        match usize::try_from(len.get_ref().0) {
            Ok(0) | Err(_) => c.error(
                len.span(),
                "limits.max_uri_length",
                "must be between 1 byte and what memory holds (the default is 8KiB)",
            ),
            Ok(n) => limits.max_uri_length = n,
        }
    }
    if let Some(size) = &file.max_backend_header_bytes {
        // hyper's smallest read buffer is 8 KiB.
        match usize::try_from(size.get_ref().0) {
            Ok(n) if (8192..=1 << 20).contains(&n) => limits.max_backend_header_bytes = n,
            _ => c.error(
                size.span(),
                "limits.max_backend_header_bytes",
                "must be between 8KiB and 1MiB (the default is 32KiB)",
            ),
        }
    }
    let conn = &mut limits.connections;
    let set = |v: Option<u32>, into: &mut u32| {
        if let Some(v) = v {
            *into = v;
        }
    };
    set(file.max_connections, &mut conn.max_connections);
    set(
        file.max_connections_per_ip,
        &mut conn.max_connections_per_ip,
    );
    set(
        file.max_requests_per_connection,
        &mut conn.max_requests_per_connection,
    );
    set(file.max_requests_per_ip, &mut conn.max_requests_per_ip);
    if let Some(size) = &file.response_buffer {
        match usize::try_from(size.get_ref().0) {
            Ok(n) if (4096..=16 << 20).contains(&n) => conn.response_buffer = n,
            _ => c.error(
                size.span(),
                "limits.response_buffer",
                "must be between 4KiB and 16MiB (the default is 32KiB)",
            ),
        }
    }
    if let Some(over) = &file.over_connection_limit {
        match over.get_ref().0.as_str() {
            "close" => conn.over_limit = OverLimit::Close,
            "503" => conn.over_limit = OverLimit::Unavailable,
            other => c.error_suggest(
                over.span(),
                "limits.over_connection_limit",
                format!("unknown value {other:?} (use \"close\" or \"503\")"),
                other,
                &["close", "503"],
            ),
        }
    }
    limits
}

/// A route's `max_body_size`, `allowed_methods`, `allowed_content_types` and
/// `security_headers`.
pub(super) fn route_limits(
    r: &RouteFile,
    matcher: &RouteMatch,
    key: &str,
    c: &mut Checker<'_>,
) -> RouteLimits {
    RouteLimits {
        max_body_size: r.max_body_size.map(|s| s.0),
        allowed_methods: r
            .allowed_methods
            .as_ref()
            .and_then(|m| methods(m, matcher, &format!("{key}.allowed_methods"), c)),
        allowed_content_types: r.allowed_content_types.as_ref().map_or_else(Vec::new, |t| {
            content_types(t, &format!("{key}.allowed_content_types"), c)
        }),
        security_headers: r
            .security_headers
            .as_ref()
            .and_then(|s| security_headers(s, &format!("{key}.security_headers"), c)),
    }
}

/// Routes without their own `max_body_size` take their pool's.
pub(super) fn inherit_body_size(routes: &mut [RouteConfig], pools: &[(Spanned<String>, PoolFile)]) {
    for route in routes {
        let RouteAction::Forward { pool } = &route.action else {
            continue;
        };
        if route.limits.max_body_size.is_none() {
            route.limits.max_body_size = pools
                .iter()
                .find(|(name, _)| name.get_ref() == pool)
                .and_then(|(_, p)| p.max_body_size)
                .map(|s| s.0);
        }
    }
}

/// `allowed_methods`: at least one, each a method token; with `match.methods`, at least one
/// of those (else the route could never pass a request).
fn methods(
    list: &Spanned<Vec<Spanned<Str>>>,
    matcher: &RouteMatch,
    key: &str,
    c: &mut Checker<'_>,
) -> Option<(Vec<Method>, HeaderValue)> {
    if list.get_ref().is_empty() {
        c.error(
            list.span(),
            key,
            "lists no method: name at least one, or remove the key to allow any",
        );
        return None;
    }
    let mut methods: Vec<Method> = Vec::new();
    for m in list.get_ref() {
        let text = m.get_ref().0.trim();
        let upper = text.to_ascii_uppercase();
        match Method::from_bytes(upper.as_bytes()) {
            Ok(method) if method != Method::CONNECT && !text.is_empty() => {
                if !methods.contains(&method) {
                    methods.push(method);
                }
            }
            _ => c.error(
                m.span(),
                key,
                format!("{text:?} is not a method a route can take"),
            ),
        }
    }
    let matched = &matcher.methods;
    if !matched.is_empty() && !matched.iter().any(|m| methods.contains(m)) {
        c.error(
            list.span(),
            key,
            "allows none of the methods in `match.methods`: the route could never pass a request",
        );
    }
    // `HEAD` is answered like `GET`: allow it with it, as servers do.
    if methods.contains(&Method::GET) && !methods.contains(&Method::HEAD) {
        methods.push(Method::HEAD);
    }
    let allow = methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let allow = HeaderValue::from_str(&allow).ok()?;
    Some((methods, allow))
}

/// `allowed_content_types`: media types (`type/subtype`, `type/*`), lower-cased.
fn content_types(list: &Spanned<Vec<Spanned<Str>>>, key: &str, c: &mut Checker<'_>) -> Vec<String> {
    if list.get_ref().is_empty() {
        c.error(
            list.span(),
            key,
            "lists no media type: name at least one, or remove the key to allow any",
        );
    }
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let mut types = Vec::new();
    for t in list.get_ref() {
        let text = t.get_ref().0.trim().to_ascii_lowercase();
        let valid = match text.split_once('/') {
            Some((ty, "*")) => token(ty),
            Some((ty, sub)) => token(ty) && token(sub),
            None => false,
        };
        if valid {
            types.push(text);
        } else {
            c.error(
                t.span(),
                key,
                format!(
                    "{:?} is not a media type (write \"type/subtype\" or \"type/*\", without parameters)",
                    t.get_ref().0
                ),
            );
        }
    }
    types
}

/// `security_headers`: a preset, or a table of changes from one.
fn security_headers(
    file: &Spanned<SecurityHeadersFile>,
    key: &str,
    c: &mut Checker<'_>,
) -> Option<SecurityHeaders> {
    let (preset, table) = match file.get_ref() {
        SecurityHeadersFile::Preset(name) => (Some(Spanned::new(file.span(), name.clone())), None),
        SecurityHeadersFile::Table(t) => (t.preset.clone(), Some(&**t)),
    };
    let mut headers = match preset {
        None => SecurityHeaders::default(),
        Some(name) => match name.get_ref().0.as_str() {
            "recommended" => SecurityHeaders::recommended(),
            "off" => SecurityHeaders::default(),
            other => {
                let at = if table.is_some() {
                    key.to_owned() + ".preset"
                } else {
                    key.to_owned()
                };
                c.error_suggest(
                    name.span(),
                    at,
                    format!("unknown preset {other:?} (use \"recommended\" or \"off\")"),
                    other,
                    PRESETS,
                );
                return None;
            }
        },
    };
    if let Some(t) = table {
        table_changes(t, &mut headers, key, c);
    }
    // Kept even when empty: a route's explicit "off" is not replaced by the top-level
    // default (`inherit_security_headers`).
    Some(headers)
}

/// The top-level `security_headers` for routes without their own; a route's explicit "off"
/// (no header at all) becomes `None`, so the request path has nothing to do for it.
pub(super) fn inherit_security_headers(
    routes: &mut [RouteConfig],
    file: Option<&Spanned<SecurityHeadersFile>>,
    c: &mut Checker<'_>,
) {
    let default = file.and_then(|f| security_headers(f, "security_headers", c));
    for route in routes {
        let own = route.limits.security_headers.take();
        route.limits.security_headers = match own {
            None => default.clone(),
            Some(h) => Some(h),
        }
        .filter(|h| *h != SecurityHeaders::default());
    }
}

/// The headers a `security_headers` table sets (an empty string leaves one out).
fn table_changes(
    t: &SecurityHeadersTable,
    headers: &mut SecurityHeaders,
    key: &str,
    c: &mut Checker<'_>,
) {
    let mut value = |v: &Option<Spanned<Str>>, name: &str, into: &mut Option<HeaderValue>| {
        let Some(v) = v else { return };
        let text = v.get_ref().0.trim();
        if text.is_empty() {
            *into = None;
            return;
        }
        let text = if name == "frame_ancestors" {
            format!("frame-ancestors {text}")
        } else {
            text.to_owned()
        };
        match HeaderValue::from_str(&text) {
            Ok(h) => *into = Some(h),
            Err(_) => c.error(
                v.span(),
                format!("{key}.{name}"),
                format!("{:?} cannot be sent as a header value", v.get_ref().0),
            ),
        }
    };
    value(&t.hsts, "hsts", &mut headers.hsts);
    value(
        &t.content_type_options,
        "content_type_options",
        &mut headers.content_type_options,
    );
    value(
        &t.frame_options,
        "frame_options",
        &mut headers.frame_options,
    );
    value(
        &t.frame_ancestors,
        "frame_ancestors",
        &mut headers.frame_ancestors,
    );
    value(
        &t.referrer_policy,
        "referrer_policy",
        &mut headers.referrer_policy,
    );
    if let Some(hide) = t.hide_server {
        headers.hide_server = hide;
    }
}
