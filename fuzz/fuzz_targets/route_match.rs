//! The route matcher (`routing.rs` `RouteTable::find`) over a fuzzed table (hosts exact or
//! wildcard, paths exact or prefix, methods, header conditions, client-certificate names)
//! and a fuzzed request. The route found is the first of the table that matches, and no
//! route is found only when none matches.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use http::Method;
use libfuzzer_sys::fuzz_target;
use switchyard::config::{ClientMatch, HostMatch, PathMatch, RouteConfig, RouteMatch};
use switchyard::routing::{request_host, Route, RouteTable};
use switchyard_fuzz::{header_name, header_value, request_head, string};

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let mut routes = Vec::new();
    for i in 0..u8::arbitrary(&mut u).unwrap_or(0) % 8 {
        let mut config = RouteConfig::catch_all("fuzz");
        config.name = format!("r{i}");
        config.matcher = matcher(&mut u);
        routes.push(Route {
            config,
            pool: None,
            limiter: None,
            client_limiter: None,
        });
    }
    let sans: Option<Vec<String>> = Arbitrary::arbitrary(&mut u).unwrap_or_default();
    let Some(req) = request_head(&mut u) else {
        return;
    };
    let table = RouteTable::new(routes);
    let found = table.find(&req, sans.as_deref());
    let host = request_host(&req);
    let first = table.routes().iter().find(|r| {
        r.config.matcher.matches(
            &host,
            req.uri.path(),
            &req.method,
            &req.headers,
            sans.as_deref(),
        )
    });
    assert_eq!(found.map(|r| &r.config.name), first.map(|r| &r.config.name));
});

fn matcher(u: &mut Unstructured<'_>) -> RouteMatch {
    let host = match u8::arbitrary(u).unwrap_or(0) % 3 {
        0 => HostMatch::Any,
        1 => HostMatch::Exact(string(u)),
        _ => HostMatch::Wildcard(string(u)),
    };
    let path = match u8::arbitrary(u).unwrap_or(0) % 3 {
        0 => PathMatch::Any,
        1 => PathMatch::Exact(string(u)),
        _ => PathMatch::Prefix(string(u)),
    };
    let methods: Vec<String> = Arbitrary::arbitrary(u).unwrap_or_default();
    let methods = methods
        .iter()
        .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
        .collect();
    let mut headers = Vec::new();
    for _ in 0..u8::arbitrary(u).unwrap_or(0) % 3 {
        if let (Some(n), Some(v)) = (header_name(u), header_value(u)) {
            headers.push((n, v));
        }
    }
    let client = match u8::arbitrary(u).unwrap_or(0) % 3 {
        0 => ClientMatch::Any,
        1 => ClientMatch::Certificate,
        _ => ClientMatch::San(string(u)),
    };
    RouteMatch {
        host,
        path,
        methods,
        headers,
        client,
    }
}
