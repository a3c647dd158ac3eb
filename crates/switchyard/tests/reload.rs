//! Configuration reloads: under continuous load (in process and by file change), what a reload
//! keeps (open circuits and their counters, pooled upstream connections, rate limit counts,
//! client keep-alive connections), listeners added and removed by a reload, `supervise`
//! driven in-process by controls, and the real binary reloading on SIGHUP.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use support::backends::port;
use support::metrics::pool_backend_entry;
use support::{backend, Client, TempDir, TestProxy};
use switchyard::cli::Cli;
use switchyard::config::{validate, version_of};
use switchyard::{reload, Config, Control};
use test_server::TestServer;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");
/// No switchyard process may run longer than this.
const CHILD_LIMIT: Duration = Duration::from_secs(15);
/// Upper bound for waits on something that normally takes milliseconds.
const WAIT: Duration = Duration::from_secs(5);

// === configuration files ===

/// Replaces the file at once: written next to it, then renamed over it.
fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).expect("write temp config");
    std::fs::rename(&tmp, path).expect("rename config into place");
}

/// Rewrites the file in place in two writes a few milliseconds apart, as an editor saving
/// slowly would. The cut is inside the first backend URL, so the half-written file is never
/// a valid configuration.
async fn write_in_two_parts(path: &Path, text: &str) {
    let cut = text.find("http://").expect("a backend URL") + "http://12".len();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .expect("open config");
    file.write_all(&text.as_bytes()[..cut])
        .expect("write first part");
    // Deliberate gap between the two writes (not a wait for anything): the watcher may read
    // the half-written file meanwhile and must not act on it.
    tokio::time::sleep(Duration::from_millis(5)).await;
    file.write_all(&text.as_bytes()[cut..])
        .expect("write second part");
}

fn load_config(path: &Path, text: &str) -> Config {
    validate::from_text(path, text).unwrap_or_else(|e| panic!("invalid test config:\n{e}"))
}

fn cli_for(path: &Path) -> Cli {
    let path = path.to_str().expect("UTF-8 temp path");
    Cli::try_parse_args(["switchyard", "--config", path].map(String::from)).expect("cli")
}

/// One pool of the file.
#[derive(Clone)]
struct PoolSpec {
    name: String,
    urls: Vec<String>,
    /// `(failures, open_duration)` of its circuit breaker.
    breaker: Option<(u32, &'static str)>,
}

/// A switchyard TOML file, built up and rendered.
#[derive(Clone)]
struct Toml {
    /// A comment at the top: makes every file (and so its version) distinct.
    tag: String,
    listeners: Vec<String>,
    rate_limit: (u32, &'static str),
    pools: Vec<PoolSpec>,
    /// `(name, pool, path_prefix)`.
    routes: Vec<(String, String, Option<String>)>,
}

impl Toml {
    /// One listener on `127.0.0.1:0`, two workers, no rate limit, no pools.
    fn new(tag: impl Into<String>) -> Self {
        Toml {
            tag: tag.into(),
            listeners: vec!["127.0.0.1:0".to_owned()],
            rate_limit: (0, "1s"),
            pools: Vec::new(),
            routes: Vec::new(),
        }
    }

    fn listeners(mut self, addrs: &[&str]) -> Self {
        self.listeners = addrs.iter().map(|a| (*a).to_owned()).collect();
        self
    }

    fn rate_limit(mut self, requests: u32, window: &'static str) -> Self {
        self.rate_limit = (requests, window);
        self
    }

    fn pool(mut self, name: &str, backends: &[&TestServer]) -> Self {
        let urls = backends.iter().map(|b| b.url()).collect();
        self.pools.push(PoolSpec {
            name: name.to_owned(),
            urls,
            breaker: None,
        });
        self
    }

    fn pool_urls(mut self, name: &str, urls: Vec<String>, breaker: (u32, &'static str)) -> Self {
        self.pools.push(PoolSpec {
            name: name.to_owned(),
            urls,
            breaker: Some(breaker),
        });
        self
    }

    /// A route to `pool`: every request without `prefix`, else the requests under it.
    fn route(mut self, name: &str, pool: &str, prefix: Option<&str>) -> Self {
        self.routes
            .push((name.to_owned(), pool.to_owned(), prefix.map(str::to_owned)));
        self
    }

    fn render(&self) -> String {
        let mut s = format!("# {}\nworkers = 2\nshutdown_timeout = \"5s\"\n", self.tag);
        for l in &self.listeners {
            s += &format!("\n[[listeners]]\naddress = \"{l}\"\n");
        }
        let (requests, window) = self.rate_limit;
        s += &format!("\n[rate_limit]\nrequests = {requests}\nwindow = \"{window}\"\n");
        for p in &self.pools {
            let urls: Vec<String> = p.urls.iter().map(|u| format!("\"{u}\"")).collect();
            s += &format!("\n[pools.{}]\nbackends = [{}]\n", p.name, urls.join(", "));
            if let Some((failures, open)) = p.breaker {
                s += &format!(
                    "\n[pools.{}.circuit_breaker]\nfailures = {failures}\nopen_duration = \"{open}\"\n",
                    p.name
                );
            }
        }
        for (name, pool, prefix) in &self.routes {
            s += &format!("\n[[routes]]\nname = \"{name}\"\npool = \"{pool}\"\n");
            if let Some(prefix) = prefix {
                s += &format!("match = {{ path_prefix = \"{prefix}\" }}\n");
            }
        }
        s
    }
}

// === responses and admin documents ===

/// `GET path` on a fresh connection; `None` when the proxy cannot be reached. Returns the
/// status and the answering backend's port.
async fn try_get(addr: SocketAddr, path: &str) -> Option<(u16, Option<u16>)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: switchyard\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let text = support::read_until_close(&mut stream, Duration::from_secs(2)).await;
    let status = text
        .strip_prefix("HTTP/1.1 ")?
        .get(..3)?
        .parse::<u16>()
        .ok()?;
    let served_by = text.lines().take_while(|l| !l.is_empty()).find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("x-served-by")
            .then(|| value.trim().parse::<u16>().ok())?
    });
    Some((status, served_by))
}

