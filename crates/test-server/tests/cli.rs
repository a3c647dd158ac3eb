//! The `test-server` binary: `--host` binds that address only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Kills the server however the test ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn host_binds_that_address_only() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_test-server"))
        .args(["--host", "127.0.0.1", "--port", "0", "--message", "hi"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("test-server starts");
    let stderr = child.stderr.take().expect("stderr is piped");
    let _server = Killed(child);
    let mut line = String::new();
    BufReader::new(stderr)
        .read_line(&mut line)
        .expect("test-server says where it listens");
    let addr: std::net::SocketAddr = line
        .trim()
        .strip_prefix("test-server listening on ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
    assert_eq!(addr.ip(), std::net::Ipv4Addr::LOCALHOST);

    let mut conn = TcpStream::connect(addr).expect("connects on loopback");
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout set");
    conn.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .expect("request written");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("answer read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The message, with the newline `GET /` adds.
    assert_eq!(answer.split("\r\n\r\n").nth(1), Some("hi\n"), "{answer}");
}
