//! The PROXY protocol (v1 and v2) on a listener with `proxy_protocol = true`: a connection
//! from `[access] trusted_proxies` starts with a header whose source is the client for the
//! backend's `X-Forwarded-For`, the IP rules and the access log; a trusted peer without a
//! valid header is closed (and counted); an untrusted peer is served as itself, a PROXY
//! header from it believed by nothing. Also under TLS (the header comes before the
//! handshake) and the `--proxy-protocol` flag.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use ppp::v2;
use support::pki::{self, CertDir, HttpsClient, TestCa};
use support::{backend, Client, TestProxy};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

fn config(listener_keys: &str, backend: &str) -> switchyard::Config {
    let text = format!(
        "workers = 1\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\nproxy_protocol = true\n{listener_keys}\n\
         [rate_limit]\nrequests = 0\n\
         [access]\ntrusted_proxies = [\"127.0.0.1\"]\n\
         [pools.p]\nbackends = [\"{backend}\"]\n\
         [[routes]]\npool = \"p\"\n"
    );
    switchyard::config::validate::from_text(Path::new("t.toml"), &text)
        .unwrap_or_else(|e| panic!("config:\n{text}\n{e}"))
}

fn v1(source: &str) -> Vec<u8> {
    let source: SocketAddr = source.parse().expect("address");
    let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
    let destination = if source.is_ipv4() {
        "10.0.0.1"
    } else {
        "2001:db8::1"
    };
    format!(
        "PROXY {family} {} {destination} {} 443\r\n",
        source.ip(),
        source.port()
    )
    .into_bytes()
}

fn v2(command: u8, source: &str) -> Vec<u8> {
    let source: SocketAddr = source.parse().expect("address");
    let destination: SocketAddr = if source.is_ipv4() {
        "10.0.0.1:443".parse().expect("address")
    } else {
        "[2001:db8::1]:443".parse().expect("address")
    };
    v2::Builder::with_addresses(command, v2::Protocol::Stream, (source, destination))
        .write_tlv(0xEA, b"vpce-0123456789abcdef")
        .expect("tlv")
        .build()
        .expect("header")
}

const PROXY: u8 = 0x21;
const LOCAL: u8 = 0x20;

/// A connection from `from` (a loopback address) that first sends `header`.
async fn connect_with(addr: SocketAddr, from: &str, header: &[u8]) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{from}:0").parse().expect("address"))
        .expect("bind");
    let mut stream = socket.connect(addr).await.expect("connect");
    stream.write_all(header).await.expect("header");
    stream
}

/// `/metrics` as JSON, asked through a trusted proxy's connection (a v2 `LOCAL` header: the
/// proxy's own health check).
async fn metrics(addr: SocketAddr) -> serde_json::Value {
    let stream = connect_with(addr, "127.0.0.1", &v2(LOCAL, "127.0.0.1:1")).await;
    let resp = Client::over(stream, "example.test")
        .await
        .get("/metrics")
        .await;
    assert_eq!(resp.status, 200);
    resp.json()
}

async fn forwarded_for(client: &mut Client) -> (u16, Vec<String>) {
    let resp = client.get("/echo").await;
    let status = resp.status;
    if status != 200 {
        return (status, Vec::new());
    }
    (status, pki::echoed(&resp, "x-forwarded-for"))
}

#[tokio::test]
async fn v1_and_v2_headers_from_a_trusted_proxy_name_the_client() {
    let server = backend("b").await;
    let proxy = TestProxy::start(config("", &server.url()));
    let cases = [
        ("v1 TCP4", v1("203.0.113.7:51234"), "203.0.113.7"),
        ("v1 TCP6", v1("[2001:db8::7]:51234"), "2001:db8::7"),
        (
            "v2 TCP4 + TLV",
            v2(PROXY, "198.51.100.9:40000"),
            "198.51.100.9",
        ),
        (
            "v2 TCP6 + TLV",
            v2(PROXY, "[2001:db8::9]:40000"),
            "2001:db8::9",
        ),
        ("v2 LOCAL", v2(LOCAL, "198.51.100.9:40000"), "127.0.0.1"),
        ("v1 UNKNOWN", b"PROXY UNKNOWN\r\n".to_vec(), "127.0.0.1"),
    ];
    for (what, header, want) in &cases {
        let stream = connect_with(proxy.addr, "127.0.0.1", header).await;
        let mut client = Client::over(stream, "example.test").await;
        // Two requests on the connection: the header is read once, the client stays.
        for _ in 0..2 {
            let (status, xff) = forwarded_for(&mut client).await;
            assert_eq!(status, 200, "{what}");
            assert_eq!(xff, [*want], "{what}");
        }
    }
    assert_eq!(metrics(proxy.addr).await["proxy_protocol_errors"], 0);
    println!(
        "PROXY protocol: {} header kinds, 2 requests each, the backend saw the named client",
        cases.len()
    );
}

