//! The two clocks of a request on the upstream side, as a clock polled beside the try's
//! future and a future combinator rather than nested `async fn`s, so that the futures they
//! time are not stored (and copied) twice.
//!
//! - [`TryClock`]: the per-try timeout, counting only the backend's own time: while the
//!   request body waits on the client ([`ClientWait`]), the deadline moves back, so a slow
//!   upload is never taken for a slow backend.
//! - [`RequestTime`]: the whole-request timeout, when the pool has one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::Error;
use crate::body::ClientWait;
use crate::metrics::{self, Metrics};

/// The timer of a client connection whose requests come one at a time (HTTP/1.1), kept
/// armed from one request's try to the next: a try whose deadline is later than the one the
/// timer is armed at leaves it as it is, and when it fires early the try sets it again. So a
/// connection's steady stream of requests arms tokio's timer once per timeout period, not
/// once per request (registering and cancelling a timer entry per request cost about 500
/// instructions and two locks of the timer driver; BENCHMARKS.md).
#[derive(Debug, Default)]
pub struct TryTimer(std::sync::Mutex<Option<Pin<Box<Sleep>>>>);

/// A copy is another connection's: a timer of its own, not armed yet.
impl Clone for TryTimer {
    fn clone(&self) -> Self {
        TryTimer::default()
    }
}

impl TryTimer {
    /// Drops the timer (a connection going idle holds none).
    pub fn release(&self) {
        let mut sleep = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *sleep = None;
    }
}

pin_project! {
    /// The per-try timeout's clock: expires after `limit` of the backend's time. It holds
    /// no future: the try's future is polled beside it ([`race`]), pinned where it was
    /// built, so that future (the largest part of a request's state) is not moved into a
    /// wrapper and copied once more (2.4 KiB per try, measured).
    #[derive(Debug)]
    pub struct TryClock<'a> {
        // The sleep firing at the deadline (moved back by the client's time when it fires),
        // unless the connection's `TryTimer` is used; when the try began; the per-try
        // timeout; the request body's time waiting on its client, when it streams from one,
        // and that time at `start`.
        #[pin]
        sleep: Option<Sleep>,
        shared: Option<&'a TryTimer>,
        start: Instant,
        limit: Duration,
        wait: Option<Arc<ClientWait>>,
        waited_before: Duration,
    }
}

impl<'a> TryClock<'a> {
    /// A clock of `limit` from `start` (the caller's reading of the clock), not counting
    /// what `wait` records from then on; on `shared`, the client connection's timer, when
    /// its requests come one at a time.
    pub fn new(
        limit: Duration,
        wait: Option<Arc<ClientWait>>,
        start: Instant,
        shared: Option<&'a TryTimer>,
    ) -> Self {
        let waited_before = wait.as_ref().map_or(Duration::ZERO, |w| w.waited(start));
        TryClock {
            sleep: shared
                .is_none()
                .then(|| tokio::time::sleep_until(start + limit)),
            shared,
            start,
            limit,
            wait,
            waited_before,
        }
    }

    /// Ready once `limit` of the backend's own time has passed.
    pub fn poll_expired(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let deadline = *this.start + *this.limit;
        let (start, limit) = (*this.start, *this.limit);
        let (wait, before) = (this.wait.as_ref(), *this.waited_before);
        // When the clock really runs out: the limit, moved back by the client's time.
        let expired = |now: Instant| -> Option<Instant> {
            let client_time = wait.map_or(Duration::ZERO, |w| w.waited(now).saturating_sub(before));
            let deadline = start + limit + client_time;
            (deadline > now).then_some(deadline)
        };
        if let Some(sleep) = this.sleep.as_pin_mut() {
            return poll_sleep(sleep, cx, expired);
        }
        let Some(shared) = this.shared else {
            return Poll::Pending;
        };
        let mut slot = shared
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let sleep = slot.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() > deadline {
            sleep.as_mut().reset(deadline);
        }
        poll_sleep(sleep.as_mut(), cx, expired)
    }
}

/// Polls `sleep` until `expired` says the clock ran out when it fired (`None`), setting it
/// again to the later deadline it says otherwise.
#[inline]
fn poll_sleep(
    mut sleep: Pin<&mut Sleep>,
    cx: &mut Context<'_>,
    expired: impl Fn(Instant) -> Option<Instant>,
) -> Poll<()> {
    loop {
        ready!(sleep.as_mut().poll(cx));
        match expired(Instant::now()) {
            None => return Poll::Ready(()),
            Some(later) => sleep.as_mut().reset(later),
        }
    }
}

