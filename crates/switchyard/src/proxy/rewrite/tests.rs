use super::*;
use crate::proxy::context::Transport;
use http::Request;

fn parts(req: Request<()>) -> request::Parts {
    req.into_parts().0
}

fn conn(ip: &str) -> ConnInfo {
    let addr = std::net::SocketAddr::new(ip.parse().expect("ip"), 4000);
    ConnInfo::new(
        addr,
        &crate::config::ListenerConfig::default(),
        false,
        Transport::PLAIN_HTTP1,
    )
}

fn catch_all() -> Route {
    Route {
        config: crate::config::RouteConfig::catch_all("default"),
        pool: None,
        limiter: None,
    }
}

#[test]
fn hop_by_hop_and_named_headers_are_removed() {
    let mut p = parts(
        Request::get("/")
            .header("host", "a")
            .header("connection", "keep-alive, x-secret")
            .header("x-secret", "1")
            .header("keep-alive", "timeout=5")
            .header("te", "gzip")
            .header("transfer-encoding", "chunked")
            .header("upgrade", "websocket")
            .header("proxy-connection", "keep-alive")
            .header("content-length", "3")
            .header("x-kept", "yes")
            .body(())
            .unwrap(),
    );
    rewrite_request(&mut p, &conn("10.0.0.1"), &catch_all());
    let names: Vec<&str> = p.headers.keys().map(|k| k.as_str()).collect();
    for gone in [
        "connection",
        "x-secret",
        "keep-alive",
        "te",
        "transfer-encoding",
        "upgrade",
        "proxy-connection",
        "content-length",
    ] {
        assert!(!names.contains(&gone), "{gone} forwarded: {names:?}");
    }
    assert_eq!(p.headers["x-kept"], "yes");
    assert_eq!(p.headers["host"], "a");
    assert_eq!(p.headers["x-forwarded-for"], "10.0.0.1");
    assert_eq!(p.headers["x-forwarded-proto"], "http");
    assert_eq!(p.headers["x-forwarded-host"], "a");
}

#[test]
fn forwarded_for_is_appended() {
    let mut p = parts(
        Request::get("/")
            .header("host", "a")
            .header("x-forwarded-for", "1.1.1.1")
            .header("x-forwarded-for", "2.2.2.2")
            .body(())
            .unwrap(),
    );
    rewrite_request(&mut p, &conn("::1"), &catch_all());
    assert_eq!(p.headers["x-forwarded-for"], "1.1.1.1, 2.2.2.2, ::1");
}

#[test]
fn te_trailers_is_kept_other_te_values_are_not() {
    let mut p = parts(
        Request::get("/")
            .header("host", "a")
            .header("te", "gzip, trailers;q=1")
            .body(())
            .unwrap(),
    );
    assert!(rewrite_request(&mut p, &conn("10.0.0.1"), &catch_all()));
    assert_eq!(p.headers["te"], "trailers");
}
