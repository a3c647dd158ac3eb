//! API keys with roles against a running switchyard: a key from `Authorization: Bearer`,
//! `X-API-Key` or a query parameter lets a request through and is removed before the
//! backend sees it; a missing or unknown key gets `401` with `WWW-Authenticate`, a key
//! without the route's role `403`; a gRPC call gets UNAUTHENTICATED / PERMISSION_DENIED; an
//! h2c request and a WebSocket upgrade meet the same rules, and a refused request never
//! reaches a backend. The key file reloads with the configuration; a bad one keeps the old.

mod support;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use support::h2::{full, H2Client};
use support::pki::{toml_path, CertDir};
use support::ws::{websocket_connect, H2WsClient, WsBackend};
use support::{backend, raw, Client, TestProxy};
use switchyard::config::auth::key_line;
use switchyard::Config;

const READ_WAIT: Duration = Duration::from_secs(2);

/// Two keys: `ci` (role `read`) and `ops` (roles `read,admin`).
fn key_file(dir: &CertDir) -> std::path::PathBuf {
    let text = format!(
        "# test keys\n{}\n{}\n",
        key_line("ci", b"ci-secret", &["read".into()]),
        key_line("ops", b"ops-secret", &["read".into(), "admin".into()])
    );
    dir.write("keys.txt", &text)
}

/// A configuration over `backend_url`: `/admin` needs the `admin` role, `/open` nothing,
/// everything else a key. `extra` goes into `[access]`.
fn config_text(keys: &Path, backend_url: &str, extra: &str) -> String {
    format!(
        "workers = 1\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\n\
         [rate_limit]\nrequests = 0\n\
         [access]\napi_keys_file = {}\n{extra}\n\
         [pools.p]\nbackends = [\"{backend_url}\"]\n\
         [[routes]]\nmatch = {{ path_prefix = \"/admin\" }}\npool = \"p\"\naccess = {{ roles = [\"admin\"] }}\n\
         [[routes]]\nmatch = {{ path_prefix = \"/open\" }}\npool = \"p\"\n\
         [[routes]]\npool = \"p\"\naccess = {{ api_key = true }}\n",
        toml_path(keys)
    )
}

fn load(dir: &CertDir, text: &str) -> Config {
    let path = dir.write("switchyard.toml", text);
    Config::load(&path).unwrap_or_else(|e| panic!("config:\n{text}\n{e}"))
}

fn get(path: &str) -> http::request::Builder {
    http::Request::get(path)
}

/// The header names the backend's `/echo` saw.
fn seen_headers(resp: &support::Resp) -> Vec<String> {
    resp.json()["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .map(|h| h[0].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn keys_from_each_source_pass_and_never_reach_the_backend() {
    let dir = CertDir::new("auth-sources");
    let keys = key_file(&dir);
    let server = backend("b").await;
    let extra =
        "key_sources = [\"bearer\", \"header:x-api-key\", \"query:api_key\"]\nrealm = \"test\"";
    let proxy = TestProxy::start(load(&dir, &config_text(&keys, &server.url(), extra)));
    let mut client = Client::connect(proxy.addr).await;

    // Refused: no key, an unknown key, a Basic credential (not a key source).
    for req in [
        get("/echo"),
        get("/echo").header("authorization", "Bearer wrong"),
        get("/echo").header("x-api-key", "ci-secre"),
        get("/echo?api_key=nope"),
        get("/echo").header("authorization", "Basic Y2k6Y2ktc2VjcmV0"),
    ] {
        let resp = client
            .send(req.body(Bytes::new()).expect("request"))
            .await
            .expect("response");
        assert_eq!(resp.status, 401, "{}", resp.text());
        assert_eq!(resp.headers["www-authenticate"], "Bearer realm=\"test\"");
    }
    assert_eq!(
        server.requests(),
        0,
        "no refused request reached the backend"
    );

    // Accepted, and the credential is gone from what the backend sees.
    let resp = client
        .send(
            get("/echo")
                .header("authorization", "Bearer ci-secret")
                .body(Bytes::new())
                .expect("valid"),
        )
        .await
        .expect("valid");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(!seen_headers(&resp).contains(&"authorization".to_owned()));
    let resp = client
        .send(
            get("/echo")
                .header("x-api-key", "ops-secret")
                .body(Bytes::new())
                .expect("valid"),
        )
        .await
        .expect("valid");
    assert_eq!(resp.status, 200);
    assert!(!seen_headers(&resp).contains(&"x-api-key".to_owned()));
    let resp = client.get("/echo?a=1&api_key=ci%2Dsecret&b=2").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["query"], "a=1&b=2");
    // A route without an access table is open.
    let resp = client.get("/open").await;
    assert_eq!(resp.status, 200);
    assert_eq!(server.requests(), 4);

    // Metrics name the keys, never their secrets.
    let doc = proxy.metrics().await;
    assert_eq!(doc["access"]["unauthenticated"], 5, "{doc}");
    assert_eq!(doc["access"]["api_keys"][0]["name"], "ci");
    assert_eq!(doc["access"]["api_keys"][0]["requests"], 2);
    assert_eq!(doc["access"]["api_keys"][1]["requests"], 1);
    let text = support::get(&proxy.url("/metrics?format=prometheus"))
        .await
        .text();
    assert!(
        text.contains("switchyard_api_key_requests_total{key=\"ci\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("switchyard_unauthenticated_total 5"),
        "{text}"
    );
    assert!(!text.contains("secret") && !doc.to_string().contains("secret"));
    println!("auth sources: 5 refused with 401 (0 reached the backend), 3 keys accepted and stripped, 1 open");
}

#[tokio::test]
async fn a_key_without_the_role_gets_403() {
    let dir = CertDir::new("auth-roles");
    let keys = key_file(&dir);
    let server = backend("b").await;
    let proxy = TestProxy::start(load(&dir, &config_text(&keys, &server.url(), "")));
    let mut client = Client::connect(proxy.addr).await;
    let send = |key: &'static str| {
        get("/admin/x")
            .header("authorization", format!("Bearer {key}"))
            .body(Bytes::new())
            .expect("valid")
    };
    let resp = client.send(send("ci-secret")).await.expect("response");
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert!(!resp.headers.contains_key("www-authenticate"));
    let resp = client.send(send("nope")).await.expect("response");
    assert_eq!(resp.status, 401);
    assert_eq!(server.requests(), 0);
    let resp = client.send(send("ops-secret")).await.expect("response");
    assert_eq!(resp.status, 200);
    assert_eq!(server.requests(), 1);
    let doc = proxy.metrics().await;
    assert_eq!(doc["access"]["forbidden"], 1, "{doc}");
    assert_eq!(doc["access"]["unauthenticated"], 1, "{doc}");
    println!("roles: read-only key 403, unknown 401, admin key 200; backend saw 1 request");
}

