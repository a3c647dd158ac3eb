//! `[[routes]]`: each route's name, action (forward to a pool, redirect or respond) and path
//! rewrite; then all of them in precedence order, with the routes that can never match
//! reported. Without routes, the only pool takes every request.

use std::collections::HashSet;
use std::ops::Range;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use toml::Spanned;

use super::headers::header_edits;
use super::route_match::route_match;
use super::{rate_limit, valid_path, Checker};
use crate::config::file::{RedirectFile, RespondFile, RouteFile, Str};
use crate::config::route::{PathMatch, PathRewrite, RouteAction, RouteConfig, RouteMatch};
use crate::config::PoolConfig;

/// The pools a route may name.
struct Pools<'a> {
    /// The pools defined.
    names: Vec<&'a str>,
    /// The pools in the file that could not be read (already reported).
    broken: &'a [String],
}

/// The routes, most specific first. `routes_set_aside` holds, per route, the keys the file
/// reader already reported.
pub(super) fn routes(
    files: &[Spanned<RouteFile>],
    routes_set_aside: &[Vec<String>],
    pools: &[PoolConfig],
    broken_pools: &[String],
    c: &mut Checker<'_>,
) -> Vec<RouteConfig> {
    if files.is_empty() {
        return default_routes(pools, broken_pools, c);
    }
    let pools = Pools {
        names: pools.iter().map(|p| p.name.as_str()).collect(),
        broken: broken_pools,
    };
    let mut names = HashSet::new();
    let mut built: Vec<(RouteConfig, Range<usize>, usize)> = Vec::new();
    for (i, spanned) in files.iter().enumerate() {
        let set_aside = routes_set_aside.get(i).map_or(&[][..], Vec::as_slice);
        if let Some(route) = route(i, spanned, set_aside, &pools, &mut names, c) {
            built.push((route, spanned.span(), i));
        }
    }
    in_precedence_order(built, c)
}

/// Without `[[routes]]`: one route taking every request to the only pool.
fn default_routes(
    pools: &[PoolConfig],
    broken_pools: &[String],
    c: &mut Checker<'_>,
) -> Vec<RouteConfig> {
    if !broken_pools.is_empty() {
        // Which pool was meant is unknown; the broken pool is reported where it is defined.
        return Vec::new();
    }
    match pools {
        [] => {
            c.error(
                0..0,
                "pools",
                "no pools: add a [pools.NAME] table with backends",
            );
            Vec::new()
        }
        [only] => vec![RouteConfig::catch_all(&only.name)],
        _ => {
            c.error(
                0..0,
                "routes",
                "several pools but no routes: add [[routes]] saying which requests go where",
            );
            Vec::new()
        }
    }
}

/// `routes[i]`, unless its action is missing or wrong (its other settings are then not
/// checked). `names` are the route names taken so far.
fn route(
    i: usize,
    spanned: &Spanned<RouteFile>,
    set_aside: &[String],
    pools: &Pools<'_>,
    names: &mut HashSet<String>,
    c: &mut Checker<'_>,
) -> Option<RouteConfig> {
    let span = spanned.span();
    let r = spanned.get_ref();
    let key = format!("routes[{i}]");
    let name = r.name.as_ref().map_or_else(|| key.clone(), |n| n.0.clone());
    if !names.insert(name.clone()) {
        c.error(
            span.clone(),
            format!("{key}.name"),
            format!("route name {name:?} is used twice"),
        );
    }
    let matcher = route_match(r.matcher.as_ref(), &key, c);
    let action = action(r, &key, pools, set_aside, span, c)?;
    let rewrite = rewrite(r, &matcher, &key, c);
    Some(RouteConfig {
        name,
        action,
        rewrite,
        timeout: r.timeout.map(|t| t.0),
        rate_limit: r
            .rate_limit
            .as_ref()
            .map(|rl| rate_limit(rl, &format!("{key}.rate_limit"), c)),
        client_rate_limit: r.client_rate_limit.as_ref().and_then(|f| {
            let at = format!("{key}.client_rate_limit");
            crate::config::client_limit::validate(f, &at, c.problems)
        }),
        request_headers: header_edits(
            r.request_headers.as_ref(),
            &format!("{key}.request_headers"),
            c,
        ),
        response_headers: header_edits(
            r.response_headers.as_ref(),
            &format!("{key}.response_headers"),
            c,
        ),
        access: super::access::route(r.access.as_ref(), &key, &pools.names, pools.broken, c),
        limits: super::limits::route_limits(r, &matcher, &key, c),
        matcher,
    })
}

/// Most specific first, file order between equals; a route that a route before it covers
/// entirely can never match, and is reported.
fn in_precedence_order(
    mut built: Vec<(RouteConfig, Range<usize>, usize)>,
    c: &mut Checker<'_>,
) -> Vec<RouteConfig> {
    // The sort is stable: file order stays between equals.
    built.sort_by_key(|b| std::cmp::Reverse(b.0.matcher.rank()));
    for j in 0..built.len() {
        if let Some(earlier) = (0..j).find(|&i| built[i].0.matcher.covers(&built[j].0.matcher)) {
            let (route, span, index) = &built[j];
            c.error(
                span.clone(),
                format!("routes[{index}]"),
                format!(
                    "route {:?} can never match: route {:?} (routes[{}]) takes every request it would take",
                    route.name, built[earlier].0.name, built[earlier].2
                ),
            );
        }
    }
    built.into_iter().map(|(route, _, _)| route).collect()
}

