//! Per-client rate limits: the sliding window of [`super::local`], one per key. A request is
//! counted under a key ([`ClientKey`]: its client address, IPv6 by /64; the name of its API
//! key; or a header's value) with a limit that may depend on its API key (`per_key`, then
//! the highest of its roles' `per_role`, else `requests`).
//!
//! The decision is kept apart from where the counts live: [`ClientLimiter`] picks the key
//! and the limit, [`KeyedStore`] holds the counts and decides with the pure maths of
//! [`super::local::step`]. The store is an enum so that a shared (Redis) store can sit beside
//! the in-process one ([`table`]: a fixed table of atomic slots, no lock, bounded memory).
//!
//! A reload that keeps the window, key and `max_clients` keeps the store, and so the counts,
//! even when the limits change.

mod headers;
pub mod table;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use tokio::time::Instant;

pub use headers::Quota;
pub use table::Table;

use super::local::step;
use super::window;
use super::Decision;
use crate::config::auth::ApiKeys;
use crate::config::client_limit::{ClientKeyKind, ClientRateLimitConfig};

/// What a request is counted under. Each kind hashes apart from the others, so a header
/// value can never share a window with an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientKey<'a> {
    /// An IPv4 client, by address (/32).
    V4(u32),
    /// An IPv6 client, by its /64 (the upper 64 bits).
    V6(u64),
    /// An API key, by name.
    ApiKey(&'a str),
    /// A header's value, as sent.
    Header(&'a [u8]),
    /// A string claim of the request's verified JWT (`sub`, a tenant id).
    Claim(&'a str),
}

/// Where a request's verified token claims are read from (the request path's JWT identity;
/// a trait so that this layer does not depend on `proxy`).
pub trait Claims: std::fmt::Debug {
    /// The claim `name`, when it is a string.
    fn claim(&self, name: &str) -> Option<&str>;
}

/// What is known of the request's client when the limits are checked.
#[derive(Clone, Copy, Debug)]
pub struct Identity<'a> {
    /// The client's address (the peer, or what trusted proxies forwarded for).
    pub ip: IpAddr,
    /// The name of the API key it presented, once authenticated.
    pub api_key: Option<&'a str>,
    /// The request's headers.
    pub headers: &'a HeaderMap,
    /// The claims of its verified JWT, once authenticated on a route that asks for one.
    pub claims: Option<&'a dyn Claims>,
}

/// The key of an address: IPv4 by address, IPv6 by /64 (IPv4-mapped IPv6 as IPv4).
pub fn ip_key(ip: IpAddr) -> ClientKey<'static> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => ClientKey::V4(u32::from(v4)),
        IpAddr::V6(v6) => ClientKey::V6((u128::from(v6) >> 64) as u64),
    }
}

/// The key `kind` gives `id`; without an API key or the header, its address's.
pub fn key_of<'a>(kind: &ClientKeyKind, id: &Identity<'a>) -> ClientKey<'a> {
    match kind {
        ClientKeyKind::Ip => ip_key(id.ip),
        ClientKeyKind::ApiKey => id.api_key.map_or_else(|| ip_key(id.ip), ClientKey::ApiKey),
        ClientKeyKind::Header(name) => id
            .headers
            .get(name)
            .map_or_else(|| ip_key(id.ip), |v| ClientKey::Header(v.as_bytes())),
        ClientKeyKind::Claim(name) => id
            .claims
            .and_then(|c| c.claim(name))
            .map_or_else(|| ip_key(id.ip), ClientKey::Claim),
    }
}

/// A store's answer for one request under one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Allowed (and counted), or denied with the time until a request would fit.
    pub decision: Decision,
    /// Requests the key may still make in the sliding window, after this one.
    pub remaining: u64,
    /// Time until the key's count starts to fall (the current window's end) when allowed;
    /// the `retry_after` when denied.
    pub reset: Duration,
    /// A live key lost its place to this one (the store was at `max_clients`).
    pub evicted: bool,
}

/// Where a keyed limiter's counts live.
#[derive(Debug)]
pub enum KeyedStore {
    /// In this process: a fixed table of atomic slots ([`table`]).
    Local(LocalStore),
}

/// The in-process store: a [`Table`] and the clock its windows are counted on.
#[derive(Debug)]
pub struct LocalStore {
    table: Table,
    window: Duration,
    epoch: Instant,
}

/// A configured per-client limit: which key, which limit, and the store of its counts.
#[derive(Debug)]
pub struct ClientLimiter {
    config: ClientRateLimitConfig,
    store: Arc<KeyedStore>,
    /// The limit of each API key with one of its own (by name or role).
    by_key: HashMap<Arc<str>, u32>,
    /// The name its `RateLimit-Policy` gives the policy.
    policy: &'static str,
}

// === impl KeyedStore ===

impl KeyedStore {
    /// An in-process store for `max_clients` keys over `window`, its windows counted from
    /// `epoch`.
    pub fn local(max_clients: u32, window: Duration, epoch: Instant) -> Self {
        KeyedStore::Local(LocalStore {
            table: Table::new(usize::try_from(max_clients).unwrap_or(usize::MAX)),
            window,
            epoch,
        })
    }

    /// Counts one request under `key` at `now`, if it is under `limit`, and decides.
    pub fn check(&self, key: &ClientKey<'_>, limit: u64, now: Instant) -> Verdict {
        match self {
            KeyedStore::Local(local) => local.check(key, limit, now),
        }
    }

