//! JWT bearer tokens on the request: finding the token where `[access.jwt] token_source`
//! says (`Authorization: Bearer` by default, a header or a cookie), verifying it
//! (`jsonwebtoken`: signature with a key of the algorithm the token's header names and, when
//! the header has a `kid`, that `kid`; then `exp`, `nbf`, `iss`, `aud`), checking the route's
//! claims, and passing claims to the backend as headers.
//!
//! A missing token is a `401` with the plain challenge; a token that does not verify a `401`
//! with `error="invalid_token"` (RFC 6750, section 3.1); a valid token without the route's
//! claims a `403`. The token itself is never logged: refusals carry only a reason.
//!
//! Keys are tried only for the token's own algorithm, so `alg: none` (which names none) and
//! a token signed with HS256 over an RSA public key (algorithm confusion) find no key.

use std::sync::Arc;

use http::header::{HeaderValue, AUTHORIZATION, COOKIE};
use http::request::Parts;
use jsonwebtoken::errors::ErrorKind;
use serde_json::{Map, Value};

use super::{AuthFailure, Denial};
use crate::config::auth::bearer_token;
use crate::config::jwt::{JwtConfig, RouteJwt, TokenSource};
use crate::proxy::error::ProxyError;

/// Who a verified token says the client is: its subject and its claims. Kept in the request
/// context (`RequestCtx.jwt`) for the access log and for limits that key on a claim.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtIdentity {
    /// The `sub` claim, when it is a string.
    pub subject: Option<Arc<str>>,
    /// Every claim of the token (shared with the provider's cache of verified tokens).
    pub claims: Arc<Map<String, Value>>,
}

/// Why a token was refused (`401`; the route's claims missing are a [`Denial`], `403`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwtFailure {
    /// No token where the source looks.
    #[error("no JWT")]
    Missing,
    /// Not a JWT that can be read (`alg: none` included: it names no algorithm switchyard
    /// knows).
    #[error("malformed JWT")]
    Malformed,
    /// Its algorithm is not one of the configured keys'.
    #[error("JWT algorithm not accepted")]
    Algorithm,
    /// No key of its algorithm has its `kid`.
    #[error("JWT key id unknown")]
    UnknownKey,
    /// No key of its algorithm verifies its signature.
    #[error("JWT signature invalid")]
    BadSignature,
    /// `exp` is past (beyond the leeway).
    #[error("JWT expired")]
    Expired,
    /// `nbf` is ahead (beyond the leeway).
    #[error("JWT not yet valid")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("JWT issuer not accepted")]
    Issuer,
    /// `aud` names none of the configured audiences.
    #[error("JWT audience not accepted")]
    Audience,
    /// `exp`, or a configured `iss` or `aud`, is missing.
    #[error("JWT lacks a required claim")]
    MissingClaim,
}

/// The index of the `claims` reason (a `403`) in `metrics::JWT_REFUSALS`.
pub const CLAIMS_REFUSAL: usize = 10;

// === impl JwtFailure ===

impl JwtFailure {
    /// Its index in `metrics::JWT_REFUSALS` (and `ProxyCounters::jwt_refused`).
    pub fn index(self) -> usize {
        self as usize
    }
}

// === impl JwtIdentity ===

impl JwtIdentity {
    /// The claim `name` when it is a string (`sub`, `email`, a tenant id...).
    pub fn claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name)?.as_str()
    }
}

impl crate::ratelimit::keyed::Claims for JwtIdentity {
    fn claim(&self, name: &str) -> Option<&str> {
        JwtIdentity::claim(self, name)
    }
}

