//! The JSON documents: `/metrics` is the [`Snapshot`] itself; `/health` is the status, the
//! uptime, the configuration version, each backend's availability and circuit state, and the
//! certificates the HTTPS listeners serve with their expiry.

use serde::Serialize;

use super::snapshot::{circuit_name, BackendSnapshot, CertificateSnapshot, Snapshot};
use crate::upstream::breaker;

/// The `/health` document.
#[derive(Debug, Serialize)]
pub struct Health {
    status: &'static str,
    uptime: String,
    version: Option<String>,
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

#[derive(Debug, Serialize)]
struct BackendHealth {
    pool: String,
    url: String,
    /// Active health checks pass (always true without checks).
    healthy: bool,
    /// Ejected for consecutive failed answers now.
    ejected: bool,
    #[serde(serialize_with = "circuit_name")]
    circuit: breaker::State,
    consecutive_failures: u32,
}

// === impl Health ===

impl Health {
    /// The document for a proxy up for `uptime` (Go-style, `2m5s`), running configuration
    /// `version`, with these backends and certificates.
    pub fn new(
        uptime: String,
        version: Option<String>,
        backends: Vec<BackendSnapshot>,
        certificates: Vec<CertificateSnapshot>,
    ) -> Self {
        let backends = backends
            .into_iter()
            .map(|b| BackendHealth {
                pool: b.pool,
                url: b.url,
                healthy: b.healthy,
                ejected: b.ejected,
                circuit: b.circuit,
                consecutive_failures: b.consecutive_failures,
            })
            .collect();
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
            status: "UP",
            uptime,
            version,
            backends,
            certificates,
        }
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
