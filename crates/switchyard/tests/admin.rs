//! `/health` and `/metrics`, served on the proxy's own port as in the seed.

mod support;

use serde_json::Value;
use support::metrics::backend_entry;
use support::{backend, config, url_for, Client, TestProxy};

fn header<'a>(resp: &'a support::Resp, name: &str) -> &'a str {
    resp.headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .expect("ASCII header")
}

fn counts(doc: &Value, keys: &[&str]) -> Vec<u64> {
    keys.iter()
        .map(|k| {
            doc[*k]
                .as_u64()
                .unwrap_or_else(|| panic!("{k} missing in {doc:#}"))
        })
        .collect()
}

/// Five proxied requests over a live and a dead backend without retries: three 200s, two
/// 502s.
async fn known_traffic(proxy: &TestProxy) {
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(support::get(&proxy.url("/")).await.status);
    }
    assert_eq!(statuses, [200, 502, 200, 502, 200]);
}

#[tokio::test]
async fn health_reports_up_uptime_and_each_backends_circuit() {
    let one = backend("one").await;
    let (_dead_port, dead) = support::dead_port();
    let proxy = TestProxy::start(config(vec![url_for(&one), dead.clone()]));

    let resp = support::get(&proxy.url("/health")).await;
    assert_eq!(resp.status, 200);
    assert!(header(&resp, "content-type").starts_with("application/json"));
    let health = resp.json();
    assert_eq!(health["status"], "UP");
    let uptime = health["uptime"].as_str().expect("uptime string");
    // Go's Duration.String() after rounding to seconds: "0s", "59s", "2m5s", "1h0m5s".
    assert!(uptime.ends_with('s'), "uptime {uptime:?}");
    assert!(
        uptime.starts_with(|c: char| c.is_ascii_digit())
            && uptime
                .chars()
                .all(|c| c.is_ascii_digit() || "hms".contains(c)),
        "uptime {uptime:?}"
    );
    let backends = health["backends"].as_array().expect("backends");
    assert_eq!(backends.len(), 2);
    assert_eq!(backends[0]["url"], url_for(&one).to_string());
    assert_eq!(backends[1]["url"], dead.to_string());
    for b in backends {
        assert_eq!(b["circuit"], "closed", "{health:#}");
    }
    assert_eq!(one.requests(), 0, "/health is answered by the proxy itself");
    proxy.stop().await;
}

