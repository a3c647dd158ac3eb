//! The audit log against a running switchyard: an authentication failure names the key
//! `unknown` and never the secret; a denied address and admin access are lines of their own;
//! a flood of refused requests from a few clients makes a bounded number of summary lines
//! with the right counts; a reload line carries the SHA-256 of the file before and after and
//! what changed; the reopen control (SIGUSR1's) writes to a new file once the old one was
//! renamed, in-process and in the real binary.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use support::pki::toml_path;
use support::process::{signal, start_proxy};
use support::{backend, eventually, Client, TempDir, TestProxy};
use switchyard::cli::Cli;
use switchyard::config::auth::key_line;
use switchyard::config::tls::sha256;
use switchyard::config::validate;
use switchyard::{Config, Control};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The summary interval of these tests.
const INTERVAL: Duration = Duration::from_millis(200);
/// Longest wait for a line to appear.
const WAIT: Duration = Duration::from_secs(4);
const SECRET: &str = "s3cret-guess-4711";
const TOKEN: &str = "admin-token-0123456789abcdef";

struct Setup {
    dir: TempDir,
    config: PathBuf,
    log: PathBuf,
}

/// A configuration in `dir`: `/keyed` needs a key, `/denied` refuses 203.0.113.0/24,
/// `/metrics` needs [`TOKEN`], X-Forwarded-For from loopback is believed (so one test
/// connection can speak for many clients); `extra` is appended (more pools and routes).
fn config_text(backend_url: &str, extra: &str) -> String {
    format!(
        "workers = 2\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\n\
         [rate_limit]\nrequests = 0\n\
         [audit]\npath = \"audit.log\"\ninterval = \"200ms\"\n\
         [admin]\ntoken_file = \"token.txt\"\n\
         [access]\napi_keys_file = \"keys.txt\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n\
         [pools.p]\nbackends = [\"{backend_url}\"]\n\
         [[routes]]\nname = \"keyed\"\nmatch = {{ path_prefix = \"/keyed\" }}\npool = \"p\"\naccess = {{ api_key = true }}\n\
         [[routes]]\nname = \"denied\"\nmatch = {{ path_prefix = \"/denied\" }}\npool = \"p\"\naccess = {{ deny_ip = [\"203.0.113.0/24\"] }}\n\
         {extra}\
         [[routes]]\nname = \"open\"\npool = \"p\"\n"
    )
}

fn setup(name: &str, backend_url: &str) -> (Setup, Config) {
    setup_with(name, backend_url, "")
}

fn setup_with(name: &str, backend_url: &str, extra: &str) -> (Setup, Config) {
    let dir = TempDir::new("audit", name);
    std::fs::write(
        dir.file("keys.txt"),
        key_line("ci", b"ci-secret", &[]) + "\n",
    )
    .expect("keys");
    std::fs::write(dir.file("token.txt"), TOKEN).expect("token");
    let config = dir.file("switchyard.toml");
    let text = config_text(backend_url, extra);
    std::fs::write(&config, &text).expect("config");
    let mut loaded = validate::from_text(&config, &text).unwrap_or_else(|e| panic!("{e}"));
    if let Some(source) = loaded.source.as_mut() {
        source.watch_interval = None;
    }
    let log = dir.file("audit.log");
    (Setup { dir, config, log }, loaded)
}

/// The audit lines in `path` so far.
fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

/// Waits for a line of `path` that `pick` accepts.
async fn line(path: &Path, pick: impl Fn(&Value) -> bool) -> Value {
    let found = eventually(WAIT, || {
        let found = lines(path).iter().any(&pick);
        async move { found }
    })
    .await;
    assert!(found, "no such audit line in:\n{:#?}", lines(path));
    lines(path).into_iter().find(pick).expect("found above")
}

async fn send(client: &mut Client, path: &str, headers: &[(&str, &str)]) -> u16 {
    let mut req = http::Request::get(path);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(Bytes::new()).expect("request");
    client.send(req).await.expect("response").status
}

