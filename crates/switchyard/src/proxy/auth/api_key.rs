//! API keys on the request: finding the presented secret where the configured sources say
//! (`Authorization: Bearer`, a header, a query parameter), matching it against the known
//! keys (hashed, compared in constant time: `config::auth::ApiKeys::find`), and removing
//! every credential those sources carry so that no backend and no log line sees one.
//!
//! A query parameter's value is percent-decoded (`%2B` → `+`); a `+` stays a `+`, as
//! RFC 3986 has it (form encoding's `+` for a space would break base64 secrets).

use std::borrow::Cow;

use http::header::{HeaderValue, AUTHORIZATION};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::Uri;

use super::AuthFailure;
pub use crate::config::auth::bearer_token;
use crate::config::auth::{ApiKey, KeySource};
use crate::config::AccessConfig;

/// What [`take`] found.
#[derive(Debug)]
pub struct Found<'a> {
    /// The key and its index among the known keys, or why there is none.
    pub key: Result<(usize, &'a ApiKey), AuthFailure>,
    /// The request's query lost a parameter (the access log's target must follow).
    pub query_changed: bool,
}

/// Finds the request's key (the first source, in configured order, that carries a secret)
/// and removes every configured source's credential from `parts`.
pub fn take<'a>(access: &'a AccessConfig, parts: &mut Parts) -> Found<'a> {
    let key = match presented(&access.key_sources, parts) {
        None => Err(AuthFailure::MissingKey),
        Some(secret) => access
            .keys
            .position(&secret)
            .map(|i| (i, &access.keys.keys()[i]))
            .ok_or(AuthFailure::UnknownKey),
    };
    let query_changed = strip(&access.key_sources, parts);
    Found { key, query_changed }
}

/// The secret the request presents, from the first source that has one.
fn presented<'p>(sources: &[KeySource], parts: &'p Parts) -> Option<Cow<'p, [u8]>> {
    sources.iter().find_map(|source| match source {
        KeySource::Bearer => parts
            .headers
            .get_all(AUTHORIZATION)
            .iter()
            .find_map(bearer_token)
            .map(Cow::Borrowed),
        KeySource::Header(name) => parts
            .headers
            .get(name)
            .map(|v| v.as_bytes().trim_ascii())
            .filter(|v| !v.is_empty())
            .map(Cow::Borrowed),
        KeySource::Query(name) => query_value(parts.uri.query()?, name),
    })
}

/// The decoded value of the first `name=` parameter of `query`.
fn query_value<'q>(query: &'q str, name: &str) -> Option<Cow<'q, [u8]>> {
    let value = query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))?;
    if value.is_empty() {
        return None;
    }
    Some(percent_decode(value.as_bytes()))
}

fn percent_decode(raw: &[u8]) -> Cow<'_, [u8]> {
    if !raw.contains(&b'%') {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = raw
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (raw[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

/// Removes what every source carries: a Bearer `Authorization` (another scheme, meant for
/// the backend, stays), the key headers, the key parameters. True when the query changed.
fn strip(sources: &[KeySource], parts: &mut Parts) -> bool {
    let mut query_changed = false;
    for source in sources {
        match source {
            KeySource::Bearer => {
                let bearer = parts
                    .headers
                    .get_all(AUTHORIZATION)
                    .iter()
                    .any(|v| bearer_token(v).is_some());
                if bearer {
                    let others: Vec<HeaderValue> = parts
                        .headers
                        .get_all(AUTHORIZATION)
                        .iter()
                        .filter(|v| bearer_token(v).is_none())
                        .cloned()
                        .collect();
                    parts.headers.remove(AUTHORIZATION);
                    for v in others {
                        parts.headers.append(AUTHORIZATION, v);
                    }
                }
            }
            KeySource::Header(name) => {
                parts.headers.remove(name);
            }
            KeySource::Query(name) => query_changed |= strip_query(&mut parts.uri, name),
        }
    }
    query_changed
}

/// Removes every `name=...` (and a bare `name`) parameter from `uri`'s query.
fn strip_query(uri: &mut Uri, name: &str) -> bool {
    let Some(query) = uri.query() else {
        return false;
    };
    let is_key =
        |pair: &&str| *pair == name || pair.strip_prefix(name).is_some_and(|r| r.starts_with('='));
    if !query.split('&').any(|p| is_key(&p)) {
        return false;
    }
    let kept: Vec<&str> = query.split('&').filter(|p| !is_key(p)).collect();
    let target = if kept.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    let mut parts = uri.clone().into_parts();
    // Pieces of a valid target make a valid target.
    let Ok(pq) = PathAndQuery::try_from(target) else {
        return false;
    };
    parts.path_and_query = Some(pq);
    match Uri::from_parts(parts) {
        Ok(new) => {
            *uri = new;
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut req = http::Request::get(uri);
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn bearer_scheme_any_case_and_other_schemes_ignored() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(bearer_token(&v("Bearer abc")), Some(&b"abc"[..]));
        assert_eq!(bearer_token(&v("bearer  abc ")), Some(&b"abc"[..]));
        assert_eq!(bearer_token(&v("Basic YWxhZGRpbjo=")), None);
        assert_eq!(bearer_token(&v("Bearer ")), None);
        assert_eq!(bearer_token(&v("Bear")), None);
    }

    #[test]
    fn first_source_in_order_wins() {
        let sources = vec![
            KeySource::Query("api_key".into()),
            KeySource::Bearer,
            KeySource::Header(http::HeaderName::from_static("x-api-key")),
        ];
        let p = parts(
            "/a?x=1&api_key=q%2Bs+t",
            &[("authorization", "Bearer b"), ("x-api-key", "h")],
        );
        assert_eq!(presented(&sources, &p).as_deref(), Some(&b"q+s+t"[..]));
        let p = parts("/a?x=1", &[("x-api-key", " h ")]);
        assert_eq!(presented(&sources, &p).as_deref(), Some(&b"h"[..]));
        let p = parts("/a?api_key=", &[]);
        assert_eq!(presented(&sources, &p), None);
    }

    #[test]
    fn every_credential_is_stripped_and_the_rest_kept() {
        let sources = vec![
            KeySource::Bearer,
            KeySource::Header(http::HeaderName::from_static("x-api-key")),
            KeySource::Query("key".into()),
        ];
        let mut p = parts(
            "http://example.com/a/b?key=s&keep=1&keyring=2&key",
            &[
                ("authorization", "Bearer s"),
                ("authorization", "Basic Zm9v"),
                ("x-api-key", "s"),
            ],
        );
        assert!(strip(&sources, &mut p));
        assert_eq!(p.uri.to_string(), "http://example.com/a/b?keep=1&keyring=2");
        let auth: Vec<_> = p.headers.get_all(AUTHORIZATION).iter().collect();
        assert_eq!(auth, ["Basic Zm9v"]);
        assert!(!p.headers.contains_key("x-api-key"));
        let mut p = parts("/only?key=s", &[]);
        assert!(strip(&sources, &mut p));
        assert_eq!(p.uri.to_string(), "/only");
        let mut p = parts("/none?x=1", &[]);
        assert!(!strip(&sources, &mut p));
    }
}
