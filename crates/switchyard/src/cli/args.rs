//! The command line before and after clap: Go-style single-dash flags (`-rate-limit=20`)
//! rewritten to clap's form, the value parsers of the flags, which flags were given on the
//! command line, and clap's errors cut down to the one line a user needs.

use std::time::Duration;

use clap::parser::ValueSource;
use clap::ArgMatches;

use crate::config::{duration, validate, CidrSet, HashKey};

/// The long flags that also work in Go's single-dash form.
const GO_FLAGS: &[&str] = &[
    "config",
    "listen",
    "read-timeout",
    "write-timeout",
    "rate-limit",
    "rate-window",
    "client-rate-limit",
    "backends",
    "retries",
    "upstream-timeout",
    "connect-timeout",
    "circuit-failures",
    "circuit-open",
    "shutdown-timeout",
    "max-header-bytes",
    "max-body-size",
    "max-client-connections",
    "max-connections-per-ip",
    "pool-max-idle",
    "pool-idle-timeout",
    "policy",
    "hash-key",
    "health-check",
    "health-interval",
    "request-timeout",
    "max-connections",
    "retry-on",
    "slow-start",
    "upstream-ca",
    "workers",
    "runtime",
    "log-format",
    "tls-cert",
    "tls-key",
    "tls-client-ca",
    "tls-resumption",
    "api-keys",
    "allow-ip",
    "deny-ip",
    "trusted-proxies",
    "admin-token-file",
    "pid-file",
    "from",
    "to",
];

/// `args` with the Go-style forms of [`GO_FLAGS`] (`-flag=value`, `-flag value`) rewritten
/// as `--flag`.
pub(super) fn normalise(args: impl IntoIterator<Item = String>) -> Vec<String> {
    test_server::go_style_args(args, GO_FLAGS)
}

/// The ids of the flags given on the command line (not defaulted), subcommands included.
pub(super) fn explicit_ids(matches: &ArgMatches) -> Vec<String> {
    let mut ids: Vec<String> = matches
        .ids()
        .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::CommandLine))
        .map(|id| id.as_str().to_owned())
        .collect();
    if let Some((_, sub)) = matches.subcommand() {
        ids.extend(explicit_ids(sub));
    }
    ids
}

/// Renders a clap error as the one line a user needs: what was wrong, with the flag and
/// value, the possible values when there is a list, and clap's tip ("a similar argument
/// exists: '--rate-limit'") when it has one.
pub fn one_line_error(err: &clap::Error) -> String {
    let rendered = err.render().to_string();
    let mut lines = rendered.lines().map(str::trim);
    let first = lines.next().unwrap_or("invalid arguments");
    let mut line = first.strip_prefix("error: ").unwrap_or(first).to_owned();
    for more in lines {
        if more.starts_with("[possible values") {
            line.push(' ');
            line.push_str(more);
        } else if more.starts_with("tip:") && !more.starts_with("tip: to pass") {
            // "a similar argument exists: ..."; not "to pass '--x' as a value, use '-- --x'".
            line.push_str("; ");
            line.push_str(more);
        }
    }
    format!("switchyard: {line} (see --help)")
}

// === value parsers ===

pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    duration::parse(s).map_err(|e| e.to_string())
}

pub(super) fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    validate::positive(parse_duration(s)?)
}

pub(super) fn parse_hash_key(s: &str) -> Result<HashKey, String> {
    s.parse()
}

pub(super) fn parse_cidrs(s: &str) -> Result<CidrSet, String> {
    CidrSet::parse_list(s)
}

/// `on` or `off` (`true` and `false` are taken too, unlisted), listed in errors and `--help`.
pub(super) fn parse_on_off() -> impl clap::builder::TypedValueParser<Value = bool> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new([
        PossibleValue::new("on"),
        PossibleValue::new("off"),
        PossibleValue::new("true").hide(true),
        PossibleValue::new("false").hide(true),
    ])
    .map(|s| s == "on" || s == "true")
}

pub(super) fn parse_size(s: &str) -> Result<u64, String> {
    crate::config::limits::parse_size(s)
}

pub(super) fn parse_header_limit(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{e}"))?;
    // hyper's read buffer cannot be smaller than 8 KiB.
    if !(8192..=1 << 20).contains(&n) {
        return Err("must be between 8192 and 1048576".to_owned());
    }
    Ok(n)
}
