//! A route's `security_headers` against a running switchyard: the one-line preset adds
//! `X-Content-Type-Options`, `X-Frame-Options`, CSP `frame-ancestors` and `Referrer-Policy`,
//! removes the backend's `Server` and `X-Powered-By`, keeps what the backend set itself, and
//! sends `Strict-Transport-Security` over TLS only; a route without it is left alone.

mod support;

use std::net::SocketAddr;

use support::pki::{client_config, config_in, connect, CertDir, HttpsClient, TestCa};
use support::{Client, TestProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A backend that answers every request with the headers a PHP site behind Apache sends,
/// and its own `X-Frame-Options: DENY`.
async fn chatty_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut seen = Vec::new();
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        let resp = "HTTP/1.1 200 OK\r\nServer: Apache/2.4.1\r\n\
                                    X-Powered-By: PHP/5.6\r\nX-Frame-Options: DENY\r\n\
                                    Content-Length: 2\r\n\r\nok";
                        if stream.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

fn routes(backend: SocketAddr) -> String {
    format!(
        "[pools.p]\nbackends = [\"http://{backend}\"]\n\
         [[routes]]\nmatch = {{ path_prefix = \"/safe\" }}\npool = \"p\"\n\
         security_headers = \"recommended\"\n\
         [[routes]]\nmatch = {{ path_prefix = \"/custom\" }}\npool = \"p\"\n\
         security_headers = {{ preset = \"recommended\", frame_ancestors = \"'none'\", referrer_policy = \"\" }}\n\
         [[routes]]\npool = \"p\"\n"
    )
}

#[tokio::test]
async fn the_recommended_preset_over_plaintext_adds_headers_and_hides_the_server() {
    let backend = chatty_backend().await;
    let dir = CertDir::new("sec-plain");
    let proxy = TestProxy::start(config_in(&dir, "", &routes(backend)));
    let mut client = Client::connect(proxy.addr).await;
    let safe = client.get("/safe").await;
    assert_eq!(safe.status, 200);
    let h = &safe.headers;
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(
        h["x-frame-options"], "DENY",
        "the backend's own value is kept"
    );
    assert_eq!(h["content-security-policy"], "frame-ancestors 'self'");
    assert_eq!(h["referrer-policy"], "strict-origin-when-cross-origin");
    assert!(h.get("server").is_none(), "{h:?}");
    assert!(h.get("x-powered-by").is_none(), "{h:?}");
    assert!(
        h.get("strict-transport-security").is_none(),
        "never over plaintext"
    );
    let custom = client.get("/custom").await;
    assert_eq!(
        custom.headers["content-security-policy"],
        "frame-ancestors 'none'"
    );
    assert!(custom.headers.get("referrer-policy").is_none(), "left out");
    let plain = client.get("/other").await;
    assert_eq!(
        plain.headers["server"], "Apache/2.4.1",
        "a route without the preset"
    );
    assert!(plain.headers.get("x-content-type-options").is_none());
    println!(
        "preset: {} headers added, Server and X-Powered-By removed; other route untouched",
        [
            "x-content-type-options",
            "content-security-policy",
            "referrer-policy"
        ]
        .len()
    );
    proxy.stop().await;
}

#[tokio::test]
async fn the_preset_sends_hsts_over_tls() {
    let backend = chatty_backend().await;
    let ca = TestCa::new("sec CA");
    let dir = CertDir::new("sec-tls");
    dir.pair("a", &ca.server(&["a.example.com"]));
    let listener = "[listeners.tls]\ncertificates = [{ cert = \"a.pem\", key = \"a.key\" }]";
    let proxy = TestProxy::start(config_in(&dir, listener, &routes(backend)));
    let tls = connect(
        proxy.addr,
        "a.example.com",
        client_config(&ca, None, &[b"http/1.1"]),
    )
    .await
    .expect("TLS handshake");
    let mut client = HttpsClient::over(tls, "a.example.com").await;
    let req = http::Request::get("/safe")
        .body(bytes::Bytes::new())
        .expect("request");
    let safe = client.send(req).await.expect("response");
    assert_eq!(
        safe.headers["strict-transport-security"],
        "max-age=31536000"
    );
    assert!(safe.headers.get("server").is_none());
    let req = http::Request::get("/other")
        .body(bytes::Bytes::new())
        .expect("request");
    let other = client.send(req).await.expect("response");
    assert!(other.headers.get("strict-transport-security").is_none());
    println!("over TLS: Strict-Transport-Security: max-age=31536000 on the preset route only");
    proxy.stop().await;
}

#[tokio::test]
async fn a_top_level_preset_covers_every_route_without_its_own() {
    let backend = chatty_backend().await;
    let text = format!(
        "security_headers = \"recommended\"\nworkers = 1\n\
         [rate_limit]\nrequests = 0\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\n\
         [pools.p]\nbackends = [\"http://{backend}\"]\n\
         [[routes]]\nmatch = {{ path_prefix = \"/off\" }}\npool = \"p\"\nsecurity_headers = \"off\"\n\
         [[routes]]\nmatch = {{ path_prefix = \"/own\" }}\npool = \"p\"\n\
         security_headers = {{ referrer_policy = \"no-referrer\" }}\n\
         [[routes]]\npool = \"p\"\n"
    );
    let config = switchyard::config::validate::from_text(std::path::Path::new("t.toml"), &text)
        .unwrap_or_else(|e| panic!("{e}"));
    let proxy = TestProxy::start(config);
    let mut client = Client::connect(proxy.addr).await;
    let covered = client.get("/anything").await;
    assert_eq!(covered.headers["x-content-type-options"], "nosniff");
    assert_eq!(
        covered.headers["referrer-policy"],
        "strict-origin-when-cross-origin"
    );
    assert!(covered.headers.get("server").is_none());
    let off = client.get("/off").await;
    assert_eq!(
        off.headers["server"], "Apache/2.4.1",
        "an explicit off stays off"
    );
    assert!(off.headers.get("x-content-type-options").is_none());
    let own = client.get("/own").await;
    assert_eq!(own.headers["referrer-policy"], "no-referrer");
    assert!(
        own.headers.get("x-content-type-options").is_none(),
        "a route's own table starts from nothing, not from the top-level preset"
    );
    // A bad top-level preset is named with its key.
    let err = switchyard::config::validate::from_text(
        std::path::Path::new("t.toml"),
        "security_headers = \"recomended\"\n",
    )
    .expect_err("unknown preset");
    let shown = err.to_string();
    assert!(
        shown.contains("t.toml:1") && shown.contains("security_headers"),
        "{shown}"
    );
    assert!(
        shown.contains("recommended"),
        "suggests the preset: {shown}"
    );
    println!("top-level security_headers: 1 route covered, an explicit off and an own table kept");
    proxy.stop().await;
}