/// The route's token requirement on this request: the identity, or why it may not pass.
/// Client-sent copies of the route's claim headers are removed first, then the claims the
/// route passes on are written; with `jwt_forward = false` the token is removed.
pub fn check(
    provider: &JwtConfig,
    needs: &RouteJwt,
    parts: &mut Parts,
) -> Result<JwtIdentity, ProxyError> {
    for (_, header) in &needs.headers {
        parts.headers.remove(header);
    }
    let unauthenticated = |failure, challenge: &HeaderValue| ProxyError::Unauthenticated {
        reason: AuthFailure::Jwt(failure),
        challenge: challenge.clone(),
    };
    let Some(token) = presented(&provider.source, parts) else {
        return Err(unauthenticated(JwtFailure::Missing, &provider.challenge));
    };
    let claims = verified(provider, token)
        .map_err(|failure| unauthenticated(failure, &provider.invalid_challenge))?;
    if let Some(rule) = needs.claims.iter().find(|r| !r.holds(claims.get(&r.name))) {
        return Err(ProxyError::Forbidden(Denial::JwtClaim {
            claim: rule.name.clone(),
        }));
    }
    for (claim, header) in &needs.headers {
        if let Some(value) = claims.get(claim).and_then(header_value) {
            parts.headers.insert(header.clone(), value);
        }
    }
    if !needs.forward {
        strip(&provider.source, parts);
    }
    let subject = claims.get("sub").and_then(Value::as_str).map(Arc::from);
    Ok(JwtIdentity { subject, claims })
}

/// The claims of `token`: from the provider's cache when it verified before and is still
/// within its `exp` and `nbf`, else verified now (and kept if it passes).
fn verified(provider: &JwtConfig, token: &str) -> Result<Arc<Map<String, Value>>, JwtFailure> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let leeway = provider.leeway.as_secs();
    if let Some(claims) = provider.cache.get(token, now, leeway) {
        return Ok(claims);
    }
    let claims = Arc::new(verify(provider, token)?);
    provider.cache.put(token, &claims, now, leeway);
    Ok(claims)
}

/// The claims of `token` once it verifies with one of `provider`'s keys.
pub fn verify(provider: &JwtConfig, token: &str) -> Result<Map<String, Value>, JwtFailure> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| JwtFailure::Malformed)?;
    let validation = provider
        .validation(header.alg)
        .ok_or(JwtFailure::Algorithm)?;
    let candidates = provider.keys.iter().filter(|k| {
        k.alg == header.alg && (k.kid.is_none() || header.kid.is_none() || k.kid == header.kid)
    });
    let mut failure = JwtFailure::UnknownKey;
    for key in candidates {
        match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation) {
            Ok(data) => return Ok(data.claims),
            Err(e) => match failure_of(e.kind()) {
                // Another key of the same algorithm may be the one.
                JwtFailure::BadSignature => failure = JwtFailure::BadSignature,
                other => return Err(other),
            },
        }
    }
    Err(failure)
}

fn failure_of(kind: &ErrorKind) -> JwtFailure {
    match kind {
        ErrorKind::ExpiredSignature => JwtFailure::Expired,
        ErrorKind::ImmatureSignature => JwtFailure::NotYetValid,
        ErrorKind::InvalidIssuer => JwtFailure::Issuer,
        ErrorKind::InvalidAudience => JwtFailure::Audience,
        ErrorKind::MissingRequiredClaim(_) => JwtFailure::MissingClaim,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => JwtFailure::Algorithm,
        ErrorKind::InvalidSignature
        | ErrorKind::Crypto(_)
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::RsaFailedSigning => JwtFailure::BadSignature,
        _ => JwtFailure::Malformed,
    }
}

/// A claim as a header value: a string as it is, a number or boolean as JSON writes it, an
/// array of those joined with `,`; nothing for objects, `null` or bytes no header may hold.
fn header_value(claim: &Value) -> Option<HeaderValue> {
    let text = match claim {
        Value::String(s) => s.clone(),
        Value::Number(_) | Value::Bool(_) => claim.to_string(),
        Value::Array(items) => {
            let parts: Option<Vec<String>> = items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(_) | Value::Bool(_) => Some(v.to_string()),
                    _ => None,
                })
                .collect();
            parts?.join(",")
        }
        Value::Null | Value::Object(_) => return None,
    };
    HeaderValue::from_str(&text).ok()
}

/// The token the request carries, from `source`.
fn presented<'p>(source: &TokenSource, parts: &'p Parts) -> Option<&'p str> {
    let bytes = match source {
        TokenSource::Bearer => parts
            .headers
            .get_all(AUTHORIZATION)
            .iter()
            .find_map(bearer_token)?,
        TokenSource::Header(name) => parts.headers.get(name)?.as_bytes().trim_ascii(),
        TokenSource::Cookie(name) => parts
            .headers
            .get_all(COOKIE)
            .iter()
            .find_map(|v| cookie(v.as_bytes(), name))?,
    };
    let token = std::str::from_utf8(bytes).ok()?;
    (!token.is_empty()).then_some(token)
}

