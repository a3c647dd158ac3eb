//! Certificates reloaded in place: replaced on disk while clients keep connecting (no failed
//! handshake, then the new one is served), bad new pairs rejected while the one in force
//! stays, a configuration reload reading them anew, the expiry in `/health` and `/metrics`,
//! and session resumption (on, kept across a reload, and off).

mod support;

use std::sync::Arc;
use std::time::Duration;

use rustls::HandshakeKind;
use support::pki::{
    client_config, config_in, connect, https_get, metrics, peer_names, resuming, CertDir,
    HttpsClient, TestCa,
};
use support::{backend, TestProxy};
use tokio::sync::mpsc;
use tokio::time::Instant;

const WAIT: Duration = Duration::from_secs(5);

fn single_certificate() -> &'static str {
    r#"tls = { certificates = [{ cert = "site.pem", key = "site.key" }] }"#
}

/// The names of the certificate served for `a.example.com`, or the handshake's error.
async fn served(proxy: &TestProxy, config: Arc<rustls::ClientConfig>) -> Vec<String> {
    let stream = connect(proxy.addr, "a.example.com", config)
        .await
        .expect("handshake");
    peer_names(&stream)
}

#[tokio::test]
async fn certificates_replaced_on_disk_while_clients_connect_fail_no_handshake() {
    let b = backend("B").await;
    let ca = TestCa::new("CA");
    let dir = CertDir::new("hot-reload");
    dir.pair("site", &ca.server(&["a.example.com"]));
    let proxy = TestProxy::start(config_in(
        &dir,
        single_certificate(),
        &format!("[pools.p]\nbackends = [\"{}\"]", b.url()),
    ));
    let addr = proxy.addr;
    let shared = proxy.server.shared().clone();
    let cli = switchyard::cli::Cli::try_parse_args(["switchyard".to_owned()]).expect("cli");
    let (controls, receiver) = mpsc::channel(1);
    let supervisor =
        tokio::spawn(async move { switchyard::supervise(proxy.server, &cli, receiver).await });

    let config = client_config(&ca, None, &[b"http/1.1"]);
    let next = ca.server(&["a.example.com", "v2.example.com"]);
    let deadline = Instant::now() + Duration::from_millis(4500);
    let (mut connections, mut failures, mut first_new) = (0u32, Vec::new(), None);
    while Instant::now() < deadline && (connections < 200 || first_new.is_none()) {
        if connections == 50 {
            // Replaced as deploy tools do: the certificate, then the key, each renamed over.
            dir.pair("site", &next);
        }
        connections += 1;
        let result = async {
            let stream = connect(addr, "a.example.com", config.clone()).await?;
            let names = peer_names(&stream);
            let resp = HttpsClient::over(stream, "a.example.com")
                .await
                .get("/")
                .await;
            Ok::<_, std::io::Error>((names, resp.status))
        }
        .await;
        match result {
            Ok((names, 200)) => {
                if names.len() == 2 && first_new.is_none() {
                    first_new = Some(connections);
                }
            }
            Ok((_, status)) => failures.push(format!("status {status}")),
            Err(e) => failures.push(e.to_string()),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}",
        failures.len()
    );
    let first_new = first_new.expect("the new certificate was never served");
    assert!(connections >= 200, "only {connections} connections in time");
    let names: Vec<Vec<String>> = shared.certificates().into_iter().map(|c| c.names).collect();
    assert_eq!(names, [["a.example.com", "v2.example.com"]]);

    controls
        .send(switchyard::Control::Shutdown { signal: "test" })
        .await
        .expect("supervise is running");
    let report = tokio::time::timeout(WAIT, supervisor)
        .await
        .expect("supervise returned")
        .expect("supervise did not panic");
    assert!(report.drained);
    println!(
        "hot reload: {connections} connections, 0 failed handshakes, new certificate from connection {first_new} (replaced after 50)"
    );
}

