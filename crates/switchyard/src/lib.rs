//! switchyard: an HTTP reverse proxy and load balancer.
//!
//! Follow one request through the modules in this order:
//!
//! | module        | owns |
//! |---------------|------|
//! | [`run`](mod@run) | what the binary runs: [`run()`](fn@run) (signals, start, reloads, drain), [`supervise`], [`check`] |
//! | [`cli`]       | command-line flags, Go-style forms; flags over a configuration (flags > file > defaults) |
//! | [`config`]    | the configuration file read section by section, its validation, and the resulting [`config::Config`] |
//! | [`server`]    | listeners, worker threads, client connections, timeouts, reload, shutdown |
//! | [`reload`]    | reloading the `--config` file: on request, and when it changes |
//! | [`proxy`]     | `handle`: the request path, phase by phase; errors → responses |
//! | [`routing`]   | the route table: which route a request takes |
//! | [`admin`]     | `/health` and `/metrics`: snapshots, JSON and Prometheus renderings |
//! | [`ratelimit`] | the sliding-window limiter |
//! | [`upstream`]  | backend pools, balancing, circuit breakers, upstream connections |
//! | [`state`]     | what the request path reads, swapped atomically |
//! | [`metrics`]   | the sharded per-worker counters |
//! | [`memory`]    | freed memory given back to the system when open connections fall |
//! | [`telemetry`] | logging, the access log and the audit log of security events |
//! | [`demo`]      | `switchyard demo`: the proxy in front of two built-in backends |
//! | [`ops`]       | running as a service: `--pid-file`, `reload`/`stop`, `print-config`, `version`, completions, man page |
//!
//! `docs/request-lifecycle.md` walks through the same path in prose.

pub mod admin;
#[cfg(feature = "mimalloc")]
pub mod allocator;
pub mod body;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod errors;
pub mod memory;
pub mod metrics;
pub mod ops;
pub mod proxy;
pub mod ratelimit;
pub mod reload;
pub mod routing;
pub mod run;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod upstream;

pub use config::Config;
pub use run::{check, run, supervise, CheckError, Control, RunError};
pub use server::{start, start_with_listener, Server, ShutdownReport, StartError};
