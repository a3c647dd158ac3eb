//! Phase 4's per-client limits: `[client_rate_limit]`, then the route's `client_rate_limit`,
//! each counting the request under its key ([`crate::ratelimit::keyed`]) with the limit of
//! its API key. Over either: `429` with `Retry-After` (gRPC: RESOURCE_EXHAUSTED). With
//! `headers = true` the request's context keeps the policy with the fewest requests left, and
//! its `RateLimit-Policy` and `RateLimit` go on the response, whatever it is.
//!
//! Called only when one of the two is configured; no lock, no allocation (but the fields'
//! when `headers = true`).

use http::HeaderMap;
use tokio::time::Instant;

use super::context::RequestCtx;
use super::error::ProxyError;
use crate::metrics;
use crate::ratelimit::keyed::{ClientLimiter, Identity};
use crate::ratelimit::Decision;
use crate::routing::Route;
use crate::state::State;

/// Counts the request under the global and the route's per-client limits, in that order;
/// the first over refuses it.
pub fn check(
    state: &State,
    route: &Route,
    ctx: &mut RequestCtx<'_>,
    headers: &HeaderMap,
    now: Instant,
) -> Result<(), ProxyError> {
    let limiters = [
        state.client_limiter.as_deref(),
        route.client_limiter.as_deref(),
    ];
    for limiter in limiters.into_iter().flatten() {
        check_one(limiter, ctx, headers, now)?;
    }
    Ok(())
}

fn check_one(
    limiter: &ClientLimiter,
    ctx: &mut RequestCtx<'_>,
    headers: &HeaderMap,
    now: Instant,
) -> Result<(), ProxyError> {
    let id = Identity {
        ip: ctx.client.ip(),
        api_key: ctx.api_key.as_deref(),
        headers,
        claims: ctx
            .jwt
            .as_deref()
            .map(|j| j as &dyn crate::ratelimit::keyed::Claims),
    };
    let Some((verdict, quota)) = limiter.check(&id, now) else {
        return Ok(());
    };
    if verdict.evicted {
        metrics::inc(&ctx.metrics.local().client_keys_evicted);
    }
    let denied = matches!(verdict.decision, Decision::Deny { .. });
    if limiter.headers() {
        let fewer = ctx
            .quota
            .as_ref()
            .is_none_or(|q| denied || quota.remaining < q.remaining);
        if fewer {
            ctx.quota = Some(Box::new(quota));
        }
    }
    if let Decision::Deny { retry_after } = verdict.decision {
        metrics::inc(&ctx.metrics.local().client_rate_limited);
        return Err(ProxyError::RateLimited { retry_after });
    }
    Ok(())
}