// === load and the reload timeline ===

/// One request sent by a load client.
#[derive(Debug)]
struct Sample {
    start: Instant,
    end: Instant,
    /// Sent to `/extra` (else `/`).
    extra: bool,
    /// Status and answering backend, or the connection error.
    outcome: Result<(u16, Option<u16>), String>,
}

/// Clients sending requests back to back, each on its own keep-alive connection.
struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Sample>>>,
}

impl Load {
    async fn start(addr: SocketAddr, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for c in 0..clients {
            let client = Client::connect(addr).await;
            tasks.push(tokio::spawn(client_loop(client, addr, c, stop.clone())));
        }
        Load { stop, tasks }
    }

    async fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        let mut samples = Vec::new();
        for task in self.tasks {
            samples.extend(task.await.expect("load client panicked"));
        }
        samples
    }
}

async fn client_loop(
    mut client: Client,
    addr: SocketAddr,
    index: usize,
    stop: Arc<AtomicBool>,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut i = index;
    while !stop.load(Ordering::Relaxed) {
        let extra = i % 2 == 1;
        i += 1;
        let path = if extra { "/extra" } else { "/" };
        let req = http::Request::get(path)
            .body(Bytes::new())
            .expect("request");
        let start = Instant::now();
        let result = client.send(req).await;
        let end = Instant::now();
        // The proxy closes a connection after its `max_requests_per_connection`th answer
        // (`Connection: close`): a client opens a new one, as release builds get there.
        let closing = result.as_ref().is_ok_and(|resp| {
            resp.headers
                .get(http::header::CONNECTION)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
        });
        let outcome = match result {
            Ok(resp) => Ok((resp.status, resp.served_by())),
            Err(e) => Err(e.to_string()),
        };
        let failed = outcome.is_err();
        samples.push(Sample {
            start,
            end,
            extra,
            outcome,
        });
        if failed || closing {
            // A failure is counted; either way, carry on with a new connection.
            client = Client::connect(addr).await;
        }
    }
    samples
}

/// One configuration put in force: it was swapped in at some moment between `before` and
/// `after`.
#[derive(Debug, Clone)]
struct Epoch {
    before: Instant,
    after: Instant,
    /// Ports of pool `web`, which takes every request but `/extra`'s when there is a route
    /// for it.
    web: Vec<u16>,
    /// Port of pool `other`, when route `/extra` goes to it.
    extra: Option<u16>,
}

impl Epoch {
    fn expects(&self, extra: bool) -> Vec<u16> {
        match self.extra {
            Some(port) if extra => vec![port],
            _ => self.web.clone(),
        }
    }
}

/// Figures of a load run.
#[derive(Debug, Default)]
struct Verdict {
    sent: usize,
    failures: Vec<String>,
    wrong_backend: Vec<String>,
    /// Requests that overlapped a swap (more than one configuration acceptable).
    overlapping: usize,
    by_port: BTreeMap<u16, usize>,
}

/// Checks every sample: 200, from a backend of the configuration in force when it started or
/// one swapped in while it ran.
fn judge(samples: &[Sample], epochs: &[Epoch]) -> Verdict {
    let mut v = Verdict {
        sent: samples.len(),
        ..Verdict::default()
    };
    for (n, s) in samples.iter().enumerate() {
        let (status, port) = match &s.outcome {
            Err(e) => {
                v.failures
                    .push(format!("request {n}: connection error: {e}"));
                continue;
            }
            Ok(ok) => *ok,
        };
        if status != 200 {
            v.failures.push(format!("request {n}: status {status}"));
            continue;
        }
        let Some(port) = port else {
            v.failures.push(format!("request {n}: no x-served-by"));
            continue;
        };
        *v.by_port.entry(port).or_default() += 1;
        // Epoch i may be the one loaded if it was swapped in before the request ended and the
        // next one was not yet certainly in force when the request started.
        let candidates: Vec<&Epoch> = epochs
            .iter()
            .enumerate()
            .filter(|(i, e)| {
                e.before <= s.end && epochs.get(i + 1).is_none_or(|next| next.after >= s.start)
            })
            .map(|(_, e)| e)
            .collect();
        if candidates.len() > 1 {
            v.overlapping += 1;
        }
        if !candidates
            .iter()
            .any(|e| e.expects(s.extra).contains(&port))
        {
            v.wrong_backend.push(format!(
                "request {n} ({}) served by {port}; acceptable: {:?}",
                if s.extra { "/extra" } else { "/" },
                candidates
                    .iter()
                    .map(|e| e.expects(s.extra))
                    .collect::<Vec<_>>()
            ));
        }
    }
    v
}

