//! HTTP/2 attacks, each sent on a raw connection while a normal client on another
//! connection keeps being served within a latency bound: rapid reset (CVE-2023-44487), a
//! CONTINUATION flood, an HPACK bomb, too many concurrent streams, SETTINGS and PING floods,
//! a window-update stall (a reader that grants no flow-control window), and connections that
//! say nothing (a partial preface; a preface and no request).

mod support;

use std::future::Future;
use std::time::Duration;

use support::h2::H2Client;
use support::h2raw::{self, RawH2};
use support::{backend, url_for, Client, TestProxy};
use test_server::TestServer;

/// What a normal client may wait while an attack is under way.
const BOUND: Duration = Duration::from_millis(1000);

/// A proxy with 1 s read and write timeouts: `/attack/...` goes to the first test server
/// (what the attacks ask for), everything else to the second (what the normal clients ask
/// for), so the first one's count is what got through.
async fn proxy() -> (TestServer, TestProxy, TestServer) {
    let attacked = backend("attacked").await;
    let normal = backend("normal").await;
    let text = format!(
        "workers = 2\n[[listeners]]\naddress = \"127.0.0.1:0\"\nread_timeout = \"1s\"\n\
         write_timeout = \"1s\"\n[rate_limit]\nrequests = 0\n\
         [pools.attacked]\nbackends = [\"{}\"]\n[pools.normal]\nbackends = [\"{}\"]\n\
         [[routes]]\nname = \"attack\"\npool = \"attacked\"\nmatch = {{ path_prefix = \"/attack\" }}\n\
         strip_prefix = \"/attack\"\n[[routes]]\nname = \"normal\"\npool = \"normal\"\n",
        url_for(&attacked),
        url_for(&normal)
    );
    let cfg = switchyard::config::validate::from_text(std::path::Path::new("a.toml"), &text)
        .unwrap_or_else(|e| panic!("{text}\n{e}"));
    (attacked, TestProxy::start(cfg), normal)
}

/// Runs `attack` while a normal HTTP/2 client and a normal HTTP/1.1 client, each on a
/// connection of its own, send requests one after another; the attack's result and the
/// slowest normal answer.
async fn under_attack<T: Send + 'static>(
    proxy: &TestProxy,
    attack: impl Future<Output = T> + Send + 'static,
) -> (T, Duration) {
    let attack = tokio::spawn(attack);
    let mut h2 = H2Client::connect(proxy.addr).await;
    let mut h1 = Client::connect(proxy.addr).await;
    let mut slowest = Duration::ZERO;
    let mut rounds = 0;
    while rounds < 10 || !attack.is_finished() {
        let start = tokio::time::Instant::now();
        let a = tokio::time::timeout(BOUND * 3, h2.get("/")).await;
        let b = tokio::time::timeout(BOUND * 3, h1.get("/")).await;
        let took = start.elapsed();
        let (a, b) = (
            a.expect("HTTP/2 client answered"),
            b.expect("HTTP/1.1 answered"),
        );
        assert_eq!((a.resp.status, b.status), (200, 200));
        slowest = slowest.max(took);
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (attack.await.expect("attack task"), slowest)
}

/// Reads the server's SETTINGS and acknowledges them (so its limits apply).
async fn acknowledge(raw: &mut RawH2) {
    raw.read(Duration::from_secs(1), |f| f.kind == h2raw::SETTINGS)
        .await;
    raw.send(&h2raw::frame(h2raw::SETTINGS, h2raw::ACK, 0, &[]))
        .await;
}

fn headers(stream: u32, path: &str, flags: u8) -> Vec<u8> {
    h2raw::frame(
        h2raw::HEADERS,
        flags,
        stream,
        &h2raw::get_block(path, "switchyard"),
    )
}

#[tokio::test]
async fn rapid_reset_is_cut_off() {
    let (server, proxy, _normal) = proxy().await;
    let addr = proxy.addr;
    let ((sent, seen), slowest) = under_attack(&proxy, async move {
        let mut raw = RawH2::connect(addr, &[]).await;
        let mut sent = 0;
        'attack: for burst in 0..50u32 {
            let mut bytes = Vec::new();
            for i in 0..100u32 {
                let id = 2 * (burst * 100 + i) + 1;
                let flags = h2raw::END_HEADERS | h2raw::END_STREAM;
                bytes.extend_from_slice(&headers(id, "/attack/delay/50", flags));
                bytes.extend_from_slice(&h2raw::rst_stream(id, h2raw::CANCEL));
            }
            if !raw.send(&bytes).await {
                break 'attack;
            }
            sent += 100;
        }
        (sent, raw.read(Duration::from_secs(3), |_| false).await)
    })
    .await;
    let goaway = seen.goaway().and_then(|g| g.error_code());
    println!(
        "rapid reset: {sent} streams opened and reset; GOAWAY {goaway:?}, closed {}; backend saw \
         {} requests; normal clients' slowest answer {slowest:?}",
        seen.closed,
        server.requests()
    );
    assert_eq!(goaway, Some(h2raw::ENHANCE_YOUR_CALM));
    assert!(seen.closed);
    assert!(
        server.requests() < 500,
        "{} reached the backend",
        server.requests()
    );
    assert!(slowest < BOUND, "{slowest:?}");
    proxy.stop().await;
}

