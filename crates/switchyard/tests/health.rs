//! Honest health: `/health` says `UP`, `DEGRADED` or `DOWN` (answered `503`) as real
//! backends stop and come back, shows circuits as of now, and `/health/live` and
//! `/health/ready` answer as orchestrators expect.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::backends::{pool_config, port, restart_on};
use support::{backend, TestProxy};

const FAST_CHECKS: &str = "[pools.p.health_check]\n\
    interval = \"50ms\"\n\
    timeout = \"500ms\"\n\
    unhealthy_threshold = 1\n\
    healthy_threshold = 1\n";

/// `/health`: its status code and document.
async fn health(proxy: &TestProxy) -> (u16, Value) {
    let resp = support::get(&proxy.url("/health")).await;
    (resp.status, resp.json())
}

/// Waits until `/health` says `status`; returns its code and document.
async fn until_status(proxy: &TestProxy, status: &str) -> (u16, Value) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let last = health(proxy).await;
        if last.1["status"] == status {
            return last;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never {status}: last {} {:#}",
            last.0,
            last.1
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn backend_field<'a>(doc: &'a Value, url: &str, field: &str) -> &'a Value {
    doc["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .find(|b| b["url"].as_str().is_some_and(|u| u.contains(url)))
        .map(|b| &b[field])
        .unwrap_or_else(|| panic!("no backend {url} in {doc:#}"))
}

#[tokio::test]
async fn health_goes_up_degraded_down_and_up_again_as_backends_stop_and_return() {
    let one = backend("one").await;
    let two = backend("two").await;
    let (port_one, port_two) = (port(&one), port(&two));
    let proxy = TestProxy::start(pool_config(1, &[(&one, 1), (&two, 1)], "", FAST_CHECKS));

    let (code, doc) = until_status(&proxy, "UP").await;
    assert_eq!(code, 200, "{doc:#}");
    assert!(
        doc.get("version").is_none(),
        "renamed config_version: {doc:#}"
    );
    assert!(doc["config_version"].is_string(), "{doc:#}");

    one.stop().await;
    let (degraded, doc) = until_status(&proxy, "DEGRADED").await;
    assert_eq!(degraded, 200, "DEGRADED still serves: {doc:#}");
    let one_addr = format!("127.0.0.1:{port_one}");
    assert_eq!(backend_field(&doc, &one_addr, "available"), false);
    assert_eq!(backend_field(&doc, &one_addr, "healthy"), false);
    assert_eq!(support::get(&proxy.url("/")).await.status, 200);

    two.stop().await;
    let (down, doc) = until_status(&proxy, "DOWN").await;
    assert_eq!(down, 503, "DOWN answers 503 by default: {doc:#}");

    let one = restart_on(port_one, "one").await;
    let two = restart_on(port_two, "two").await;
    let (up, _) = until_status(&proxy, "UP").await;
    assert_eq!(up, 200);
    assert_eq!(support::get(&proxy.url("/")).await.status, 200);
    println!("health: UP 200 -> DEGRADED {degraded} -> DOWN {down} -> UP {up}");
    proxy.stop().await;
    drop((one, two));
}

#[tokio::test]
async fn down_status_is_configurable() {
    let only = backend("only").await;
    let tables = format!("{FAST_CHECKS}[admin]\ndown_status = 200\n");
    let proxy = TestProxy::start(pool_config(1, &[(&only, 1)], "", &tables));
    only.stop().await;
    let (code, _) = until_status(&proxy, "DOWN").await;
    assert_eq!(code, 200, "down_status = 200");
    println!("DOWN with down_status = 200 answered {code}");
    proxy.stop().await;
}

#[tokio::test]
async fn an_open_circuit_shows_half_open_once_its_time_has_passed_without_traffic() {
    let (_dead_socket, dead) = support::dead_port();
    let text = format!(
        "workers = 1\n[[listeners]]\naddress = \"127.0.0.1:0\"\n[rate_limit]\nrequests = 0\n\
         [pools.p]\nbackends = [\"{dead}\"]\nretries = 0\n\
         [pools.p.circuit_breaker]\nfailures = 1\nopen_duration = \"300ms\"\n"
    );
    let config = switchyard::config::validate::from_text(std::path::Path::new("t.toml"), &text)
        .expect("config");
    let proxy = TestProxy::start(config);

    assert_eq!(support::get(&proxy.url("/")).await.status, 502);
    let (code, doc) = health(&proxy).await;
    assert_eq!(doc["backends"][0]["circuit"], "open", "{doc:#}");
    assert_eq!(
        (code, doc["status"].as_str()),
        (503, Some("DOWN")),
        "{doc:#}"
    );

    let started = tokio::time::Instant::now();
    let (code, doc) = until_status(&proxy, "DEGRADED").await;
    let waited = started.elapsed();
    assert_eq!(doc["backends"][0]["circuit"], "half_open", "{doc:#}");
    assert_eq!(code, 200);
    let m = proxy.metrics().await;
    assert_eq!(m["requests"], 1, "no request was needed: {m:#}");
    assert_eq!(m["backends"][0]["circuit"], "half_open", "{m:#}");
    println!("circuit open -> half_open after {waited:?} with no traffic (open_duration 300ms)");
    proxy.stop().await;
}

#[tokio::test]
async fn live_always_and_ready_once_the_first_checks_have_settled() {
    let server = backend("ok").await;
    let checks = "[pools.p.health_check]\ninterval = \"1s\"\ntimeout = \"500ms\"\n";
    let proxy = TestProxy::start(pool_config(1, &[(&server, 1)], "", checks));

    let live = support::get(&proxy.url("/health/live")).await;
    assert_eq!(live.status, 200);
    let ready = support::get(&proxy.url("/health/ready")).await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert_eq!(ready.json()["status"], "NOT_READY");

    let started = tokio::time::Instant::now();
    let became_ready = support::eventually(Duration::from_secs(4), || async {
        support::get(&proxy.url("/health/ready")).await.status == 200
    })
    .await;
    assert!(became_ready, "never ready");
    let waited = started.elapsed();
    assert_eq!(support::get(&proxy.url("/health/live")).await.status, 200);
    assert!(server.requests() >= 1, "a check reached the backend");

    let plain = backend("plain").await;
    let unchecked = TestProxy::start(pool_config(1, &[(&plain, 1)], "", ""));
    let ready = support::get(&unchecked.url("/health/ready")).await;
    assert_eq!(ready.status, 200, "nothing to wait for: {}", ready.text());
    assert_eq!(
        plain.requests(),
        0,
        "health endpoints never reach a backend"
    );
    println!("live 200; ready 503 then 200 after {waited:?} (check interval 1s)");
    proxy.stop().await;
    unchecked.stop().await;
}

#[tokio::test]
async fn a_backend_that_does_not_resolve_is_down_and_the_others_serve() {
    let real = backend("real").await;
    let text = format!(
        "workers = 1\n[[listeners]]\naddress = \"127.0.0.1:0\"\n[rate_limit]\nrequests = 0\n\
         [pools.p]\nbackends = [\"http://does-not-resolve.invalid:80\", \"{}\"]\n",
        real.url()
    );
    let config = switchyard::config::validate::from_text(std::path::Path::new("t.toml"), &text)
        .expect("config");
    let proxy = TestProxy::start(config);

    let mut served = 0;
    for _ in 0..10 {
        let resp = support::get(&proxy.url("/")).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.served_by(), Some(port(&real)));
        served += 1;
    }
    let (code, doc) = health(&proxy).await;
    assert_eq!(
        (code, doc["status"].as_str()),
        (200, Some("DEGRADED")),
        "{doc:#}"
    );
    let bad = "does-not-resolve.invalid";
    assert_eq!(backend_field(&doc, bad, "resolved"), false, "{doc:#}");
    assert_eq!(backend_field(&doc, bad, "available"), false, "{doc:#}");
    let m = proxy.metrics().await;
    assert_eq!(
        support::metrics::backend_entry(&m, "http://does-not-resolve.invalid:80")["requests"],
        0,
        "{m:#}"
    );
    println!("{served}/10 requests served by the real backend; the unresolvable one shown down");
    proxy.stop().await;
}

