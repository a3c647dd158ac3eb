//! Forward auth settings: a route's `[routes.access.forward_auth]` table (as nginx
//! `auth_request`, Traefik ForwardAuth and Caddy `forward_auth`, in front of Authelia,
//! Authentik or oauth2-proxy). The request path's side is `proxy::auth::forward`.
//!
//! The auth service is a configured pool, named by `pool`, not a URL: the auth requests then
//! get what every backend gets, keep-alive connections, health checks, circuit breaking, TLS
//! to `https://` backends and several backends to fail over to, with nothing of their own to
//! configure or keep working. `path` is what is asked of it (after the backend's own base
//! path).
//!
//! The auth request is a `GET` without a body (as Traefik and Caddy send; Authelia's and
//! Authentik's endpoints take it): the original method and target travel in
//! `X-Forwarded-Method` and `X-Forwarded-Uri`, beside `X-Forwarded-Host`,
//! `X-Forwarded-Proto` and `X-Forwarded-For`, which switchyard always sets; `request_headers`
//! says which of the client's headers go too (`Cookie` and `Authorization` by default).

use std::time::Duration;

use http::uri::PathAndQuery;
use http::HeaderName;
use serde::Deserialize;
use toml::Spanned;

use super::error::Problem;
use super::file::{PositiveDur, Str};

/// Default `timeout`: the whole auth request (connect, answer, body). Traefik allows 30 s,
/// nginx 60 s (its proxy timeouts); a login check that takes seconds is broken, and each
/// request waiting on it holds a client, so switchyard gives up sooner and answers `503`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Default `path`.
pub const DEFAULT_PATH: &str = "/";

/// Default `request_headers`: what identifies a session or a user.
pub const DEFAULT_REQUEST_HEADERS: [&str; 2] = ["cookie", "authorization"];

/// The largest body of a refusal that is passed on to the client; a longer one is a broken
/// answer (`503`).
pub const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// Headers switchyard always sets on the auth request, from the original request.
pub const FORWARDED: [&str; 5] = [
    "x-forwarded-method",
    "x-forwarded-uri",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-for",
];

/// Headers that describe a connection or a message's framing, never copied either way.
const HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "content-length",
    "host",
    "expect",
];

/// True for the headers of a connection or a message's framing, which are never copied
/// between the auth request or answer and the client's.
pub fn is_framing(name: &HeaderName) -> bool {
    HOP.contains(&name.as_str())
}

/// A route's forward auth.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardAuthConfig {
    /// The pool the auth service's backends are in.
    pub pool: String,
    /// The path (and query) asked of it.
    pub path: PathAndQuery,
    /// The client's headers sent along (besides the `X-Forwarded-*` ones).
    pub request_headers: Vec<HeaderName>,
    /// Headers of a `2xx` answer put on the upstream request; the client's own headers of
    /// these names are always removed first.
    pub copy_headers: Vec<HeaderName>,
    /// The longest the whole auth request may take.
    pub timeout: Duration,
}

/// `[routes.access.forward_auth]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardAuthFile {
    /// The pool of the auth service.
    pub pool: Spanned<Str>,
    /// The path asked of it (default `/`).
    pub path: Option<Spanned<Str>>,
    /// The client's headers sent to it (default `["Cookie", "Authorization"]`).
    pub request_headers: Option<Vec<Spanned<Str>>>,
    /// Headers of its `2xx` answer copied onto the upstream request (default none).
    pub copy_headers: Option<Vec<Spanned<Str>>>,
    /// The longest the auth request may take (default `5s`).
    pub timeout: Option<PositiveDur>,
}

/// Checks `file` (under `key`, `routes[2].access.forward_auth`); `pools` are the pools
/// defined, `broken` those in the file that could not be read (already reported).
pub fn validate(
    file: &Spanned<ForwardAuthFile>,
    key: &str,
    pools: &[&str],
    broken: &[String],
    problems: &mut Vec<Problem>,
) -> Option<ForwardAuthConfig> {
    let before = problems.len();
    let mut error = |span: std::ops::Range<usize>, sub: &str, message: String| {
        problems.push(Problem::new(span, Some(format!("{key}.{sub}")), message));
    };
    let f = file.get_ref();
    let pool = &f.pool.get_ref().0;
    if !pools.contains(&pool.as_str()) && !broken.contains(pool) {
        error(
            f.pool.span(),
            "pool",
            format!(
                "no pool named {pool:?}: define [pools.{pool}] with the auth service's address"
            ),
        );
    }
    let path = match &f.path {
        None => PathAndQuery::from_static(DEFAULT_PATH),
        Some(p) => match parse_path(&p.get_ref().0) {
            Ok(path) => path,
            Err(e) => {
                error(p.span(), "path", e);
                PathAndQuery::from_static(DEFAULT_PATH)
            }
        },
    };
    let request_headers = match &f.request_headers {
        None => DEFAULT_REQUEST_HEADERS
            .iter()
            .map(|h| HeaderName::from_static(h))
            .collect(),
        Some(list) => names(list, "request_headers", true, &mut error),
    };
    let copy_headers = names(
        f.copy_headers.as_deref().unwrap_or_default(),
        "copy_headers",
        false,
        &mut error,
    );
    let config = ForwardAuthConfig {
        pool: pool.clone(),
        path,
        request_headers,
        copy_headers,
        timeout: f.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0),
    };
    (problems.len() == before).then_some(config)
}