#[tokio::test]
async fn a_trusted_proxy_without_a_valid_header_is_closed_and_counted() {
    let server = backend("b").await;
    let proxy = TestProxy::start(config("read_timeout = \"300ms\"", &server.url()));
    let bad: [(&str, &[u8]); 4] = [
        ("no header", b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("bad address", b"PROXY TCP4 1.2.3 10.0.0.1 1 443\r\n"),
        (
            "too long",
            &[b'P', b'R', b'O', b'X', b'Y', b' ', b'1'].repeat(20),
        ),
        ("bad v2 version", b"\r\n\r\n\0\r\nQUIT\n\x31\x11\x00\x0c"),
    ];
    for (what, bytes) in bad {
        let mut stream = connect_with(proxy.addr, "127.0.0.1", bytes).await;
        let answer = support::read_until_close(&mut stream, Duration::from_secs(2)).await;
        assert_eq!(answer, "", "{what}: closed without an answer");
    }
    // Half a header, then nothing: closed at the read timeout.
    let started = tokio::time::Instant::now();
    let mut stream = connect_with(proxy.addr, "127.0.0.1", b"PROXY TCP4 1.2").await;
    let answer = support::read_until_close(&mut stream, Duration::from_secs(2)).await;
    let waited = started.elapsed();
    assert_eq!(answer, "");
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert_eq!(metrics(proxy.addr).await["proxy_protocol_errors"], 5);
    assert_eq!(server.requests(), 0, "nothing reached the backend");
    println!(
        "PROXY protocol: 5 bad headers closed and counted; a half header closed after {waited:?}"
    );
}

#[tokio::test]
async fn an_untrusted_peer_is_its_own_client_and_its_header_is_not_believed() {
    let server = backend("b").await;
    let proxy = TestProxy::start(config("", &server.url()));
    // 127.0.0.2 is not a trusted proxy: no header is read from it.
    let stream = connect_with(proxy.addr, "127.0.0.2", b"").await;
    let mut client = Client::over(stream, "example.test").await;
    assert_eq!(
        forwarded_for(&mut client).await,
        (200, vec!["127.0.0.2".to_owned()])
    );
    // A header it sends is a malformed request, not a client address.
    let mut stream = connect_with(
        proxy.addr,
        "127.0.0.2",
        b"PROXY TCP4 203.0.113.7 10.0.0.1 1 443\r\nGET /echo HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    let answer = support::read_until_close(&mut stream, Duration::from_secs(2)).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(server.requests(), 1);
    println!("untrusted peer 127.0.0.2: served as itself; its PROXY header got a 400");
}

#[tokio::test]
async fn listener_ip_rules_see_the_address_the_header_names() {
    let server = backend("b").await;
    let proxy = TestProxy::start(config("deny_ip = [\"203.0.113.0/24\"]", &server.url()));
    let stream = connect_with(proxy.addr, "127.0.0.1", &v1("203.0.113.7:1")).await;
    let mut client = Client::over(stream, "example.test").await;
    assert_eq!(client.get("/echo").await.status, 403);
    let stream = connect_with(proxy.addr, "127.0.0.1", &v2(PROXY, "198.51.100.9:1")).await;
    let mut client = Client::over(stream, "example.test").await;
    assert_eq!(client.get("/echo").await.status, 200);
    assert_eq!(server.requests(), 1);
    println!("deny_ip 203.0.113.0/24: the client named by the header refused, another served");
}

#[tokio::test]
async fn the_header_comes_before_the_tls_handshake() {
    let server = backend("b").await;
    let ca = TestCa::new("pp");
    let dir = CertDir::new("proxy-protocol-tls");
    dir.pair("a", &ca.server(&["a.example.com"]));
    let listener =
        "proxy_protocol = true\ntls = { certificates = [{ cert = \"a.pem\", key = \"a.key\" }] }";
    let rest = format!(
        "[access]\ntrusted_proxies = [\"127.0.0.1\"]\n\
         [pools.p]\nbackends = [\"{}\"]\n[[routes]]\npool = \"p\"\n",
        server.url()
    );
    let proxy = TestProxy::start(pki::config_in(&dir, listener, &rest));
    let tcp = connect_with(proxy.addr, "127.0.0.1", &v2(PROXY, "198.51.100.9:40000")).await;
    let name = rustls_pki_types::ServerName::try_from("a.example.com").expect("name");
    let tls = tokio_rustls::TlsConnector::from(pki::client_config(&ca, None, &[b"http/1.1"]))
        .connect(name, tcp)
        .await
        .expect("TLS handshake after the PROXY header");
    let mut client = HttpsClient::over(tls, "a.example.com").await;
    let resp = client
        .send(
            http::Request::get("/echo")
                .body(Bytes::new())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(resp.status, 200);
    assert_eq!(pki::echoed(&resp, "x-forwarded-for"), ["198.51.100.9"]);
    assert_eq!(pki::echoed(&resp, "x-forwarded-proto"), ["https"]);
    println!("PROXY v2 header, then TLS: the backend saw 198.51.100.9 over https");
}

#[tokio::test]
async fn the_flag_needs_trusted_proxies_and_turns_every_listener_on() {
    let server = backend("b").await;
    let args = |extra: &[&str]| {
        let mut args = vec![
            "switchyard".to_owned(),
            "--backends".to_owned(),
            server.url(),
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--rate-limit=0".to_owned(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        switchyard::cli::Cli::try_parse_args(args).expect("flags")
    };
    let refused = args(&["--proxy-protocol"])
        .load_config()
        .expect_err("refused");
    assert!(
        refused.to_string().contains("--trusted-proxies"),
        "{refused}"
    );
    let config = args(&["--proxy-protocol", "--trusted-proxies", "127.0.0.1"])
        .load_config()
        .expect("config");
    let proxy = TestProxy::start(config);
    let stream = connect_with(proxy.addr, "127.0.0.1", &v1("203.0.113.7:9")).await;
    let mut client = Client::over(stream, "example.test").await;
    assert_eq!(
        forwarded_for(&mut client).await,
        (200, vec!["203.0.113.7".to_owned()])
    );
    // The file's check names the key.
    let text = "[[listeners]]\naddress = \"127.0.0.1:0\"\nproxy_protocol = true\n";
    let err = switchyard::config::validate::from_text(Path::new("pp.toml"), text)
        .expect_err("needs trusted proxies");
    let shown = err.to_string();
    assert!(shown.contains("pp.toml:3"), "{shown}");
    assert!(shown.contains("listeners[0].proxy_protocol"), "{shown}");
    println!("--proxy-protocol: refused without --trusted-proxies; with them, the header names the client");
}

#[tokio::test]
async fn connection_limits_per_ip_count_the_client_the_header_names() {
    let server = backend("b").await;
    let proxy = TestProxy::start(config(
        "[limits]\nmax_connections_per_ip = 1",
        &server.url(),
    ));
    // Two connections from the one load balancer, for two clients: both served.
    let a = connect_with(proxy.addr, "127.0.0.1", &v1("203.0.113.7:1")).await;
    let b = connect_with(proxy.addr, "127.0.0.1", &v1("203.0.113.8:1")).await;
    let mut a = Client::over(a, "example.test").await;
    let mut b = Client::over(b, "example.test").await;
    assert_eq!(a.get("/echo").await.status, 200);
    assert_eq!(b.get("/echo").await.status, 200);
    // A second connection for a client already connected is over its limit: closed.
    let mut again = connect_with(proxy.addr, "127.0.0.1", &v1("203.0.113.7:2")).await;
    again
        .write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("request");
    let answer = support::read_until_close(&mut again, Duration::from_secs(2)).await;
    assert_eq!(
        answer, "",
        "closed: over max_connections_per_ip for 203.0.113.7"
    );
    assert_eq!(server.requests(), 2);
    println!("max_connections_per_ip = 1: two clients behind one proxy served, a second connection for one closed");
}
