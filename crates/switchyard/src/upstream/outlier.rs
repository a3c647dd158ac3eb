//! Passive outlier ejection: a backend whose answers fail several times in a row (as
//! [`super::classify`] decides: 5xx but 501/505, gRPC server errors, broken bodies) is taken
//! out of rotation for a while, but never so many backends that more than a set share of the pool
//! is out at once (a bad deploy must not take the whole pool down).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use tokio::time::Instant;

use crate::clock::nanos;
use crate::config::OutlierConfig;

/// A backend's ejection state.
#[derive(Debug, Default)]
pub struct Outlier {
    consecutive_5xx: AtomicU32,
    /// `nanos()` until which the backend is ejected; 0 when it is not.
    ejected_until: AtomicU64,
}

impl Outlier {
    /// True while ejected.
    pub fn is_ejected(&self, now: Instant) -> bool {
        let until = self.ejected_until.load(Ordering::Relaxed);
        until != 0 && nanos(now) < until
    }

    /// Records an answer that did not fail: the failures in a row start again.
    pub fn record_success(&self) {
        if self.consecutive_5xx.load(Ordering::Relaxed) != 0 {
            self.consecutive_5xx.store(0, Ordering::Relaxed);
        }
    }

    /// Records a failed answer at `now`. Returns true when it ejects the backend;
    /// `ejected_in_pool` is how many of the pool's `pool_size` backends are ejected now.
    pub fn record_failure(
        &self,
        config: &OutlierConfig,
        now: Instant,
        ejected_in_pool: usize,
        pool_size: usize,
    ) -> bool {
        let n = self.consecutive_5xx.fetch_add(1, Ordering::Relaxed) + 1;
        if config.consecutive_5xx == 0 || n < config.consecutive_5xx || self.is_ejected(now) {
            return false;
        }
        let cap = pool_size * usize::from(config.max_ejection_percent) / 100;
        if ejected_in_pool >= cap {
            return false;
        }
        self.consecutive_5xx.store(0, Ordering::Relaxed);
        let until = nanos(now + config.ejection_time).max(1);
        self.ejected_until.store(until, Ordering::Relaxed);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const CONFIG: OutlierConfig = OutlierConfig {
        consecutive_5xx: 3,
        ejection_time: Duration::from_secs(30),
        max_ejection_percent: 50,
    };

    #[test]
    fn ejects_after_consecutive_5xx_for_a_while() {
        let o = Outlier::default();
        let now = Instant::now();
        assert!(!o.record_failure(&CONFIG, now, 0, 4));
        assert!(!o.record_failure(&CONFIG, now, 0, 4));
        assert!(o.record_failure(&CONFIG, now, 0, 4));
        assert!(o.is_ejected(now + Duration::from_secs(29)));
        assert!(!o.is_ejected(now + Duration::from_secs(31)));
    }

    #[test]
    fn success_resets_and_cap_holds() {
        let o = Outlier::default();
        let now = Instant::now();
        o.record_failure(&CONFIG, now, 0, 4);
        o.record_failure(&CONFIG, now, 0, 4);
        o.record_success();
        assert!(!o.record_failure(&CONFIG, now, 0, 4));
        // Two of four already out: 50% cap reached.
        let p = Outlier::default();
        for _ in 0..5 {
            assert!(!p.record_failure(&CONFIG, now, 2, 4));
        }
        assert!(!p.is_ejected(now));
    }
}
