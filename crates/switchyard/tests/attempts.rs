//! One attempt of a request on one backend, from start to the end of the response: what it
//! holds (the breaker's permit, a `max_connections` slot, the load count) is given back
//! however it ends, including when the client goes away or a whole-request timeout drops
//! it; how it ended is judged once, when the response has ended, and the circuit breaker and
//! outlier ejection agree on that judgement (HAProxy's rule: 5xx are failures except 501
//! and 505; a body that breaks off is a failure); the per-try timeout counts only the
//! backend's silence, not a slow client's upload; and an answer a backend gives before it
//! has read the whole request body reaches the client.
//!
//! Every test prints its measured figures; run with `--nocapture` to see them.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use support::backends::{port, served_by};
use support::metrics::{backend_entry, num, BackendRef};
use support::wire::{self, Answer, End};
use support::{backend, config, url_for, url_for_port, TestProxy};
use switchyard::config::BackendUrl;
use switchyard::Config;
use test_server::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Starts a raw backend on a fresh loopback port: every accepted connection is handed to
/// `serve`. Returns its URL and the number of connections accepted.
async fn raw_backend<F, Fut>(serve: F) -> (BackendUrl, Arc<AtomicU64>)
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let accepted = Arc::new(AtomicU64::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve(stream));
        }
    });
    (url_for_port(port), accepted)
}

/// Length a [`broken_body_backend`] announces, and how much of it it sends.
const ANNOUNCED: usize = 100_000;
const SENT: usize = 1_000;

/// A backend that answers every request `200` with `Content-Length: 100000`, sends 1000
/// bytes of it and closes the connection: a body that breaks off halfway.
async fn broken_body_backend() -> (BackendUrl, Arc<AtomicU64>) {
    raw_backend(|mut stream| async move {
        if wire::read_request_head(&mut stream).await.is_none() {
            return;
        }
        let mut resp =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {ANNOUNCED}\r\n\r\n").into_bytes();
        resp.extend(std::iter::repeat_n(b'x', SENT));
        let _ = stream.write_all(&resp).await;
        let _ = stream.shutdown().await;
    })
    .await
}

/// `GET /` on a fresh keep-alive connection, read raw until the answer is complete or the
/// connection closes (2 s at most).
async fn raw_get(addr: SocketAddr) -> Answer {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: switchyard\r\n\r\n")
        .await
        .expect("write");
    wire::read_answer(&mut stream, Duration::from_secs(2)).await
}

/// The breaker and ejection figures of one backend, for messages and printing.
fn figures(entry: &Value) -> String {
    format!(
        "circuit={} consecutive_failures={} failures={} ejected={} ejections={}",
        entry["circuit"],
        entry["consecutive_failures"],
        entry["failures"],
        entry["ejected"],
        entry["ejections"]
    )
}

/// A pool over `backends` without retries, whose breaker opens and whose outlier ejection
/// ejects at the same count, `threshold`, for a minute (so that neither recovers during a
/// test), ejection allowed even for the only backend of the pool.
fn agreeing_config(backends: Vec<BackendUrl>, threshold: u32) -> Config {
    let mut cfg = config(backends);
    let pool = &mut cfg.pools[0];
    pool.retries = 0;
    pool.breaker.failure_threshold = threshold;
    pool.breaker.open_duration = Duration::from_secs(60);
    pool.outlier.consecutive_5xx = threshold;
    pool.outlier.ejection_time = Duration::from_secs(60);
    pool.outlier.max_ejection_percent = 100;
    cfg
}

