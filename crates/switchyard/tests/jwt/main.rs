//! JWT bearer tokens against a running switchyard with a recording backend: tokens signed
//! here with HS256, RS256, ES256 and EdDSA pass with their key from a JWKS (by `kid`, or
//! without one) and from PEM / secret files; expired, not yet valid, wrong issuer or
//! audience, bad signature, `alg: none`, algorithm confusion and missing tokens get `401`
//! with the RFC 6750 challenge and never reach the backend; claims are matched (`403`) and
//! passed on as headers, forged copies removed; HTTP/2 meets the same rules; the key file
//! reloads with the configuration; gRPC calls and WebSocket upgrades (`protocols.rs`) too.
//!
//! The keys in `tests/jwt_keys/` were made once for these tests (`openssl genrsa
//! -traditional 2048`, `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`,
//! `openssl genpkey -algorithm ED25519`, `openssl rand -hex 32`, each public key with
//! `openssl pkey -pubout`), `jwks.json` from their public halves.

mod protocols;
#[path = "../support/mod.rs"]
mod support;
mod tokens;

use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};
use support::h2::{full, H2Client};
use support::pki::{echoed, toml_path, CertDir};
use support::{backend, Client, TestProxy};
use switchyard::Config;
use tokens::*;

const ALGS: [(Algorithm, &str); 4] = [
    (Algorithm::HS256, "hs-1"),
    (Algorithm::RS256, "rsa-1"),
    (Algorithm::ES256, "ec-1"),
    (Algorithm::EdDSA, "ed-1"),
];

#[tokio::test]
async fn each_algorithm_passes_with_its_key_from_a_jwks_or_from_pem_and_secret_files() {
    let dir = CertDir::new("jwt-algorithms");
    let server = backend("b").await;
    let proxy = TestProxy::start(load(&dir, &config_text(&jwks_provider(), &server.url())));
    let mut client = Client::connect(proxy.addr).await;
    for (alg, kid) in ALGS {
        for kid in [Some(kid), None] {
            let token = sign(alg, kid, &claims("alice", json!({})));
            let resp = send(&mut client, "/echo", Some(&token), &[]).await;
            assert_eq!(resp.status, 200, "{alg:?} kid {kid:?}: {}", resp.text());
            assert_eq!(
                echoed(&resp, "authorization"),
                [format!("Bearer {token}")],
                "the token is forwarded by default"
            );
        }
        // Another key's kid: the token is not checked against the wrong key.
        let other = if kid == "ec-1" { "ed-1" } else { "ec-1" };
        let token = sign(alg, Some(other), &claims("alice", json!({})));
        assert_eq!(
            send(&mut client, "/echo", Some(&token), &[]).await.status,
            401
        );
    }

    // The same tokens against PEM public keys and a secret file.
    let pems = [
        std::fs::read_to_string(key_file("rsa.pub.pem")).expect("pem"),
        std::fs::read_to_string(key_file("ec.pub.pem")).expect("pem"),
        std::fs::read_to_string(key_file("ed.pub.pem")).expect("pem"),
    ]
    .concat();
    let pem = dir.write("keys.pem", &pems);
    let provider = format!(
        "public_key_file = {}\nsecret_file = {}",
        toml_path(&pem),
        toml_path(&key_file("hs.secret"))
    );
    let pem_proxy = TestProxy::start(load(&dir, &config_text(&provider, &server.url())));
    let mut client = Client::connect(pem_proxy.addr).await;
    for (alg, kid) in ALGS {
        let token = sign(alg, Some(kid), &claims("alice", json!({})));
        let resp = send(&mut client, "/echo", Some(&token), &[]).await;
        assert_eq!(resp.status, 200, "{alg:?} over PEM: {}", resp.text());
    }
    assert_eq!(server.requests(), 12);
    println!("algorithms: HS256, RS256, ES256, EdDSA each 200 from a JWKS (kid and none) and from PEM/secret files; a wrong kid 401");
}

