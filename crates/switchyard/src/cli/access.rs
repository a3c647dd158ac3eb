//! The access-control flags over a configuration: `--api-keys` (the keys, and a key
//! required on every route), `--allow-ip` / `--deny-ip` (every listener),
//! `--trusted-proxies`, `--proxy-protocol` and `--admin-token-file`. Files are read anew at every reload, so a
//! changed key file is taken with the configuration (a bad one keeps the old configuration).

use std::sync::Arc;

use super::apply::Flags;
use crate::config::auth::ApiKeys;
use crate::config::{validate, Config, IpRules};

// === impl Flags ===

impl Flags<'_> {
    /// Applies the access-control flags given (they are never defaulted).
    pub(super) fn access(self, config: &mut Config) -> Result<(), String> {
        let cli = self.cli;
        if let Some(path) = &cli.api_keys {
            let mut keys = ApiKeys::default();
            keys.add_file(path)
                .map_err(|e| format!("--api-keys: {e}"))?;
            if keys.is_empty() {
                return Err(format!("--api-keys: {} holds no key", path.display()));
            }
            config.access.keys = Arc::new(keys);
            for route in &mut config.routes {
                let mut access = route.access.as_deref().cloned().unwrap_or_default();
                access.api_key = true;
                route.access = Some(Arc::new(access));
            }
        }
        if cli.allow_ip.is_some() || cli.deny_ip.is_some() {
            for listener in &mut config.listeners {
                let mut rules: IpRules = listener.ip_rules.as_deref().cloned().unwrap_or_default();
                if let Some(allow) = &cli.allow_ip {
                    rules.allow = allow.clone();
                }
                if let Some(deny) = &cli.deny_ip {
                    rules.deny = deny.clone();
                }
                listener.ip_rules = (!rules.is_empty()).then(|| Arc::new(rules));
            }
        }
        if let Some(trusted) = &cli.trusted_proxies {
            config.access.trusted_proxies = Some(Arc::new(trusted.clone()));
        }
        if cli.proxy_protocol {
            if config.access.trusted_proxies.is_none() {
                return Err("--proxy-protocol needs --trusted-proxies (or [access] \
                            trusted_proxies): the PROXY header is believed only from them"
                    .to_owned());
            }
            for listener in &mut config.listeners {
                listener.proxy_protocol = true;
            }
        }
        if let Some(path) = &cli.admin_token_file {
            let token =
                validate::read_token(path).map_err(|e| format!("--admin-token-file: {e}"))?;
            config.admin.token = Some(token);
        }
        Ok(())
    }
}