/// Exactly one of `pool`, `redirect` and `respond`, checked.
fn action(
    r: &RouteFile,
    key: &str,
    pools: &Pools<'_>,
    set_aside: &[String],
    span: Range<usize>,
    c: &mut Checker<'_>,
) -> Option<RouteAction> {
    let given = usize::from(r.pool.is_some())
        + usize::from(r.redirect.is_some())
        + usize::from(r.respond.is_some());
    if given != 1 {
        let already_reported = ["pool", "redirect", "respond"]
            .iter()
            .any(|k| set_aside.iter().any(|s| s == k));
        if !already_reported {
            c.error(
                span,
                key.to_owned(),
                "a route needs exactly one of pool, redirect or respond",
            );
        }
        return None;
    }
    if let Some(pool) = &r.pool {
        return forward(pool, key, pools, c);
    }
    if let Some(to) = &r.redirect {
        return redirect(to, key, c);
    }
    respond(r.respond.as_ref()?, key, c)
}

/// `pool = "NAME"`: a pool that exists.
fn forward(
    pool: &Spanned<Str>,
    key: &str,
    pools: &Pools<'_>,
    c: &mut Checker<'_>,
) -> Option<RouteAction> {
    let name = pool.get_ref().0.as_str();
    if pools.broken.iter().any(|b| b == name) {
        // The pool itself has errors, reported where it is defined.
        return None;
    }
    if !pools.names.contains(&name) {
        c.error_suggest(
            pool.span(),
            format!("{key}.pool"),
            format!("no pool named {name:?}"),
            name,
            &pools.names,
        );
        return None;
    }
    Some(RouteAction::Forward {
        pool: name.to_owned(),
    })
}

/// `redirect = { to, status }`: a redirect status.
fn redirect(
    redirect: &Spanned<RedirectFile>,
    key: &str,
    c: &mut Checker<'_>,
) -> Option<RouteAction> {
    let status = redirect.get_ref().status.unwrap_or(301);
    if ![301, 302, 303, 307, 308].contains(&status) {
        c.error(
            redirect.span(),
            format!("{key}.redirect.status"),
            "must be 301, 302, 303, 307 or 308",
        );
        return None;
    }
    Some(RouteAction::Redirect {
        to: redirect.get_ref().to.0.clone(),
        status: StatusCode::from_u16(status).ok()?,
    })
}

/// `respond = { status, body, content_type }`: a final status and a valid content type.
fn respond(respond: &Spanned<RespondFile>, key: &str, c: &mut Checker<'_>) -> Option<RouteAction> {
    let Some(status) = StatusCode::from_u16(respond.get_ref().status)
        .ok()
        .filter(|s| s.as_u16() >= 200)
    else {
        c.error(
            respond.span(),
            format!("{key}.respond.status"),
            "must be a status code from 200 to 999",
        );
        return None;
    };
    let content_type = respond
        .get_ref()
        .content_type
        .as_ref()
        .map_or("text/plain; charset=utf-8", |Str(s)| s.as_str());
    let Ok(content_type) = HeaderValue::from_str(content_type) else {
        c.error(
            respond.span(),
            format!("{key}.respond.content_type"),
            "is not a valid header value",
        );
        return None;
    };
    Some(RouteAction::Respond {
        status,
        body: Bytes::from(respond.get_ref().body.clone().unwrap_or_default().0),
        content_type,
    })
}

/// `strip_prefix` or `rewrite_prefix` (which replaces the matched `path_prefix`).
fn rewrite(r: &RouteFile, m: &RouteMatch, key: &str, c: &mut Checker<'_>) -> PathRewrite {
    match (&r.strip_prefix, &r.rewrite_prefix) {
        (Some(s), Some(_)) => {
            c.error(
                s.span(),
                format!("{key}.strip_prefix"),
                "use either strip_prefix or rewrite_prefix, not both",
            );
            PathRewrite::None
        }
        (Some(s), None) => {
            if valid_path(&s.get_ref().0) {
                PathRewrite::Strip(s.get_ref().0.clone())
            } else {
                c.error(s.span(), format!("{key}.strip_prefix"), "must start with /");
                PathRewrite::None
            }
        }
        (None, Some(w)) => match &m.path {
            PathMatch::Prefix(prefix) if valid_path(&w.get_ref().0) => PathRewrite::Replace {
                prefix: prefix.clone(),
                with: w.get_ref().0.clone(),
            },
            PathMatch::Prefix(_) => {
                c.error(
                    w.span(),
                    format!("{key}.rewrite_prefix"),
                    "must start with /",
                );
                PathRewrite::None
            }
            _ => {
                c.error(
                    w.span(),
                    format!("{key}.rewrite_prefix"),
                    "needs match.path_prefix (the prefix it replaces)",
                );
                PathRewrite::None
            }
        },
        (None, None) => PathRewrite::None,
    }
}