#[tokio::test]
async fn an_auth_failure_names_the_key_unknown_and_never_the_secret() {
    let b = backend("b").await;
    let (s, config) = setup("auth", &b.url());
    let proxy = TestProxy::start(config);
    let mut client = Client::connect(proxy.addr).await;
    let bearer = format!("Bearer {SECRET}");
    let headers = [
        ("authorization", bearer.as_str()),
        ("x-forwarded-for", "198.51.100.7"),
    ];
    assert_eq!(send(&mut client, "/keyed", &headers).await, 401);
    let missing = [("x-forwarded-for", "198.51.100.8")];
    assert_eq!(send(&mut client, "/keyed", &missing).await, 401);
    let l = line(&s.log, |l| {
        l["event"] == "auth_failure" && l["client"] == "198.51.100.7"
    })
    .await;
    assert_eq!(l["key"], "unknown");
    assert_eq!(l["detail"], "unknown");
    assert_eq!(l["count"], 1);
    let m = line(&s.log, |l| l["client"] == "198.51.100.8").await;
    assert_eq!(
        (&m["event"], &m["detail"]),
        (&"auth_failure".into(), &"missing".into())
    );
    let text = std::fs::read_to_string(&s.log).expect("audit log");
    assert!(
        !text.contains(SECRET),
        "the secret is in the audit log:\n{text}"
    );
    println!("auth failure: {l}");
    proxy.stop().await;
}

#[tokio::test]
async fn a_denied_address_and_admin_access_are_recorded() {
    let b = backend("b").await;
    let (s, config) = setup("denied", &b.url());
    let proxy = TestProxy::start(config);
    let mut client = Client::connect(proxy.addr).await;
    let denied = [("x-forwarded-for", "203.0.113.9")];
    assert_eq!(send(&mut client, "/denied", &denied).await, 403);
    assert_eq!(send(&mut client, "/denied", &denied).await, 403);
    assert_eq!(send(&mut client, "/metrics", &[]).await, 401);
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(
        send(&mut client, "/metrics", &[("authorization", &bearer)]).await,
        200
    );
    let ip = line(&s.log, |l| l["event"] == "ip_denied").await;
    assert_eq!(
        (&ip["client"], &ip["count"]),
        (&"203.0.113.9".into(), &2.into())
    );
    let no = line(&s.log, |l| l["event"] == "admin_denied").await;
    let yes = line(&s.log, |l| l["event"] == "admin_access").await;
    for l in [&no, &yes] {
        assert_eq!(
            (&l["client"], &l["detail"]),
            (&"127.0.0.1".into(), &"metrics".into())
        );
    }
    assert!(!std::fs::read_to_string(&s.log)
        .expect("log")
        .contains(TOKEN));
    println!("denied: {ip}\nadmin: {no}\nadmin: {yes}");
    proxy.stop().await;
}

/// Sends `n` pipelined requests for `/keyed` with a wrong key, as `xff`, on one connection;
/// returns how many `401`s came back.
async fn pipelined(addr: std::net::SocketAddr, xff: String, n: usize) -> usize {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut read, mut write) = stream.into_split();
    let request = format!(
        "GET /keyed HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {xff}\r\nX-API-Key: {SECRET}\r\n\r\n"
    );
    let writer = tokio::spawn(async move {
        let batch = request.repeat(100);
        for _ in 0..n / 100 {
            write.write_all(batch.as_bytes()).await.expect("write");
        }
        write
    });
    let status = b"HTTP/1.1 401";
    let (mut seen, mut buf, mut carry) = (0, vec![0u8; 64 * 1024], Vec::new());
    while seen < n {
        let got = tokio::time::timeout(WAIT, read.read(&mut buf))
            .await
            .expect("responses in time")
            .expect("read");
        assert!(got > 0, "closed after {seen} responses");
        carry.extend_from_slice(&buf[..got]);
        let mut last = 0;
        let mut i = 0;
        while i + status.len() <= carry.len() {
            if &carry[i..i + status.len()] == status {
                seen += 1;
                last = i + status.len();
                i = last;
            } else {
                i += 1;
            }
        }
        carry.drain(..last.max(carry.len().saturating_sub(status.len())));
    }
    drop(writer.await.expect("writer"));
    seen
}

