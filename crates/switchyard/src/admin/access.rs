//! The access-control figures of `/metrics`: requests refused with `401` and `403`, and the
//! requests that presented each API key, by the key's name (never its secret). The JSON
//! document has them under `access`; the Prometheus families are
//! `switchyard_unauthenticated_total`, `switchyard_forbidden_total`,
//! `switchyard_api_key_requests_total{key}`, `switchyard_jwt_refused_total{reason}` and
//! `switchyard_forward_auth_total{outcome}` (forward auth: allowed, denied, failed).

use std::collections::BTreeMap;
use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::TypedMetric;
use serde::Serialize;

use super::names;
use crate::metrics::{Metrics, JWT_REFUSALS};
use crate::state::State;

/// The access-control figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AccessSnapshot {
    /// Requests refused with `401` (no valid API key).
    pub unauthenticated: u64,
    /// Requests refused with `403` (an address refused, or a key without the role).
    pub forbidden: u64,
    /// Requests that presented each known key (valid ones; kept across reloads by name).
    pub api_keys: Vec<KeySnapshot>,
    /// Requests refused for their JWT, by reason (`metrics::JWT_REFUSALS`; each also in
    /// `unauthenticated`, or for `claims` in `forbidden`).
    pub jwt_refused: BTreeMap<&'static str, u64>,
    /// How the routes' forward auth services answered.
    pub forward_auth: ForwardAuthSnapshot,
}

/// Forward auth outcomes, over every route that has it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ForwardAuthSnapshot {
    /// Requests let through (`2xx`).
    pub allowed: u64,
    /// Requests refused: the service's answer went to the client.
    pub denied: u64,
    /// Requests refused `503`: no usable answer.
    pub failed: u64,
}

/// One API key's figures.
#[derive(Debug, Clone, Serialize)]
pub struct KeySnapshot {
    /// The key's name.
    pub name: String,
    /// Requests that presented it.
    pub requests: u64,
}

// === impl AccessSnapshot ===

impl AccessSnapshot {
    /// Reads the figures now.
    pub fn read(metrics: &Metrics, state: &State) -> Self {
        let c = metrics.counters();
        let api_keys = state
            .config
            .access
            .keys
            .keys()
            .iter()
            .zip(&state.api_key_uses)
            .map(|(key, uses)| KeySnapshot {
                name: key.name.to_string(),
                requests: uses.sum(|a| a),
            })
            .collect();
        AccessSnapshot {
            unauthenticated: c.sum(|s| &s.unauthenticated),
            forbidden: c.sum(|s| &s.forbidden),
            api_keys,
            forward_auth: ForwardAuthSnapshot {
                allowed: c.sum(|s| &s.forward_auth_allowed),
                denied: c.sum(|s| &s.forward_auth_denied),
                failed: c.sum(|s| &s.forward_auth_failed),
            },
            jwt_refused: JWT_REFUSALS
                .iter()
                .enumerate()
                .map(|(i, reason)| (*reason, c.sum(|s| &s.jwt_refused[i])))
                .collect(),
        }
    }

    /// The Prometheus families.
    pub fn encode(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        for (name, help, value) in [
            (
                names::UNAUTHENTICATED,
                "Requests refused with 401: no valid API key.",
                self.unauthenticated,
            ),
            (
                names::FORBIDDEN,
                "Requests refused with 403: a client address refused, or a key without the role.",
                self.forbidden,
            ),
        ] {
            let metric = ConstCounter::new(value);
            metric.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                ConstCounter::<u64>::TYPE,
            )?)?;
        }
        let mut family = encoder.encode_descriptor(
            names::API_KEY_REQUESTS,
            "Requests that presented this API key.",
            None,
            ConstCounter::<u64>::TYPE,
        )?;
        for key in &self.api_keys {
            let labels = [("key", key.name.as_str())];
            ConstCounter::new(key.requests).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            names::JWT_REFUSED,
            "Requests refused for their JWT, by reason (claims: 403, the others: 401).",
            None,
            ConstCounter::<u64>::TYPE,
        )?;
        for (reason, count) in &self.jwt_refused {
            let labels = [("reason", *reason)];
            ConstCounter::new(*count).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            names::FORWARD_AUTH,
            "Requests a route's forward auth service let through (allowed), refused (denied) or left unanswered (failed, 503).",
            None,
            ConstCounter::<u64>::TYPE,
        )?;
        let fa = &self.forward_auth;
        for (outcome, value) in [
            ("allowed", fa.allowed),
            ("denied", fa.denied),
            ("failed", fa.failed),
        ] {
            ConstCounter::new(value).encode(family.encode_family(&[("outcome", outcome)])?)?;
        }
        Ok(())
    }
}
