//! Routes, end to end: real backends behind a proxy started from a TOML configuration. Which
//! route takes a request (host, path, method, headers, precedence), what it does to it
//! (prefix rewrites, header edits, redirects, fixed responses, rate limits, timeouts), weighted
//! balancing, the admin endpoints on their own listener, and the metrics of all that.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use support::{backend, url_for, Client, Resp, TestProxy};
use switchyard::config::validate::from_text;
use switchyard::Config;
use tokio::time::Instant;

/// Parses `text` into a configuration a test can start: the first listener on a free
/// loopback port, two workers, no global rate limit (unless a test sets these again).
fn load(text: &str) -> Config {
    let mut config = from_text(Path::new("routing.toml"), text)
        .unwrap_or_else(|e| panic!("invalid test configuration:\n{e}\n---\n{text}"));
    config.listeners[0].addr = "127.0.0.1:0".parse().expect("listen address");
    config.workers = 2;
    config.rate_limit.requests = 0;
    config
}

/// Sends `method path` with this `Host` and extra headers.
async fn send(
    client: &mut Client,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Resp {
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, host);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    client
        .send(req.body(Bytes::new()).expect("request"))
        .await
        .unwrap_or_else(|e| panic!("{method} {host}{path}: {e}"))
}

/// `GET path` with this `Host`.
async fn get_host(client: &mut Client, host: &str, path: &str) -> Resp {
    send(client, "GET", host, path, &[]).await
}

/// The test-server's message that answered (its body without the newline).
fn who(resp: &Resp) -> String {
    assert_eq!(resp.status, 200, "{resp:?}");
    resp.text().trim_end().to_owned()
}

fn header<'a>(resp: &'a Resp, name: &str) -> Option<&'a str> {
    resp.headers
        .get(name)
        .map(|v| v.to_str().expect("ASCII header"))
}

/// The values of `name` in an `/echo` document, in order.
fn echoed(doc: &Value, name: &str) -> Vec<String> {
    doc["headers"]
        .as_array()
        .expect("headers array")
        .iter()
        .filter(|pair| pair[0] == name)
        .map(|pair| pair[1].as_str().expect("header value").to_owned())
        .collect()
}

/// A backend that answers every request with its request target (path and query) as the
/// body, to see exactly what path a rewrite produced.
async fn target_backend() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        let target = req.uri().path_and_query().map_or("", |p| p.as_str());
                        Ok::<_, Infallible>(http::Response::new(http_body_util::Full::new(
                            Bytes::from(target.to_owned()),
                        )))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn exact_host_beats_wildcard_beats_no_host() {
    let exact = backend("exact").await;
    let wild = backend("wild").await;
    let other = backend("other").await;
    // The general route first: precedence does not depend on file order.
    let proxy = TestProxy::start(load(&format!(
        r#"
[pools.other]
backends = ["{}"]
[pools.wild]
backends = ["{}"]
[pools.exact]
backends = ["{}"]

[[routes]]
name = "any-host"
pool = "other"

[[routes]]
name = "wildcard"
pool = "wild"
match = {{ host = "*.example.com" }}

[[routes]]
name = "exact"
pool = "exact"
match = {{ host = "api.example.com" }}
"#,
        url_for(&other),
        url_for(&wild),
        url_for(&exact)
    )));
    let mut client = Client::connect(proxy.addr).await;
    for (host, want) in [
        ("api.example.com", "exact"),
        ("API.Example.COM", "exact"),
        ("api.example.com:8080", "exact"),
        ("Api.Example.Com:443", "exact"),
        ("www.example.com", "wild"),
        ("a.b.example.com", "wild"),
        ("WWW.EXAMPLE.COM:3000", "wild"),
        // The wildcard does not take the bare domain, nor a name merely ending like it.
        ("example.com", "other"),
        ("example.com:80", "other"),
        ("badexample.com", "other"),
        ("api.example.org", "other"),
        ("127.0.0.1", "other"),
    ] {
        let resp = get_host(&mut client, host, "/").await;
        assert_eq!(who(&resp), want, "Host: {host}");
    }
    assert_eq!(
        (exact.requests(), wild.requests(), other.requests()),
        (4, 3, 5)
    );
    proxy.stop().await;
}

