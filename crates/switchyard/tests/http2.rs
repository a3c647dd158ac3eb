//! HTTP/2 both ways, cleartext: h2c clients (hyper's, and curl with prior knowledge) on the
//! same listener as HTTP/1.1 ones, each stream one request; `:authority` becoming the `Host`
//! of an HTTP/1.1 backend; connection-specific headers crossing in neither direction;
//! `h2c://` backends multiplexed (many requests, few connections; a second connection past
//! the stream limit, or past the backend's own); connections the backend GOAWAYs or
//! refuses streams on replaced; trailers and gRPC-style streaming passing through; a slow stream
//! holding up no other stream of its connection, on either runtime.

mod support;

use std::time::Duration;

use std::future::Future;

use bytes::Bytes;
use http_body_util::BodyExt;
use support::h2::{channel_body, full, H2Backend, H2Client};
use support::{backend, config, url_for, Client, TestProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn echo_json(resp: &support::Resp) -> serde_json::Value {
    serde_json::from_slice(&resp.body).expect("echo JSON")
}

fn header<'a>(echo: &'a serde_json::Value, name: &str) -> Vec<&'a str> {
    echo["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .filter(|h| h[0] == name)
        .filter_map(|h| h[1].as_str())
        .collect()
}

#[tokio::test]
async fn an_h2c_client_reaches_an_http1_backend_with_its_authority_as_host() {
    let server = backend("one").await;
    let proxy = TestProxy::start(config(vec![url_for(&server)]));

    let mut client = H2Client::connect(proxy.addr).await;
    let req = http::Request::get(format!("http://api.example:{}/echo?x=1", proxy.addr.port()))
        .header("te", "trailers")
        .header("x-custom", "kept")
        .body(full(""))
        .expect("request");
    let got = client.fetch(req).await.expect("answer");
    let echo = echo_json(&got.resp);
    println!(
        "h2c client -> HTTP/1.1 backend: {:?} {}, backend saw {} Host {:?}, te {:?}",
        got.version,
        got.resp.status,
        echo["version"],
        header(&echo, "host"),
        header(&echo, "te")
    );
    assert_eq!(got.version, http::Version::HTTP_2);
    assert_eq!(got.resp.status, 200);
    assert_eq!(echo["version"], "HTTP/1.1");
    assert_eq!(echo["path"], "/echo");
    assert_eq!(echo["query"], "x=1");
    let authority = format!("api.example:{}", proxy.addr.port());
    assert_eq!(header(&echo, "host"), [authority.as_str()]);
    assert_eq!(header(&echo, "x-forwarded-host"), [authority.as_str()]);
    assert_eq!(header(&echo, "x-forwarded-proto"), ["http"]);
    assert_eq!(header(&echo, "x-custom"), ["kept"]);
    // TE is hop-by-hop for HTTP/1.1: kept only towards HTTP/2 backends.
    assert!(header(&echo, "te").is_empty());
    assert!(got.resp.headers.get("connection").is_none());
    proxy.stop().await;
}

/// An HTTP/1.1 backend answering with every kind of connection-specific header.
async fn hop_by_hop_backend() -> switchyard::config::BackendUrl {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let resp = "HTTP/1.1 200 OK\r\nconnection: x-hop, keep-alive\r\n\
                            keep-alive: timeout=5\r\nx-hop: 1\r\nproxy-connection: keep-alive\r\n\
                            upgrade: h2c\r\nx-end-to-end: yes\r\ncontent-length: 2\r\n\r\nok";
                let _ = stream.write_all(resp.as_bytes()).await;
            });
        }
    });
    support::url_for_port(port)
}

