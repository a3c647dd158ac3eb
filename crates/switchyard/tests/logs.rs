//! What switchyard logs: one start-up summary with structured fields (arrays as arrays in
//! JSON lines), and one line per failed request naming the backend tried, the attempts and
//! the cause.

#[path = "upstream_tls/logs.rs"]
mod logs;
mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::process::{start_proxy, Proc};
use support::{backend, TestProxy};

/// A configuration file for the proxy on `addr`, written where no other test writes.
fn write_config(name: &str, addr: std::net::SocketAddr, backends: &[String]) -> String {
    let dir = std::env::temp_dir().join(format!("switchyard-logs-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let list: Vec<String> = backends.iter().map(|b| format!("\"{b}\"")).collect();
    let text = format!(
        "[[listeners]]\naddress = \"{addr}\"\n\
         [admin]\nhealth_path = \"/healthz\"\n\
         [pools.api]\nbackends = [{}]\npolicy = \"least_request\"\n",
        list.join(", ")
    );
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, text).expect("write config");
    path.display().to_string()
}

#[tokio::test]
async fn the_start_up_summary_has_structured_fields_in_json() {
    let one = backend("one").await;
    let two = backend("two").await;
    let urls = [one.url(), two.url()];
    let file = std::cell::RefCell::new(String::new());
    let (proc, addr): (Proc, _) = start_proxy(
        |addr| {
            let path = write_config("summary", addr, &urls);
            *file.borrow_mut() = path.clone();
            ["--config", &path, "--log-format", "json", "--workers", "1"]
                .map(String::from)
                .to_vec()
        },
        &[],
    )
    .await;
    let file = file.into_inner();
    proc.terminate().await;
    let output = proc.wait(Duration::from_secs(5)).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let started: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "switchyard started")
        .collect();
    assert_eq!(started.len(), 1, "one summary:\n{stderr}");
    let s = started[0];
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"), "{s:#}");
    assert_eq!(s["config_file"], file.as_str(), "{s:#}");
    let version = s["config_version"].as_str().expect("config_version");
    assert!(!version.is_empty(), "{s:#}");
    assert_eq!(s["listen"], json!([addr.to_string()]), "an array: {s:#}");
    assert_eq!(s["workers"], 1, "{s:#}");
    assert_eq!(
        s["admin"],
        json!({
            "listen": null,
            "health": "/healthz",
            "live": "/healthz/live",
            "ready": "/healthz/ready",
            "metrics": "/metrics",
        }),
        "{s:#}"
    );
    let pool_urls: Vec<String> = [&one, &two]
        .iter()
        .map(|b| support::url_for(b).to_string())
        .collect();
    assert_eq!(
        s["pools"],
        json!([{ "name": "api", "policy": "least_request", "backends": pool_urls }]),
        "{s:#}"
    );
    println!(
        "start-up summary: {}",
        serde_json::to_string(s).unwrap_or_default()
    );
}

#[tokio::test]
async fn a_failed_request_is_one_line_naming_the_backend_the_attempts_and_the_cause() {
    logs::capture();
    let (_a_socket, a) = support::dead_port();
    let (_b_socket, b) = support::dead_port();
    let mut config = support::config(vec![a.clone(), b.clone()]);
    config.pools[0].retries = 1;
    let proxy = TestProxy::start(config);
    let path = format!("/fails-{}", a.port);
    let resp = support::get(&proxy.url(&path)).await;
    assert_eq!(resp.status, 502);

    let (a, b) = (a.to_string(), b.to_string());
    let about = |line: &String| line.contains(&a) || line.contains(&b) || line.contains(&path);
    let mine = || {
        let mut lines = logs::lines_with(&[]);
        lines.retain(about);
        lines
    };
    assert_eventually!(
        Duration::from_secs(2),
        || async { !mine().is_empty() },
        "no log line for the failed request"
    );
    proxy.stop().await;
    let lines = mine();
    assert_eq!(lines.len(), 1, "one line per failed request: {lines:#?}");
    let line = lines[0].trim();
    for want in [
        "WARN",
        "request failed",
        &format!("path={path}"),
        "status=502",
        "attempts=2",
        "cannot connect to backend",
        "connect failed",
    ] {
        assert!(line.contains(want), "no {want:?} in {line}");
    }
    assert!(
        line.contains(&format!("backend={a}")) || line.contains(&format!("backend={b}")),
        "the backend tried: {line}"
    );
    assert!(!line.contains("backend=-"), "{line}");
    println!("failed request, one line: {line}");
}