fn assert_verdict(v: &Verdict, what: &str) {
    assert!(
        v.failures.is_empty(),
        "{what}: {} of {} requests failed, first: {:#?}",
        v.failures.len(),
        v.sent,
        &v.failures[..v.failures.len().min(10)]
    );
    assert!(
        v.wrong_backend.is_empty(),
        "{what}: {} of {} requests went to a backend of no configuration in force, first: {:#?}",
        v.wrong_backend.len(),
        v.sent,
        &v.wrong_backend[..v.wrong_backend.len().min(10)]
    );
}

/// The four configurations the load tests cycle through: pool `web` is A+B or C+D, and
/// `/extra` has a route to pool `other` (E) or not.
struct Backends {
    a: TestServer,
    b: TestServer,
    c: TestServer,
    d: TestServer,
    e: TestServer,
}

impl Backends {
    async fn start() -> Self {
        Backends {
            a: backend("A").await,
            b: backend("B").await,
            c: backend("C").await,
            d: backend("D").await,
            e: backend("E").await,
        }
    }

    /// Variant `k`: the file, and what it routes where.
    fn variant(&self, tag: &str, k: usize) -> (String, Vec<u16>, Option<u16>) {
        let web = if k % 2 == 0 {
            [&self.a, &self.b]
        } else {
            [&self.c, &self.d]
        };
        let with_extra = (k / 2) % 2 == 0;
        let mut toml = Toml::new(format!("{tag} {k}"))
            .pool("web", &web)
            .route("all", "web", None);
        if with_extra {
            toml = toml
                .pool("other", &[&self.e])
                .route("extra", "other", Some("/extra"));
        }
        (
            toml.render(),
            web.iter().map(|s| port(s)).collect(),
            with_extra.then(|| port(&self.e)),
        )
    }

    fn all(&self) -> [&TestServer; 5] {
        [&self.a, &self.b, &self.c, &self.d, &self.e]
    }
}