    /// Keys with counts in the window now.
    pub fn tracked(&self, now: Instant) -> u64 {
        match self {
            KeyedStore::Local(local) => {
                let (window_now, _) = local.position(now);
                local.table.tracked(window_now) as u64
            }
        }
    }

    /// Keys it can track at once.
    pub fn capacity(&self) -> u64 {
        match self {
            KeyedStore::Local(local) => local.table.capacity() as u64,
        }
    }

    /// Memory it holds, in bytes.
    pub fn bytes(&self) -> usize {
        match self {
            KeyedStore::Local(local) => local.table.bytes(),
        }
    }
}

// === impl LocalStore ===

impl LocalStore {
    fn position(&self, now: Instant) -> (u64, Duration) {
        window::position(now.saturating_duration_since(self.epoch), self.window)
    }

    fn check(&self, key: &ClientKey<'_>, limit: u64, now: Instant) -> Verdict {
        let (window_now, elapsed) = self.position(now);
        let w = self.window;
        let Some(claimed) = self.table.claim(self.table.hash(key), window_now) else {
            // The bucket changed under every claim: let it through uncounted.
            return Verdict {
                decision: Decision::Allow,
                remaining: limit.saturating_sub(1),
                reset: w.saturating_sub(elapsed),
                evicted: false,
            };
        };
        let (decision, previous, current) = claimed.counter.update(window_now, |p, c| {
            let (next, decision) = step(p, c, elapsed, w, limit);
            (next, (decision, p, next.unwrap_or(c)))
        });
        let reset = match decision {
            Decision::Allow => w.saturating_sub(elapsed),
            Decision::Deny { retry_after } => retry_after,
        };
        Verdict {
            decision,
            remaining: remaining(previous, current, elapsed, w, limit),
            reset,
            evicted: claimed.evicted,
        }
    }
}

/// `limit` less the sliding count (`previous` weighted by its overlap, plus `current`),
/// rounded down, never below zero.
fn remaining(previous: u64, current: u64, elapsed: Duration, window: Duration, limit: u64) -> u64 {
    let w = window.as_nanos().max(1);
    let e = elapsed.as_nanos().min(w);
    let used = u128::from(previous) * (w - e) + u128::from(current) * w;
    let left = (u128::from(limit) * w).saturating_sub(used) / w;
    u64::try_from(left).unwrap_or(u64::MAX)
}

// === impl ClientLimiter ===

impl ClientLimiter {
    /// The limiter `config` describes, with the limits it gives the API keys in `keys`. The
    /// store (and its counts) of `previous` is kept when it counts the same way
    /// ([`ClientRateLimitConfig::same_counts`]). `policy` names it in `RateLimit-Policy`.
    pub fn new(
        config: &ClientRateLimitConfig,
        keys: &ApiKeys,
        previous: Option<&ClientLimiter>,
        policy: &'static str,
    ) -> Self {
        let store = match previous {
            Some(p) if p.config.same_counts(config) => p.store.clone(),
            _ => Arc::new(KeyedStore::local(
                config.max_clients,
                config.window,
                Instant::now(),
            )),
        };
        let mut by_key = HashMap::new();
        for key in keys.keys() {
            let by_name = config.per_key.iter().find(|(n, _)| **n == *key.name);
            let by_role = config
                .per_role
                .iter()
                .filter(|(role, _)| key.roles.contains(role))
                .map(|(_, limit)| unlimited_last(*limit))
                .max()
                .map(|l| l.1);
            if let Some(limit) = by_name.map(|(_, l)| *l).or(by_role) {
                by_key.insert(key.name.clone(), limit);
            }
        }
        ClientLimiter {
            config: config.clone(),
            store,
            by_key,
            policy,
        }
    }

    /// The settings it was built with.
    pub fn config(&self) -> &ClientRateLimitConfig {
        &self.config
    }

    /// Where its counts live.
    pub fn store(&self) -> &Arc<KeyedStore> {
        &self.store
    }

    /// True when responses carry its `RateLimit-Policy` and `RateLimit`.
    pub fn headers(&self) -> bool {
        self.config.headers
    }

    /// The limit of a request from `id`: its API key's own, else `requests`.
    pub fn limit_for(&self, id: &Identity<'_>) -> u32 {
        id.api_key
            .and_then(|name| self.by_key.get(name))
            .copied()
            .unwrap_or(self.config.requests)
    }

    /// Counts a request from `id` at `now` and decides; `None` when its limit is `0` (no
    /// limit: nothing is counted).
    pub fn check(&self, id: &Identity<'_>, now: Instant) -> Option<(Verdict, Quota)> {
        let limit = u64::from(self.limit_for(id));
        if limit == 0 {
            return None;
        }
        let key = key_of(&self.config.key, id);
        let verdict = self.store.check(&key, limit, now);
        let quota = Quota {
            policy: self.policy,
            limit,
            window: self.config.window,
            remaining: verdict.remaining,
            reset: verdict.reset,
        };
        Some((verdict, quota))
    }
}

/// Orders limits so that `0` (no limit) is the highest: the best of a key's roles wins.
fn unlimited_last(limit: u32) -> (bool, u32) {
    (limit == 0, limit)
}
