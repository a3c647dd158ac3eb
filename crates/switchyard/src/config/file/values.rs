//! The scalar types of the file: strings with `${VAR}` interpolated from the environment, and
//! durations in Go syntax (any, or greater than zero).

use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::Deserialize;

use crate::config::duration;

/// A string with `${VAR}` replaced by the environment variable's value. A missing variable is
/// an error naming it; `$${` writes a literal `${`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Str(pub String);

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        interpolate(&raw, |name| std::env::var(name).ok())
            .map(Str)
            .map_err(de::Error::custom)
    }
}

/// Replaces `${NAME}` using `lookup`.
pub fn interpolate(raw: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(escaped) = after.strip_prefix("${") {
            out.push_str("${");
            rest = escaped;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {raw:?}"))?;
            let name = &body[..end];
            let valid =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!(
                    "invalid environment variable name {name:?} in {raw:?}"
                ));
            }
            let value =
                lookup(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A duration in Go syntax (`"500ms"`, `"1m30s"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Str::deserialize(d)?;
        duration::parse(&raw.0).map(Dur).map_err(de::Error::custom)
    }
}

/// A duration in Go syntax that must be greater than zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PositiveDur(pub Duration);

impl<'de> Deserialize<'de> for PositiveDur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Dur::deserialize(d)? {
            Dur(Duration::ZERO) => Err(de::Error::custom("must be greater than 0")),
            Dur(d) => Ok(PositiveDur(d)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_environment_variables() {
        let env = |name: &str| (name == "PORT").then(|| "8080".to_owned());
        assert_eq!(
            interpolate("http://h:${PORT}/x", env).unwrap(),
            "http://h:8080/x"
        );
        assert_eq!(interpolate("a$b $${PORT}", env).unwrap(), "a$b ${PORT}");
        assert_eq!(
            interpolate("${MISSING}", env).unwrap_err(),
            "environment variable MISSING is not set"
        );
        assert!(interpolate("${", env).is_err());
        assert!(interpolate("${A-B}", env).is_err());
    }
}