#[tokio::test]
async fn resets_after_each_stream_was_accepted_are_cut_off_too() {
    // The same attack, each stream in a packet of its own and reset only once the backend
    // request is under way: the `h2` crate's limit on resets before accepting does not
    // fire, switchyard's count of streams reset before their answer does.
    let (server, proxy, _normal) = proxy().await;
    let addr = proxy.addr;
    let ((sent, seen), slowest) = under_attack(&proxy, async move {
        let mut raw = RawH2::connect(addr, &[]).await;
        acknowledge(&mut raw).await;
        let mut sent = 0;
        for i in 0..1000u32 {
            let id = 2 * i + 1;
            let flags = h2raw::END_HEADERS | h2raw::END_STREAM;
            if !raw.send(&headers(id, "/attack/delay/50", flags)).await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            if !raw.send(&h2raw::rst_stream(id, h2raw::CANCEL)).await {
                break;
            }
            sent += 1;
        }
        (sent, raw.read(Duration::from_secs(3), |_| false).await)
    })
    .await;
    println!(
        "slow rapid reset: {sent} streams opened and reset one by one before the close (closed {}); backend saw {} requests; normal clients' slowest answer {slowest:?}",
        seen.closed,
        server.requests()
    );
    assert!(seen.closed);
    assert!(sent < 1000, "every stream was taken");
    let limit = switchyard::server::h2::MAX_PREMATURE_RESETS;
    assert!(
        server.requests() <= 2 * limit,
        "{} reached the backend",
        server.requests()
    );
    assert!(slowest < BOUND, "{slowest:?}");
    proxy.stop().await;
}

#[tokio::test]
async fn a_continuation_flood_is_cut_off() {
    let (server, proxy, _normal) = proxy().await;
    let addr = proxy.addr;
    let ((sent, seen), slowest) = under_attack(&proxy, async move {
        let mut raw = RawH2::connect(addr, &[]).await;
        raw.send(&headers(1, "/attack/", 0)).await;
        let mut block = Vec::new();
        h2raw::literal(&mut block, "x-flood", &[b'a'; 200]);
        let one = h2raw::frame(h2raw::CONTINUATION, 0, 1, &block);
        let mut sent = 0;
        for _ in 0..200 {
            let burst: Vec<u8> = one.iter().copied().cycle().take(one.len() * 100).collect();
            if !raw.send(&burst).await {
                break;
            }
            sent += 100;
        }
        (sent, raw.read(Duration::from_secs(3), |_| false).await)
    })
    .await;
    let goaway = seen.goaway().and_then(|g| g.error_code());
    println!(
        "CONTINUATION flood: {sent} frames sent before the close; GOAWAY {goaway:?}, closed {}; \
         normal clients' slowest answer {slowest:?}",
        seen.closed
    );
    assert!(goaway.is_some() && goaway != Some(0), "{seen:?}");
    assert!(seen.closed);
    assert_eq!(server.requests(), 0);
    assert!(slowest < BOUND, "{slowest:?}");
    proxy.stop().await;
}