// === reloads under load ===

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reloads_under_load_lose_no_request_and_route_by_the_config_in_force() {
    let backends = Backends::start().await;
    // A port in use: a configuration listening on it passes validation but cannot be put in
    // force.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_addr = taken.local_addr().expect("addr").to_string();
    let dir = TempDir::new("reload-test", "under-load");
    let path = dir.file("switchyard.toml");
    let cli = cli_for(&path);

    let (text0, web0, extra0) = backends.variant("valid", 0);
    write_atomic(&path, &text0);
    let proxy = TestProxy::start(load_config(&path, &text0));
    let t0 = Instant::now();
    let mut epochs = vec![Epoch {
        before: t0,
        after: t0,
        web: web0,
        extra: extra0,
    }];
    let mut last_valid = text0;
    let (mut valid, mut invalid, mut last_ok) = (0u64, 0u64, true);
    let mut slowest = Duration::ZERO;

    let load = Load::start(proxy.addr, 4).await;
    let began = Instant::now();
    let mut k = 1;
    while began.elapsed() < Duration::from_secs(3) || valid < 20 {
        if k % 4 == 0 {
            let (good, _, _) = backends.variant("base of invalid", k);
            let bad = match (k / 4) % 3 {
                // Not TOML.
                0 => format!("{good}\n[pools.broken\n"),
                // A route to a pool that does not exist.
                1 => format!("{good}\n[[routes]]\nname = \"bad\"\npool = \"nowhere\"\nmatch = {{ path_prefix = \"/bad\" }}\n"),
                // Valid, but its second listener cannot be opened.
                _ => good.replace(
                    "[rate_limit]",
                    &format!("[[listeners]]\naddress = \"{taken_addr}\"\n\n[rate_limit]"),
                ),
            };
            write_atomic(&path, &bad);
            let in_force = proxy.server.shared().state().version().map(str::to_owned);
            let started = Instant::now();
            let result = reload::reload(&proxy.server, &path, &cli, "test");
            slowest = slowest.max(started.elapsed());
            assert!(result.is_err(), "invalid config {k} was accepted:\n{bad}");
            assert_eq!(
                proxy.server.shared().state().version().map(str::to_owned),
                in_force,
                "a rejected reload changed the configuration in force"
            );
            invalid += 1;
            last_ok = false;
        } else {
            let (text, web, extra) = backends.variant("valid", k);
            write_atomic(&path, &text);
            let before = Instant::now();
            let result = reload::reload(&proxy.server, &path, &cli, "test");
            let after = Instant::now();
            slowest = slowest.max(after - before);
            let version = result.unwrap_or_else(|e| panic!("valid config {k} rejected: {e}"));
            assert_eq!(version, version_of(&text));
            epochs.push(Epoch {
                before,
                after,
                web,
                extra,
            });
            last_valid = text;
            valid += 1;
            last_ok = true;
        }
        k += 1;
        // Pacing: one reload every 60 ms, spread over the load (nothing is waited for); a
        // slow machine that falls behind catches up without sleeping.
        tokio::time::sleep_until(began + Duration::from_millis(60) * k as u32).await;
    }
    let samples = load.finish().await;
    let elapsed = began.elapsed();

    let verdict = judge(&samples, &epochs);
    println!(
        "under load: {} requests in {elapsed:?}, {} failed, {} to a wrong backend, {} overlapping a swap; {valid} reloads, {invalid} rejected, slowest reload call {slowest:?}; by backend port: {:?}",
        verdict.sent,
        verdict.failures.len(),
        verdict.wrong_backend.len(),
        verdict.overlapping,
        verdict.by_port
    );
    assert_verdict(&verdict, "reloads under load");
    assert!(verdict.sent >= 400, "only {} requests sent", verdict.sent);
    for b in backends.all() {
        assert!(b.requests() > 0, "backend {} never served", b.url());
    }

    let m = proxy.metrics().await;
    let config = &m["config"];
    assert_eq!(config["reloads"], valid, "{config:#}");
    assert_eq!(config["reload_failures"], invalid, "{config:#}");
    assert_eq!(
        config["last_reload_result"],
        if last_ok { "ok" } else { "error" },
        "{config:#}"
    );
    assert!(config["last_reload_time"].is_u64(), "{config:#}");
    assert_eq!(config["version"], version_of(&last_valid), "{config:#}");
    let h = proxy.health().await;
    assert_eq!(h["config_version"], version_of(&last_valid), "{h:#}");
    drop(taken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn file_changes_are_reloaded_under_load_and_an_invalid_file_is_rejected() {
    let backends = Backends::start().await;
    let dir = TempDir::new("reload-test", "watch");
    let path = dir.file("switchyard.toml");
    let cli = cli_for(&path);

    let (text0, web0, extra0) = backends.variant("watched", 0);
    write_atomic(&path, &text0);
    let proxy = TestProxy::start(load_config(&path, &text0));
    let t0 = Instant::now();
    let mut epochs = vec![Epoch {
        before: t0,
        after: t0,
        web: web0,
        extra: extra0,
    }];
    let load = Load::start(proxy.addr, 4).await;
    let began = Instant::now();
    let server = &proxy.server;
    let url = proxy.url("/");

    let driver = async {
        let (mut valid, mut rejected, mut partial) = (0u64, 0u64, 0u64);
        for k in 1..=12 {
            let (text, web, extra) = backends.variant("watched", k);
            let version = version_of(&text);
            if k % 3 == 0 {
                write_in_two_parts(&path, &text).await;
                partial += 1;
            } else {
                write_atomic(&path, &text);
            }
            // The new file cannot be in force before it is whole.
            let before = Instant::now();
            let switched = support::eventually(WAIT, || {
                let in_force = server.shared().state().version() == Some(version.as_str());
                let (url, web) = (url.clone(), web.clone());
                async move {
                    if !in_force {
                        return false;
                    }
                    let resp = support::get(&url).await;
                    resp.status == 200 && resp.served_by().is_some_and(|p| web.contains(&p))
                }
            })
            .await;
            assert!(switched, "file change {k} was not put in force");
            epochs.push(Epoch {
                before,
                after: Instant::now(),
                web: web.clone(),
                extra,
            });
            valid += 1;

            if k == 6 {
                let failed_before = server.shared().reload_status().failed;
                let bad = format!(
                    "{text}\n[pools.broken]\nbackends = [\"http://127.0.0.1:1\"]\nretires = 2\n"
                );
                write_atomic(&path, &bad);
                assert!(
                    support::eventually(WAIT, || {
                        let failed = server.shared().reload_status().failed;
                        async move { failed > failed_before }
                    })
                    .await,
                    "the invalid file was never rejected"
                );
                rejected += 1;
                let m = proxy.metrics().await;
                let config = &m["config"];
                assert_eq!(config["last_reload_result"], "error", "{config:#}");
                let error = config["last_reload_error"].as_str().unwrap_or_default();
                assert!(error.contains("retires"), "{config:#}");
                assert_eq!(
                    server.shared().state().version(),
                    Some(version.as_str()),
                    "the invalid file changed the configuration in force"
                );
                for _ in 0..10 {
                    let resp = support::get(&url).await;
                    assert_eq!(resp.status, 200);
                    let p = resp.served_by().expect("x-served-by");
                    assert!(web.contains(&p), "after the invalid file, served by {p}");
                }
            }
        }
        (valid, rejected, partial)
    };
    let (valid, rejected, partial) = tokio::select! {
        () = reload::watch(server, &path, &cli, Duration::from_millis(50)) => {
            unreachable!("watch returned")
        }
        figures = driver => figures,
    };
    let samples = load.finish().await;
    let elapsed = began.elapsed();

    let verdict = judge(&samples, &epochs);
    println!(
        "file watch: {} requests in {elapsed:?}, {} failed, {} to a wrong backend, {} overlapping a swap; {valid} file changes reloaded ({partial} written in two parts), {rejected} invalid file rejected; by backend port: {:?}",
        verdict.sent,
        verdict.failures.len(),
        verdict.wrong_backend.len(),
        verdict.overlapping,
        verdict.by_port
    );
    assert_verdict(&verdict, "file watch under load");
    let m = proxy.metrics().await;
    let config = &m["config"];
    assert_eq!(config["reloads"], valid, "{config:#}");
    assert_eq!(config["reload_failures"], rejected, "{config:#}");
    assert_eq!(config["last_reload_result"], "ok", "{config:#}");
}

// === what a reload keeps ===

#[tokio::test]
async fn open_circuit_and_its_counters_survive_a_reload_and_a_re_added_backend_starts_fresh() {
    let live = backend("live").await;
    let other = backend("other").await;
    let (_dead_socket, dead) = support::dead_port();
    let dead = dead.to_string();
    let dir = TempDir::new("reload-test", "circuit");
    let path = dir.file("switchyard.toml");
    let cli = cli_for(&path);
    let web = |tag: &str, urls: Vec<String>| {
        Toml::new(tag)
            .pool_urls("web", urls, (2, "60s"))
            .route("all", "web", None)
    };
    let both = vec![dead.clone(), live.url()];

    let text0 = web("initial", both.clone()).render();
    write_atomic(&path, &text0);
    let proxy = TestProxy::start(load_config(&path, &text0));
    let url = proxy.url("/");
    let opened = support::eventually(WAIT, || {
        let url = url.clone();
        let proxy = &proxy;
        let dead = dead.clone();
        async move {
            let resp = support::get(&url).await;
            assert_eq!(resp.status, 200, "retried on the live backend");
            let m = proxy.metrics().await;
            pool_backend_entry(&m, "web", &dead).expect("dead backend listed")["circuit"] == "open"
        }
    })
    .await;
    assert!(opened, "the dead backend's circuit never opened");
    let m = proxy.metrics().await;
    let before = pool_backend_entry(&m, "web", &dead).expect("dead").clone();
    assert_eq!(before["failures"], 2, "{before:#}");

    // A reload that changes something else: another pool and a route to it.
    write_atomic(
        &path,
        &web("another pool", both.clone())
            .pool("other", &[&other])
            .route("other", "other", Some("/other"))
            .render(),
    );
    reload::reload(&proxy.server, &path, &cli, "test").expect("reload");
    let m = proxy.metrics().await;
    let after = pool_backend_entry(&m, "web", &dead).expect("dead");
    assert_eq!(after["circuit"], "open", "{after:#}");
    for field in ["failures", "consecutive_failures", "requests", "errors"] {
        assert_eq!(
            after[field], before[field],
            "{field}: {before:#} -> {after:#}"
        );
    }
    // Still open: traffic keeps away from it.
    for _ in 0..10 {
        let resp = support::get(&url).await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.served_by(), Some(port(&live)));
    }
    let resp = support::get(&proxy.url("/other/x")).await;
    assert_eq!(resp.served_by(), Some(port(&other)), "the new route works");
    let m = proxy.metrics().await;
    let still = pool_backend_entry(&m, "web", &dead).expect("dead");
    assert_eq!(still["circuit"], "open", "{still:#}");
    assert_eq!(still["requests"], before["requests"], "{still:#}");
    assert_eq!(
        proxy.health().await["backends"]
            .as_array()
            .expect("backends")
            .iter()
            .find(|b| b["url"] == dead.as_str())
            .expect("dead in /health")["circuit"],
        "open"
    );

    // Removed, then listed again: a new backend, circuit closed, counters at zero.
    write_atomic(&path, &web("removed", vec![live.url()]).render());
    reload::reload(&proxy.server, &path, &cli, "test").expect("reload");
    let m = proxy.metrics().await;
    assert!(pool_backend_entry(&m, "web", &dead).is_none(), "{m:#}");
    write_atomic(&path, &web("re-added", both).render());
    reload::reload(&proxy.server, &path, &cli, "test").expect("reload");
    let m = proxy.metrics().await;
    let fresh = pool_backend_entry(&m, "web", &dead).expect("dead re-added");
    assert_eq!(fresh["circuit"], "closed", "{fresh:#}");
    for field in ["failures", "consecutive_failures", "requests", "errors"] {
        assert_eq!(fresh[field], 0, "{field}: {fresh:#}");
    }
}

#[tokio::test]
async fn a_backend_kept_by_a_reload_keeps_its_pooled_upstream_connections() {
    let a = backend("A").await;
    let b = backend("B").await;
    let dir = TempDir::new("reload-test", "pool");
    let path = dir.file("switchyard.toml");
    let cli = cli_for(&path);
    let text0 = Toml::new("initial")
        .pool("web", &[&a])
        .route("all", "web", None)
        .render();
    write_atomic(&path, &text0);
    let proxy = TestProxy::start(load_config(&path, &text0));
    let mut client = Client::connect(proxy.addr).await;
    for _ in 0..5 {
        let resp = client.get("/").await;
        assert_eq!(resp.served_by(), Some(port(&a)));
    }
    let connections = a.connections();
    assert_eq!(
        connections, 1,
        "one client connection, one upstream connection"
    );

    write_atomic(
        &path,
        &Toml::new("another pool")
            .pool("web", &[&a])
            .pool("other", &[&b])
            .route("all", "web", None)
            .route("other", "other", Some("/other"))
            .render(),
    );
    reload::reload(&proxy.server, &path, &cli, "test").expect("reload");
    for _ in 0..5 {
        let resp = client.get("/").await;
        assert_eq!(resp.served_by(), Some(port(&a)));
    }
    assert_eq!(a.requests(), 10);
    assert_eq!(
        a.connections(),
        connections,
        "the reload made the proxy open a new connection to a backend it kept"
    );
    let resp = client.get("/other").await;
    assert_eq!(resp.served_by(), Some(port(&b)));
}

#[tokio::test]
async fn rate_limit_counts_survive_an_unrelated_reload_and_reset_when_the_limit_changes() {
    let a = backend("A").await;
    let dir = TempDir::new("reload-test", "rate-limit");
    let path = dir.file("switchyard.toml");
    let cli = cli_for(&path);
    let limited = |tag: &str, requests: u32| {
        Toml::new(tag)
            .rate_limit(requests, "60s")
            .pool("web", &[&a])
            .route("all", "web", None)
    };
    let text0 = limited("initial", 5).render();
    write_atomic(&path, &text0);
    let proxy = TestProxy::start(load_config(&path, &text0));
    let mut client = Client::connect(proxy.addr).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(client.get("/").await.status);
    }
    assert_eq!(statuses, [200; 3]);

    write_atomic(
        &path,
        &limited("unrelated change", 5)
            .route("other", "web", Some("/other"))
            .render(),
    );
    reload::reload(&proxy.server, &path, &cli, "test").expect("reload");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(client.get("/").await.status);
    }
    assert_eq!(
        statuses,
        [200, 200, 429],
        "3 of 5 used before the reload: 2 more, then 429"
    );

    write_atomic(&path, &limited("new limit", 6).render());
    reload::reload(&proxy.server, &path, &cli, "test").expect("reload");
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(client.get("/").await.status);
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 200, 200, 429],
        "a new limit starts counting afresh"
    );
    assert_eq!(a.requests(), 3 + 2 + 6);
}

