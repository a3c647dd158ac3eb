//! HTTPS listeners with real handshakes (certificates made here with rcgen, clients on
//! tokio-rustls and curl): HTTP/1.1 through to a backend, ALPN, the certificate chosen by SNI
//! (exact, wildcard, default, refused), the 421 rule, HSTS, the redirect of a plaintext
//! listener, the TLS flags, and `switchyard check` on bad certificate files.

mod support;

use std::time::Duration;

use support::pki::{
    client_config, config_in, connect, echoed, https_get, metrics, peer_names, position, toml_path,
    CertDir, HttpsClient, TestCa,
};
use support::{backend, TestProxy};

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn https_carries_http1_to_a_backend_and_offers_h2_and_http1_in_alpn() {
    let b = backend("B").await;
    let ca = TestCa::new("test CA");
    let dir = CertDir::new("basic");
    dir.pair("a", &ca.server(&["a.example.com"]));
    let proxy = TestProxy::start(config_in(
        &dir,
        r#"tls = { certificates = [{ cert = "a.pem", key = "a.key" }] }"#,
        &format!("[pools.p]\nbackends = [\"{}\"]", b.url()),
    ));
    let host = format!("a.example.com:{}", proxy.addr.port());

    let http1 = client_config(&ca, None, &[b"http/1.1"]);
    let stream = connect(proxy.addr, "a.example.com", http1.clone())
        .await
        .expect("TLS handshake");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let version = stream.get_ref().1.protocol_version();
    let mut client = HttpsClient::over(stream, &host).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let resp = client.get("/echo").await;
        statuses.push(resp.status);
        assert_eq!(echoed(&resp, "x-forwarded-proto"), ["https"]);
        assert_eq!(echoed(&resp, "host"), [host.as_str()]);
    }
    assert_eq!(
        statuses,
        [200, 200, 200],
        "three requests on one connection"
    );
    assert_eq!(b.requests(), 3);

    // Both protocols are offered; a client that prefers h2 gets it negotiated.
    let both = client_config(&ca, None, &[b"h2", b"http/1.1"]);
    let stream = connect(proxy.addr, "a.example.com", both)
        .await
        .expect("TLS handshake");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    // The server counts a handshake once it has the client's last message.
    assert_eventually!(
        WAIT,
        || async { metrics(&proxy)["tls_handshakes"] == 2 },
        "two handshakes are not counted: {:#}",
        metrics(&proxy)
    );
    println!("HTTPS: {version:?}, 3 requests on one connection, ALPN h2 and http/1.1 offered");
}

#[tokio::test]
async fn sni_chooses_exact_then_wildcard_then_the_default_or_refuses() {
    let b = backend("B").await;
    let ca = TestCa::new("test CA");
    let dir = CertDir::new("sni");
    dir.pair("a", &ca.server(&["a.example.com"]));
    dir.pair("wild", &ca.server(&["*.example.net"]));
    dir.pair("default", &ca.server(&["default.example.org", "127.0.0.1"]));
    let certificates = r#"certificates = [
        { cert = "a.pem", key = "a.key" },
        { cert = "wild.pem", key = "wild.key" },
        { cert = "default.pem", key = "default.key" },
    ]"#;
    let pools = format!("[pools.p]\nbackends = [\"{}\"]", b.url());
    let proxy = TestProxy::start(config_in(
        &dir,
        &format!("[listeners.tls]\n{certificates}\ndefault = \"default.example.org\""),
        &pools,
    ));
    let trusting = client_config(&ca, None, &[b"http/1.1"]);
    // The default certificate does not cover these names: accept any certificate to see it.
    let names = |sni: &'static str| {
        let config = trusting.clone();
        async move {
            let stream = connect(proxy.addr, sni, config).await;
            stream.map(|s| peer_names(&s))
        }
    };
    assert_eq!(names("a.example.com").await.unwrap(), ["a.example.com"]);
    assert_eq!(names("x.example.net").await.unwrap(), ["*.example.net"]);
    assert_eq!(names("A.Example.COM").await.unwrap(), ["a.example.com"]);
    // No SNI (a client connecting to an IP address sends none): the default certificate.
    assert_eq!(
        names("127.0.0.1").await.unwrap(),
        ["default.example.org", "127.0.0.1"]
    );
    // Unknown names get the default certificate, which the client rightly refuses.
    let unknown = names("unknown.test").await.unwrap_err();
    assert!(
        unknown.to_string().contains("certificate"),
        "unknown name: {unknown}"
    );
    // One label only for a wildcard: a.b.example.net gets the default too.
    assert!(names("a.b.example.net").await.is_err());

    // With unknown_name = "reject", the handshake fails on the server's side.
    let rejecting = TestProxy::start(config_in(
        &dir,
        &format!("[listeners.tls]\n{certificates}\nunknown_name = \"reject\""),
        &pools,
    ));
    let err = connect(rejecting.addr, "unknown.test", trusting.clone())
        .await
        .expect_err("a name no certificate covers is refused");
    assert!(
        connect(rejecting.addr, "a.example.com", trusting.clone())
            .await
            .is_ok(),
        "known names still work"
    );
    assert_eventually!(
        WAIT,
        || async { metrics(&rejecting)["tls_handshake_failures"] == 1 },
        "the refused handshake is not counted: {:#}",
        metrics(&rejecting)
    );
    println!("SNI: exact, wildcard, case-insensitive, default without SNI; reject: {err}");
}

