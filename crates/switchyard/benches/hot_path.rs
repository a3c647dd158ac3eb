//! Micro-benchmarks of the pieces every proxied request goes through: the route match, the
//! backend pick of each balancing policy, the rate-limit decision, the request header
//! rewrite, a metrics increment, and a backend's load slot and latency estimate with one
//! worker and with two at once. `cargo bench -p switchyard --bench hot_path`; CI only
//! builds them (clippy `--all-targets`). Whole-request figures come from `bench/run`.
#![allow(missing_docs)] // criterion's macros make undocumented public functions.

use std::hint::black_box;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use switchyard::config::{validate, RateLimitConfig};
use switchyard::proxy::context::{ConnInfo, Transport};
use switchyard::proxy::rewrite::rewrite_request;
use switchyard::ratelimit::RateLimiter;
use switchyard::state::State;

/// A site of a dozen routes over three pools, one per shape of match, and `policy` on the
/// pool the last route takes.
fn state(policy: &str) -> State {
    let policy = match policy {
        "consistent_hash" => "consistent_hash\"\nhash_key = \"client_ip",
        other => other,
    };
    let text = format!(
        "workers = 1\n\
         [pools.api]\nbackends = [\"http://127.0.0.1:1\", \"http://127.0.0.1:2\"]\n\
         [pools.static]\nbackends = [\"http://127.0.0.1:3\"]\n\
         [pools.web]\nbackends = [\"http://127.0.0.1:4\", \"http://127.0.0.1:5\", \"http://127.0.0.1:6\"]\n\
         policy = \"{policy}\"\n\
         [[routes]]\nmatch = {{ host = \"api.example.com\", path_prefix = \"/v1/users\" }}\npool = \"api\"\n\
         [[routes]]\nmatch = {{ host = \"api.example.com\", path_prefix = \"/v1\" }}\npool = \"api\"\n\
         [[routes]]\nmatch = {{ host = \"*.example.com\", path_prefix = \"/v2\" }}\npool = \"api\"\n\
         [[routes]]\nmatch = {{ path_prefix = \"/static\" }}\npool = \"static\"\n\
         [[routes]]\nmatch = {{ path_prefix = \"/assets\" }}\npool = \"static\"\n\
         [[routes]]\nmatch = {{ path = \"/favicon.ico\" }}\npool = \"static\"\n\
         [[routes]]\nmatch = {{ path_prefix = \"/admin\", methods = [\"GET\", \"POST\"] }}\npool = \"api\"\n\
         [[routes]]\nmatch = {{ path_prefix = \"/grpc\", headers = {{ \"content-type\" = \"application/grpc\" }} }}\npool = \"api\"\n\
         [[routes]]\nmatch = {{ host = \"shop.example.com\" }}\npool = \"web\"\n\
         [[routes]]\nmatch = {{ host = \"blog.example.com\", path_prefix = \"/\" }}\npool = \"web\"\n\
         [[routes]]\nmatch = {{ path_prefix = \"/ws\" }}\npool = \"web\"\n\
         [[routes]]\npool = \"web\"\n"
    );
    let config = validate::from_text(Path::new("bench.toml"), &text)
        .unwrap_or_else(|e| panic!("bench config: {e}"));
    State::build(config, None, 1)
}

fn request(host: &str, path: &str) -> http::request::Parts {
    http::Request::get(path)
        .header("host", host)
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
        )
        .header("accept", "text/html,application/xhtml+xml")
        .header("accept-encoding", "gzip, deflate, br")
        .header("connection", "keep-alive")
        .header("cookie", "session=0123456789abcdef")
        .body(())
        .expect("request")
        .into_parts()
        .0
}

fn route_match(c: &mut Criterion) {
    let state = state("round_robin");
    let mut group = c.benchmark_group("route_match");
    for (name, host, path) in [
        ("first_route", "api.example.com", "/v1/users/42"),
        ("wildcard_host", "eu.example.com", "/v2/items"),
        ("default_route", "www.other.org", "/index.html"),
    ] {
        let parts = request(host, path);
        group.bench_function(name, |b| {
            b.iter(|| black_box(state.routes.find(black_box(&parts), None).is_some()))
        });
    }
    group.finish();
}

