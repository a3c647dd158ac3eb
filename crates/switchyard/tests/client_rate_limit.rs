//! Per-client rate limits against a running switchyard: clients from different addresses
//! (sockets bound to 127.0.0.2 and 127.0.0.3) are limited apart, IPv6 clients by /64
//! (through trusted proxies' `X-Forwarded-For`), API keys by name with a higher limit for a
//! role, a header's values apart; `429` has `Retry-After` and the draft's `RateLimit-Policy`
//! and `RateLimit` fields (on allowed responses too), gRPC gets RESOURCE_EXHAUSTED; a flood of
//! distinct keys stays within `max_clients` and the metrics say so; idle keys are let go; a
//! reload keeps the counts; `--client-rate-limit` limits each client IP.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use support::pki::{toml_path, CertDir};
use support::{backend, Client, Resp, TestProxy};
use switchyard::cli::Cli;
use switchyard::config::auth::key_line;
use switchyard::Config;
use tokio::net::TcpSocket;

fn load(dir: &CertDir, text: &str) -> Config {
    let path = dir.write("switchyard.toml", text);
    Config::load(&path).unwrap_or_else(|e| panic!("config:\n{text}\n{e}"))
}

/// One listener, no global limit, one pool over `backend`, and `rest`.
fn config_text(backend: &str, rest: &str) -> String {
    format!(
        "workers = 2\n[[listeners]]\naddress = \"127.0.0.1:0\"\n[rate_limit]\nrequests = 0\n\
         [pools.p]\nbackends = [\"{backend}\"]\n{rest}"
    )
}

/// A keep-alive client whose connection comes from `source` (a loopback address).
async fn client_from(source: &str, proxy: SocketAddr) -> Client {
    let socket = TcpSocket::new_v4().expect("socket");
    let from: SocketAddr = format!("{source}:0").parse().expect("source address");
    socket
        .bind(from)
        .expect("bind the client to its own loopback address");
    let stream = socket.connect(proxy).await.expect("connect");
    Client::over(stream, &proxy.to_string()).await
}

async fn send(client: &mut Client, headers: &[(&str, &str)]) -> Resp {
    let mut req = http::Request::get("/");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    client
        .send(req.body(Bytes::new()).expect("request"))
        .await
        .expect("response")
}

/// Requests answered `200` before the first `429` (at most 50).
async fn allowed(client: &mut Client, headers: &[(&str, &str)]) -> u32 {
    for n in 0..50 {
        let resp = send(client, headers).await;
        match resp.status {
            200 => {}
            429 => return n,
            other => panic!("status {other}: {}", resp.text()),
        }
    }
    50
}

#[tokio::test]
async fn two_client_addresses_are_limited_apart() {
    let b = backend("b").await;
    let dir = CertDir::new("client-rl-ip");
    let text = config_text(
        &b.url(),
        "[client_rate_limit]\nrequests = 3\nwindow = \"60s\"\n",
    );
    let proxy = TestProxy::start(load(&dir, &text));
    let mut two = client_from("127.0.0.2", proxy.addr).await;
    let mut three = client_from("127.0.0.3", proxy.addr).await;
    let first = allowed(&mut two, &[]).await;
    let second = allowed(&mut three, &[]).await;
    // A second connection from 127.0.0.2 shares its address's window.
    let again = allowed(&mut client_from("127.0.0.2", proxy.addr).await, &[]).await;
    assert_eq!((first, second, again), (3, 3, 0));
    assert_eq!(b.requests(), 6, "refused requests never reach the backend");
    let m = proxy.metrics().await;
    let limits = &m["client_rate_limit"];
    assert_eq!(limits["rate_limited"], 3, "{limits}");
    assert_eq!(m["rate_limited"], 3, "counted with the other 429s");
    assert_eq!(limits["keys_tracked"], 2, "{limits}");
    println!(
        "127.0.0.2: {first} allowed, 127.0.0.3: {second} allowed, 127.0.0.2 again: {again}; keys tracked {}",
        limits["keys_tracked"]
    );
    proxy.stop().await;
}

