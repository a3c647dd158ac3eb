//! Running unprivileged, with the real binary: as root without `--user` it refuses to start
//! (exit 2, a message naming the ways on); `--allow-root` and `SWITCHYARD_ALLOW_ROOT=1` let
//! it run; `--user nobody` binds a port below 1024 as root, then every thread of the process
//! runs as `nobody` (read from `/proc/PID/task/*/status`) while requests are still served.
//! These only make sense as root (as CI runs): not as root, they say so and pass.

mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::process::{answers_health, free_port};
use support::{backend, eventually, get};

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

fn is_root(test: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        println!("{test}: skipped, not running as root (the checks are about root)");
    }
    root
}

/// The binary with `args`, without the allowance the other tests get.
fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env_remove("SWITCHYARD_ALLOW_ROOT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// A running child, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` and waits until it answers `/health` on `addr`.
async fn serving(mut cmd: Command, addr: SocketAddr, backend: &str) -> Running {
    let mut child = Running(cmd.spawn().expect("spawn switchyard"));
    let backends = [backend.to_owned()];
    let up = eventually(Duration::from_secs(5), || answers_health(addr, &backends)).await;
    if !up {
        let _ = child.0.kill();
        let out = child.0.wait_with_output_taken();
        panic!("switchyard never answered on {addr}: {out}");
    }
    child
}

trait TakeOutput {
    fn wait_with_output_taken(&mut self) -> String;
}

impl TakeOutput for Child {
    fn wait_with_output_taken(&mut self) -> String {
        let _ = self.wait();
        let mut text = String::new();
        if let Some(mut err) = self.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut err, &mut text);
        }
        text
    }
}

#[test]
fn root_without_user_is_refused_with_the_ways_on() {
    if !is_root("refused") {
        return;
    }
    let out = command(&[
        "--listen",
        "127.0.0.1:0",
        "--backends",
        "http://127.0.0.1:9",
    ])
    .output()
    .expect("run switchyard");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for needle in [
        "root",
        "--user",
        "--allow-root",
        "SWITCHYARD_ALLOW_ROOT=1",
        "cap_net_bind_service",
    ] {
        assert!(err.contains(needle), "no {needle:?} in: {err}");
    }
    // Subcommands that start nothing are not refused.
    let version = command(&["version"]).output().expect("run switchyard");
    assert!(version.status.success());
    println!("refused as root: exit 2, {err}");
}

#[tokio::test]
async fn allow_root_and_the_environment_variable_let_it_run() {
    if !is_root("allowed") {
        return;
    }
    let b = backend("b").await;
    for how in ["--allow-root", "SWITCHYARD_ALLOW_ROOT=1"] {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let listen = addr.to_string();
        let mut cmd = command(&["--listen", &listen, "--backends", &b.url()]);
        if how.starts_with("--") {
            cmd.arg(how);
        } else {
            cmd.env("SWITCHYARD_ALLOW_ROOT", "1");
        }
        let running = serving(cmd, addr, &b.url()).await;
        assert_eq!(get(&format!("http://{addr}/")).await.status, 200);
        println!("as root with {how}: serving on {addr}");
        drop(running);
    }
}

/// A loopback port below 1024 that nothing listens on now.
fn free_low_port() -> u16 {
    (900..1024)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port below 1024")
}

/// A thread's name, `Uid:` and `Gid:` (real, effective, saved, filesystem) and `Groups:`.
type ThreadIds = (String, Vec<u32>, Vec<u32>, Vec<u32>);

/// [`ThreadIds`] of every thread of `pid`.
fn thread_ids(pid: u32) -> Vec<ThreadIds> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks");
    let mut out = Vec::new();
    for task in tasks.flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let field = |name: &str| -> Vec<u32> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        };
        let name = status
            .lines()
            .find_map(|l| l.strip_prefix("Name:"))
            .unwrap_or_default()
            .trim()
            .to_owned();
        out.push((name, field("Uid:"), field("Gid:"), field("Groups:")));
    }
    out
}

#[tokio::test]
async fn user_nobody_drops_root_in_every_thread_and_still_serves() {
    if !is_root("--user nobody") {
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .expect("a user nobody");
    let (uid, gid) = (nobody.uid.as_raw(), nobody.gid.as_raw());
    let b = backend("b").await;
    let addr = SocketAddr::from(([127, 0, 0, 1], free_low_port()));
    let listen = addr.to_string();
    let cmd = command(&[
        "--listen",
        &listen,
        "--backends",
        &b.url(),
        "--workers",
        "2",
        "--user",
        "nobody",
    ]);
    let running = serving(cmd, addr, &b.url()).await;
    let resp = get(&format!("http://{addr}/")).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let threads = thread_ids(running.0.id());
    assert!(threads.len() >= 3, "{threads:?}");
    for (name, uids, gids, groups) in &threads {
        assert_eq!(uids, &vec![uid; 4], "thread {name}: {threads:?}");
        assert_eq!(gids, &vec![gid; 4], "thread {name}: {threads:?}");
        assert_eq!(groups, &vec![gid], "thread {name}: {threads:?}");
    }
    let names: Vec<&str> = threads.iter().map(|t| t.0.as_str()).collect();
    println!(
        "--user nobody on port {}: {} threads all uid {uid} gid {gid} ({names:?}); GET / -> 200",
        addr.port(),
        threads.len()
    );
    drop(running);
}
