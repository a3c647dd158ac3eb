//! Rendering errors for HTTP and gRPC clients.

use super::*;

#[test]
fn grpc_calls_get_grpc_status_and_http_clients_text() {
    let err = || {
        ProxyError::Upstream(upstream::Error::NoBackendAvailable {
            pool: "p".to_owned(),
        })
    };
    let grpc = Render {
        body_unread: false,
        grpc: true,
    };
    let resp = err().into_response(grpc);
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/grpc");
    assert_eq!(resp.headers()["grpc-status"], "14");
    assert!(resp.headers()["grpc-message"]
        .to_str()
        .is_ok_and(|m| m.starts_with("Service Unavailable")));
    let resp = err().into_response(Render::default());
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let timeout = ProxyError::Upstream(upstream::Error::RequestTimeout {
        after: Duration::from_secs(1),
    });
    assert_eq!(timeout.grpc_status(), 4);
    let limited = ProxyError::RateLimited {
        retry_after: Duration::from_secs(1),
    };
    assert_eq!(limited.grpc_status(), 8, "RESOURCE_EXHAUSTED");
    assert_eq!(percent_encode("a%b\n"), "a%25b%0A");
}

#[test]
fn grpc_is_told_by_content_type() {
    let mut headers = HeaderMap::new();
    assert!(!Render::for_request(&headers, false).grpc);
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/grpc+proto"),
    );
    assert!(Render::for_request(&headers, false).grpc);
}
