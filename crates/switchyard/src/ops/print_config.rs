//! `switchyard print-config` (alias `adapt`): the configuration file equivalent to the flags
//! given, so a user can grow from flags into a file. Every flag's value is written, defaulted
//! or not, so the file runs the same proxy whatever the file defaults are; loading the text
//! gives the same listeners, rate limit and pool as the flags (tested in `tests.rs`).

use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

use crate::cli::Cli;
use crate::config::{defaults, duration, CidrSet, HashKey, LogFormat};

/// Why the flags cannot be written as a file.
#[derive(Debug, thiserror::Error)]
pub enum PrintConfigError {
    /// `--config` was given: the file already is the configuration.
    #[error(
        "print-config writes the flags as a file; without --config (the file given already is one)"
    )]
    HasConfig,
}

#[cfg(test)]
mod tests;

/// The TOML text equivalent to `cli`'s flags.
pub fn print_config(cli: &Cli) -> Result<String, PrintConfigError> {
    if cli.config.is_some() {
        return Err(PrintConfigError::HasConfig);
    }
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_config(cli, &mut out);
    Ok(out)
}

fn write_config(cli: &Cli, out: &mut String) -> std::fmt::Result {
    writeln!(
        out,
        "# switchyard configuration, written by `switchyard print-config` from the flags."
    )?;
    writeln!(
        out,
        "# Check it with `switchyard check --config FILE`, run it with `switchyard --config FILE`;"
    )?;
    writeln!(out, "# every key is described in docs/configuration.md.\n")?;
    if let Some(workers) = cli.workers {
        writeln!(out, "workers = {workers}")?;
    }
    writeln!(out, "shutdown_timeout = {}", dur(cli.shutdown_timeout))?;
    let log_format = match cli.log_format {
        LogFormat::Text => "text",
        LogFormat::Json => "json",
    };
    writeln!(out, "log_format = {}", string(log_format))?;
    if cli.given("runtime") {
        writeln!(
            out,
            "# --runtime has no key in the file: keep giving it on the command line."
        )?;
    }

    writeln!(out, "\n[[listeners]]")?;
    writeln!(out, "address = {}", string(&cli.listen.to_string()))?;
    writeln!(out, "read_timeout = {}", dur(cli.read_timeout))?;
    writeln!(out, "write_timeout = {}", dur(cli.write_timeout))?;
    writeln!(out, "max_header_bytes = {}", cli.max_header_bytes)?;
    if let Some(allow) = &cli.allow_ip {
        writeln!(out, "allow_ip = {}", cidrs(allow))?;
    }
    if let Some(deny) = &cli.deny_ip {
        writeln!(out, "deny_ip = {}", cidrs(deny))?;
    }
    if cli.proxy_protocol {
        writeln!(out, "proxy_protocol = true")?;
    }
    if let (Some(cert), Some(key)) = (&cli.tls_cert, &cli.tls_key) {
        writeln!(out, "\n[listeners.tls]")?;
        writeln!(
            out,
            "certificates = [{{ cert = {}, key = {} }}]",
            path(cert),
            path(key)
        )?;
        writeln!(out, "resumption = {}", cli.tls_resumption)?;
        if let Some(ca) = &cli.tls_client_ca {
            writeln!(
                out,
                "client_auth = {{ mode = \"required\", ca = {} }}",
                path(ca)
            )?;
        }
    }

    writeln!(out, "\n[rate_limit]")?;
    writeln!(out, "requests = {}", cli.rate_limit)?;
    writeln!(out, "window = {}", dur(cli.rate_window))?;
    if cli.client_rate_limit > 0 {
        writeln!(out, "\n[client_rate_limit]")?;
        writeln!(out, "requests = {}", cli.client_rate_limit)?;
        writeln!(out, "window = {}", dur(cli.rate_window))?;
    }

    let limits = cli.max_body_size.is_some()
        || cli.max_client_connections.is_some()
        || cli.max_connections_per_ip.is_some();
    if limits {
        writeln!(out, "\n[limits]")?;
        if let Some(max) = cli.max_body_size {
            // In bytes: exact whatever unit the flag was given in.
            writeln!(out, "max_body_size = \"{max}B\"")?;
        }
        if let Some(max) = cli.max_client_connections {
            writeln!(out, "max_connections = {max}")?;
        }
        if let Some(max) = cli.max_connections_per_ip {
            writeln!(out, "max_connections_per_ip = {max}")?;
        }
    }
    if cli.api_keys.is_some() || cli.trusted_proxies.is_some() {
        writeln!(out, "\n[access]")?;
        if let Some(keys) = &cli.api_keys {
            writeln!(out, "api_keys_file = {}", path(keys))?;
        }
        if let Some(trusted) = &cli.trusted_proxies {
            writeln!(out, "trusted_proxies = {}", cidrs(trusted))?;
        }
    }
    if let Some(token) = &cli.admin_token_file {
        writeln!(out, "\n[admin]")?;
        writeln!(out, "token_file = {}", path(token))?;
    }

    if let Some(target) = &cli.audit_log {
        writeln!(out, "\n[audit]")?;
        writeln!(out, "path = {}", string(target))?;
    }
    if cli.user.is_some() || cli.group.is_some() {
        writeln!(out, "\n[server]")?;
        for (key, value) in [("user", &cli.user), ("group", &cli.group)] {
            if let Some(value) = value {
                writeln!(out, "{key} = {}", string(value))?;
            }
        }
    }

    write_pool(cli, out)?;
    if cli.api_keys.is_some() {
        // --api-keys asks a key on every route: the one route the flags make, spelled out.
        writeln!(out, "\n[[routes]]")?;
        writeln!(out, "pool = {}", string(defaults::POOL_NAME))?;
        writeln!(out, "access = {{ api_key = true }}")?;
    }
    Ok(())
}

