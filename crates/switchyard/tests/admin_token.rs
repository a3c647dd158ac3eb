//! A protected admin: with `[admin] token_file` (or `--admin-token-file`), `/metrics` needs
//! `Authorization: Bearer TOKEN` (`401` with `WWW-Authenticate` otherwise) while `/health`
//! stays open for load balancers; without it both are open, as before.

mod support;

use bytes::Bytes;
use support::pki::{toml_path, CertDir};
use support::{backend, get, Client, TestProxy};
use switchyard::Config;

const TOKEN: &str = "a-long-admin-token-0123456789";

async fn metrics_status(proxy: &TestProxy, auth: Option<&str>) -> u16 {
    let mut client = Client::connect(proxy.addr).await;
    let mut req = http::Request::get("/metrics");
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    let resp = client
        .send(req.body(Bytes::new()).expect("request"))
        .await
        .expect("response");
    if resp.status == 401 {
        assert_eq!(
            resp.headers["www-authenticate"],
            "Bearer realm=\"switchyard-admin\""
        );
    }
    resp.status
}

#[tokio::test]
async fn metrics_need_the_token_and_health_stays_open() {
    let dir = CertDir::new("admin-token");
    let token = dir.write("admin.token", &format!("{TOKEN}\n"));
    let server = backend("b").await;
    let text = format!(
        "workers = 1\n[[listeners]]\naddress = \"127.0.0.1:0\"\n\
         [admin]\ntoken_file = {}\n\
         [pools.p]\nbackends = [\"{}\"]\n",
        toml_path(&token),
        server.url()
    );
    let path = dir.write("switchyard.toml", &text);
    let proxy = TestProxy::start(Config::load(&path).expect("config"));
    assert_eq!(metrics_status(&proxy, None).await, 401);
    assert_eq!(metrics_status(&proxy, Some("Bearer wrong")).await, 401);
    assert_eq!(
        metrics_status(&proxy, Some(&format!("Basic {TOKEN}"))).await,
        401
    );
    assert_eq!(
        metrics_status(&proxy, Some(&format!("Bearer {TOKEN}"))).await,
        200
    );
    assert_eq!(get(&proxy.url("/health")).await.status, 200);
    assert_eq!(
        get(&proxy.url("/")).await.status,
        200,
        "proxying is untouched"
    );
    println!("admin token: /metrics 401 x3 then 200 with the token; /health 200 without");
}

#[tokio::test]
async fn the_flag_sets_the_token_and_the_default_is_open() {
    let dir = CertDir::new("admin-token-flag");
    let token = dir.write("admin.token", TOKEN);
    let server = backend("b").await;
    let parse = |extra: &[String]| {
        let mut args = vec![
            "switchyard".to_owned(),
            "--backends".to_owned(),
            server.url(),
        ];
        args.extend(extra.iter().cloned());
        switchyard::cli::Cli::try_parse_args(args)
            .expect("flags")
            .load_config()
    };
    let open = TestProxy::start(parse(&[]).expect("config"));
    assert_eq!(metrics_status(&open, None).await, 200, "open by default");
    let guarded = TestProxy::start(
        parse(&["--admin-token-file".to_owned(), token.display().to_string()]).expect("config"),
    );
    assert_eq!(metrics_status(&guarded, None).await, 401);
    assert_eq!(
        metrics_status(&guarded, Some(&format!("bearer {TOKEN}"))).await,
        200
    );
    let short = dir.write("short.token", "abc");
    let err = parse(&["--admin-token-file".to_owned(), short.display().to_string()])
        .expect_err("too short");
    assert!(err.to_string().contains("shorter than 16"), "{err}");
    println!("--admin-token-file: default 200, guarded 401/200, short token refused");
}
