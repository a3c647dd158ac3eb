//! TLS to backends: `https://` backends verified against a private CA made in the test (or
//! not: wrong CA, name mismatch, each a 502 with one log line naming the backend and the
//! reason), `server_name`, the pooled TLS connection reused, mutual TLS, a failed handshake
//! retried on another backend, session resumption, health checks over TLS; `files.rs`:
//! `--upstream-ca`, and the files checked by `switchyard check` and by a reload.

#[path = "../support/mod.rs"]
mod support;

mod backend;
mod files;
mod logs;
mod pki;
mod websocket;

use std::path::Path;
use std::time::Duration;

use backend::TlsBackend;
use pki::{Ca, Dir};
use support::{Client, TestProxy};
use switchyard::cli::Cli;
use switchyard::config::validate::from_text;
use switchyard::Config;

/// The configuration file of one pool `p` over `backends`, with `tls` as its `tls` table's
/// lines and `extra` as further lines of `[pools.p]`.
fn file_text<S: AsRef<str>>(backends: &[S], extra: &str, tls: &str) -> String {
    let list: Vec<String> = backends
        .iter()
        .map(|b| format!("{:?}", b.as_ref()))
        .collect();
    format!(
        "workers = 1\n\
         shutdown_timeout = \"5s\"\n\
         [[listeners]]\n\
         address = \"127.0.0.1:0\"\n\
         [rate_limit]\n\
         requests = 0\n\
         [pools.p]\n\
         backends = [{}]\n\
         {extra}\n\
         [pools.p.tls]\n\
         {tls}\n",
        list.join(", ")
    )
}

fn config(text: &str) -> Config {
    from_text(Path::new("upstream-tls.toml"), text)
        .unwrap_or_else(|e| panic!("config:\n{text}\n{e}"))
}

/// `key = "path"` for the `tls` table.
fn path_key(key: &str, path: &Path) -> String {
    format!("{key} = {:?}\n", path.display().to_string())
}

/// A CA, a backend serving a certificate it issued for `names`, and the CA's file.
struct Setup {
    ca: Ca,
    dir: Dir,
    ca_file: std::path::PathBuf,
}

impl Setup {
    fn new(tag: &str) -> Setup {
        let ca = Ca::new(&format!("switchyard test CA {tag}"));
        let dir = Dir::new(tag);
        let ca_file = dir.write("ca.pem", &ca.pem());
        Setup { ca, dir, ca_file }
    }

    fn ca_key(&self) -> String {
        path_key("ca", &self.ca_file)
    }
}

#[tokio::test]
async fn https_backend_verified_with_a_private_ca_reuses_one_pooled_tls_connection() {
    let s = Setup::new("pooled");
    let backend = TlsBackend::start(&s.ca.server(&["localhost", "127.0.0.1"]), None).await;
    let url = format!("https://localhost:{}", backend.port());
    let proxy = TestProxy::start(config(&file_text(&[url], "", &s.ca_key())));
    let mut client = Client::connect(proxy.addr).await;
    let n = 20;
    for i in 0..n {
        let resp = client.get(&format!("/r{i}")).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.text(), format!("tls ok /r{i}"));
        assert_eq!(
            resp.headers["x-sni"], "localhost",
            "SNI is the backend's host"
        );
    }
    assert_eq!(backend.requests(), n);
    assert_eq!(
        backend.connections(),
        1,
        "every request on the one pooled TLS connection"
    );
    assert_eq!(
        backend.h2_connections(),
        1,
        "ALPN chose HTTP/2 (protocol auto)"
    );
    println!(
        "https backend (private CA): {n} requests, {} TLS connection(s), HTTP/2 by ALPN",
        backend.connections()
    );
    proxy.stop().await;
}

#[tokio::test]
async fn new_tls_connections_resume_the_session_also_after_a_reload() {
    let s = Setup::new("resume");
    let backend = TlsBackend::start(&s.ca.server(&["127.0.0.1"]), None).await;
    let url = format!("https://127.0.0.1:{}", backend.port());
    // No idle connections: every request makes a new TLS connection.
    let text = |retries: u32| {
        let extra = format!("max_idle_connections = 0\nretries = {retries}");
        file_text(&[&url], &extra, &s.ca_key())
    };
    let file = s.dir.write("switchyard.toml", &text(2));
    let path = file.display().to_string();
    let cli =
        Cli::try_parse_args(["switchyard", "--config", &path].map(String::from)).expect("cli");
    let proxy = TestProxy::start(cli.load_config().expect("config"));
    for _ in 0..3 {
        assert_eq!(support::get(&proxy.url("/x")).await.status, 200);
    }
    assert_eq!((backend.connections(), backend.resumed()), (3, 2));
    // A reload that leaves the pool's TLS settings alone keeps its client and sessions.
    s.dir.write("switchyard.toml", &text(1));
    switchyard::reload::reload(&proxy.server, &file, &cli, "test").expect("reload");
    assert_eq!(support::get(&proxy.url("/x")).await.status, 200);
    assert_eq!((backend.connections(), backend.resumed()), (4, 3));
    println!(
        "TLS connections {}, resumed {} (one full handshake, also across a reload)",
        backend.connections(),
        backend.resumed()
    );
    proxy.stop().await;
}

