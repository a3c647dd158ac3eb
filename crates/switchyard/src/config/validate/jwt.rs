//! `[access.jwt]` (the key files read and checked, issuer, audience, leeway, token source)
//! and a route's `jwt`, `jwt_claims`, `jwt_headers` and `jwt_forward`. A route that needs a
//! token while no provider is configured is an error, and so is a route that needs both an
//! API key and a token from the same `Authorization: Bearer` header.

use std::path::Path;
use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use toml::Spanned;

use super::access::resolve;
use super::Checker;
use crate::config::auth::{AccessConfig, KeySource};
use crate::config::file::{JwtFile, RouteAccessFile, RouteFile};
use crate::config::jwt::{
    read_jwks, read_public_keys, read_secret, ClaimRule, JwtConfig, RouteJwt, TokenSource,
    DEFAULT_LEEWAY, MAX_LEEWAY,
};

/// `[access.jwt]`; `challenge` is the realm's `Bearer realm="..."`.
pub(super) fn provider(
    file: Option<&Spanned<JwtFile>>,
    base: &Path,
    challenge: &HeaderValue,
    c: &mut Checker<'_>,
) -> Option<Arc<JwtConfig>> {
    let spanned = file?;
    let file = spanned.get_ref();
    let mut keys = Vec::new();
    let mut fingerprint = Vec::new();
    let files = [
        (&file.jwks_file, "jwks_file", read_jwks as fn(&Path) -> _),
        (&file.public_key_file, "public_key_file", read_public_keys),
        (&file.secret_file, "secret_file", read_secret),
    ];
    let mut named = false;
    for (path, name, read) in files {
        let Some(path) = path else { continue };
        named = true;
        match read(&resolve(base, &path.get_ref().0)) {
            Ok((mut k, bytes)) => {
                keys.append(&mut k);
                fingerprint.extend_from_slice(&crate::config::tls::sha256(&bytes).0);
            }
            Err(e) => c.error(path.span(), format!("access.jwt.{name}"), e.to_string()),
        }
    }
    if !named {
        c.error(
            spanned.span(),
            "access.jwt",
            "needs keys: set jwks_file, public_key_file or secret_file",
        );
    }
    let list = |v: &Option<Spanned<crate::config::file::OneOrMany>>, key: &str, c: &mut Checker| {
        let Some(v) = v else { return Vec::new() };
        let items = v.get_ref().to_vec();
        if items.is_empty() || items.iter().any(String::is_empty) {
            c.error(v.span(), format!("access.jwt.{key}"), "must not be empty");
        }
        items
    };
    let issuers = list(&file.issuer, "issuer", c);
    let audiences = list(&file.audience, "audience", c);
    let mut leeway = DEFAULT_LEEWAY;
    if let Some(l) = &file.leeway {
        let d = l.get_ref().0;
        if d > MAX_LEEWAY || d.subsec_nanos() != 0 {
            c.error(
                l.span(),
                "access.jwt.leeway",
                "must be whole seconds, at most 10m",
            );
        } else {
            leeway = d;
        }
    }
    let mut source = TokenSource::Bearer;
    if let Some(s) = &file.token_source {
        match s.get_ref().0.parse() {
            Ok(parsed) => source = parsed,
            Err(e) => c.error(s.span(), "access.jwt.token_source", e),
        }
    }
    if keys.is_empty() {
        return None;
    }
    Some(Arc::new(JwtConfig::new(
        keys,
        source,
        issuers,
        audiences,
        leeway,
        challenge.clone(),
        fingerprint,
    )))
}

/// A route's `jwt*` keys (`key` is the route's, `routes[2]`); `None` when it asks for no
/// token. `jwt_claims`, `jwt_headers` and `jwt_forward` imply `jwt = true`.
pub(super) fn route(
    file: &RouteAccessFile,
    key: &str,
    c: &mut Checker<'_>,
) -> Option<Arc<RouteJwt>> {
    let implied = implied(file);
    match &file.jwt {
        Some(b) if !*b.get_ref() && implied => {
            c.error(
                b.span(),
                format!("{key}.access.jwt"),
                "jwt_claims, jwt_headers and jwt_forward need a token: remove `jwt = false`",
            );
            return None;
        }
        Some(b) if !*b.get_ref() => return None,
        None if !implied => return None,
        _ => {}
    }
    let mut claims = Vec::new();
    for (name, value) in file.jwt_claims.iter().flat_map(|m| m.get_ref()) {
        let any_of = value.get_ref().to_vec();
        if name.is_empty() || any_of.is_empty() {
            c.error(
                value.span(),
                format!("{key}.access.jwt_claims.{name}"),
                "needs a claim name and at least one value",
            );
        }
        claims.push(ClaimRule {
            name: name.clone(),
            any_of,
        });
    }
    let mut headers = Vec::new();
    for (claim, header) in file.jwt_headers.iter().flat_map(|m| m.get_ref()) {
        match HeaderName::from_bytes(header.get_ref().0.as_bytes()) {
            Ok(h) if !forbidden_header(&h) => headers.push((claim.clone(), h)),
            Ok(h) => c.error(
                header.span(),
                format!("{key}.access.jwt_headers.{claim}"),
                format!("{h} cannot carry a claim"),
            ),
            Err(_) => c.error(
                header.span(),
                format!("{key}.access.jwt_headers.{claim}"),
                format!("{:?} is not a header name", header.get_ref().0),
            ),
        }
    }
    let forward = file.jwt_forward.as_ref().is_none_or(|b| *b.get_ref());
    Some(Arc::new(RouteJwt {
        claims,
        headers,
        forward,
    }))
}

/// Headers a claim may not be written into: framing, routing and the credentials.
fn forbidden_header(h: &HeaderName) -> bool {
    use http::header::*;
    [
        HOST,
        CONTENT_LENGTH,
        TRANSFER_ENCODING,
        CONNECTION,
        UPGRADE,
        TE,
        AUTHORIZATION,
        COOKIE,
    ]
    .contains(h)
}

/// Routes that need a token while no provider is configured, and routes that need an API
/// key and a token both from `Authorization: Bearer` (reported on their `access` table).
pub(super) fn checks(routes: &[Spanned<RouteFile>], access: &AccessConfig, c: &mut Checker) {
    let bearer_key = access.key_sources.contains(&KeySource::Bearer);
    let bearer_token = access
        .jwt
        .as_ref()
        .is_some_and(|j| j.source == TokenSource::Bearer);
    for (i, route) in routes.iter().enumerate() {
        let Some(a) = &route.get_ref().access else {
            continue;
        };
        let f = a.get_ref();
        let jwt = f.jwt.as_ref().map_or_else(|| implied(f), |b| *b.get_ref());
        if !jwt {
            continue;
        }
        let api_key = f.api_key.as_ref().is_some_and(|b| *b.get_ref())
            || f.roles.as_ref().is_some_and(|r| !r.is_empty());
        if access.jwt.is_none() {
            c.error(
                a.span(),
                format!("routes[{i}].access"),
                "needs a JWT, but no provider is configured: add [access.jwt]",
            );
        } else if api_key && bearer_key && bearer_token {
            c.error(
                a.span(),
                format!("routes[{i}].access"),
                "needs an API key and a JWT, both from `Authorization: Bearer`: set access.key_sources or access.jwt.token_source so that they come from different places",
            );
        }
    }
}

/// `jwt_claims`, `jwt_headers` or `jwt_forward` given: a token is needed.
fn implied(file: &RouteAccessFile) -> bool {
    file.jwt_claims.is_some() || file.jwt_headers.is_some() || file.jwt_forward.is_some()
}
