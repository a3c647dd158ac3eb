//! Durations (`config/duration.rs`: `500ms`, `1m30s`) and sizes (`config/limits.rs`:
//! `10MiB`): any text parses or is refused, and a parsed duration formats into text that
//! parses again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::config::{duration, limits};

fuzz_target!(|text: &str| {
    if let Ok(d) = duration::parse(text) {
        let shown = duration::format(d);
        assert!(
            duration::parse(&shown).is_ok(),
            "{text:?} parsed as {d:?}, formatted as {shown:?}, which does not parse"
        );
        let _ = duration::format_go_seconds(d);
    }
    let _ = limits::parse_size(text);
});