#[tokio::test]
async fn an_ip_backend_sends_no_sni_and_is_verified_against_the_ip_san() {
    let s = Setup::new("ip");
    let backend = TlsBackend::start(&s.ca.server(&["127.0.0.1"]), None).await;
    let url = format!("https://127.0.0.1:{}", backend.port());
    let proxy = TestProxy::start(config(&file_text(&[url], "", &s.ca_key())));
    let resp = support::get(&proxy.url("/ip")).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.headers["x-sni"], "", "no SNI for an IP address");
    println!("https://127.0.0.1 backend: 200, SNI none, IP SAN verified");
    proxy.stop().await;
}

#[tokio::test]
async fn a_backend_signed_by_another_ca_is_a_502_with_one_log_line_naming_it() {
    logs::capture();
    let s = Setup::new("wrong-ca");
    let other = Ca::new("some other CA");
    let backend = TlsBackend::start(&other.server(&["localhost"]), None).await;
    let url = format!("https://localhost:{}", backend.port());
    let text = file_text(&[&url], "retries = 0", &s.ca_key());
    let proxy = TestProxy::start(config(&text));
    let resp = support::get(&proxy.url("/x")).await;
    assert_eq!(resp.status, 502);
    assert_eq!(resp.text(), "Error forwarding request\n");
    assert_eq!(backend.requests(), 0);
    let label = format!("backend={url}");
    let lines = logs::lines_with(&[&label, "certificate verify failed"]);
    assert_eq!(
        lines.len(),
        1,
        "one line names the backend and why: {lines:#?}"
    );
    assert!(lines[0].contains("unknown issuer"), "{}", lines[0]);
    println!("wrong CA: 502, log: {}", lines[0].trim());
    proxy.stop().await;

    // insecure_skip_verify takes any certificate, and says so once, when the proxy starts.
    let tls = format!("{}insecure_skip_verify = true\n", s.ca_key());
    let before = logs::lines_with(&["insecure_skip_verify is on"]).len();
    let proxy = TestProxy::start(config(&file_text(&[url], "", &tls)));
    let resp = support::get(&proxy.url("/x")).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let warned = logs::lines_with(&["insecure_skip_verify is on"]);
    assert_eq!(warned.len(), before + 1, "one warning: {warned:#?}");
    assert!(warned[before].contains("WARN"), "{}", warned[before]);
    println!("wrong CA with insecure_skip_verify: 200, one warning");
    proxy.stop().await;
}

#[tokio::test]
async fn a_failed_handshake_is_retried_on_another_backend() {
    let s = Setup::new("retry");
    let bad = TlsBackend::start(&Ca::new("untrusted").server(&["127.0.0.1"]), None).await;
    let good = TlsBackend::start(&s.ca.server(&["127.0.0.1"]), None).await;
    let urls = [bad.port(), good.port()].map(|p| format!("https://127.0.0.1:{p}"));
    let proxy = TestProxy::start(config(&file_text(&urls, "retries = 1", &s.ca_key())));
    let mut client = Client::connect(proxy.addr).await;
    for _ in 0..6 {
        let resp = client
            .send(
                http::Request::post("/not-idempotent")
                    .body(bytes::Bytes::from_static(b"body"))
                    .expect("request"),
            )
            .await
            .expect("POST");
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.served_by(), Some(good.port()));
    }
    assert_eq!(bad.requests(), 0);
    println!("failed handshake retried: 6/6 POSTs answered by the good backend");
    proxy.stop().await;
}

#[tokio::test]
async fn a_name_mismatch_is_a_502_and_server_name_makes_it_pass() {
    logs::capture();
    let s = Setup::new("name");
    let backend = TlsBackend::start(&s.ca.server(&["api.internal"]), None).await;
    let url = format!("https://127.0.0.1:{}", backend.port());
    let proxy = TestProxy::start(config(&file_text(&[&url], "", &s.ca_key())));
    let resp = support::get(&proxy.url("/x")).await;
    assert_eq!(resp.status, 502);
    let lines = logs::lines_with(&[&format!("backend={url}"), "certificate verify failed"]);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("not valid for name"), "{}", lines[0]);
    assert!(lines[0].contains("see tls.server_name"), "{}", lines[0]);
    println!("name mismatch: 502, log: {}", lines[0].trim());
    proxy.stop().await;

    let tls = format!("{}server_name = \"api.internal\"\n", s.ca_key());
    let proxy = TestProxy::start(config(&file_text(&[url], "", &tls)));
    let resp = support::get(&proxy.url("/x")).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.headers["x-sni"], "api.internal");
    println!("server_name = \"api.internal\": 200, SNI api.internal");
    proxy.stop().await;
}