#[tokio::test]
async fn keep_alive_client_connections_survive_reloads_and_take_new_routes() {
    let a = backend("A").await;
    let b = backend("B").await;
    let dir = TempDir::new("reload-test", "keep-alive");
    let path = dir.file("switchyard.toml");
    let cli = cli_for(&path);
    let base = |tag: &str| Toml::new(tag).pool("web", &[&a]).route("all", "web", None);
    let text0 = base("initial").render();
    write_atomic(&path, &text0);
    let proxy = TestProxy::start(load_config(&path, &text0));

    let mut client = Client::connect(proxy.addr).await;
    assert_eq!(client.get("/new").await.served_by(), Some(port(&a)));

    write_atomic(
        &path,
        &base("with /new")
            .pool("new", &[&b])
            .route("new", "new", Some("/new"))
            .render(),
    );
    reload::reload(&proxy.server, &path, &cli, "test").expect("reload");
    assert!(!client.is_closed(), "the reload closed a client connection");
    let resp = client.get("/new").await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.served_by(),
        Some(port(&b)),
        "the old connection takes the new route"
    );
    assert_eq!(client.get("/").await.served_by(), Some(port(&a)));

    write_atomic(&path, &base("without /new").render());
    reload::reload(&proxy.server, &path, &cli, "test").expect("reload");
    assert!(!client.is_closed(), "the reload closed a client connection");
    assert_eq!(
        client.get("/new").await.served_by(),
        Some(port(&a)),
        "the removed route is gone for the old connection too"
    );
    assert_eq!(b.requests(), 1);
}

