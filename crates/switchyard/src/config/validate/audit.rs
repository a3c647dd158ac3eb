//! `[audit]` and `[server]`.

use std::path::Path;

use super::Checker;
use crate::config::audit::{AuditConfig, AuditTarget, ProcessConfig};
use crate::config::file::{AuditFile, ServerFile};

/// `[audit]`: a relative `path` is taken from the configuration file's directory.
pub(super) fn audit(file: &AuditFile, base: &Path, c: &mut Checker<'_>) -> AuditConfig {
    let mut config = AuditConfig::default();
    if let Some(path) = &file.path {
        let text = path.get_ref().0.as_str();
        if text.is_empty() {
            c.error(
                path.span(),
                "audit.path",
                "give a file, or \"-\" for standard output",
            );
        } else {
            config.target = Some(match AuditTarget::parse(text) {
                AuditTarget::File(p) if p.is_relative() => AuditTarget::File(base.join(p)),
                target => target,
            });
        }
    }
    if let Some(d) = file.interval {
        config.interval = d.0;
    }
    for (value, key, slot) in [
        (
            &file.max_clients,
            "audit.max_clients",
            &mut config.max_clients,
        ),
        (&file.queue, "audit.queue", &mut config.queue),
    ] {
        if let Some(value) = value {
            match *value.get_ref() {
                0 => c.error(value.span(), key, "must be at least 1"),
                n => *slot = n as usize,
            }
        }
    }
    config
}

/// `[server]`: user and group names (looked up when the proxy starts).
pub(super) fn server(file: &ServerFile, c: &mut Checker<'_>) -> ProcessConfig {
    let mut name = |value: &Option<toml::Spanned<crate::config::file::Str>>, key: &str| {
        let value = value.as_ref()?;
        let text = value.get_ref().0.trim();
        if text.is_empty() {
            c.error(value.span(), key, "must not be empty");
            return None;
        }
        Some(text.to_owned())
    };
    ProcessConfig {
        user: name(&file.user, "server.user"),
        group: name(&file.group, "server.group"),
    }
}
