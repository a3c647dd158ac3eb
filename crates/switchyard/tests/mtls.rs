//! Mutual TLS with real handshakes: client certificates required, optional, absent and from
//! the wrong CA; a request without a valid certificate never reaches a backend; the verified
//! identity reaches the backends in the configured headers (spoofed ones removed, on every
//! listener); a route taken only by clients with a given SAN.

mod support;

use bytes::Bytes;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use support::pki::{
    client_config, config_in, echoed, https_get, metrics, CertDir, HttpsClient, TestCa,
};
use support::{backend, Client, TestProxy};

/// `GET path` over a new TLS connection to `a.example.com`, or the error that stopped it.
async fn get(
    proxy: &TestProxy,
    config: std::sync::Arc<rustls::ClientConfig>,
    path: &str,
) -> std::io::Result<support::Resp> {
    https_get(proxy.addr, "a.example.com", "a.example.com", path, config).await
}

#[tokio::test]
async fn required_client_certificates_keep_others_from_the_backend() {
    let b = backend("B").await;
    let ca = TestCa::new("server and client CA");
    let other = TestCa::new("another CA");
    let dir = CertDir::new("mtls-required");
    dir.pair("a", &ca.server(&["a.example.com"]));
    dir.write("clients.pem", &ca.pem());
    let proxy = TestProxy::start(config_in(
        &dir,
        "[listeners.tls]\n\
         certificates = [{ cert = \"a.pem\", key = \"a.key\" }]\n\
         client_auth = { mode = \"required\", ca = \"clients.pem\" }",
        &format!("[pools.p]\nbackends = [\"{}\"]", b.url()),
    ));
    let good = ca.client("web", "spiffe://test/web");
    let foreign = other.client("intruder", "spiffe://test/web");

    let ok = get(&proxy, client_config(&ca, Some(&good), &[b"http/1.1"]), "/")
        .await
        .expect("a client with a valid certificate");
    assert_eq!(ok.status, 200);
    let absent = get(&proxy, client_config(&ca, None, &[b"http/1.1"]), "/").await;
    assert!(absent.is_err(), "no certificate: {absent:?}");
    let wrong = get(
        &proxy,
        client_config(&ca, Some(&foreign), &[b"http/1.1"]),
        "/",
    )
    .await;
    assert!(wrong.is_err(), "certificate of another CA: {wrong:?}");
    assert_eq!(
        b.requests(),
        1,
        "only the client with a valid certificate got through"
    );
    assert_eventually!(
        std::time::Duration::from_secs(5),
        || async { metrics(&proxy)["tls_handshake_failures"] == 2 },
        "the two refused handshakes are not counted: {:#}",
        metrics(&proxy)
    );
    println!(
        "mTLS required: valid 200; absent: {}; wrong CA: {}",
        absent.unwrap_err(),
        wrong.unwrap_err()
    );
}

#[tokio::test]
async fn optional_client_certificates_and_a_route_only_one_san_takes() {
    let public = backend("public").await;
    let secure = backend("secure").await;
    let ca = TestCa::new("CA");
    let other = TestCa::new("another CA");
    let dir = CertDir::new("mtls-optional");
    dir.pair("a", &ca.server(&["a.example.com"]));
    dir.write("clients.pem", &ca.pem());
    let proxy = TestProxy::start(config_in(
        &dir,
        "[listeners.tls]\n\
         certificates = [{ cert = \"a.pem\", key = \"a.key\" }]\n\
         client_auth = { mode = \"optional\", ca = \"clients.pem\" }",
        &format!(
            "[pools.public]\nbackends = [\"{}\"]\n\
             [pools.secure]\nbackends = [\"{}\"]\n\
             [[routes]]\nmatch = {{ path_prefix = \"/admin\", client_san = \"spiffe://test/ops\" }}\npool = \"secure\"\n\
             [[routes]]\nmatch = {{ path_prefix = \"/admin\" }}\nrespond = {{ status = 403, body = \"client certificate required\" }}\n\
             [[routes]]\nmatch = {{ path_prefix = \"/certified\", client_cert = true }}\npool = \"secure\"\n\
             [[routes]]\npool = \"public\"\n",
            public.url(),
            secure.url()
        ),
    ));
    let anonymous = client_config(&ca, None, &[b"http/1.1"]);
    let ops = client_config(
        &ca,
        Some(&ca.client("ops", "spiffe://test/ops")),
        &[b"http/1.1"],
    );
    let web = client_config(
        &ca,
        Some(&ca.client("web", "spiffe://test/web")),
        &[b"http/1.1"],
    );
    let foreign = client_config(
        &ca,
        Some(&other.client("x", "spiffe://test/ops")),
        &[b"http/1.1"],
    );
    let status = |config, path: &'static str| {
        let proxy = &proxy;
        async move { get(proxy, config, path).await.map(|r| (r.status, r.text())) }
    };
    assert_eq!(
        status(anonymous.clone(), "/").await.unwrap(),
        (200, "public\n".into())
    );
    assert_eq!(status(anonymous.clone(), "/admin").await.unwrap().0, 403);
    assert_eq!(status(web.clone(), "/admin").await.unwrap().0, 403);
    assert_eq!(
        status(ops.clone(), "/admin").await.unwrap(),
        (200, "secure\n".into())
    );
    assert_eq!(
        status(anonymous.clone(), "/certified").await.unwrap().1,
        "public\n"
    );
    assert_eq!(
        status(web.clone(), "/certified").await.unwrap().1,
        "secure\n"
    );
    // Optional does not mean unchecked: a certificate that is presented must be valid.
    assert!(status(foreign, "/").await.is_err());
    assert_eq!(
        secure.requests(),
        2,
        "only certified clients reached the secure pool"
    );
    println!(
        "mTLS optional: anonymous and web get 403 on /admin, ops reaches it; foreign CA refused"
    );
}

