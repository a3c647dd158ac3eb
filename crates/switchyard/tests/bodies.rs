//! Bodies through the proxy: large uploads and downloads are streamed both ways, byte for
//! byte, without being buffered whole, and bodies of unknown length arrive intact.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use support::{backend, config, url_for, TestProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MIB: u64 = 1024 * 1024;
/// Size of each upload chunk.
const CHUNK: usize = 64 * 1024;
/// Period of the upload pattern: a prime, so that chunks never line up with it and a lost,
/// repeated or reordered chunk shows.
const PERIOD: usize = 65_521;

/// The large tests in this file run one at a time: the memory test measures the whole test
/// process, which the other large transfers would disturb.
static LARGE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `PERIOD + CHUNK` bytes of a fixed pseudo-random sequence; upload byte `i` is
/// `pattern()[i % PERIOD]`, so every chunk is a zero-copy slice.
fn pattern() -> &'static Bytes {
    static BUF: OnceLock<Bytes> = OnceLock::new();
    BUF.get_or_init(|| {
        let mut state: u32 = 0x9E37_79B9;
        let table: Vec<u8> = (0..PERIOD)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state >> 24) as u8
            })
            .collect();
        (0..PERIOD + CHUNK).map(|i| table[i % PERIOD]).collect()
    })
}

fn upload_slice(offset: u64, len: usize) -> Bytes {
    let start = (offset % PERIOD as u64) as usize;
    pattern().slice(start..start + len)
}

/// True when `data`, found at `offset` of a received body, is what [`Upload`] sent there.
fn matches_upload(offset: u64, data: &[u8]) -> bool {
    let mut at = offset;
    data.chunks(CHUNK).all(|piece| {
        let ok = piece == upload_slice(at, piece.len());
        at += piece.len() as u64;
        ok
    })
}

/// FNV-1a, 64 bits, fed slice by slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn update(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// A request body of `len` pattern bytes, produced chunk by chunk as hyper asks for them.
/// `exact`: announce the length (Content-Length) or not (chunked). Feeds what it sends into
/// `sent`, so the test can compare checksums of what left and what came back.
struct Upload {
    offset: u64,
    len: u64,
    exact: bool,
    sent: Option<Arc<std::sync::Mutex<Fnv>>>,
}

impl Body for Upload {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let remaining = self.len - self.offset;
        if remaining == 0 {
            return Poll::Ready(None);
        }
        let n = remaining.min(CHUNK as u64) as usize;
        let chunk = upload_slice(self.offset, n);
        self.offset += n as u64;
        if let Some(sent) = &self.sent {
            sent.lock().expect("fnv lock").update(&chunk);
        }
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.offset == self.len
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact {
            SizeHint::with_exact(self.len - self.offset)
        } else {
            SizeHint::default()
        }
    }
}

/// Opens a client connection to the proxy that sends [`Upload`] bodies.
async fn upload_client(addr: SocketAddr) -> http1::SendRequest<Upload> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
}

/// Reads a response body frame by frame, calling `each` with every data chunk and its
/// offset; returns the total length.
async fn drain(mut body: Incoming, mut each: impl FnMut(u64, &[u8])) -> u64 {
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.expect("response body frame");
        if let Some(data) = frame.data_ref() {
            each(total, data);
            total += data.len() as u64;
        }
    }
    total
}

