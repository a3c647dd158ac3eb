//! `docs/metrics.md` lists exactly what `/metrics` (JSON and Prometheus) and `/health` emit:
//! the names of its tables are read and compared, both ways, with a real proxy's answers.

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::pki::{config_in, CertDir, TestCa};
use support::{backend, TestProxy};

const DOC: &str = include_str!("../../../docs/metrics.md");

/// The names in the first column of the table after `<!-- names: {section} -->`.
fn documented(section: &str) -> BTreeSet<String> {
    let marker = format!("<!-- names: {section} -->");
    let start = DOC
        .find(&marker)
        .unwrap_or_else(|| panic!("no {marker} in docs/metrics.md"));
    let names: BTreeSet<String> = DOC[start + marker.len()..]
        .lines()
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| l.starts_with('|'))
        .skip(2) // header and separator
        .filter_map(|row| {
            let cell = row.split('|').nth(1)?.trim();
            Some(cell.strip_prefix('`')?.strip_suffix('`')?.to_owned())
        })
        .collect();
    assert!(!names.is_empty(), "empty table {section}");
    names
}

fn keys(value: &Value, what: &str) -> BTreeSet<String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("{what} is not an object: {value:#}"))
        .keys()
        .cloned()
        .collect()
}

/// Fails naming what is emitted but undocumented and what is documented but not emitted.
fn same(section: &str, emitted: &BTreeSet<String>) -> usize {
    let doc = documented(section);
    let undocumented: Vec<_> = emitted.difference(&doc).collect();
    let missing: Vec<_> = doc.difference(emitted).collect();
    assert!(
        undocumented.is_empty() && missing.is_empty(),
        "{section}: emitted but not in docs/metrics.md: {undocumented:?}; \
         in docs/metrics.md but not emitted: {missing:?}"
    );
    doc.len()
}

#[tokio::test]
async fn documented_metrics_are_the_ones_emitted() {
    let b = backend("b").await;
    let ca = TestCa::new("metrics doc CA");
    let dir = CertDir::new("metrics-doc");
    dir.pair("a", &ca.server(&["a.example.com"]));
    let proxy = TestProxy::start(config_in(
        &dir,
        r#"tls = { certificates = [{ cert = "a.pem", key = "a.key" }] }"#,
        &format!(
            "[admin]\nlisten = \"127.0.0.1:0\"\n[pools.p]\nbackends = [\"{}\"]",
            b.url()
        ),
    ));
    // A reload attempt, so that its time is reported too.
    proxy.server.shared().record_reload(None);
    let admin = proxy
        .server
        .listener_addrs()
        .into_iter()
        .find_map(|(addr, admin)| admin.then_some(addr))
        .expect("admin listener");
    let url = |path: &str| format!("http://{admin}{path}");

    let m = support::get(&url("/metrics")).await.json();
    let mut counted = same("metrics.top", &keys(&m, "/metrics"));
    counted += same("metrics.backend", &keys(&m["backends"][0], "backends[0]"));
    counted += same("metrics.config", &keys(&m["config"], "config"));
    counted += same("metrics.access", &keys(&m["access"], "access"));
    counted += same(
        "metrics.client_rate_limit",
        &keys(&m["client_rate_limit"], "client_rate_limit"),
    );
    counted += same(
        "metrics.certificate",
        &keys(&m["certificates"][0], "certificates[0]"),
    );

    let text = support::get(&url("/metrics?format=prometheus"))
        .await
        .text();
    let families: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect();
    counted += same("prometheus", &families);
    let samples: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect();
    assert!(
        samples.is_subset(&families),
        "samples without a declared family: {:?}",
        samples.difference(&families).collect::<Vec<_>>()
    );

    let h = support::get(&url("/health")).await.json();
    counted += same("health.top", &keys(&h, "/health"));
    counted += same("health.backend", &keys(&h["backends"][0], "backends[0]"));
    counted += same(
        "health.certificate",
        &keys(&h["certificates"][0], "certificates[0]"),
    );
    println!(
        "docs/metrics.md: {counted} names, equal to what /metrics and /health emit ({} Prometheus families)",
        families.len()
    );
    proxy.stop().await;
}