#[tokio::test]
async fn an_hpack_bomb_is_refused_before_any_backend_sees_it() {
    let (server, proxy, _normal) = proxy().await;
    let addr = proxy.addr;
    let (seen, slowest) = under_attack(&proxy, async move {
        let mut raw = RawH2::connect(addr, &[]).await;
        acknowledge(&mut raw).await;
        // 4 KB into the dynamic table once, then referenced 4000 times: 16 MB decoded from
        // an 8 KB block.
        let mut block = h2raw::get_block("/attack/bomb", "switchyard");
        h2raw::literal_indexed(&mut block, "x-bomb", &[b'a'; 4000]);
        for _ in 0..4000 {
            h2raw::indexed(&mut block, 62);
        }
        let flags = h2raw::END_HEADERS | h2raw::END_STREAM;
        raw.send(&h2raw::frame(h2raw::HEADERS, flags, 1, &block))
            .await;
        raw.read(Duration::from_secs(3), |f| f.kind == h2raw::GOAWAY)
            .await
    })
    .await;
    let goaway = seen.goaway().and_then(|g| g.error_code());
    println!(
        "HPACK bomb (16 MB decoded from 8 KB): GOAWAY {goaway:?}, {} resets, {} responses; \
         normal clients' slowest answer {slowest:?}",
        seen.count(h2raw::RST_STREAM),
        seen.responses()
    );
    let refused = goaway.is_some() || seen.count(h2raw::RST_STREAM) > 0 || seen.responses() > 0;
    assert!(refused, "{seen:?}");
    assert_eq!(server.requests(), 0, "the bomb reached the backend");
    assert!(slowest < BOUND, "{slowest:?}");
    proxy.stop().await;
}

#[tokio::test]
async fn streams_past_the_limit_are_refused() {
    let (server, proxy, _normal) = proxy().await;
    let addr = proxy.addr;
    let ((opened, seen), slowest) = under_attack(&proxy, async move {
        let mut raw = RawH2::connect(addr, &[]).await;
        acknowledge(&mut raw).await;
        let mut bytes = Vec::new();
        let opened = 300u32;
        for i in 0..opened {
            let flags = h2raw::END_HEADERS | h2raw::END_STREAM;
            bytes.extend_from_slice(&headers(2 * i + 1, "/attack/delay/1500", flags));
        }
        raw.send(&bytes).await;
        (
            opened,
            raw.read(Duration::from_millis(1000), |_| false).await,
        )
    })
    .await;
    let refused = seen.resets(h2raw::REFUSED_STREAM);
    let goaway = seen.goaway().and_then(|g| g.error_code());
    let at_backend = server.requests();
    println!(
        "{opened} streams opened at once (limit {}): {refused} refused, GOAWAY {goaway:?}; \
         {at_backend} requests at the backend in all; normal clients' slowest answer {slowest:?}",
        switchyard::server::h2::MAX_CONCURRENT_STREAMS
    );
    assert!(refused >= 100 || goaway.is_some(), "{seen:?}");
    assert!(slowest < BOUND, "{slowest:?}");
    proxy.stop().await;
}

/// Writes `one` over and over without reading, for at most 4 s; the bytes taken and
/// whether the server closed the connection.
async fn flood(addr: std::net::SocketAddr, one: Vec<u8>) -> (usize, bool) {
    let mut raw = RawH2::connect(addr, &[]).await;
    let burst: Vec<u8> = one.iter().copied().cycle().take(one.len() * 1000).collect();
    let mut taken = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    loop {
        match tokio::time::timeout_at(deadline, raw.send(&burst)).await {
            Ok(true) => taken += burst.len(),
            Ok(false) => return (taken, true),
            Err(_) => break,
        }
    }
    // Writes stalled: the server stopped reading. Does it close the connection?
    let seen = raw.read(Duration::from_secs(3), |_| false).await;
    (taken, seen.closed)
}

#[tokio::test]
async fn a_settings_flood_is_held_back_and_closed() {
    let one = h2raw::settings(&[(h2raw::SETTINGS_INITIAL_WINDOW_SIZE, 65_535)]);
    flood_is_held_back_and_closed("SETTINGS", one).await;
}

