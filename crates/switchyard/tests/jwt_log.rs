//! Logs name the token's subject, never the token: a capturing subscriber (debug level, so
//! the refusal lines are seen too) records everything a running switchyard logs while a
//! valid, an expired and a forged JWT go through; the access-log line carries
//! `jwt_sub=SUBJECT` and no line anywhere holds a token's signature. Its own test binary:
//! the subscriber is global.

mod support;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use support::logs::{capture, logs};
use support::pki::{toml_path, CertDir};
use support::{backend, Client, TestProxy};
use switchyard::Config;

#[tokio::test]
async fn the_access_log_names_the_subject_and_no_line_holds_a_token() {
    capture(tracing::Level::DEBUG);
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/jwt_keys");
    let dir = CertDir::new("jwt-log");
    let server = backend("b").await;
    let text = format!(
        "workers = 1\n[[listeners]]\naddress = \"127.0.0.1:0\"\n[rate_limit]\nrequests = 0\n\
         [access.jwt]\nsecret_file = {}\n\
         [pools.p]\nbackends = [\"{}\"]\n\
         [[routes]]\npool = \"p\"\naccess = {{ jwt = true }}\n",
        toml_path(&keys.join("hs.secret")),
        server.url()
    );
    let path = dir.write("switchyard.toml", &text);
    let proxy = TestProxy::start(Config::load(&path).expect("config"));
    let secret = std::fs::read(keys.join("hs.secret")).expect("secret");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let sign = |sub: &str, exp: u64, key: &[u8]| {
        let claims = serde_json::json!({ "sub": sub, "exp": exp });
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(key),
        )
        .expect("sign")
    };
    let tokens = [
        sign("erin", now + 300, secret.trim_ascii()),
        sign("erin", now - 600, secret.trim_ascii()),
        sign("mallory", now + 300, b"a guessed secret of 32 bytes....."),
    ];
    let mut client = Client::connect(proxy.addr).await;
    let mut statuses = Vec::new();
    for token in &tokens {
        let req = http::Request::get("/a")
            .header("authorization", format!("Bearer {token}"))
            .body(Bytes::new())
            .expect("request");
        statuses.push(client.send(req).await.expect("response").status);
    }
    assert_eq!(statuses, [200, 401, 401]);
    let named =
        || logs().matches("jwt_sub=erin").count() + logs().matches("jwt_sub=\"erin\"").count();
    let logged = support::eventually(Duration::from_secs(2), || async { named() >= 1 }).await;
    assert!(logged, "the access-log line names the subject:\n{}", logs());
    let logs = logs();
    for token in &tokens {
        let signature = token.rsplit('.').next().expect("signature");
        assert!(!logs.contains(signature), "a token was logged:\n{logs}");
    }
    assert!(
        !logs.contains("mallory"),
        "a forged token's claims were logged:\n{logs}"
    );
    let lines = logs.lines().count();
    println!("logs: {lines} lines captured at debug, 1 names jwt_sub=erin, 0 hold a token");
}