#[tokio::test]
async fn a_bad_new_pair_is_rejected_and_the_one_in_force_stays() {
    let b = backend("B").await;
    let ca = TestCa::new("CA");
    let dir = CertDir::new("bad-reload");
    let first = ca.server(&["a.example.com"]);
    dir.pair("site", &first);
    let config = config_in(
        &dir,
        single_certificate(),
        &format!("[pools.p]\nbackends = [\"{}\"]", b.url()),
    );
    let proxy = TestProxy::start(config.clone());
    let client = client_config(&ca, None, &[b"http/1.1"]);
    assert_eq!(served(&proxy, client.clone()).await, ["a.example.com"]);

    // A key that is not the certificate's, an expired certificate, a missing file: each is
    // rejected, and the first pair is still served.
    let other = ca.server(&["a.example.com", "other.example.com"]);
    dir.write("site.pem", &other.cert);
    assert!(
        !proxy.server.reload_certificates(),
        "mismatched key accepted"
    );
    let expired = ca.expired_server(&["a.example.com", "old.example.com"]);
    dir.pair("site", &expired);
    assert!(!proxy.server.reload_certificates(), "expired pair accepted");
    std::fs::remove_file(dir.path("site.pem")).expect("remove");
    assert!(!proxy.server.reload_certificates(), "missing file accepted");
    assert_eq!(served(&proxy, client.clone()).await, ["a.example.com"]);

    // A good pair is put in force, and shows in /health and /metrics.
    let good = ca.server(&["a.example.com", "v2.example.com"]);
    dir.pair("site", &good);
    assert!(proxy.server.reload_certificates(), "good pair rejected");
    assert!(!proxy.server.reload_certificates(), "nothing changed since");
    assert_eq!(
        served(&proxy, client.clone()).await,
        ["a.example.com", "v2.example.com"]
    );
    let health = https_get(
        proxy.addr,
        "a.example.com",
        "a.example.com",
        "/health",
        client.clone(),
    )
    .await
    .expect("/health over HTTPS")
    .json();
    let certificate = &health["certificates"][0];
    assert_eq!(certificate["names"][1], "v2.example.com", "{health:#}");
    assert_eq!(certificate["listener"], proxy.addr.to_string());
    assert!(
        certificate["expires"]
            .as_str()
            .is_some_and(|e| e.starts_with("4096-01-01")),
        "{health:#}"
    );
    let text = switchyard::admin::prometheus::to_openmetrics(
        &switchyard::admin::snapshot::Snapshot::read(
            proxy.server.shared(),
            &proxy.server.shared().state(),
        ),
    );
    let metric = format!(
        "switchyard_tls_certificate_expiry_timestamp_seconds{{listener=\"{}\",name=\"a.example.com\",file=\"{}\"}} ",
        proxy.addr,
        dir.path("site.pem").display()
    );
    assert!(text.contains(&metric), "{metric} missing:\n{text}");

    // A configuration reload reads the files anew, all or nothing.
    dir.pair("site", &first);
    proxy.server.reload(config).expect("reload");
    assert_eq!(served(&proxy, client).await, ["a.example.com"]);
    println!("bad pairs (mismatched key, expired, missing) rejected; good pair reloaded; expiry in /health and /metrics");
}

#[tokio::test]
async fn sessions_resume_across_a_reload_unless_resumption_is_off() {
    let b = backend("B").await;
    let ca = TestCa::new("CA");
    let dir = CertDir::new("resumption");
    dir.pair("site", &ca.server(&["a.example.com"]));
    let pools = format!("[pools.p]\nbackends = [\"{}\"]", b.url());
    let kinds = |proxy: &TestProxy, config: Arc<rustls::ClientConfig>| {
        let addr = proxy.addr;
        async move {
            let stream = connect(addr, "a.example.com", config)
                .await
                .expect("handshake");
            let kind = stream.get_ref().1.handshake_kind();
            // Reading the response also reads the session tickets sent after the handshake.
            let resp = HttpsClient::over(stream, "a.example.com")
                .await
                .get("/")
                .await;
            assert_eq!(resp.status, 200);
            kind
        }
    };
    let on = TestProxy::start(config_in(&dir, single_certificate(), &pools));
    let client = resuming(&client_config(&ca, None, &[b"http/1.1"]));
    assert_eq!(kinds(&on, client.clone()).await, Some(HandshakeKind::Full));
    assert_eq!(
        kinds(&on, client.clone()).await,
        Some(HandshakeKind::Resumed)
    );
    dir.pair("site", &ca.server(&["a.example.com", "v2.example.com"]));
    assert!(on.server.reload_certificates());
    assert_eq!(
        kinds(&on, client.clone()).await,
        Some(HandshakeKind::Resumed),
        "tickets survive a certificate reload"
    );

    let off = TestProxy::start(config_in(
        &dir,
        r#"tls = { certificates = [{ cert = "site.pem", key = "site.key" }], resumption = false }"#,
        &pools,
    ));
    let client = resuming(&client_config(&ca, None, &[b"http/1.1"]));
    for _ in 0..3 {
        assert_eq!(kinds(&off, client.clone()).await, Some(HandshakeKind::Full));
    }
    assert_eq!(metrics(&off)["tls_handshakes"], 3);
    println!("resumption: on resumes (also after a reload); off: 3 full handshakes");
}