#[tokio::test]
async fn a_ping_flood_is_held_back_and_closed() {
    flood_is_held_back_and_closed("PING", h2raw::frame(h2raw::PING, 0, 0, &[7; 8])).await;
}

/// A client sending `one` frame over and over without reading what it asks for: the
/// proxy takes a bounded amount and closes, serving normal clients meanwhile.
async fn flood_is_held_back_and_closed(what: &str, one: Vec<u8>) {
    let (_server, proxy, _normal) = proxy().await;
    let addr = proxy.addr;
    let ((taken, closed), slowest) = under_attack(&proxy, flood(addr, one)).await;
    println!(
        "{what} flood from a client that does not read: {} KiB taken, closed {closed}; normal \
         clients' slowest answer {slowest:?}",
        taken / 1024
    );
    assert!(closed);
    assert!(taken < 64 * 1024 * 1024, "{taken} bytes taken");
    assert!(slowest < BOUND, "{slowest:?}");
    proxy.stop().await;
}

#[tokio::test]
async fn a_client_granting_no_window_is_closed_after_the_write_timeout() {
    let (server, proxy, _normal) = proxy().await;
    let addr = proxy.addr;
    let ((seen, after), slowest) = under_attack(&proxy, async move {
        // A zero stream window: no response data may be sent until a WINDOW_UPDATE, which
        // never comes. The client keeps reading, so its socket never fills.
        let mut raw = RawH2::connect(addr, &[(h2raw::SETTINGS_INITIAL_WINDOW_SIZE, 0)]).await;
        acknowledge(&mut raw).await;
        let start = tokio::time::Instant::now();
        let mut bytes = Vec::new();
        for i in 0..20u32 {
            let flags = h2raw::END_HEADERS | h2raw::END_STREAM;
            bytes.extend_from_slice(&headers(2 * i + 1, "/attack/bytes/1048576", flags));
        }
        raw.send(&bytes).await;
        let seen = raw.read(Duration::from_secs(4), |_| false).await;
        (seen, start.elapsed())
    })
    .await;
    println!(
        "20 streams of 1 MiB to a client granting no window: {} response heads, closed {} after \
         {after:?} (write timeout 1s); normal clients' slowest answer {slowest:?}",
        seen.responses(),
        seen.closed
    );
    assert!(seen.closed);
    assert!(after < Duration::from_millis(2500), "{after:?}");
    // The stalled streams' upstream attempts ended with them.
    let released = support::eventually(Duration::from_secs(2), || async {
        let m = proxy.metrics().await;
        support::metrics::backend_entry(&m, &server)["outstanding"] == 0
    })
    .await;
    assert!(released, "{:#}", proxy.metrics().await);
    assert!(slowest < BOUND, "{slowest:?}");
    proxy.stop().await;
}

#[tokio::test]
async fn connections_that_send_no_request_are_closed() {
    let (_server, proxy, _normal) = proxy().await;
    // A partial preface, then nothing.
    let start = tokio::time::Instant::now();
    let mut stream = tokio::net::TcpStream::connect(proxy.addr)
        .await
        .expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut stream, b"PRI * HT")
        .await
        .expect("write");
    let read = support::read_until_close(&mut stream, Duration::from_secs(4)).await;
    let partial = start.elapsed();
    // A whole preface and SETTINGS, then no stream.
    let start = tokio::time::Instant::now();
    let mut raw = RawH2::connect(proxy.addr, &[]).await;
    acknowledge(&mut raw).await;
    let seen = raw.read(Duration::from_secs(4), |_| false).await;
    let idle = start.elapsed();
    println!(
        "partial preface closed after {partial:?}; preface without a request: GOAWAY {:?}, \
         closed after {idle:?} (read timeout 1s)",
        seen.goaway().and_then(|g| g.error_code())
    );
    assert!(read.is_empty());
    assert!(partial < Duration::from_millis(2000), "{partial:?}");
    assert!(seen.closed && seen.goaway().is_some(), "{seen:?}");
    assert!(idle < Duration::from_millis(2500), "{idle:?}");
    proxy.stop().await;
}
