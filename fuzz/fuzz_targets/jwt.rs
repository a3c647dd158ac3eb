//! JWT key files and tokens (`config/jwt`, `proxy/auth/jwt.rs`): a JWKS and a PEM file
//! parsed from the input, and the rest of the input verified as a token against the test
//! keys (HS256, RS256, ES256, EdDSA). A token made of fuzz bytes must never pass.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use switchyard::config::jwt::{parse_jwks, parse_pem, JwtConfig, TokenSource};
use switchyard::proxy::auth::jwt::verify;

const JWKS: &[u8] = include_bytes!("../../crates/switchyard/tests/jwt_keys/jwks.json");
const RSA: &[u8] = include_bytes!("../../crates/switchyard/tests/jwt_keys/rsa.pub.pem");
const EC: &[u8] = include_bytes!("../../crates/switchyard/tests/jwt_keys/ec.pub.pem");
const ED: &[u8] = include_bytes!("../../crates/switchyard/tests/jwt_keys/ed.pub.pem");

fn provider() -> &'static JwtConfig {
    static PROVIDER: OnceLock<JwtConfig> = OnceLock::new();
    PROVIDER.get_or_init(|| {
        let mut keys = parse_jwks(JWKS).expect("test JWKS");
        for pem in [RSA, EC, ED] {
            keys.extend(parse_pem(pem).expect("test PEM"));
        }
        JwtConfig::new(
            keys,
            TokenSource::Bearer,
            vec!["https://auth.example.com/".to_owned()],
            vec!["api".to_owned()],
            Duration::from_secs(30),
            HeaderValue::from_static("Bearer realm=\"fuzz\""),
            Vec::new(),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = parse_jwks(data);
    let _ = parse_pem(data);
    if let Ok(token) = std::str::from_utf8(data) {
        assert!(verify(provider(), token).is_err(), "a fuzzed token verified");
    }
});
