//! Flag parsing and flags over a configuration.

use std::path::PathBuf;
use std::time::Duration;

use super::{one_line_error, Cli, Command};
use crate::config::{Config, HashKey, Policy, PoolConfig};

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_args(
        std::iter::once("switchyard")
            .chain(args.iter().copied())
            .map(String::from),
    )
}

#[test]
fn seed_defaults() {
    let cli = parse(&[]).unwrap();
    let config = cli.load_config().unwrap();
    let listener = &config.listeners[0];
    assert_eq!(listener.addr.to_string(), ":3000");
    assert_eq!(listener.read_timeout, Duration::from_secs(5));
    assert_eq!(listener.write_timeout, Duration::from_secs(10));
    let pool = &config.pools[0];
    assert_eq!(pool.timeout, Duration::from_secs(10));
    assert_eq!(config.rate_limit.requests, 100);
    assert_eq!(pool.backends.len(), 1);
    assert_eq!(pool.backends[0].url.to_string(), "http://localhost:8080");
    assert_eq!(pool.retries, 2);
    assert_eq!(cli.command, None);
}

#[test]
fn go_style_and_seed_example() {
    let cli = parse(&[
        "-listen=:4000",
        "-rate-limit=20",
        "--backends=http://localhost:8080,http://localhost:8081",
        "-read-timeout",
        "1m30s",
    ])
    .unwrap();
    let config = cli.load_config().unwrap();
    assert_eq!(config.listeners[0].addr.port, 4000);
    assert_eq!(config.rate_limit.requests, 20);
    assert_eq!(config.pools[0].backends.len(), 2);
    assert_eq!(config.listeners[0].read_timeout, Duration::from_secs(90));
    assert!(cli.given("rate_limit") && cli.given("listen") && !cli.given("retries"));
}

#[test]
fn bad_values_name_flag_and_value() {
    for (args, flag, value) in [
        (&["--rate-limit=abc"][..], "--rate-limit", "abc"),
        (&["--backends=ftp://x"][..], "--backends", "ftp://x"),
        (&["--listen=:99999"][..], "--listen", ":99999"),
        (&["--read-timeout=5"][..], "--read-timeout", "5"),
        (&["-write-timeout=soon"][..], "--write-timeout", "soon"),
    ] {
        let err = parse(args).unwrap_err();
        let line = one_line_error(&err);
        assert!(line.contains(flag), "{line}");
        assert!(line.contains(value), "{line}");
        assert!(!line.contains('\n'), "{line}");
    }
}

#[test]
fn subcommands_take_global_flags() {
    let cli = parse(&["demo", "--listen", "127.0.0.1:0"]).unwrap();
    assert_eq!(cli.command, Some(Command::Demo));
    assert_eq!(cli.listen.port, 0);
    assert!(cli.given("listen"));
    let cli = parse(&["check", "--config", "x.toml"]).unwrap();
    assert_eq!(cli.command, Some(Command::Check));
    assert_eq!(cli.config, Some(PathBuf::from("x.toml")));
}

#[test]
fn resilience_flags_set_the_pool() {
    let cli = parse(&[
        "--policy=consistent_hash",
        "--hash-key=header:x-user",
        "--health-check=/healthz",
        "--health-interval=2s",
        "--max-connections=10",
        "--retry-on=503",
    ])
    .unwrap();
    let config = cli.load_config().unwrap();
    let pool = &config.pools[0];
    assert!(matches!(
        pool.policy,
        Policy::ConsistentHash(HashKey::Header(_))
    ));
    let check = pool.health_check.as_ref().unwrap();
    assert_eq!(
        (check.path.as_str(), check.interval),
        ("/healthz", Duration::from_secs(2))
    );
    assert_eq!(pool.max_connections, Some(10));
    assert_eq!(pool.retry.retry_on, [503]);
    let err = parse(&["--policy=consistent_hash"])
        .unwrap()
        .load_config()
        .unwrap_err();
    assert!(err.to_string().contains("--hash-key"), "{err}");
    assert!(parse(&["--policy=fastest"]).is_err());
}

#[test]
fn only_given_flags_override_a_file() {
    let cli = parse(&["--rate-limit", "7"]).unwrap();
    let mut config = Config::single_pool(Vec::new());
    config.pools[0].retries = 9;
    config.pools.push(PoolConfig::named("other"));
    cli.apply(&mut config, true).unwrap();
    assert_eq!(config.rate_limit.requests, 7);
    assert_eq!(
        config.pools[0].retries, 9,
        "not given: the file's value stays"
    );
    let cli = parse(&["--backends", "http://a:1"]).unwrap();
    assert!(
        cli.apply(&mut config, true).is_err(),
        "--backends with two pools"
    );
}

#[test]
fn a_misspelled_flag_gets_a_suggestion_in_its_one_line() {
    let line = one_line_error(&parse(&["--ratelimit=20"]).unwrap_err());
    assert!(line.contains("'--ratelimit'"), "{line}");
    assert!(
        line.contains("did you mean") || line.contains("similar argument exists: '--rate-limit'"),
        "{line}"
    );
    assert!(!line.contains('\n'), "{line}");
    println!("{line}");
}

