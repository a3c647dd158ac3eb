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

#[test]
fn forward_auth_refusals_are_the_services_answer_and_failures_a_503() {
    let answer = || {
        let resp = Response::builder()
            .status(StatusCode::FOUND)
            .header("location", "https://login.example/")
            .header("set-cookie", "a=1")
            .header("set-cookie", "b=2")
            .body(bytes::Bytes::from_static(b"login"))
            .expect("response");
        ProxyError::ForwardAuthDenied(Box::new(resp))
    };
    let resp = answer().into_response(Render::default());
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(resp.headers()["location"], "https://login.example/");
    assert_eq!(resp.headers().get_all("set-cookie").iter().count(), 2);
    assert!(answer().is_client_fault());
    let unread = Render {
        body_unread: true,
        grpc: false,
    };
    assert_eq!(
        answer().into_response(unread).headers()["connection"],
        "close"
    );
    let grpc = Render {
        body_unread: false,
        grpc: true,
    };
    let resp = answer().into_response(grpc);
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["grpc-status"],
        "16",
        "a login page: UNAUTHENTICATED"
    );
    assert!(!resp.headers().contains_key("location"));

    let failed = || {
        ProxyError::ForwardAuthFailed(Box::new(crate::proxy::auth::forward::Failed {
            pool: "auth".to_owned(),
            backend: Some("http://127.0.0.1:9091".into()),
            reason: crate::proxy::auth::forward::Failure::Timeout(Duration::from_secs(5)),
        }))
    };
    assert_eq!(failed().status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(failed().grpc_status(), 14, "UNAVAILABLE");
    assert!(!failed().is_client_fault());
    assert_eq!(
        crate::errors::Chain(&failed()).to_string(),
        "forward auth service auth (http://127.0.0.1:9091) failed: no answer within 5s"
    );
    assert_eq!(
        failed().backend().map(|b| &**b),
        Some("http://127.0.0.1:9091")
    );
}
