//! Who may pass: the authentication phase of the request path, before any rate limit, the
//! same for HTTP/1.1, HTTP/2, gRPC and WebSocket upgrades (they all reach
//! `proxy::handle` as one request head).
//!
//! Two entries, both called from `proxy/mod.rs`:
//!
//! - [`client`], right after the request is checked (before the admin endpoints): who the
//!   client is ([`ip::client_addr`]: the peer, or with trusted proxies the rightmost
//!   untrusted `X-Forwarded-For` address) and whether the listener's IP rules let it in
//!   (`403` if not). That address is the one the access log, the rules and any per-client
//!   limit see.
//! - [`authenticate`], once the route is known and before the rate limits: the route's IP
//!   rules (`403`), then its API key (`401` with `WWW-Authenticate` when missing or unknown,
//!   `403` when the key lacks the role; [`api_key`]). The key's credential is removed from
//!   the request whether or not it is valid, so it never reaches a backend or the log; the
//!   key's name goes into the request's context (access log, and later per-key limits);
//!   then its JWT ([`jwt`]: `401` with `WWW-Authenticate: Bearer ..., error="invalid_token"`
//!   when missing or not valid, `403` when its claims are not the route's), whose identity
//!   goes into the context too.
//!
//!   Then, when the route has `forward_auth`, its auth service is asked ([`forward`]): a
//!   `2xx` lets the request through with the headers it names copied onto it; any other
//!   answer goes back to the client as is; no usable answer is a `503` (fail closed).
//!
//! A route without an `access` table and a listener without IP rules cost one branch each.
//! Its steps (API key, JWT, forward auth) each refuse with the same two errors (forward auth
//! also with the service's own answer, or `503`).

pub mod api_key;
pub mod forward;
pub mod ip;
pub mod jwt;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::request::Parts;
use http::HeaderMap;

use super::context::{ConnInfo, RequestCtx};
use super::error::ProxyError;
use crate::config::{AccessConfig, RouteAccess};
use crate::metrics;
use crate::routing::Route;
use crate::state::State;

/// Why a request has no valid identity (`401`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// No key where the configured sources look.
    #[error("no API key")]
    MissingKey,
    /// A key that matches none known (the secret is never logged).
    #[error("unknown API key")]
    UnknownKey,
    /// No JWT, or one that does not verify (the token is never logged).
    #[error(transparent)]
    Jwt(jwt::JwtFailure),
}

/// Why a request may not pass (`403`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// A valid key without any of the route's roles.
    #[error("key {key} lacks the route's role")]
    MissingRole {
        /// The key's name.
        key: Arc<str>,
    },
    /// A valid JWT without one of the route's `jwt_claims`.
    #[error("the token's claim {claim} does not match the route's")]
    JwtClaim {
        /// The claim's name.
        claim: String,
    },
    /// The client's address is not allowed on this listener or route.
    #[error("client address {ip} is not allowed")]
    Address {
        /// The client's address.
        ip: IpAddr,
    },
}

/// Who the client is (from the connection's peer and, with trusted proxies, the request's
/// `X-Forwarded-For`), and whether the listener's IP rules let it in.
pub fn client(
    access: &AccessConfig,
    conn: &ConnInfo,
    headers: &HeaderMap,
) -> Result<SocketAddr, ProxyError> {
    let client = match &access.trusted_proxies {
        None => conn.addr,
        Some(trusted) => ip::client_addr(conn.addr, headers, trusted),
    };
    if let Some(rules) = &conn.ip_rules {
        if !rules.admits(client.ip()) {
            return Err(ProxyError::Forbidden(Denial::Address { ip: client.ip() }));
        }
    }
    Ok(client)
}

/// The route's requirements: its IP rules, then its API key and role, then its JWT and
/// claims, then its forward auth (every step the route asks for must pass). On success the
/// key's name and the token's identity (if any) are in `ctx` and the key's request counter is
/// counted; the key's credential is gone from `parts` either way, the token only with
/// `jwt_forward = false`.
pub async fn authenticate(
    state: &State,
    conn: &ConnInfo,
    route: &Route,
    ctx: &mut RequestCtx<'_>,
    parts: &mut Parts,
) -> Result<(), ProxyError> {
    let Some(needs) = &route.config.access else {
        return Ok(());
    };
    if let Some(rules) = &needs.ip {
        if !rules.admits(ctx.client.ip()) {
            return Err(ProxyError::Forbidden(Denial::Address {
                ip: ctx.client.ip(),
            }));
        }
    }
    if needs.api_key {
        api_key_step(state, needs, ctx, parts)?;
    }
    if let (Some(route_jwt), Some(provider)) = (&needs.jwt, &state.config.access.jwt) {
        let identity = jwt::check(provider, route_jwt, parts)?;
        ctx.jwt = Some(Arc::new(identity));
    }
    // Forward auth, last: the one step that costs a round trip. Boxed: only its routes pay
    // for its future's size.
    if let Some(forward) = &needs.forward {
        Box::pin(forward::check(state, forward, conn, ctx, parts)).await?;
    }
    Ok(())
}

/// The route's API key and role.
fn api_key_step(
    state: &State,
    needs: &RouteAccess,
    ctx: &mut RequestCtx<'_>,
    parts: &mut Parts,
) -> Result<(), ProxyError> {
    let access = &state.config.access;
    let found = api_key::take(access, parts);
    if found.query_changed {
        if let Some(log) = ctx.log.as_mut() {
            log.uri = parts.uri.clone();
        }
    }
    let (index, key) = found.key.map_err(|reason| ProxyError::Unauthenticated {
        reason,
        challenge: access.challenge.clone(),
    })?;
    if let Some(uses) = state.api_key_uses.get(index) {
        metrics::inc(uses.local());
    }
    ctx.api_key = Some(key.name.clone());
    let has_role =
        needs.roles.is_empty() || key.roles.iter().any(|r| needs.roles.iter().any(|n| n == r));
    if !has_role {
        return Err(ProxyError::Forbidden(Denial::MissingRole {
            key: key.name.clone(),
        }));
    }
    Ok(())
}