#[tokio::test]
async fn exact_path_beats_longest_prefix_on_segment_boundaries() {
    let any = backend("any").await;
    let api = backend("api").await;
    let v2 = backend("v2").await;
    let exact = backend("exact").await;
    let proxy = TestProxy::start(load(&format!(
        r#"
[pools.any]
backends = ["{}"]
[pools.api]
backends = ["{}"]
[pools.v2]
backends = ["{}"]
[pools.exact]
backends = ["{}"]

[[routes]]
name = "catch-all"
pool = "any"

[[routes]]
name = "api"
pool = "api"
match = {{ path_prefix = "/api" }}

[[routes]]
name = "v2"
pool = "v2"
match = {{ path_prefix = "/api/v2" }}

[[routes]]
name = "status"
pool = "exact"
match = {{ path = "/api/v2/status" }}
"#,
        url_for(&any),
        url_for(&api),
        url_for(&v2),
        url_for(&exact)
    )));
    let mut client = Client::connect(proxy.addr).await;
    for (path, want) in [
        ("/", "any"),
        ("/api", "api"),
        ("/api/", "api"),
        ("/api/x", "api"),
        ("/api?q=1", "api"),
        ("/apix", "any"),
        ("/ap", "any"),
        ("/API", "any"),
        ("/api/v2", "v2"),
        ("/api/v2/users", "v2"),
        ("/api/v20", "api"),
        ("/api/v2/status", "exact"),
        ("/api/v2/status?verbose=1", "exact"),
        ("/api/v2/status/x", "v2"),
        ("/api/v2/statusx", "v2"),
        ("/other/api", "any"),
    ] {
        let resp = get_host(&mut client, "example.com", path).await;
        assert_eq!(who(&resp), want, "GET {path}");
    }
    proxy.stop().await;
}

#[tokio::test]
async fn method_and_header_conditions_and_precedence() {
    let general = backend("general").await;
    let writes = backend("writes").await;
    let canary = backend("canary").await;
    let get_canary = backend("get-canary").await;
    let tenant = backend("tenant").await;
    // Most general first in the file; each later route is more specific.
    let proxy = TestProxy::start(load(&format!(
        r#"
[pools.general]
backends = ["{}"]
[pools.writes]
backends = ["{}"]
[pools.canary]
backends = ["{}"]
[pools.get-canary]
backends = ["{}"]
[pools.tenant]
backends = ["{}"]

[[routes]]
name = "general"
pool = "general"
match = {{ path_prefix = "/api" }}

[[routes]]
name = "canary"
pool = "canary"
match = {{ path_prefix = "/api", headers = {{ x-canary = "1" }} }}

[[routes]]
name = "writes"
pool = "writes"
match = {{ path_prefix = "/api", methods = ["post", "PUT"] }}

[[routes]]
name = "get-canary"
pool = "get-canary"
match = {{ path_prefix = "/api", methods = ["GET"], headers = {{ x-canary = "1" }} }}

[[routes]]
name = "tenant-host"
pool = "tenant"
match = {{ host = "tenant.example.com" }}
"#,
        url_for(&general),
        url_for(&writes),
        url_for(&canary),
        url_for(&get_canary),
        url_for(&tenant)
    )));
    let mut client = Client::connect(proxy.addr).await;
    let canary_hdr: &[(&str, &str)] = &[("x-canary", "1")];
    for (method, host, path, headers, want) in [
        ("GET", "example.com", "/api/x", &[][..], "general"),
        ("DELETE", "example.com", "/api/x", &[][..], "general"),
        ("POST", "example.com", "/api/x", &[][..], "writes"),
        ("PUT", "example.com", "/api", &[][..], "writes"),
        // A method condition beats a header condition.
        ("POST", "example.com", "/api/x", canary_hdr, "writes"),
        ("DELETE", "example.com", "/api/x", canary_hdr, "canary"),
        // Both beat either.
        ("GET", "example.com", "/api/x", canary_hdr, "get-canary"),
        // The header value must be equal.
        (
            "GET",
            "example.com",
            "/api/x",
            &[("x-canary", "2")][..],
            "general",
        ),
        (
            "GET",
            "example.com",
            "/api/x",
            &[("X-Canary", "1")][..],
            "get-canary",
        ),
        // A host condition beats everything about the path and conditions.
        ("GET", "tenant.example.com", "/api/x", canary_hdr, "tenant"),
        ("POST", "tenant.example.com", "/api", &[][..], "tenant"),
    ] {
        let resp = send(&mut client, method, host, path, headers).await;
        assert_eq!(who(&resp), want, "{method} {host}{path} {headers:?}");
    }
    proxy.stop().await;
}

