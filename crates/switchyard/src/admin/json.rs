//! The JSON documents: `/metrics` is the [`Snapshot`] itself; `/health` is the status (see
//! [`super::health`]), the uptime, the configuration version, each backend's availability
//! and circuit state, and the certificates the HTTPS listeners serve with their expiry.

use serde::Serialize;

use super::health::{BackendHealth, Status};
use super::snapshot::{CertificateSnapshot, Snapshot};

/// The `/health` document.
#[derive(Debug, Serialize)]
pub struct Health {
    status: Status,
    uptime: String,
    /// The hash of the configuration file in force (`null` when running from flags alone).
    config_version: Option<String>,
    backends: Vec<BackendHealth>,
    certificates: Vec<CertificateHealth>,
}

#[derive(Debug, Serialize)]
struct CertificateHealth {
    listener: String,
    names: Vec<String>,
    file: String,
    /// UTC, `2026-01-31T12:00:00Z`.
    expires: String,
}

// === impl Health ===

impl Health {
    /// The document for a proxy in `status`, up for `uptime` (Go-style, `2m5s`), running
    /// configuration `config_version`, with these backends and certificates.
    pub fn new(
        status: Status,
        uptime: String,
        config_version: Option<String>,
        backends: Vec<BackendHealth>,
        certificates: Vec<CertificateSnapshot>,
    ) -> Self {
        let certificates = certificates
            .into_iter()
            .map(|c| CertificateHealth {
                listener: c.listener,
                names: c.names,
                file: c.file,
                expires: c.expires,
            })
            .collect();
        Health {
            status,
            uptime,
            config_version,
            backends,
            certificates,
        }
    }

    /// The status reported.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The pretty-printed JSON text.
    pub fn to_json(&self) -> String {
        // Serialising plain numbers and strings cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// The `/metrics` JSON text.
pub fn metrics(snapshot: &Snapshot) -> String {
    // Serialising plain numbers and strings cannot fail.
    serde_json::to_string_pretty(snapshot).unwrap_or_default()
}