#[tokio::test]
async fn a_host_the_connection_s_certificate_does_not_cover_gets_421() {
    let b = backend("B").await;
    let ca = TestCa::new("test CA");
    let dir = CertDir::new("misdirected");
    dir.pair("a", &ca.server(&["a.example.com"]));
    dir.pair("b", &ca.server(&["b.example.com", "*.b.example.com"]));
    let proxy = TestProxy::start(config_in(
        &dir,
        r#"tls = { certificates = [{ cert = "a.pem", key = "a.key" }, { cert = "b.pem", key = "b.key" }] }"#,
        &format!("[pools.p]\nbackends = [\"{}\"]", b.url()),
    ));
    let port = proxy.addr.port();
    let config = client_config(&ca, None, &[b"http/1.1"]);
    let get = |sni: &'static str, host: String| {
        let config = config.clone();
        async move {
            https_get(proxy.addr, sni, &host, "/", config)
                .await
                .expect("request")
        }
    };
    assert_eq!(
        get("a.example.com", format!("a.example.com:{port}"))
            .await
            .status,
        200
    );
    assert_eq!(
        get("a.example.com", "A.EXAMPLE.COM".into()).await.status,
        200
    );
    // b.example.com has a certificate of its own, but this connection was made for a.
    let misdirected = get("a.example.com", format!("b.example.com:{port}")).await;
    assert_eq!(misdirected.status, 421);
    assert!(
        misdirected.text().contains("Misdirected"),
        "{}",
        misdirected.text()
    );
    assert_eq!(
        get("b.example.com", "x.b.example.com".into()).await.status,
        200
    );
    assert_eq!(
        get("b.example.com", "a.example.com".into()).await.status,
        421
    );
    assert_eq!(b.requests(), 3, "421s never reach the backend");
    let m = metrics(&proxy);
    assert_eq!(m["errors"], 2, "{m:#}");
    println!("421: 2 misdirected requests answered by the proxy, 3 reached the backend");
}

#[tokio::test]
async fn curl_gets_https_with_hsts() {
    let b = backend("B").await;
    let ca = TestCa::new("test CA");
    let dir = CertDir::new("curl");
    dir.pair("a", &ca.server(&["a.example.com"]));
    let ca_file = dir.write("ca.pem", &ca.pem());
    let proxy = TestProxy::start(config_in(
        &dir,
        "[listeners.tls]\n\
         certificates = [{ cert = \"a.pem\", key = \"a.key\" }]\n\
         hsts = { max_age = \"1h\", include_subdomains = true }",
        &format!("[pools.p]\nbackends = [\"{}\"]", b.url()),
    ));
    let port = proxy.addr.port();
    let args = vec![
        "--silent".to_owned(),
        "--show-error".to_owned(),
        "--http1.1".to_owned(),
        "--include".to_owned(),
        "--max-time".to_owned(),
        "4".to_owned(),
        "--cacert".to_owned(),
        ca_file.display().to_string(),
        "--resolve".to_owned(),
        format!("a.example.com:{port}:127.0.0.1"),
        format!("https://a.example.com:{port}/hello"),
    ];
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("/usr/bin/curl")
            .args(&args)
            .output()
    })
    .await
    .expect("curl thread")
    .expect("run curl");
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "curl failed: {}\n{out}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.to_ascii_lowercase()
            .contains("strict-transport-security: max-age=3600; includesubdomains"),
        "{out}"
    );
    assert!(out.ends_with("B\n"), "{out}");
    println!("curl --cacert: 200 over HTTPS with HSTS max-age=3600; includeSubDomains");
}

