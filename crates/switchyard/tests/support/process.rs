//! Running the real `switchyard` binary in tests: spawn with a watchdog, signal, wait.

use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;

pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    // Tests and CI run as root: allowed knowingly (tests/unprivileged.rs checks the refusal).
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env("SWITCHYARD_ALLOW_ROOT", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// No switchyard run by [`run`] may take longer than this.
pub const CHILD_LIMIT: Duration = Duration::from_secs(10);

/// Runs a switchyard subcommand that ends by itself (killed after [`CHILD_LIMIT`]).
pub fn run(args: &[&str]) -> Output {
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

pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {sig} {pid} failed");
}

/// A running switchyard process. Dropped before it exits, it is killed.
pub struct Proc {
    pub pid: u32,
    /// Receives the output once the process has exited and been reaped.
    exit: Option<oneshot::Receiver<Output>>,
    output: Option<Output>,
}

impl Proc {
    pub fn spawn(args: &[&str]) -> Self {
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
    pub fn has_exited(&mut self) -> bool {
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
    pub async fn wait(mut self, within: Duration) -> Output {
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
    pub async fn terminate(&self) {
        let pid = self.pid;
        crate::assert_eventually!(
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
/// `/proc/<pid>/status`); true where that cannot be told. switchyard installs its handlers
/// before it listens, so this is true as soon as the port accepts (tested by
/// `sigterm_as_soon_as_the_port_accepts_still_exits_cleanly` in `cli.rs`); waiting for it
/// keeps the other tests honest should that ever regress.
pub fn catches_sigterm(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return true;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_none_or(|mask| mask & (1 << (15 - 1)) != 0)
}

/// True when process `pid` holds the socket listening on 127.0.0.1:`port` (Linux: the
/// socket's inode in `/proc/net/tcp` among the links in `/proc/<pid>/fd`); true where that
/// cannot be told. A port from [`free_port`] may be taken by another test's process before
/// ours binds it, and a connection accepted there says nothing about ours.
pub fn listens_on(pid: u32, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return true;
    };
    // `local_address` is `0100007F:PORT` in hex; state `0A` is LISTEN; the inode is field 9.
    let local = format!("0100007F:{port:04X}");
    let inodes: Vec<&str> = table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() > 9 && f[1] == local && f[3] == "0A")
        .map(|f| f[9])
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return true;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            let target = target.to_string_lossy();
            inodes
                .iter()
                .any(|inode| target == format!("socket:[{inode}]"))
        })
    })
}

/// True when `addr` answers `GET /health` with 200 and every URL of `backends`: that is,
/// when the switchyard we started answers, not whatever else took the port.
pub async fn answers_health(addr: SocketAddr, backends: &[String]) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let request = b"GET /health HTTP/1.1\r\nHost: switchyard\r\nConnection: close\r\n\r\n";
    if stream.write_all(request).await.is_err() {
        return false;
    }
    let resp = super::read_until_close(&mut stream, Duration::from_secs(1)).await;
    resp.starts_with("HTTP/1.1 200")
        && backends
            .iter()
            .all(|url| resp.contains(&format!("\"{url}\"")))
}

/// Starts switchyard with `args(listen address)` on a free loopback port and waits until it
/// answers (see [`answers_health`]). A port another process took between our picking it and
/// switchyard binding it is replaced by another.
pub async fn start_proxy(
    args: impl Fn(SocketAddr) -> Vec<String>,
    backends: &[String],
) -> (Proc, SocketAddr) {
    for _ in 0..3 {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let args = args(addr);
        let mut proc = Proc::spawn(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let ready = super::eventually(Duration::from_secs(5), || {
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
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}