/// CIDR blocks as a TOML array of strings.
fn cidrs(set: &CidrSet) -> String {
    let blocks: Vec<String> = set
        .blocks()
        .iter()
        .map(|b| string(&b.to_string()))
        .collect();
    format!("[{}]", blocks.join(", "))
}

fn write_pool(cli: &Cli, out: &mut String) -> std::fmt::Result {
    let pool = defaults::POOL_NAME;
    writeln!(out, "\n[pools.{pool}]")?;
    let backends: Vec<String> = cli
        .backends
        .iter()
        .map(|b| string(&b.to_string()))
        .collect();
    writeln!(out, "backends = [{}]", backends.join(", "))?;
    writeln!(out, "policy = {}", string(&cli.policy))?;
    if let Some(key) = &cli.hash_key {
        writeln!(out, "hash_key = {}", string(&hash_key(key)))?;
    }
    writeln!(out, "retries = {}", cli.retries)?;
    writeln!(out, "connect_timeout = {}", dur(cli.connect_timeout))?;
    let timeout = cli.upstream_timeout.unwrap_or(cli.write_timeout);
    writeln!(out, "timeout = {}", dur(timeout))?;
    if let Some(t) = cli.request_timeout {
        writeln!(out, "request_timeout = {}", dur(t))?;
    }
    writeln!(out, "max_idle_connections = {}", cli.pool_max_idle)?;
    writeln!(out, "idle_timeout = {}", dur(cli.pool_idle_timeout))?;
    if let Some(n) = cli.max_connections {
        writeln!(out, "max_connections = {n}")?;
    }
    writeln!(out, "slow_start = {}", dur(cli.slow_start))?;

    writeln!(out, "\n[pools.{pool}.circuit_breaker]")?;
    writeln!(out, "failures = {}", cli.circuit_failures)?;
    writeln!(out, "open_duration = {}", dur(cli.circuit_open))?;

    writeln!(out, "\n[pools.{pool}.retry]")?;
    let codes: Vec<String> = cli.retry_on.iter().map(u16::to_string).collect();
    writeln!(out, "retry_on = [{}]", codes.join(", "))?;

    if let Some(check) = &cli.health_check {
        writeln!(out, "\n[pools.{pool}.health_check]")?;
        writeln!(out, "path = {}", string(check))?;
        writeln!(out, "interval = {}", dur(cli.health_interval))?;
    }
    if let Some(ca) = &cli.upstream_ca {
        // A pool's `tls` table needs an `https://` backend; without one the CA is unused.
        if cli.backends.iter().any(|b| b.scheme.is_tls()) {
            writeln!(out, "\n[pools.{pool}.tls]")?;
            writeln!(out, "ca = {}", path(ca))?;
        } else {
            writeln!(out, "\n# --upstream-ca is unused: no https:// backend.")?;
        }
    }
    Ok(())
}

/// A TOML basic string: JSON's string escapes are all valid in TOML.
fn string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// A duration as the file takes it (Go syntax, quoted).
fn dur(d: Duration) -> String {
    string(&duration::format(d))
}

/// A path made absolute, so the file works wherever it is saved (relative paths in a file
/// are taken from its folder).
fn path(p: &Path) -> String {
    let absolute = std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
    string(&absolute.to_string_lossy())
}

/// A hash key as `--hash-key` and the file write it.
fn hash_key(key: &HashKey) -> String {
    match key {
        HashKey::ClientIp => "client_ip".to_owned(),
        HashKey::Path => "path".to_owned(),
        HashKey::Header(name) => format!("header:{name}"),
        HashKey::Cookie(name) => format!("cookie:{name}"),
    }
}