#[tokio::test]
async fn curl_speaks_http2_over_tls_when_alpn_chooses_it() {
    let b = backend("B").await;
    let ca = TestCa::new("test CA");
    let dir = CertDir::new("curl-h2");
    dir.pair("a", &ca.server(&["a.example.com"]));
    let ca_file = dir.write("ca.pem", &ca.pem());
    let proxy = TestProxy::start(config_in(
        &dir,
        "[listeners.tls]\ncertificates = [{ cert = \"a.pem\", key = \"a.key\" }]",
        &format!("[pools.p]\nbackends = [\"{}\"]", b.url()),
    ));
    let port = proxy.addr.port();
    let run = |version: &'static str| {
        let args = vec![
            "--silent".to_owned(),
            "--show-error".to_owned(),
            version.to_owned(),
            "--write-out".to_owned(),
            " %{http_version}".to_owned(),
            "--max-time".to_owned(),
            "4".to_owned(),
            "--cacert".to_owned(),
            ca_file.display().to_string(),
            "--resolve".to_owned(),
            format!("a.example.com:{port}:127.0.0.1"),
            format!("https://a.example.com:{port}/hello"),
        ];
        tokio::task::spawn_blocking(move || {
            std::process::Command::new("/usr/bin/curl")
                .args(&args)
                .output()
        })
    };
    let h2 = run("--http2")
        .await
        .expect("curl thread")
        .expect("run curl");
    let h1 = run("--http1.1")
        .await
        .expect("curl thread")
        .expect("run curl");
    let (h2_out, h1_out) = (
        String::from_utf8_lossy(&h2.stdout).into_owned(),
        String::from_utf8_lossy(&h1.stdout).into_owned(),
    );
    println!("curl --http2 over TLS: {h2_out:?}; curl --http1.1: {h1_out:?}");
    assert!(
        h2.status.success(),
        "{}",
        String::from_utf8_lossy(&h2.stderr)
    );
    assert_eq!(h2_out, "B\n 2", "ALPN h2: answered over HTTP/2");
    assert_eq!(h1_out, "B\n 1.1", "ALPN http/1.1: answered over HTTP/1.1");
}

#[tokio::test]
async fn a_plaintext_listener_redirects_to_https_but_keeps_health() {
    let b = backend("B").await;
    let dir = CertDir::new("redirect");
    let proxy = TestProxy::start(config_in(
        &dir,
        "redirect_to_https = true\nhttps_port = 8443",
        &format!("[pools.p]\nbackends = [\"{}\"]", b.url()),
    ));
    let resp = support::raw(
        proxy.addr,
        b"GET /path?q=1 HTTP/1.1\r\nHost: Example.com:8080\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 308"), "{resp}");
    assert!(
        resp.contains("location: https://example.com:8443/path?q=1\r\n"),
        "{resp}"
    );
    assert_eq!(proxy.health().await["status"], "UP");
    assert_eq!(b.requests(), 0);

    // On 443 the port is left out.
    let default_port = TestProxy::start(config_in(
        &dir,
        "redirect_to_https = true",
        &format!("[pools.p]\nbackends = [\"{}\"]", b.url()),
    ));
    let resp = support::raw(
        default_port.addr,
        b"GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    assert!(
        resp.contains("location: https://example.com/\r\n"),
        "{resp}"
    );
    println!("redirect: 308 to https://{{host}}:8443{{uri}}, /health still served");
}

#[tokio::test]
async fn tls_flags_make_the_listener_https() {
    let b = backend("B").await;
    let ca = TestCa::new("test CA");
    let dir = CertDir::new("flags");
    let (cert, key) = dir.pair("a", &ca.server(&["a.example.com"]));
    let args = [
        "switchyard",
        "--backends",
        &b.url(),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--tls-resumption",
        "off",
        "--rate-limit",
        "0",
    ];
    let cli =
        switchyard::cli::Cli::try_parse_args(args.iter().map(|s| s.to_string())).expect("flags");
    let mut config = cli.load_config().expect("config from flags");
    config.workers = 1;
    let tls = config.listeners[0].tls.clone().expect("HTTPS listener");
    assert!(!tls.resumption);
    let proxy = TestProxy::start(config);
    let resp = https_get(
        proxy.addr,
        "a.example.com",
        "a.example.com",
        "/",
        client_config(&ca, None, &[b"http/1.1"]),
    )
    .await
    .expect("HTTPS request");
    assert_eq!((resp.status, resp.text().as_str()), (200, "B\n"));

    // --tls-cert alone is an error, and so is a key of another certificate.
    let alone = ["switchyard", "--tls-cert", cert.to_str().unwrap()];
    assert!(switchyard::cli::Cli::try_parse_args(alone.iter().map(|s| s.to_string())).is_err());
    let (_, other_key) = dir.pair("other", &ca.server(&["other.example.com"]));
    let mismatched = [
        "switchyard",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        other_key.to_str().unwrap(),
    ];
    let err = switchyard::cli::Cli::try_parse_args(mismatched.iter().map(|s| s.to_string()))
        .expect("flags parse")
        .load_config()
        .expect_err("a key that is not the certificate's");
    assert!(err.to_string().contains("does not match"), "{err}");
    println!("flags: --tls-cert/--tls-key serve HTTPS; {err}");
}

