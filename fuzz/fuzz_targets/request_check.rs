//! The request-head checks switchyard adds on top of hyper: `proxy::check::check_request`
//! (CONNECT, target form, `Host`), `proxy::limits::check_uri` (`414`) and, once a route is
//! known, `proxy::limits::check_route` (`405`, `415`, `413`) with fuzzed route limits.
//! A head that passes has exactly one valid `Host` (none only for HTTP/1.0) and is no
//! CONNECT.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use http::header::{CONTENT_LENGTH, HOST};
use http::{HeaderValue, Method, Version};
use libfuzzer_sys::fuzz_target;
use switchyard::config::{Limits, RouteLimits};
use switchyard::proxy::{check, limits};
use switchyard::routing::request_host;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Some(mut parts) = switchyard_fuzz::request_head(&mut u) else {
        return;
    };
    let global = Limits {
        max_uri_length: usize::from(u16::arbitrary(&mut u).unwrap_or(8192)),
        max_body_size: u64::from(u32::arbitrary(&mut u).unwrap_or(0)),
        ..Limits::default()
    };
    let route = route_limits(&mut u);
    let has_body = bool::arbitrary(&mut u).unwrap_or(false);
    let _ = limits::check_uri(&parts, &global);
    if check::check_request(&mut parts).is_err() {
        return;
    }
    assert_ne!(parts.method, Method::CONNECT);
    let hosts = parts.headers.get_all(HOST).iter().count();
    assert!(hosts == 1 || (hosts == 0 && parts.version < Version::HTTP_11));
    let _ = request_host(&parts);
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Ok(max) = limits::check_route(&parts, declared, has_body, &route, &global) {
        if max != 0 {
            assert!(declared.is_none_or(|n| n <= max));
        }
    }
});

fn route_limits(u: &mut Unstructured<'_>) -> RouteLimits {
    let methods: Option<Vec<String>> = Arbitrary::arbitrary(u).unwrap_or_default();
    let allowed_methods = methods.map(|names| {
        let methods: Vec<Method> = names
            .iter()
            .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
            .collect();
        let allow = HeaderValue::from_static("GET");
        (methods, allow)
    });
    RouteLimits {
        max_body_size: Option::<u32>::arbitrary(u)
            .unwrap_or_default()
            .map(u64::from),
        allowed_methods,
        allowed_content_types: Arbitrary::arbitrary(u).unwrap_or_default(),
        security_headers: None,
    }
}
