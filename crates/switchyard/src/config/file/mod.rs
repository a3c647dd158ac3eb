//! The configuration file as written: serde types mirroring the TOML, with unknown keys
//! rejected, durations in Go syntax and `${VAR}` interpolated from the environment.
//!
//! Reading is done section by section (each listener, pool and route on its own) so that one
//! mistake does not hide the others; within a section, a key that fails is set aside and the
//! section read again (`section.rs`), so every bad key is reported, each with its span in the
//! file. `validate/` then turns these types into a [`super::Config`].
//!
//! The types, by section: `global.rs` (top-level keys, `[admin]`, `[[listeners]]`,
//! `[rate_limit]`, `[websocket]`), `access.rs` (`[access]`, a route's `access`), `jwt.rs` (`[access.jwt]`), `tls.rs` (a listener's `tls`), `pool.rs` (`[pools.NAME]`),
//! `route.rs` (`[[routes]]`); `values.rs` holds the strings and durations they are made of.

mod access;
mod audit;
mod global;
mod jwt;
mod limits;
mod pool;
mod route;
mod section;
mod tls;
mod values;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::client_limit::ClientRateLimitFile;
use super::error::{suggest, Problem};
use section::{array_items, section, section_keeping};

pub use access::{AccessFile, RouteAccessFile};
pub use audit::{AuditFile, ServerFile};
pub use global::{AdminFile, GlobalFile, ListenerFile, RateLimitFile, WebSocketFile};
pub use jwt::{JwtFile, OneOrMany};
pub use limits::{LimitsFile, SecurityHeadersFile, SecurityHeadersTable, Size};
pub use pool::{
    BackendFile, BreakerFile, HealthCheckFile, OutlierFile, PoolFile, RetryFile, UpstreamTlsFile,
};
pub use route::{HeadersFile, MatchFile, RedirectFile, RespondFile, RouteFile};
pub use tls::{CertificateFile, ClientAuthFile, HstsFile, IdentityHeadersFile, TlsFile};
pub use values::{interpolate, Dur, PositiveDur, Str};

/// The whole file, read section by section.
#[derive(Debug, Default)]
pub struct Document {
    /// Top-level scalars.
    pub global: GlobalFile,
    /// `[admin]`.
    pub admin: Option<AdminFile>,
    /// `[[listeners]]`, with the span of each entry.
    pub listeners: Vec<Spanned<ListenerFile>>,
    /// `[rate_limit]`.
    pub rate_limit: Option<RateLimitFile>,
    /// `[client_rate_limit]`.
    pub client_rate_limit: Option<ClientRateLimitFile>,
    /// `[websocket]`.
    pub websocket: Option<WebSocketFile>,
    /// `[access]`.
    pub access: Option<Spanned<AccessFile>>,
    /// `[limits]`.
    pub limits: Option<LimitsFile>,
    /// `[audit]`.
    pub audit: Option<AuditFile>,
    /// `[server]`.
    pub server: Option<ServerFile>,
    /// `[pools.NAME]`, with the name's span.
    pub pools: Vec<(Spanned<String>, PoolFile)>,
    /// Names of pools that are in the file but could not be read (already reported).
    pub broken_pools: Vec<String>,
    /// `[[routes]]`, with the span of each entry.
    pub routes: Vec<Spanned<RouteFile>>,
    /// For each route, the keys set aside because they were wrong (already reported).
    pub routes_set_aside: Vec<Vec<String>>,
    /// The text is not valid TOML: nothing was read.
    pub unparsed: bool,
}

const TOP_LEVEL_TABLES: &[&str] = &[
    "admin",
    "limits",
    "listeners",
    "rate_limit",
    "client_rate_limit",
    "pools",
    "routes",
    "websocket",
    "access",
    "audit",
    "server",
];
/// Read into `GlobalFile` (`security_headers` may also be a `[security_headers]` table).
const TOP_LEVEL_SCALARS: &[&str] = &[
    "workers",
    "shutdown_timeout",
    "log_format",
    "security_headers",
];