#[tokio::test]
async fn strip_prefix_and_rewrite_prefix_change_the_path_only() {
    let target = target_backend().await;
    let url = format!("http://{target}");
    let proxy = TestProxy::start(load(&format!(
        r#"
[pools.app]
backends = ["{url}"]

[[routes]]
name = "as-is"
pool = "app"

[[routes]]
name = "api"
pool = "app"
match = {{ path_prefix = "/api" }}
strip_prefix = "/api"

[[routes]]
name = "moved"
pool = "app"
match = {{ path_prefix = "/old" }}
rewrite_prefix = "/new"
"#
    )));
    let mut client = Client::connect(proxy.addr).await;
    for (path, want) in [
        ("/api/users", "/users"),
        ("/api/users?id=7&sort=name", "/users?id=7&sort=name"),
        ("/api/users/42/", "/users/42/"),
        ("/api", "/"),
        ("/api?q=1", "/?q=1"),
        ("/api/", "/"),
        ("/apix/users", "/apix/users"),
        ("/old", "/new"),
        ("/old/page?x=1", "/new/page?x=1"),
        ("/old/a/b", "/new/a/b"),
        ("/oldish", "/oldish"),
        ("/other/api/x", "/other/api/x"),
    ] {
        let resp = get_host(&mut client, "example.com", path).await;
        assert_eq!(resp.status, 200, "{path}");
        assert_eq!(resp.text(), want, "GET {path}");
    }
    proxy.stop().await;
}

/// `rewrite_prefix = "/"` maps a prefix onto the root, and a replacement ending in `/` is a
/// directory: neither should double the slash at the join.
#[tokio::test]

async fn rewrite_prefix_ending_in_a_slash_does_not_double_it() {
    let target = target_backend().await;
    let url = format!("http://{target}");
    let proxy = TestProxy::start(load(&format!(
        r#"
[pools.app]
backends = ["{url}"]

[[routes]]
pool = "app"
match = {{ path_prefix = "/to-root" }}
rewrite_prefix = "/"

[[routes]]
pool = "app"
match = {{ path_prefix = "/to-dir" }}
rewrite_prefix = "/new/"
"#
    )));
    let mut client = Client::connect(proxy.addr).await;
    for (path, want) in [
        ("/to-root", "/"),
        ("/to-root/x?q=1", "/x?q=1"),
        ("/to-dir", "/new/"),
        ("/to-dir/x", "/new/x"),
    ] {
        let resp = get_host(&mut client, "example.com", path).await;
        assert_eq!(resp.status, 200, "{path}");
        assert_eq!(resp.text(), want, "GET {path}");
    }
    proxy.stop().await;
}

