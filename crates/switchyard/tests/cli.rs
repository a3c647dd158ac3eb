//! The real `switchyard` binary: flag errors (with suggestions and possible values), `--help`,
//! a taken port, the seed's sample command, SIGTERM, and JSON logs.

mod support;

use support::process::{catches_sigterm, free_port, listens_on, run, signal, start_proxy, Proc};

use std::net::SocketAddr;
use std::process::{ExitStatus, Output};
use std::time::Duration;

use support::backend;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_failed(status: ExitStatus, what: &str) {
    assert!(!status.success(), "{what}: exit status {status}");
    assert!(status.code().is_some(), "{what}: killed by a signal");
}

/// True when `addr` answers `GET /health` with 200 and every URL of `backends`: that is,
/// when the switchyard we started answers, not whatever else took the port.
#[test]
fn each_bad_flag_exits_non_zero_with_one_line_naming_flag_and_value() {
    for (arg, flag, value) in [
        ("--rate-limit=abc", "--rate-limit", "abc"),
        ("--backends=ftp://x", "--backends", "ftp://x"),
        ("--listen=:99999", "--listen", ":99999"),
        ("--read-timeout=5", "--read-timeout", "5"),
        ("-write-timeout=soon", "write-timeout", "soon"),
        ("--unknown-flag", "--unknown-flag", "--unknown-flag"),
    ] {
        let output = run(&[arg]);
        assert_failed(output.status, arg);
        let err = stderr(&output);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{arg}: stderr is not one line:\n{err}");
        assert!(lines[0].contains(flag), "{arg}: flag not named: {err}");
        assert!(lines[0].contains(value), "{arg}: value not named: {err}");
    }
}

#[test]
fn help_exits_zero_and_mentions_every_seed_flag() {
    let output = run(&["--help"]);
    assert!(output.status.success(), "{}", output.status);
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--listen",
        "--read-timeout",
        "--write-timeout",
        "--rate-limit",
        "--backends",
        "--retries",
        "--log-format",
    ] {
        assert!(
            help.contains(flag),
            "--help does not mention {flag}:\n{help}"
        );
    }
}

#[test]
fn port_already_in_use_exits_non_zero_and_says_so() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let listen = taken.local_addr().expect("addr").to_string();
    let output = run(&["--listen", &listen, "--backends", "http://127.0.0.1:1"]);
    assert_failed(output.status, "port in use");
    let err = stderr(&output);
    assert!(err.contains("already in use"), "{err}");
    assert!(err.contains(&listen), "the address is named: {err}");
    drop(taken);
}

#[tokio::test]
async fn seed_sample_command_balances_over_both_backends_and_exits_cleanly_on_sigterm() {
    let one = backend("Response from server 1").await;
    let two = backend("Response from server 2").await;
    let backends = [one.url(), two.url()];
    let (proc, addr) = start_proxy(
        |addr| {
            vec![
                format!("-listen={addr}"),
                "-rate-limit=20".to_owned(),
                format!("-backends={}", backends.join(",")),
            ]
        },
        &backends,
    )
    .await;

    let health = support::get(&format!("http://{addr}/health")).await;
    assert_eq!(health.status, 200);
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let resp = support::get(&format!("http://{addr}/")).await;
        assert_eq!(resp.status, 200);
        bodies.push(resp.text());
    }
    bodies.sort();
    assert_eq!(
        bodies,
        ["Response from server 1\n", "Response from server 2\n"]
    );
    assert_eq!((one.requests(), two.requests()), (1, 1));

    proc.terminate().await;
    let output = proc.wait(Duration::from_secs(5)).await;
    assert!(
        output.status.success(),
        "exit status {} after SIGTERM; stderr:\n{}",
        output.status,
        stderr(&output)
    );
}

#[tokio::test]
async fn json_log_format_writes_access_lines_as_json_objects() {
    let server = backend("ok").await;
    let (proc, addr) = start_proxy(
        |addr| {
            ["--listen", &addr.to_string(), "--backends", &server.url()]
                .into_iter()
                .chain(["--log-format", "json"])
                .map(String::from)
                .collect()
        },
        &[server.url()],
    )
    .await;
    let resp = support::get(&format!("http://{addr}/some/path?q=1")).await;
    assert_eq!(resp.status, 200);
    proc.terminate().await;
    let output = proc.wait(Duration::from_secs(5)).await;
    assert!(output.status.success(), "{}", output.status);

    let err = stderr(&output);
    let mut access = Vec::new();
    for line in err.lines().filter(|l| !l.trim().is_empty()) {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(value.is_object(), "{line}");
        if value["path"] == "/some/path" {
            access.push(value);
        }
    }
    assert_eq!(access.len(), 1, "one access line for the request:\n{err}");
    let line = &access[0];
    assert_eq!(line["method"], "GET", "{line}");
    assert_eq!(line["status"], 200, "{line}");
    assert_eq!(line["backend"], server.url(), "{line}");
    assert!(line["duration_ms"].as_f64().is_some(), "{line}");
    assert_eq!(line["bytes"], 3, "\"ok\\n\" is 3 bytes: {line}");
}

#[tokio::test]
async fn sigterm_as_soon_as_the_port_accepts_still_exits_cleanly() {
    // Orchestrators send SIGTERM whenever they like, including just after a readiness
    // probe succeeded. Each round sends it the moment the port accepts a connection.
    let mut killed = Vec::new();
    let mut proved = 0;
    for round in 0..40 {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut proc = Proc::spawn(&[
            "--listen",
            &addr.to_string(),
            "--backends",
            "http://127.0.0.1:1",
        ]);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if proc.has_exited() {
                break; // The port was taken meanwhile: "already in use".
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "switchyard never listened"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if !proc.has_exited() && !listens_on(proc.pid, addr.port()) {
            continue; // Another process took the port first: this round proves nothing.
        }
        proved += 1;
        let handler_installed = catches_sigterm(proc.pid);
        signal(proc.pid, "-TERM");
        let output = proc.wait(Duration::from_secs(5)).await;
        if output.status.code().is_none() {
            killed.push(format!(
                "round {round}: {} (SIGTERM handler installed when the port accepted: {handler_installed})",
                output.status
            ));
        }
    }
    assert!(killed.is_empty(), "{killed:#?}");
    assert!(
        proved >= 30,
        "only {proved} of 40 rounds had the port to themselves"
    );
}

#[test]
fn a_misspelled_flag_gets_a_suggestion_and_an_enumerated_one_its_values() {
    for (arg, wanted) in [
        (
            "--ratelimit=20",
            "a similar argument exists: '--rate-limit'",
        ),
        (
            "--policy=roundrobin",
            "[possible values: round_robin, random, least_request, peak_ewma, consistent_hash]",
        ),
        ("--log-format=yaml", "[possible values: text, json]"),
    ] {
        let output = run(&[arg]);
        assert_eq!(output.status.code(), Some(2), "{arg}");
        let err = stderr(&output);
        assert_eq!(err.lines().count(), 1, "{arg}: one line:\n{err}");
        assert!(err.contains(wanted), "{arg}: {err}");
        print!("{err}");
    }
}
