//! Tokens already verified, so that a client sending the same token on every request pays
//! for its signature once (an RS256 check cost about ten times a whole proxied request,
//! in instructions): the claims of a token that verified, kept until the clock says
//! its `exp` has passed. Per worker thread (one shard each, so its lock is never
//! contended) and bounded; a token that did not verify is never kept, so a flood of bad
//! tokens cannot fill it. Envoy's `jwt_authn` keeps such a cache too.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use crate::metrics::Sharded;

/// Tokens kept per worker thread.
pub const PER_WORKER: usize = 512;

/// Shards: one per worker thread up to this many (more share).
const SHARDS: usize = 16;

/// The verified tokens of one provider (a reload makes a new provider, and a new cache).
#[derive(Debug)]
pub struct TokenCache {
    shards: Sharded<Mutex<HashMap<u64, Entry>>>,
    /// Random per cache, so that no client can aim tokens at one slot.
    hasher: RandomState,
}

#[derive(Debug)]
struct Entry {
    token: Box<str>,
    claims: Arc<Map<String, Value>>,
    exp: u64,
    nbf: Option<u64>,
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache {
            shards: Sharded::new(SHARDS),
            hasher: RandomState::new(),
        }
    }
}

impl TokenCache {
    /// The claims of `token` if it verified before and is still within its `exp` and `nbf`
    /// at `now` (seconds since the epoch), with `leeway` seconds as the verification allows.
    pub fn get(&self, token: &str, now: u64, leeway: u64) -> Option<Arc<Map<String, Value>>> {
        let key = self.hasher.hash_one(token);
        let shard = self.shards.local().lock().ok()?;
        let entry = shard.get(&key)?;
        // Compared in constant time: the token is a credential.
        if !bool::from(entry.token.as_bytes().ct_eq(token.as_bytes())) {
            return None;
        }
        let expired = entry.exp.saturating_add(leeway) < now;
        let early = entry
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(leeway));
        (!expired && !early).then(|| entry.claims.clone())
    }

    /// Keeps `token`, which has just verified with these claims (a token without a numeric
    /// `exp` is not kept). A full shard first lets expired tokens go, then all of them.
    pub fn put(&self, token: &str, claims: &Arc<Map<String, Value>>, now: u64, leeway: u64) {
        let Some(exp) = claims.get("exp").and_then(Value::as_u64) else {
            return;
        };
        let nbf = claims.get("nbf").and_then(Value::as_u64);
        let key = self.hasher.hash_one(token);
        let Ok(mut shard) = self.shards.local().lock() else {
            return;
        };
        if shard.len() >= PER_WORKER {
            shard.retain(|_, e| e.exp.saturating_add(leeway) >= now);
            if shard.len() >= PER_WORKER {
                shard.clear();
            }
        }
        shard.insert(
            key,
            Entry {
                token: token.into(),
                claims: claims.clone(),
                exp,
                nbf,
            },
        );
    }

    /// Tokens kept now, over all shards.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.len()))
            .sum()
    }

    /// True when no token is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64, nbf: Option<u64>) -> Arc<Map<String, Value>> {
        let mut m = Map::new();
        m.insert("sub".into(), "ann".into());
        m.insert("exp".into(), exp.into());
        if let Some(nbf) = nbf {
            m.insert("nbf".into(), nbf.into());
        }
        Arc::new(m)
    }

    #[test]
    fn a_kept_token_is_used_only_within_its_exp_and_nbf() {
        let cache = TokenCache::default();
        cache.put("a.b.c", &claims(105, Some(95)), 100, 0);
        assert!(cache.get("a.b.c", 100, 0).is_some());
        assert!(cache.get("a.b.d", 100, 0).is_none(), "another token");
        assert!(
            cache.get("a.b.c", 105, 0).is_some(),
            "exp itself still passes"
        );
        assert!(cache.get("a.b.c", 106, 0).is_none(), "expired");
        assert!(cache.get("a.b.c", 107, 2).is_some(), "within the leeway");
        assert!(cache.get("a.b.c", 108, 2).is_none());
        assert!(cache.get("a.b.c", 90, 0).is_none(), "before nbf");
        assert!(cache.get("a.b.c", 90, 5).is_some(), "nbf within the leeway");
        // A token without a numeric exp is not kept.
        let mut no_exp = Map::new();
        no_exp.insert("exp".into(), "soon".into());
        cache.put("x.y.z", &Arc::new(no_exp), 100, 0);
        assert!(cache.get("x.y.z", 100, 0).is_none());
    }

    #[test]
    fn a_shard_never_holds_more_than_its_bound() {
        let cache = TokenCache::default();
        for i in 0..(PER_WORKER * 3) {
            cache.put(&format!("token-{i}"), &claims(1_000, None), 100, 0);
            assert!(cache.len() <= PER_WORKER);
        }
        assert!(!cache.is_empty());
        // Expired ones go first when a shard is full.
        let cache = TokenCache::default();
        for i in 0..PER_WORKER {
            cache.put(&format!("old-{i}"), &claims(50, None), 40, 0);
        }
        cache.put("fresh", &claims(1_000, None), 100, 0);
        assert_eq!(cache.len(), 1);
        assert!(cache.get("fresh", 100, 0).is_some());
    }
}