/// `fut`'s output, or `None` when `clock` expired first.
pub async fn race<F: Future>(
    mut clock: Pin<&mut TryClock<'_>>,
    mut fut: Pin<&mut F>,
) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        clock.as_mut().poll_expired(cx).map(|()| None)
    })
    .await
}

pin_project! {
    /// Runs the upstream client's future within the pool's whole-request timeout, when it
    /// has one; past it, the request fails with [`Error::RequestTimeout`].
    #[derive(Debug)]
    pub struct RequestTime<'a, F> {
        #[pin]
        fut: F,
        #[pin]
        sleep: Option<Sleep>,
        limit: Duration,
        metrics: &'a Metrics,
    }
}

impl<'a, F> RequestTime<'a, F> {
    /// `fut` within `limit`, or without limit; a timeout is counted in `metrics`.
    pub fn new(limit: Option<Duration>, metrics: &'a Metrics, fut: F) -> Self {
        RequestTime {
            fut,
            sleep: limit.map(tokio::time::sleep),
            limit: limit.unwrap_or_default(),
            metrics,
        }
    }
}

impl<T, F: Future<Output = Result<T, Error>>> Future for RequestTime<'_, F> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.fut.poll(cx) {
            return Poll::Ready(out);
        }
        match this.sleep.as_pin_mut() {
            Some(sleep) => {
                ready!(sleep.poll(cx));
                metrics::inc(&this.metrics.local().request_timeouts);
                Poll::Ready(Err(Error::RequestTimeout { after: *this.limit }))
            }
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn backend_time_does_not_count_the_client_s_time() {
        async fn timed<F: Future>(wait: Option<Arc<ClientWait>>, fut: F) -> Option<F::Output> {
            let clock = std::pin::pin!(TryClock::new(
                Duration::from_millis(100),
                wait,
                Instant::now(),
                None
            ));
            race(clock, std::pin::pin!(fut)).await
        }
        let wait = Arc::new(ClientWait::default());
        let limit = Duration::from_millis(100);
        // No client wait: the limit is the limit.
        let slow = tokio::time::sleep(Duration::from_millis(150));
        assert!(timed(Some(wait.clone()), slow).await.is_none());
        // 80 ms of it waiting on the client: 150 ms fit in a 100 ms limit.
        let t0 = Instant::now();
        wait.begin(t0);
        let waiting = {
            let wait = wait.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(80)).await;
                wait.end(Instant::now());
                tokio::time::sleep(Duration::from_millis(70)).await;
            }
        };
        assert!(timed(Some(wait.clone()), waiting).await.is_some());
        let quick = tokio::time::sleep(Duration::from_millis(50));
        assert!(timed(None, quick).await.is_some());
        let metrics = Metrics::new(1);
        let slow = || async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, Error>(())
        };
        assert!(RequestTime::new(None, &metrics, slow()).await.is_ok());
        let timed = RequestTime::new(Some(limit), &metrics, slow()).await;
        assert!(matches!(timed, Err(Error::RequestTimeout { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_s_timer_serves_its_tries_one_after_another() {
        async fn timed<F: Future>(timer: &TryTimer, limit: u64, fut: F) -> Option<F::Output> {
            let limit = Duration::from_millis(limit);
            let clock = TryClock::new(limit, None, Instant::now(), Some(timer));
            race(std::pin::pin!(clock), std::pin::pin!(fut)).await
        }
        let ms = Duration::from_millis;
        let timer = TryTimer::default();
        // A quick answer leaves the timer armed at its try's deadline (100 ms).
        assert!(timed(&timer, 100, tokio::time::sleep(ms(10)))
            .await
            .is_some());
        // The next try's deadline (110) is later: the timer fires at 100 and runs on to it.
        assert!(timed(&timer, 100, tokio::time::sleep(ms(95)))
            .await
            .is_some());
        // A try that gets no answer runs out at its own deadline, however the timer was set.
        let t0 = Instant::now();
        assert!(timed(&timer, 100, tokio::time::sleep(ms(150)))
            .await
            .is_none());
        assert_eq!(Instant::now() - t0, ms(100));
        // A shorter limit than the one the timer is armed at is set at once.
        assert!(timed(&timer, 1000, tokio::time::sleep(ms(10)))
            .await
            .is_some());
        let t1 = Instant::now();
        assert!(timed(&timer, 20, tokio::time::sleep(ms(50)))
            .await
            .is_none());
        assert_eq!(Instant::now() - t1, ms(20));
        timer.release();
        assert!(timed(&timer, 20, tokio::time::sleep(ms(10)))
            .await
            .is_some());
    }
}