#[tokio::test]
async fn bad_tokens_get_401_with_the_challenge_and_never_reach_the_backend() {
    let dir = CertDir::new("jwt-refused");
    let server = backend("b").await;
    let rsa_pem = format!("public_key_file = {}", toml_path(&key_file("rsa.pub.pem")));
    let proxy = TestProxy::start(load(&dir, &config_text(&rsa_pem, &server.url())));
    let mut client = Client::connect(proxy.addr).await;

    let resp = send(&mut client, "/echo", None, &[]).await;
    assert_eq!(resp.status, 401);
    assert_eq!(resp.headers["www-authenticate"], "Bearer realm=\"test\"");

    let rs = |extra| sign(Algorithm::RS256, None, &claims("alice", extra));
    let good = rs(json!({}));
    let (head, rest) = good.split_once('.').expect("three parts");
    let (payload, sig) = rest.rsplit_once('.').expect("three parts");
    let bob = rs(json!({ "sub": "bob" }));
    let (_, bob_sig) = bob.rsplit_once('.').expect("three parts");
    let forged_payload = b64(claims("root", json!({})).to_string().as_bytes());
    let alg_none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims("root", json!({})).to_string().as_bytes())
    );
    // Algorithm confusion: HS256 keyed with the RSA public key file's bytes.
    let public = std::fs::read(key_file("rsa.pub.pem")).expect("pem");
    let confused = sign_with(
        Algorithm::HS256,
        None,
        &claims("root", json!({})),
        &EncodingKey::from_secret(&public),
    );
    let cases = [
        ("expired", rs(json!({ "exp": now() - 120 }))),
        ("not_yet_valid", rs(json!({ "nbf": now() + 120 }))),
        ("issuer", rs(json!({ "iss": "https://other.test" }))),
        ("audience", rs(json!({ "aud": "someone-else" }))),
        ("missing_claim", rs(json!({ "exp": null }))),
        ("bad_signature", format!("{head}.{forged_payload}.{sig}")),
        ("bad_signature", format!("{head}.{payload}.{bob_sig}")),
        ("malformed", alg_none),
        ("malformed", "not.a.jwt".to_owned()),
        ("algorithm", confused),
        (
            "algorithm",
            sign(Algorithm::ES256, None, &claims("alice", json!({}))),
        ),
    ];
    for (reason, token) in &cases {
        let resp = send(&mut client, "/echo", Some(token), &[]).await;
        assert_eq!(resp.status, 401, "{reason}: {}", resp.text());
        assert_eq!(
            resp.headers["www-authenticate"], "Bearer realm=\"test\", error=\"invalid_token\"",
            "{reason}"
        );
    }
    // Within the leeway (30 s) an expired token still passes.
    let resp = send(
        &mut client,
        "/echo",
        Some(&rs(json!({ "exp": now() - 5 }))),
        &[],
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        server.requests(),
        1,
        "no refused request reached the backend"
    );

    let doc = proxy.metrics().await;
    let refused = &doc["access"]["jwt_refused"];
    assert_eq!(refused["missing"], 1, "{doc}");
    for reason in [
        "expired",
        "not_yet_valid",
        "issuer",
        "audience",
        "missing_claim",
    ] {
        assert_eq!(refused[reason], 1, "{reason}: {refused}");
    }
    assert_eq!(refused["bad_signature"], 2, "{refused}");
    assert_eq!(refused["malformed"], 2, "{refused}");
    assert_eq!(refused["algorithm"], 2, "{refused}");
    assert_eq!(doc["access"]["unauthenticated"], cases.len() as u64 + 1);
    let text = support::get(&proxy.url("/metrics?format=prometheus"))
        .await
        .text();
    assert!(
        text.contains("switchyard_jwt_refused_total{reason=\"expired\"} 1"),
        "{text}"
    );
    println!(
        "refusals: {} bad tokens and 1 missing -> 401 with the challenge, 0 reached the backend; 1 within the leeway passed",
        cases.len()
    );
}

