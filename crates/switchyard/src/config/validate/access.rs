//! `[access]` (the key file and variable read and checked, the key sources, the realm, the
//! trusted proxies), a route's `access` table, the IP lists of listeners and routes, and
//! `[admin] token_file`. A route that needs a key when no key is configured is an error.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::Spanned;

use super::Checker;
use crate::config::auth::{
    parse_roles, AccessConfig, ApiKeys, KeySource, RouteAccess, SecretDigest,
};
use crate::config::cidr::{CidrSet, IpRules};
use crate::config::file::{AccessFile, AdminFile, RouteAccessFile, RouteFile, Str};

/// `[access]`; the defaults without it.
pub(super) fn access(
    file: Option<&Spanned<AccessFile>>,
    base: &Path,
    c: &mut Checker<'_>,
) -> AccessConfig {
    let mut access = AccessConfig::default();
    let Some(file) = file.map(Spanned::get_ref) else {
        return access;
    };
    let mut keys = ApiKeys::default();
    if let Some(path) = &file.api_keys_file {
        if let Err(e) = keys.add_file(&resolve(base, &path.get_ref().0)) {
            c.error(path.span(), "access.api_keys_file", e);
        }
    }
    if let Some(var) = &file.api_keys_env {
        if let Err(e) = add_env(&mut keys, &var.get_ref().0) {
            c.error(var.span(), "access.api_keys_env", e);
        }
    }
    access.keys = Arc::new(keys);
    if let Some(sources) = &file.key_sources {
        if sources.is_empty() {
            c.error(0..0, "access.key_sources", "must name at least one source");
        }
        access.key_sources = sources
            .iter()
            .filter_map(|s| match s.get_ref().0.parse::<KeySource>() {
                Ok(source) => Some(source),
                Err(e) => {
                    c.error(s.span(), "access.key_sources", e);
                    None
                }
            })
            .collect();
    }
    if let Some(realm) = &file.realm {
        match AccessConfig::challenge_for(&realm.get_ref().0) {
            Ok(challenge) => access.challenge = challenge,
            Err(e) => c.error(realm.span(), "access.realm", e),
        }
    }
    if let Some(list) = &file.trusted_proxies {
        access.trusted_proxies = Some(Arc::new(cidrs(list, "access.trusted_proxies", c)));
    }
    access.jwt = super::jwt::provider(file.jwt.as_ref(), base, &access.challenge, c);
    access
}

/// The keys of the environment variable `var`: key-file lines, separated by newlines or `;`.
pub fn add_env(keys: &mut ApiKeys, var: &str) -> Result<(), String> {
    let text = std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?;
    keys.add_lines(
        &format!("environment variable {var}"),
        &text.replace(';', "\n"),
    )
}

/// A route's `access` table (`key` is the route's, `routes[2]`); `pools` are the pools
/// defined and `broken` those that could not be read, for `forward_auth.pool`.
pub(super) fn route(
    file: Option<&Spanned<RouteAccessFile>>,
    key: &str,
    pools: &[&str],
    broken: &[String],
    c: &mut Checker<'_>,
) -> Option<Arc<RouteAccess>> {
    let file = file?.get_ref();
    let mut roles = Vec::new();
    for role in file.roles.iter().flatten() {
        match parse_roles(&role.get_ref().0) {
            Ok(mut r) => roles.append(&mut r),
            Err(e) => c.error(role.span(), format!("{key}.access.roles"), e),
        }
    }
    let api_key = file.api_key.as_ref().is_some_and(|b| *b.get_ref()) || !roles.is_empty();
    if let (Some(b), false) = (&file.api_key, roles.is_empty()) {
        if !*b.get_ref() {
            c.error(
                b.span(),
                format!("{key}.access.api_key"),
                "roles need a key: remove `api_key = false`",
            );
        }
    }
    let ip = ip_rules(
        file.allow_ip.as_deref(),
        file.deny_ip.as_deref(),
        &format!("{key}.access"),
        c,
    );
    let forward = file.forward_auth.as_ref().and_then(|f| {
        let key = format!("{key}.access.forward_auth");
        crate::config::forward_auth::validate(f, &key, pools, broken, c.problems)
    });
    Some(Arc::new(RouteAccess {
        api_key,
        roles,
        ip: ip.map(Arc::unwrap_or_clone),
        forward,
        jwt: super::jwt::route(file, key, c),
    }))
}

/// The `allow_ip` and `deny_ip` lists under `key` (`listeners[0]`, `routes[1].access`);
/// `None` when both are absent or empty.
pub(super) fn ip_rules(
    allow: Option<&[Spanned<Str>]>,
    deny: Option<&[Spanned<Str>]>,
    key: &str,
    c: &mut Checker<'_>,
) -> Option<Arc<IpRules>> {
    let rules = IpRules {
        allow: cidrs(allow.unwrap_or_default(), &format!("{key}.allow_ip"), c),
        deny: cidrs(deny.unwrap_or_default(), &format!("{key}.deny_ip"), c),
    };
    (!rules.is_empty()).then(|| Arc::new(rules))
}

/// A list of CIDR blocks.
fn cidrs(list: &[Spanned<Str>], key: &str, c: &mut Checker<'_>) -> CidrSet {
    let blocks = list
        .iter()
        .filter_map(|b| match CidrSet::parse_block(&b.get_ref().0) {
            Ok(block) => Some(block),
            Err(e) => {
                c.error(b.span(), key, e);
                None
            }
        })
        .collect();
    CidrSet::new(blocks)
}

/// Routes that need a key while no key is configured: reported on their `access` table.
pub(super) fn keys_needed(routes: &[Spanned<RouteFile>], access: &AccessConfig, c: &mut Checker) {
    if !access.keys.is_empty() {
        return;
    }
    for (i, route) in routes.iter().enumerate() {
        let Some(a) = &route.get_ref().access else {
            continue;
        };
        let needs = a.get_ref().api_key.as_ref().is_some_and(|b| *b.get_ref())
            || a.get_ref().roles.as_ref().is_some_and(|r| !r.is_empty());
        if needs {
            c.error(
                a.span(),
                format!("routes[{i}].access"),
                "needs an API key, but no key is configured: set access.api_keys_file or access.api_keys_env",
            );
        }
    }
}

/// `[admin] token_file`: the token is the file's contents, surrounding whitespace aside.
pub(super) fn admin_token(
    file: Option<&AdminFile>,
    base: &Path,
    c: &mut Checker<'_>,
) -> Option<SecretDigest> {
    let path = file?.token_file.as_ref()?;
    match read_token(&resolve(base, &path.get_ref().0)) {
        Ok(digest) => Some(digest),
        Err(e) => {
            c.error(path.span(), "admin.token_file", e);
            None
        }
    }
}

/// The digest of the token in the file at `path` (also used by `--admin-token-file`).
pub fn read_token(path: &Path) -> Result<SecretDigest, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read token file {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("token file {} is empty", path.display()));
    }
    if token.len() < 16 {
        return Err(format!(
            "the token in {} is shorter than 16 characters: use a long random one",
            path.display()
        ));
    }
    Ok(SecretDigest::of(token.as_bytes()))
}

pub(super) fn resolve(base: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_owned()
    } else {
        base.join(path)
    }
}
