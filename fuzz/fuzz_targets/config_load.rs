//! The configuration loader: any text as a `--config` file, parsed and validated, and its
//! errors rendered (file, line, key, caret). Never a panic; a valid file also prints.
//!
//! The text comes from a string, not a file. Files it names (key files, certificates) are
//! looked up under a directory that does not exist; inputs naming `/dev`, `/proc` or `/sys`
//! are skipped so that no run reads a device.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use switchyard::config::validate;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if ["/dev", "/proc", "/sys"].iter().any(|p| text.contains(p)) {
        return;
    }
    let path = Path::new("/nonexistent-switchyard-fuzz/switchyard.toml");
    match validate::from_text(path, text) {
        Ok(config) => {
            let _ = format!("{config:?}");
        }
        Err(err) => {
            let _ = err.to_string();
        }
    }
});
