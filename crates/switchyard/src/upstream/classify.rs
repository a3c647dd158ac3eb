//! What an attempt's outcome was, decided in one place and fed to everything that cares:
//! the circuit breaker, outlier ejection, the backend's counters and the retry decision.
//!
//! An outcome is known when the response has *ended*, not at its head: a body can break
//! halfway, and a gRPC call reports its failure in the trailers (`grpc-status`).
//!
//! What counts as a failure of the backend:
//!
//! | what happened | outcome | breaker | ejection |
//! |---|---|---|---|
//! | connect failed or timed out; reset or closed before a response head; per-try timeout | [`Outcome::NoAnswer`] | failure | — |
//! | a response with status 5xx, except 501 and 505 (they describe the request) | [`Outcome::FailedAnswer`] | failure | failure |
//! | a gRPC response whose `grpc-status` is a server error (2, 4, 13, 14, 15) | [`Outcome::FailedAnswer`] | failure | failure |
//! | a response whose body broke off or stalled past the write timeout | [`Outcome::BrokenBody`] | failure | failure |
//! | any other complete response (1xx–4xx, 501, 505; gRPC OK and client-side codes) | [`Outcome::Success`] | success | success |
//!
//! Ejection counts only failed *answers* (what Envoy calls externally originated errors): a
//! backend that cannot be reached already has its circuit opened by the breaker, and
//! ejecting it too would keep it out long after it came back. An attempt that ends because
//! the client went away, or broke its own request body, has no outcome at all: nothing is
//! held against the backend.

use http::{HeaderMap, HeaderName, StatusCode};

/// `grpc-status`, in a trailers-only response's head or in the trailers.
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

/// How one attempt on one backend ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A complete response the backend is healthy to give.
    Success,
    /// A complete response that reports a failure of the backend.
    FailedAnswer,
    /// A response whose body broke off (reset, closed early, stalled).
    BrokenBody,
    /// No response at all.
    NoAnswer,
}

// === impl Outcome ===

impl Outcome {
    /// True when the breaker counts this against the backend.
    pub fn is_failure(self) -> bool {
        !matches!(self, Outcome::Success)
    }

    /// True when the backend answered (a response head arrived).
    pub fn answered(self) -> bool {
        !matches!(self, Outcome::NoAnswer)
    }
}

/// True for a status that reports a failure of the backend: 5xx but 501 (Not Implemented)
/// and 505 (HTTP Version Not Supported), which describe the request (HAProxy's rule).
pub fn is_failure_status(status: StatusCode) -> bool {
    status.is_server_error()
        && status != StatusCode::NOT_IMPLEMENTED
        && status != StatusCode::HTTP_VERSION_NOT_SUPPORTED
}

/// True for a `grpc-status` that reports a server-side failure: the codes whose HTTP
/// equivalent (gRPC's own mapping) is a failure status: UNKNOWN, DEADLINE_EXCEEDED,
/// INTERNAL, UNAVAILABLE, DATA_LOSS.
pub fn is_failure_grpc_status(code: u32) -> bool {
    matches!(code, 2 | 4 | 13 | 14 | 15)
}

/// The `grpc-status` in `headers`, if there is a valid one.
pub fn grpc_status(headers: &HeaderMap) -> Option<u32> {
    let value = headers.get(GRPC_STATUS)?;
    std::str::from_utf8(value.as_bytes())
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The outcome of a response with `status` (and `grpc`, the `grpc-status` seen in its head
/// or trailers) whose body ended: completely when `complete`, else broken off.
pub fn classify(status: StatusCode, grpc: Option<u32>, complete: bool) -> Outcome {
    if !complete {
        Outcome::BrokenBody
    } else if is_failure_status(status) || grpc.is_some_and(is_failure_grpc_status) {
        Outcome::FailedAnswer
    } else {
        Outcome::Success
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_hundreds_fail_but_501_and_505() {
        for code in [500, 502, 503, 504, 507, 599] {
            let status = StatusCode::from_u16(code).expect("status");
            assert_eq!(
                classify(status, None, true),
                Outcome::FailedAnswer,
                "{code}"
            );
        }
        for code in [200, 204, 301, 400, 404, 429, 501, 505] {
            let status = StatusCode::from_u16(code).expect("status");
            assert_eq!(classify(status, None, true), Outcome::Success, "{code}");
        }
    }

    #[test]
    fn a_broken_body_fails_whatever_its_status() {
        assert_eq!(classify(StatusCode::OK, None, false), Outcome::BrokenBody);
        assert!(Outcome::BrokenBody.is_failure());
        assert!(Outcome::BrokenBody.answered());
        assert!(!Outcome::NoAnswer.answered());
    }

    #[test]
    fn grpc_server_errors_fail_in_a_200() {
        let ok = StatusCode::OK;
        assert_eq!(classify(ok, Some(0), true), Outcome::Success);
        for code in [1, 3, 5, 7, 8, 12, 16] {
            assert_eq!(classify(ok, Some(code), true), Outcome::Success, "{code}");
        }
        for code in [2, 4, 13, 14, 15] {
            assert_eq!(
                classify(ok, Some(code), true),
                Outcome::FailedAnswer,
                "{code}"
            );
        }
        let mut headers = HeaderMap::new();
        headers.insert(GRPC_STATUS, http::HeaderValue::from_static("14"));
        assert_eq!(grpc_status(&headers), Some(14));
    }
}
