//! The audit log's settings (`[audit]`, `--audit-log`) and the process's user and group
//! (`[server] user` / `group`, `--user` / `--group`). Both take effect at start only: a
//! reload keeps the audit log and the identity the process started with.

use std::path::PathBuf;
use std::time::Duration;

use super::defaults;

/// Where audit lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditTarget {
    /// Standard output (`"-"`).
    Stdout,
    /// A file, appended to, reopened on SIGUSR1.
    File(PathBuf),
}

/// `[audit]`: the security events log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditConfig {
    /// Where to write (`None`: no audit log, the default).
    pub target: Option<AuditTarget>,
    /// Refusals are summarised per client, event and key over this long: one line each.
    pub interval: Duration,
    /// Clients tracked in one interval; refusals from more are counted on one `"others"`
    /// line per event.
    pub max_clients: usize,
    /// Events waiting for the writer; when it is full, new ones are dropped and counted.
    pub queue: usize,
}

/// `[server]`: the identity the process serves under.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessConfig {
    /// The user to switch to once the listeners are bound (`None`: stay).
    pub user: Option<String>,
    /// The group to switch to (`None`: the user's primary group).
    pub group: Option<String>,
}

// === impl AuditTarget ===

impl AuditTarget {
    /// `"-"` is standard output; anything else a file.
    pub fn parse(text: &str) -> Self {
        if text == "-" {
            AuditTarget::Stdout
        } else {
            AuditTarget::File(PathBuf::from(text))
        }
    }
}

impl std::fmt::Display for AuditTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuditTarget::Stdout => f.write_str("-"),
            AuditTarget::File(path) => write!(f, "{}", path.display()),
        }
    }
}

// === impl AuditConfig ===

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            target: None,
            interval: defaults::AUDIT_INTERVAL,
            max_clients: defaults::AUDIT_MAX_CLIENTS,
            queue: defaults::AUDIT_QUEUE,
        }
    }
}
