//! Forward auth against a running switchyard, a real auth service (a small hyper server that
//! decides by a cookie or a bearer token and records every question) and a recording
//! upstream (the test server's `/echo`): a `2xx` lets the request through with the copied
//! headers, forged client copies removed; a `302` with `Location` and `Set-Cookie`, a `401`
//! with its body, go back as they are and the upstream is never reached; an auth service
//! that is down or slower than the timeout gives a `503` (and a `WARN` line); the service
//! sees the original method, target, host, scheme (`https` on an HTTPS listener) and client;
//! the same over HTTP/2, for gRPC and for WebSocket upgrades; a client that leaves
//! mid-question leaves nothing held; a bad table is reported with its line and key. Its own
//! test binary: the log subscriber is global.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use support::h2::{full, H2Client};
use support::metrics::{num, pool_backend_entry};
use support::pki::CertDir;
use support::ws::WsBackend;
use support::{backend, dead_port, Client, TestProxy};
use switchyard::Config;
use tokio::time::Instant;

const READ_WAIT: Duration = Duration::from_secs(3);

/// One question the auth service was asked.
#[derive(Clone, Debug)]
struct Asked {
    method: String,
    path: String,
    headers: HeaderMap,
}

/// The auth service: `Cookie: session=good` or `Authorization: Bearer let-me-in` pass
/// (`Remote-User`, two `Remote-Groups`); without them, a request for `/api...` gets a `401`
/// with a body, any other a `302` to the login page with two `Set-Cookie`. On `/slow` it
/// first waits two seconds.
struct AuthService {
    addr: SocketAddr,
    asked: Arc<Mutex<Vec<Asked>>>,
}

impl AuthService {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind auth service");
        let addr = listener.local_addr().expect("addr");
        let asked = Arc::new(Mutex::new(Vec::new()));
        let record = asked.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let record = record.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let record = record.clone();
                        async move { Ok::<_, Infallible>(decide(req, &record).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        AuthService { addr, asked }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn asked(&self) -> Vec<Asked> {
        self.asked.lock().expect("lock").clone()
    }
}

async fn decide(req: Request<Incoming>, record: &Mutex<Vec<Asked>>) -> Response<Full<Bytes>> {
    let headers = req.headers().clone();
    let path = req.uri().path().to_owned();
    record.lock().expect("lock").push(Asked {
        method: req.method().to_string(),
        path: req.uri().to_string(),
        headers: headers.clone(),
    });
    if path == "/slow" {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let has = |name: &str, value: &str| {
        headers
            .get_all(name)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.contains(value)))
    };
    let builder = Response::builder();
    let resp = if has("cookie", "session=good") {
        builder
            .status(StatusCode::OK)
            .header("remote-user", "alice")
            .header("remote-groups", "admins")
            .header("remote-groups", "dev")
            .header("x-not-copied", "1")
            .body(Full::new(Bytes::from_static(b"ok")))
    } else if has("authorization", "Bearer let-me-in") {
        builder
            .status(StatusCode::NO_CONTENT)
            .header("remote-user", "bob")
            .body(Full::new(Bytes::new()))
    } else if has("x-forwarded-uri", "/api") {
        builder
            .status(StatusCode::UNAUTHORIZED)
            .header("www-authenticate", "Bearer realm=\"auth\"")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(
                b"{\"error\":\"login required\"}",
            )))
    } else {
        builder
            .status(StatusCode::FOUND)
            .header("location", "https://login.example/?rd=back")
            .header("set-cookie", "flow=abc; Path=/; HttpOnly")
            .header("set-cookie", "csrf=xyz; Path=/")
            .body(Full::new(Bytes::from_static(b"to the login page\n")))
    };
    resp.expect("response")
}

/// The `WARN` lines logged so far (the subscriber keeps `WARN` and above).
fn warnings() -> String {
    support::logs::capture(tracing::Level::WARN);
    support::logs::logs()
}

