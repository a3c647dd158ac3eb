//! A listener's `tls` table, checked against the files it names: every certificate readable,
//! its key the certificate's, valid now; every configured name (a certificate's `names`, the
//! `default`) covered by a certificate; the client CA bundle readable. Then the checks that
//! span sections: a route's exact host that no HTTPS listener could serve (when every listener
//! is HTTPS), and client certificate conditions on routes when no listener asks for client
//! certificates.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use http::HeaderName;
use toml::Spanned;

use super::Checker;
use crate::config::file::{Document, HstsFile, IdentityHeadersFile, TlsFile};
use crate::config::tls::{
    self, CertificateFiles, ClientAuth, ClientAuthMode, IdentityHeaders, ServerNames, TlsConfig,
    UnknownName,
};
use crate::config::ListenerConfig;

/// `listeners[i].tls` (`key`), with the names each certificate is served for; `None` when
/// something in it is wrong (reported). Relative paths are taken from `base`.
pub(super) fn tls(
    file: &Spanned<TlsFile>,
    key: &str,
    base: &Path,
    c: &mut Checker<'_>,
) -> Option<(TlsConfig, Vec<ServerNames>)> {
    let t = file.get_ref();
    let problems_before = c.problems.len();
    if t.certificates.get_ref().is_empty() {
        c.error(
            t.certificates.span(),
            format!("{key}.certificates"),
            "needs at least one certificate: [{ cert = \"cert.pem\", key = \"key.pem\" }]",
        );
    }
    let now = SystemTime::now();
    let mut certificates = Vec::new();
    let mut served = Vec::new();
    for (i, entry) in t.certificates.get_ref().iter().enumerate() {
        let ckey = format!("{key}.certificates[{i}]");
        let e = entry.get_ref();
        let files = CertificateFiles {
            cert: resolve(base, &e.cert.get_ref().0),
            key: resolve(base, &e.key.get_ref().0),
            names: e
                .names
                .iter()
                .flatten()
                .map(|n| n.get_ref().0.clone())
                .collect(),
        };
        let pair = match tls::load_pair(&files.cert, &files.key, now) {
            Ok(pair) => pair,
            Err(err) => {
                let (span, which) = if err.path() == files.cert {
                    (e.cert.span(), "cert")
                } else {
                    (e.key.span(), "key")
                };
                c.error(span, format!("{ckey}.{which}"), err.to_string());
                continue;
            }
        };
        let covers = &pair.info.names;
        if covers.is_empty() {
            c.error(
                e.cert.span(),
                format!("{ckey}.cert"),
                format!(
                    "the certificate in {} names no host (no DNS or IP subject alternative name)",
                    files.cert.display()
                ),
            );
        }
        for name in e.names.iter().flatten() {
            if !covers.covers_name(&name.get_ref().0) {
                c.error(
                    name.span(),
                    format!("{ckey}.names"),
                    format!(
                        "{:?} is not covered by the certificate in {} (it covers: {})",
                        name.get_ref().0,
                        files.cert.display(),
                        covers.to_strings().join(", ")
                    ),
                );
            }
        }
        served.push(if files.names.is_empty() {
            covers.clone()
        } else {
            ServerNames::new(files.names.iter().map(String::as_str))
        });
        certificates.push(files);
    }
    let default = default_certificate(t, key, &served, c);
    let unknown_name = unknown_name(t, key, c);
    let client_auth = client_auth(t, key, base, c);
    let identity_headers = identity_headers(t.identity_headers.as_ref(), key, c);
    if let (Some(ih), None) = (&t.identity_headers, &t.client_auth) {
        c.error(
            ih.span(),
            format!("{key}.identity_headers"),
            "needs client_auth: without client certificates there is no identity to pass on",
        );
    }
    let hsts = t.hsts.as_ref().and_then(|h| hsts(h, key, c));
    if c.problems.len() != problems_before {
        return None;
    }
    let config = TlsConfig {
        certificates,
        default,
        unknown_name,
        client_auth,
        resumption: t.resumption.unwrap_or(true),
        identity_headers,
        hsts,
    };
    Some((config, served))
}

/// `path` as given when absolute, else under `base` (the configuration file's folder).
fn resolve(base: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_owned()
    } else {
        base.join(path)
    }
}

/// `default`: the first certificate that covers the name; without it, the first one.
fn default_certificate(
    t: &TlsFile,
    key: &str,
    served: &[ServerNames],
    c: &mut Checker<'_>,
) -> usize {
    let Some(name) = &t.default else {
        return 0;
    };
    match served.iter().position(|n| n.covers_name(&name.get_ref().0)) {
        Some(i) => i,
        None => {
            c.error(
                name.span(),
                format!("{key}.default"),
                format!("no certificate covers {:?}", name.get_ref().0),
            );
            0
        }
    }
}

/// `unknown_name`: `default` or `reject`.
fn unknown_name(t: &TlsFile, key: &str, c: &mut Checker<'_>) -> UnknownName {
    let Some(value) = &t.unknown_name else {
        return UnknownName::Default;
    };
    match value.get_ref().0.as_str() {
        "default" => UnknownName::Default,
        "reject" => UnknownName::Reject,
        other => {
            c.error_suggest(
                value.span(),
                format!("{key}.unknown_name"),
                format!("{other:?} is not \"default\" or \"reject\""),
                other,
                &["default", "reject"],
            );
            UnknownName::Default
        }
    }
}