/// The value of cookie `name` in a `Cookie` header's value.
fn cookie<'v>(value: &'v [u8], name: &str) -> Option<&'v [u8]> {
    value.split(|b| *b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let rest = pair.strip_prefix(name.as_bytes())?;
        rest.strip_prefix(b"=")
    })
}

/// Removes the token from where `source` found it (`jwt_forward = false`): the Bearer
/// `Authorization` (another scheme stays), the header, or the one cookie.
fn strip(source: &TokenSource, parts: &mut Parts) {
    let (name, kept): (_, Vec<HeaderValue>) = match source {
        TokenSource::Header(name) => {
            parts.headers.remove(name);
            return;
        }
        TokenSource::Bearer => {
            let all = parts.headers.get_all(AUTHORIZATION).iter();
            let kept = all.filter(|v| bearer_token(v).is_none()).cloned();
            (AUTHORIZATION, kept.collect())
        }
        TokenSource::Cookie(cookie_name) => {
            let all = parts.headers.get_all(COOKIE).iter();
            let kept = all.filter_map(|v| without_cookie(v.as_bytes(), cookie_name));
            (COOKIE, kept.collect())
        }
    };
    parts.headers.remove(&name);
    for v in kept {
        parts.headers.append(&name, v);
    }
}

/// A `Cookie` value without cookie `name`; `None` when nothing is left.
fn without_cookie(value: &[u8], name: &str) -> Option<HeaderValue> {
    let kept: Vec<&[u8]> = value
        .split(|b| *b == b';')
        .map(<[u8]>::trim_ascii)
        .filter(|pair| {
            !pair.is_empty()
                && pair
                    .strip_prefix(name.as_bytes())
                    .is_none_or(|rest| !rest.starts_with(b"="))
        })
        .collect();
    if kept.is_empty() {
        return None;
    }
    HeaderValue::from_bytes(&kept.join(&b"; "[..])).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::JWT_REFUSALS;

    #[test]
    fn failure_indexes_name_the_metrics_reasons() {
        assert_eq!(JWT_REFUSALS[JwtFailure::Missing.index()], "missing");
        assert_eq!(JWT_REFUSALS[JwtFailure::Malformed.index()], "malformed");
        assert_eq!(JWT_REFUSALS[JwtFailure::Algorithm.index()], "algorithm");
        assert_eq!(JWT_REFUSALS[JwtFailure::UnknownKey.index()], "unknown_key");
        assert_eq!(
            JWT_REFUSALS[JwtFailure::BadSignature.index()],
            "bad_signature"
        );
        assert_eq!(JWT_REFUSALS[JwtFailure::Expired.index()], "expired");
        assert_eq!(
            JWT_REFUSALS[JwtFailure::NotYetValid.index()],
            "not_yet_valid"
        );
        assert_eq!(JWT_REFUSALS[JwtFailure::Issuer.index()], "issuer");
        assert_eq!(JWT_REFUSALS[JwtFailure::Audience.index()], "audience");
        assert_eq!(
            JWT_REFUSALS[JwtFailure::MissingClaim.index()],
            "missing_claim"
        );
        assert_eq!(JWT_REFUSALS[CLAIMS_REFUSAL], "claims");
    }

    #[test]
    fn cookies_are_found_and_removed_alone() {
        assert_eq!(cookie(b"a=1; jwt=tok; b=2", "jwt"), Some(&b"tok"[..]));
        assert_eq!(cookie(b"jwtx=1", "jwt"), None);
        let v = without_cookie(b"a=1; jwt=tok; jwtx=2", "jwt").expect("two left");
        assert_eq!(v, "a=1; jwtx=2");
        assert_eq!(without_cookie(b"jwt=tok", "jwt"), None);
    }

    #[test]
    fn claims_become_header_values() {
        let v = |j: &str| header_value(&serde_json::from_str(j).expect("json"));
        assert_eq!(v("\"ada\"").expect("string"), "ada");
        assert_eq!(v("42").expect("number"), "42");
        assert_eq!(v("[\"a\",\"b\"]").expect("array"), "a,b");
        assert_eq!(v("{\"a\":1}"), None);
        assert_eq!(v("\"line\\nbreak\""), None);
    }
}
