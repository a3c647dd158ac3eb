//! Running switchyard as a service, with the real binary: `--pid-file`, `switchyard reload`
//! and `switchyard stop` through it; `print-config` giving a file that `check` accepts and
//! that runs the same proxy as the flags; `completions`, `manpage` and `version`.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use support::process::{command, run, start_proxy};
use support::{backend, eventually, TempDir};

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn config(addr: SocketAddr, backends: &[String]) -> String {
    let quoted: Vec<String> = backends.iter().map(|b| format!("{b:?}")).collect();
    format!(
        "[[listeners]]\naddress = \"{addr}\"\n\n[pools.web]\nbackends = [{}]\n",
        quoted.join(", ")
    )
}

#[tokio::test]
async fn reload_and_stop_through_the_pid_file() {
    let one = backend("one").await;
    let two = backend("two").await;
    let dir = TempDir::new("ops", "pid");
    let (file, pid_file) = (dir.file("switchyard.toml"), dir.file("switchyard.pid"));
    let first = [one.url()];
    let (proc, addr) = start_proxy(
        |addr| {
            std::fs::write(&file, config(addr, &first)).expect("write config");
            ["--config", path(&file), "--pid-file", path(&pid_file)]
                .map(String::from)
                .to_vec()
        },
        &first,
    )
    .await;
    // Written just after the listeners are bound, so the proxy may answer a moment before.
    let mut written = std::fs::read_to_string(&pid_file);
    for _ in 0..100 {
        if written.as_ref().is_ok_and(|w| !w.trim().is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        written = std::fs::read_to_string(&pid_file);
    }
    let written = written.expect("the pid file is written");
    assert_eq!(written.trim(), proc.pid.to_string());

    std::fs::write(&file, config(addr, &[two.url()])).expect("rewrite config");
    let reload = run(&["reload", "--pid-file", path(&pid_file)]);
    assert!(reload.status.success(), "reload: {}", stderr(&reload));
    let url = format!("http://{addr}/");
    let switched = eventually(Duration::from_secs(3), || {
        let url = url.clone();
        async move { support::get(&url).await.text() == "two\n" }
    })
    .await;
    assert!(switched, "the reloaded backend never answered");

    let stop = run(&["stop", "--pid-file", path(&pid_file)]);
    assert!(stop.status.success(), "stop: {}", stderr(&stop));
    // `stop` returns once the process is gone or has removed its pid file.
    let output = proc.wait(Duration::from_secs(5)).await;
    assert!(output.status.success(), "exit status {}", output.status);
    assert!(!pid_file.exists(), "the pid file is removed at exit");
    let log = stderr(&output);
    assert!(
        log.lines()
            .any(|l| l.contains("configuration reloaded") && l.contains("SIGHUP")),
        "the reload came from `switchyard reload`'s SIGHUP:\n{log}"
    );
    println!(
        "reload: {} | stop: {} | exit {}",
        stdout(&reload).trim(),
        stdout(&stop).trim(),
        output.status
    );
}

#[test]
fn reload_without_a_running_proxy_says_why() {
    let dir = TempDir::new("ops", "stale");
    let pid_file = dir.file("none.pid");
    let output = run(&["reload", "--pid-file", path(&pid_file)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("cannot read the pid file"),
        "{}",
        stderr(&output)
    );
    let output = run(&["stop"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("--pid-file"),
        "{}",
        stderr(&output)
    );
}

/// Sends `n` requests to `addr` and returns their statuses and bodies.
async fn statuses(addr: SocketAddr, n: usize) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let resp = support::get(&format!("http://{addr}/")).await;
        out.push((resp.status, resp.text()));
    }
    out
}

#[tokio::test]
async fn print_config_gives_a_file_that_check_accepts_and_runs_the_same_proxy() {
    let one = backend("one").await;
    let two = backend("two").await;
    let backends = [one.url(), two.url()];
    let dir = TempDir::new("ops", "print");
    let file = dir.file("switchyard.toml");
    let flags = |addr: SocketAddr| {
        vec![
            format!("--listen={addr}"),
            format!("--backends={}", backends.join(",")),
            "--rate-limit=3".to_owned(),
            "--rate-window=30s".to_owned(),
            "--retries=0".to_owned(),
        ]
    };

    let (from_flags, addr) = start_proxy(flags, &backends).await;
    let by_flags = statuses(addr, 4).await;
    from_flags.terminate().await;
    from_flags.wait(Duration::from_secs(5)).await;

    let (from_file, addr) = start_proxy(
        |addr| {
            let mut args = vec!["print-config".to_owned()];
            args.extend(flags(addr));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let printed = run(&args);
            assert!(printed.status.success(), "{}", stderr(&printed));
            std::fs::write(&file, &printed.stdout).expect("write");
            let check = run(&["check", "--config", path(&file)]);
            assert!(
                check.status.success(),
                "check: {}\n{}",
                stderr(&check),
                stdout(&printed)
            );
            vec!["--config".to_owned(), path(&file).to_owned()]
        },
        &backends,
    )
    .await;
    let by_file = statuses(addr, 4).await;
    from_file.terminate().await;
    from_file.wait(Duration::from_secs(5)).await;

    let codes: Vec<u16> = by_file.iter().map(|(s, _)| *s).collect();
    assert_eq!(codes, [200, 200, 200, 429], "three allowed, then limited");
    assert_eq!(by_file, by_flags, "the file runs the proxy the flags ran");
    let text = std::fs::read_to_string(&file).expect("read");
    println!(
        "print-config: {} lines; flags {codes:?} = file {:?}",
        text.lines().count(),
        by_flags.iter().map(|(s, _)| *s).collect::<Vec<_>>()
    );
}

#[test]
fn completions_name_the_subcommands_and_flags() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let output = run(&["completions", shell]);
        assert!(output.status.success(), "{shell}: {}", stderr(&output));
        let script = stdout(&output);
        for word in ["print-config", "reload", "demo", "pid-file", "rate-limit"] {
            assert!(script.contains(word), "{shell}: {word} missing");
        }
        println!("completions {shell}: {} bytes", script.len());
    }
    let output = run(&["completions", "tcsh"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("possible values"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn manpage_documents_the_subcommands_and_flags() {
    let output = run(&["manpage"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let page = stdout(&output);
    assert!(
        page.starts_with(".ie") || page.contains(".TH switchyard 1"),
        "{page}"
    );
    for word in [
        r"\-\-pid\-file",
        r"\-\-rate\-limit",
        "switchyard\\-reload",
        "print\\-config",
    ] {
        assert!(page.contains(word), "{word} missing from the man page");
    }
    println!("manpage: {} lines", page.lines().count());
}

#[test]
fn version_names_the_package_version_and_the_build() {
    let output = run(&["version"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.starts_with(&format!("switchyard {}\n", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(
        text.contains(std::env::consts::ARCH) && text.contains("rustls"),
        "{text}"
    );
    println!("{}", text.replace('\n', " | "));
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// Kills the process when dropped (a failed test leaves nothing running).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn demo_says_what_it_starts_then_serves_and_stops_through_its_pid_file() {
    use std::io::BufRead;
    let dir = TempDir::new("ops", "demo");
    let pid_file = dir.file("demo.pid");
    let mut child = command(&[
        "demo",
        "--listen",
        "127.0.0.1:0",
        "--pid-file",
        path(&pid_file),
    ])
    .stderr(std::process::Stdio::null())
    .spawn()
    .expect("spawn the demo");
    let out = child.stdout.take().expect("stdout");
    let mut child = KillOnDrop(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut lines = Vec::new();
    let port = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("the demo stopped printing: {lines:#?}"));
        let port = line
            .split("proxy on http://localhost:")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .and_then(|port| port.parse::<u16>().ok());
        lines.push(line);
        if let Some(port) = port {
            break port;
        }
    };
    let steps: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("switchyard demo: "))
        .collect();
    assert!(
        steps.len() >= 4,
        "a line per step before the instructions: {lines:#?}"
    );
    assert!(
        steps[0].contains("starting two test backends"),
        "{lines:#?}"
    );
    assert!(steps[1].contains("backend 1 on 127.0.0.1:"), "{lines:#?}");
    assert!(
        steps[3].contains("starting the proxy") && steps[3].contains("rate limit 20"),
        "{lines:#?}"
    );

    let mut bodies = Vec::new();
    for _ in 0..2 {
        bodies.push(
            support::get(&format!("http://127.0.0.1:{port}/"))
                .await
                .text(),
        );
    }
    bodies.sort();
    assert_eq!(
        bodies,
        ["Response from server 1\n", "Response from server 2\n"]
    );

    assert!(
        eventually(Duration::from_secs(2), || {
            let exists = pid_file.exists();
            async move { exists }
        })
        .await,
        "the demo writes its pid file"
    );
    let stop = run(&["stop", "--pid-file", path(&pid_file)]);
    assert!(stop.status.success(), "stop: {}", stderr(&stop));
    let status = child.0.wait().expect("wait for the demo");
    assert!(status.success(), "{status}");
    println!(
        "demo: {} start-up lines, port {port}, {bodies:?}, exit {status}",
        steps.len()
    );
}

#[tokio::test]
async fn one_line_proxy_from_to() {
    let one = backend("one").await;
    let backends = [one.url()];
    let (proc, addr) = start_proxy(
        |addr| {
            ["proxy", "--from", &addr.to_string(), "--to", &backends[0]]
                .map(String::from)
                .to_vec()
        },
        &backends,
    )
    .await;
    let resp = support::get(&format!("http://{addr}/")).await;
    assert_eq!((resp.status, resp.text().as_str()), (200, "one\n"));
    proc.terminate().await;
    assert!(proc.wait(Duration::from_secs(5)).await.status.success());

    let output = run(&["proxy", "--from", "127.0.0.1:0"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--to URL"), "{}", stderr(&output));
    println!("proxy --from {addr} --to {}: {}", backends[0], resp.status);
}