/// This process's resident set size in bytes (`VmRSS` in `/proc/self/status`).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_upload_is_mirrored_back_byte_for_byte() {
    let _large = LARGE.lock().await;
    let server = backend("b").await;
    let proxy = TestProxy::start(config(vec![url_for(&server)]));

    let len = 64 * MIB;
    let sent = Arc::new(std::sync::Mutex::new(Fnv::new()));
    let mut client = upload_client(proxy.addr).await;
    let req = http::Request::post("/mirror")
        .header(http::header::HOST, "proxy.test")
        .body(Upload {
            offset: 0,
            len,
            exact: true,
            sent: Some(sent.clone()),
        })
        .expect("request");
    let resp = client.send_request(req).await.expect("response head");
    assert_eq!(resp.status(), 200);

    let mut received = Fnv::new();
    let mut mismatch = None;
    let total = drain(resp.into_body(), |offset, data| {
        received.update(data);
        if mismatch.is_none() && !matches_upload(offset, data) {
            mismatch = Some(offset);
        }
    })
    .await;

    assert_eq!(total, len, "mirrored length");
    assert_eq!(
        mismatch, None,
        "first chunk that differs from what was sent"
    );
    assert_eq!(*sent.lock().expect("fnv lock"), received, "checksums");
    assert_eq!(server.requests(), 1);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_download_arrives_intact() {
    let _large = LARGE.lock().await;
    let server = backend("b").await;
    let proxy = TestProxy::start(config(vec![url_for(&server)]));

    let len = 32 * MIB;
    let mut client = upload_client(proxy.addr).await;
    let req = http::Request::get(format!("/bytes/{len}"))
        .header(http::header::HOST, "proxy.test")
        .body(Upload {
            offset: 0,
            len: 0,
            exact: true,
            sent: None,
        })
        .expect("request");
    let resp = client.send_request(req).await.expect("response head");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get(http::header::CONTENT_LENGTH)
            .map(|v| v.to_str().expect("ascii")),
        Some(len.to_string().as_str()),
        "the backend's Content-Length is kept"
    );

    let mut bad = None;
    let total = drain(resp.into_body(), |offset, data| {
        if bad.is_some() {
            return;
        }
        for (i, b) in data.iter().enumerate() {
            let at = offset + i as u64;
            if *b != test_server::pattern_byte(at) {
                bad = Some(at);
                break;
            }
        }
    })
    .await;
    assert_eq!(total, len, "downloaded length");
    assert_eq!(bad, None, "first byte that differs from the pattern");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_256_mib_does_not_buffer_the_body() {
    let _large = LARGE.lock().await;
    let server = backend("b").await;
    let mut config = config(vec![url_for(&server)]);
    // Larger than the default body limit (100 MiB): this test is about streaming.
    config.limits.max_body_size = 0;
    let proxy = TestProxy::start(config);

    // Warm up (pattern table, connection buffers, allocator arenas) before the baseline.
    let mut client = upload_client(proxy.addr).await;
    let warm = http::Request::post("/mirror")
        .header(http::header::HOST, "proxy.test")
        .body(Upload {
            offset: 0,
            len: 4 * MIB,
            exact: false,
            sent: None,
        })
        .expect("request");
    let resp = client.send_request(warm).await.expect("warm-up");
    assert_eq!(drain(resp.into_body(), |_, _| {}).await, 4 * MIB);

    let baseline = rss_bytes();
    let peak = Arc::new(AtomicU64::new(baseline));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            let mut samples = 0u32;
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                samples += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            samples
        })
    };

    let len = 256 * MIB;
    client.ready().await.expect("connection reusable");
    let req = http::Request::post("/mirror")
        .header(http::header::HOST, "proxy.test")
        .body(Upload {
            offset: 0,
            len,
            exact: false,
            sent: None,
        })
        .expect("request");
    let resp = client.send_request(req).await.expect("response head");
    assert_eq!(resp.status(), 200);
    let total = drain(resp.into_body(), |_, _| {}).await;
    done.store(true, Ordering::Relaxed);
    let samples = sampler.join().expect("sampler");
    assert!(
        samples >= 10,
        "only {samples} RSS samples during the transfer"
    );

    assert_eq!(total, len);
    let growth = peak.load(Ordering::Relaxed).saturating_sub(baseline);
    eprintln!(
        "RSS baseline {} MiB, peak growth {} KiB while streaming {} MiB ({samples} samples)",
        baseline / MIB,
        growth / 1024,
        len / MIB
    );
    assert!(
        growth < 64 * MIB,
        "RSS grew by {} MiB while streaming {} MiB: the body is being buffered",
        growth / MIB,
        len / MIB
    );
    proxy.stop().await;
}

/// Reads one chunked body from `stream` (after the head): returns the decoded bytes and the
/// number of chunks.
async fn read_chunked(stream: &mut TcpStream, mut buf: Vec<u8>) -> (Vec<u8>, usize) {
    let mut body = Vec::new();
    let mut chunks = 0;
    loop {
        let line_end = loop {
            if let Some(p) = buf.windows(2).position(|w| w == b"\r\n") {
                break p;
            }
            read_more(stream, &mut buf).await;
        };
        let line = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
        buf.drain(..line_end + 2);
        if size == 0 {
            // Trailer section: ends with an empty line.
            while !buf.starts_with(b"\r\n") {
                read_more(stream, &mut buf).await;
                if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    buf.drain(..p + 2);
                }
            }
            return (body, chunks);
        }
        while buf.len() < size + 2 {
            read_more(stream, &mut buf).await;
        }
        assert_eq!(&buf[size..size + 2], b"\r\n", "chunk not followed by CRLF");
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
        chunks += 1;
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) {
    let mut tmp = [0u8; 8192];
    let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut tmp))
        .await
        .expect("read timed out")
        .expect("read");
    assert!(n > 0, "connection closed mid-message");
    buf.extend_from_slice(&tmp[..n]);
}