#[tokio::test]
async fn h2c_and_grpc_meet_the_same_rules() {
    let dir = CertDir::new("auth-h2");
    let keys = key_file(&dir);
    let server = backend("b").await;
    let proxy = TestProxy::start(load(&dir, &config_text(&keys, &server.url(), "")));
    let mut h2 = H2Client::connect(proxy.addr).await;

    let resp = h2.get("/echo").await;
    assert_eq!(resp.version, http::Version::HTTP_2);
    assert_eq!(resp.resp.status, 401);
    assert!(resp.resp.headers.contains_key("www-authenticate"));

    let grpc = |key: Option<&str>, path: &str| {
        let mut req = http::Request::post(path)
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        if let Some(key) = key {
            req = req.header("authorization", format!("Bearer {key}"));
        }
        req.body(full(Bytes::from_static(b"\0\0\0\0\0")))
            .expect("valid")
    };
    let resp = h2
        .fetch(grpc(None, "/pkg.Svc/Call"))
        .await
        .expect("response");
    assert_eq!(resp.resp.status, 200);
    assert_eq!(resp.resp.headers["grpc-status"], "16", "UNAUTHENTICATED");
    let resp = h2
        .fetch(grpc(Some("ci-secret"), "/admin/Svc.Call"))
        .await
        .expect("valid");
    assert_eq!(resp.resp.headers["grpc-status"], "7", "PERMISSION_DENIED");
    assert_eq!(server.requests(), 0);

    let req = get("/echo")
        .header("x-api-key", "ci-secret")
        .body(full(""))
        .expect("valid");
    let resp = h2.fetch(req).await.expect("response");
    assert_eq!(resp.resp.status, 200);
    assert!(!seen_headers(&resp.resp).contains(&"x-api-key".to_owned()));
    println!("h2c: 401, gRPC 16 and 7, keyed request 200 and stripped; backend saw 1");
}

