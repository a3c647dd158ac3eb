//! The deadline of a connection's next request head, and when an idle connection lets its
//! read buffer go, kept by one timer per connection that ticks instead of one timer armed
//! and cancelled per request (about 500 instructions a request, a timer wheel insert and
//! removal).
//!
//! The timer is armed the first time the connection waits for a head and is never reset per
//! request: when it fires while the connection waits, a request since the tick before means
//! the wait is young (it starts counting again); none means the wait has lasted at least a
//! tick, which counts towards the read timeout. So a busy connection costs one timer wake per
//! tick, and a head gets between the read timeout and one tick more.
//!
//! A connection that has waited a whole tick with nothing of a head read is idle: its read
//! buffer is freed ([`Tick::Release`]) and the timer set once to the end of the read timeout,
//! so that ten thousand idle connections are not woken four times a second each.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// Longest tick: how long (at least) a connection waits with nothing read before it frees
/// its read buffer.
pub const RELEASE_AFTER: Duration = Duration::from_millis(250);

/// What the clock says while the connection waits for a head.
#[derive(Debug, PartialEq, Eq)]
pub enum Tick {
    /// Keep waiting: the timer will wake the task.
    Wait,
    /// A whole tick passed with nothing read: free the read buffer (said once per wait).
    Release,
    /// The head is later than the read timeout: close the connection.
    Late,
}

/// One connection's head clock.
#[derive(Debug)]
pub struct HeadClock {
    tick: Duration,
    read_timeout: Duration,
    /// Armed at the first wait.
    sleep: Option<Pin<Box<Sleep>>>,
    /// Requests seen at the last tick.
    seen: u32,
    /// Ticks waited with no request since.
    waited: Duration,
    /// The buffer was released in this wait: the timer is set to the deadline.
    released: bool,
    /// The timer has this connection's waker since it was last set: until it has fired,
    /// polling it again would only register the same waker again (about 250 instructions,
    /// at every head a busy connection waits for).
    registered: bool,
}

impl HeadClock {
    /// A clock for heads due within `read_timeout`.
    pub fn new(read_timeout: Duration) -> Self {
        HeadClock {
            tick: RELEASE_AFTER
                .min(read_timeout / 2)
                .max(Duration::from_millis(1)),
            read_timeout,
            sleep: None,
            seen: 0,
            waited: Duration::ZERO,
            released: false,
            registered: false,
        }
    }

    /// Polled while the connection waits for a head, `seen` requests into the connection;
    /// `empty`: nothing of the head has been read yet. Always polled with the waker of the
    /// connection's one task.
    pub fn poll(&mut self, cx: &mut Context<'_>, seen: u32, empty: bool) -> Tick {
        let tick = self.tick;
        let sleep = match &mut self.sleep {
            Some(sleep) => sleep,
            None => {
                self.seen = seen;
                self.sleep.insert(Box::pin(tokio::time::sleep(tick)))
            }
        };
        if self.released && self.seen != seen {
            // Idle once, busy again since: back to ticking.
            self.released = false;
            self.seen = seen;
            self.waited = Duration::ZERO;
            sleep.as_mut().reset(Instant::now() + tick);
            self.registered = false;
        }
        if self.registered && !sleep.is_elapsed() {
            return Tick::Wait;
        }
        self.registered = true;
        while sleep.as_mut().poll(cx).is_ready() {
            if self.seen != seen {
                self.seen = seen;
                self.waited = Duration::ZERO;
            } else if self.released {
                return Tick::Late;
            } else {
                self.waited += tick;
                if self.waited >= self.read_timeout {
                    return Tick::Late;
                }
                if empty {
                    self.released = true;
                    let left = self.read_timeout - self.waited;
                    sleep.as_mut().reset(Instant::now() + left);
                    self.registered = false;
                    return Tick::Release;
                }
            }
            sleep.as_mut().reset(Instant::now() + tick);
        }
        Tick::Wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll(clock: &mut HeadClock, seen: u32, empty: bool) -> Tick {
        let waker = std::task::Waker::noop();
        clock.poll(&mut Context::from_waker(waker), seen, empty)
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_released_after_a_tick_and_closed_at_the_read_timeout() {
        let mut clock = HeadClock::new(Duration::from_secs(2));
        assert_eq!(poll(&mut clock, 1, true), Tick::Wait);
        tokio::time::advance(Duration::from_millis(260)).await;
        assert_eq!(poll(&mut clock, 1, true), Tick::Release);
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(poll(&mut clock, 1, true), Tick::Wait);
        tokio::time::advance(Duration::from_millis(300)).await;
        assert_eq!(poll(&mut clock, 1, true), Tick::Late);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_between_ticks_keep_a_busy_connection_waiting() {
        let mut clock = HeadClock::new(Duration::from_millis(600));
        for seen in 1..20 {
            assert_eq!(poll(&mut clock, seen, true), Tick::Wait, "request {seen}");
            tokio::time::advance(Duration::from_millis(200)).await;
        }
        // A head begun but never finished: late after the read timeout, never released.
        let mut late = Duration::ZERO;
        while poll(&mut clock, 20, false) == Tick::Wait {
            tokio::time::advance(Duration::from_millis(50)).await;
            late += Duration::from_millis(50);
        }
        assert!(
            late >= Duration::from_millis(600) && late <= Duration::from_millis(1000),
            "{late:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_connection_that_gets_busy_ticks_again() {
        let mut clock = HeadClock::new(Duration::from_secs(10));
        assert_eq!(poll(&mut clock, 1, true), Tick::Wait);
        tokio::time::advance(Duration::from_millis(260)).await;
        assert_eq!(poll(&mut clock, 1, true), Tick::Release);
        tokio::time::advance(Duration::from_secs(3)).await;
        // A request came; its connection waits again and is released one tick later, not at
        // the old deadline.
        assert_eq!(poll(&mut clock, 2, true), Tick::Wait);
        tokio::time::advance(Duration::from_millis(260)).await;
        assert_eq!(poll(&mut clock, 2, true), Tick::Release);
    }
}