#[tokio::test]
async fn strip_prefix_keeps_method_headers_and_query_at_the_backend() {
    let b = backend("b").await;
    let proxy = TestProxy::start(load(&format!(
        r#"
[pools.app]
backends = ["{}"]

[[routes]]
pool = "app"
match = {{ path_prefix = "/svc" }}
strip_prefix = "/svc"
"#,
        url_for(&b)
    )));
    let mut client = Client::connect(proxy.addr).await;
    let resp = send(
        &mut client,
        "DELETE",
        "svc.example.com",
        "/svc/echo?a=1&b=two",
        &[("x-custom", "kept")],
    )
    .await;
    assert_eq!(resp.status, 200);
    let doc = resp.json();
    assert_eq!(doc["method"], "DELETE");
    assert_eq!(doc["path"], "/echo");
    assert_eq!(doc["query"], "a=1&b=two");
    assert_eq!(echoed(&doc, "x-custom"), ["kept"]);
    assert_eq!(echoed(&doc, "host"), ["svc.example.com"]);
    proxy.stop().await;
}

#[tokio::test]
async fn request_and_response_header_edits() {
    let b = backend("b").await;
    let proxy = TestProxy::start(load(&format!(
        r#"
[pools.app]
backends = ["{}"]

[[routes]]
name = "edited"
pool = "app"
match = {{ path_prefix = "/edited" }}
strip_prefix = "/edited"
request_headers = {{ set = {{ x-env = "prod", x-new = "1" }}, add = {{ x-tag = "from-proxy" }}, remove = ["x-secret", "x-env"] }}
response_headers = {{ set = {{ x-frame-options = "DENY" }}, add = {{ x-via = "switchyard" }}, remove = ["x-served-by"] }}

[[routes]]
name = "plain"
pool = "app"
"#,
        url_for(&b)
    )));
    let mut client = Client::connect(proxy.addr).await;
    let client_headers: &[(&str, &str)] = &[
        ("x-env", "dev"),
        ("x-tag", "from-client"),
        ("x-secret", "hunter2"),
        ("x-other", "untouched"),
    ];
    let resp = send(
        &mut client,
        "GET",
        "example.com",
        "/edited/echo",
        client_headers,
    )
    .await;
    assert_eq!(resp.status, 200);
    // Remove, then set, then add: x-env is removed and set again, so set wins.
    let doc = resp.json();
    assert_eq!(doc["path"], "/echo");
    assert_eq!(echoed(&doc, "x-env"), ["prod"]);
    assert_eq!(echoed(&doc, "x-new"), ["1"]);
    assert_eq!(echoed(&doc, "x-tag"), ["from-client", "from-proxy"]);
    assert!(echoed(&doc, "x-secret").is_empty(), "{doc:#}");
    assert_eq!(echoed(&doc, "x-other"), ["untouched"]);
    // Response edits.
    assert_eq!(header(&resp, "x-frame-options"), Some("DENY"));
    assert_eq!(header(&resp, "x-via"), Some("switchyard"));
    assert_eq!(header(&resp, "x-served-by"), None);

    // Another route is not edited.
    let resp = send(&mut client, "GET", "example.com", "/echo", client_headers).await;
    let doc = resp.json();
    assert_eq!(echoed(&doc, "x-env"), ["dev"]);
    assert_eq!(echoed(&doc, "x-secret"), ["hunter2"]);
    assert!(echoed(&doc, "x-new").is_empty());
    assert_eq!(header(&resp, "x-frame-options"), None);
    assert_eq!(
        header(&resp, "x-served-by"),
        Some(b.addr().port().to_string().as_str())
    );
    proxy.stop().await;
}

