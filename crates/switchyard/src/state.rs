//! What the request path reads: the [`State`] built from a configuration, held in an
//! `ArcSwap` so that a request loads it once, without a lock, and sees one consistent
//! version throughout; and [`Shared`], what outlives any one configuration (the metrics).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::upstream::backend::ResolveError;
use crate::upstream::connect::Connector;
use crate::upstream::{Backend, Pool};

/// The request path's view of one configuration.
#[derive(Debug)]
pub struct State {
    /// The backend pool.
    pub pool: Pool,
    /// The rate limiter.
    pub limiter: RateLimiter,
    /// How upstream connections are made and pooled.
    pub connector: Connector,
    /// Further backends tried after a connect failure.
    pub retries: u32,
    /// Time a backend has to send its response head.
    pub upstream_timeout: Duration,
    /// Longest pause within a request body.
    pub read_timeout: Duration,
    /// Longest pause within a response body.
    pub write_timeout: Duration,
}

/// State shared by every connection for the life of the process.
#[derive(Debug)]
pub struct Shared {
    state: ArcSwap<State>,
    /// Counters.
    pub metrics: Metrics,
}

// === impl State ===

impl State {
    /// Builds the state `config` describes; resolves backend host names.
    pub fn build(config: &Config, shards: usize) -> Result<State, ResolveError> {
        let backends = config
            .upstream
            .backends
            .iter()
            .map(|url| Backend::new(url.clone(), config.upstream.breaker, shards).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(State {
            pool: Pool::new(backends),
            limiter: RateLimiter::new(config.rate_limit),
            connector: Connector {
                connect_timeout: config.upstream.connect_timeout,
                pool: config.upstream.pool,
                max_header_bytes: config.downstream.max_header_bytes,
            },
            retries: config.upstream.retries,
            upstream_timeout: config.upstream.timeout,
            read_timeout: config.downstream.read_timeout,
            write_timeout: config.downstream.write_timeout,
        })
    }
}

// === impl Shared ===

impl Shared {
    /// Shared state starting with `state`.
    pub fn new(state: State, metrics: Metrics) -> Self {
        Shared {
            state: ArcSwap::from_pointee(state),
            metrics,
        }
    }

    /// The state in force now. Hold it for the whole request.
    #[inline]
    pub fn state(&self) -> Arc<State> {
        self.state.load_full()
    }
}