/// A proxy whose one route goes to `app`, asking pool `auth_pool` (over `auth_url`) at
/// `path` within `timeout` first.
fn proxy(
    name: &str,
    app: &str,
    auth_pool: &str,
    auth_url: &str,
    path: &str,
    timeout: &str,
) -> TestProxy {
    warnings();
    let text = format!(
        "workers = 1\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\n\
         [rate_limit]\nrequests = 0\n\
         [pools.app]\nbackends = [\"{app}\"]\n\
         [pools.{auth_pool}]\nbackends = [\"{auth_url}\"]\n\
         [[routes]]\npool = \"app\"\n\
         [routes.access.forward_auth]\npool = \"{auth_pool}\"\npath = \"{path}\"\n\
         copy_headers = [\"Remote-User\", \"Remote-Groups\"]\ntimeout = \"{timeout}\"\n"
    );
    let dir = CertDir::new(name);
    let path = dir.write("switchyard.toml", &text);
    let config = Config::load(&path).unwrap_or_else(|e| panic!("config:\n{text}\n{e}"));
    TestProxy::start(config)
}

fn get(path: &str) -> http::request::Builder {
    Request::get(path)
}

/// The values of header `name` the upstream's `/echo` saw.
fn seen(resp: &support::Resp, name: &str) -> Vec<String> {
    resp.json()["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .filter(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
        .map(|h| h[1].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn allowed_requests_carry_the_copied_headers_and_never_forged_ones() {
    let app = backend("app").await;
    let auth = AuthService::start().await;
    let proxy = proxy(
        "fa-allowed",
        &app.url(),
        "auth",
        &auth.url(),
        "/verify",
        "2s",
    );
    let mut client = Client::connect(proxy.addr).await;

    let req = get("/echo?x=1")
        .header("cookie", "session=good")
        .header("remote-user", "mallory")
        .header("Remote-Groups", "root")
        .body(Bytes::new())
        .expect("request");
    let resp = client.send(req).await.expect("response");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(seen(&resp, "remote-user"), ["alice"]);
    assert_eq!(seen(&resp, "remote-groups"), ["admins", "dev"]);
    assert!(
        seen(&resp, "x-not-copied").is_empty(),
        "only copy_headers are copied"
    );
    assert_eq!(
        seen(&resp, "cookie"),
        ["session=good"],
        "the request is otherwise unchanged"
    );

    // A bearer token, and a 204: the same, with a forged header the answer does not name.
    let req = get("/echo")
        .header("authorization", "Bearer let-me-in")
        .header("remote-groups", "root")
        .body(Bytes::new())
        .expect("request");
    let resp = client.send(req).await.expect("response");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(seen(&resp, "remote-user"), ["bob"]);
    assert!(
        seen(&resp, "remote-groups").is_empty(),
        "the forged copy is gone"
    );

    let asked = auth.asked();
    assert_eq!(asked.len(), 2);
    let m = proxy.metrics().await;
    assert_eq!(m["access"]["forward_auth"]["allowed"], 2, "{m:#}");
    let entry = pool_backend_entry(&m, "auth", &auth.url()).expect("the auth backend's entry");
    let (opened, reused) = (
        num(&entry["connections_opened"]),
        num(&entry["connections_reused"]),
    );
    assert_eq!(
        (opened, reused),
        (1, 1),
        "the second question reused the first's connection"
    );
    println!(
        "allowed: 2 requests through with Remote-User alice/bob and 2 Remote-Groups; 2 forged headers removed; auth service asked {} times on {opened} connection ({reused} reused)",
        asked.len()
    );
    proxy.stop().await;
}

#[tokio::test]
async fn the_auth_service_sees_the_original_request() {
    let app = backend("app").await;
    let auth = AuthService::start().await;
    let proxy = proxy(
        "fa-seen",
        &app.url(),
        "auth",
        &auth.url(),
        "/verify?from=switchyard",
        "2s",
    );
    let mut client = Client::connect(proxy.addr).await;
    let req = Request::post("/echo/deep?q=a%20b&x=1")
        .header("host", "app.example.com")
        .header("cookie", "session=good; theme=dark")
        .header("authorization", "Basic dTpw")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-other", "not sent")
        .body(Bytes::from_static(b"a body the auth service never sees"))
        .expect("request");
    let resp = client.send(req).await.expect("response");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let asked = auth.asked();
    let q = asked.last().expect("asked once");
    assert_eq!(q.method, "GET", "asked with GET");
    assert_eq!(q.path, "/verify?from=switchyard");
    let h = |name: &str| {
        q.headers
            .get(name)
            .map(|v| v.to_str().unwrap_or_default().to_owned())
    };
    assert_eq!(h("x-forwarded-method").as_deref(), Some("POST"));
    assert_eq!(
        h("x-forwarded-uri").as_deref(),
        Some("/echo/deep?q=a%20b&x=1")
    );
    assert_eq!(h("x-forwarded-host").as_deref(), Some("app.example.com"));
    assert_eq!(h("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(
        h("x-forwarded-for").as_deref(),
        Some("127.0.0.1"),
        "the client's own address, not its claim"
    );
    assert_eq!(h("cookie").as_deref(), Some("session=good; theme=dark"));
    assert_eq!(h("authorization").as_deref(), Some("Basic dTpw"));
    assert_eq!(h("x-other"), None, "only request_headers are sent");
    assert_eq!(h("content-length"), None, "no body");
    assert_eq!(
        h("host"),
        Some(auth.addr.to_string()),
        "the auth service's own host"
    );
    println!(
        "seen: GET /verify?from=switchyard with X-Forwarded-Method POST, -Uri, -Host, -Proto http, -For 127.0.0.1, Cookie, Authorization; {} headers in all",
        q.headers.len()
    );
    proxy.stop().await;
}

#[tokio::test]
async fn refusals_go_back_as_they_are_and_the_upstream_is_never_reached() {
    let app = backend("app").await;
    let auth = AuthService::start().await;
    let proxy = proxy(
        "fa-denied",
        &app.url(),
        "auth",
        &auth.url(),
        "/verify",
        "2s",
    );
    let mut client = Client::connect(proxy.addr).await;

    let resp = client.get("/echo").await;
    assert_eq!(resp.status, 302);
    assert_eq!(resp.headers["location"], "https://login.example/?rd=back");
    let cookies: Vec<_> = resp.headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["flow=abc; Path=/; HttpOnly", "csrf=xyz; Path=/"]);
    assert_eq!(resp.text(), "to the login page\n");

    let resp = client.get("/api/items").await;
    assert_eq!(resp.status, 401);
    assert_eq!(resp.headers["www-authenticate"], "Bearer realm=\"auth\"");
    assert_eq!(resp.headers["content-type"], "application/json");
    assert_eq!(resp.text(), "{\"error\":\"login required\"}");
    assert!(!client.is_closed(), "the connection stays open");

    assert_eq!(app.requests(), 0, "the upstream was never reached");
    let m = proxy.metrics().await;
    assert_eq!(m["access"]["forward_auth"]["denied"], 2, "{m:#}");
    println!("denied: 302 with Location and 2 Set-Cookie, 401 with its 26-byte body; upstream requests 0");
    proxy.stop().await;
}

#[tokio::test]
async fn an_auth_service_that_is_down_fails_closed() {
    let app = backend("app").await;
    let (_socket, dead) = dead_port();
    let proxy = proxy(
        "fa-down",
        &app.url(),
        "auth_down",
        &dead.to_string(),
        "/verify",
        "2s",
    );
    let mut client = Client::connect(proxy.addr).await;
    let req = get("/echo")
        .header("cookie", "session=good")
        .body(Bytes::new())
        .expect("request");
    let resp = client.send(req).await.expect("response");
    assert_eq!(resp.status, 503);
    assert!(
        resp.text().contains("authentication service"),
        "{}",
        resp.text()
    );
    assert_eq!(app.requests(), 0);
    let logs = warnings();
    let lines: Vec<_> = logs
        .lines()
        .filter(|l| l.contains("forward auth service auth_down"))
        .collect();
    assert_eq!(lines.len(), 1, "one line:\n{logs}");
    assert!(
        lines[0].contains("WARN") && lines[0].contains("cannot connect"),
        "{}",
        lines[0]
    );
    let m = proxy.metrics().await;
    assert_eq!(m["access"]["forward_auth"]["failed"], 1, "{m:#}");
    println!("down: 503, upstream requests 0, log: {}", lines[0].trim());
    proxy.stop().await;
}

#[tokio::test]
async fn an_auth_service_slower_than_the_timeout_fails_closed_in_time() {
    let app = backend("app").await;
    let auth = AuthService::start().await;
    let proxy = proxy(
        "fa-slow",
        &app.url(),
        "auth_slow",
        &auth.url(),
        "/slow",
        "300ms",
    );
    let mut client = Client::connect(proxy.addr).await;
    let req = get("/echo")
        .header("cookie", "session=good")
        .body(Bytes::new())
        .expect("request");
    let start = Instant::now();
    let resp = client.send(req).await.expect("response");
    let took = start.elapsed();
    assert_eq!(resp.status, 503);
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(
        took < Duration::from_millis(1500),
        "{took:?}: the timeout bounds the wait"
    );
    assert_eq!(app.requests(), 0);
    let logs = warnings();
    assert!(
        logs.lines()
            .any(|l| l.contains("forward auth service auth_slow")
                && l.contains("no answer within 300ms")),
        "{logs}"
    );
    let m = proxy.metrics().await;
    let entry = pool_backend_entry(&m, "auth_slow", &auth.url()).expect("the auth backend");
    let (errors, cancelled) = (num(&entry["errors"]), num(&entry["cancelled"]));
    assert_eq!(
        (errors, cancelled),
        (1, 0),
        "held against the backend: {entry:#}"
    );
    println!(
        "slow: 503 after {took:?} with a 300ms timeout (the service takes 2s); upstream requests 0; the auth backend's errors {errors}, cancelled {cancelled}"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn a_hung_auth_service_opens_its_circuit() {
    let app = backend("app").await;
    let auth = AuthService::start().await;
    let proxy = proxy(
        "fa-hung",
        &app.url(),
        "auth_hung",
        &auth.url(),
        "/slow",
        "100ms",
    );
    let mut client = Client::connect(proxy.addr).await;
    let mut took = Vec::new();
    for _ in 0..6 {
        let start = Instant::now();
        let resp = client.get("/echo").await;
        took.push(start.elapsed());
        assert_eq!(resp.status, 503);
    }
    assert!(
        took[..5].iter().all(|t| *t >= Duration::from_millis(100)),
        "{took:?}"
    );
    assert!(
        took[5] < Duration::from_millis(100),
        "{took:?}: refused at once"
    );
    let logs = warnings();
    assert!(
        logs.lines()
            .any(|l| l.contains("forward auth service auth_hung")
                && l.contains("no backend available")),
        "{logs}"
    );
    assert_eq!(
        auth.asked().len(),
        5,
        "the open circuit kept the sixth away"
    );
    println!(
        "hung: 5 questions timed out ({:?} .. {:?}), then the circuit opened: the 6th 503 in {:?} without asking",
        took[0], took[4], took[5]
    );
    proxy.stop().await;
}

#[tokio::test]
async fn http2_and_grpc_meet_the_same_auth_service() {
    let app = backend("app").await;
    let auth = AuthService::start().await;
    let proxy = proxy("fa-h2", &app.url(), "auth", &auth.url(), "/verify", "2s");
    let mut h2 = H2Client::connect(proxy.addr).await;

    let resp = h2.get("/echo").await;
    assert_eq!(resp.version, http::Version::HTTP_2);
    assert_eq!(resp.resp.status, 302);
    assert_eq!(resp.resp.headers.get_all("set-cookie").iter().count(), 2);
    assert_eq!(resp.resp.text(), "to the login page\n");

    let req = get("/echo")
        .header("cookie", "session=good")
        .header("remote-user", "mallory")
        .body(full(""))
        .expect("request");
    let resp = h2.fetch(req).await.expect("response");
    assert_eq!(resp.resp.status, 200);
    assert_eq!(seen(&resp.resp, "remote-user"), ["alice"]);

    let grpc = Request::post("/pkg.Svc/Call")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(full(Bytes::from_static(b"\0\0\0\0\0")))
        .expect("request");
    let resp = h2.fetch(grpc).await.expect("response");
    assert_eq!(resp.resp.status, 200);
    assert_eq!(resp.resp.headers["grpc-status"], "16", "UNAUTHENTICATED");
    let x_uri = auth
        .asked()
        .last()
        .and_then(|q| q.headers.get("x-forwarded-uri").cloned());
    assert_eq!(
        x_uri.as_ref().map(|v| v.as_bytes()),
        Some(&b"/pkg.Svc/Call"[..])
    );
    assert_eq!(app.requests(), 1);
    println!("h2c: 302 with 2 Set-Cookie, allowed with Remote-User alice, gRPC grpc-status 16; upstream requests 1");
    proxy.stop().await;
}

#[tokio::test]
async fn a_websocket_upgrade_is_gated() {
    let ws = WsBackend::start("ws").await;
    let auth = AuthService::start().await;
    let proxy = proxy("fa-ws", &ws.url(), "auth", &auth.url(), "/verify", "2s");
    let upgrade = |extra: &str| {
        format!(
            "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
    };
    let mut refused = tokio::net::TcpStream::connect(proxy.addr)
        .await
        .expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut refused, upgrade("").as_bytes())
        .await
        .expect("write");
    let answer = support::wire::read_answer(&mut refused, READ_WAIT).await;
    assert_eq!(answer.status, Some(302), "{}", answer.head);
    assert!(
        answer.head.contains("location: https://login.example/"),
        "{}",
        answer.head
    );
    assert_eq!(answer.text(), "to the login page\n");
    assert_eq!(ws.handshakes(), 0, "the backend saw no handshake");

    let mut stream = tokio::net::TcpStream::connect(proxy.addr)
        .await
        .expect("connect");
    let request = upgrade("Cookie: session=good\r\nRemote-User: mallory\r\n");
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(
        READ_WAIT,
        tokio::io::AsyncReadExt::read(&mut stream, &mut buf),
    )
    .await
    .expect("answer in time")
    .expect("read");
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let (_, headers) = ws.last_seen();
    let users: Vec<_> = headers.get_all("remote-user").iter().collect();
    assert_eq!(users, ["alice"], "copied, and the forged one removed");
    drop(stream);
    let closed = support::eventually(READ_WAIT, || async { ws.open() == 0 }).await;
    assert!(closed, "the tunnel closed with its client");
    println!("websocket: upgrade without a session 302 with 0 backend handshakes; with one 101 and Remote-User alice");
    proxy.stop().await;
}

#[tokio::test]
async fn a_client_that_leaves_mid_question_releases_everything() {
    let app = backend("app").await;
    let auth = AuthService::start().await;
    let proxy = proxy("fa-gone", &app.url(), "auth", &auth.url(), "/slow", "5s");
    let mut stream = tokio::net::TcpStream::connect(proxy.addr)
        .await
        .expect("connect");
    let request = "GET /echo HTTP/1.1\r\nHost: x\r\nCookie: session=good\r\n\r\n";
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .expect("write");
    let asked = support::eventually(READ_WAIT, || async { auth.asked().len() == 1 }).await;
    assert!(asked, "the auth service was asked");
    let start = Instant::now();
    drop(stream);
    let url = auth.url();
    let released = support::eventually(READ_WAIT, || async {
        let m = proxy.metrics().await;
        let entry = pool_backend_entry(&m, "auth", &url)
            .cloned()
            .unwrap_or_default();
        num(&entry["cancelled"]) == 1
            && num(&entry["outstanding"]) == 0
            && num(&entry["in_flight"]) == 0
    })
    .await;
    let m = proxy.metrics().await;
    let entry = pool_backend_entry(&m, "auth", &url);
    assert!(
        released,
        "the question was given up and nothing is held: {entry:#?}"
    );
    let m = proxy.metrics().await;
    let fa = &m["access"]["forward_auth"];
    assert_eq!(
        (num(&fa["allowed"]), num(&fa["denied"]), num(&fa["failed"])),
        (0, 0, 0)
    );
    assert_eq!(app.requests(), 0);
    println!(
        "gone: client left mid-question; auth attempt cancelled, 0 outstanding, 0 in flight within {:?}; no outcome counted",
        start.elapsed()
    );
    proxy.stop().await;
}

#[test]
fn a_bad_forward_auth_table_names_file_line_and_key() {
    let dir = CertDir::new("fa-config");
    let head = "[pools.app]\nbackends = [\"http://127.0.0.1:1\"]\n\
                [[routes]]\npool = \"app\"\n[routes.access.forward_auth]\n";
    let load = |rest: &str| {
        let path = dir.write("switchyard.toml", &format!("{head}{rest}"));
        Config::load(&path)
            .expect_err("a bad forward_auth table")
            .to_string()
    };
    let err =
        load("pool = \"authelia\"\npath = \"verify\"\nrequest_headers = [\"X-Forwarded-Uri\"]\n");
    for expected in [
        "switchyard.toml:6:8: routes[0].access.forward_auth.pool: no pool named \"authelia\"",
        "switchyard.toml:7:8: routes[0].access.forward_auth.path: \"verify\" is not a path",
        "switchyard.toml:8:20: routes[0].access.forward_auth.request_headers: \"X-Forwarded-Uri\" is always sent",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    let timeout = load("pool = \"app\"\ntimeout = \"0s\"\n");
    assert!(
        timeout.contains("switchyard.toml:7:11:") && timeout.contains("must be greater than 0"),
        "{timeout}"
    );
    println!("config: 3 problems in one table, each with file, line, column and key; a zero timeout refused at 7:11");
}

#[tokio::test]
async fn over_https_the_auth_service_is_told_https() {
    use support::pki::{client_config, config_in, connect, HttpsClient, TestCa};
    let app = backend("app").await;
    let auth = AuthService::start().await;
    let ca = TestCa::new("forward auth CA");
    let dir = CertDir::new("fa-https");
    dir.pair("a", &ca.server(&["a.example.com"]));
    let proxy = TestProxy::start(config_in(
        &dir,
        r#"tls = { certificates = [{ cert = "a.pem", key = "a.key" }] }"#,
        &format!(
            "[pools.app]\nbackends = [\"{}\"]\n[pools.auth]\nbackends = [\"{}\"]\n\
             [[routes]]\npool = \"app\"\n\
             [routes.access.forward_auth]\npool = \"auth\"\npath = \"/verify\"\ncopy_headers = [\"Remote-User\"]\n",
            app.url(),
            auth.url()
        ),
    ));
    let host = format!("a.example.com:{}", proxy.addr.port());
    let tls = client_config(&ca, None, &[b"http/1.1"]);
    let stream = connect(proxy.addr, "a.example.com", tls)
        .await
        .expect("TLS handshake");
    let mut client = HttpsClient::over(stream, &host).await;
    let resp = client.get("/echo").await;
    assert_eq!(resp.status, 302, "{}", resp.text());
    let req = get("/echo")
        .header("cookie", "session=good")
        .body(Bytes::new())
        .expect("request");
    let resp = client.send(req).await.expect("response");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(seen(&resp, "remote-user"), ["alice"]);
    let asked = auth.asked();
    let protos: Vec<_> = asked
        .iter()
        .map(|q| q.headers.get("x-forwarded-proto").cloned())
        .collect();
    assert_eq!(
        protos,
        [
            Some("https".parse().expect("value")),
            Some("https".parse().expect("value"))
        ]
    );
    let hosts: Vec<_> = asked
        .iter()
        .filter_map(|q| q.headers.get("x-forwarded-host").cloned())
        .collect();
    assert_eq!(hosts.len(), 2);
    assert!(
        hosts.iter().all(|h| h.as_bytes() == host.as_bytes()),
        "{hosts:?}"
    );
    println!("https: 302 then 200 with Remote-User alice; the auth service saw X-Forwarded-Proto https and -Host {host} twice");
    proxy.stop().await;
}