#[tokio::test]
async fn redirect_and_respond_never_reach_a_backend() {
    let b = backend("b").await;
    let proxy = TestProxy::start(load(&format!(
        r#"
[pools.app]
backends = ["{}"]

[[routes]]
name = "app"
pool = "app"

[[routes]]
name = "to-https"
match = {{ host = "www.example.com" }}
redirect = {{ to = "https://{{host}}{{uri}}", status = 308 }}

[[routes]]
name = "moved"
match = {{ path_prefix = "/moved" }}
redirect = {{ to = "https://new.example.com{{path}}?from={{query}}" }}

[[routes]]
name = "maintenance"
match = {{ path_prefix = "/down" }}
respond = {{ status = 503, body = "Down for maintenance\n", content_type = "text/html; charset=utf-8" }}

[[routes]]
name = "teapot"
match = {{ path = "/teapot" }}
respond = {{ status = 418, body = "short and stout" }}

[[routes]]
name = "empty"
match = {{ path = "/empty" }}
respond = {{ status = 204 }}
"#,
        url_for(&b)
    )));
    let mut client = Client::connect(proxy.addr).await;

    let resp = get_host(&mut client, "www.example.com", "/a/b?c=d&e=f").await;
    assert_eq!(resp.status, 308);
    assert_eq!(
        header(&resp, "location"),
        Some("https://www.example.com/a/b?c=d&e=f")
    );

    let resp = get_host(&mut client, "example.com", "/moved/x?k=v").await;
    assert_eq!(resp.status, 301, "default redirect status");
    assert_eq!(
        header(&resp, "location"),
        Some("https://new.example.com/moved/x?from=k=v")
    );

    let resp = get_host(&mut client, "example.com", "/down/anything").await;
    assert_eq!(resp.status, 503);
    assert_eq!(resp.text(), "Down for maintenance\n");
    assert_eq!(
        header(&resp, "content-type"),
        Some("text/html; charset=utf-8")
    );

    let resp = send(&mut client, "POST", "example.com", "/teapot", &[]).await;
    assert_eq!(resp.status, 418);
    assert_eq!(resp.text(), "short and stout");
    assert_eq!(
        header(&resp, "content-type"),
        Some("text/plain; charset=utf-8"),
        "default content type"
    );

    let resp = get_host(&mut client, "example.com", "/empty").await;
    assert_eq!(resp.status, 204);
    assert!(resp.body.is_empty());

    assert_eq!(b.requests(), 0, "no fixed response touched the backend");
    assert_eq!(b.connections(), 0, "nor connected to it");

    // The same connection still reaches the backend through the pool route.
    let resp = get_host(&mut client, "example.com", "/app").await;
    assert_eq!(who(&resp), "b");
    assert_eq!(b.requests(), 1);
    proxy.stop().await;
}

/// `response_headers` on a route that answers by itself: the configuration accepts it, so the
/// headers should be on the answer.
#[tokio::test]

async fn response_headers_apply_to_fixed_responses() {
    let b = backend("b").await;
    let proxy = TestProxy::start(load(&format!(
        r#"
[pools.app]
backends = ["{}"]

[[routes]]
pool = "app"

[[routes]]
match = {{ path = "/down" }}
respond = {{ status = 503, body = "down" }}
response_headers = {{ set = {{ retry-after = "3600", cache-control = "no-store" }} }}

[[routes]]
match = {{ path = "/moved" }}
redirect = {{ to = "https://example.org/" }}
response_headers = {{ set = {{ cache-control = "max-age=60" }} }}
"#,
        url_for(&b)
    )));
    let mut client = Client::connect(proxy.addr).await;
    let resp = get_host(&mut client, "example.com", "/down").await;
    assert_eq!(resp.status, 503);
    assert_eq!(header(&resp, "retry-after"), Some("3600"));
    assert_eq!(header(&resp, "cache-control"), Some("no-store"));
    let resp = get_host(&mut client, "example.com", "/moved").await;
    assert_eq!(resp.status, 301);
    assert_eq!(header(&resp, "cache-control"), Some("max-age=60"));
    proxy.stop().await;
}

#[tokio::test]
async fn no_matching_route_is_404() {
    let b = backend("b").await;
    let proxy = TestProxy::start(load(&format!(
        r#"
[pools.app]
backends = ["{}"]

[[routes]]
pool = "app"
match = {{ host = "app.example.com" }}

[[routes]]
pool = "app"
match = {{ path = "/only", methods = ["GET"] }}
"#,
        url_for(&b)
    )));
    let mut client = Client::connect(proxy.addr).await;
    for (method, host, path) in [
        ("GET", "other.example.com", "/"),
        ("GET", "example.com", "/only/x"),
        ("GET", "example.com", "/onl"),
        ("POST", "example.com", "/only"),
        ("GET", "x.app.example.com", "/"),
    ] {
        let resp = send(&mut client, method, host, path, &[]).await;
        assert_eq!(resp.status, 404, "{method} {host}{path}");
        assert!(resp.text().contains("no route"), "{}", resp.text());
    }
    assert_eq!(b.requests(), 0);
    assert_eq!(
        who(&get_host(&mut client, "app.example.com", "/x").await),
        "b"
    );
    assert_eq!(
        who(&get_host(&mut client, "example.com", "/only").await),
        "b"
    );
    assert_eq!(b.requests(), 2);
    proxy.stop().await;
}