// === listeners ===

/// The proxy (non-admin) listener addresses.
fn proxy_listeners(proxy: &TestProxy) -> Vec<SocketAddr> {
    proxy
        .server
        .listener_addrs()
        .into_iter()
        .filter(|(_, admin)| !admin)
        .map(|(addr, _)| addr)
        .collect()
}

/// Adds a listener at `second` ("IP:PORT", `None`: port 0) by reload, checks that it serves
/// and that the first listener and its idle connection are untouched, then removes it and
/// checks that it refuses connections while the first keeps serving.
async fn add_then_remove_a_listener(name: &str, second: Option<&str>) {
    let a = backend("A").await;
    let dir = TempDir::new("reload-test", name);
    let path = dir.file("switchyard.toml");
    let cli = cli_for(&path);
    let base = |tag: &str| Toml::new(tag).pool("web", &[&a]).route("all", "web", None);
    let text0 = base("one listener").render();
    write_atomic(&path, &text0);
    let proxy = TestProxy::start(load_config(&path, &text0));
    let first = proxy.addr;
    let mut idle = Client::connect(first).await;
    assert_eq!(idle.get("/").await.status, 200);

    let second_cfg = second.unwrap_or("127.0.0.1:0");
    write_atomic(
        &path,
        &base("two listeners")
            .listeners(&["127.0.0.1:0", second_cfg])
            .render(),
    );
    reload::reload(&proxy.server, &path, &cli, "test").expect("reload adding a listener");
    let addrs = proxy_listeners(&proxy);
    assert_eq!(addrs.len(), 2, "listeners after the reload: {addrs:?}");
    assert_eq!(
        addrs[0], first,
        "the first listener was replaced: {addrs:?}"
    );
    let second_addr = addrs[1];
    assert_ne!(
        second_addr, first,
        "the new listener has no port of its own: {addrs:?}"
    );
    if let Some(second) = second {
        assert_eq!(second_addr.to_string(), second);
    }
    let resp = try_get(second_addr, "/").await;
    assert_eq!(resp, Some((200, Some(port(&a)))), "the new listener serves");
    assert!(
        !idle.is_closed(),
        "the idle connection on the first listener was closed"
    );
    assert_eq!(
        idle.get("/").await.status,
        200,
        "idle connection after the reload"
    );
    assert_eq!(try_get(first, "/").await, Some((200, Some(port(&a)))));

    write_atomic(&path, &base("one listener again").render());
    reload::reload(&proxy.server, &path, &cli, "test").expect("reload removing a listener");
    assert_eq!(proxy_listeners(&proxy), vec![first]);
    assert_eventually!(
        WAIT,
        || async move { tokio::net::TcpStream::connect(second_addr).await.is_err() },
        "the removed listener {second_addr} still accepts connections"
    );
    assert_eq!(
        idle.get("/").await.status,
        200,
        "idle connection after removal"
    );
    assert_eq!(try_get(first, "/").await, Some((200, Some(port(&a)))));
}

#[tokio::test]
async fn reload_adds_and_removes_a_listener_on_a_given_port() {
    // A port free a moment ago: bound and released at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    add_then_remove_a_listener("listener-port", Some(&format!("127.0.0.1:{port}"))).await;
}