#[tokio::test]
async fn a_websocket_upgrade_without_a_key_is_refused_before_any_backend() {
    let dir = CertDir::new("auth-ws");
    let keys = key_file(&dir);
    let ws = WsBackend::start("ws").await;
    let proxy = TestProxy::start(load(&dir, &config_text(&keys, &ws.url(), "")));
    let upgrade = |key: &str| {
        format!(
            "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{key}\r\n"
        )
    };
    let answer = raw(proxy.addr, upgrade("").as_bytes(), READ_WAIT).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer
        .to_ascii_lowercase()
        .contains("www-authenticate: bearer"));
    assert_eq!(ws.handshakes(), 0, "the backend saw no handshake");

    let mut stream = tokio::net::TcpStream::connect(proxy.addr)
        .await
        .expect("response");
    tokio::io::AsyncWriteExt::write_all(
        &mut stream,
        upgrade("X-API-Key: ci-secret\r\n").as_bytes(),
    )
    .await
    .expect("valid");
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(
        READ_WAIT,
        tokio::io::AsyncReadExt::read(&mut stream, &mut buf),
    )
    .await
    .expect("answer in time")
    .expect("valid");
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let (_, headers) = ws.last_seen();
    assert!(!headers.contains_key("x-api-key"), "the key was removed");
    let seen = ws.handshakes();

    // The same over HTTP/2 (RFC 8441's extended CONNECT, on h2c).
    let mut h2 = H2WsClient::h2c(proxy.addr).await;
    assert!(h2.connect_protocol_enabled().await);
    let refused = h2.open("/chat", None).await;
    assert_eq!(refused.status, 401);
    assert!(refused.headers.contains_key("www-authenticate"));
    assert_eq!(ws.handshakes(), seen, "the backend saw no handshake");
    let mut req = websocket_connect("/chat");
    req.headers_mut()
        .insert("authorization", "Bearer ops-secret".parse().expect("value"));
    let opened = h2.send(req).await.expect("extended CONNECT");
    assert_eq!(opened.status, 200);
    let (_, headers) = ws.last_seen();
    assert!(
        !headers.contains_key("authorization"),
        "the key was removed"
    );
    println!("websocket: HTTP/1.1 and HTTP/2 upgrades 401 with 0 backend handshakes; keyed ones open without the key header");
}

#[tokio::test]
async fn the_key_file_reloads_with_the_config_and_a_bad_one_keeps_the_old() {
    let dir = CertDir::new("auth-reload");
    let keys = key_file(&dir);
    let server = backend("b").await;
    let text = config_text(&keys, &server.url(), "");
    let proxy = TestProxy::start(load(&dir, &text));
    let status = |key: &'static str| {
        let addr = proxy.addr;
        async move {
            let mut c = Client::connect(addr).await;
            let req = get("/x")
                .header("x-api-key", key)
                .body(Bytes::new())
                .expect("valid");
            c.send(req).await.expect("response").status
        }
    };
    assert_eq!(status("ci-secret").await, 200);

    dir.write(
        "keys.txt",
        &format!("{}\n", key_line("new", b"new-secret", &[])),
    );
    proxy.server.reload(load(&dir, &text)).expect("reload");
    assert_eq!(status("ci-secret").await, 401, "the old key is gone");
    assert_eq!(status("new-secret").await, 200);

    dir.write("keys.txt", "new sha256:not-hex\n");
    let path = dir.path("switchyard.toml");
    let err = Config::load(&path).expect_err("a bad key file is a bad configuration");
    let message = err.to_string();
    assert!(message.contains("keys.txt:1:"), "{message}");
    assert!(message.contains("access.api_keys_file"), "{message}");
    assert_eq!(
        status("new-secret").await,
        200,
        "the configuration in force stays"
    );
    println!("reload: old key 401 and new key 200 after reload; bad file rejected at keys.txt:1");
}

#[test]
fn a_route_needing_a_key_without_keys_is_an_error() {
    let text = "[pools.p]\nbackends = [\"http://127.0.0.1:1\"]\n\
                [[routes]]\npool = \"p\"\naccess = { roles = [\"admin\"] }\n";
    let err =
        switchyard::config::validate::from_text(Path::new("t.toml"), text).expect_err("no keys");
    let message = err.to_string();
    assert!(message.contains("routes[0].access"), "{message}");
    assert!(message.contains("no key is configured"), "{message}");
    println!("check: {}", message.lines().next().unwrap_or_default());
}

#[tokio::test]
async fn the_api_keys_flag_guards_every_route_and_hash_key_makes_its_lines() {
    let dir = CertDir::new("auth-flag");
    let mut child = support::process::command(&["hash-key", "cli", "--roles", "read"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn hash-key");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"cli-secret\n").expect("write secret");
    }
    let out = child.wait_with_output().expect("hash-key output");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        line.starts_with("cli sha256:") && line.trim_end().ends_with(" read"),
        "{line}"
    );
    assert!(!line.contains("cli-secret"));
    let keys = dir.write("keys.txt", &line);

    let server = backend("b").await;
    let args = [
        "switchyard".to_owned(),
        "--backends".to_owned(),
        server.url(),
        "--api-keys".to_owned(),
        keys.display().to_string(),
        "--rate-limit=0".to_owned(),
    ];
    let cli = switchyard::cli::Cli::try_parse_args(args).expect("flags");
    let config = cli.load_config().expect("config");
    let proxy = TestProxy::start(config);
    let mut client = Client::connect(proxy.addr).await;
    assert_eq!(client.get("/").await.status, 401);
    let req = get("/")
        .header("authorization", "Bearer cli-secret")
        .body(Bytes::new())
        .expect("valid");
    assert_eq!(client.send(req).await.expect("response").status, 200);
    assert_eq!(server.requests(), 1);
    println!("--api-keys: hash-key line accepted; without key 401, with key 200");
}