#[tokio::test]
async fn a_flood_of_refusals_makes_a_bounded_number_of_lines() {
    const CLIENTS: usize = 4;
    const CONNECTIONS: usize = 8; // 2,500 requests each, a multiple of 100
    const REQUESTS: usize = 20_000;
    let b = backend("b").await;
    let (s, config) = setup("flood", &b.url());
    let proxy = TestProxy::start(config);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let addr = proxy.addr;
        let xff = format!("10.0.0.{}", c % CLIENTS + 1);
        tasks.push(tokio::spawn(pipelined(addr, xff, REQUESTS / CONNECTIONS)));
    }
    for task in tasks {
        assert_eq!(task.await.expect("flooding client"), REQUESTS / CONNECTIONS);
    }
    let flood = start.elapsed();
    let counted = |lines: &[Value]| -> u64 {
        lines
            .iter()
            .filter(|l| l["event"] == "auth_failure")
            .map(|l| l["count"].as_u64().unwrap_or(0))
            .sum()
    };
    let metrics = proxy.server.shared().audit.clone().expect("audit on");
    let all_in = eventually(WAIT, || {
        let n = counted(&lines(&s.log)) + metrics.dropped();
        async move { n == REQUESTS as u64 }
    })
    .await;
    let elapsed = start.elapsed();
    let lines = lines(&s.log);
    assert!(all_in, "counted {} of {REQUESTS}", counted(&lines));
    let mut per_client: BTreeMap<String, u64> = BTreeMap::new();
    for l in lines.iter().filter(|l| l["event"] == "auth_failure") {
        *per_client.entry(l["client"].to_string()).or_default() += l["count"].as_u64().unwrap_or(0);
    }
    // One kind of refusal: at most one line per client per interval (and one interval more
    // for the last, partial one).
    let intervals = (elapsed.as_millis() / INTERVAL.as_millis()) as usize + 2;
    let bound = CLIENTS * intervals;
    assert_eq!(per_client.len(), CLIENTS, "{per_client:?}");
    assert!(
        lines.len() <= bound,
        "{} lines, more than {bound}",
        lines.len()
    );
    if metrics.dropped() == 0 {
        for count in per_client.values() {
            assert_eq!(*count, (REQUESTS / CLIENTS) as u64, "{per_client:?}");
        }
    }
    println!(
        "{REQUESTS} refused requests from {CLIENTS} clients in {flood:?} -> {} audit lines \
         (bound {bound}), per client {per_client:?}, dropped {}",
        lines.len(),
        metrics.dropped()
    );
    proxy.stop().await;
}

#[tokio::test]
async fn a_reload_line_has_both_hashes_and_the_changes_and_reopen_follows_a_rename() {
    let b = backend("b").await;
    let (s, config) = setup("reload", &b.url());
    let before = std::fs::read(&s.config).expect("config");
    let proxy = TestProxy::start(config);
    let addr = proxy.addr;
    let path = s.config.to_str().expect("UTF-8 path").to_owned();
    let cli =
        Cli::try_parse_args(["switchyard", "--config", &path].map(String::from)).expect("cli");
    let (controls, receiver) = mpsc::channel(4);
    let supervisor =
        tokio::spawn(async move { switchyard::supervise(proxy.server, &cli, receiver).await });

    // A pool and a route added.
    let extra = format!(
        "[pools.q]\nbackends = [\"{}\"]\n[[routes]]\nname = \"new\"\nmatch = {{ path_prefix = \"/new\" }}\npool = \"q\"\n",
        b.url()
    );
    let text = config_text(&b.url(), &extra);
    std::fs::write(&s.config, &text).expect("write config");
    controls
        .send(Control::Reload { reason: "test" })
        .await
        .expect("supervise runs");
    let l = line(&s.log, |l| l["event"] == "config_reloaded").await;
    assert_eq!(l["sha256_before"], sha256(&before).to_hex());
    assert_eq!(l["sha256_after"], sha256(text.as_bytes()).to_hex());
    assert_eq!(l["changes"]["pools"]["added"], serde_json::json!(["q"]));
    assert_eq!(l["changes"]["routes"]["added"], serde_json::json!(["new"]));
    assert_eq!(l["changes"]["routes"]["removed"], serde_json::json!([]));
    println!("reload: {l}");

    // A broken file: rejected, with its hash and the error.
    std::fs::write(&s.config, "workers = \"many\"\n").expect("write config");
    controls
        .send(Control::Reload { reason: "test" })
        .await
        .expect("supervise runs");
    let r = line(&s.log, |l| l["event"] == "config_rejected").await;
    assert_eq!(r["sha256_before"], sha256(text.as_bytes()).to_hex());
    assert_eq!(r["sha256_after"], sha256(b"workers = \"many\"\n").to_hex());
    assert!(
        r["error"].as_str().is_some_and(|e| e.contains("workers")),
        "{r}"
    );

    // logrotate: rename, then the control SIGUSR1 becomes.
    let rotated = s.dir.file("audit.log.1");
    std::fs::rename(&s.log, &rotated).expect("rename");
    controls
        .send(Control::ReopenLogs)
        .await
        .expect("supervise runs");
    line(&s.log, |l| l["event"] == "audit_reopened").await;
    let mut client = Client::connect(addr).await;
    assert_eq!(send(&mut client, "/metrics", &[]).await, 401);
    line(&s.log, |l| l["event"] == "admin_denied").await;
    let old = lines(&rotated);
    assert!(old.iter().all(|l| l["event"] != "admin_denied"), "{old:#?}");
    println!(
        "after the rename: {} lines in the old file, {} in the new",
        old.len(),
        lines(&s.log).len()
    );
    drop(client);
    drop(controls);
    assert!(supervisor.await.expect("supervise").drained);
}

