//! The files of TLS to backends: `--upstream-ca`, what `switchyard check` says of an
//! unreadable CA and a mismatched client key, and a reload with a bad CA.

use super::backend::TlsBackend;
use super::{file_text, path_key, support, Setup};
use support::{Client, TestProxy};
use switchyard::cli::Cli;

#[tokio::test]
async fn upstream_ca_flag_verifies_backends_given_by_flag() {
    let s = Setup::new("flag");
    let backend = TlsBackend::start(&s.ca.server(&["127.0.0.1"]), None).await;
    let url = format!("https://127.0.0.1:{}", backend.port());
    let ca = s.ca_file.display().to_string();
    let args = [
        "switchyard",
        "--listen",
        "127.0.0.1:0",
        "--backends",
        &url,
        "--upstream-ca",
        &ca,
    ];
    let cli = Cli::try_parse_args(args.map(String::from)).expect("flags");
    let mut config = cli.load_config().expect("config");
    config.workers = 1;
    let proxy = TestProxy::start(config);
    let resp = support::get(&proxy.url("/flag")).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    println!("--backends https://... --upstream-ca ca.pem: 200");
    proxy.stop().await;

    let missing = s.dir.path().join("missing.pem").display().to_string();
    let args = ["switchyard", "--backends", &url, "--upstream-ca", &missing];
    let cli = Cli::try_parse_args(args.map(String::from)).expect("flags");
    let err = cli.load_config().expect_err("an unreadable CA").to_string();
    assert!(err.starts_with("--upstream-ca: cannot read"), "{err}");
}

#[test]
fn check_names_file_line_and_key_of_an_unreadable_ca_and_a_mismatched_key() {
    let s = Setup::new("check");
    let client = s.ca.client("switchyard");
    let other = s.ca.client("someone else");
    let missing = s.dir.path().join("missing-ca.pem");
    let tls = format!(
        "{}{}{}",
        path_key("ca", &missing),
        path_key("cert", &s.dir.write("client.pem", &client.cert_pem)),
        path_key("key", &s.dir.write("other.key", &other.key_pem))
    );
    let text = file_text(&["https://127.0.0.1:8443"], "", &tls);
    let file = s.dir.write("switchyard.toml", &text);
    let out = support::process::command(&["check", "--config", &file.display().to_string()])
        .output()
        .expect("run switchyard check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let at = |key: &str| {
        let line = text
            .lines()
            .position(|l| l.starts_with(key))
            .expect("key line")
            + 1;
        format!(
            "{}:{line}:{}: pools.p.tls.{key}: ",
            file.display(),
            key.len() + 4
        )
    };
    for (key, says) in [
        ("ca", "cannot read"),
        ("key", "does not match the certificate"),
    ] {
        let at = at(key);
        let found = stderr
            .lines()
            .any(|l| l.starts_with(&at) && l.contains(says));
        assert!(found, "no line {at:?}...{says:?} in:\n{stderr}");
    }
    println!(
        "switchyard check: {}",
        stderr.lines().next().unwrap_or_default()
    );
}

#[tokio::test]
async fn a_reload_with_a_bad_ca_keeps_the_configuration_in_force() {
    let s = Setup::new("reload");
    let backend = TlsBackend::start(&s.ca.server(&["127.0.0.1"]), None).await;
    let url = format!("https://127.0.0.1:{}", backend.port());
    // No idle connections: the request after the reload needs a new TLS handshake.
    let text = file_text(&[url], "max_idle_connections = 0", &s.ca_key());
    let file = s.dir.write("switchyard.toml", &text);
    let path = file.display().to_string();
    let cli =
        Cli::try_parse_args(["switchyard", "--config", &path].map(String::from)).expect("cli");
    let proxy = TestProxy::start(cli.load_config().expect("config"));
    assert_eq!(support::get(&proxy.url("/before")).await.status, 200);

    s.dir.write("ca.pem", "not a certificate\n");
    let err = switchyard::reload::reload(&proxy.server, &file, &cli, "test")
        .expect_err("a bad CA is rejected")
        .to_string();
    assert!(
        err.contains("pools.p.tls.ca") && err.contains("holds no certificate"),
        "{err}"
    );
    let mut client = Client::connect(proxy.addr).await;
    assert_eq!(
        client.get("/after").await.status,
        200,
        "the old CA still in force"
    );
    assert_eq!(
        backend.connections(),
        2,
        "a new TLS connection after the reload"
    );
    println!(
        "reload with a bad CA rejected ({}), still 200",
        err.lines().next().unwrap_or_default()
    );
    proxy.stop().await;
}
