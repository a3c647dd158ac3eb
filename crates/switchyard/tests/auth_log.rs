//! Logs name the API key, never its secret: a capturing subscriber (debug level, so the
//! refusal lines are seen too) records everything a running switchyard logs while keyed,
//! refused and query-keyed requests go through; the access-log lines carry `api_key=NAME`
//! and no line anywhere holds a secret. Its own test binary: the subscriber is global.

mod support;

use std::time::Duration;

use bytes::Bytes;
use support::logs::{capture, logs};
use support::pki::{toml_path, CertDir};
use support::{backend, Client, TestProxy};
use switchyard::config::auth::key_line;
use switchyard::Config;

#[tokio::test]
async fn the_access_log_names_the_key_and_no_line_holds_a_secret() {
    capture(tracing::Level::DEBUG);
    let dir = CertDir::new("auth-log");
    let keys = dir.write(
        "keys.txt",
        &format!("{}\n", key_line("ci-bot", b"top-secret-value", &[])),
    );
    let server = backend("b").await;
    let text = format!(
        "workers = 1\n[[listeners]]\naddress = \"127.0.0.1:0\"\n[rate_limit]\nrequests = 0\n\
         [access]\napi_keys_file = {}\nkey_sources = [\"bearer\", \"query:key\"]\n\
         [pools.p]\nbackends = [\"{}\"]\n\
         [[routes]]\npool = \"p\"\naccess = {{ api_key = true }}\n",
        toml_path(&keys),
        server.url()
    );
    let path = dir.write("switchyard.toml", &text);
    let proxy = TestProxy::start(Config::load(&path).expect("config"));
    let mut client = Client::connect(proxy.addr).await;
    let requests = [
        http::Request::get("/a").header("authorization", "Bearer top-secret-value"),
        http::Request::get("/b?key=top-secret-value&x=1"),
        http::Request::get("/c").header("authorization", "Bearer top-secret-guess"),
        http::Request::get("/d?key=top-secret-guess"),
    ];
    let mut statuses = Vec::new();
    for req in requests {
        let resp = client
            .send(req.body(Bytes::new()).expect("request"))
            .await
            .expect("response");
        statuses.push(resp.status);
    }
    assert_eq!(statuses, [200, 200, 401, 401]);
    let named =
        || logs().matches("api_key=\"ci-bot\"").count() + logs().matches("api_key=ci-bot").count();
    let logged = support::eventually(Duration::from_secs(2), || async { named() >= 2 }).await;
    assert!(logged, "two access-log lines name the key:\n{}", logs());
    let logs = logs();
    assert!(!logs.contains("top-secret"), "a secret was logged:\n{logs}");
    let lines = logs.lines().count();
    println!("logs: {lines} lines captured at debug, 2 name key ci-bot, 0 hold a secret");
}