/// A path from `/`, with an optional query.
fn parse_path(text: &str) -> Result<PathAndQuery, String> {
    if !text.starts_with('/') || text.contains(['#', ' ']) {
        return Err(format!(
            "{text:?} is not a path: it starts with `/` and has no fragment or space"
        ));
    }
    text.parse()
        .map_err(|_| format!("{text:?} is not a valid path"))
}

/// Header names; none of the hop-by-hop ones, and in `request_headers` none of those
/// switchyard sets itself.
fn names(
    list: &[Spanned<Str>],
    sub: &str,
    sent: bool,
    error: &mut impl FnMut(std::ops::Range<usize>, &str, String),
) -> Vec<HeaderName> {
    let mut out = Vec::with_capacity(list.len());
    for item in list {
        let text = &item.get_ref().0;
        let Ok(name) = HeaderName::from_bytes(text.as_bytes()) else {
            error(item.span(), sub, format!("{text:?} is not a header name"));
            continue;
        };
        if HOP.contains(&name.as_str()) {
            error(
                item.span(),
                sub,
                format!("{text:?} describes the connection or the message, not the request"),
            );
        } else if sent && FORWARDED.contains(&name.as_str()) {
            error(
                item.span(),
                sub,
                format!("{text:?} is always sent: switchyard sets it from the original request"),
            );
        } else if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Wrapper {
        fa: Spanned<ForwardAuthFile>,
    }

    fn check(toml_text: &str) -> Result<ForwardAuthConfig, Vec<String>> {
        let file = toml::from_str::<Wrapper>(toml_text).expect("test TOML").fa;
        let mut problems = Vec::new();
        validate(
            &file,
            "routes[0].access.forward_auth",
            &["auth"],
            &[],
            &mut problems,
        )
        .ok_or_else(|| {
            let text = |p: &Problem| format!("{}: {}", p.key.as_deref().unwrap_or("-"), p.message);
            problems.iter().map(text).collect()
        })
    }

    #[test]
    fn defaults() {
        let c = check("fa = { pool = \"auth\" }").expect("valid");
        assert_eq!(c.path, "/");
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert_eq!(c.request_headers, ["cookie", "authorization"]);
        assert!(c.copy_headers.is_empty());
    }

    #[test]
    fn every_key() {
        let c = check(
            "fa = { pool = \"auth\", path = \"/api/verify?rd=1\", timeout = \"250ms\", \
             request_headers = [\"Cookie\", \"X-Api-Token\"], copy_headers = [\"Remote-User\", \"remote-user\", \"Remote-Groups\"] }",
        )
        .expect("valid");
        assert_eq!(c.path, "/api/verify?rd=1");
        assert_eq!(c.timeout, Duration::from_millis(250));
        assert_eq!(c.request_headers, ["cookie", "x-api-token"]);
        assert_eq!(c.copy_headers, ["remote-user", "remote-groups"]);
    }

    #[test]
    fn refuses_nonsense() {
        let e = check("fa = { pool = \"nope\" }").expect_err("unknown pool");
        assert!(e[0].contains("routes[0].access.forward_auth.pool"), "{e:?}");
        assert!(e[0].contains("no pool named \"nope\""), "{e:?}");
        let e = check("fa = { pool = \"auth\", path = \"verify\" }").expect_err("path");
        assert!(e[0].contains("forward_auth.path"), "{e:?}");
        let e = check("fa = { pool = \"auth\", request_headers = [\"X-Forwarded-For\"] }")
            .expect_err("forwarded");
        assert!(e[0].contains("always sent"), "{e:?}");
        let e =
            check("fa = { pool = \"auth\", copy_headers = [\"Content-Length\", \"bad name\"] }")
                .expect_err("names");
        assert_eq!(e.len(), 2, "{e:?}");
    }
}