#[tokio::test]
async fn a_routes_rate_limit_is_its_own() {
    let b = backend("b").await;
    let proxy = TestProxy::start(load(&format!(
        r#"
[pools.app]
backends = ["{}"]

[[routes]]
name = "free"
pool = "app"

[[routes]]
name = "limited"
pool = "app"
match = {{ path_prefix = "/limited" }}
rate_limit = {{ requests = 3, window = "1m" }}
"#,
        url_for(&b)
    )));
    let mut client = Client::connect(proxy.addr).await;
    let mut limited = Vec::new();
    for _ in 0..5 {
        limited.push(get_host(&mut client, "example.com", "/limited").await);
    }
    let statuses: Vec<u16> = limited.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let retry_after: u64 = header(&limited[3], "retry-after")
        .expect("Retry-After on 429")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(b.requests(), 3, "denied requests never reach the backend");
    // The other route is not limited.
    for _ in 0..10 {
        let resp = get_host(&mut client, "example.com", "/free").await;
        assert_eq!(resp.status, 200);
    }
    assert_eq!(b.requests(), 13);
    // Nor does its traffic use up the limited route's allowance (it is already used up).
    assert_eq!(
        get_host(&mut client, "example.com", "/limited/x")
            .await
            .status,
        429
    );
    proxy.stop().await;
}

#[tokio::test]
async fn a_routes_timeout_applies_to_it_only() {
    let b = backend("b").await;
    let proxy = TestProxy::start(load(&format!(
        r#"
[pools.app]
backends = ["{}"]
timeout = "1500ms"

[[routes]]
name = "patient"
pool = "app"

[[routes]]
name = "impatient"
pool = "app"
match = {{ path_prefix = "/impatient" }}
strip_prefix = "/impatient"
timeout = "200ms"
"#,
        url_for(&b)
    )));
    let mut client = Client::connect(proxy.addr).await;
    let started = Instant::now();
    let resp = get_host(&mut client, "example.com", "/impatient/delay/2000").await;
    let took = started.elapsed();
    assert_eq!(resp.status, 504, "{resp:?}");
    assert!(
        took >= Duration::from_millis(190) && took < Duration::from_millis(1000),
        "504 after {took:?}"
    );

    // Slower than the route's timeout, faster than the pool's: answered.
    let started = Instant::now();
    let resp = get_host(&mut client, "example.com", "/delay/400").await;
    assert_eq!(who(&resp), "b");
    assert!(started.elapsed() >= Duration::from_millis(400));
    // And the impatient route answers when the backend is quick enough.
    let resp = get_host(&mut client, "example.com", "/impatient/delay/10").await;
    assert_eq!(who(&resp), "b");
    proxy.stop().await;
}

#[tokio::test]
async fn weights_3_and_1_give_30_and_10_of_40() {
    let heavy = backend("heavy").await;
    let light = backend("light").await;
    let mut config = load(&format!(
        r#"
[pools.app]
backends = [{{ url = "{}", weight = 3 }}, {{ url = "{}", weight = 1 }}]
"#,
        url_for(&heavy),
        url_for(&light)
    ));
    // Round robin is deterministic per worker.
    config.workers = 1;
    let proxy = TestProxy::start(config);
    let mut client = Client::connect(proxy.addr).await;
    let mut order = String::new();
    for _ in 0..40 {
        let resp = get_host(&mut client, "example.com", "/").await;
        order.push(match who(&resp).as_str() {
            "heavy" => 'h',
            "light" => 'l',
            other => panic!("answered by {other}"),
        });
    }
    assert_eq!(order.matches('h').count(), 30, "{order}");
    assert_eq!(order.matches('l').count(), 10, "{order}");
    assert_eq!((heavy.requests(), light.requests()), (30, 10));
    // Smooth: the light backend gets one turn in every four.
    for cycle in order.as_bytes().chunks(4) {
        assert_eq!(cycle.iter().filter(|&&c| c == b'l').count(), 1, "{order}");
    }
    proxy.stop().await;
}

