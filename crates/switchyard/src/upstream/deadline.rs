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

pin_project! {
    /// The per-try timeout's clock: expires after `limit` of the backend's time. It holds
    /// no future: the try's future is polled beside it ([`race`]), pinned where it was
    /// built, so that future (the largest part of a request's state) is not moved into a
    /// wrapper and copied once more (2.4 KiB per try, measured).
    #[derive(Debug)]
    pub struct TryClock {
        // The sleep firing at the deadline (moved back by the client's time when it fires);
        // when the try began; the per-try timeout; the request body's time waiting on its
        // client, when it streams from one, and that time at `start`.
        #[pin]
        sleep: Sleep,
        start: Instant,
        limit: Duration,
        wait: Option<Arc<ClientWait>>,
        waited_before: Duration,
    }
}

impl TryClock {
    /// A clock of `limit` from `start` (the caller's reading of the clock), not counting
    /// what `wait` records from then on.
    pub fn new(limit: Duration, wait: Option<Arc<ClientWait>>, start: Instant) -> Self {
        let waited_before = wait.as_ref().map_or(Duration::ZERO, |w| w.waited(start));
        TryClock {
            sleep: tokio::time::sleep_until(start + limit),
            start,
            limit,
            wait,
            waited_before,
        }
    }

    /// Ready once `limit` of the backend's own time has passed.
    pub fn poll_expired(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        loop {
            ready!(this.sleep.as_mut().poll(cx));
            let Some(wait) = this.wait.as_ref() else {
                return Poll::Ready(());
            };
            let now = Instant::now();
            let client_time = wait.waited(now).saturating_sub(*this.waited_before);
            let deadline = *this.start + *this.limit + client_time;
            if deadline <= now {
                return Poll::Ready(());
            }
            this.sleep.as_mut().reset(deadline);
        }
    }
}

/// `fut`'s output, or `None` when `clock` expired first.
pub async fn race<F: Future>(
    mut clock: Pin<&mut TryClock>,
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
                Instant::now()
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
}