#[tokio::test]
async fn a_backend_requiring_a_client_certificate_gets_the_configured_one() {
    logs::capture();
    let s = Setup::new("mtls");
    let clients = Ca::new("client CA");
    let backend = TlsBackend::start(&s.ca.server(&["127.0.0.1"]), Some(&clients)).await;
    let url = format!("https://127.0.0.1:{}", backend.port());

    let without = TestProxy::start(config(&file_text(&[&url], "", &s.ca_key())));
    let resp = support::get(&without.url("/x")).await;
    assert_eq!(resp.status, 502, "no client certificate: {}", resp.text());
    assert_eq!(backend.requests(), 0);
    // TLS 1.3: the backend refuses after the proxy's side of the handshake is done, so its
    // alert comes as the answer to the request.
    let lines = logs::lines_with(&[&format!("backend={url}"), "CertificateRequired"]);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    println!(
        "mTLS without a client certificate: 502, log: {}",
        lines[0].trim()
    );
    without.stop().await;

    let client = clients.client("switchyard");
    let tls = format!(
        "{}{}{}",
        s.ca_key(),
        path_key("cert", &s.dir.write("client.pem", &client.cert_pem)),
        path_key("key", &s.dir.write("client.key", &client.key_pem))
    );
    let with = TestProxy::start(config(&file_text(&[url], "", &tls)));
    let resp = support::get(&with.url("/x")).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.headers["x-client-cert"], "yes");
    assert_eq!(backend.requests(), 1);
    println!("mTLS backend: without a client certificate 502, with one 200");
    with.stop().await;
}

#[tokio::test]
async fn health_checks_run_over_tls() {
    let s = Setup::new("health");
    let good = TlsBackend::start(&s.ca.server(&["127.0.0.1"]), None).await;
    let bad = TlsBackend::start(&Ca::new("untrusted").server(&["127.0.0.1"]), None).await;
    let urls = [good.port(), bad.port()].map(|p| format!("https://127.0.0.1:{p}"));
    let checks = "[pools.p.health_check]\npath = \"/health\"\ninterval = \"50ms\"\ntimeout = \"1s\"\nunhealthy_threshold = 1\n";
    let proxy = TestProxy::start(config(&format!(
        "{}{checks}",
        file_text(&urls, "", &s.ca_key())
    )));
    let bad_url = urls[1].clone();
    let out = support::eventually(Duration::from_secs(4), || async {
        let health = proxy.health().await;
        let backends = health["backends"].as_array().cloned().unwrap_or_default();
        let bad_out = backends
            .iter()
            .any(|b| b["url"] == bad_url.as_str() && b["healthy"] == false);
        bad_out && good.health_checks() >= 2
    })
    .await;
    assert!(
        out,
        "the untrusted backend is taken out; the good one is checked over TLS"
    );
    for _ in 0..4 {
        let resp = support::get(&proxy.url("/x")).await;
        assert_eq!(resp.served_by(), Some(good.port()));
    }
    println!(
        "health checks over TLS: good backend checked {} times, untrusted one out",
        good.health_checks()
    );
    proxy.stop().await;
}

#[tokio::test]
async fn alpn_picks_the_protocol_and_a_pool_can_hold_to_http1() {
    let s = Setup::new("alpn");
    let cert = s.ca.server(&["localhost"]);
    let h1_only = TlsBackend::start_with_alpn(&cert, None, &[b"http/1.1"]).await;
    let both = TlsBackend::start(&cert, None).await;
    let auto_h1 = TestProxy::start(config(&file_text(
        &[format!("https://localhost:{}", h1_only.port())],
        "",
        &s.ca_key(),
    )));
    let held = TestProxy::start(config(&file_text(
        &[format!("https://localhost:{}", both.port())],
        "protocol = \"http1\"",
        &s.ca_key(),
    )));
    for proxy in [&auto_h1, &held] {
        let mut client = Client::connect(proxy.addr).await;
        for _ in 0..5 {
            assert_eq!(client.get("/x").await.status, 200);
        }
    }
    println!(
        "backend offering only http/1.1: {} of {} connections HTTP/2; pool protocol http1 \
         against an h2 backend: {} of {}",
        h1_only.h2_connections(),
        h1_only.connections(),
        both.h2_connections(),
        both.connections()
    );
    assert_eq!((h1_only.h2_connections(), h1_only.connections()), (0, 1));
    assert_eq!((both.h2_connections(), both.connections()), (0, 1));
    auto_h1.stop().await;
    held.stop().await;
}