#[tokio::test]
async fn connection_specific_headers_cross_in_neither_direction() {
    // Backend -> HTTP/2 client.
    let url = hop_by_hop_backend().await;
    let proxy = TestProxy::start(config(vec![url]));
    let mut client = H2Client::connect(proxy.addr).await;
    let got = client.get("/").await;
    let names: Vec<&str> = got.resp.headers.keys().map(|k| k.as_str()).collect();
    assert_eq!(got.resp.status, 200);
    assert_eq!(got.resp.headers["x-end-to-end"], "yes");
    for hop in [
        "connection",
        "keep-alive",
        "x-hop",
        "proxy-connection",
        "upgrade",
    ] {
        assert!(!names.contains(&hop), "{hop} reached the client: {names:?}");
    }
    proxy.stop().await;

    // HTTP/1.1 client -> HTTP/2 backend: only `te: trailers` of the connection's headers.
    let backend = H2Backend::start(
        None,
        |req: http::Request<hyper::body::Incoming>| async move {
            let names: Vec<String> = req
                .headers()
                .iter()
                .map(|(k, v)| format!("{k}={}", v.to_str().unwrap_or("?")))
                .collect();
            let authority = req.uri().authority().map(|a| a.to_string());
            http::Response::new(full(format!("{authority:?} {}", names.join(" "))))
        },
    )
    .await;
    let proxy = TestProxy::start(config(vec![backend.url()]));
    let mut h1 = Client::connect(proxy.addr).await;
    let resp = h1
        .send(
            http::Request::get("/")
                .header("host", "shop.example")
                .header("connection", "x-hop, keep-alive")
                .header("x-hop", "1")
                .header("keep-alive", "timeout=5")
                .header("te", "trailers, deflate")
                .body(Bytes::new())
                .expect("request"),
        )
        .await
        .expect("answer");
    let seen = resp.text();
    println!("HTTP/1.1 client -> h2c backend saw: {seen}");
    assert_eq!(resp.status, 200, "{seen}");
    assert!(seen.starts_with("Some(\"shop.example\")"), "{seen}");
    assert!(seen.contains("te=trailers"), "{seen}");
    for hop in ["connection=", "keep-alive=", "x-hop=", "host="] {
        let crossed = seen.split(' ').any(|h| h.starts_with(hop));
        assert!(!crossed, "{hop} reached the backend: {seen}");
    }
    proxy.stop().await;
}

#[tokio::test]
async fn http1_and_http2_clients_share_a_listener() {
    let server = backend("shared").await;
    let proxy = TestProxy::start(config(vec![url_for(&server)]));
    let mut h1 = Client::connect(proxy.addr).await;
    let mut h2 = H2Client::connect(proxy.addr).await;
    for _ in 0..3 {
        assert_eq!(h1.get("/").await.text(), "shared\n");
        let got = h2.get("/").await;
        assert_eq!(
            (got.version, got.resp.text()),
            (http::Version::HTTP_2, "shared\n".into())
        );
    }
    // curl, with prior knowledge.
    let url = proxy.url("/echo");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args([
                "-s",
                "-m",
                "5",
                "--http2-prior-knowledge",
                "-w",
                "\n%{http_version}",
                &url,
            ])
            .output()
    })
    .await
    .expect("join")
    .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, version) = text.rsplit_once('\n').expect("curl output");
    let echo: serde_json::Value = serde_json::from_str(body).expect("echo JSON");
    println!(
        "one listener: 3 HTTP/1.1 + 3 HTTP/2 requests answered; curl --http2-prior-knowledge \
         spoke HTTP/{version}, backend saw Host {:?}",
        header(&echo, "host")
    );
    assert_eq!(version, "2");
    assert_eq!(header(&echo, "host"), [proxy.addr.to_string().as_str()]);
    assert_eq!(server.requests(), 7);
    proxy.stop().await;
}

/// A backend answering every request after `delay`, with the request's path.
async fn slow_h2_backend(max_streams: Option<u32>, delay: Duration) -> H2Backend {
    H2Backend::start(
        max_streams,
        move |req: http::Request<hyper::body::Incoming>| async move {
            tokio::time::sleep(delay).await;
            http::Response::new(full(req.uri().path().to_owned()))
        },
    )
    .await
}

