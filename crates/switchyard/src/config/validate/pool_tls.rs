//! `[pools.NAME.tls]`: TLS to the pool's `https://` backends. The files are read and checked
//! here (a CA bundle that cannot be read or used, a client certificate without its key, a
//! key that does not match its certificate, an expired certificate), each problem reported
//! with its key, so a reload with a bad file keeps the configuration in force.

use std::path::Path;

use toml::Spanned;

use super::Checker;
use crate::config::file::{PoolFile, UpstreamTlsFile};
use crate::config::upstream_tls::{self, CaBundle, ClientCert, ClientCertError};
use crate::config::{BackendUrl, UpstreamTlsConfig};

/// The pool's `tls` table over the defaults (system roots, each backend's host as the name),
/// and a check that every `https://` backend's host can be verified.
pub(super) fn tls(p: &PoolFile, key: &str, c: &mut Checker<'_>) -> UpstreamTlsConfig {
    let mut out = UpstreamTlsConfig::default();
    let pool_key = key;
    let key = format!("{key}.tls");
    if let Some(t) = &p.tls {
        if !has_https_backend(p) {
            c.error(
                t.span(),
                key.clone(),
                "the pool has no https:// backend: tls applies only to https:// backends",
            );
        }
        table(t.get_ref(), &key, &mut out, c);
    }
    if out.server_name.is_none() {
        hosts_are_names(p, pool_key, c);
    }
    out
}

/// The keys of the `tls` table.
fn table(t: &UpstreamTlsFile, key: &str, out: &mut UpstreamTlsConfig, c: &mut Checker<'_>) {
    if let Some(ca) = &t.ca {
        match CaBundle::load(Path::new(&ca.get_ref().0)) {
            Ok(bundle) => out.ca = Some(bundle),
            Err(e) => c.error(ca.span(), format!("{key}.ca"), e),
        }
    }
    if let Some(name) = &t.server_name {
        match upstream_tls::server_name(&name.get_ref().0) {
            Ok(n) => out.server_name = Some(n),
            Err(e) => c.error(name.span(), format!("{key}.server_name"), e),
        }
    }
    match (&t.cert, &t.key) {
        (Some(cert), Some(k)) => {
            let paths = (Path::new(&cert.get_ref().0), Path::new(&k.get_ref().0));
            match ClientCert::load(paths.0, paths.1) {
                Ok(client) => out.client_cert = Some(client),
                Err(ClientCertError::Cert(e)) => c.error(cert.span(), format!("{key}.cert"), e),
                Err(ClientCertError::Key(e)) => c.error(k.span(), format!("{key}.key"), e),
            }
        }
        (Some(cert), None) => missing(cert, &format!("{key}.cert"), "tls.key", c),
        (None, Some(k)) => missing(k, &format!("{key}.key"), "tls.cert", c),
        (None, None) => {}
    }
    if let Some(skip) = &t.insecure_skip_verify {
        out.insecure_skip_verify = *skip.get_ref();
    }
}

/// A client certificate or key given without the other half.
fn missing<T>(given: &Spanned<T>, key: &str, other: &str, c: &mut Checker<'_>) {
    c.error(
        given.span(),
        key,
        format!("a client certificate needs both tls.cert and tls.key: {other} is missing"),
    );
}

fn has_https_backend(p: &PoolFile) -> bool {
    p.backends
        .get_ref()
        .iter()
        .filter_map(|b| b.get_ref().url.0.parse::<BackendUrl>().ok())
        .any(|url| url.scheme.is_tls())
}

/// Each `https://` backend's host is a name a certificate can be verified against (a URL
/// that does not parse is reported by the backends' own check).
fn hosts_are_names(p: &PoolFile, pool_key: &str, c: &mut Checker<'_>) {
    for (i, b) in p.backends.get_ref().iter().enumerate() {
        let Ok(url) = b.get_ref().url.0.parse::<BackendUrl>() else {
            continue;
        };
        if url.scheme.is_tls() {
            if let Err(e) = upstream_tls::server_name(&url.host) {
                c.error(
                    b.span(),
                    format!("{pool_key}.backends[{i}]"),
                    format!("{e}: set tls.server_name to the name its certificate carries"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use crate::config::validate::from_text;

    /// (line, key, message) of each problem of `pool` (the lines of `[pools.p]`).
    fn problems(pool: &str) -> Vec<(usize, String, String)> {
        let text = format!("[pools.p]\n{pool}\n");
        match from_text(Path::new("t.toml"), &text) {
            Ok(_) => Vec::new(),
            Err(e) => e
                .errors
                .iter()
                .map(|l| {
                    let key = l.problem.key.clone().unwrap_or_default();
                    (l.line, key, l.problem.message.clone())
                })
                .collect(),
        }
    }

    fn temp(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("switchyard-pool-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn tls_keys_are_checked_where_they_are() {
        let got = problems("backends = [\"http://127.0.0.1:80\"]\ntls = { server_name = \"a b\" }");
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!((got[0].0, got[0].1.as_str()), (3, "pools.p.tls"));
        assert!(got[0].2.contains("no https:// backend"), "{got:?}");
        assert_eq!(got[1].1, "pools.p.tls.server_name");

        let got = problems("backends = [\"https://api.internal\"]\ntls = { cert = \"c.pem\" }");
        let keys: Vec<&str> = got.iter().map(|p| p.1.as_str()).collect();
        assert_eq!(keys, ["pools.p.tls.cert"], "{got:?}");
        assert!(got[0].2.contains("tls.key is missing"), "{got:?}");

        assert_eq!(
            problems("backends = [\"https://127.0.0.1\", \"https://localhost:8443\"]"),
            []
        );
    }

    #[test]
    fn an_expired_client_certificate_is_refused() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["client".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let cert = params.self_signed(&key).unwrap();
        let cert_path = temp("expired.pem", &cert.pem());
        let key_path = temp("expired.key", &key.serialize_pem());
        let pool = format!(
            "backends = [\"https://127.0.0.1\"]\ntls = {{ cert = {:?}, key = {:?} }}",
            cert_path.display().to_string(),
            key_path.display().to_string()
        );
        let got = problems(&pool);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].1, "pools.p.tls.cert");
        assert!(got[0].2.contains("expired on"), "{got:?}");
    }
}