/// `client_auth = { mode, ca }`: a mode, and a CA bundle that can be read.
fn client_auth(t: &TlsFile, key: &str, base: &Path, c: &mut Checker<'_>) -> Option<ClientAuth> {
    let auth = t.client_auth.as_ref()?.get_ref();
    let mode = match auth.mode.as_ref().map(|m| (m, m.get_ref().0.as_str())) {
        None | Some((_, "required")) => ClientAuthMode::Required,
        Some((_, "optional")) => ClientAuthMode::Optional,
        Some((m, other)) => {
            c.error_suggest(
                m.span(),
                format!("{key}.client_auth.mode"),
                format!("{other:?} is not \"required\" or \"optional\""),
                other,
                &["required", "optional"],
            );
            ClientAuthMode::Required
        }
    };
    let ca = resolve(base, &auth.ca.get_ref().0);
    if let Err(e) = tls::read_roots(&ca) {
        c.error(
            auth.ca.span(),
            format!("{key}.client_auth.ca"),
            e.to_string(),
        );
    }
    Some(ClientAuth { mode, ca })
}

/// `identity_headers`: valid header names, each used once.
fn identity_headers(
    file: Option<&Spanned<IdentityHeadersFile>>,
    key: &str,
    c: &mut Checker<'_>,
) -> IdentityHeaders {
    let mut out = IdentityHeaders::default();
    let Some(file) = file else {
        return out;
    };
    let f = file.get_ref();
    for (value, field, slot) in [
        (&f.subject, "subject", &mut out.subject),
        (&f.sans, "sans", &mut out.sans),
        (&f.fingerprint, "fingerprint", &mut out.fingerprint),
    ] {
        let Some(value) = value else { continue };
        let hkey = format!("{key}.identity_headers.{field}");
        match HeaderName::from_bytes(value.get_ref().as_bytes()) {
            Ok(name) if is_reserved(&name) => c.error(
                value.span(),
                hkey,
                format!("{name} is set by switchyard or the protocol; choose another name"),
            ),
            Ok(name) => *slot = Some(name),
            Err(_) => c.error(value.span(), hkey, "is not a valid header name"),
        }
    }
    let names: Vec<&HeaderName> = out.names().collect();
    if (1..names.len()).any(|i| names[..i].contains(&names[i])) {
        c.error(
            file.span(),
            format!("{key}.identity_headers"),
            "each identity header needs a name of its own",
        );
    }
    out
}

/// Names a backend gets from switchyard or from the protocol itself.
fn is_reserved(name: &HeaderName) -> bool {
    use http::header;
    [
        header::HOST,
        header::CONNECTION,
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::TE,
        header::UPGRADE,
    ]
    .contains(name)
        || name.as_str().starts_with("x-forwarded-")
}

/// `hsts = { max_age, include_subdomains, preload }`.
fn hsts(h: &Spanned<HstsFile>, key: &str, c: &mut Checker<'_>) -> Option<http::HeaderValue> {
    let f = h.get_ref();
    let include = f.include_subdomains.unwrap_or(false);
    let preload = f.preload.unwrap_or(false);
    if preload && !include {
        c.error(
            h.span(),
            format!("{key}.hsts.preload"),
            "needs include_subdomains = true (browsers only preload whole domains)",
        );
        return None;
    }
    let max_age = f.max_age.map_or(tls::HSTS_MAX_AGE, |d| d.0);
    Some(tls::hsts_value(max_age, include, preload))
}

/// The checks across sections: with only HTTPS listeners, a route's exact host must be
/// covered by one of their certificates (else its requests always get `421`); a route that
/// asks for a client certificate needs a listener that asks clients for one. `served` holds,
/// per HTTPS listener, the names its certificates are served for.
pub(super) fn cross_checks(
    doc: &Document,
    listeners: &[ListenerConfig],
    served: &[Vec<ServerNames>],
    c: &mut Checker<'_>,
) {
    let all_https = !listeners.is_empty() && listeners.iter().all(|l| l.tls.is_some());
    let client_auth = listeners
        .iter()
        .any(|l| l.tls.as_ref().is_some_and(|t| t.client_auth.is_some()));
    for (i, route) in doc.routes.iter().enumerate() {
        let Some(m) = &route.get_ref().matcher else {
            continue;
        };
        if let Some(host) = m.host.as_ref().filter(|_| all_https) {
            let h = host.get_ref().0.to_ascii_lowercase();
            let covered = served.iter().flatten().any(|names| names.covers(&h));
            if !h.starts_with("*.") && !covered {
                c.error(
                    host.span(),
                    format!("routes[{i}].match.host"),
                    format!(
                        "no certificate of the HTTPS listeners covers {h:?}: its requests would all get 421"
                    ),
                );
            }
        }
        let client_conditions = [
            m.client_san.as_ref().map(|v| (v.span(), "client_san")),
            m.client_cert.as_ref().map(|v| (v.span(), "client_cert")),
        ];
        for (span, field) in client_conditions.into_iter().flatten() {
            if !client_auth {
                c.error(
                    span,
                    format!("routes[{i}].match.{field}"),
                    "no listener asks for client certificates (listeners[N].tls.client_auth)",
                );
            }
        }
    }
}