#[test]
fn check_locates_a_mismatched_key_an_expired_certificate_and_uncovered_names() {
    let ca = TestCa::new("test CA");
    let dir = CertDir::new("check");
    let (a_cert, _) = dir.pair("a", &ca.server(&["a.example.com"]));
    let (_, other_key) = dir.pair("other", &ca.server(&["other.example.com"]));
    let (old_cert, old_key) = dir.pair("old", &ca.expired_server(&["old.example.com"]));
    let text = format!(
        "[[listeners]]\n\
         address = \"127.0.0.1:0\"\n\
         [listeners.tls]\n\
         certificates = [\n  \
           {{ cert = {}, key = {} }},\n  \
           {{ cert = {}, key = {} }},\n  \
           {{ cert = \"a.pem\", key = \"missing.key\" }},\n\
         ]\n\
         [pools.p]\n\
         backends = [\"http://127.0.0.1:1\"]\n",
        toml_path(&a_cert),
        toml_path(&other_key),
        toml_path(&old_cert),
        toml_path(&old_key),
    );
    let path = dir.write("switchyard.toml", &text);
    let output = support::process::command(&["check", "--config", path.to_str().unwrap()])
        .output()
        .expect("run switchyard check");
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{err}");
    let file = path.display().to_string();
    let at = |after: &str, needle: &str| {
        let (line, column) = position(&text, after, needle);
        format!("{file}:{line}:{column}")
    };
    for expected in [
        format!(
            "{}: listeners[0].tls.certificates[0].key: the private key in {} does not match the certificate in {}",
            at(&format!("{}, key = ", toml_path(&a_cert)), "\""),
            other_key.display(),
            a_cert.display()
        ),
        format!(
            "{}: listeners[0].tls.certificates[1].cert: the certificate in {} expired on 2020-01-01T00:00:00Z",
            at(&format!("{} }},\n  {{ cert = ", toml_path(&other_key)), "\""),
            old_cert.display()
        ),
        format!(
            "{}: listeners[0].tls.certificates[2].key: cannot read {}",
            at("\"a.pem\", key = ", "\""),
            dir.path("missing.key").display()
        ),
    ] {
        assert!(err.contains(&expected), "missing\n  {expected}\nin\n{err}");
    }

    // Names: a certificate's configured names and the default must be covered.
    let names = "[[listeners]]\n\
         address = \"127.0.0.1:0\"\n\
         [listeners.tls]\n\
         certificates = [{ cert = \"a.pem\", key = \"a.key\", names = [\"b.example.com\"] }]\n\
         default = \"c.example.com\"\n\
         [pools.p]\n\
         backends = [\"http://127.0.0.1:1\"]\n";
    let path = dir.write("names.toml", names);
    let err = switchyard::config::validate::from_text(&path, names)
        .expect_err("uncovered names")
        .to_string();
    for expected in [
        ":4:59: listeners[0].tls.certificates[0].names: \"b.example.com\" is not covered by the certificate in",
        ":5:11: listeners[0].tls.default: no certificate covers \"c.example.com\"",
    ] {
        assert!(err.contains(expected), "missing\n  {expected}\nin\n{err}");
    }
    // Routes: with only HTTPS listeners, an exact host no certificate covers; a client
    // certificate condition where no listener asks for client certificates.
    let routes = "[[listeners]]\n\
         address = \"127.0.0.1:0\"\n\
         tls = { certificates = [{ cert = \"a.pem\", key = \"a.key\" }] }\n\
         [pools.p]\n\
         backends = [\"http://127.0.0.1:1\"]\n\
         [[routes]]\n\
         match = { host = \"d.example.com\", client_san = \"spiffe://x\" }\n\
         pool = \"p\"\n";
    let path = dir.write("routes.toml", routes);
    let err = switchyard::config::validate::from_text(&path, routes)
        .expect_err("uncovered route host")
        .to_string();
    for expected in [
        ":7:18: routes[0].match.host: no certificate of the HTTPS listeners covers \"d.example.com\"",
        ":7:48: routes[0].match.client_san: no listener asks for client certificates",
    ] {
        assert!(err.contains(expected), "missing\n  {expected}\nin\n{err}");
    }
    println!("check: mismatched key, expired certificate, unreadable key, 3 uncovered names and a client_san without client_auth located");
}