/// The `/metrics` entry of `backend` once `done` holds for it, or as it is after a second.
/// An attempt is judged when its response has ended, which may come a moment after the
/// client has read the last byte.
async fn entry_when(
    proxy: &TestProxy,
    backend: impl BackendRef + Copy,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let entry = backend_entry(&proxy.metrics().await, backend).clone();
        if done(&entry) || Instant::now() >= deadline {
            return entry;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------------------------------
// The per-try timeout counts the backend's silence, not the client's upload
// ---------------------------------------------------------------------------------------

/// `n` bytes of lowercase ASCII (so that `/echo` gives them back verbatim in its JSON).
fn ascii_body(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_uploads_do_not_open_circuits() {
    const CLIENTS: usize = 12;
    const BODY: usize = 6 * 1024;
    const PIECE: usize = 1024;
    // 1 KiB every 500 ms: 2 KiB/s, 2.5 s per upload, far over the per-try timeout.
    const PAUSE: Duration = Duration::from_millis(500);
    let per_try = Duration::from_millis(300);
    let read_timeout = Duration::from_millis(1500);

    let (a, b) = (backend("a").await, backend("b").await);
    let mut cfg = config(vec![url_for(&a), url_for(&b)]);
    cfg.pools[0].timeout = per_try;
    cfg.listeners[0].read_timeout = read_timeout;
    let proxy = TestProxy::start(cfg);
    let addr = proxy.addr;
    let body = ascii_body(BODY);

    // Half announce their length, half send chunks.
    let uploads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let body = body.clone();
            tokio::spawn(async move {
                let (head, pieces) = if i % 2 == 0 {
                    (
                        format!(
                            "POST /echo HTTP/1.1\r\nHost: switchyard\r\nContent-Length: {BODY}\r\n\
                             Connection: close\r\n\r\n"
                        ),
                        body.chunks(PIECE).map(Bytes::copy_from_slice).collect(),
                    )
                } else {
                    (
                        "POST /echo HTTP/1.1\r\nHost: switchyard\r\nTransfer-Encoding: chunked\r\n\
                         Connection: close\r\n\r\n"
                            .to_owned(),
                        wire::chunked(&body, PIECE),
                    )
                };
                let started = Instant::now();
                let answer = wire::upload(addr, head, pieces, PAUSE, Duration::from_secs(4)).await;
                (i, answer, started.elapsed())
            })
        })
        .collect();

    // A client that sends a sixth of its body and then nothing: the read timeout is its own
    // fault, not the backend's.
    let staller = tokio::spawn(async move {
        let head =
            format!("POST /echo HTTP/1.1\r\nHost: switchyard\r\nContent-Length: {BODY}\r\n\r\n");
        let started = Instant::now();
        let answer = wire::upload(
            addr,
            head,
            vec![Bytes::from(vec![b'z'; PIECE])],
            Duration::ZERO,
            Duration::from_secs(4),
        )
        .await;
        (answer, started.elapsed())
    });

    let mut statuses = std::collections::BTreeMap::<String, usize>::new();
    let mut slowest = Duration::ZERO;
    let mut bad = Vec::new();
    for upload in uploads {
        let (i, answer, took) = upload.await.expect("upload task");
        *statuses.entry(answer.summary()).or_default() += 1;
        slowest = slowest.max(took);
        let ok = match answer.status {
            Some(200) => {
                answer.end == End::Complete
                    && serde_json::from_slice::<Value>(&answer.body).is_ok_and(|echo| {
                        echo["body"].as_str() == Some(&*String::from_utf8_lossy(&body))
                    })
            }
            Some(408) => true,
            _ => false,
        };
        if !ok {
            bad.push(format!(
                "client {i}: {} after {:.0} ms: {}",
                answer.summary(),
                ms(took),
                answer.text().trim()
            ));
        }
    }
    let (stalled, stalled_took) = staller.await.expect("staller task");

    let metrics = proxy.metrics().await;
    let entries: Vec<String> = [&a, &b]
        .iter()
        .map(|s| figures(backend_entry(&metrics, *s)))
        .collect();
    println!(
        "{CLIENTS} uploads of {BODY} B at 2 KiB/s, per-try timeout {per_try:?}, read timeout \
         {read_timeout:?}: answers {statuses:?}, slowest {:.0} ms; client stalling mid-body: {} \
         after {:.0} ms; backends: [{}]",
        ms(slowest),
        stalled.summary(),
        ms(stalled_took),
        entries.join("; ")
    );
    assert!(
        bad.is_empty(),
        "answers other than 200 with the whole body, or 408: {bad:#?}"
    );
    let full = statuses
        .iter()
        .filter(|(k, _)| k.starts_with("200 "))
        .map(|(_, n)| n)
        .sum::<usize>();
    assert!(
        full > CLIENTS / 2,
        "most uploads pause far less than the read timeout and must get their answer: {statuses:?}"
    );
    assert_eq!(
        stalled.status,
        Some(408),
        "a client stalling mid-body gets 408: {} {}",
        stalled.summary(),
        stalled.text()
    );
    assert!(
        stalled_took >= read_timeout - Duration::from_millis(50),
        "408 after {stalled_took:?}, before the read timeout ({read_timeout:?})"
    );
    for server in [&a, &b] {
        let entry = backend_entry(&metrics, server);
        assert_eq!(entry["circuit"], "closed", "{entry:#}");
        assert_eq!(entry["consecutive_failures"], 0, "{entry:#}");
        assert_eq!(
            entry["failures"], 0,
            "slow clients are not the backend's fault: {entry:#}"
        );
    }
    proxy.stop().await;
}

// ---------------------------------------------------------------------------------------
// An answer given before the request body was read reaches the client
// ---------------------------------------------------------------------------------------

/// How an [`early_answer_backend`] closes its connection after answering.
#[derive(Clone, Copy, Debug)]
enum Close {
    /// At once, with the request body unread in its receive buffer: the kernel resets the
    /// connection (RST) instead of closing it (FIN).
    AtOnce,
    /// Lingering, as nginx's `lingering_close`: FIN (shutdown of its sending side), then it
    /// reads and discards what still comes for up to a second before closing.
    Lingering,
}

const EARLY_BODY: &str = "upload refused: too large\n";

/// A backend that reads only the head of each request and answers `413` with
/// `Connection: close`, whatever body follows, then closes as `close` says.
async fn early_answer_backend(close: Close) -> BackendUrl {
    let (url, _) = raw_backend(move |mut stream| async move {
        if wire::read_request_head(&mut stream).await.is_none() {
            return;
        }
        let resp = format!(
            "HTTP/1.1 413 Payload Too Large\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{EARLY_BODY}",
            EARLY_BODY.len()
        );
        if stream.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
        if let Close::Lingering = close {
            let _ = stream.shutdown().await;
            let mut sink = vec![0u8; 64 * 1024];
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
            })
            .await;
        }
        drop(stream);
    })
    .await;
    url
}