#[tokio::test]
async fn metrics_json_counts_known_traffic_exactly() {
    let live = backend("live").await;
    let (_dead_port, dead) = support::dead_port();
    let mut cfg = config(vec![url_for(&live), dead.clone()]);
    cfg.pools[0].retries = 0;
    let proxy = TestProxy::start(cfg);
    known_traffic(&proxy).await;

    let resp = support::get(&proxy.url("/metrics")).await;
    assert_eq!(resp.status, 200);
    assert!(header(&resp, "content-type").starts_with("application/json"));
    let m = resp.json();
    let n = |key: &str| {
        m[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} missing in {m:#}"))
    };
    assert_eq!(
        n("requests"),
        n("responses") + n("errors") + n("rate_limited") + n("cancelled") + n("in_flight"),
        "{m:#}"
    );
    assert_eq!(
        [
            n("requests"),
            n("responses"),
            n("errors"),
            n("rate_limited"),
            n("cancelled"),
            n("in_flight"),
            n("retries")
        ],
        [5, 3, 2, 0, 0, 0, 0],
        "{m:#}"
    );

    let live_stats = backend_entry(&m, &url_for(&live).to_string());
    assert_eq!(live_stats["requests"], 3);
    assert_eq!(live_stats["responses"], 3);
    assert_eq!(live_stats["errors"], 0);
    assert_eq!(live_stats["failures"], 0);
    assert_eq!(live_stats["in_flight"], 0);
    assert_eq!(live_stats["circuit"], "closed");
    let dead_stats = backend_entry(&m, &dead.to_string());
    assert_eq!(dead_stats["requests"], 2);
    assert_eq!(dead_stats["responses"], 0);
    assert_eq!(dead_stats["errors"], 2);
    assert_eq!(dead_stats["failures"], 2);
    assert_eq!(dead_stats["consecutive_failures"], 2);
    assert_eq!(dead_stats["circuit"], "closed", "two failures are not five");

    // Scrapes are not counted.
    assert_eq!(proxy.metrics().await["requests"], 5);
    proxy.stop().await;
}

#[tokio::test]
async fn metrics_in_prometheus_text_when_asked_for() {
    let live = backend("live").await;
    let (_dead_port, dead) = support::dead_port();
    let mut cfg = config(vec![url_for(&live), dead.clone()]);
    cfg.pools[0].retries = 0;
    let proxy = TestProxy::start(cfg);
    known_traffic(&proxy).await;
    let live_label = format!("{{pool=\"default\",backend=\"{}\"}}", url_for(&live));
    let dead_label = format!("{{pool=\"default\",backend=\"{dead}\"}}");
    let mut client = Client::connect(proxy.addr).await;

    let asks: [(&str, Option<&str>, &str); 3] = [
        ("/metrics", Some("text/plain"), "text/plain"),
        (
            "/metrics",
            Some("application/openmetrics-text"),
            "application/openmetrics-text",
        ),
        ("/metrics?format=prometheus", None, "text/plain"),
    ];
    for (path, accept, content_type) in asks {
        let mut req = http::Request::get(path);
        if let Some(accept) = accept {
            req = req.header(http::header::ACCEPT, accept);
        }
        let resp = client
            .send(req.body(bytes::Bytes::new()).unwrap())
            .await
            .unwrap();
        let what = format!("{path} Accept: {accept:?}");
        assert_eq!(resp.status, 200, "{what}");
        assert!(
            header(&resp, "content-type").starts_with(content_type),
            "{what}: {}",
            header(&resp, "content-type")
        );
        let text = resp.text();
        let lines: Vec<&str> = text.lines().collect();
        for want in [
            "switchyard_requests_total 5".to_owned(),
            "switchyard_responses_total 3".to_owned(),
            "switchyard_errors_total 2".to_owned(),
            "switchyard_rate_limited_total 0".to_owned(),
            "switchyard_in_flight_requests 0".to_owned(),
            format!("switchyard_backend_requests_total{live_label} 3"),
            format!("switchyard_backend_failures_total{dead_label} 2"),
            format!("switchyard_backend_circuit_state{dead_label} 0"),
        ] {
            assert!(
                lines.contains(&want.as_str()),
                "{what}: no {want:?} in\n{text}"
            );
        }
        if content_type == "application/openmetrics-text" {
            assert!(
                text.contains("# TYPE switchyard_requests counter"),
                "{what}:\n{text}"
            );
            assert!(text.ends_with("# EOF\n"), "{what}:\n{text}");
        }
    }

    // Without Accept (as curl sends `*/*`) it is JSON, as in the seed.
    let resp = client.get("/metrics").await;
    assert!(header(&resp, "content-type").starts_with("application/json"));
    assert_eq!(resp.json()["requests"], 5);
    let resp = client
        .send(
            http::Request::get("/metrics")
                .header(http::header::ACCEPT, "*/*")
                .body(bytes::Bytes::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(header(&resp, "content-type").starts_with("application/json"));
    assert_eq!(resp.json()["responses"], 3);
    proxy.stop().await;
}

#[tokio::test]
async fn admin_endpoints_refuse_other_methods_with_405_and_allow() {
    let server = backend("ok").await;
    let proxy = TestProxy::start(config(vec![url_for(&server)]));
    let mut client = Client::connect(proxy.addr).await;

    for (method, path) in [
        (http::Method::POST, "/health"),
        (http::Method::DELETE, "/health"),
        (http::Method::POST, "/metrics"),
    ] {
        let resp = client
            .send(
                http::Request::builder()
                    .method(method.clone())
                    .uri(path)
                    .body(bytes::Bytes::new())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status, 405, "{method} {path}");
        let allow = header(&resp, "allow");
        assert!(allow.contains("GET"), "{method} {path}: Allow: {allow}");
        assert!(!allow.contains("POST"), "{method} {path}: Allow: {allow}");
    }
    assert_eq!(server.requests(), 0, "admin paths never reach a backend");
    proxy.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_in_flight_and_requests_whose_client_went_away() {
    use tokio::io::AsyncWriteExt;

    let slow = backend("slow").await;
    let url = url_for(&slow).to_string();
    let proxy = TestProxy::start(config(vec![url_for(&slow)]));

    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"GET /delay/1000 HTTP/1.1\r\nHost: switchyard\r\n\r\n")
        .await
        .unwrap();
    assert_eventually!(
        std::time::Duration::from_secs(1),
        || async { slow.requests() == 1 },
        "the request never reached the backend"
    );
    let m = proxy.metrics().await;
    assert_eq!(
        counts(&m, &["requests", "in_flight", "responses"]),
        [1, 1, 0],
        "{m:#}"
    );
    assert_eq!(backend_entry(&m, &url)["in_flight"], 1, "{m:#}");

    // The client gives up before the backend answers.
    drop(stream);
    assert_eventually!(
        std::time::Duration::from_millis(800),
        || async { proxy.metrics().await["cancelled"] == 1 },
        "a request whose client went away was not counted as cancelled"
    );
    let m = proxy.metrics().await;
    assert_eq!(
        counts(&m, &["requests", "cancelled", "in_flight", "responses"]),
        [1, 1, 0, 0],
        "{m:#}"
    );
    let stats = backend_entry(&m, &url);
    assert_eq!(stats["cancelled"], 1, "{m:#}");
    assert_eq!(stats["in_flight"], 0, "{m:#}");
    assert_eq!(
        stats["failures"], 0,
        "the client's leaving is not the backend's fault"
    );
    proxy.stop().await;
}