/// Sends `n` requests at once through `proxy` on one HTTP/2 client connection; the
/// statuses.
async fn concurrent(proxy: &TestProxy, n: usize) -> Vec<u16> {
    let client = H2Client::connect(proxy.addr).await;
    let mut tasks = Vec::new();
    for i in 0..n {
        let mut client = client.clone();
        tasks.push(tokio::spawn(async move {
            client.get(&format!("/r{i}")).await.resp.status
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("task"));
    }
    statuses
}

#[tokio::test]
async fn an_h2c_backend_sees_one_connection_for_many_concurrent_requests() {
    let backend = slow_h2_backend(None, Duration::from_millis(200)).await;
    let mut cfg = config(vec![backend.url()]);
    cfg.workers = 1;
    let proxy = TestProxy::start(cfg);
    let statuses = concurrent(&proxy, 50).await;
    println!(
        "50 concurrent requests, one worker: {} connection(s) to the h2c backend, {} streams at once",
        backend.connections(),
        backend.peak_streams()
    );
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(
        backend.connections() <= 2,
        "{} connections",
        backend.connections()
    );
    assert!(
        backend.peak_streams() >= 25,
        "{} at once",
        backend.peak_streams()
    );
    // The connection stays for the next requests.
    concurrent(&proxy, 10).await;
    assert!(backend.connections() <= 2);
    proxy.stop().await;
}

#[tokio::test]
async fn the_stream_limit_opens_further_connections() {
    let backend = slow_h2_backend(None, Duration::from_millis(300)).await;
    let mut cfg = config(vec![backend.url()]);
    cfg.workers = 1;
    cfg.pools[0].max_streams_per_connection = 10;
    let proxy = TestProxy::start(cfg);
    let statuses = concurrent(&proxy, 25).await;
    println!(
        "25 concurrent requests, 10 streams per connection: {} connections",
        backend.connections()
    );
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(backend.connections(), 3);
    proxy.stop().await;

    // A backend allowing fewer streams than the pool does is obeyed too.
    let backend = slow_h2_backend(Some(4), Duration::from_millis(300)).await;
    let mut cfg = config(vec![backend.url()]);
    cfg.workers = 1;
    let proxy = TestProxy::start(cfg);
    // The limit is learnt from the backend's SETTINGS, which the connection has read by the
    // time it sends a second request; then a burst.
    assert_eq!(concurrent(&proxy, 1).await, [200]);
    assert_eq!(concurrent(&proxy, 1).await, [200]);
    let statuses = concurrent(&proxy, 10).await;
    println!(
        "10 concurrent requests to a backend allowing 4 streams: {} connections",
        backend.connections()
    );
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // At least one more than the first: a new connection's own limit is known only once it
    // has read the backend's SETTINGS, so its first burst may go on it rather than open a
    // third.
    assert!(backend.connections() >= 2, "{}", backend.connections());
    proxy.stop().await;
}

#[tokio::test]
async fn the_protocol_key_speaks_h2_to_an_http_url() {
    let server = backend("over h2c").await;
    let url = url_for(&server);
    let text = format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n[rate_limit]\nrequests = 0\n\
         [pools.p]\nbackends = [\"{url}\"]\nprotocol = \"h2\"\n"
    );
    let cfg = switchyard::config::validate::from_text(std::path::Path::new("t.toml"), &text)
        .expect("config");
    let proxy = TestProxy::start(cfg);
    let resp = support::get(&proxy.url("/echo")).await;
    let echo = echo_json(&resp);
    println!(
        "protocol = \"h2\" on {url}: backend saw {}",
        echo["version"]
    );
    assert_eq!(echo["version"], "HTTP/2.0");
    assert_eq!(header(&echo, "host"), Vec::<&str>::new());
    assert_eq!(echo["authority"], proxy.addr.to_string());
    proxy.stop().await;
}

/// A gRPC-looking backend: echoes each request body frame as it arrives (as a server
/// streaming its answers), then trailers with `grpc-status: 0` and custom metadata.
async fn grpc_backend() -> H2Backend {
    H2Backend::start(
        None,
        |req: http::Request<hyper::body::Incoming>| async move {
            let te = req.headers().get("te").cloned();
            let mut body = req.into_body();
            let (tx, out) = channel_body();
            tokio::spawn(async move {
                while let Some(Ok(frame)) = body.frame().await {
                    if let Ok(data) = frame.into_data() {
                        let _ = tx.send(http_body::Frame::data(data)).await;
                    }
                }
                let mut trailers = http::HeaderMap::new();
                trailers.insert("grpc-status", "0".parse().expect("value"));
                trailers.insert("grpc-message", "done".parse().expect("value"));
                trailers.insert("x-trailing-metadata", "kept".parse().expect("value"));
                let _ = tx.send(http_body::Frame::trailers(trailers)).await;
            });
            let mut resp = http::Response::new(out);
            let headers = resp.headers_mut();
            headers.insert("content-type", "application/grpc".parse().expect("value"));
            if let Some(te) = te {
                headers.insert("x-seen-te", te);
            }
            resp
        },
    )
    .await
}

/// A gRPC message: not compressed, 4-byte length, payload.
fn message(payload: &[u8]) -> Bytes {
    let mut out = vec![0u8];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    Bytes::from(out)
}

#[tokio::test]
async fn a_grpc_call_streams_both_ways_unbuffered_and_keeps_its_trailers() {
    let backend = grpc_backend().await;
    let proxy = TestProxy::start(config(vec![backend.url()]));
    let mut client = H2Client::connect(proxy.addr).await;
    let (tx, body) = channel_body();
    let req = http::Request::post("/pkg.Echo/Chat")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body)
        .expect("request");
    let resp = client.send(req).await.expect("response head");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-seen-te"], "trailers");
    let mut answers = resp.into_body();
    // Each message comes back before the next one is sent: nothing waits for the whole body.
    let mut rounds = Vec::new();
    for i in 0..5u8 {
        let sent = message(&[i; 10]);
        let start = tokio::time::Instant::now();
        tx.send(http_body::Frame::data(sent.clone()))
            .await
            .expect("send");
        let frame = tokio::time::timeout(Duration::from_secs(2), answers.frame())
            .await
            .expect("an answer before the next message")
            .expect("frame")
            .expect("frame ok");
        assert_eq!(frame.into_data().expect("data"), sent);
        rounds.push(start.elapsed());
    }
    drop(tx);
    let mut trailers = None;
    while let Some(frame) = answers.frame().await {
        if let Ok(t) = frame.expect("frame").into_trailers() {
            trailers = Some(t);
        }
    }
    let trailers = trailers.expect("trailers reached the client");
    println!(
        "gRPC bidi through h2c -> h2c: 5 round trips, slowest {:?}; trailers {:?}",
        rounds.iter().max().expect("rounds"),
        trailers
    );
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["grpc-message"], "done");
    assert_eq!(trailers["x-trailing-metadata"], "kept");
    let m = proxy.metrics().await;
    let entry = support::metrics::backend_entry(&m, &backend.url());
    assert_eq!(entry["consecutive_failures"], 0, "{entry:#}");
    proxy.stop().await;
}

