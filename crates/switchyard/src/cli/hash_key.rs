//! `switchyard hash-key NAME [--roles a,b]`: reads a secret on standard input (one trailing
//! newline dropped) and prints the key-file line for it, `NAME sha256:HEX [roles]`. Only the
//! digest is printed; generate the secret with any random source, e.g.
//! `openssl rand -hex 32`.

use std::io::{Read, Write};

use crate::config::auth::{key_line, parse_roles, valid_word};

/// The arguments of `hash-key`.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct HashKeyArgs {
    /// The key's name, as logs and metrics will show it.
    #[arg(default_value = "key")]
    pub name: String,
    /// Its roles, comma-separated.
    #[arg(long, value_name = "ROLES")]
    pub roles: Option<String>,
}

/// Reads the secret from `input` and writes the line to `output`.
pub fn run(
    args: &HashKeyArgs,
    input: &mut impl Read,
    output: &mut impl Write,
) -> Result<(), String> {
    if !valid_word(&args.name) {
        return Err(format!(
            "key name {:?} must be letters, digits, `-`, `_` or `.`",
            args.name
        ));
    }
    let roles = args
        .roles
        .as_deref()
        .map(parse_roles)
        .transpose()?
        .unwrap_or_default();
    let mut secret = Vec::new();
    input
        .take(64 * 1024)
        .read_to_end(&mut secret)
        .map_err(|e| format!("cannot read the secret: {e}"))?;
    if secret.ends_with(b"\n") {
        secret.pop();
        if secret.ends_with(b"\r") {
            secret.pop();
        }
    }
    if secret.is_empty() {
        return Err("no secret on standard input".to_owned());
    }
    writeln!(output, "{}", key_line(&args.name, &secret, &roles))
        .map_err(|e| format!("cannot write: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_the_digest_line_not_the_secret() {
        let args = HashKeyArgs {
            name: "ci".into(),
            roles: Some("read,deploy".into()),
        };
        let mut out = Vec::new();
        run(&args, &mut &b"s3cret\n"[..], &mut out).unwrap();
        let line = String::from_utf8(out).unwrap();
        // printf s3cret | sha256sum
        let digest = "1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0";
        assert_eq!(line, format!("ci sha256:{digest} read,deploy\n"));
        assert!(!line.contains("s3cret"));
        let mut out = Vec::new();
        assert!(run(&args, &mut &b"\n"[..], &mut out).is_err());
    }
}
