//! Addresses (`config/addr.rs`): listen addresses (`:8080`, `127.0.0.1:80`, `[::1]:443`)
//! and backend URLs (`http://host:port/base`). Whatever parses prints as text that parses
//! back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::config::{BackendUrl, ListenAddr};

fuzz_target!(|text: &str| {
    if let Ok(addr) = text.parse::<ListenAddr>() {
        let shown = addr.to_string();
        assert_eq!(
            shown.parse::<ListenAddr>().ok(),
            Some(addr),
            "{text:?} -> {shown:?}"
        );
    }
    if let Ok(url) = text.parse::<BackendUrl>() {
        let _ = url.authority();
        let shown = url.to_string();
        let again = shown.parse::<BackendUrl>();
        assert_eq!(
            again.as_ref().ok(),
            Some(&url),
            "{text:?} -> {shown:?} -> {again:?}"
        );
    }
});