#[tokio::test]
async fn reload_adds_a_second_port_zero_listener_on_a_port_of_its_own() {
    add_then_remove_a_listener("listener-zero", None).await;
}

#[tokio::test]
async fn reload_keeps_two_port_zero_listeners_started_with() {
    let a = backend("A").await;
    let dir = TempDir::new("reload-test", "two-zero");
    let path = dir.file("switchyard.toml");
    let cli = cli_for(&path);
    let two = |tag: &str| {
        Toml::new(tag)
            .listeners(&["127.0.0.1:0", "127.0.0.1:0"])
            .pool("web", &[&a])
            .route("all", "web", None)
            .render()
    };
    let text0 = two("initial");
    write_atomic(&path, &text0);
    let proxy = TestProxy::start(load_config(&path, &text0));
    let before = proxy_listeners(&proxy);
    assert_eq!(before.len(), 2);
    assert_ne!(before[0], before[1], "started with two ports: {before:?}");
    assert_eq!(try_get(before[1], "/").await, Some((200, Some(port(&a)))));

    // The same listeners; only a comment differs.
    write_atomic(&path, &two("same listeners"));
    reload::reload(&proxy.server, &path, &cli, "test").expect("reload");
    assert_eq!(
        proxy_listeners(&proxy),
        before,
        "a reload that changes no listener changed the listeners"
    );
    assert_eq!(
        try_get(before[1], "/").await,
        Some((200, Some(port(&a)))),
        "the second listener stopped serving after a reload that did not change it"
    );
}

// === supervise ===

#[tokio::test]
async fn supervise_reloads_on_a_control_and_drains_on_shutdown() {
    let a = backend("A").await;
    let b = backend("B").await;
    let dir = TempDir::new("reload-test", "supervise");
    let path = dir.file("switchyard.toml");
    let cli = cli_for(&path);
    let text0 = Toml::new("to A")
        .pool("web", &[&a])
        .route("all", "web", None)
        .render();
    write_atomic(&path, &text0);
    let mut config = load_config(&path, &text0);
    // Only the controls reload: the file is not watched.
    if let Some(source) = config.source.as_mut() {
        source.watch_interval = None;
    }
    let proxy = TestProxy::start(config);
    let addr = proxy.addr;
    assert_eq!(try_get(addr, "/").await, Some((200, Some(port(&a)))));
    assert_eq!(proxy.health().await["config_version"], version_of(&text0));

    let (controls, receiver) = mpsc::channel(4);
    let supervisor = tokio::spawn(async move {
        let report = switchyard::supervise(proxy.server, &cli, receiver).await;
        (report, cli)
    });

    // A new file: pool `web` moves to B and a route to a new pool appears.
    let text1 = Toml::new("to B, with /new")
        .pool("web", &[&b])
        .pool("new", &[&a])
        .route("all", "web", None)
        .route("new", "new", Some("/new"))
        .render();
    write_atomic(&path, &text1);
    controls
        .send(Control::Reload { reason: "test" })
        .await
        .expect("supervise is running");
    let version = version_of(&text1);
    assert_eventually!(
        WAIT,
        || {
            let version = version.clone();
            async move {
                let resp = support::get(&format!("http://{addr}/health")).await;
                resp.status == 200 && resp.json()["config_version"] == version.as_str()
            }
        },
        "the reloaded file is not in force"
    );
    assert_eq!(try_get(addr, "/").await, Some((200, Some(port(&b)))));
    assert_eq!(try_get(addr, "/new/x").await, Some((200, Some(port(&a)))));
    let m = support::get(&format!("http://{addr}/metrics")).await.json();
    assert_eq!(m["config"]["reloads"], 1, "{:#}", m["config"]);

    // An invalid file: rejected, the configuration in force stays.
    write_atomic(
        &path,
        &text1.replace("[pools.web]\n", "[pools.web]\nretires = 2\n"),
    );
    controls
        .send(Control::Reload { reason: "test" })
        .await
        .expect("supervise is running");
    assert_eventually!(
        WAIT,
        || async move {
            let m = support::get(&format!("http://{addr}/metrics")).await.json();
            m["config"]["reload_failures"] == 1
        },
        "the invalid file was not rejected"
    );
    assert_eq!(try_get(addr, "/").await, Some((200, Some(port(&b)))));

    controls
        .send(Control::Shutdown { signal: "test" })
        .await
        .expect("supervise is running");
    let (report, _cli) = tokio::time::timeout(WAIT, supervisor)
        .await
        .expect("supervise did not return after Control::Shutdown")
        .expect("supervise panicked");
    assert!(report.drained, "{report:?}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener still accepts connections after the drain"
    );
}

// === the binary ===