fn backend_pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("backend_pick");
    for policy in [
        "round_robin",
        "random",
        "least_request",
        "peak_ewma",
        "consistent_hash",
    ] {
        let state = state(policy);
        let pool = state.pool("web").expect("pool").clone();
        let hash = (policy == "consistent_hash").then_some(0x9e37_79b9_7f4a_7c15_u64);
        group.bench_function(policy, |b| {
            b.iter(|| {
                let now = tokio::time::Instant::now();
                // The first candidate, with its breaker permit (dropped: given back).
                black_box(pool.candidates(now, hash).next().is_some())
            })
        });
    }
    group.finish();
}

fn rate_limit(c: &mut Criterion) {
    // A limit never reached, so every decision is an allowed one (the common path).
    let limiter = RateLimiter::new(RateLimitConfig {
        requests: u32::MAX,
        window: Duration::from_secs(1),
    });
    c.bench_function("rate_limit_decision", |b| {
        b.iter(|| black_box(limiter.check(tokio::time::Instant::now())))
    });
}

fn header_rewrite(c: &mut Criterion) {
    let state = state("round_robin");
    let template = request("shop.example.com", "/cart?item=7");
    let route = state.routes.find(&template, None).expect("a route");
    let addr: SocketAddr = "192.0.2.7:51234".parse().expect("address");
    let conn = ConnInfo::new(
        addr,
        &state.config.listeners[0],
        false,
        Transport::PLAIN_HTTP1,
    );
    c.bench_function("header_rewrite", |b| {
        b.iter_batched_ref(
            || request("shop.example.com", "/cart?item=7"),
            |parts| black_box(rewrite_request(parts, &conn, route, false)),
            criterion::BatchSize::SmallInput,
        )
    });
}

fn metrics_increment(c: &mut Criterion) {
    let metrics = switchyard::metrics::Metrics::new(1);
    c.bench_function("metrics_increment", |b| {
        b.iter(|| switchyard::metrics::inc(black_box(&metrics.local().requests)))
    });
}

/// A request's writes to its backend's load (slot taken, latency estimate, slot given back),
/// on one thread, and on two threads at once: each on its own shard (as two workers do), or
/// both on one (as every request did before the counts were per worker). Two threads: the
/// time is the wall time of both making `iters` requests each.
fn backend_load(c: &mut Criterion) {
    use std::sync::{Arc, Barrier};
    use switchyard::upstream::load::Load;
    use tokio::time::Instant;

    fn requests(load: &Load, iters: u64) {
        let now = Instant::now();
        for _ in 0..iters {
            let slot = black_box(load.try_acquire()).expect("no limit");
            load.observe(Duration::from_micros(50), now);
            load.release(slot);
        }
    }
    fn two_threads(iters: u64, shards: usize) -> Duration {
        let load = Arc::new(Load::new(shards));
        let start = Arc::new(Barrier::new(3));
        let threads: Vec<_> = (0..2)
            .map(|i| {
                let (load, start) = (load.clone(), start.clone());
                std::thread::spawn(move || {
                    switchyard::metrics::set_thread_shard(i);
                    start.wait();
                    requests(&load, iters);
                })
            })
            .collect();
        start.wait();
        let t0 = Instant::now();
        for t in threads {
            t.join().expect("bench thread");
        }
        t0.elapsed()
    }
    let mut group = c.benchmark_group("backend_load");
    group.bench_function("one_thread", |b| {
        let load = Load::new(1);
        b.iter_custom(|iters| {
            let t0 = Instant::now();
            requests(&load, iters);
            t0.elapsed()
        })
    });
    group.bench_function("two_threads_own_shards", |b| {
        b.iter_custom(|iters| two_threads(iters, 2))
    });
    group.bench_function("two_threads_one_shard", |b| {
        b.iter_custom(|iters| two_threads(iters, 1))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets =
    route_match,
    backend_pick,
    rate_limit,
    header_rewrite,
    metrics_increment,
    backend_load
}
criterion_main!(benches);
