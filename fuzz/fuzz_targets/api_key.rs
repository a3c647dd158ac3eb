//! API keys: the key-file lines (`config/auth.rs`: `NAME sha256:HEX [role,role]`), the key
//! sources (`bearer`, `header:NAME`, `query:NAME`), and finding and removing a request's key
//! (`proxy/auth/api_key.rs` `take`). After `take`, the request carries no credential any
//! configured source would find: a second `take` finds none, so no backend sees one.
#![no_main]

use std::sync::Arc;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use switchyard::config::auth::{key_line, ApiKeys, KeySource, SecretDigest};
use switchyard::config::AccessConfig;
use switchyard::proxy::auth::{api_key, AuthFailure};
use switchyard_fuzz::{request_head, string};

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let file = string(&mut u);
    let _ = SecretDigest::parse(file.trim());
    let mut keys = ApiKeys::default();
    let _ = keys.add_lines("fuzz.keys", &file);
    // One key whose secret the fuzzer can find (`secret`), when the name is still free.
    let _ = keys.add_lines(
        "fixed",
        &key_line("known", b"secret", &["admin".to_owned()]),
    );
    let mut key_sources = Vec::new();
    for _ in 0..u8::arbitrary(&mut u).unwrap_or(0) % 4 {
        match u8::arbitrary(&mut u).unwrap_or(0) % 4 {
            0 => key_sources.push(KeySource::Bearer),
            1 => key_sources.push(KeySource::Query("api_key".to_owned())),
            2 => key_sources.push(KeySource::Header(http::HeaderName::from_static(
                "x-api-key",
            ))),
            _ => {
                if let Ok(source) = string(&mut u).parse::<KeySource>() {
                    key_sources.push(source);
                }
            }
        }
    }
    let access = AccessConfig {
        keys: Arc::new(keys),
        key_sources,
        ..AccessConfig::default()
    };
    let Some(mut parts) = request_head(&mut u) else {
        return;
    };
    let found = api_key::take(&access, &mut parts);
    if let Ok((i, key)) = found.key {
        assert_eq!(access.keys.keys()[i].name, key.name);
    }
    let again = api_key::take(&access, &mut parts);
    assert!(
        matches!(again.key, Err(AuthFailure::MissingKey)),
        "a credential survived: {:?}",
        parts
    );
    assert!(!again.query_changed);
});
