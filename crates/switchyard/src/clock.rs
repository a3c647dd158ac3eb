//! Compact timestamps for state shared between worker threads in atomics: nanoseconds since
//! a process-wide epoch, from tokio's clock (so paused-time tests see them move).

use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

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
