//! `[audit]` and `[server]`.

use serde::Deserialize;
use toml::Spanned;

use super::{PositiveDur, Str};

/// `[audit]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFile {
    /// A file, or `"-"` for standard output.
    pub path: Option<Spanned<Str>>,
    /// How long refusals are summarised over.
    pub interval: Option<PositiveDur>,
    /// Clients tracked per interval.
    pub max_clients: Option<Spanned<u32>>,
    /// Events waiting for the writer.
    pub queue: Option<Spanned<u32>>,
}

/// `[server]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    /// The user to run as once the listeners are bound.
    pub user: Option<Spanned<Str>>,
    /// The group to run as.
    pub group: Option<Spanned<Str>>,
}