/// Reads a response head; returns it (lowercased) and whatever body bytes came with it.
async fn read_head(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..p + 4]).to_ascii_lowercase();
            return (head, buf[p + 4..].to_vec());
        }
        read_more(stream, &mut buf).await;
    }
}

#[tokio::test]
async fn chunked_response_of_unknown_length_reaches_the_client_intact() {
    let server = backend("b").await;
    let proxy = TestProxy::start(config(vec![url_for(&server)]));

    // A chunked upload to /mirror makes the backend answer with a body of unknown length
    // (chunked), streamed as the proxy forwards the upload.
    let parts: [&[u8]; 4] = [b"first,", b"second chunk,", &[0u8, 1, 2, 255], b"last"];
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    stream
        .write_all(b"POST /mirror HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .expect("write head");
    let mut expected = Vec::new();
    for part in parts {
        let mut chunk = format!("{:x}\r\n", part.len()).into_bytes();
        chunk.extend_from_slice(part);
        chunk.extend_from_slice(b"\r\n");
        stream.write_all(&chunk).await.expect("write chunk");
        expected.extend_from_slice(part);
    }
    stream.write_all(b"0\r\n\r\n").await.expect("write end");

    let (head, rest) = read_head(&mut stream).await;
    assert!(head.starts_with("http/1.1 200 "), "{head}");
    assert!(
        head.contains("\r\ntransfer-encoding: chunked\r\n"),
        "unknown length must be sent chunked: {head}"
    );
    assert!(!head.contains("content-length"), "{head}");
    let (body, chunks) = read_chunked(&mut stream, rest).await;
    assert_eq!(body, expected);
    assert!(chunks >= 1);
    proxy.stop().await;
}

/// A backend that answers without Content-Length or chunked framing and ends the body by
/// closing the connection (RFC 9112 §6.3, rule 8). Returns its port.
async fn close_delimited_backend(body: Vec<u8>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let body = Bytes::from(body);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut tmp).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&tmp[..n]),
                    }
                }
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n")
                    .await;
                for part in body.chunks(7_000) {
                    let _ = sock.write_all(part).await;
                }
                let _ = sock.shutdown().await;
            });
        }
    });
    port
}

fn close_delimited_body() -> Vec<u8> {
    (0..100_000u32).map(|i| (i % 253) as u8).collect()
}

#[tokio::test]
async fn close_delimited_backend_response_reaches_the_client_intact() {
    let body = close_delimited_body();
    let port = close_delimited_backend(body.clone()).await;
    let proxy = TestProxy::start(config(vec![support::url_for_port(port)]));

    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    stream
        .write_all(b"GET /anything HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("write");
    let (head, rest) = read_head(&mut stream).await;
    assert!(head.starts_with("http/1.1 200 "), "{head}");
    assert!(
        head.contains("\r\ntransfer-encoding: chunked\r\n"),
        "a body of unknown length is re-framed as chunked for a keep-alive client: {head}"
    );
    let (received, _) = read_chunked(&mut stream, rest).await;
    assert_eq!(received.len(), body.len());
    assert!(received == body, "body differs");

    // The client connection stays usable after the upstream connection closed.
    stream
        .write_all(b"GET /again HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("write");
    let (head, rest) = read_head(&mut stream).await;
    assert!(head.starts_with("http/1.1 200 "), "{head}");
    let (received, _) = read_chunked(&mut stream, rest).await;
    assert!(received == body, "second body differs");
    proxy.stop().await;
}

#[tokio::test]
async fn body_of_unknown_length_reaches_an_http10_client_close_delimited() {
    let body = close_delimited_body();
    let port = close_delimited_backend(body.clone()).await;
    let proxy = TestProxy::start(config(vec![support::url_for_port(port)]));

    // HTTP/1.0 has no chunked coding: the proxy must delimit the body by closing.
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    stream
        .write_all(b"GET /anything HTTP/1.0\r\n\r\n")
        .await
        .expect("write");
    let (head, mut received) = read_head(&mut stream).await;
    assert!(
        head.starts_with("http/1.0 200 ") || head.starts_with("http/1.1 200 "),
        "{head}"
    );
    assert!(!head.contains("transfer-encoding"), "{head}");
    received.extend(read_rest(&mut stream).await);
    assert_eq!(received.len(), body.len());
    assert!(received == body, "body differs");
    proxy.stop().await;
}

/// Reads until the peer closes (panics after 2 s).
async fn read_rest(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut out))
        .await
        .expect("the connection was not closed")
        .expect("read");
    out
}
