//! Logging: the tracing subscriber (text or JSON lines, level from `RUST_LOG`; see [`json`])
//! and the access log, one line per request written when its response body is finished. A
//! request that failed for an upstream reason is logged once: its access line, at `WARN`,
//! with the backend tried last, the attempts and the cause (or, with access lines off, a
//! `request failed` line with the same fields).

pub mod audit;
pub mod json;
pub mod line;
pub mod text;

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use tokio::time::Instant;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

use crate::config::LogFormat;

/// The target of access-log lines: `RUST_LOG=info,switchyard::access=off` silences them.
pub const ACCESS_TARGET: &str = "switchyard::access";

/// Installs the global subscriber. `RUST_LOG` (e.g. `warn`, `info,hyper=debug`) sets the
/// levels; without it, `info`. Returns an error text naming a bad `RUST_LOG`.
pub fn init(format: LogFormat) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => {
            Targets::from_str(&spec).map_err(|e| format!("invalid RUST_LOG {spec:?}: {e}"))?
        }
        _ => Targets::new().with_default(tracing::Level::INFO),
    };
    let registry = tracing_subscriber::registry().with(filter);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let result = match format {
        // A terminal gets the default format's colours; a file or pipe the same text written
        // faster (`text`).
        LogFormat::Text if ansi => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_ansi(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Text => {
            let result = registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .event_format(text::TextLines::new())
                        .with_writer(std::io::stderr),
                )
                .try_init();
            if result.is_ok() {
                line::enable();
            }
            result
        }
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(json::JsonLines)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    result.map_err(|e| e.to_string())
}

/// What the access-log line of one request needs. Built only when the line will be written.
#[derive(Debug)]
pub struct AccessLog {
    /// Request method.
    pub method: http::Method,
    /// Request target as received.
    pub uri: http::Uri,
    /// Client address.
    pub client: SocketAddr,
    /// Status sent.
    pub status: u16,
    /// The backend tried last, when no backend's response is relayed (an error response).
    pub backend: Option<Arc<str>>,
    /// Backends tried.
    pub attempts: u32,
    /// When the request head was received.
    pub start: Instant,
    /// Why switchyard answered with an error it logs as a failure (its whole chain).
    pub error: Option<String>,
    /// The name of the API key presented, when the route asked for one (never the secret).
    pub api_key: Option<Arc<str>>,
    /// The subject (`sub`) of the verified JWT, when the route asked for one.
    pub jwt_sub: Option<Arc<str>>,
}

impl AccessLog {
    /// True when access-log lines are wanted, so the request path builds an [`AccessLog`].
    #[inline]
    pub fn enabled() -> bool {
        tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO)
    }

    /// Writes the line: `answered_by` the backend whose response was relayed, `bytes` of
    /// response body sent, `complete` false when the body was cut short (client gone,
    /// backend failed).
    pub fn write(&self, answered_by: Option<&str>, bytes: u64, complete: bool) {
        let duration_ms = self.start.elapsed().as_secs_f64() * 1e3;
        let line = line::Line {
            backend: answered_by.or(self.backend.as_deref()).unwrap_or("-"),
            duration_ms: (duration_ms * 1000.0).round() / 1000.0,
            bytes,
            complete,
        };
        if line::direct() {
            line::write(self, &line);
        } else {
            self.event(&line);
        }
    }

    /// The line as a `tracing` event, for the formats that take one (see [`line`]).
    fn event(&self, line: &line::Line<'_>) {
        let line::Line {
            backend,
            duration_ms,
            bytes,
            complete,
        } = *line;
        if let Some(error) = &self.error {
            tracing::warn!(
                target: ACCESS_TARGET,
                method = %self.method,
                path = %self.uri.path(),
                status = self.status,
                backend = %backend,
                attempts = self.attempts,
                duration_ms,
                bytes,
                complete,
                client = %self.client.ip(),
                error = %error,
                "request failed"
            );
            return;
        }
        tracing::info!(
            target: ACCESS_TARGET,
            method = %self.method,
            path = %self.uri.path(),
            status = self.status,
            backend,
            attempts = self.attempts,
            duration_ms,
            bytes,
            complete,
            client = %self.client.ip(),
            api_key = self.api_key.as_deref().unwrap_or("-"),
            jwt_sub = self.jwt_sub.as_deref().unwrap_or("-"),
            "request"
        );
    }
}