#[tokio::test]
async fn a_grpc_failure_in_the_trailers_counts_for_the_breaker() {
    let backend = H2Backend::start(
        None,
        |_req: http::Request<hyper::body::Incoming>| async move {
            let (tx, out) = channel_body();
            tokio::spawn(async move {
                let _ = tx.send(http_body::Frame::data(message(b"partial"))).await;
                let mut trailers = http::HeaderMap::new();
                trailers.insert("grpc-status", "14".parse().expect("value"));
                let _ = tx.send(http_body::Frame::trailers(trailers)).await;
            });
            let mut resp = http::Response::new(out);
            resp.headers_mut()
                .insert("content-type", "application/grpc".parse().expect("value"));
            resp
        },
    )
    .await;
    let mut cfg = config(vec![backend.url()]);
    cfg.pools[0].retries = 0;
    cfg.pools[0].outlier.consecutive_5xx = 0;
    let proxy = TestProxy::start(cfg);
    let mut client = H2Client::connect(proxy.addr).await;
    for _ in 0..2 {
        let req = http::Request::post("/pkg.Svc/Call")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(full(message(b"hi")))
            .expect("request");
        let got = client.fetch(req).await.expect("answer");
        assert_eq!(got.trailers.expect("trailers")["grpc-status"], "14");
    }
    let failures = support::eventually(Duration::from_secs(1), || async {
        let m = proxy.metrics().await;
        support::metrics::backend_entry(&m, &backend.url())["consecutive_failures"] == 2
    })
    .await;
    println!("two grpc-status 14 answers over h2c -> h2c: consecutive failures 2: {failures}");
    assert!(failures, "{:#}", proxy.metrics().await);
    proxy.stop().await;
}

