//! The audit log: security events as JSON lines, apart from the process log, to a file or
//! standard output (`[audit] path`, `--audit-log`). Off by default.
//!
//! What it records:
//!
//! - refusals on the request path: authentication failures (the key's name, or `"unknown"`;
//!   never the secret), forbidden addresses and missing roles, rate limits, body, URI,
//!   method and content-type limits, the per-client and connection limits;
//! - admin access: `/metrics` with and without a valid token;
//! - configuration reloads (the SHA-256 of the file before and after, what changed) and
//!   certificate reloads.
//!
//! Refusals and admin access are [`Hit`]s, **summarised**: over each `interval` the writer
//! counts them per client, event and key, and writes one line for each with the count and
//! the first and last time, so a client refused 10,000 times makes one line per interval,
//! not 10,000. The table is bounded: at most `max_clients` clients per interval; refusals
//! from more are counted on one `"client": "others"` line per event. Reloads are written
//! at once, one line each.
//!
//! Nothing here blocks the request path or takes a lock on it: [`AuditLog::hit`] puts the
//! hit in a bounded queue to the writer thread, and when the queue is full the hit is
//! dropped and counted (`audit_dropped` in `/metrics`; the next summary line of the writer
//! says how many too). This module sits low (it knows nothing of the request path): the
//! request path tells it what happened, with its own words mapped to a [`Kind`].
//!
//! The file is opened at start (before the process gives up root) and appended to; SIGUSR1
//! reopens it by its name, so that logrotate can rename it and signal (the new file is
//! created by the user the process runs as).

mod summary;
mod writer;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;

use crate::config::AuditConfig;

/// What a summarised event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `401`: no API key, or an unknown one.
    AuthFailure,
    /// `403`: the client's address is refused by IP rules.
    IpDenied,
    /// `403`: a valid key without the route's role.
    RoleMissing,
    /// `429`: over a rate limit.
    RateLimited,
    /// `413`: a body over `max_body_size`.
    BodyTooLarge,
    /// `414`: a target over `max_uri_length`.
    UriTooLong,
    /// `405`: a method the route does not allow.
    MethodNotAllowed,
    /// `415`: a content type the route does not allow.
    UnsupportedMediaType,
    /// `503`: too many requests in progress from the client.
    ClientBusy,
    /// A connection over a listener's limits (closed, or answered `503`).
    ConnectionLimit,
    /// An admin endpoint answered (with a valid token where one is needed).
    AdminAccess,
    /// An admin endpoint refused: no valid token.
    AdminDenied,
}

/// One summarised event: who, what, and the key or reason it was about.
#[derive(Clone, Debug)]
pub struct Hit {
    /// The client's address (the one the rules and limits see).
    pub client: IpAddr,
    /// What happened.
    pub kind: Kind,
    /// The API key's name (`"unknown"` for a key that matches none), when there is one.
    pub key: Option<Arc<str>>,
    /// A word more (`"missing"`, `"total"`, the admin path, ...), when there is one.
    pub detail: Option<&'static str>,
}

/// The audit log: a handle on its writer thread. Dropping it lets the writer write what it
/// has summarised and stop.
#[derive(Debug)]
pub struct AuditLog {
    queue: SyncSender<writer::Message>,
    dropped: Arc<AtomicU64>,
    reopen: Arc<AtomicBool>,
}

// === impl Kind ===

impl Kind {
    /// The `event` field of its lines.
    pub fn name(self) -> &'static str {
        match self {
            Kind::AuthFailure => "auth_failure",
            Kind::IpDenied => "ip_denied",
            Kind::RoleMissing => "role_missing",
            Kind::RateLimited => "rate_limited",
            Kind::BodyTooLarge => "body_too_large",
            Kind::UriTooLong => "uri_too_long",
            Kind::MethodNotAllowed => "method_not_allowed",
            Kind::UnsupportedMediaType => "unsupported_media_type",
            Kind::ClientBusy => "client_busy",
            Kind::ConnectionLimit => "connection_limit",
            Kind::AdminAccess => "admin_access",
            Kind::AdminDenied => "admin_denied",
        }
    }
}

// === impl AuditLog ===

impl AuditLog {
    /// Opens the log `config` describes and starts its writer thread; `None` when the
    /// audit log is off.
    pub fn start(config: &AuditConfig) -> std::io::Result<Option<Arc<AuditLog>>> {
        let Some(target) = &config.target else {
            return Ok(None);
        };
        let sink = writer::Sink::open(target)?;
        let (queue, receiver) = mpsc::sync_channel(config.queue.max(1));
        let reopen = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let writer = writer::Writer::new(sink, config, reopen.clone(), dropped.clone());
        std::thread::Builder::new()
            .name("switchyard-audit".into())
            .spawn(move || writer.run(receiver))?;
        Ok(Some(Arc::new(AuditLog {
            queue,
            dropped,
            reopen,
        })))
    }

    /// Records a refusal or an admin access, to be summarised. Never blocks: with the queue
    /// full, the hit is dropped and counted.
    #[inline]
    pub fn hit(&self, hit: Hit) {
        self.send(writer::Message::Hit(hit));
    }

    /// Writes one line at once (within the queue): `event` and `fields` (a JSON object's
    /// fields), after the time.
    pub fn event(&self, event: &'static str, fields: serde_json::Value) {
        self.send(writer::Message::Line { event, fields });
    }

    /// Reopens the file by its name (SIGUSR1), after what is queued.
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Release);
        // Wakes the writer; if the queue is full it is busy and sees the flag soon anyway.
        let _ = self.queue.try_send(writer::Message::Wake);
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn send(&self, message: writer::Message) {
        match self.queue.try_send(message) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