/// A running switchyard process, killed when dropped before it exits and when it runs longer
/// than [`CHILD_LIMIT`].
struct Proc {
    pid: u32,
    exit: Option<oneshot::Receiver<ExitStatus>>,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    fn spawn(config: &Path) -> Self {
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(config)
            .env_remove("RUST_LOG")
            .env("SWITCHYARD_ALLOW_ROOT", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn switchyard");
        let pid = child.id();
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut s = sink
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                s.push_str(&line);
                s.push('\n');
            }
        });
        let (exit_tx, exit) = oneshot::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Ok(status) = child.wait() {
                let _ = done_tx.send(());
                let _ = exit_tx.send(status);
            }
        });
        // The watchdog.
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                done_rx.recv_timeout(CHILD_LIMIT)
            {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        });
        Proc {
            pid,
            exit: Some(exit),
            stderr,
        }
    }

    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn has_exited(&mut self) -> bool {
        match self.exit.as_mut().map(oneshot::Receiver::try_recv) {
            None | Some(Err(oneshot::error::TryRecvError::Closed)) => true,
            Some(Err(oneshot::error::TryRecvError::Empty)) => false,
            Some(Ok(_)) => {
                self.exit = None;
                true
            }
        }
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig} {} failed", self.pid);
    }

    async fn wait(mut self) -> ExitStatus {
        let rx = self.exit.take().expect("already exited");
        tokio::time::timeout(CHILD_LIMIT, rx)
            .await
            .expect("switchyard did not exit")
            .expect("switchyard's exit status was lost")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.has_exited() {
            let _ = Command::new("kill")
                .args(["-KILL", &self.pid.to_string()])
                .status();
        }
    }
}

#[tokio::test]
async fn binary_reloads_on_sighup_and_keeps_serving_through_an_invalid_file() {
    let a = backend("A").await;
    let b = backend("B").await;
    let dir = TempDir::new("reload-test", "binary");
    let path = dir.file("switchyard.toml");
    let on = |tag: &str, addr: SocketAddr, server: &TestServer| {
        Toml::new(tag)
            .listeners(&[&addr.to_string()])
            .pool("web", &[server])
            .route("all", "web", None)
            .render()
    };

    // Start on a port free a moment ago; another if someone took it meanwhile.
    let mut started = None;
    for _ in 0..3 {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr");
        write_atomic(&path, &on("to A", addr, &a));
        let mut proc = Proc::spawn(&path);
        let a_port = port(&a);
        let ready = support::eventually(WAIT, || {
            let exited = proc.has_exited();
            async move { exited || try_get(addr, "/").await == Some((200, Some(a_port))) }
        })
        .await;
        if !proc.has_exited() {
            assert!(
                ready,
                "switchyard never answered on {addr}:\n{}",
                proc.stderr()
            );
            started = Some((proc, addr));
            break;
        }
        let err = proc.stderr();
        assert!(
            err.contains("already in use"),
            "switchyard exited at start:\n{err}"
        );
    }
    let (proc, addr) = started.expect("three free ports in a row were taken");

    // Rewrite the file to point at B, then SIGHUP.
    let to_b = on("to B", addr, &b);
    write_atomic(&path, &to_b);
    proc.signal("-HUP");
    let b_port = port(&b);
    assert_eventually!(
        WAIT,
        || async move { try_get(addr, "/").await == Some((200, Some(b_port))) },
        "not served by the new backend after SIGHUP:\n{}",
        proc.stderr()
    );
    assert_eventually!(
        WAIT,
        || {
            let log = proc.stderr();
            async move {
                log.lines()
                    .any(|l| l.contains("configuration reloaded") && l.contains("SIGHUP"))
            }
        },
        "no reload on SIGHUP logged:\n{}",
        proc.stderr()
    );
    let version = try_get_json(addr, "/health").await["config_version"].clone();
    assert_eq!(version, version_of(&to_b));
    let a_served = a.requests();

    // An invalid file: rejected with its place in the file, B keeps serving.
    let invalid = to_b.replace("[pools.web]\n", "[pools.web]\nretires = 2\n");
    let line = invalid
        .lines()
        .position(|l| l.starts_with("retires"))
        .expect("bad line")
        + 1;
    write_atomic(&path, &invalid);
    proc.signal("-HUP");
    let located = format!("{}:{line}:1: pools.web.retires", path.display());
    assert_eventually!(
        WAIT,
        || {
            let log = proc.stderr();
            let located = located.clone();
            async move { log.contains("configuration rejected") && log.contains(&located) }
        },
        "the invalid file's error ({located}) is not in stderr:\n{}",
        proc.stderr()
    );
    for _ in 0..5 {
        assert_eq!(try_get(addr, "/").await, Some((200, Some(b_port))));
    }
    let version = try_get_json(addr, "/health").await["config_version"].clone();
    assert_eq!(
        version,
        version_of(&to_b),
        "the rejected file changed the version"
    );
    assert_eq!(
        a.requests(),
        a_served,
        "the rejected file sent traffic back to A"
    );

    proc.signal("-TERM");
    let stderr = proc.stderr.clone();
    let status = proc.wait().await;
    assert!(
        status.success(),
        "exit status {status}:\n{}",
        stderr
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    );
}

/// `GET path` on a fresh connection, body as JSON.
async fn try_get_json(addr: SocketAddr, path: &str) -> Value {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: switchyard\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write request");
    let text = support::read_until_close(&mut stream, Duration::from_secs(2)).await;
    let (_, body) = text.split_once("\r\n\r\n").expect("a response");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn test_files_render_as_valid_configurations() {
    // Guards the builder the other tests rely on.
    let text = Toml::new("check")
        .listeners(&["127.0.0.1:0"])
        .rate_limit(5, "60s")
        .pool_urls(
            "web",
            vec!["http://127.0.0.1:1".into(), "http://127.0.0.1:2".into()],
            (2, "60s"),
        )
        .route("all", "web", None)
        .route("x", "web", Some("/x"))
        .render();
    let config = load_config(Path::new("check.toml"), &text);
    assert_eq!(config.pools.len(), 1);
    assert_eq!(config.routes.len(), 2);
    assert_eq!(config.rate_limit.requests, 5);
    assert_eq!(config.workers, 2);
}
