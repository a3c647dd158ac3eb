//! Balancing policies measured through a real proxy and real backends: smooth weighted round
//! robin, random, least request, peak EWMA and Maglev consistent hashing; active health
//! checks, passive outlier ejection and its cap, panic mode, slow start, and the
//! `max_connections` queue. Every test prints the figures it measured (run with
//! `--nocapture` to see them).

mod support;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use support::backends::{pool_config, port, served_by};
use support::metrics::backend_entry;
use support::{backend, Client, Resp, TestProxy};
use switchyard::config::{BreakerConfig, HashKey, Policy};
use switchyard::upstream::pick::{hash_bytes, Picker};
use switchyard::upstream::Backend;
use test_server::TestServer;
use tokio::time::Instant;

// === helpers ===

async fn backend_flag(proxy: &TestProxy, server: &TestServer, field: &str) -> bool {
    backend_entry(&proxy.metrics().await, server)[field]
        .as_bool()
        .unwrap_or_else(|| panic!("{field} is not a bool"))
}

/// Share of `ports` equal to `p`.
fn share(ports: &[u16], p: u16) -> f64 {
    if ports.is_empty() {
        return 0.0;
    }
    ports.iter().filter(|&&x| x == p).count() as f64 / ports.len() as f64
}

/// Requests per backend port, labelled with `names`.
fn distribution(ports: &[u16], names: &[(&str, &TestServer)]) -> String {
    names
        .iter()
        .map(|(n, s)| {
            let count = ports.iter().filter(|&&p| p == port(s)).count();
            format!("{n}={count} ({:.1}%)", 100.0 * share(ports, port(s)))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn get_with(path: &str, headers: &[(&str, String)]) -> http::Request<Bytes> {
    let mut req = http::Request::get(path);
    for (name, value) in headers {
        req = req.header(*name, value.as_str());
    }
    req.body(Bytes::new()).expect("request")
}

/// `clients` keep-alive clients, each sending `per_client` `GET /` in turn; returns every
/// response's (status, served-by port) in completion order.
async fn load(addr: SocketAddr, clients: usize, per_client: usize) -> Vec<(u16, u16)> {
    let done = Arc::new(Mutex::new(Vec::with_capacity(clients * per_client)));
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let done = done.clone();
            tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                for _ in 0..per_client {
                    let resp = client.get("/").await;
                    let item = (resp.status, served_by(&resp));
                    done.lock().expect("lock").push(item);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client task");
    }
    let out = done.lock().expect("lock").clone();
    out
}

/// Sends `GET /` with header `name: key` for every key, over `clients` keep-alive
/// connections; returns the served-by port of each key (in `keys` order).
async fn route_keys(addr: SocketAddr, name: &'static str, keys: Arc<Vec<String>>) -> Vec<u16> {
    const CLIENTS: usize = 32;
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let keys = keys.clone();
            tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                let mut out = Vec::new();
                for i in (c..keys.len()).step_by(CLIENTS) {
                    let resp = client
                        .send(get_with("/", &[(name, keys[i].clone())]))
                        .await
                        .expect("GET");
                    assert_eq!(resp.status, 200, "key {}: {}", keys[i], resp.text());
                    out.push((i, served_by(&resp)));
                }
                out
            })
        })
        .collect();
    let mut ports = vec![0u16; keys.len()];
    for t in tasks {
        for (i, p) in t.await.expect("client task") {
            ports[i] = p;
        }
    }
    ports
}