#[test]
fn a_down_status_out_of_range_is_a_config_error_naming_the_key() {
    let text = "[[listeners]]\naddress = \"127.0.0.1:0\"\n[admin]\ndown_status = 99\n\
                [pools.p]\nbackends = [\"http://127.0.0.1:1\"]\n";
    let err = switchyard::config::validate::from_text(std::path::Path::new("t.toml"), text)
        .expect_err("99 is not a status");
    let text = err.to_string();
    assert!(text.contains("admin.down_status"), "{text}");
    assert!(text.contains("t.toml:4"), "names the line: {text}");
    println!(
        "down_status = 99: {}",
        text.lines().next().unwrap_or_default()
    );
}

#[tokio::test]
async fn a_reload_adding_a_backend_that_does_not_resolve_is_accepted() {
    let real = backend("real").await;
    let file = |backends: &str| {
        let text = format!(
            "workers = 1\n[[listeners]]\naddress = \"127.0.0.1:0\"\n[rate_limit]\nrequests = 0\n\
             [pools.p]\nbackends = [{backends}]\n"
        );
        switchyard::config::validate::from_text(std::path::Path::new("t.toml"), &text)
            .expect("config")
    };
    let proxy = TestProxy::start(file(&format!("\"{}\"", real.url())));
    let both = format!("\"{}\", \"http://does-not-resolve.invalid:80\"", real.url());
    proxy
        .server
        .reload(file(&both))
        .expect("the reload is accepted");
    for _ in 0..6 {
        let resp = support::get(&proxy.url("/")).await;
        assert_eq!(resp.served_by(), Some(port(&real)), "{}", resp.text());
    }
    let (code, doc) = health(&proxy).await;
    assert_eq!(
        (code, doc["status"].as_str()),
        (200, Some("DEGRADED")),
        "{doc:#}"
    );
    println!("reload with an unresolvable backend: accepted, 6/6 served by the real one");
    proxy.stop().await;
}