#[tokio::test]
async fn identity_headers_reach_the_backend_and_client_copies_are_removed() {
    let b = backend("B").await;
    let ca = TestCa::new("CA");
    let dir = CertDir::new("mtls-identity");
    dir.pair("a", &ca.server(&["a.example.com"]));
    dir.write("clients.pem", &ca.pem());
    let client = ca.client("web client", "spiffe://test/web");
    let proxy = TestProxy::start(config_in(
        &dir,
        "[listeners.tls]\n\
         certificates = [{ cert = \"a.pem\", key = \"a.key\" }]\n\
         client_auth = { mode = \"optional\", ca = \"clients.pem\" }\n\
         identity_headers = { subject = \"x-client-subject\", sans = \"x-client-san\", fingerprint = \"x-client-sha256\" }",
        &format!(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\n[pools.p]\nbackends = [\"{}\"]",
            b.url()
        ),
    ));
    let spoofed = |path: &str| {
        http::Request::get(path)
            .header("host", "a.example.com")
            .header("x-client-subject", "CN=admin")
            .header("X-Client-San", "spiffe://test/admin")
            .header("x-client-sha256", "00")
            .body(Bytes::new())
            .unwrap()
    };
    let stream = support::pki::connect(
        proxy.addr,
        "a.example.com",
        client_config(&ca, Some(&client), &[b"http/1.1"]),
    )
    .await
    .expect("handshake");
    let der = CertificateDer::from_pem_slice(client.cert.as_bytes()).expect("client cert");
    let fingerprint = switchyard::config::tls::sha256(&der).to_hex();
    let mut https = HttpsClient::over(stream, "a.example.com").await;
    let resp = https.send(spoofed("/echo")).await.expect("request");
    assert_eq!(resp.status, 200);
    assert_eq!(echoed(&resp, "x-client-subject"), ["CN=web client"]);
    assert_eq!(echoed(&resp, "x-client-san"), ["spiffe://test/web"]);
    assert_eq!(echoed(&resp, "x-client-sha256"), [fingerprint.as_str()]);

    // Without a certificate: the client's copies are removed and nothing is added.
    let stream = support::pki::connect(
        proxy.addr,
        "a.example.com",
        client_config(&ca, None, &[b"http/1.1"]),
    )
    .await
    .expect("handshake");
    let resp = HttpsClient::over(stream, "a.example.com")
        .await
        .send(spoofed("/echo"))
        .await
        .expect("request");
    for name in ["x-client-subject", "x-client-san", "x-client-sha256"] {
        assert!(
            echoed(&resp, name).is_empty(),
            "{name} got through: {}",
            resp.text()
        );
    }

    // Nor can they be sent through the plaintext listener.
    let plain = proxy.server.listener_addrs()[1].0;
    let resp = Client::connect(plain)
        .await
        .send(spoofed("/echo"))
        .await
        .expect("plaintext request");
    assert_eq!(echoed(&resp, "x-forwarded-proto"), ["http"]);
    for name in ["x-client-subject", "x-client-san", "x-client-sha256"] {
        assert!(
            echoed(&resp, name).is_empty(),
            "{name} got through: {}",
            resp.text()
        );
    }
    println!("identity headers: subject, SAN and fingerprint {fingerprint:.16}… set; spoofed copies removed on both listeners");
}
