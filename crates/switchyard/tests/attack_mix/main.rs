//! The attack mix: the real `switchyard` binary, with an API-key route, an open route and a
//! rate-limited route, limits on (64 KiB bodies, a 1 s read timeout), in front of a
//! recording backend, takes 200 hostile connections at once for a bounded time (slowloris,
//! malformed requests, smuggling attempts, oversize bodies, key guessing, distinct-key
//! floods: `attacks.rs`) while a normal client makes steady requests to the open and the
//! keyed route. The normal client sees no error and a bounded p99; no smuggled or refused
//! request reaches the backend, and no credential does; the proxy's peak RSS stays bounded.
//!
//! The bounds hold on a loaded two-core machine: the test process itself (200 hostile
//! clients, the normal client, the backend) shares the two cores with the proxy.

#[path = "../support/mod.rs"]
mod support;

mod attacks;
mod backend;

use std::sync::Arc;
use std::time::Duration;

use attacks::{Kind, Tally, KINDS};
use backend::Recorder;
use bytes::Bytes;
use support::process::start_proxy;
use support::{Client, TempDir};
use switchyard::config::auth::key_line;
use tokio::time::Instant;

/// How long the hostile clients run.
const ATTACK: Duration = Duration::from_secs(3);

/// The normal client's p99 bound. Without the attack its p99 is about 2 ms; under it, with
/// the two cores also running other builds (load average 10 to 13), 160 to 370 ms: the
/// tail is then the scheduler's, not the proxy's (the proxy used about 1.2 s of CPU in the
/// 3.5 s). 500 ms holds there; a regression that makes the proxy stall its normal client
/// behind hostile connections (a blocking read, a lock held, a buffer growing without
/// bound) goes past it.
const P99_BOUND: Duration = Duration::from_millis(500);

/// The normal client makes at least this many requests (about 400 without the attack, 40
/// to 130 on the loaded one above).
const MIN_NORMAL: usize = 30;

/// The proxy's peak RSS bound (VmHWM, debug build). Measured at 17 MiB before the attack
/// and 28 to 33 MiB after it.
const RSS_BOUND_KIB: u64 = 64 * 1024;

/// The largest body the proxy lets through (`[limits] max_body_size`).
const MAX_BODY: u64 = 64 * 1024;

/// What reached the backend legitimately: the normal client's requests, and the hostile
/// requests whose head was well-formed and allowed (a flood on the open route, the outer
/// request of a smuggling attempt, the start of a body that is then cut off).
const LEGITIMATE: [&str; 6] = [
    "/open/normal/",
    "/keyed/normal/",
    "/flood/",
    "/open/outer",
    "/open/big",
    "/open/m",
];

fn config_text(dir: &TempDir, backend: &str) -> std::path::PathBuf {
    let keys = dir.file("keys.txt");
    std::fs::write(&keys, key_line("normal", b"normal-secret", &[]) + "\n").expect("key file");
    let text = format!(
        "workers = 2\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\nread_timeout = \"1s\"\n\
         [rate_limit]\nrequests = 0\n\
         [limits]\nmax_body_size = \"64KiB\"\n\
         [access]\napi_keys_file = {keys:?}\n\
         [pools.p]\nbackends = [\"{backend}\"]\n\
         [[routes]]\nmatch = {{ path_prefix = \"/keyed\" }}\npool = \"p\"\naccess = {{ api_key = true }}\n\
         [[routes]]\nmatch = {{ path_prefix = \"/flood\" }}\npool = \"p\"\nrate_limit = {{ requests = 100, window = \"1s\" }}\n\
         client_rate_limit = {{ requests = 3, window = \"1s\", key = \"header:x-api-key\", max_clients = 1000 }}\n\
         [[routes]]\nmatch = {{ path_prefix = \"/open\" }}\npool = \"p\"\n"
    );
    let path = dir.file("switchyard.toml");
    std::fs::write(&path, text).expect("config file");
    path
}

/// What the normal client saw.
#[derive(Default)]
struct Normal {
    latencies: Vec<Duration>,
    errors: Vec<String>,
    open: u64,
    keyed: u64,
}

