//! Go-style durations (`500ms`, `5s`, `1m30s`), as the seed's `--read-timeout 5s` takes them.
//!
//! Written by hand: the crates that parse human durations accept other syntaxes (`5 sec`,
//! `1 day`) and none prints Go's `2m5s` form, which `/health`'s uptime must match.

use std::fmt::Write;
use std::time::Duration;

/// Why a duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Empty input.
    #[error("empty duration")]
    Empty,
    /// A number without a unit, other than `0`.
    #[error("missing unit in duration {0:?} (use ms, s, m or h, e.g. 5s)")]
    MissingUnit(String),
    /// An unknown unit.
    #[error("unknown unit {unit:?} in duration {input:?} (use ns, us, ms, s, m or h)")]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole input.
        input: String,
    },
    /// Not a number where one was expected.
    #[error("invalid duration {0:?} (expected e.g. 500ms, 5s, 1m30s)")]
    Invalid(String),
    /// Too large to represent.
    #[error("duration {0:?} is too large")]
    Overflow(String),
}

/// Parses a Go duration string. Negative durations are rejected: no switchyard setting has a
/// meaning for them.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let invalid = || DurationError::Invalid(input.to_owned());
    let s = s.strip_prefix('+').unwrap_or(s);
    let mut rest = s;
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return Err(invalid());
        }
        let value: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let nanos_per_unit = match unit {
            "" => return Err(DurationError::MissingUnit(input.to_owned())),
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            other => {
                return Err(DurationError::UnknownUnit {
                    unit: other.to_owned(),
                    input: input.to_owned(),
                })
            }
        };
        total_nanos += value * nanos_per_unit;
    }
    if !total_nanos.is_finite() || total_nanos > u64::MAX as f64 {
        return Err(DurationError::Overflow(input.to_owned()));
    }
    Ok(Duration::from_nanos(total_nanos.round() as u64))
}

/// Formats whole seconds as Go's `time.Duration.String()` does after `Round(time.Second)`:
/// `0s`, `59s`, `2m5s`, `1h0m5s`.
pub fn format_go_seconds(d: Duration) -> String {
    let secs = d.as_secs() + u64::from(d.subsec_millis() >= 500);
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let mut out = String::with_capacity(12);
    // Writing to a String cannot fail.
    let _ = if h > 0 {
        write!(out, "{h}h{m}m{s}s")
    } else if m > 0 {
        write!(out, "{m}m{s}s")
    } else {
        write!(out, "{s}s")
    };
    out
}

/// Formats a duration for error messages and help texts, in the same syntax [`parse`] takes.
pub fn format(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format_go_seconds(d)
    } else if d.as_nanos() % 1_000_000 == 0 && d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}ms", d.as_secs_f64() * 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_forms() {
        let cases = [
            ("0", Duration::ZERO),
            ("5s", Duration::from_secs(5)),
            ("500ms", Duration::from_millis(500)),
            ("1m30s", Duration::from_secs(90)),
            ("1.5s", Duration::from_millis(1500)),
            ("2h45m", Duration::from_secs(2 * 3600 + 45 * 60)),
            ("10us", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input), Ok(want), "{input}");
        }
    }

    #[test]
    fn rejects_bad_forms() {
        assert_eq!(parse(""), Err(DurationError::Empty));
        assert!(matches!(parse("5"), Err(DurationError::MissingUnit(_))));
        assert!(matches!(
            parse("5d"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(parse("-5s"), Err(DurationError::Invalid(_))));
        assert!(matches!(parse("abc"), Err(DurationError::Invalid(_))));
        assert!(matches!(parse("1..2s"), Err(DurationError::Invalid(_))));
        assert!(parse("1e400h").is_err());
        assert!(matches!(
            parse("99999999999999h"),
            Err(DurationError::Overflow(_))
        ));
    }

    #[test]
    fn formats_uptime_like_go() {
        assert_eq!(format_go_seconds(Duration::from_millis(400)), "0s");
        assert_eq!(format_go_seconds(Duration::from_secs(59)), "59s");
        assert_eq!(format_go_seconds(Duration::from_secs(125)), "2m5s");
        assert_eq!(format_go_seconds(Duration::from_secs(3605)), "1h0m5s");
        assert_eq!(format(Duration::from_millis(250)), "250ms");
        assert_eq!(format(Duration::from_secs(10)), "10s");
    }
}