/// `GET path` on a fresh connection made from the loopback address `from` (127.0.0.0/8 is
/// all loopback on Linux), so that the proxy sees another client IP.
async fn get_from(from: Ipv4Addr, proxy: SocketAddr) -> Resp {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(IpAddr::V4(from), 0))
        .expect("bind client address");
    let stream = socket.connect(proxy).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, http_body_util::Full<Bytes>>(
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .expect("handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::get("/")
        .header(http::header::HOST, proxy.to_string())
        .body(http_body_util::Full::new(Bytes::new()))
        .expect("request");
    let resp = sender.send_request(req).await.expect("GET");
    let (parts, body) = resp.into_parts();
    let body = http_body_util::BodyExt::collect(body)
        .await
        .expect("body")
        .to_bytes();
    Resp {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

const FAST_CHECKS: &str = "[pools.p.health_check]\n\
    interval = \"50ms\"\n\
    timeout = \"500ms\"\n\
    unhealthy_threshold = 1\n\
    healthy_threshold = 1\n";

// === round robin ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_weighted_5_1_1_is_exact_and_smooth() {
    let (a, b, c) = (backend("a").await, backend("b").await, backend("c").await);
    let config = pool_config(1, &[(&a, 5), (&b, 1), (&c, 1)], "", "");
    let proxy = TestProxy::start(config);
    let mut client = Client::connect(proxy.addr).await;
    let mut order = String::with_capacity(700);
    for i in 0..700 {
        let resp = client.get("/").await;
        assert_eq!(resp.status, 200, "request {i}");
        order.push(match served_by(&resp) {
            p if p == port(&a) => 'a',
            p if p == port(&b) => 'b',
            p if p == port(&c) => 'c',
            p => panic!("request {i} served by unknown port {p}"),
        });
    }
    let count = |ch| order.chars().filter(|&x| x == ch).count();
    let (na, nb, nc) = (count('a'), count('b'), count('c'));
    let runs = |s: &str| {
        let mut best = 0;
        let mut cur = 0;
        for ch in s.chars() {
            cur = if ch == 'a' { cur + 1 } else { 0 };
            best = best.max(cur);
        }
        best
    };
    let within_cycle = order
        .as_bytes()
        .chunks(7)
        .map(|c| runs(std::str::from_utf8(c).expect("ascii")))
        .max()
        .unwrap_or(0);
    let overall = runs(&order);
    println!(
        "[round_robin 5/1/1] 700 requests: a={na} b={nb} c={nc}; first cycles: {}; \
         longest run of a: {within_cycle} within a cycle, {overall} across cycle boundaries",
        &order[..21]
    );
    assert_eq!((na, nb, nc), (500, 100, 100));
    assert_eq!(
        order,
        "aabacaa".repeat(100),
        "nginx's smooth order, cycle after cycle"
    );
    assert!(
        within_cycle <= 2,
        "no burst within a cycle: longest run {within_cycle}"
    );
    // The cycle repeats (nginx's current weights return to zero after each cycle), so the
    // two a's ending one cycle meet the two starting the next: 4 in a row, never 5 (the
    // naive order a a a a a b c would give 5, and 10 across cycles).
    assert!(overall <= 4, "longest run of a: {overall}");
    proxy.stop().await;
}

// === random ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_spreads_evenly_over_three_backends() {
    let (a, b, c) = (backend("a").await, backend("b").await, backend("c").await);
    let config = pool_config(2, &[(&a, 1), (&b, 1), (&c, 1)], "policy = \"random\"", "");
    let proxy = TestProxy::start(config);
    let results = load(proxy.addr, 10, 300).await;
    assert!(results.iter().all(|(s, _)| *s == 200));
    let ports: Vec<u16> = results.iter().map(|r| r.1).collect();
    println!(
        "[random] 3000 requests: {}",
        distribution(&ports, &[("a", &a), ("b", &b), ("c", &c)])
    );
    for s in [&a, &b, &c] {
        let n = ports.iter().filter(|&&p| p == port(s)).count();
        assert!((900..=1100).contains(&n), "{n} not within 1000 ± 10%");
    }
    proxy.stop().await;
}

// === load-aware policies ===

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn least_request_keeps_traffic_away_from_a_slow_backend() {
    let (a, b, slow) = (
        backend("a").await,
        backend("b").await,
        backend("slow").await,
    );
    slow.set_delay(200);
    let config = pool_config(
        2,
        &[(&a, 1), (&b, 1), (&slow, 1)],
        "policy = \"least_request\"",
        "",
    );
    let proxy = TestProxy::start(config);
    let started = Instant::now();
    let results = load(proxy.addr, 30, 10).await;
    let elapsed = started.elapsed();
    assert!(results.iter().all(|(s, _)| *s == 200));
    let ports: Vec<u16> = results.iter().map(|r| r.1).collect();
    let slow_share = share(&ports, port(&slow));
    println!(
        "[least_request] 30 clients x 10 requests, slow backend +200ms: {} in {elapsed:?}",
        distribution(&ports, &[("a", &a), ("b", &b), ("slow", &slow)])
    );
    assert!(
        slow_share < 0.20,
        "slow backend got {:.1}% (fair share 33%)",
        slow_share * 100.0
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn peak_ewma_keeps_traffic_away_from_a_slow_backend() {
    let (a, b, slow) = (
        backend("a").await,
        backend("b").await,
        backend("slow").await,
    );
    slow.set_delay(50);
    let config = pool_config(
        2,
        &[(&a, 1), (&b, 1), (&slow, 1)],
        "policy = \"peak_ewma\"",
        "",
    );
    let proxy = TestProxy::start(config);
    let started = Instant::now();
    let results = load(proxy.addr, 30, 20).await;
    let elapsed = started.elapsed();
    assert!(results.iter().all(|(s, _)| *s == 200));
    let ports: Vec<u16> = results.iter().map(|r| r.1).collect();
    let (first, second) = ports.split_at(ports.len() / 2);
    let slow_share = share(&ports, port(&slow));
    let metrics = proxy.metrics().await;
    let ewma = |s: &TestServer| backend_entry(&metrics, s)["latency_ewma_ms"].clone();
    println!(
        "[peak_ewma] 30 clients x 20 requests, slow backend +50ms, in {elapsed:?}: {}; \
         slow share first half {:.1}%, second half {:.1}%; latency_ewma_ms a={} b={} slow={}",
        distribution(&ports, &[("a", &a), ("b", &b), ("slow", &slow)]),
        100.0 * share(first, port(&slow)),
        100.0 * share(second, port(&slow)),
        ewma(&a),
        ewma(&b),
        ewma(&slow),
    );
    assert!(
        slow_share < 0.15,
        "slow backend got {:.1}% (fair share 33%)",
        slow_share * 100.0
    );
    proxy.stop().await;
}

// === consistent hashing ===

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consistent_hash_by_header_moves_only_the_lost_backends_keys_and_back() {
    let mut servers = Vec::new();
    for i in 0..5 {
        servers.push(backend(&format!("b{i}")).await);
    }
    let weighted: Vec<(&TestServer, u32)> = servers.iter().map(|s| (s, 1)).collect();
    let config = pool_config(
        2,
        &weighted,
        "policy = \"consistent_hash\"\nhash_key = \"header:x-user\"",
        FAST_CHECKS,
    );
    let proxy = TestProxy::start(config);
    let keys: Arc<Vec<String>> = Arc::new((0..5000).map(|i| format!("user-{i}")).collect());
    let started = Instant::now();

    let before = route_keys(proxy.addr, "x-user", keys.clone()).await;
    let again = route_keys(proxy.addr, "x-user", keys.clone()).await;
    assert_eq!(
        before, again,
        "the same key always reaches the same backend"
    );
    let mut per_backend: BTreeMap<u16, usize> = BTreeMap::new();
    for p in &before {
        *per_backend.entry(*p).or_default() += 1;
    }
    assert_eq!(
        per_backend.len(),
        5,
        "keys reach every backend: {per_backend:?}"
    );

    // Take backend 2 out through its health check.
    let lost = &servers[2];
    lost.set_health(503);
    assert!(
        support::eventually(Duration::from_secs(2), || async {
            !backend_flag(&proxy, lost, "healthy").await
        })
        .await,
        "backend 2 never became unhealthy"
    );
    let during = route_keys(proxy.addr, "x-user", keys.clone()).await;
    let moved = before.iter().zip(&during).filter(|(b, d)| b != d).count();
    let lost_keys = before.iter().filter(|&&p| p == port(lost)).count();
    let moved_from_others = before
        .iter()
        .zip(&during)
        .filter(|(b, d)| **b != port(lost) && b != d)
        .count();
    let moved_fraction = moved as f64 / keys.len() as f64;
    assert!(
        during.iter().all(|&p| p != port(lost)),
        "no key reaches the unhealthy backend"
    );

    // And bring it back.
    lost.set_health(200);
    assert!(
        support::eventually(Duration::from_secs(2), || async {
            backend_flag(&proxy, lost, "healthy").await
        })
        .await,
        "backend 2 never became healthy again"
    );
    let after = route_keys(proxy.addr, "x-user", keys.clone()).await;
    let back = before.iter().zip(&after).filter(|(b, a)| b == a).count();
    let back_fraction = back as f64 / keys.len() as f64;
    println!(
        "[consistent_hash header] {} keys over 5 backends: keys per backend {:?}; \
         backend 2 out: moved {moved} = {moved_fraction:.4} (its own keys {lost_keys}, \
         keys of other backends moved {moved_from_others}); back: {back} = {back_fraction:.4} \
         on their original backend; 4 passes in {:?}",
        keys.len(),
        per_backend.values().collect::<Vec<_>>(),
        started.elapsed()
    );
    assert_eq!(moved, lost_keys, "exactly the lost backend's keys moved");
    assert_eq!(moved_from_others, 0, "no key of another backend moved");
    assert!(
        (0.15..=0.25).contains(&moved_fraction),
        "moved fraction {moved_fraction}"
    );
    assert!(back_fraction >= 0.99, "back fraction {back_fraction}");
    proxy.stop().await;
}

#[test]
fn consistent_hash_unit_figures_over_100k_keys() {
    let breaker = BreakerConfig {
        failure_threshold: 5,
        open_duration: Duration::from_secs(10),
    };
    let make = |ports: &[u16]| -> Vec<Arc<Backend>> {
        ports
            .iter()
            .map(|&p| Arc::new(Backend::new(support::url_for_port(p), breaker, 1)))
            .collect()
    };
    let picker_for = |backends: &[Arc<Backend>]| {
        let weights = vec![1; backends.len()];
        let ids: Vec<u64> = backends.iter().map(|b| b.identity).collect();
        let key = HashKey::Header(http::HeaderName::from_static("x-user"));
        Picker::new(&Policy::ConsistentHash(key), &weights, &ids)
    };
    let ports = [20001u16, 20002, 20003, 20004, 20005];
    let backends = make(&ports);
    let picker = picker_for(&backends);
    let hashes: Vec<u64> = (0..100_000)
        .map(|i| hash_bytes(format!("user-{i}").as_bytes()))
        .collect();
    let n = hashes.len() as f64;

    let before: Vec<usize> = hashes
        .iter()
        .map(|&h| picker.first(&backends, Some(h), |_| true))
        .collect();
    let mut counts = [0usize; 5];
    for &i in &before {
        counts[i] += 1;
    }

    // Backend 2 unavailable: the key is re-hashed.
    let during: Vec<usize> = hashes
        .iter()
        .map(|&h| picker.first(&backends, Some(h), |i| i != 2))
        .collect();
    let moved = before.iter().zip(&during).filter(|(b, d)| b != d).count();
    let moved_others = before
        .iter()
        .zip(&during)
        .filter(|(b, d)| **b != 2 && b != d)
        .count();
    let mut landed = [0usize; 5];
    for (b, d) in before.iter().zip(&during) {
        if *b == 2 {
            landed[*d] += 1;
        }
    }
    let back = hashes
        .iter()
        .zip(&before)
        .filter(|(&h, &b)| picker.first(&backends, Some(h), |_| true) == b)
        .count();

    // Backend 2 removed from the configuration: a new table over the other four.
    let rest = make(&[20001, 20002, 20004, 20005]);
    let rebuilt = picker_for(&rest);
    let label = |b: &Arc<Backend>| b.label.clone();
    let removed_moved = hashes
        .iter()
        .zip(&before)
        .filter(|(&h, &b)| {
            label(&rest[rebuilt.first(&rest, Some(h), |_| true)]) != label(&backends[b])
        })
        .count();
    let removed_moved_others = hashes
        .iter()
        .zip(&before)
        .filter(|(&h, &b)| {
            b != 2 && label(&rest[rebuilt.first(&rest, Some(h), |_| true)]) != label(&backends[b])
        })
        .count();

    println!(
        "[consistent_hash unit] 100000 keys over 5 backends: per backend {counts:?}; \
         backend 2 unavailable: moved {moved} = {:.4} (its keys {}, others moved {moved_others}, \
         its keys landed {landed:?}); available again: {back} = {:.4} back; \
         backend 2 removed from config (table rebuilt): moved {removed_moved} = {:.4}, \
         keys of other backends moved {removed_moved_others} = {:.4}",
        moved as f64 / n,
        counts[2],
        back as f64 / n,
        removed_moved as f64 / n,
        removed_moved_others as f64 / n,
    );
    for c in counts {
        assert!(c.abs_diff(20_000) < 1_000, "uneven spread {counts:?}");
    }
    assert_eq!(moved, counts[2]);
    assert_eq!(moved_others, 0);
    assert!((0.15..=0.25).contains(&(moved as f64 / n)));
    assert_eq!(back, hashes.len());
    assert!(removed_moved as f64 / n < 0.25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_by_cookie_is_sticky() {
    let (a, b, c) = (backend("a").await, backend("b").await, backend("c").await);
    let config = pool_config(
        2,
        &[(&a, 1), (&b, 1), (&c, 1)],
        "policy = \"consistent_hash\"\nhash_key = \"cookie:session\"",
        "",
    );
    let proxy = TestProxy::start(config);
    let mut chosen: BTreeMap<u16, usize> = BTreeMap::new();
    for s in 0..30 {
        let cookie = format!("theme=dark; session=s{s}; lang=en");
        let mut seen = Vec::new();
        for _ in 0..5 {
            // A fresh connection each time: stickiness must not come from the connection.
            let mut client = Client::connect(proxy.addr).await;
            let resp = client
                .send(get_with("/", &[("cookie", cookie.clone())]))
                .await
                .expect("GET");
            assert_eq!(resp.status, 200);
            seen.push(served_by(&resp));
        }
        assert!(
            seen.windows(2).all(|w| w[0] == w[1]),
            "session s{s}: {seen:?}"
        );
        *chosen.entry(seen[0]).or_default() += 1;
    }
    // Without the cookie: balanced at random, still answered.
    let mut client = Client::connect(proxy.addr).await;
    let mut without = Vec::new();
    for _ in 0..30 {
        let resp = client.get("/").await;
        assert_eq!(resp.status, 200);
        without.push(served_by(&resp));
    }
    without.sort_unstable();
    without.dedup();
    println!(
        "[consistent_hash cookie] 30 sessions x 5 requests, each session on one backend; \
         sessions per backend {chosen:?}; without the cookie 30 requests reached {} backends",
        without.len()
    );
    assert!(chosen.len() >= 2, "sessions spread: {chosen:?}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_by_client_ip_is_sticky() {
    let (a, b, c) = (backend("a").await, backend("b").await, backend("c").await);
    let config = pool_config(
        2,
        &[(&a, 1), (&b, 1), (&c, 1)],
        "policy = \"consistent_hash\"\nhash_key = \"client_ip\"",
        "",
    );
    let proxy = TestProxy::start(config);
    // One client IP, many connections, a spoofed X-Forwarded-For: one backend.
    let mut seen = Vec::new();
    for i in 0..20 {
        let mut client = Client::connect(proxy.addr).await;
        let resp = client
            .send(get_with("/", &[("x-forwarded-for", format!("10.0.0.{i}"))]))
            .await
            .expect("GET");
        assert_eq!(resp.status, 200);
        seen.push(served_by(&resp));
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "127.0.0.1: {seen:?}");
    // Other loopback client addresses: each sticks to its backend, and they spread.
    let mut per_ip: HashMap<Ipv4Addr, u16> = HashMap::new();
    for round in 0..3 {
        for k in 2..22u8 {
            let ip = Ipv4Addr::new(127, 0, 0, k);
            let resp = get_from(ip, proxy.addr).await;
            assert_eq!(resp.status, 200);
            let p = served_by(&resp);
            let first = *per_ip.entry(ip).or_insert(p);
            assert_eq!(first, p, "{ip} moved in round {round}");
        }
    }
    let mut spread: BTreeMap<u16, usize> = BTreeMap::new();
    for p in per_ip.values() {
        *spread.entry(*p).or_default() += 1;
    }
    println!(
        "[consistent_hash client_ip] 127.0.0.1: 20 connections all on port {}; \
         127.0.0.2-21 x 3 rounds each sticky; client IPs per backend {spread:?}",
        seen[0]
    );
    assert!(spread.len() >= 2, "client IPs spread: {spread:?}");
    proxy.stop().await;
}

// === active health checks ===

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_checks_follow_a_flapping_backend_without_failing_requests() {
    let (a, flappy) = (backend("a").await, backend("flappy").await);
    let config = pool_config(
        2,
        &[(&a, 1), (&flappy, 1)],
        "",
        "[pools.p.health_check]\n\
         interval = \"50ms\"\n\
         timeout = \"500ms\"\n\
         unhealthy_threshold = 2\n\
         healthy_threshold = 2\n",
    );
    let proxy = TestProxy::start(config);

    // Background traffic during the whole test: every answer must be a 200.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(Mutex::new(Vec::new()));
    let traffic: Vec<_> = (0..4)
        .map(|_| {
            let (stop, sent, failed, addr) =
                (stop.clone(), sent.clone(), failed.clone(), proxy.addr);
            tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                while !stop.load(Ordering::Relaxed) {
                    let resp = client.get("/").await;
                    sent.fetch_add(1, Ordering::Relaxed);
                    if resp.status != 200 {
                        failed
                            .lock()
                            .expect("lock")
                            .push((resp.status, resp.text()));
                    }
                }
            })
        })
        .collect();

    let mut probe = Client::connect(proxy.addr).await;
    let mut timings = Vec::new();
    for cycle in 0..4 {
        flappy.set_health(500);
        let t0 = Instant::now();
        assert!(
            support::eventually(Duration::from_secs(1), || async {
                !backend_flag(&proxy, &flappy, "healthy").await
            })
            .await,
            "cycle {cycle}: not marked unhealthy within 1s"
        );
        let down = t0.elapsed();
        for i in 0..20 {
            let resp = probe.get("/").await;
            assert_eq!(resp.status, 200);
            assert_eq!(
                served_by(&resp),
                port(&a),
                "cycle {cycle}: request {i} reached the unhealthy backend"
            );
        }
        assert!(!backend_flag(&proxy, &flappy, "healthy").await);

        flappy.set_health(200);
        let t1 = Instant::now();
        assert!(
            support::eventually(Duration::from_secs(1), || async {
                backend_flag(&proxy, &flappy, "healthy").await
            })
            .await,
            "cycle {cycle}: not back within 1s"
        );
        let up = t1.elapsed();
        let mut got_flappy = 0;
        for _ in 0..20 {
            let resp = probe.get("/").await;
            assert_eq!(resp.status, 200);
            got_flappy += usize::from(served_by(&resp) == port(&flappy));
        }
        assert!(got_flappy > 0, "cycle {cycle}: back in rotation");
        timings.push((down, up, got_flappy));
    }
    stop.store(true, Ordering::Relaxed);
    for t in traffic {
        t.await.expect("traffic task");
    }
    let failed = failed.lock().expect("lock").clone();
    println!(
        "[health flapping] interval 50ms, thresholds 2/2: per cycle (time to healthy=false, \
         time to healthy=true, probes of 20 served by it once back): {timings:?}; \
         background requests {} with {} non-200",
        sent.load(Ordering::Relaxed),
        failed.len()
    );
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_backends_unhealthy_gives_503_unless_panic_mode() {
    let (a, b) = (backend("a").await, backend("b").await);
    let plain = TestProxy::start(pool_config(2, &[(&a, 1), (&b, 1)], "", FAST_CHECKS));
    let panic = TestProxy::start(pool_config(
        2,
        &[(&a, 1), (&b, 1)],
        "panic_mode = true",
        FAST_CHECKS,
    ));
    a.set_health(500);
    b.set_health(500);
    for proxy in [&plain, &panic] {
        for s in [&a, &b] {
            assert!(
                support::eventually(Duration::from_secs(2), || async {
                    !backend_flag(proxy, s, "healthy").await
                })
                .await,
                "never unhealthy"
            );
        }
    }
    let before = plain.metrics().await["unavailable"]
        .as_u64()
        .expect("unavailable");
    let resp = support::get(&plain.url("/")).await;
    let after = plain.metrics().await["unavailable"]
        .as_u64()
        .expect("unavailable");
    let panic_resp = support::get(&panic.url("/")).await;
    let panic_unavailable = panic.metrics().await["unavailable"].clone();
    println!(
        "[all unhealthy] plain: {} {:?}, unavailable {before} -> {after}; \
         panic_mode: {} from port {} (unavailable {panic_unavailable})",
        resp.status,
        resp.text(),
        panic_resp.status,
        served_by(&panic_resp)
    );
    assert_eq!(resp.status, 503);
    assert!(
        resp.text().contains("no backend available"),
        "{}",
        resp.text()
    );
    assert_eq!(after, before + 1);
    assert_eq!(panic_resp.status, 200, "{}", panic_resp.text());
    assert!([port(&a), port(&b)].contains(&served_by(&panic_resp)));
    assert_eq!(panic_unavailable, 0);
    plain.stop().await;
    panic.stop().await;
}

// === outlier ejection ===

const OUTLIER: &str = "[pools.p.outlier_detection]\n\
    consecutive_5xx = 3\n\
    ejection_time = \"60s\"\n\
    max_ejection_percent = 50\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_ejection_after_three_consecutive_500s() {
    let mut servers = Vec::new();
    for i in 0..4 {
        servers.push(backend(&format!("b{i}")).await);
    }
    let bad = &servers[1];
    bad.set_status(500);
    let weighted: Vec<(&TestServer, u32)> = servers.iter().map(|s| (s, 1)).collect();
    let proxy = TestProxy::start(pool_config(2, &weighted, "retries = 0", OUTLIER));
    let mut client = Client::connect(proxy.addr).await;
    let mut errors = 0;
    let mut requests_to_eject = 0;
    for i in 0..40 {
        let resp = client.get("/").await;
        if resp.status == 500 {
            errors += 1;
            assert_eq!(served_by(&resp), port(bad));
            if errors == 3 {
                requests_to_eject = i + 1;
            }
        } else {
            assert_eq!(resp.status, 200);
        }
    }
    let metrics = proxy.metrics().await;
    let bad_entry = backend_entry(&metrics, bad);
    let bad_requests = bad.requests();
    let mut later = Vec::new();
    for _ in 0..100 {
        let resp = client.get("/").await;
        later.push((resp.status, served_by(&resp)));
    }
    println!(
        "[outlier] 4 backends, one answering 500: 500s seen {errors} (3rd at request \
         {requests_to_eject}); ejected={} ejections={}; next 100 requests: {} to it, {} non-200",
        bad_entry["ejected"],
        bad_entry["ejections"],
        bad.requests() - bad_requests,
        later.iter().filter(|(s, _)| *s != 200).count()
    );
    assert_eq!(errors, 3, "ejected after its third 500");
    assert_eq!(bad_entry["ejected"], true, "{metrics:#}");
    assert_eq!(bad_entry["ejections"], 1, "{metrics:#}");
    for s in servers.iter().filter(|s| port(s) != port(bad)) {
        assert_eq!(backend_entry(&metrics, s)["ejected"], false);
    }
    assert_eq!(bad.requests(), bad_requests, "no more traffic once ejected");
    assert!(later.iter().all(|(s, p)| *s == 200 && *p != port(bad)));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_ejection_is_capped_by_max_ejection_percent() {
    let mut servers = Vec::new();
    for i in 0..4 {
        servers.push(backend(&format!("b{i}")).await);
    }
    for s in &servers[1..] {
        s.set_status(500);
    }
    let weighted: Vec<(&TestServer, u32)> = servers.iter().map(|s| (s, 1)).collect();
    let proxy = TestProxy::start(pool_config(2, &weighted, "retries = 0", OUTLIER));
    let mut client = Client::connect(proxy.addr).await;
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for _ in 0..80 {
        let resp = client.get("/").await;
        *statuses.entry(resp.status).or_default() += 1;
    }
    let metrics = proxy.metrics().await;
    let ejected: Vec<bool> = servers
        .iter()
        .map(|s| backend_entry(&metrics, s)["ejected"] == true)
        .collect();
    let ejections: u64 = servers
        .iter()
        .map(|s| {
            backend_entry(&metrics, s)["ejections"]
                .as_u64()
                .expect("ejections")
        })
        .sum();
    println!(
        "[outlier cap] 4 backends, 3 answering 500, max_ejection_percent 50, 80 requests: \
         statuses {statuses:?}; ejected {ejected:?}; ejections total {ejections}"
    );
    assert_eq!(ejected.iter().filter(|e| **e).count(), 2, "{metrics:#}");
    assert!(!ejected[0], "the good backend is never ejected");
    assert_eq!(ejections, 2);
    proxy.stop().await;
}

// === slow start ===

/// `GET /` in a loop until `until`; the served-by ports.
async fn window(client: &mut Client, until: Instant) -> Vec<u16> {
    let mut ports = Vec::new();
    while Instant::now() < until {
        let resp = client.get("/").await;
        assert_eq!(resp.status, 200);
        ports.push(served_by(&resp));
    }
    ports
}

/// Takes backend `b` out through its health check and back, then measures its share of
/// first picks over the first 300 ms after its return and over 300 ms once the 2 s ramp is
/// over.
async fn slow_start_shares(policy: &str) -> (f64, f64, usize, usize) {
    let (a, b) = (backend("a").await, backend("b").await);
    let config = pool_config(
        2,
        &[(&a, 1), (&b, 1)],
        &format!("policy = \"{policy}\"\nslow_start = \"2s\""),
        FAST_CHECKS,
    );
    let proxy = TestProxy::start(config);
    b.set_health(500);
    assert!(
        support::eventually(Duration::from_secs(2), || async {
            !backend_flag(&proxy, &b, "healthy").await
        })
        .await
    );
    b.set_health(200);
    assert!(
        support::eventually(Duration::from_secs(2), || async {
            backend_flag(&proxy, &b, "healthy").await
        })
        .await
    );
    let back = Instant::now();
    let mut client = Client::connect(proxy.addr).await;
    let early = window(&mut client, back + Duration::from_millis(300)).await;
    // The ramp lasts a configured 2 s: waiting for it to end is the point, not a hope.
    tokio::time::sleep_until(back + Duration::from_millis(2100)).await;
    let late = window(&mut client, back + Duration::from_millis(2400)).await;
    proxy.stop().await;
    (
        share(&early, port(&b)),
        share(&late, port(&b)),
        early.len(),
        late.len(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_start_ramps_up_a_returning_backend_random() {
    let (early, late, n_early, n_late) = slow_start_shares("random").await;
    println!(
        "[slow_start random] returning backend's share: first 300ms {:.1}% of {n_early}, \
         after the 2s ramp {:.1}% of {n_late}",
        early * 100.0,
        late * 100.0
    );
    assert!(early < 0.5 * late, "early {early} vs late {late}");
    assert!(late > 0.35, "full share later: {late}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_start_ramps_up_a_returning_backend_round_robin() {
    let (early, late, n_early, n_late) = slow_start_shares("round_robin").await;
    println!(
        "[slow_start round_robin] returning backend's share: first 300ms {:.1}% of {n_early}, \
         after the 2s ramp {:.1}% of {n_late}",
        early * 100.0,
        late * 100.0
    );
    assert!(early < 0.5 * late, "early {early} vs late {late}");
    assert!(late > 0.35, "full share later: {late}");
}

// === max_connections ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_queues_then_answers_503_backend_busy() {
    let slow = backend("slow").await;
    slow.set_delay(500);
    let short = TestProxy::start(pool_config(
        2,
        &[(&slow, 1)],
        "max_connections = 1\nqueue_timeout = \"200ms\"",
        "",
    ));
    let long = TestProxy::start(pool_config(
        2,
        &[(&slow, 1)],
        "max_connections = 1\nqueue_timeout = \"2s\"",
        "",
    ));
    let mut figures = Vec::new();
    for (name, proxy) in [("queue_timeout 200ms", &short), ("queue_timeout 2s", &long)] {
        let served = slow.requests();
        let t0 = Instant::now();
        let url = proxy.url("/");
        let first = tokio::spawn(async move {
            let resp = support::get(&url).await;
            (resp.status, t0.elapsed())
        });
        assert!(
            support::eventually(Duration::from_secs(1), || async {
                slow.requests() > served
            })
            .await
        );
        let t1 = Instant::now();
        let second = support::get(&proxy.url("/")).await;
        let second_took = t1.elapsed();
        let (first_status, first_took) = first.await.expect("first");
        figures.push(format!(
            "{name}: first {first_status} in {first_took:?}, second {} {:?} in {second_took:?}",
            second.status,
            second.text()
        ));
        assert_eq!(first_status, 200);
        if proxy.addr == short.addr {
            assert_eq!(second.status, 503, "{}", second.text());
            assert!(second.text().contains("backend busy"), "{}", second.text());
            assert!(
                second_took >= Duration::from_millis(190)
                    && second_took < Duration::from_millis(450),
                "waited {second_took:?}"
            );
        } else {
            assert_eq!(second.status, 200, "{}", second.text());
            assert!(second_took >= Duration::from_millis(500), "{second_took:?}");
        }
    }
    println!("[max_connections=1, backend +500ms] {}", figures.join("; "));
    short.stop().await;
    long.stop().await;
}