#[test]
fn enumerated_flags_list_their_values_in_errors() {
    for (arg, values) in [
        (
            "--policy=roundrobin",
            "round_robin, random, least_request, peak_ewma, consistent_hash",
        ),
        ("--log-format=yaml", "text, json"),
        ("--tls-resumption=maybe", "on, off"),
    ] {
        let line = one_line_error(&parse(&[arg]).unwrap_err());
        assert!(
            line.contains(&format!("[possible values: {values}]")),
            "{arg}: {line}"
        );
        assert!(!line.contains('\n'), "{line}");
    }
    let line = one_line_error(&parse(&["--policy=roundrobin"]).unwrap_err());
    assert!(
        line.contains("'round_robin'"),
        "the closest value is suggested: {line}"
    );
    // true and false still work for --tls-resumption, unlisted.
    assert!(!parse(&["--tls-resumption=false"]).unwrap().tls_resumption);
}

#[test]
fn enumerated_flags_list_their_values_in_help() {
    let help = Cli::clap_command().render_long_help().to_string();
    for values in [
        "[possible values: round_robin, random, least_request, peak_ewma, consistent_hash]",
        "[possible values: on, off]",
        "- json:",
    ] {
        assert!(help.contains(values), "{values} not in --help:\n{help}");
    }
}

#[test]
fn demo_help_shows_the_demos_defaults() {
    let mut cmd = Cli::clap_command();
    let demo = cmd.find_subcommand_mut("demo").expect("demo");
    let help = demo.render_long_help().to_string();
    assert!(help.contains("[default: 20]"), "{help}");
    assert!(!help.contains("--backends <"), "{help}");
    assert!(!help.contains("localhost:8080"), "{help}");
    // ... and runs with them.
    let cli = parse(&["demo"]).unwrap();
    assert_eq!(cli.rate_limit, crate::demo::RATE_LIMIT);
    assert!(!cli.given("rate_limit"));
    assert_eq!(parse(&["demo", "--rate-limit=7"]).unwrap().rate_limit, 7);
}

#[test]
fn proxy_takes_from_and_to() {
    let cli = parse(&[
        "proxy",
        "--from",
        ":4000",
        "--to",
        "http://127.0.0.1:1,http://127.0.0.1:2",
    ])
    .unwrap();
    assert_eq!(cli.command, Some(Command::Proxy));
    let config = cli.load_config().unwrap();
    assert_eq!(config.listeners[0].addr.port, 4000);
    assert_eq!(config.pools[0].backends.len(), 2);
    assert!(cli.given("backends") && cli.given("listen"));
    assert!(
        parse(&["-from=:4001", "-to=http://127.0.0.1:1"]).is_ok(),
        "Go forms too"
    );
}

#[test]
fn service_subcommands_take_the_pid_file() {
    let cli = parse(&["reload", "--pid-file", "/run/s.pid"]).unwrap();
    assert_eq!(cli.command, Some(Command::Reload));
    assert_eq!(cli.pid_file, Some(PathBuf::from("/run/s.pid")));
    assert_eq!(parse(&["stop"]).unwrap().command, Some(Command::Stop));
    assert_eq!(
        parse(&["adapt"]).unwrap().command,
        Some(Command::PrintConfig)
    );
    let mut cmd = Cli::clap_command();
    let help = cmd
        .find_subcommand_mut("version")
        .expect("version")
        .render_long_help()
        .to_string();
    assert!(
        !help.contains("--rate-limit"),
        "version takes no proxy flag:\n{help}"
    );
}

#[test]
fn limit_flags() {
    let config = parse(&[]).unwrap().load_config().unwrap();
    assert_eq!(
        config.limits.max_body_size,
        100 * 1024 * 1024,
        "the default"
    );
    let cli = parse(&[
        "--max-body-size",
        "10MiB",
        "-max-client-connections=50",
        "--max-connections-per-ip",
        "5",
        "--max-requests-per-connection",
        "1000000",
    ])
    .unwrap();
    let config = cli.load_config().unwrap();
    assert_eq!(
        config.limits.connections.max_requests_per_connection,
        1_000_000
    );
    assert_eq!(config.limits.max_body_size, 10 * 1024 * 1024);
    assert_eq!(config.limits.connections.max_connections, 50);
    assert_eq!(config.limits.connections.max_connections_per_ip, 5);
    let unlimited = parse(&["--max-body-size=0"])
        .unwrap()
        .load_config()
        .unwrap();
    assert_eq!(unlimited.limits.max_body_size, 0);
    let err = parse(&["--max-body-size=-1MiB"]).unwrap_err();
    let shown = one_line_error(&err);
    assert!(
        shown.contains("max-body-size") && shown.contains("negative"),
        "{shown}"
    );
    assert!(parse(&["--max-body-size", "lots"]).is_err());
}
