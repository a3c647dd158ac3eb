//! Graceful shutdown: in-flight requests finish, idle connections close at once, the drain
//! timeout bounds the wait, and the binary exits 0 on SIGTERM.

// `support::config` trips clippy::field_reassign_with_default, and support/mod.rs is not ours
// to edit, so the lint is allowed for the module here.
mod support;

use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::{backend, config, url_for, Client, TestProxy};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;

#[tokio::test]
async fn graceful_shutdown_lets_the_request_in_flight_finish() {
    let server = backend("slow answer").await;
    let proxy = TestProxy::start(config(vec![url_for(&server)]));
    let addr = proxy.addr;
    let url = proxy.url("/delay/500");
    let sent = Instant::now();
    let in_flight = tokio::spawn(async move { support::get(&url).await });
    assert_eventually!(
        Duration::from_secs(1),
        || async { server.requests() == 1 },
        "the request never reached the backend"
    );

    let (report, refused_while_draining) = tokio::join!(proxy.stop(), async {
        support::eventually(Duration::from_millis(400), || async {
            TcpStream::connect(addr).await.is_err()
        })
        .await
    });
    assert!(
        sent.elapsed() >= Duration::from_millis(500),
        "shutdown returned before the in-flight request was answered"
    );
    assert!(report.drained, "{report:?}");
    assert!(
        refused_while_draining,
        "new connections were still accepted while draining"
    );
    let resp = in_flight.await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "slow answer\n");
    assert_eq!(
        resp.headers
            .get(http::header::CONNECTION)
            .map(|v| v.as_bytes()),
        Some(&b"close"[..]),
        "the last response on a connection being shut down says so"
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "connections are refused after shutdown"
    );
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_at_once() {
    let server = backend("ok").await;
    let proxy = TestProxy::start(config(vec![url_for(&server)]));
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut client = Client::connect(proxy.addr).await;
        assert_eq!(client.get("/").await.status, 200);
        assert!(!client.is_closed());
        clients.push(client);
    }

    let started = Instant::now();
    let report = proxy.stop().await;
    let took = started.elapsed();
    assert!(report.drained, "{report:?}");
    // The drain timeout is 5 s and the keep-alive timeout 5 s: neither was waited for.
    assert!(took < Duration::from_secs(1), "shutdown took {took:?}");
    let clients = &clients;
    assert_eventually!(
        Duration::from_secs(1),
        || async move { clients.iter().all(Client::is_closed) },
        "idle connections were left open"
    );
}

#[tokio::test]
async fn drain_timeout_bounds_shutdown() {
    let server = backend("too slow").await;
    let mut cfg = config(vec![url_for(&server)]);
    cfg.shutdown_timeout = Duration::from_millis(200);
    let proxy = TestProxy::start(cfg);
    let mut client = Client::connect(proxy.addr).await;
    let in_flight = tokio::spawn(async move {
        let result = client
            .send(http::Request::get("/delay/5000").body(bytes::Bytes::new())?)
            .await;
        Ok::<_, http::Error>((result, client))
    });
    assert_eventually!(
        Duration::from_secs(1),
        || async { server.requests() == 1 },
        "the request never reached the backend"
    );

    let started = Instant::now();
    let report = proxy.stop().await;
    let took = started.elapsed();
    assert!(!report.drained, "{report:?}");
    assert!(took >= Duration::from_millis(200), "shutdown took {took:?}");
    assert!(took < Duration::from_secs(1), "shutdown took {took:?}");

    let (result, client) = tokio::time::timeout(Duration::from_secs(1), in_flight)
        .await
        .expect("the cut connection was noticed")
        .unwrap()
        .unwrap();
    assert!(
        result.is_err(),
        "a request cut by the drain timeout got a response: {result:?}"
    );
    assert!(client.is_closed());
}

// --- the binary (helpers as in cli.rs) ---

fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard"));
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
/// `sigterm_as_soon_as_the_port_accepts_still_exits_cleanly` in `cli.rs`), so tests that are
/// about something else wait for it rather than race it.
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

#[tokio::test]
async fn binary_exits_zero_on_sigterm_after_finishing_the_request_in_flight() {
    let server = backend("slow answer").await;
    let (proc, addr) = start_proxy(
        |addr| {
            ["--listen", &addr.to_string(), "--backends", &server.url()]
                .into_iter()
                .map(String::from)
                .collect()
        },
        &[server.url()],
    )
    .await;

    let sent = Instant::now();
    let in_flight =
        tokio::spawn(async move { support::get(&format!("http://{addr}/delay/500")).await });
    assert_eventually!(
        Duration::from_secs(1),
        || async { server.requests() == 1 },
        "the request never reached the backend"
    );
    proc.terminate().await;

    let resp = in_flight.await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "slow answer\n");
    let output = proc.wait(Duration::from_secs(5)).await;
    assert!(
        output.status.success(),
        "exit status {}; stderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(sent.elapsed() >= Duration::from_millis(500));
}
