use std::path::Path;

use super::*;
use crate::config::validate::from_text;

fn load(text: &str) -> Result<crate::Config, String> {
    let text = format!("[pools.p]\nbackends = [\"http://127.0.0.1:1\"]\n{text}");
    from_text(Path::new("s.toml"), &text).map_err(|e| e.to_string())
}

#[test]
fn every_key_is_read_with_its_default() {
    let config = load(
        "[client_rate_limit]\nrequests = 10\nwindow = \"2s\"\nkey = \"header:X-Tenant\"\n\
         max_clients = 500\nheaders = true\nper_role = { paid = 1000 }\nper_key = { acme = 5000 }\n",
    )
    .expect("valid");
    let limit = config.client_rate_limit.expect("configured");
    assert_eq!(limit.requests, 10);
    assert_eq!(limit.window, Duration::from_secs(2));
    assert_eq!(
        limit.key,
        ClientKeyKind::Header(HeaderName::from_static("x-tenant"))
    );
    assert_eq!((limit.max_clients, limit.headers), (500, true));
    assert_eq!(limit.per_role, [("paid".to_owned(), 1000)]);
    assert_eq!(limit.per_key, [("acme".to_owned(), 5000)]);

    let limit = load("[client_rate_limit]\nrequests = 3\n")
        .expect("valid")
        .client_rate_limit
        .expect("configured");
    assert_eq!(
        limit,
        ClientRateLimitConfig {
            requests: 3,
            ..ClientRateLimitConfig::default()
        }
    );
    assert_eq!(limit.key, ClientKeyKind::Ip);
    assert_eq!(limit.max_clients, default::MAX_CLIENTS);
    let off = load("[client_rate_limit]\nrequests = 0\n").expect("valid");
    assert!(
        off.client_rate_limit.is_none(),
        "0 and no per-key limit: off"
    );
    assert!(load("").expect("valid").client_rate_limit.is_none());
}

#[test]
fn a_route_has_its_own() {
    let config =
        load("[[routes]]\npool = \"p\"\nclient_rate_limit = { requests = 5, key = \"api_key\" }\n")
            .expect("valid");
    let limit = config.routes[0]
        .client_rate_limit
        .as_ref()
        .expect("route's");
    assert_eq!((limit.requests, &limit.key), (5, &ClientKeyKind::ApiKey));
}

#[test]
fn mistakes_are_located_by_file_line_and_key() {
    let err = load(
        "[client_rate_limit]\nrequests = 2000000\nkey = \"adress\"\nmax_clients = 0\n\
         per_role = { \"not a word\" = 1 }\n",
    )
    .expect_err("invalid");
    for expected in [
        "s.toml:4:12: client_rate_limit.requests: must be at most 1048575",
        "s.toml:5:7: client_rate_limit.key: unknown key \"adress\"",
        "s.toml:6:15: client_rate_limit.max_clients: must be between 1 and 100000000",
        "client_rate_limit.per_role.not a word: \"not a word\" is not a key name or role",
    ] {
        assert!(err.contains(expected), "{expected}\nnot in:\n{err}");
    }
    let err = load("[client_rate_limit]\nrequests = 1\nkey = \"header:bad header\"\n")
        .expect_err("invalid");
    assert!(err.contains("\"bad header\" is not a header name"), "{err}");
    let err = load("[client_rate_limit]\nrequests = 1\nwindow = \"0s\"\n").expect_err("invalid");
    assert!(err.contains("client_rate_limit.window"), "{err}");
    let err = load("[client_rate_limit]\nrequests = 1\nburst = 3\n").expect_err("invalid");
    assert!(err.contains("unknown key `burst`"), "{err}");
    let err =
        load("[[routes]]\npool = \"p\"\nclient_rate_limit = { requests = 1, key = \"ip4\" }\n")
            .expect_err("invalid");
    assert!(
        err.contains("routes[0].client_rate_limit.key: unknown key \"ip4\"")
            && err.contains("did you mean `ip`?"),
        "{err}"
    );
}
