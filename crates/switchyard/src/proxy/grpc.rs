//! A gRPC call's deadline (`grpc-timeout`) once its answer streams. Until the response head,
//! the upstream client's whole-request timer applies it (`upstream::client::send`, then a
//! trailers-only DEADLINE_EXCEEDED from `ProxyError`); after the head, [`Deadline`] rides on
//! the response body ([`super::body::ResponseBody`]) and ends a stream that outlives it, as
//! a gRPC server would: with DEADLINE_EXCEEDED in the trailers when the stream is between
//! two messages, else by resetting the stream (`CANCEL`), since trailers in the middle of a
//! message would corrupt it. Either way the backend's stream is reset and its attempt given
//! back unsettled: the client's deadline is no fault of the backend's.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body::Frame;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::error::ProxyError;
use crate::body::BodyError;
use crate::upstream;

pin_project! {
    /// The deadline of a gRPC call whose answer is streaming, and where that answer is in
    /// its messages.
    #[derive(Debug)]
    pub struct Deadline {
        #[pin]
        sleep: Sleep,
        after: Duration,
        messages: Messages,
    }
}

// === impl Deadline ===

impl Deadline {
    /// A deadline at `at`, `after` the request arrived.
    pub fn new(at: Instant, after: Duration) -> Pin<Box<Self>> {
        Box::pin(Deadline {
            sleep: tokio::time::sleep_until(at),
            after,
            messages: Messages::default(),
        })
    }

    /// Ready once the deadline has passed.
    pub fn poll_passed(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.project().sleep.poll(cx)
    }

    /// Follows the answer's messages through `data`, the next bytes sent to the client.
    pub fn saw(self: Pin<&mut Self>, data: &[u8]) {
        self.project().messages.advance(data);
    }

    /// What ends the stream now that the deadline has passed.
    pub fn end(&self) -> Result<Frame<Bytes>, BodyError> {
        if !self.messages.at_boundary() {
            return Err(BodyError::Deadline(h2::Reason::CANCEL.into()));
        }
        let err = ProxyError::Upstream(upstream::Error::RequestTimeout { after: self.after });
        let mut trailers = HeaderMap::new();
        err.insert_grpc_status(&mut trailers);
        Ok(Frame::trailers(trailers))
    }
}

/// Where a stream is in gRPC's length-prefixed messages: a 1-byte flag and a 4-byte
/// big-endian length, then that many bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Messages {
    /// The current message's prefix, as far as it came.
    prefix: [u8; 5],
    /// Bytes of `prefix` seen (0 when none: between messages, or within one's payload).
    in_prefix: usize,
    /// Payload bytes of the current message still to come.
    left: u64,
}

impl Messages {
    fn advance(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.left > 0 {
                let n = data
                    .len()
                    .min(usize::try_from(self.left).unwrap_or(usize::MAX));
                self.left -= n as u64;
                data = &data[n..];
                continue;
            }
            let n = data.len().min(5 - self.in_prefix);
            self.prefix[self.in_prefix..self.in_prefix + n].copy_from_slice(&data[..n]);
            self.in_prefix += n;
            data = &data[n..];
            if self.in_prefix == 5 {
                let [_, a, b, c, d] = self.prefix;
                self.left = u64::from(u32::from_be_bytes([a, b, c, d]));
                self.in_prefix = 0;
            }
        }
    }

    fn at_boundary(&self) -> bool {
        self.in_prefix == 0 && self.left == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn messages_are_followed_whatever_the_chunks() {
        let mut stream = message(b"hello");
        stream.extend(message(b""));
        stream.extend(message(&[7; 300]));
        // Between messages after 10 bytes (the first), 15 (the empty one) and 320 (the last).
        for size in [1, 2, 3, 7, 64, 320] {
            let mut m = Messages::default();
            let mut seen = 0;
            let mut boundaries = Vec::new();
            for chunk in stream.chunks(size) {
                m.advance(chunk);
                seen += chunk.len();
                if m.at_boundary() {
                    boundaries.push(seen);
                }
            }
            let expected: Vec<usize> = [10, 15, 320]
                .into_iter()
                .filter(|at| at % size == 0 || *at == stream.len())
                .collect();
            assert_eq!(boundaries, expected, "chunks of {size}");
        }
    }

    #[test]
    fn a_partial_prefix_or_payload_is_not_a_boundary() {
        let mut m = Messages::default();
        assert!(m.at_boundary());
        m.advance(&[0, 0, 0]);
        assert!(!m.at_boundary());
        m.advance(&[0, 2, b'h']);
        assert!(!m.at_boundary());
        m.advance(b"i");
        assert!(m.at_boundary());
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_deadline_the_stream_ends_with_deadline_exceeded_or_a_reset() {
        let after = Duration::from_millis(300);
        let mut deadline = Deadline::new(Instant::now() + after, after);
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(deadline.as_mut().poll_passed(&mut cx).is_pending());
        tokio::time::advance(after).await;
        assert!(deadline.as_mut().poll_passed(&mut cx).is_ready());

        let frame = deadline.end().expect("trailers between messages");
        let trailers = frame.into_trailers().expect("trailers");
        assert_eq!(trailers["grpc-status"], "4");
        assert!(trailers.contains_key("grpc-message"));

        deadline.as_mut().saw(&[0, 0, 0, 0, 9, b'x']);
        match deadline.end() {
            Err(BodyError::Deadline(e)) => assert_eq!(e.reason(), Some(h2::Reason::CANCEL)),
            other => panic!("mid-message: {other:?}"),
        }
    }
}
