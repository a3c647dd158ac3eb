use super::*;

fn test_key(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/jwt_keys")
        .join(name);
    std::fs::read_to_string(path).expect("test key")
}

#[test]
fn jwks_keys_get_their_algorithm_and_encryption_keys_are_passed_over() {
    let keys = parse_jwks(test_key("jwks.json").as_bytes()).expect("jwks");
    let got: Vec<(Option<&str>, Algorithm)> =
        keys.iter().map(|k| (k.kid.as_deref(), k.alg)).collect();
    assert_eq!(
        got,
        [
            (Some("rsa-1"), Algorithm::RS256),
            (Some("ec-1"), Algorithm::ES256),
            (Some("ed-1"), Algorithm::EdDSA),
            (Some("hs-1"), Algorithm::HS256),
        ]
    );
}

#[test]
fn bad_jwks_name_the_line_or_the_key() {
    let (at, reason) = parse_jwks(b"{\"keys\": [\n  {\"kty\": \"RSA\",, }\n]}").unwrap_err();
    assert_eq!(at, ":2:17");
    assert!(reason.contains("not a JWKS"), "{reason}");
    let (_, reason) = parse_jwks(
        br#"{"keys": [{"kty": "EC", "kid": "a", "crv": "P-256", "x": "AAAA", "y": "AAAA"}]}"#,
    )
    .unwrap_err();
    assert_eq!(
        reason,
        "keys[0] (kid \"a\"): a P-256 key needs 32-byte `x` and `y`"
    );
    let (_, reason) =
        parse_jwks(br#"{"keys": [{"kty": "RSA", "alg": "ES256", "n": "AQAB", "e": "AQAB"}]}"#)
            .unwrap_err();
    assert!(reason.contains("does not fit"), "{reason}");
    let (_, reason) = parse_jwks(br#"{"keys": [{"kty": "oct", "k": "c2hvcnQ"}]}"#).unwrap_err();
    assert!(reason.contains("at least 32 bytes"), "{reason}");
    let (_, reason) = parse_jwks(br#"{"keys": [{"kty": "EC", "crv": "P-521"}]}"#).unwrap_err();
    assert!(
        reason.contains("no signing key") && reason.contains("keys[0]"),
        "{reason}"
    );
    let (_, reason) =
        parse_jwks(br#"{"keys": [{"kty": "RSA", "n": "%%", "e": "AQAB"}]}"#).unwrap_err();
    assert!(reason.contains("`n` is not base64url"), "{reason}");
}

#[test]
fn pem_public_keys_and_their_errors() {
    let all = [
        test_key("rsa.pub.pem"),
        test_key("ec.pub.pem"),
        test_key("ed.pub.pem"),
    ]
    .concat();
    let algs: Vec<Algorithm> = parse_pem(all.as_bytes())
        .expect("pem")
        .iter()
        .map(|k| k.alg)
        .collect();
    assert_eq!(algs, [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA]);

    let (at, reason) = parse_pem(test_key("ec.key").as_bytes()).unwrap_err();
    assert_eq!(at, ":1");
    assert!(reason.contains("never the private one"), "{reason}");
    let text = format!(
        "# keys\n\n{}-----BEGIN PUBLIC KEY-----\nAAAA\n",
        test_key("ed.pub.pem")
    );
    let (at, reason) = parse_pem(text.as_bytes()).unwrap_err();
    assert_eq!(
        (at.as_str(), reason.as_str()),
        (":6", "the PUBLIC KEY block has no END line")
    );
    let (at, _) =
        parse_pem(b"-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n").unwrap_err();
    assert_eq!(at, ":1");
    let (_, reason) = parse_pem(b"nothing here\n").unwrap_err();
    assert!(reason.contains("no \"BEGIN PUBLIC KEY\""), "{reason}");
}

#[test]
fn token_sources_parse() {
    assert_eq!("bearer".parse(), Ok(TokenSource::Bearer));
    assert_eq!(
        "header:x-token".parse(),
        Ok(TokenSource::Header(HeaderName::from_static("x-token")))
    );
    assert_eq!("cookie:jwt".parse(), Ok(TokenSource::Cookie("jwt".into())));
    assert!("cookie:a;b".parse::<TokenSource>().is_err());
    assert!("query:jwt".parse::<TokenSource>().is_err());
}

#[test]
fn claim_rules_match_strings_arrays_and_scope_words() {
    let rule = |name: &str, any_of: &[&str]| ClaimRule {
        name: name.into(),
        any_of: any_of.iter().map(|s| s.to_string()).collect(),
    };
    let v = |j: &str| serde_json::from_str::<serde_json::Value>(j).expect("json");
    let role = rule("role", &["admin", "ops"]);
    assert!(role.holds(Some(&v("\"admin\""))));
    assert!(role.holds(Some(&v("[\"x\", \"ops\"]"))));
    assert!(
        !role.holds(Some(&v("\"admin ops\""))),
        "only scope is split"
    );
    assert!(!role.holds(Some(&v("true"))));
    assert!(!role.holds(None));
    let scope = rule("scope", &["read"]);
    assert!(scope.holds(Some(&v("\"write read\""))));
    assert!(!scope.holds(Some(&v("\"reader\""))));
}

#[test]
fn the_invalid_challenge_adds_the_error_code() {
    let keys = parse_jwks(test_key("jwks.json").as_bytes()).expect("jwks");
    let challenge = HeaderValue::from_static("Bearer realm=\"r\"");
    let config = JwtConfig::new(
        keys,
        TokenSource::Bearer,
        vec![],
        vec![],
        DEFAULT_LEEWAY,
        challenge,
        vec![],
    );
    assert_eq!(
        config.invalid_challenge,
        "Bearer realm=\"r\", error=\"invalid_token\""
    );
    assert!(config.validation(Algorithm::RS256).is_some());
    assert!(config.validation(Algorithm::RS384).is_none());
}

#[test]
fn the_configuration_names_file_line_and_key() {
    let jwks = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/jwt_keys/jwks.json");
    let private = jwks.with_file_name("rsa.key");
    let text = format!(
        "[access.jwt]\njwks_file = {jwks:?}\npublic_key_file = {private:?}\nleeway = \"1h\"\ntoken_source = \"query:t\"\n\
         [pools.p]\nbackends = [\"http://127.0.0.1:1\"]\n\
         [[routes]]\npool = \"p\"\naccess = {{ jwt = false, jwt_claims = {{ role = \"a\" }} }}\n\
         [[routes]]\nmatch = {{ path = \"/h\" }}\npool = \"p\"\naccess = {{ jwt_headers = {{ sub = \"Host\" }} }}\n"
    );
    let err = crate::config::validate::from_text(std::path::Path::new("s.toml"), &text)
        .expect_err("bad")
        .to_string();
    for want in [
        "s.toml:3:19: access.jwt.public_key_file:",
        "rsa.key:1: a private key (RSA PRIVATE KEY): give the public key",
        "s.toml:4:10: access.jwt.leeway: must be whole seconds, at most 10m",
        "access.jwt.token_source: \"query:t\" is not a token source",
        "routes[0].access.jwt: jwt_claims, jwt_headers and jwt_forward need a token",
        "routes[1].access.jwt_headers.sub: host cannot carry a claim",
    ] {
        assert!(err.contains(want), "{want:?} in\n{err}");
    }
    let no_provider = "[pools.p]\nbackends = [\"http://127.0.0.1:1\"]\n[[routes]]\npool = \"p\"\naccess = { jwt = true }\n";
    let err = crate::config::validate::from_text(std::path::Path::new("s.toml"), no_provider)
        .expect_err("no provider")
        .to_string();
    assert!(
        err.contains("s.toml:5:10: routes[0].access: needs a JWT, but no provider is configured"),
        "{err}"
    );
}
