//! The real `switchyard` binary: flag errors, `--help`, a taken port, the seed's sample
//! command, SIGTERM, and JSON logs.

// `support::config` trips clippy::field_reassign_with_default, and support/mod.rs is not ours
// to edit, so the lint is allowed for the module here.
mod support;

use std::net::SocketAddr;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use support::backend;
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");
/// No child may run longer than this.
const CHILD_LIMIT: Duration = Duration::from_secs(10);

fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {sig} {pid} failed");
}

/// A running switchyard process. Dropped before it exits, it is killed.
struct Proc {
    pid: u32,
    /// Receives the output once the process has exited and been reaped.
    exit: Option<oneshot::Receiver<Output>>,
    output: Option<Output>,
}

impl Proc {
    fn spawn(args: &[&str]) -> Self {
        let child = command(args).spawn().expect("spawn switchyard");
        let pid = child.id();
        let (tx, rx) = oneshot::channel();
        std::thread::spawn(move || {
            if let Ok(output) = child.wait_with_output() {
                let _ = tx.send(output);
            }
        });
        Proc {
            pid,
            exit: Some(rx),
            output: None,
        }
    }

    /// True once the process has exited (its output is then kept for `wait`).
    fn has_exited(&mut self) -> bool {
        let Some(rx) = self.exit.as_mut() else {
            return true;
        };
        match rx.try_recv() {
            Err(oneshot::error::TryRecvError::Empty) => false,
            Ok(output) => {
                self.output = Some(output);
                self.exit = None;
                true
            }
            Err(oneshot::error::TryRecvError::Closed) => {
                self.exit = None;
                true
            }
        }
    }

    /// Waits for the process to exit; kills it and panics after `within`.
    async fn wait(mut self, within: Duration) -> Output {
        if let Some(output) = self.output.take() {
            return output;
        }
        let rx = self.exit.take().expect("switchyard's output was lost");
        match tokio::time::timeout(within, rx).await {
            Ok(Ok(output)) => output,
            Ok(Err(_)) => panic!("switchyard's output was lost"),
            Err(_) => {
                signal(self.pid, "-KILL");
                panic!(
                    "switchyard (pid {}) did not exit within {within:?}",
                    self.pid
                );
            }
        }
    }

    /// Sends SIGTERM once the process has its handler for it (see [`catches_sigterm`]).
    async fn terminate(&self) {
        let pid = self.pid;
        assert_eventually!(
            Duration::from_secs(2),
            || async move { catches_sigterm(pid) },
            "switchyard never installed a SIGTERM handler"
        );
        signal(pid, "-TERM");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.has_exited() {
            // Never panic here: this may run while a failed test unwinds.
            let _ = Command::new("kill")
                .args(["-KILL", &self.pid.to_string()])
                .status();
        }
    }
}

/// True once process `pid` catches SIGTERM (Linux: bit 15 of `SigCgt` in
/// `/proc/<pid>/status`); true where that cannot be told. switchyard installs its handler
/// only after it starts accepting connections (see
/// `sigterm_as_soon_as_the_port_accepts_still_exits_cleanly`), so tests that are about
/// something else wait for it rather than race it.
fn catches_sigterm(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return true;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_none_or(|mask| mask & (1 << (15 - 1)) != 0)
}

/// Runs switchyard to completion (killed after [`CHILD_LIMIT`]).
fn run(args: &[&str]) -> Output {
    let child = command(args).spawn().expect("spawn switchyard");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(CHILD_LIMIT) {
        Ok(output) => output.expect("wait for switchyard"),
        Err(_) => {
            signal(pid, "-KILL");
            panic!("switchyard {args:?} ran longer than {CHILD_LIMIT:?}");
        }
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_failed(status: ExitStatus, what: &str) {
    assert!(!status.success(), "{what}: exit status {status}");
    assert!(status.code().is_some(), "{what}: killed by a signal");
}

/// True when `addr` answers `GET /health` with 200 and every URL of `backends`: that is,
/// when the switchyard we started answers, not whatever else took the port.
async fn answers_health(addr: SocketAddr, backends: &[String]) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let request = b"GET /health HTTP/1.1\r\nHost: switchyard\r\nConnection: close\r\n\r\n";
    if stream.write_all(request).await.is_err() {
        return false;
    }
    let resp = support::read_until_close(&mut stream, Duration::from_secs(1)).await;
    resp.starts_with("HTTP/1.1 200")
        && backends
            .iter()
            .all(|url| resp.contains(&format!("\"{url}\"")))
}

/// Starts switchyard with `args(listen address)` on a free loopback port and waits until it
/// answers (see [`answers_health`]). A port another process took between our picking it and
/// switchyard binding it is replaced by another.
async fn start_proxy(
    args: impl Fn(SocketAddr) -> Vec<String>,
    backends: &[String],
) -> (Proc, SocketAddr) {
    for _ in 0..3 {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let args = args(addr);
        let mut proc = Proc::spawn(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let ready = support::eventually(Duration::from_secs(5), || {
            let exited = proc.has_exited();
            async move { exited || answers_health(addr, backends).await }
        })
        .await;
        if !proc.has_exited() {
            assert!(ready, "switchyard never answered on {addr}");
            return (proc, addr);
        }
        let err = proc
            .output
            .as_ref()
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .unwrap_or_default();
        assert!(
            err.contains("already in use"),
            "switchyard exited at start: {err}"
        );
    }
    panic!("three free ports in a row were taken before switchyard could bind them");
}

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

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
}