#[tokio::test]
async fn a_connection_the_backend_shuts_down_is_replaced() {
    let backend = H2Backend::start_with(
        None,
        Some(3),
        |req: http::Request<hyper::body::Incoming>| async move {
            http::Response::new(full(req.uri().path().to_owned()))
        },
    )
    .await;
    let mut cfg = config(vec![backend.url()]);
    cfg.workers = 1;
    let proxy = TestProxy::start(cfg);
    let mut client = H2Client::connect(proxy.addr).await;
    let mut statuses = Vec::new();
    for i in 0..20 {
        statuses.push(client.get(&format!("/{i}")).await.resp.status);
    }
    println!(
        "20 requests, the backend sending GOAWAY after every 3rd on a connection: {} connections, \
         statuses all 200: {}",
        backend.connections(),
        statuses.iter().all(|s| *s == 200)
    );
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // A graceful GOAWAY may still let a fourth request in on a connection.
    assert!(backend.connections() >= 5, "{}", backend.connections());
    proxy.stop().await;
}

#[tokio::test]
async fn a_refused_stream_is_sent_again_elsewhere() {
    let (refusing, refused) = support::h2raw::refusing_backend().await;
    let good = backend("good").await;
    let refusing_url = switchyard::config::BackendUrl {
        scheme: switchyard::config::Scheme::H2c,
        ..support::url_for_port(refusing.port())
    };
    let mut cfg = config(vec![refusing_url, url_for(&good)]);
    cfg.pools[0].retries = 1;
    cfg.pools[0].protocol = switchyard::config::UpstreamProtocol::Http2;
    let proxy = TestProxy::start(cfg);
    let mut client = Client::connect(proxy.addr).await;
    let mut bodies = Vec::new();
    for _ in 0..6 {
        let resp = client.get("/").await;
        bodies.push((resp.status, resp.text()));
    }
    let m = proxy.metrics().await;
    println!(
        "6 GETs over a pool with a backend refusing every stream: {} streams refused, all \
         answered by the other: {}, retries {}",
        refused.load(std::sync::atomic::Ordering::SeqCst),
        bodies.iter().all(|(s, b)| *s == 200 && b == "good\n"),
        m["retries"]
    );
    assert!(
        bodies.iter().all(|(s, b)| *s == 200 && b == "good\n"),
        "{bodies:?}"
    );
    assert!(refused.load(std::sync::atomic::Ordering::SeqCst) >= 3);
    proxy.stop().await;
}

/// A body that sends `data`, then after a while fails: hyper resets the stream midway.
struct Breaking(Option<Bytes>, std::pin::Pin<Box<tokio::time::Sleep>>);

impl http_body::Body for Breaking {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if let Some(data) = self.0.take() {
            return std::task::Poll::Ready(Some(Ok(http_body::Frame::data(data))));
        }
        std::task::ready!(self.1.as_mut().poll(cx));
        std::task::Poll::Ready(Some(Err("the backend broke off".into())))
    }
}