#[tokio::test]
async fn the_binary_reopens_its_audit_log_on_sigusr1() {
    let b = backend("b").await;
    let dir = TempDir::new("audit", "sigusr1");
    let log = dir.file("audit.log");
    let log_arg = log.to_str().expect("UTF-8 path").to_owned();
    let url = b.url();
    let (proc, _addr) = start_proxy(
        |addr| {
            [
                "--listen",
                &addr.to_string(),
                "--backends",
                &url,
                "--audit-log",
                &log_arg,
            ]
            .map(String::from)
            .to_vec()
        },
        std::slice::from_ref(&url),
    )
    .await;
    assert!(log.exists(), "the audit log is created at start");
    let rotated = dir.file("audit.log.1");
    std::fs::rename(&log, &rotated).expect("rename");
    signal(proc.pid, "-USR1");
    let reopened = line(&log, |l| l["event"] == "audit_reopened").await;
    println!("SIGUSR1 to {}: {reopened} ({})", proc.pid, toml_path(&log));
    proc.terminate().await;
}

#[test]
fn bad_audit_and_server_keys_are_named_with_their_line() {
    let path = Path::new("/etc/switchyard/switchyard.toml");
    let text = "[audit]\npath = \"\"\nmax_clients = 0\ninterval = \"0s\"\n[server]\nuser = \" \"\n";
    let err = validate::from_text(path, text)
        .expect_err("invalid")
        .to_string();
    for needle in [
        "switchyard.toml:2:",
        "audit.path",
        "audit.max_clients",
        "audit.interval",
        "server.user",
    ] {
        assert!(err.contains(needle), "no {needle:?} in:\n{err}");
    }
    let ok = "[audit]\npath = \"audit.log\"\n[server]\nuser = \"nobody\"\ngroup = \"nogroup\"\n\
              [pools.p]\nbackends = [\"http://127.0.0.1:9\"]\n";
    let config = validate::from_text(path, ok).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.audit.target,
        Some(switchyard::config::AuditTarget::File(
            "/etc/switchyard/audit.log".into()
        ))
    );
    assert_eq!(config.audit.interval, Duration::from_secs(10));
    assert_eq!(config.process.user.as_deref(), Some("nobody"));
    println!(
        "rejected: {}",
        err.lines()
            .filter(|l| l.contains("audit.") || l.contains("server."))
            .count()
    );
}

#[tokio::test]
async fn limit_hits_are_summarised_per_client_and_kind() {
    let b = backend("b").await;
    let extra =
        "[[routes]]\nname = \"limited\"\nmatch = { path_prefix = \"/limited\" }\npool = \"p\"\n\
                 rate_limit = { requests = 1, window = \"60s\" }\n\
                 [[routes]]\nname = \"small\"\nmatch = { path_prefix = \"/small\" }\npool = \"p\"\n\
                 max_body_size = \"8B\"\nallowed_methods = [\"POST\"]\n";
    let (s, config) = setup_with("limits", &b.url(), extra);
    let proxy = TestProxy::start(config);
    let mut client = Client::connect(proxy.addr).await;
    let who = [("x-forwarded-for", "198.51.100.4")];
    assert_eq!(send(&mut client, "/limited", &who).await, 200);
    for _ in 0..5 {
        assert_eq!(send(&mut client, "/limited", &who).await, 429);
    }
    assert_eq!(send(&mut client, "/small", &who).await, 405);
    let big = client
        .send(
            http::Request::post("/small")
                .header("x-forwarded-for", "198.51.100.4")
                .body(Bytes::from_static(b"more than eight bytes"))
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(big.status, 413);
    let limited = line(&s.log, |l| l["event"] == "rate_limited").await;
    assert_eq!(
        (&limited["client"], &limited["count"]),
        (&"198.51.100.4".into(), &5.into()),
        "{limited}"
    );
    let method = line(&s.log, |l| l["event"] == "method_not_allowed").await;
    let body = line(&s.log, |l| l["event"] == "body_too_large").await;
    assert_eq!(method["count"], 1, "{method}");
    assert_eq!(
        (&body["count"], &body["detail"]),
        (&1.into(), &"declared".into()),
        "{body}"
    );
    println!("limit hits: {limited}\n{method}\n{body}");
    proxy.stop().await;
}