/// Steady requests on a keep-alive connection, alternating the open and the keyed route.
async fn normal_client(addr: std::net::SocketAddr, deadline: Instant) -> Normal {
    let mut seen = Normal::default();
    let mut client = Client::connect(addr).await;
    let mut i = 0u64;
    while Instant::now() < deadline {
        let keyed = i % 2 == 1;
        let req = if keyed {
            http::Request::get(format!("/keyed/normal/{i}")).header("x-api-key", "normal-secret")
        } else {
            http::Request::get(format!("/open/normal/{i}"))
        };
        let req = req.body(Bytes::new()).expect("request");
        let start = Instant::now();
        match client.send(req).await {
            Ok(resp) if resp.status == 200 => {
                seen.latencies.push(start.elapsed());
                if keyed {
                    seen.keyed += 1;
                } else {
                    seen.open += 1;
                }
            }
            Ok(resp) => seen
                .errors
                .push(format!("request {i}: status {}", resp.status)),
            Err(e) => {
                seen.errors.push(format!("request {i}: {e}"));
                client = Client::connect(addr).await;
            }
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    seen
}

/// `VmHWM` (peak RSS) and `VmRSS` of process `pid`, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// CPU time (user + system) process `pid` has used so far (`self` for this one).
fn cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // USER_HZ is 100 on Linux.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted
        .get((sorted.len() * p / 100).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_hostile_connections_leave_the_normal_client_unharmed() {
    let recorder = Recorder::start();
    let dir = TempDir::new("attack-mix", "config");
    let config = config_text(&dir, &recorder.url);
    let backend_url = recorder.url.clone();
    let (proc, addr) = start_proxy(
        |addr| {
            vec![
                "--config".to_owned(),
                config.display().to_string(),
                "--listen".to_owned(),
                addr.to_string(),
            ]
        },
        &[backend_url],
    )
    .await;
    let (hwm_before, _) = memory_kib(proc.pid);
    let proxy_cpu_before = cpu_time(&proc.pid.to_string());
    let test_cpu_before = cpu_time("self");

    let deadline = Instant::now() + ATTACK;
    let tally = Arc::new(Tally::default());
    let mut hostile = Vec::new();
    for (kind, count) in KINDS {
        for n in 0..count {
            let tally = tally.clone();
            hostile.push(tokio::spawn(async move {
                attacks::run(kind, n as u32, addr, deadline, &tally).await;
            }));
        }
    }
    // The normal client runs on a thread and runtime of its own, so that the 200 hostile
    // clients of this process do not delay its tasks: its latency is the proxy's.
    let normal = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("normal client runtime")
            .block_on(normal_client(addr, deadline))
    });
    let normal = tokio::task::spawn_blocking(move || normal.join())
        .await
        .expect("join")
        .expect("normal client panicked");
    let joined = tokio::time::timeout(Duration::from_secs(5), async {
        for task in hostile {
            task.await.expect("hostile client panicked");
        }
    })
    .await;
    assert!(
        joined.is_ok(),
        "hostile clients still running 5 s after the deadline"
    );
    let (hwm, rss) = memory_kib(proc.pid);
    // The distinct-key flood's keys: tracked within the per-client limiter's cap.
    let metrics = support::get(&format!("http://{addr}/metrics")).await.json();
    let keyed = &metrics["client_rate_limit"];
    let (tracked, capacity, evicted) = (
        keyed["keys_tracked"].as_u64().expect("keys_tracked"),
        keyed["keys_capacity"].as_u64().expect("keys_capacity"),
        keyed["keys_evicted"].as_u64().expect("keys_evicted"),
    );
    assert!(capacity <= 1024 && tracked <= capacity, "{keyed}");
    let proxy_cpu = cpu_time(&proc.pid.to_string()) - proxy_cpu_before;
    let test_cpu = cpu_time("self") - test_cpu_before;

    let mut sorted = normal.latencies.clone();
    sorted.sort();
    let (p50, p99) = (percentile(&sorted, 50), percentile(&sorted, 99));
    let seen = recorder.seen();
    let mut figures = Vec::new();
    for (kind, _) in KINDS {
        figures.push(format!(
            "{kind:?} {} conns {:?}",
            tally.connections(kind),
            tally.outcomes(kind)
        ));
    }
    eprintln!(
        "attack mix: normal client {} ok ({} open, {} keyed), {} errors, p50 {p50:?}, p99 {p99:?}; \
         hostile: {}; backend saw {} requests; proxy peak RSS {} KiB (before {} KiB, now {} KiB); \
         per-client keys tracked {tracked} of {capacity} ({evicted} evicted); \
         CPU: proxy {proxy_cpu:?}, test process {test_cpu:?}",
        sorted.len(),
        normal.open,
        normal.keyed,
        normal.errors.len(),
        figures.join("; "),
        seen.len(),
        hwm,
        hwm_before,
        rss,
    );

    assert!(
        normal.errors.is_empty(),
        "normal client errors: {:?}",
        normal.errors
    );
    assert!(
        sorted.len() >= MIN_NORMAL,
        "the normal client made only {} requests",
        sorted.len()
    );
    assert!(
        p99 < P99_BOUND,
        "normal client p99 {p99:?} over {P99_BOUND:?}"
    );
    assert!(
        hwm < RSS_BOUND_KIB,
        "proxy peak RSS {hwm} KiB over {RSS_BOUND_KIB} KiB"
    );

    for kind in [
        Kind::Slowloris,
        Kind::Malformed,
        Kind::Smuggling,
        Kind::Oversize,
    ] {
        assert!(tally.connections(kind) > 0, "{kind:?} made no connection");
    }
    let only = |kind: Kind, allowed: &[&str]| {
        let outcomes = tally.outcomes(kind);
        assert!(
            outcomes.keys().all(|o| allowed.contains(&o.as_str())),
            "{kind:?} got {outcomes:?}, expected only {allowed:?}"
        );
    };
    only(Kind::Slowloris, &["408", "closed"]);
    only(Kind::Malformed, &["400", "closed"]);
    only(Kind::Smuggling, &["200", "400", "closed"]);
    only(Kind::Oversize, &["413", "closed"]);
    only(Kind::KeyGuessing, &["401"]);
    only(Kind::DistinctKeys, &["200", "429"]);

    let open = seen
        .iter()
        .filter(|s| s.target.starts_with("/open/normal/"))
        .count();
    let keyed: Vec<_> = seen
        .iter()
        .filter(|s| s.target.starts_with("/keyed/"))
        .collect();
    assert_eq!(open as u64, normal.open, "open requests at the backend");
    assert_eq!(
        keyed.len() as u64,
        normal.keyed,
        "keyed requests at the backend"
    );
    assert!(keyed
        .iter()
        .all(|s| !s.credential && s.target.starts_with("/keyed/normal/")));
    for s in &seen {
        assert!(
            !s.target.contains("smuggled"),
            "smuggled request reached the backend: {s:?}"
        );
        assert!(
            LEGITIMATE.iter().any(|p| s.target.starts_with(p)),
            "unexpected request at the backend: {s:?}"
        );
        assert!(
            s.body_bytes <= MAX_BODY,
            "body over the limit at the backend: {s:?}"
        );
        assert!(
            !(s.target.starts_with("/open/big") && s.body_complete),
            "an oversize body reached the backend whole: {s:?}"
        );
    }
    drop(proc);
}