#[tokio::test]
async fn claims_are_matched_and_passed_on_as_headers_and_forged_copies_are_removed() {
    let dir = CertDir::new("jwt-claims");
    let server = backend("b").await;
    let proxy = TestProxy::start(load(&dir, &config_text(&jwks_provider(), &server.url())));
    let mut client = Client::connect(proxy.addr).await;
    let token = |extra| sign(Algorithm::ES256, Some("ec-1"), &claims("alice", extra));

    let user = token(json!({ "role": "user" }));
    assert_eq!(
        send(&mut client, "/admin", Some(&user), &[]).await.status,
        403
    );
    let none = token(json!({}));
    assert_eq!(
        send(&mut client, "/admin", Some(&none), &[]).await.status,
        403
    );
    let admin = token(json!({ "role": "admin" }));
    assert_eq!(
        send(&mut client, "/admin", Some(&admin), &[]).await.status,
        200
    );
    let ops = token(json!({ "role": ["viewer", "ops"] }));
    assert_eq!(
        send(&mut client, "/admin", Some(&ops), &[]).await.status,
        200
    );

    let forged = [("x-user", "root"), ("x-groups", "admins")];
    let write_only = token(json!({ "scope": "write", "groups": ["a"] }));
    let resp = send(&mut client, "/scoped/echo", Some(&write_only), &forged).await;
    assert_eq!(resp.status, 403);
    let reader = token(json!({ "scope": "write read", "groups": ["dev", "ops"] }));
    let resp = send(&mut client, "/scoped/echo", Some(&reader), &forged).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        echoed(&resp, "x-user"),
        ["alice"],
        "the claim, not the client's copy"
    );
    assert_eq!(echoed(&resp, "x-groups"), ["dev,ops"]);
    assert!(
        echoed(&resp, "authorization").is_empty(),
        "jwt_forward = false"
    );
    // A claim the token lacks: the client's copy is gone all the same.
    let no_groups = token(json!({ "scope": "read", "groups": null }));
    let resp = send(&mut client, "/scoped/echo", Some(&no_groups), &forged).await;
    assert_eq!(resp.status, 200);
    assert!(echoed(&resp, "x-groups").is_empty());
    assert_eq!(server.requests(), 4);

    let doc = proxy.metrics().await;
    assert_eq!(doc["access"]["jwt_refused"]["claims"], 3, "{doc}");
    assert_eq!(doc["access"]["forbidden"], 3);
    println!("claims: 3 mismatches -> 403, 4 passed; X-User and X-Groups from the token, forged copies removed, token stripped");
}

#[tokio::test]
async fn http2_requests_meet_the_same_rules() {
    let dir = CertDir::new("jwt-h2");
    let server = backend("b").await;
    let proxy = TestProxy::start(load(&dir, &config_text(&jwks_provider(), &server.url())));
    let mut client = H2Client::connect(proxy.addr).await;
    let resp = client.get("/echo").await;
    assert_eq!(resp.resp.status, 401);
    assert_eq!(resp.version, http::Version::HTTP_2);
    assert_eq!(
        resp.resp.headers["www-authenticate"],
        "Bearer realm=\"test\""
    );
    let token = sign(
        Algorithm::EdDSA,
        Some("ed-1"),
        &claims("bob", json!({ "scope": "read" })),
    );
    let req = http::Request::get("/scoped/echo")
        .header("authorization", format!("Bearer {token}"))
        .header("x-user", "root")
        .body(full(""))
        .expect("request");
    let resp = client.fetch(req).await.expect("h2");
    assert_eq!(resp.resp.status, 200, "{}", resp.resp.text());
    assert_eq!(echoed(&resp.resp, "x-user"), ["bob"]);
    let expired = sign(
        Algorithm::EdDSA,
        None,
        &claims("bob", json!({ "exp": now() - 600 })),
    );
    let req = http::Request::get("/echo")
        .header("authorization", format!("Bearer {expired}"))
        .body(full(""))
        .expect("request");
    assert_eq!(client.fetch(req).await.expect("h2").resp.status, 401);
    assert_eq!(server.requests(), 1);
    println!("http2: missing 401, expired 401, valid 200 with X-User from the token, over one h2c connection");
}

#[tokio::test]
async fn a_route_with_an_api_key_and_a_jwt_needs_both() {
    let dir = CertDir::new("jwt-and-key");
    let server = backend("b").await;
    let keys = dir.write(
        "keys.txt",
        &format!(
            "{}\n",
            switchyard::config::auth::key_line("ci", b"ci-secret", &[])
        ),
    );
    let text = format!(
        "workers = 1\n[[listeners]]\naddress = \"127.0.0.1:0\"\n[rate_limit]\nrequests = 0\n\
         [access]\napi_keys_file = {}\nkey_sources = [\"header:x-api-key\"]\n\
         [access.jwt]\n{}\naudience = \"{AUDIENCE}\"\n\
         [pools.p]\nbackends = [\"{}\"]\n\
         [[routes]]\npool = \"p\"\naccess = {{ api_key = true, jwt = true }}\n",
        toml_path(&keys),
        jwks_provider(),
        server.url()
    );
    let proxy = TestProxy::start(load(&dir, &text));
    let mut client = Client::connect(proxy.addr).await;
    let token = sign(Algorithm::RS256, Some("rsa-1"), &claims("carol", json!({})));
    let key = [("x-api-key", "ci-secret")];
    assert_eq!(send(&mut client, "/echo", None, &key).await.status, 401);
    assert_eq!(
        send(&mut client, "/echo", Some(&token), &[]).await.status,
        401
    );
    let resp = send(&mut client, "/echo", Some(&token), &key).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(echoed(&resp, "x-api-key").is_empty(), "the key is removed");
    assert_eq!(server.requests(), 1);

    // Both from `Authorization: Bearer` cannot work: refused by the configuration.
    let clash = text.replace("key_sources = [\"header:x-api-key\"]\n", "");
    let path = dir.write("clash.toml", &clash);
    let err = Config::load(&path).expect_err("a clash").to_string();
    assert!(
        err.contains("routes[0].access") && err.contains("both from"),
        "{err}"
    );
    println!("key and token: key only 401, token only 401, both 200; a shared Bearer source is a config error");
}

