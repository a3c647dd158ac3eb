//! The two clocks of a request on the upstream side, as future combinators rather than
//! nested `async fn`s, so that the futures they wrap are not stored (and copied) twice.
//!
//! - [`BackendTime`]: the per-try timeout, counting only the backend's own time: while the
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
    /// Runs a future for at most `limit` of the backend's time; resolves to `None` when the
    /// limit passed first.
    #[derive(Debug)]
    // Fields: the future timed; the sleep firing at the deadline (moved back by the
    // client's time when it fires); when the try began; the per-try timeout; the request
    // body's time waiting on its client, when it streams from one, and that time at `start`.
    // Crate-visible so that a try builds it in place, without moving its future once more.
    pub struct BackendTime<F> {
        #[pin]
        pub(crate) fut: F,
        #[pin]
        pub(crate) sleep: Sleep,
        pub(crate) start: Instant,
        pub(crate) limit: Duration,
        pub(crate) wait: Option<Arc<ClientWait>>,
        pub(crate) waited_before: Duration,
    }
}

impl<F> BackendTime<F> {
    /// `fut` under a limit of `limit`, not counting what `wait` records from now on.
    pub fn new(limit: Duration, wait: Option<Arc<ClientWait>>, fut: F) -> Self {
        let start = Instant::now();
        let waited_before = wait.as_ref().map_or(Duration::ZERO, |w| w.waited(start));
        BackendTime {
            fut,
            sleep: tokio::time::sleep_until(start + limit),
            start,
            limit,
            wait,
            waited_before,
        }
    }
}

impl<F: Future> Future for BackendTime<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(out) = this.fut.poll(cx) {
            return Poll::Ready(Some(out));
        }
        loop {
            ready!(this.sleep.as_mut().poll(cx));
            let Some(wait) = this.wait.as_ref() else {
                return Poll::Ready(None);
            };
            let now = Instant::now();
            let client_time = wait.waited(now).saturating_sub(*this.waited_before);
            let deadline = *this.start + *this.limit + client_time;
            if deadline <= now {
                return Poll::Ready(None);
            }
            this.sleep.as_mut().reset(deadline);
        }
    }
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
        let wait = Arc::new(ClientWait::default());
        let limit = Duration::from_millis(100);
        // No client wait: the limit is the limit.
        let slow = tokio::time::sleep(Duration::from_millis(150));
        assert!(BackendTime::new(limit, Some(wait.clone()), slow)
            .await
            .is_none());
        // 80 ms of it waiting on the client: 150 ms fit in a 100 ms limit.
        let t0 = Instant::now();
        wait.begin(t0);
        let waiting = async {
            tokio::time::sleep(Duration::from_millis(80)).await;
            wait.end(Instant::now());
            tokio::time::sleep(Duration::from_millis(70)).await;
        };
        assert!(BackendTime::new(limit, Some(wait.clone()), waiting)
            .await
            .is_some());
        let quick = tokio::time::sleep(Duration::from_millis(50));
        assert!(BackendTime::new(limit, None, quick).await.is_some());
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