fn admin_addr(proxy: &TestProxy) -> SocketAddr {
    let addrs = proxy.server.listener_addrs();
    let admin: Vec<SocketAddr> = addrs
        .iter()
        .filter(|(_, is_admin)| *is_admin)
        .map(|(a, _)| *a)
        .collect();
    assert_eq!(admin.len(), 1, "{addrs:?}");
    assert_ne!(admin[0], proxy.addr);
    admin[0]
}

#[tokio::test]
async fn admin_endpoints_on_their_own_listener() {
    let b = backend("b").await;
    let proxy = TestProxy::start(load(&format!(
        r#"
[[listeners]]
address = "127.0.0.1:0"

[admin]
listen = "127.0.0.1:0"

[pools.app]
backends = ["{}"]
"#,
        url_for(&b)
    )));
    let admin = admin_addr(&proxy);
    let port = b.addr().port().to_string();
    let mut admin_client = Client::connect(admin).await;

    let resp = admin_client.get("/health").await;
    assert_eq!(resp.status, 200);
    let health = resp.json();
    assert_eq!(health["status"], "UP");
    assert!(health["uptime"].is_string(), "{health:#}");
    assert_eq!(health["backends"][0]["url"], url_for(&b).to_string());
    assert_eq!(header(&resp, "x-served-by"), None, "answered by switchyard");

    let resp = admin_client.get("/metrics").await;
    assert_eq!(resp.status, 200);
    assert!(resp.json()["requests"].is_u64());

    for path in ["/", "/echo", "/health/x", "/metricsx"] {
        let resp = admin_client.get(path).await;
        assert_eq!(resp.status, 404, "admin listener {path}");
        assert_eq!(header(&resp, "x-served-by"), None);
    }
    assert_eq!(b.requests(), 0, "the admin listener proxies nothing");

    // On the proxy listener, /health and /metrics are ordinary paths for the backend.
    let mut client = Client::connect(proxy.addr).await;
    let resp = client.get("/health").await;
    assert_eq!(resp.status, 200);
    assert_eq!(header(&resp, "x-served-by"), Some(port.as_str()));
    assert_eq!(resp.json(), serde_json::json!({ "status": "UP" }));
    let resp = client.get("/metrics").await;
    assert_eq!(who(&resp), "b");
    assert_eq!(header(&resp, "x-served-by"), Some(port.as_str()));
    assert_eq!(b.requests(), 2);

    // The proxied requests are counted; the admin ones are not.
    let metrics = admin_client.get("/metrics").await.json();
    assert_eq!(metrics["requests"], 2, "{metrics:#}");
    assert_eq!(metrics["responses"], 2, "{metrics:#}");
    proxy.stop().await;
}

#[tokio::test]
async fn custom_admin_paths_on_the_admin_listener() {
    let b = backend("b").await;
    let proxy = TestProxy::start(load(&format!(
        r#"
[[listeners]]
address = "127.0.0.1:0"

[admin]
listen = "127.0.0.1:0"
health_path = "/_sy/health"
metrics_path = "/_sy/metrics"

[pools.app]
backends = ["{}"]
"#,
        url_for(&b)
    )));
    let mut admin = Client::connect(admin_addr(&proxy)).await;
    let resp = admin.get("/_sy/health").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["status"], "UP");
    let resp = admin.get("/_sy/metrics").await;
    assert_eq!(resp.status, 200);
    assert!(resp.json()["requests"].is_u64());
    for path in ["/health", "/metrics"] {
        assert_eq!(admin.get(path).await.status, 404, "{path}");
    }
    // Prometheus text on the custom path too.
    let resp = admin.get("/_sy/metrics?format=prometheus").await;
    assert_eq!(resp.status, 200);
    assert!(
        resp.text().contains("switchyard_requests"),
        "{}",
        resp.text()
    );
    assert_eq!(b.requests(), 0);
    proxy.stop().await;
}

