//! Rate limiting: a decision made before routing, never back-pressure. A denied request
//! becomes `429 Too Many Requests` with `Retry-After` and never reaches a backend.
//!
//! One limiter covers every proxied request (the seed's behaviour), a route may have its
//! own, and [`keyed`] limits each client apart (by address, API key or header). The enums
//! are where a shared (Redis) limiter will sit beside the local one.

pub mod keyed;
mod local;
pub mod window;

use std::time::Duration;

use tokio::time::Instant;

pub use local::SlidingWindow;

use crate::config::RateLimitConfig;

/// The limiter's answer for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go on.
    Allow,
    /// Over the limit; the client may try again after this long.
    Deny {
        /// Time until a request would be allowed, if no other arrives meanwhile.
        retry_after: Duration,
    },
}

/// A configured limiter.
#[derive(Debug)]
pub enum RateLimiter {
    /// `--rate-limit 0`.
    Disabled,
    /// In-process sliding window shared by the worker threads.
    Local(SlidingWindow),
}

// === impl RateLimiter ===

impl RateLimiter {
    /// Builds the limiter `config` describes.
    pub fn new(config: RateLimitConfig) -> Self {
        if config.requests == 0 {
            RateLimiter::Disabled
        } else {
            RateLimiter::Local(SlidingWindow::new(config.requests, config.window))
        }
    }

    /// The settings it was built with (a reload keeps a limiter, and its counts, when these
    /// are unchanged).
    pub fn config(&self) -> RateLimitConfig {
        match self {
            RateLimiter::Disabled => RateLimitConfig {
                requests: 0,
                window: crate::config::defaults::RATE_WINDOW,
            },
            RateLimiter::Local(window) => window.config(),
        }
    }

    /// True when this limiter enforces `config`.
    pub fn is(&self, config: &RateLimitConfig) -> bool {
        let mine = self.config();
        mine.requests == config.requests && (mine.requests == 0 || mine.window == config.window)
    }

    /// Counts one request and decides.
    pub fn check(&self, now: Instant) -> Decision {
        match self {
            RateLimiter::Disabled => Decision::Allow,
            RateLimiter::Local(window) => window.check(now),
        }
    }
}