#[tokio::test]
async fn an_h2_stream_reset_midway_is_a_broken_body() {
    let backend = H2Backend::start(
        None,
        |_req: http::Request<hyper::body::Incoming>| async move {
            let later = Box::pin(tokio::time::sleep(Duration::from_millis(100)));
            http::Response::new(Breaking(Some(Bytes::from_static(b"half of it")), later).boxed())
        },
    )
    .await;
    let mut cfg = config(vec![backend.url()]);
    cfg.workers = 1;
    cfg.pools[0].retries = 0;
    cfg.pools[0].outlier.consecutive_5xx = 0;
    let proxy = TestProxy::start(cfg);
    let mut client = H2Client::connect(proxy.addr).await;
    let resp = client
        .send(http::Request::get("/").body(full("")).expect("request"))
        .await;
    let body = resp.expect("head").into_body().collect().await;
    let failures = support::eventually(Duration::from_secs(1), || async {
        let m = proxy.metrics().await;
        support::metrics::backend_entry(&m, &backend.url())["consecutive_failures"] == 1
    })
    .await;
    println!(
        "an h2c stream reset midway: the client's body {}, the backend's consecutive failures 1: \
         {failures}",
        if body.is_err() { "broke off" } else { "ended" }
    );
    assert!(
        body.is_err(),
        "the client must see the body break: {body:?}"
    );
    assert!(failures, "{:#}", proxy.metrics().await);
    // The shared connection outlives the broken stream.
    let mut again = H2Client::connect(proxy.addr).await;
    let _ = again
        .send(http::Request::get("/").body(full("")).expect("request"))
        .await;
    assert_eq!(backend.connections(), 1);
    proxy.stop().await;
}

#[tokio::test]
async fn an_h2c_backend_cannot_be_spoken_to_in_http1() {
    let text = "[pools.p]\nbackends = [\"h2c://127.0.0.1:50051\"]\nprotocol = \"http1\"\n\
                max_streams_per_connection = 0\n";
    let err = switchyard::config::validate::from_text(std::path::Path::new("p.toml"), text)
        .expect_err("invalid");
    let shown = err.to_string();
    println!("{shown}");
    assert!(
        shown.contains("p.toml:3") && shown.contains("pools.p.protocol"),
        "{shown}"
    );
    assert!(shown.contains("h2c://127.0.0.1:50051"), "{shown}");
    assert!(
        shown.contains("pools.p.max_streams_per_connection"),
        "{shown}"
    );
    let ok = "[pools.p]\nbackends = [\"h2c://127.0.0.1:50051\"]\nprotocol = \"auto\"\n";
    let cfg =
        switchyard::config::validate::from_text(std::path::Path::new("p.toml"), ok).expect("valid");
    assert_eq!(
        cfg.pools[0].backends[0].url.to_string(),
        "h2c://127.0.0.1:50051"
    );
}

/// A connection's streams run in its own task (`server/inline.rs`), on either runtime: a
/// stream waiting on a slow backend holds up none of the others, each of which is answered
/// while it waits.
#[tokio::test]
async fn a_slow_stream_holds_up_no_other_stream_of_its_connection() {
    for runtime in [
        switchyard::config::RuntimeModel::PerCore,
        switchyard::config::RuntimeModel::MultiThread,
    ] {
        let server = backend("one").await;
        let mut cfg = config(vec![url_for(&server)]);
        cfg.runtime = runtime;
        let proxy = TestProxy::start(cfg);
        let client = H2Client::connect(proxy.addr).await;

        let mut slow_client = client.clone();
        let slow = tokio::spawn(async move { slow_client.get("/delay/1000").await });
        let started = tokio::time::Instant::now();
        let fast: Vec<_> = (0..20)
            .map(|_| {
                let mut client = client.clone();
                tokio::spawn(async move { client.get("/").await })
            })
            .collect();
        for answer in fast {
            let got = answer.await.expect("fast stream");
            assert_eq!(got.resp.status, 200);
            assert_eq!(got.resp.body, "one\n");
        }
        let fast_took = started.elapsed();
        assert!(
            !slow.is_finished(),
            "the slow stream answered before the fast ones"
        );
        let got = slow.await.expect("slow stream");
        println!(
            "{runtime:?}: 20 streams answered in {fast_took:?} beside one waiting 1 s, \
             which then got {}",
            got.resp.status
        );
        assert_eq!(got.resp.status, 200);
        assert!(fast_took < Duration::from_millis(1000));
        proxy.stop().await;
    }
}