#[tokio::test]
async fn addresses_in_one_ipv6_64_share_a_window() {
    let b = backend("b").await;
    let dir = CertDir::new("client-rl-v6");
    let text = config_text(
        &b.url(),
        "[access]\ntrusted_proxies = [\"127.0.0.1\"]\n\
         [client_rate_limit]\nrequests = 2\nwindow = \"60s\"\n",
    );
    let proxy = TestProxy::start(load(&dir, &text));
    let mut client = Client::connect(proxy.addr).await;
    let xff = |ip| [("x-forwarded-for", ip)];
    let a = allowed(&mut client, &xff("2001:db8:1:2::1")).await;
    let same_64 = allowed(&mut client, &xff("2001:db8:1:2:ffff:ffff:ffff:ffff")).await;
    let next_64 = allowed(&mut client, &xff("2001:db8:1:3::1")).await;
    let v4 = allowed(&mut client, &xff("192.0.2.1")).await;
    let v4_next = allowed(&mut client, &xff("192.0.2.2")).await;
    assert_eq!((a, same_64, next_64, v4, v4_next), (2, 0, 2, 2, 2));
    println!(
        "2001:db8:1:2::1 {a}, 2001:db8:1:2:ffff:ffff:ffff:ffff {same_64} (same /64), 2001:db8:1:3::1 {next_64}, 192.0.2.1 {v4}, 192.0.2.2 {v4_next}"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn api_keys_are_limited_by_name_and_a_paid_role_gets_more() {
    let b = backend("b").await;
    let dir = CertDir::new("client-rl-keys");
    let keys = format!(
        "{}\n{}\n{}\n",
        key_line("free1", b"free1-secret", &["read".into()]),
        key_line("free2", b"free2-secret", &["read".into()]),
        key_line("acme", b"acme-secret", &["read".into(), "paid".into()])
    );
    let keys = dir.write("keys.txt", &keys);
    let text = config_text(
        &b.url(),
        &format!(
            "[access]\napi_keys_file = {}\n\
             [client_rate_limit]\nrequests = 2\nwindow = \"60s\"\nkey = \"api_key\"\nper_role = {{ paid = 5 }}\n\
             [[routes]]\npool = \"p\"\naccess = {{ api_key = true }}\n",
            toml_path(&keys)
        ),
    );
    let proxy = TestProxy::start(load(&dir, &text));
    // All from one address: counted by key, not by address.
    let mut client = Client::connect(proxy.addr).await;
    let bearer = |secret| [("authorization", secret)];
    let free1 = allowed(&mut client, &bearer("Bearer free1-secret")).await;
    let free2 = allowed(&mut client, &bearer("Bearer free2-secret")).await;
    let acme = allowed(&mut client, &bearer("Bearer acme-secret")).await;
    assert_eq!((free1, free2, acme), (2, 2, 5));
    let unknown = send(&mut client, &bearer("Bearer guess")).await;
    assert_eq!(unknown.status, 401, "authentication comes before the limit");
    println!("by API key: free1 {free1}, free2 {free2}, acme (role paid) {acme} allowed");
    proxy.stop().await;
}

#[tokio::test]
async fn a_header_keys_the_limit_and_without_it_the_address_does() {
    let b = backend("b").await;
    let dir = CertDir::new("client-rl-header");
    let text = config_text(
        &b.url(),
        "[client_rate_limit]\nrequests = 2\nwindow = \"60s\"\nkey = \"header:X-Tenant\"\n",
    );
    let proxy = TestProxy::start(load(&dir, &text));
    let mut client = Client::connect(proxy.addr).await;
    let blue = allowed(&mut client, &[("x-tenant", "blue")]).await;
    let green = allowed(&mut client, &[("x-tenant", "green")]).await;
    let none = allowed(&mut client, &[]).await;
    assert_eq!((blue, green, none), (2, 2, 2));
    println!("by X-Tenant: blue {blue}, green {green}, none (by address) {none}");
    proxy.stop().await;
}

#[tokio::test]
async fn refusals_carry_retry_after_and_the_ratelimit_fields() {
    let b = backend("b").await;
    let dir = CertDir::new("client-rl-fields");
    let text = config_text(
        &b.url(),
        "[client_rate_limit]\nrequests = 3\nwindow = \"10s\"\nheaders = true\n",
    );
    let proxy = TestProxy::start(load(&dir, &text));
    let mut client = Client::connect(proxy.addr).await;
    let first = send(&mut client, &[]).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.headers["ratelimit-policy"], "\"client\";q=3;w=10");
    let now = first.headers["ratelimit"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    let t: u64 = now
        .strip_prefix("\"client\";r=2;t=")
        .unwrap_or_else(|| panic!("RateLimit: {now}"))
        .parse()
        .expect("t in seconds");
    assert!((1..=10).contains(&t), "{now}");
    send(&mut client, &[]).await;
    let last = send(&mut client, &[]).await;
    assert!(
        last.headers["ratelimit"]
            .to_str()
            .is_ok_and(|v| v.starts_with("\"client\";r=0;")),
        "{:?}",
        last.headers["ratelimit"]
    );
    let refused = send(&mut client, &[]).await;
    assert_eq!(refused.status, 429);
    let retry_after: u64 = refused.headers["retry-after"]
        .to_str()
        .expect("ASCII")
        .parse()
        .expect("whole seconds");
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    assert_eq!(
        refused.headers["ratelimit"],
        format!("\"client\";r=0;t={retry_after}").as_str()
    );
    assert_eq!(refused.headers["ratelimit-policy"], "\"client\";q=3;w=10");
    println!(
        "first: RateLimit-Policy {:?}, RateLimit {now:?}; 429: Retry-After {retry_after}, RateLimit {:?}",
        first.headers["ratelimit-policy"], refused.headers["ratelimit"]
    );

    // gRPC calls get RESOURCE_EXHAUSTED.
    let call = http::Request::post("/pkg.Service/Method")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Bytes::new())
        .expect("request");
    let grpc = client.send(call).await.expect("response");
    assert_eq!(grpc.status, 200);
    assert_eq!(grpc.headers["grpc-status"], "8", "RESOURCE_EXHAUSTED");
    proxy.stop().await;
}

#[tokio::test]
async fn a_flood_of_distinct_keys_stays_within_max_clients() {
    let dir = CertDir::new("client-rl-flood");
    // A fixed response: the flood exercises the limiter, not a backend.
    let text = "workers = 2\n[[listeners]]\naddress = \"127.0.0.1:0\"\n[rate_limit]\nrequests = 0\n\
                [client_rate_limit]\nrequests = 100\nwindow = \"60s\"\nkey = \"header:X-Tenant\"\nmax_clients = 400\n\
                [[routes]]\nrespond = { status = 200, body = \"ok\" }\n";
    let proxy = TestProxy::start(load(&dir, text));
    let started = tokio::time::Instant::now();
    // 50 times the cap, as 50,000 into 1,000 (the limiter's unit test floods that; through
    // a debug-build proxy on a busy machine it takes about 8 s). Each connection stays under
    // `max_requests_per_connection` (10,000).
    let flood: u32 = 20_000;
    let connections = 4;
    // Pipelined HTTP/1.1: each connection writes its share of requests at once and counts
    // the `200`s that come back.
    let tasks: Vec<_> = (0..connections)
        .map(|c| {
            let addr = proxy.addr;
            let mut requests = String::new();
            for i in (c..flood).step_by(connections as usize) {
                requests.push_str(&format!(
                    "GET / HTTP/1.1\r\nhost: x\r\nx-tenant: t{i}\r\n\r\n"
                ));
            }
            requests.push_str("GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
            tokio::spawn(pipelined(addr, requests))
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        ok += task.await.expect("flood task");
    }
    let elapsed = started.elapsed();
    // Each connection's last request (no X-Tenant) is counted under the address.
    assert_eq!(ok, flood + connections, "a new key is never refused");
    let m = proxy.metrics().await;
    let limits = &m["client_rate_limit"];
    let tracked = limits["keys_tracked"].as_u64().expect("keys_tracked");
    let evicted = limits["keys_evicted"].as_u64().expect("keys_evicted");
    assert!(tracked <= 400, "{limits}");
    assert!(tracked > 200, "{limits}");
    assert_eq!(limits["keys_capacity"], 400);
    // Nearly every new key pushed a live one out. Not all: with two workers, a slot just
    // claimed by one (its key not yet counted) looks idle to the other, which takes it
    // without counting an eviction (the documented race; it failed once under a full suite).
    assert!(evicted >= (u64::from(flood) - 400) * 99 / 100, "{limits}");
    assert_eq!(limits["memory_bytes"], 400 * 16 + 40, "{limits}");
    // And a client that keeps coming is still limited.
    let mut client = Client::connect(proxy.addr).await;
    let hot = allowed(&mut client, &[("x-tenant", "hot")]).await;
    assert_eq!(hot, 50, "the limit (100) is above what this loop sends");
    println!(
        "flood: {flood} distinct X-Tenant values in {elapsed:?} over {connections} connections: {tracked} keys tracked (max_clients 400), {evicted} evicted, {} bytes",
        limits["memory_bytes"]
    );
    proxy.stop().await;
}

/// Writes `requests` on one connection while reading the answers; returns the `200`s.
async fn pipelined(addr: SocketAddr, requests: String) -> u32 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        write.write_all(requests.as_bytes()).await.expect("write");
        write
    });
    let mut answers = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), read.read_to_end(&mut answers))
        .await
        .expect("answers within a minute")
        .expect("read");
    drop(writer.await.expect("writer"));
    let text = String::from_utf8_lossy(&answers);
    text.matches("HTTP/1.1 200 OK\r\n").count() as u32
}

