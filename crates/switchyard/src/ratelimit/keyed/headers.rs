//! The rate-limit fields of the IETF draft "RateLimit header fields for HTTP"
//! (draft-ietf-httpapi-ratelimit-headers, versions 08 to 11): two structured fields,
//!
//! ```text
//! RateLimit-Policy: "client";q=10;w=1     the policy: quota q per window of w seconds
//! RateLimit: "client";r=3;t=1             now: r requests remaining, t seconds to reset
//! ```
//!
//! Earlier versions (up to 07) had three fields, `RateLimit-Limit`, `RateLimit-Remaining`
//! and `RateLimit-Reset`; the draft replaced them, so switchyard sends only the current
//! pair. Seconds are whole and rounded up (a 200 ms window is `w=1`).

use std::fmt::Write;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

/// `RateLimit-Policy`.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// What the fields say about one request: its policy and how much of it is left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// The policy's name (`client` for `[client_rate_limit]`, `route` for a route's).
    pub policy: &'static str,
    /// Requests per window for this request's key.
    pub limit: u64,
    /// The window.
    pub window: Duration,
    /// Requests left in the sliding window after this one.
    pub remaining: u64,
    /// Time until the count starts to fall, or until a request fits when denied.
    pub reset: Duration,
}

// === impl Quota ===

impl Quota {
    /// Sets `RateLimit-Policy` and `RateLimit` in `headers`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        let mut policy = String::with_capacity(40);
        let _ = write!(
            policy,
            "\"{}\";q={};w={}",
            self.policy,
            self.limit,
            seconds(self.window).max(1)
        );
        let mut now = String::with_capacity(40);
        let _ = write!(
            now,
            "\"{}\";r={};t={}",
            self.policy,
            self.remaining,
            seconds(self.reset)
        );
        for (name, value) in [(RATELIMIT_POLICY, policy), (RATELIMIT, now)] {
            if let Ok(value) = HeaderValue::try_from(value) {
                headers.insert(name, value);
            }
        }
    }
}

/// Whole seconds, rounded up.
pub fn seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}