#[tokio::test]
async fn custom_admin_paths_on_the_proxy_listener() {
    let b = backend("b").await;
    let proxy = TestProxy::start(load(&format!(
        r#"
[admin]
health_path = "/_sy/health"
metrics_path = "/_sy/metrics"

[pools.app]
backends = ["{}"]
"#,
        url_for(&b)
    )));
    assert!(
        proxy.server.listener_addrs().iter().all(|(_, a)| !a),
        "no admin listener"
    );
    let mut client = Client::connect(proxy.addr).await;
    let resp = client.get("/_sy/health").await;
    assert_eq!(resp.status, 200);
    assert!(resp.json()["uptime"].is_string(), "answered by switchyard");
    assert_eq!(header(&resp, "x-served-by"), None);
    let resp = client.get("/_sy/metrics").await;
    assert_eq!(resp.status, 200);
    assert_eq!(header(&resp, "x-served-by"), None);
    // The default paths are now the backend's.
    let resp = client.get("/health").await;
    assert_eq!(
        header(&resp, "x-served-by"),
        Some(b.addr().port().to_string().as_str())
    );
    let resp = client.get("/metrics").await;
    assert_eq!(who(&resp), "b");
    assert_eq!(b.requests(), 2);
    proxy.stop().await;
}

#[tokio::test]
async fn metrics_count_fixed_responses_as_local_and_add_up() {
    let b = backend("b").await;
    let proxy = TestProxy::start(load(&format!(
        r#"
[pools.app]
backends = ["{}"]

[[routes]]
pool = "app"
match = {{ path_prefix = "/app" }}

[[routes]]
match = {{ path = "/fixed" }}
respond = {{ status = 200, body = "fixed" }}

[[routes]]
match = {{ path = "/old" }}
redirect = {{ to = "/new" }}

[[routes]]
match = {{ path = "/limited" }}
respond = {{ status = 200, body = "once" }}
rate_limit = {{ requests = 1, window = "1m" }}
"#,
        url_for(&b)
    )));
    let mut client = Client::connect(proxy.addr).await;
    let mut statuses = Vec::new();
    for path in [
        "/app", "/app/x", // 2 responses
        "/fixed", "/fixed", "/fixed", "/old", // 4 local
        "/limited", "/limited", // 1 local, 1 rate limited
        "/nothing", "/", "/fixedx", // 3 errors (no route)
    ] {
        statuses.push(get_host(&mut client, "example.com", path).await.status);
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 200, 301, 200, 429, 404, 404, 404]
    );

    let keys = [
        "requests",
        "responses",
        "local",
        "errors",
        "rate_limited",
        "cancelled",
        "in_flight",
    ];
    let want: [u64; 7] = [11, 2, 5, 3, 1, 0, 0];
    let counts = |m: &Value| -> Vec<u64> {
        keys.iter()
            .map(|k| m[*k].as_u64().unwrap_or(u64::MAX))
            .collect()
    };
    // Counted when each request finishes; poll briefly rather than assume.
    let deadline = Instant::now() + Duration::from_secs(1);
    let last = loop {
        let m = proxy.metrics().await;
        if counts(&m) == want || Instant::now() >= deadline {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(counts(&last), want, "{keys:?} in {last:#}");
    let sum: u64 = keys[1..]
        .iter()
        .map(|k| last[*k].as_u64().expect("counter"))
        .sum();
    assert_eq!(last["requests"].as_u64(), Some(sum), "{last:#}");
    assert_eq!(b.requests(), 2);
    proxy.stop().await;
}