#[tokio::test]
async fn idle_keys_are_let_go_once_their_window_has_passed() {
    let b = backend("b").await;
    let dir = CertDir::new("client-rl-idle");
    let text = config_text(
        &b.url(),
        "[client_rate_limit]\nrequests = 5\nwindow = \"100ms\"\nkey = \"header:X-Tenant\"\n",
    );
    let proxy = TestProxy::start(load(&dir, &text));
    let mut client = Client::connect(proxy.addr).await;
    for i in 0..20 {
        let tenant = format!("t{i}");
        assert_eq!(
            send(&mut client, &[("x-tenant", &tenant)]).await.status,
            200
        );
    }
    let tracked = proxy.metrics().await["client_rate_limit"]["keys_tracked"].clone();
    assert!(
        tracked.as_u64().is_some_and(|n| n > 0 && n <= 20),
        "{tracked}"
    );
    let started = tokio::time::Instant::now();
    assert_eventually!(
        Duration::from_secs(2),
        || async { proxy.metrics().await["client_rate_limit"]["keys_tracked"] == 0 },
        "idle keys still tracked"
    );
    println!(
        "20 keys tracked {tracked} right after, 0 after {:?} idle (window 100ms)",
        started.elapsed()
    );
    proxy.stop().await;
}

#[tokio::test]
async fn a_reload_keeps_the_counts_unless_the_window_changes() {
    let b = backend("b").await;
    let dir = CertDir::new("client-rl-reload");
    let limit = |requests, window| {
        config_text(
            &b.url(),
            &format!("[client_rate_limit]\nrequests = {requests}\nwindow = \"{window}\"\n"),
        )
    };
    let proxy = TestProxy::start(load(&dir, &limit(3, "60s")));
    let mut client = Client::connect(proxy.addr).await;
    assert_eq!(allowed(&mut client, &[]).await, 3);
    // The same window and key, a higher limit: the three already counted stay counted.
    proxy
        .server
        .reload(load(&dir, &limit(4, "60s")))
        .expect("reload");
    let mut client = Client::connect(proxy.addr).await;
    let after_same = allowed(&mut client, &[]).await;
    assert_eq!(after_same, 1, "3 of the new 4 were already counted");
    // Another window: counted anew.
    proxy
        .server
        .reload(load(&dir, &limit(4, "30s")))
        .expect("reload");
    let mut client = Client::connect(proxy.addr).await;
    let after_new = allowed(&mut client, &[]).await;
    assert_eq!(after_new, 4);
    println!(
        "3 allowed; after a reload to 4 per 60s: {after_same} more; after a reload to 4 per 30s: {after_new}"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn a_route_limit_applies_on_its_route_only() {
    let b = backend("b").await;
    let dir = CertDir::new("client-rl-route");
    let text = config_text(
        &b.url(),
        "[[routes]]\nmatch = { path_prefix = \"/api\" }\npool = \"p\"\n\
         client_rate_limit = { requests = 2, window = \"60s\", headers = true }\n\
         [[routes]]\npool = \"p\"\n",
    );
    let proxy = TestProxy::start(load(&dir, &text));
    let mut client = Client::connect(proxy.addr).await;
    let mut api = 0;
    while client.get("/api/x").await.status == 200 && api < 10 {
        api += 1;
    }
    let last = client.get("/api/x").await;
    assert_eq!(last.headers["ratelimit-policy"], "\"route\";q=2;w=60");
    let mut other = 0;
    for _ in 0..5 {
        other += u32::from(client.get("/other").await.status == 200);
    }
    assert_eq!((api, other), (2, 5));
    assert!(!client.get("/other").await.headers.contains_key("ratelimit"));
    println!("/api: {api} allowed (route limit 2), /other: {other} of 5");
    proxy.stop().await;
}

#[tokio::test]
async fn the_flag_limits_each_client_ip() {
    let b = backend("b").await;
    let args = [
        "switchyard",
        "--client-rate-limit",
        "2",
        "--rate-window",
        "60s",
        "--rate-limit",
        "0",
        "--backends",
        &b.url(),
    ];
    let cli = Cli::try_parse_args(args.map(String::from)).expect("flags");
    let mut config = cli.load_config().expect("config");
    config.workers = 2;
    let proxy = TestProxy::start(config);
    let two = allowed(&mut client_from("127.0.0.2", proxy.addr).await, &[]).await;
    let three = allowed(&mut client_from("127.0.0.3", proxy.addr).await, &[]).await;
    assert_eq!((two, three), (2, 2));
    println!("--client-rate-limit 2: 127.0.0.2 {two} allowed, 127.0.0.3 {three}");
    proxy.stop().await;
}

#[tokio::test]
async fn connections_from_an_ipv6_peer_share_its_window() {
    let b = backend("b").await;
    let Ok(listener) = std::net::TcpListener::bind("[::1]:0") else {
        println!(
            "no ::1 on this machine: skipped (the /64 rule is tested through X-Forwarded-For)"
        );
        return;
    };
    listener.set_nonblocking(true).expect("nonblocking");
    let dir = CertDir::new("client-rl-v6-peer");
    let text = config_text(
        &b.url(),
        "[client_rate_limit]\nrequests = 2\nwindow = \"60s\"\n",
    );
    let server = switchyard::start_with_listener(load(&dir, &text), listener).expect("start");
    let addr = server.local_addr();
    let connect = || async {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        Client::over(stream, &addr.to_string()).await
    };
    let first = allowed(&mut connect().await, &[]).await;
    let second = allowed(&mut connect().await, &[]).await;
    assert_eq!(
        (first, second),
        (2, 0),
        "two connections from ::1: one window"
    );
    println!("from [::1] to {addr}: {first} allowed, then {second} on a second connection");
    server.shutdown().await;
}

#[test]
fn the_flag_over_a_file_sets_the_limit_and_keeps_the_rest() {
    let dir = CertDir::new("client-rl-flag-file");
    let path = dir.write(
        "switchyard.toml",
        "[pools.p]\nbackends = [\"http://127.0.0.1:1\"]\n\
         [client_rate_limit]\nrequests = 3\nwindow = \"5s\"\nkey = \"header:X-Tenant\"\nheaders = true\n",
    );
    let path = path.to_str().expect("UTF-8 path").to_owned();
    let load = |extra: &[&str]| {
        let mut args = vec!["switchyard", "--config", &path];
        args.extend_from_slice(extra);
        let cli = Cli::try_parse_args(args.into_iter().map(String::from)).expect("flags");
        cli.load_config().expect("config").client_rate_limit
    };
    let file = load(&[]).expect("the file's");
    assert_eq!((file.requests, file.window), (3, Duration::from_secs(5)));
    let flag = load(&["--client-rate-limit", "7"]).expect("the flag's");
    assert_eq!(
        (flag.requests, flag.window, flag.headers),
        (7, Duration::from_secs(5), true)
    );
    assert_eq!(flag.key, file.key, "the file's key stays");
    let window = load(&["--client-rate-limit", "7", "--rate-window", "2s"]).expect("set");
    assert_eq!(window.window, Duration::from_secs(2));
    assert!(
        load(&["--client-rate-limit", "0"]).is_none(),
        "0 turns it off"
    );
    println!("file 3/5s, --client-rate-limit 7: 7/5s, with --rate-window 2s: 7/2s, 0: off");
}
