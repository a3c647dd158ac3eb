//! Slow readers: a client that stops reading a large response makes the backend's writes
//! stall after a bounded number of bytes (backpressure reaches it, nothing piles up in
//! between), and gets the whole body intact once it reads again; large bodies arrive intact;
//! a backend's response head over `[limits] max_backend_header_bytes` is a `502`; an HTTP/2
//! backend is offered a stream window of `response_buffer`.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::wire::read_request_head;
use support::{backend, config, url_for, Client, TestProxy};
use switchyard::config::validate::from_text;
use switchyard::config::{BackendUrl, Scheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// The body a slow reader asks for: far more than any buffer on the way.
const LARGE: u64 = 64 << 20;

/// The byte at offset `i` of the raw backend's bodies (test-server's pattern).
fn pattern(i: u64) -> u8 {
    test_server::pattern_byte(i)
}

/// A raw HTTP/1.1 backend answering every request with `head` (the status line and headers,
/// without the blank line) and `len` pattern bytes, written 16 KiB at a time; `written`
/// counts the body bytes its socket accepted.
async fn raw_backend(head: String, len: u64, written: Arc<AtomicU64>) -> BackendUrl {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (head, written) = (head.clone(), written.clone());
            tokio::spawn(async move {
                while read_request_head(&mut stream).await.is_some() {
                    let head = format!("{head}\r\nContent-Length: {len}\r\n\r\n");
                    if stream.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let mut sent = 0u64;
                    while sent < len {
                        let n = (len - sent).min(16 * 1024);
                        let piece: Vec<u8> = (sent..sent + n).map(pattern).collect();
                        if stream.write_all(&piece).await.is_err() {
                            return;
                        }
                        sent += n;
                        written.fetch_add(n, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    BackendUrl::http("127.0.0.1", port)
}

/// A client connection with a 4 KiB receive buffer, the request sent, nothing read.
async fn slow_reader(proxy: SocketAddr, path: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut stream = socket.connect(proxy).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    stream
}

/// Waits until `count` stays the same for a second (at most 20 s); returns its value.
async fn settled(count: &AtomicU64) -> u64 {
    let mut last = count.load(Ordering::Relaxed);
    let mut still = 0;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = count.load(Ordering::Relaxed);
        if now == last && now > 0 {
            still += 1;
            if still == 10 {
                return now;
            }
        } else {
            still = 0;
            last = now;
        }
    }
    last
}

/// Reads a response to its end (the connection closes after it): its head, and its body
/// checked against the pattern; returns the head and the body's length.
async fn read_checked(stream: &mut TcpStream) -> (String, u64) {
    let mut head = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut offset = 0u64;
    let mut in_body = false;
    loop {
        let n = match tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => n,
            Err(_) => panic!("the response stalled after {offset} body bytes"),
        };
        let mut bytes = &buf[..n];
        if !in_body {
            head.extend_from_slice(bytes);
            let Some(p) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let rest = head.split_off(p + 4);
            in_body = true;
            for (i, b) in rest.iter().enumerate() {
                assert_eq!(
                    *b,
                    pattern(offset + i as u64),
                    "body byte {}",
                    offset + i as u64
                );
            }
            offset += rest.len() as u64;
            bytes = &[];
        }
        for (i, b) in bytes.iter().enumerate() {
            assert_eq!(
                *b,
                pattern(offset + i as u64),
                "body byte {}",
                offset + i as u64
            );
        }
        offset += bytes.len() as u64;
    }
    (String::from_utf8_lossy(&head).into_owned(), offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_stalls_the_backend_then_gets_it_all() {
    let written = Arc::new(AtomicU64::new(0));
    let url = raw_backend("HTTP/1.1 200 OK".into(), LARGE, written.clone()).await;
    let proxy = TestProxy::start(config(vec![url]));
    let mut stream = slow_reader(proxy.addr, "/large").await;

    // Between the backend and the client only socket buffers and switchyard's bounded
    // queue (about 100 KiB by default) hold the body: the backend's writes stall long before
    // the end. The kernel's socket buffers grow on loopback (Linux's defaults: up to 4 MiB
    // sent per socket, and several MiB received; about 10 MiB in all here), so the bound
    // asserted is half the body; without backpressure the backend would write all of it.
    let stalled = settled(&written).await;
    assert!(
        stalled < LARGE / 2,
        "the backend wrote {stalled} bytes for a client that reads nothing"
    );

    let (head, len) = read_checked(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(len, LARGE, "the whole body arrives once the client reads");
    assert_eq!(written.load(Ordering::Relaxed), LARGE);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_slow_readers_each_stall_their_own_backend_connection() {
    let written = Arc::new(AtomicU64::new(0));
    let url = raw_backend("HTTP/1.1 200 OK".into(), LARGE, written.clone()).await;
    let proxy = TestProxy::start(config(vec![url]));
    let mut readers = Vec::new();
    for _ in 0..8 {
        readers.push(slow_reader(proxy.addr, "/large").await);
    }
    let stalled = settled(&written).await;
    assert!(
        stalled < 8 * LARGE / 2,
        "the backend wrote {stalled} bytes for 8 clients that read nothing"
    );
    // A normal client is served meanwhile.
    let resp = support::get(&proxy.url("/small")).await;
    assert_eq!(resp.status, 200);
    drop(readers);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_arrive_intact() {
    let server = backend("large").await;
    let proxy = TestProxy::start(config(vec![url_for(&server)]));
    let mut client = Client::connect(proxy.addr).await;
    for len in [1u64 << 20, (10 << 20) + 7, 16 * 1024 - 1, 16 * 1024 + 1] {
        let resp = client.get(&format!("/bytes/{len}")).await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body.len() as u64, len);
        let bad = resp
            .body
            .iter()
            .enumerate()
            .position(|(i, b)| *b != pattern(i as u64));
        assert_eq!(bad, None, "a {len}-byte body differs at that offset");
    }
    proxy.stop().await;
}

/// A response head with one `X-Big` header of `n` bytes.
fn head_with_header(n: usize) -> String {
    format!("HTTP/1.1 200 OK\r\nX-Big: {}", "a".repeat(n))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_head_over_the_limit_is_a_502() {
    let written = Arc::new(AtomicU64::new(0));
    let big = raw_backend(head_with_header(40 * 1024), 10, written.clone()).await;
    let fits = raw_backend(head_with_header(12 * 1024), 10, written.clone()).await;

    let proxy = TestProxy::start(config(vec![big.clone()]));
    let resp = support::get(&proxy.url("/")).await;
    assert_eq!(resp.status, 502, "a 40 KiB head over the 32 KiB default");
    proxy.stop().await;

    let proxy = TestProxy::start(config(vec![fits]));
    let resp = support::get(&proxy.url("/")).await;
    assert_eq!(resp.status, 200, "a 12 KiB head under the default");
    assert_eq!(resp.headers["x-big"].len(), 12 * 1024);
    proxy.stop().await;

    let mut raised = config(vec![big]);
    raised.limits.max_backend_header_bytes = 64 * 1024;
    let proxy = TestProxy::start(raised);
    let resp = support::get(&proxy.url("/")).await;
    assert_eq!(resp.status, 200, "a 40 KiB head under a 64 KiB limit");
    assert_eq!(
        &resp.body[..],
        &(0..10).map(pattern).collect::<Vec<u8>>()[..]
    );
    proxy.stop().await;
}

#[test]
fn max_backend_header_bytes_is_checked() {
    let pool = "[pools.web]\nbackends = [\"http://127.0.0.1:8080\"]\n";
    let ok = from_text(
        Path::new("test.toml"),
        &format!("[limits]\nmax_backend_header_bytes = \"16KiB\"\n{pool}"),
    )
    .expect("valid");
    assert_eq!(ok.limits.max_backend_header_bytes, 16 * 1024);
    let Err(err) = from_text(
        Path::new("test.toml"),
        &format!("[limits]\nmax_backend_header_bytes = \"4KiB\"\n{pool}"),
    ) else {
        panic!("4 KiB is under hyper's smallest buffer");
    };
    let text = err.to_string();
    assert!(
        text.contains("limits.max_backend_header_bytes") && text.contains("8KiB"),
        "{text}"
    );
}

/// The `SETTINGS_INITIAL_WINDOW_SIZE` switchyard offers a raw HTTP/2 backend when `limits`
/// has `response_buffer` (`None`: the default).
async fn window_offered_to_backends(response_buffer: Option<usize>) -> Option<u32> {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = BackendUrl {
        scheme: Scheme::H2c,
        ..BackendUrl::http("127.0.0.1", listener.local_addr().expect("addr").port())
    };
    let mut config = config(vec![url]);
    if let Some(n) = response_buffer {
        config.limits.connections.response_buffer = n;
    }
    let proxy = TestProxy::start(config);
    let url = proxy.url("/");
    let request = tokio::spawn(async move { support::get(&url).await });
    let (mut stream, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("switchyard connects")
        .expect("accept");
    let mut preface = [0u8; 24];
    stream.read_exact(&mut preface).await.expect("preface");
    let mut head = [0u8; 9];
    stream.read_exact(&mut head).await.expect("frame head");
    assert_eq!(head[3], 4, "the first frame is SETTINGS");
    let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await.expect("settings");
    let window = payload.chunks_exact(6).find_map(|pair| {
        (u16::from_be_bytes([pair[0], pair[1]]) == 4)
            .then(|| u32::from_be_bytes([pair[2], pair[3], pair[4], pair[5]]))
    });
    drop(stream);
    request.abort();
    proxy.stop().await;
    window
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_backend_gets_a_stream_window_of_response_buffer() {
    // hyper's default, 2 MiB per stream, let a backend fill that much for a slow reader.
    assert_eq!(window_offered_to_backends(None).await, Some(32 * 1024));
    assert_eq!(
        window_offered_to_backends(Some(256 * 1024)).await,
        Some(256 * 1024)
    );
}