/// Size of the upload the early answer refuses.
const LARGE: usize = 20 * 1024 * 1024;

/// Tries of each variant; `SWITCHYARD_EARLY_ANSWER_TRIES` raises it for measuring rates.
fn early_answer_tries() -> usize {
    std::env::var("SWITCHYARD_EARLY_ANSWER_TRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

/// Streams a 20 MB POST to `addr` as fast as it is read, reading the answer meanwhile.
async fn large_upload(addr: SocketAddr) -> Answer {
    let chunk = Bytes::from(vec![b'u'; 64 * 1024]);
    let pieces = vec![chunk; LARGE / (64 * 1024)];
    let head =
        format!("POST /upload HTTP/1.1\r\nHost: switchyard\r\nContent-Length: {LARGE}\r\n\r\n");
    wire::upload(addr, head, pieces, Duration::ZERO, Duration::from_secs(3)).await
}

/// `tries` large uploads to `addr`, one after the other; the answers, summarized and
/// counted.
async fn early_answers(
    addr: SocketAddr,
    tries: usize,
) -> (std::collections::BTreeMap<String, usize>, usize) {
    let mut seen = std::collections::BTreeMap::new();
    let mut refused = 0;
    for _ in 0..tries {
        let answer = large_upload(addr).await;
        let whole_413 = answer.status == Some(413)
            && answer.end == End::Complete
            && answer.text() == EARLY_BODY;
        refused += usize::from(whole_413);
        *seen.entry(answer.summary()).or_default() += 1;
    }
    (seen, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_answer_reaches_the_client() {
    let tries = early_answer_tries();
    let mut failures = Vec::new();
    for close in [Close::AtOnce, Close::Lingering] {
        let url = early_answer_backend(close).await;
        // The backend on its own: the client gets every 413, so whatever the proxy loses
        // is the proxy's.
        let direct = SocketAddr::from(([127, 0, 0, 1], url.port));
        let (direct_seen, direct_413) = early_answers(direct, tries).await;
        let proxy = TestProxy::start(config(vec![url.clone()]));
        let (seen, refused) = early_answers(proxy.addr, tries).await;
        let metrics = proxy.metrics().await;
        let entry = backend_entry(&metrics, &url);
        println!(
            "early 413 to a {} MB upload, backend closing {close:?}: direct {direct_413}/{tries} \
             ({direct_seen:?}); through switchyard {refused}/{tries} ({seen:?}); backend \
             responses={} errors={}; {}",
            LARGE >> 20,
            entry["responses"],
            entry["errors"],
            figures(entry)
        );
        assert_eq!(
            direct_413, tries,
            "{close:?}: the backend alone: {direct_seen:?}"
        );
        if refused != tries {
            failures.push(format!(
                "{close:?}: {refused}/{tries} got the 413: {seen:?}"
            ));
        }
        if entry["failures"] != 0 {
            failures.push(format!(
                "{close:?}: a backend refusing an upload is not failing: {}",
                figures(entry)
            ));
        }
        proxy.stop().await;
    }
    assert!(
        failures.is_empty(),
        "the backend's early 413 must reach the client every time: {failures:#?}"
    );
}

// ---------------------------------------------------------------------------------------
// Dropped requests give back what their attempt held
// ---------------------------------------------------------------------------------------

/// Sends `GET path` on a fresh connection and closes it after `after` without waiting for
/// the answer, as a client that gives up does.
async fn abandon(addr: SocketAddr, path: &str, after: Duration) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: switchyard\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    tokio::time::sleep(after).await;
    drop(stream);
}

/// `outstanding` of every backend, in configuration order.
fn outstanding(metrics: &Value) -> Vec<u64> {
    metrics["backends"]
        .as_array()
        .expect("backends array")
        .iter()
        .map(|b| num(&b["outstanding"]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_and_timed_out_requests_give_their_connection_slot_back() {
    let slow = backend("slow").await;
    let mut cfg = config(vec![url_for(&slow)]);
    let pool = &mut cfg.pools[0];
    pool.max_connections = Some(1);
    pool.queue_timeout = Duration::from_millis(1000);
    pool.request_timeout = Some(Duration::from_millis(200));
    let proxy = TestProxy::start(cfg);

    // 20 clients ask for a 3 s answer and give up after 100 ms: one holds the only slot,
    // the others wait in the queue.
    let gave_up: Vec<_> = (0..20)
        .map(|_| {
            tokio::spawn(abandon(
                proxy.addr,
                "/delay/3000",
                Duration::from_millis(100),
            ))
        })
        .collect();
    for task in gave_up {
        task.await.expect("client");
    }
    assert_eventually!(
        Duration::from_secs(2),
        || async { proxy.metrics().await["in_flight"] == 0 },
        "the abandoned requests are still in flight"
    );
    let after_abandon = proxy.metrics().await;

    // The whole-request timeout drops the next slow request.
    let started = Instant::now();
    let timed_out = support::get(&proxy.url("/delay/3000")).await;
    let timed_out_took = started.elapsed();

    // Then ordinary requests must find the slot free.
    let mut normal = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let resp = support::get(&proxy.url("/")).await;
        normal.push((
            resp.status,
            resp.text().trim().to_owned(),
            started.elapsed(),
        ));
    }
    let released = support::eventually(Duration::from_secs(2), || async {
        outstanding(&proxy.metrics().await) == [0]
    })
    .await;
    let metrics = proxy.metrics().await;
    println!(
        "max_connections 1: 20 clients giving up after 100 ms -> cancelled={} outstanding={:?}; \
         request_timeout 200 ms -> {} after {:.0} ms; then 5 GETs -> {:?}; outstanding at the \
         end {:?}",
        after_abandon["cancelled"],
        outstanding(&after_abandon),
        timed_out.status,
        ms(timed_out_took),
        normal
            .iter()
            .map(|(s, _, t)| format!("{s} in {:.0} ms", ms(*t)))
            .collect::<Vec<_>>(),
        outstanding(&metrics)
    );
    assert_eq!(timed_out.status, 504, "{}", timed_out.text());
    assert!(
        timed_out_took < Duration::from_millis(800),
        "the request timeout fired after {timed_out_took:?}"
    );
    for (i, (status, text, took)) in normal.iter().enumerate() {
        assert_eq!(*status, 200, "request {i} after the abandoned ones: {text}");
        assert!(
            *took < Duration::from_millis(500),
            "request {i} waited {took:?} for a slot nobody holds"
        );
    }
    assert!(
        released,
        "outstanding never went back to 0: {:#}",
        metrics["backends"]
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_requests_leave_no_outstanding_load() {
    let (a, b) = (backend("a").await, backend("b").await);
    let mut cfg = config(vec![url_for(&a), url_for(&b)]);
    cfg.pools[0].policy = switchyard::config::Policy::LeastRequest;
    let proxy = TestProxy::start(cfg);

    let gave_up: Vec<_> = (0..10)
        .map(|_| {
            tokio::spawn(abandon(
                proxy.addr,
                "/delay/3000",
                Duration::from_millis(100),
            ))
        })
        .collect();
    for task in gave_up {
        task.await.expect("client");
    }
    let reached = a.requests() + b.requests();
    let released = support::eventually(Duration::from_secs(2), || async {
        outstanding(&proxy.metrics().await) == [0, 0]
    })
    .await;
    let metrics = proxy.metrics().await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(support::get(&proxy.url("/")).await.status);
    }
    println!(
        "least_request, 2 backends: 10 clients giving up after 100 ms ({reached} reached a \
         backend) -> cancelled={} outstanding {:?}; then 4 GETs -> {statuses:?}",
        metrics["cancelled"],
        outstanding(&metrics)
    );
    assert!(
        released,
        "outstanding should be [0, 0]: {:#}",
        metrics["backends"]
    );
    assert_eq!(statuses, [200; 4]);
    proxy.stop().await;
}

// ---------------------------------------------------------------------------------------
// A body that breaks off is a failure
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn body_breaking_off_halfway_counts_as_a_breaker_failure() {
    let (url, accepted) = broken_body_backend().await;
    let mut cfg = config(vec![url.clone()]);
    cfg.pools[0].retries = 0;
    cfg.pools[0].breaker.failure_threshold = 3;
    cfg.pools[0].breaker.open_duration = Duration::from_secs(60);
    let proxy = TestProxy::start(cfg);

    let mut seen = Vec::new();
    for i in 1..=3 {
        let answer = raw_get(proxy.addr).await;
        seen.push(format!(
            "{} with {} of {:?} bytes",
            answer.summary(),
            answer.body.len(),
            answer.content_length
        ));
        assert_eq!(
            answer.status,
            Some(200),
            "request {i}: {}",
            answer.summary()
        );
        assert_eq!(
            answer.content_length,
            Some(ANNOUNCED),
            "request {i}: {}",
            answer.head
        );
        assert!(
            answer.body.len() < ANNOUNCED,
            "request {i}: a clean, complete body from a backend that broke it off"
        );
        assert!(
            matches!(answer.end, End::Eof | End::Error(_)),
            "request {i}: the connection must close after a truncated body, got {:?}",
            answer.end
        );
    }
    let entry = entry_when(&proxy, &url, |e| e["circuit"] == "open").await;
    let fourth = raw_get(proxy.addr).await;
    println!(
        "backend sending {SENT} of {ANNOUNCED} bytes, 3 GETs: {seen:?}; {}; 4th GET -> {} \
         (backend connections {})",
        figures(&entry),
        fourth.summary(),
        accepted.load(Ordering::SeqCst)
    );
    assert_eq!(
        entry["circuit"], "open",
        "three broken bodies, threshold 3: {entry:#}"
    );
    assert_eq!(entry["consecutive_failures"], 3, "{entry:#}");
    assert_eq!(entry["failures"], 3, "{entry:#}");
    assert_eq!(
        fourth.status,
        Some(503),
        "the open circuit answers: {}",
        fourth.summary()
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        3,
        "the open circuit kept the 4th away"
    );
    proxy.stop().await;
}

// ---------------------------------------------------------------------------------------
// The breaker and outlier ejection agree on what failed
// ---------------------------------------------------------------------------------------

/// `GET /` answered by `server` itself with `status`; then its `/metrics` entry once its
/// breaker counts `consecutive` failures (see [`entry_when`]).
async fn get_counted(
    proxy: &TestProxy,
    server: &TestServer,
    status: u16,
    consecutive: u64,
) -> Value {
    let resp = support::get(&proxy.url("/")).await;
    assert_eq!(resp.status, status, "{}", resp.text());
    assert_eq!(served_by(&resp), port(server), "the backend's own answer");
    entry_when(proxy, server, |e| e["consecutive_failures"] == consecutive).await
}

#[tokio::test]
async fn breaker_and_ejection_count_500s_alike_and_a_success_resets_both() {
    let unwell = backend("unwell").await;
    unwell.set_status(500);
    let proxy = TestProxy::start(agreeing_config(vec![url_for(&unwell)], 3));
    let mut steps = Vec::new();

    // Two 500s: both count two.
    for i in 1..=2 {
        let entry = get_counted(&proxy, &unwell, 500, i).await;
        steps.push(format!("500 -> {}", figures(&entry)));
        assert_eq!(
            num(&entry["consecutive_failures"]),
            i,
            "after 500 #{i}: {entry:#}"
        );
        assert_eq!(entry["ejected"], false, "after 500 #{i}: {entry:#}");
        assert_eq!(entry["circuit"], "closed", "after 500 #{i}: {entry:#}");
    }
    // A success resets both counts.
    unwell.set_status(200);
    let entry = get_counted(&proxy, &unwell, 200, 0).await;
    steps.push(format!("200 -> {}", figures(&entry)));
    assert_eq!(entry["consecutive_failures"], 0, "{entry:#}");
    // Two more 500s: two again, not four (ejection would have come at the first of them had
    // the success not reset its count).
    unwell.set_status(500);
    for i in 1..=2 {
        let entry = get_counted(&proxy, &unwell, 500, i).await;
        steps.push(format!("500 -> {}", figures(&entry)));
        assert_eq!(
            num(&entry["consecutive_failures"]),
            i,
            "after the reset, 500 #{i}: {entry:#}"
        );
        assert_eq!(
            entry["ejected"], false,
            "after the reset, 500 #{i}: {entry:#}"
        );
    }
    // The third in a row: the circuit opens and the backend is ejected, together.
    let resp = support::get(&proxy.url("/")).await;
    assert_eq!(
        (resp.status, served_by(&resp)),
        (500, port(&unwell)),
        "the third 500 in a row is still relayed"
    );
    let entry = entry_when(&proxy, &unwell, |e| {
        e["consecutive_failures"] == 3 && e["ejected"] == true
    })
    .await;
    steps.push(format!("500 -> {}", figures(&entry)));
    let before = unwell.requests();
    let next = support::get(&proxy.url("/")).await;
    println!(
        "threshold 3 for breaker and ejection, backend answering 500/200: {steps:?}; next GET \
         -> {} (backend hit {} times)",
        next.status,
        unwell.requests() - before
    );
    assert_eq!(entry["circuit"], "open", "{entry:#}");
    assert_eq!(entry["ejected"], true, "{entry:#}");
    assert_eq!(entry["ejections"], 1, "{entry:#}");
    assert_eq!(entry["failures"], 5, "five 500s: {entry:#}");
    assert_eq!(next.status, 503, "{}", next.text());
    assert_eq!(unwell.requests(), before);
    proxy.stop().await;
}

#[tokio::test]
async fn status_501_and_505_count_for_neither_breaker_nor_ejection() {
    let server = backend("odd").await;
    let proxy = TestProxy::start(agreeing_config(vec![url_for(&server)], 3));
    let mut statuses = Vec::new();
    for status in [501, 505] {
        server.set_status(status);
        for _ in 0..4 {
            let resp = support::get(&proxy.url("/")).await;
            statuses.push((resp.status, served_by(&resp) == port(&server)));
        }
    }
    let entry = entry_when(&proxy, &server, |e| e["responses"] == 8).await;
    println!(
        "threshold 3, four 501s then four 505s: (status, from the backend) {statuses:?}; {}",
        figures(&entry)
    );
    let expected: Vec<(u16, bool)> = [(501, true); 4]
        .into_iter()
        .chain([(505, true); 4])
        .collect();
    assert_eq!(statuses, expected, "every answer relayed from the backend");
    assert_eq!(entry["consecutive_failures"], 0, "{entry:#}");
    assert_eq!(entry["failures"], 0, "{entry:#}");
    assert_eq!(entry["circuit"], "closed", "{entry:#}");
    assert_eq!(entry["ejected"], false, "{entry:#}");
    assert_eq!(entry["ejections"], 0, "{entry:#}");
    proxy.stop().await;
}

#[tokio::test]
async fn body_breaking_off_counts_for_breaker_and_ejection_alike() {
    let (url, _) = broken_body_backend().await;
    let proxy = TestProxy::start(agreeing_config(vec![url.clone()], 3));
    let mut steps = Vec::new();
    for i in 1..=3 {
        let answer = raw_get(proxy.addr).await;
        assert_eq!(
            answer.status,
            Some(200),
            "request {i}: {}",
            answer.summary()
        );
        assert!(answer.body.len() < ANNOUNCED, "request {i}: complete body");
        let entry = entry_when(&proxy, &url, |e| e["consecutive_failures"] == i).await;
        steps.push(figures(&entry));
        assert_eq!(
            num(&entry["consecutive_failures"]),
            i,
            "after broken body #{i}: {entry:#}"
        );
        if i < 3 {
            assert_eq!(entry["ejected"], false, "after broken body #{i}: {entry:#}");
        }
    }
    let entry = entry_when(&proxy, &url, |e| e["ejected"] == true).await;
    println!("threshold 3 for breaker and ejection, three broken bodies: {steps:?}");
    assert_eq!(entry["circuit"], "open", "{entry:#}");
    assert_eq!(entry["ejected"], true, "{entry:#}");
    assert_eq!(entry["ejections"], 1, "{entry:#}");
    proxy.stop().await;
}