/// Reads `text`. Every problem found is pushed to `problems`; what could be read is returned.
pub fn read(text: &str, problems: &mut Vec<Problem>) -> Document {
    let (root, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        // What the parser recovered around a syntax error is guesswork, and later syntax
        // errors are often echoes of the first: report the first one alone.
        if let Some(err) = syntax.into_iter().next() {
            problems.push(Problem::new(
                err.span().unwrap_or(0..0),
                None,
                err.message().to_owned(),
            ));
        }
        return Document {
            unparsed: true,
            ..Document::default()
        };
    }
    let root_span = root.span();
    let root = root.into_inner();
    let mut doc = Document::default();
    let mut scalars = DeTable::new();
    for (key, value) in root {
        let name = key.get_ref().to_string();
        match name.as_str() {
            "admin" => doc.admin = section(&name, value, problems),
            "rate_limit" => doc.rate_limit = section(&name, value, problems),
            "client_rate_limit" => doc.client_rate_limit = section(&name, value, problems),
            "websocket" => doc.websocket = section(&name, value, problems),
            "access" => {
                let span = value.span();
                doc.access = section(&name, value, problems).map(|a| Spanned::new(span, a));
            }
            "limits" => doc.limits = section(&name, value, problems),
            "audit" => doc.audit = section(&name, value, problems),
            "server" => doc.server = section(&name, value, problems),
            "listeners" => read_listeners(value, &mut doc, problems),
            "routes" => read_routes(value, &mut doc, problems),
            "pools" => read_pools(value, &mut doc, problems),
            _ if TOP_LEVEL_SCALARS.contains(&name.as_str()) => {
                scalars.insert(key, value);
            }
            _ => unknown_key(&key, problems),
        }
    }
    let scalars = Spanned::new(root_span, DeValue::Table(scalars));
    doc.global = section("", scalars, problems).unwrap_or_default();
    doc
}

/// `[[listeners]]`, each entry on its own.
fn read_listeners(value: Spanned<DeValue<'_>>, doc: &mut Document, problems: &mut Vec<Problem>) {
    for (i, item) in array_items("listeners", value, problems) {
        let span = item.span();
        let path = format!("listeners[{i}]");
        if let Some(l) = section::<ListenerFile>(&path, item, problems) {
            doc.listeners.push(Spanned::new(span, l));
        }
    }
}

/// `[[routes]]`, each entry on its own, with the keys set aside in each.
fn read_routes(value: Spanned<DeValue<'_>>, doc: &mut Document, problems: &mut Vec<Problem>) {
    for (i, item) in array_items("routes", value, problems) {
        let span = item.span();
        let path = format!("routes[{i}]");
        let mut set_aside = Vec::new();
        if let Some(r) = section_keeping::<RouteFile>(&path, item, problems, &mut set_aside) {
            doc.routes.push(Spanned::new(span, r));
            doc.routes_set_aside.push(set_aside);
        }
    }
}

/// `[pools.NAME]`, each pool on its own; those that cannot be read are named in
/// [`Document::broken_pools`].
fn read_pools(value: Spanned<DeValue<'_>>, doc: &mut Document, problems: &mut Vec<Problem>) {
    let span = value.span();
    let DeValue::Table(pools) = value.into_inner() else {
        problems.push(Problem::new(
            span,
            Some("pools".into()),
            "expected a table of pools: [pools.NAME]".into(),
        ));
        return;
    };
    for (pool_name, pool) in pools {
        let pool_span = pool_name.span();
        let pool_name = pool_name.get_ref().to_string();
        let path = format!("pools.{pool_name}");
        match section::<PoolFile>(&path, pool, problems) {
            Some(p) => doc.pools.push((Spanned::new(pool_span, pool_name), p)),
            None => doc.broken_pools.push(pool_name),
        }
    }
}

/// A top-level key that is neither a known table nor a known scalar.
fn unknown_key(key: &Spanned<std::borrow::Cow<'_, str>>, problems: &mut Vec<Problem>) {
    let name = key.get_ref().to_string();
    let known: Vec<&str> = TOP_LEVEL_TABLES
        .iter()
        .chain(TOP_LEVEL_SCALARS)
        .copied()
        .collect();
    problems.push(
        Problem::new(
            key.span(),
            Some(name.clone()),
            format!("unknown key `{name}`"),
        )
        .with_suggestion(suggest(&name, &known)),
    );
}
