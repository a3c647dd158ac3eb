//! The process flags over a configuration: `--audit-log` (`[audit] path`), `--user` and
//! `--group` (`[server]`). `--allow-root` is read by the binary at start, not applied.

use super::apply::Flags;
use crate::config::{AuditTarget, Config};

// === impl Flags ===

impl Flags<'_> {
    /// Applies the process flags given (they are never defaulted).
    pub(super) fn process(self, config: &mut Config) {
        let cli = self.cli;
        if let Some(target) = &cli.audit_log {
            config.audit.target = Some(AuditTarget::parse(target));
        }
        if let Some(user) = &cli.user {
            config.process.user = Some(user.clone());
        }
        if let Some(group) = &cli.group {
            config.process.group = Some(group.clone());
        }
    }
}
