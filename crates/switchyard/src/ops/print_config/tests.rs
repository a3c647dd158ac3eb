//! The printed file loads as the same proxy as the flags.

use super::*;
use crate::config::Config;

fn cli(args: &[&str]) -> Cli {
    Cli::try_parse_args(
        std::iter::once("switchyard")
            .chain(args.iter().copied())
            .map(String::from),
    )
    .expect("flags parse")
}

/// Loads `print_config(flags)` from a file and compares it with the flags' configuration;
/// returns both (file, flags).
fn assert_same(args: &[&str]) -> (Config, Config) {
    let cli = cli(args);
    let from_flags = cli.load_config().expect("flags are valid");
    let text = print_config(&cli).expect("printed");
    let path = std::env::temp_dir().join(format!(
        "switchyard-print-config-{}-{}.toml",
        std::process::id(),
        args.join("").len()
    ));
    std::fs::write(&path, &text).expect("write");
    let from_file = Config::load(&path);
    let _ = std::fs::remove_file(&path);
    let from_file =
        from_file.unwrap_or_else(|e| panic!("{args:?}: the file is invalid: {e}\n{text}"));
    assert_eq!(
        from_file.listeners, from_flags.listeners,
        "{args:?}\n{text}"
    );
    assert_eq!(
        from_file.rate_limit, from_flags.rate_limit,
        "{args:?}\n{text}"
    );
    assert_eq!(
        from_file.client_rate_limit, from_flags.client_rate_limit,
        "{args:?}\n{text}"
    );
    assert_eq!(from_file.pools, from_flags.pools, "{args:?}\n{text}");
    assert_eq!(from_file.shutdown_timeout, from_flags.shutdown_timeout);
    assert_eq!(from_file.log.format, from_flags.log.format);
    assert_eq!(from_file.routes.len(), from_flags.routes.len(), "{text}");
    (from_file, from_flags)
}

#[test]
fn defaults_give_the_same_proxy() {
    assert_same(&[]);
}

#[test]
fn every_flag_gives_the_same_proxy() {
    assert_same(&[
        "--listen=127.0.0.1:4000",
        "--backends=http://127.0.0.1:8080,https://example.com/base,h2c://[::1]:9000",
        "--rate-limit=20",
        "--rate-window=2s",
        "--client-rate-limit=5",
        "--read-timeout=1m30s",
        "--write-timeout=2s",
        "--retries=0",
        "--connect-timeout=250ms",
        "--circuit-failures=3",
        "--circuit-open=1s",
        "--shutdown-timeout=5s",
        "--max-header-bytes=16384",
        "--pool-max-idle=4",
        "--pool-idle-timeout=10s",
        "--policy=consistent_hash",
        "--hash-key=header:x-user",
        "--health-check=/healthz",
        "--health-interval=2s",
        "--request-timeout=30s",
        "--max-connections=50",
        "--retry-on=503",
        "--slow-start=10s",
        "--workers=3",
        "--log-format=json",
    ]);
}

#[test]
fn the_upstream_timeout_follows_the_write_timeout_or_its_flag() {
    assert_same(&["--write-timeout=3s"]);
    assert_same(&["--write-timeout=3s", "--upstream-timeout=500ms"]);
}

#[test]
fn names_are_quoted_as_toml_strings() {
    let cli = cli(&["--health-check=/a\"b\\c"]);
    let text = print_config(&cli).expect("printed");
    assert!(text.contains(r#"path = "/a\"b\\c""#), "{text}");
}

#[test]
fn refused_with_a_config_file() {
    let cli = cli(&["--config=x.toml"]);
    assert!(matches!(
        print_config(&cli),
        Err(PrintConfigError::HasConfig)
    ));
}

#[test]
fn tls_flags_give_the_same_listener() {
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let dir = std::env::temp_dir().join(format!(
        "switchyard-print-config-tls-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key_pair.serialize_pem()).expect("write key");
    let cert_arg = format!("--tls-cert={}", cert_path.display());
    let key_arg = format!("--tls-key={}", key_path.display());
    assert_same(&[&cert_arg, &key_arg]);
    assert_same(&[&cert_arg, &key_arg, "--tls-resumption=off"]);
    // A CA for the client certificates and for the https:// backends.
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["test ca".to_owned()]).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).expect("CA");
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).expect("write CA");
    let client_ca = format!("--tls-client-ca={}", ca_path.display());
    let upstream_ca = format!("--upstream-ca={}", ca_path.display());
    assert_same(&[&cert_arg, &key_arg, &client_ca]);
    assert_same(&["--backends=https://example.com", &upstream_ca]);
    // Without an https:// backend the CA is unused, and a pool `tls` table an error.
    let text =
        print_config(&cli(&["--backends=http://example.com", &upstream_ca])).expect("printed");
    assert!(
        text.contains("# --upstream-ca is unused") && !text.contains(".tls]"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn access_flags_give_the_same_rules_keys_and_token() {
    let dir = std::env::temp_dir().join(format!(
        "switchyard-print-config-access-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let keys = dir.join("keys.txt");
    let digest = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";
    std::fs::write(&keys, format!("ci sha256:{digest} admin\n")).expect("write keys");
    let token = dir.join("token");
    std::fs::write(&token, "a-token-of-twenty-chars\n").expect("write token");
    let keys_arg = format!("--api-keys={}", keys.display());
    let token_arg = format!("--admin-token-file={}", token.display());
    let (file, flags) = assert_same(&[
        &keys_arg,
        &token_arg,
        "--allow-ip=127.0.0.0/8,::1",
        "--deny-ip=127.0.0.2",
        "--trusted-proxies=10.0.0.0/8",
    ]);
    assert_eq!(file.access.trusted_proxies, flags.access.trusted_proxies);
    assert_eq!(file.access.keys.keys().len(), 1);
    let needs_key = |c: &Config| {
        c.routes
            .iter()
            .all(|r| r.access.as_ref().is_some_and(|a| a.api_key))
    };
    assert!(needs_key(&file) && needs_key(&flags));
    assert!(file.admin.token.is_some() && flags.admin.token.is_some());
    assert!(file.listeners[0].ip_rules.is_some());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn limit_flags_give_the_same_limits() {
    for args in [
        &["--max-body-size=10MiB"][..],
        &[
            "--max-body-size=0",
            "--max-client-connections=50",
            "--max-connections-per-ip=5",
        ][..],
    ] {
        let (file, flags) = assert_same(args);
        assert_eq!(
            file.limits.max_body_size, flags.limits.max_body_size,
            "{args:?}"
        );
        assert_eq!(
            file.limits.connections.max_connections, flags.limits.connections.max_connections,
            "{args:?}"
        );
        assert_eq!(
            file.limits.connections.max_connections_per_ip,
            flags.limits.connections.max_connections_per_ip,
            "{args:?}"
        );
    }
}
