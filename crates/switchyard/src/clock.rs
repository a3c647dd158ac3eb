//! Time, for the layers above: compact timestamps for state shared between worker threads in
//! atomics ([`nanos`], from tokio's clock, so paused-time tests see them move), and the idle
//! timer of streams ([`IdleTimer`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// Nanoseconds since a process-wide epoch (an hour before the first call, so that instants
/// taken a little before it still count): a compact, comparable timestamp for atomics. The
/// epoch comes from the clock, never from the argument, which may be a future deadline.
pub fn nanos(at: Instant) -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(|| {
        let now = Instant::now();
        now.checked_sub(Duration::from_secs(3600)).unwrap_or(now)
    });
    u64::try_from(at.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

/// The longest pause allowed within a stream (a body, a socket's writes): armed when a poll
/// returns `Pending`, disarmed when it makes progress. The `Sleep` is allocated on first use only.
#[derive(Debug)]
pub struct IdleTimer {
    limit: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    /// When the current wait began; `None` while not waiting.
    since: Option<Instant>,
}

// === impl IdleTimer ===

impl IdleTimer {
    /// A timer allowing pauses of up to `limit`.
    pub fn new(limit: Duration) -> Self {
        IdleTimer {
            limit,
            sleep: None,
            since: None,
        }
    }

    /// The longest pause allowed.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// Call when the stream returned `Pending`; `Ready` means the limit has passed.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.since.is_none() {
            let now = Instant::now();
            self.since = Some(now);
            let deadline = now + self.limit;
            match &mut self.sleep {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        match &mut self.sleep {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }

    /// When the wait in progress began, if one is.
    pub fn waiting_since(&self) -> Option<Instant> {
        self.since
    }

    /// Call when the stream made progress; returns when the wait that just ended began, if there was one.
    pub fn disarm(&mut self) -> Option<Instant> {
        self.since.take()
    }
}

/// Year, month and day of a count of days since 1970-01-01, negative before it (Howard
/// Hinnant's `civil_from_days`, proleptic Gregorian).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_do_not_depend_on_the_first_caller() {
        let now = Instant::now();
        // A deadline far ahead must not become the epoch.
        let later = nanos(now + Duration::from_secs(300));
        let earlier = nanos(now);
        assert!(earlier > 0);
        assert_eq!(later - earlier, 300_000_000_000);
    }
}