#[tokio::test]
async fn the_key_file_reloads_with_the_config_and_a_bad_one_keeps_the_old() {
    let dir = CertDir::new("jwt-reload");
    let server = backend("b").await;
    let jwks: Value =
        serde_json::from_slice(&std::fs::read(key_file("jwks.json")).expect("jwks")).expect("json");
    let only = |kid: &str| {
        let keys: Vec<Value> = jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .filter(|k| k["kid"] == kid)
            .cloned()
            .collect();
        json!({ "keys": keys }).to_string()
    };
    let file = dir.write("jwks.json", &only("rsa-1"));
    let text = config_text(&format!("jwks_file = {}", toml_path(&file)), &server.url());
    let proxy = TestProxy::start(load(&dir, &text));
    let rsa = sign(Algorithm::RS256, Some("rsa-1"), &claims("dave", json!({})));
    let ec = sign(Algorithm::ES256, Some("ec-1"), &claims("dave", json!({})));
    let status = |token: String| {
        let addr = proxy.addr;
        async move {
            let mut c = Client::connect(addr).await;
            send(&mut c, "/echo", Some(&token), &[]).await.status
        }
    };
    assert_eq!(status(rsa.clone()).await, 200);
    assert_eq!(status(ec.clone()).await, 401);

    dir.write("jwks.json", &only("ec-1"));
    proxy.server.reload(load(&dir, &text)).expect("reload");
    assert_eq!(status(rsa.clone()).await, 401, "the old key is gone");
    assert_eq!(status(ec.clone()).await, 200);

    dir.write("jwks.json", "{\"keys\": [\n  {\"kty\": \"RSA\",, }\n]}\n");
    let err = Config::load(&dir.path("switchyard.toml"))
        .expect_err("a bad JWKS is a bad configuration")
        .to_string();
    assert!(err.contains("access.jwt.jwks_file"), "{err}");
    assert!(err.contains("jwks.json:2:"), "the JWKS line: {err}");
    assert!(err.contains("switchyard.toml:"), "the config line: {err}");
    assert_eq!(status(ec).await, 200, "the keys in force stay");
    println!("reload: rsa 200 / ec 401, then after reload rsa 401 / ec 200; a bad JWKS rejected at jwks.json:2");
}

#[tokio::test]
async fn a_per_client_limit_keyed_on_a_claim_counts_each_subject_apart() {
    let dir = CertDir::new("jwt-claim-limit");
    let server = backend("b").await;
    let text = format!(
        "workers = 1\n[[listeners]]\naddress = \"127.0.0.1:0\"\n[rate_limit]\nrequests = 0\n\
         [access.jwt]\n{}\naudience = \"{AUDIENCE}\"\n\
         [pools.p]\nbackends = [\"{}\"]\n\
         [[routes]]\npool = \"p\"\naccess = {{ jwt = true }}\n\
         client_rate_limit = {{ requests = 2, window = \"60s\", key = \"claim:sub\" }}\n",
        jwks_provider(),
        server.url()
    );
    let proxy = TestProxy::start(load(&dir, &text));
    let mut client = Client::connect(proxy.addr).await;
    let mut allowed = Vec::new();
    for sub in ["dave", "erin"] {
        let token = sign(Algorithm::RS256, Some("rsa-1"), &claims(sub, json!({})));
        let mut ok = 0;
        for _ in 0..4 {
            let status = send(&mut client, "/", Some(&token), &[]).await.status;
            assert!(status == 200 || status == 429, "{status}");
            ok += u32::from(status == 200);
        }
        allowed.push(ok);
    }
    // Same connection, same address: only the subject tells them apart.
    assert_eq!(allowed, [2, 2]);
    let bad = switchyard::config::validate::from_text(
        std::path::Path::new("t.toml"),
        "[client_rate_limit]\nrequests = 1\nkey = \"claim:\"\n",
    )
    .expect_err("an empty claim name");
    assert!(bad.to_string().contains("client_rate_limit.key"), "{bad}");
    println!("client_rate_limit keyed on claim:sub: dave 2 of 4, erin 2 of 4 from one connection");
}
