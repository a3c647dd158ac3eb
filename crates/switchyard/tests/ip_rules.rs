//! IP allow/deny lists per listener and per route (`403`, nothing reaches a backend), and
//! trusted proxies: `X-Forwarded-For` names the client only when the peer is trusted, the
//! rightmost untrusted hop being the client; otherwise the peer is, for the rules as for
//! the log. Also the flags `--allow-ip`, `--deny-ip` and `--trusted-proxies`.

mod support;

use std::path::Path;

use bytes::Bytes;
use support::{backend, Client, TestProxy};
use switchyard::Config;

fn config(text: &str) -> Config {
    switchyard::config::validate::from_text(Path::new("t.toml"), text)
        .unwrap_or_else(|e| panic!("config:\n{text}\n{e}"))
}

/// A listener with `listener_keys`, an `[access]` with `access_keys`, and two routes to the
/// backend: `/internal` with `route_access`, the rest open.
fn text(listener_keys: &str, access_keys: &str, route_access: &str, backend: &str) -> String {
    format!(
        "workers = 1\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\n{listener_keys}\n\
         [rate_limit]\nrequests = 0\n\
         [access]\n{access_keys}\n\
         [pools.p]\nbackends = [\"{backend}\"]\n\
         [[routes]]\nmatch = {{ path_prefix = \"/internal\" }}\npool = \"p\"\naccess = {{ {route_access} }}\n\
         [[routes]]\npool = \"p\"\n"
    )
}

async fn status(client: &mut Client, path: &str, xff: Option<&str>) -> u16 {
    let mut req = http::Request::get(path);
    if let Some(xff) = xff {
        req = req.header("x-forwarded-for", xff);
    }
    client
        .send(req.body(Bytes::new()).expect("request"))
        .await
        .expect("response")
        .status
}

#[tokio::test]
async fn a_listener_denying_loopback_refuses_everything_on_it() {
    let server = backend("b").await;
    let cfg = config(&text("deny_ip = [\"127.0.0.0/8\"]", "", "", &server.url()));
    let proxy = TestProxy::start(cfg);
    let mut client = Client::connect(proxy.addr).await;
    assert_eq!(status(&mut client, "/", None).await, 403);
    assert_eq!(status(&mut client, "/internal/x", None).await, 403);
    assert_eq!(status(&mut client, "/no/route/at/all", None).await, 403);
    assert_eq!(status(&mut client, "/health", None).await, 403, "admin too");
    // An allow list that leaves loopback out does the same.
    let cfg = config(&text(
        "allow_ip = [\"::1\", \"10.0.0.0/8\"]",
        "",
        "",
        &server.url(),
    ));
    let proxy2 = TestProxy::start(cfg);
    let mut client2 = Client::connect(proxy2.addr).await;
    assert_eq!(status(&mut client2, "/", None).await, 403);
    assert_eq!(
        server.requests(),
        0,
        "no refused request reached the backend"
    );
    println!("listener rules: 5 requests from 127.0.0.1 refused with 403, 0 reached the backend");
}

#[tokio::test]
async fn a_route_allow_list_refuses_others_and_trusted_proxies_name_the_client() {
    let server = backend("b").await;
    let route = "allow_ip = [\"203.0.113.0/24\"], deny_ip = [\"203.0.113.66\"]";
    // Without trusted proxies, X-Forwarded-For is not believed: the peer (127.0.0.1) is the
    // client.
    let proxy = TestProxy::start(config(&text("", "", route, &server.url())));
    let mut client = Client::connect(proxy.addr).await;
    assert_eq!(
        status(&mut client, "/internal", Some("203.0.113.9")).await,
        403
    );
    assert_eq!(status(&mut client, "/open", None).await, 200);
    assert_eq!(server.requests(), 1);

    // With loopback trusted, the rightmost untrusted hop is the client.
    let access = "trusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]";
    let proxy = TestProxy::start(config(&text("", access, route, &server.url())));
    let mut client = Client::connect(proxy.addr).await;
    let cases = [
        (Some("203.0.113.9"), 200),
        // The client wrote the leftmost entry itself; the hop our proxies saw is allowed.
        (Some("6.6.6.6, 203.0.113.9"), 200),
        // Through a second trusted proxy.
        (Some("203.0.113.9, 10.1.2.3"), 200),
        // A client forging an allowed address to the left of its own is not believed.
        (Some("203.0.113.9, 6.6.6.6"), 403),
        (Some("203.0.113.66"), 403),
        // No header: the trusted peer itself is the client, and it is not allowed.
        (None, 403),
    ];
    for (xff, want) in cases {
        assert_eq!(
            status(&mut client, "/internal/x", xff).await,
            want,
            "{xff:?}"
        );
    }
    assert_eq!(server.requests(), 4);
    println!(
        "route rules with trusted proxies: {} cases as expected, backend saw 3 allowed + 1 open",
        cases.len()
    );
}

#[tokio::test]
async fn the_ip_flags_apply_to_every_listener() {
    let server = backend("b").await;
    let parse = |extra: &[&str]| {
        let mut args = vec![
            "switchyard".to_owned(),
            "--backends".to_owned(),
            server.url(),
            "--rate-limit=0".to_owned(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let cli = switchyard::cli::Cli::try_parse_args(args).expect("flags");
        cli.load_config().expect("config")
    };
    let deny = TestProxy::start(parse(&["--deny-ip", "192.0.2.0/24,127.0.0.1"]));
    assert_eq!(support::get(&deny.url("/")).await.status, 403);
    let allow = TestProxy::start(parse(&["--allow-ip=127.0.0.0/8"]));
    assert_eq!(support::get(&allow.url("/")).await.status, 200);
    // Trusted loopback and an allow list of one forwarded address.
    let trusted = TestProxy::start(parse(&[
        "--trusted-proxies",
        "127.0.0.1",
        "--allow-ip",
        "198.51.100.7",
    ]));
    let mut client = Client::connect(trusted.addr).await;
    assert_eq!(status(&mut client, "/", Some("198.51.100.7")).await, 200);
    assert_eq!(status(&mut client, "/", None).await, 403);
    let err = switchyard::cli::Cli::try_parse_args(
        ["switchyard", "--allow-ip", "10.1.2.3/8"].map(String::from),
    )
    .expect_err("host bits");
    let message = switchyard::cli::one_line_error(&err);
    assert!(message.contains("did you mean 10.0.0.0/8"), "{message}");
    println!("flags: deny 403, allow 200, trusted XFF 200/403; bad CIDR: {message}");
}

#[test]
fn bad_blocks_in_the_file_name_the_key() {
    let err = switchyard::config::validate::from_text(
        Path::new("t.toml"),
        &text(
            "allow_ip = [\"10.0.0.0/33\"]",
            "trusted_proxies = [\"nope\"]",
            "deny_ip = [\"1.2.3.4/8\"]",
            "http://127.0.0.1:1",
        ),
    )
    .expect_err("invalid");
    let message = err.to_string();
    for key in [
        "listeners[0].allow_ip",
        "access.trusted_proxies",
        "routes[0].access.deny_ip",
    ] {
        assert!(message.contains(key), "{key} in:\n{message}");
    }
    println!("check: 3 bad blocks reported, each with its key");
}
