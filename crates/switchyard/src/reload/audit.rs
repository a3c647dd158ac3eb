//! A reload's audit line: the outcome, the SHA-256 of the file in force before and of the
//! file read, and what changed (listeners, pools and routes added and removed).

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{json, Value};

use crate::config::tls::Digest;
use crate::config::Config;
use crate::telemetry::audit::AuditLog;

/// Listeners, pools and routes added and removed from `before` to `after`.
pub(super) fn changes(before: &Config, after: &Config) -> Value {
    let listeners = |c: &Config| -> BTreeSet<String> {
        c.listeners.iter().map(|l| l.addr.to_string()).collect()
    };
    let pools =
        |c: &Config| -> BTreeSet<String> { c.pools.iter().map(|p| p.name.clone()).collect() };
    let routes =
        |c: &Config| -> BTreeSet<String> { c.routes.iter().map(|r| r.name.clone()).collect() };
    let mut out = serde_json::Map::new();
    for (what, old, new) in [
        ("listeners", listeners(before), listeners(after)),
        ("pools", pools(before), pools(after)),
        ("routes", routes(before), routes(after)),
    ] {
        let added: Vec<&String> = new.difference(&old).collect();
        let removed: Vec<&String> = old.difference(&new).collect();
        out.insert(what.into(), json!({ "added": added, "removed": removed }));
    }
    Value::Object(out)
}

/// Writes the line: `config_reloaded`, or `config_rejected` with the error.
pub(super) fn record(
    audit: &AuditLog,
    before: &Config,
    path: &Path,
    reason: &str,
    changes: Option<Value>,
    error: Option<String>,
) {
    let sha256_before = before.source.as_ref().map(|s| s.sha256.clone());
    // The file as read now (a rejected one too); unreadable: none.
    let sha256_after = Digest::of_file(path).ok().map(|d| d.to_hex());
    let mut fields = json!({
        "file": path.display().to_string(),
        "reason": reason,
        "sha256_before": sha256_before,
        "sha256_after": sha256_after,
    });
    if let Some(changes) = changes {
        fields["changes"] = changes;
    }
    let event = match error {
        Some(error) => {
            fields["error"] = json!(error);
            "config_rejected"
        }
        None => "config_reloaded",
    };
    audit.event(event, fields);
}
