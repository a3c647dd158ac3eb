//! What the request path tells the audit log ([`crate::telemetry::audit`]): each refusal
//! that is a security event, in the audit log's words. Called from `respond_error`, where
//! every refusal passes once, and after an admin answer; with the audit log off, a branch.

use std::net::IpAddr;
use std::sync::Arc;

use http::StatusCode;

use super::auth::{AuthFailure, Denial};
use super::error::ProxyError;
use super::limits::Refused;
use crate::metrics;
use crate::telemetry::audit::{AuditLog, Hit, Kind};
use crate::upstream;

/// The name audit lines give a key that matches none (or no key at all).
pub const UNKNOWN_KEY: &str = "unknown";
/// The `key` of a JWT refusal (the reason is its `detail`).
pub const JWT: &str = "jwt";
/// The `key` of a refusal by a route's forward auth service.
pub const FORWARD_AUTH: &str = "forward_auth";

/// Records `err` for `client` if it is a security event. Connections refused at a
/// listener's limits are recorded when they are accepted (`server::worker`), not again for
/// each request answered `503` on them.
#[inline]
pub fn refused(audit: Option<&AuditLog>, client: IpAddr, err: &ProxyError) {
    if let Some(audit) = audit {
        if let Some(hit) = hit(client, err) {
            audit.hit(hit);
        }
    }
}

/// Records an answer of the metrics endpoint: with a valid token (or none needed), or `401`.
pub fn admin(audit: Option<&AuditLog>, client: IpAddr, status: StatusCode) {
    if let Some(audit) = audit {
        let kind = if status == StatusCode::UNAUTHORIZED {
            Kind::AdminDenied
        } else {
            Kind::AdminAccess
        };
        audit.hit(Hit {
            client,
            kind,
            key: None,
            detail: Some("metrics"),
        });
    }
}

fn hit(client: IpAddr, err: &ProxyError) -> Option<Hit> {
    let (kind, key, detail): (Kind, Option<Arc<str>>, Option<&'static str>) = match err {
        ProxyError::Unauthenticated { reason, .. } => match reason {
            AuthFailure::MissingKey => {
                (Kind::AuthFailure, Some(UNKNOWN_KEY.into()), Some("missing"))
            }
            AuthFailure::UnknownKey => {
                (Kind::AuthFailure, Some(UNKNOWN_KEY.into()), Some("unknown"))
            }
            // A token is never named (it is the secret); its reason is.
            AuthFailure::Jwt(why) => (
                Kind::AuthFailure,
                Some(JWT.into()),
                metrics::JWT_REFUSALS.get(why.index()).copied(),
            ),
        },
        ProxyError::Forbidden(Denial::Address { .. }) => (Kind::IpDenied, None, None),
        ProxyError::Forbidden(Denial::MissingRole { key }) => {
            (Kind::RoleMissing, Some(key.clone()), None)
        }
        ProxyError::Forbidden(Denial::JwtClaim { .. }) => {
            (Kind::RoleMissing, Some(JWT.into()), Some("claims"))
        }
        ProxyError::ForwardAuthDenied(_) => {
            (Kind::AuthFailure, Some(FORWARD_AUTH.into()), Some("denied"))
        }
        ProxyError::RateLimited { .. } => (Kind::RateLimited, None, None),
        ProxyError::Limit(r) => match r {
            Refused::BodyTooLarge { .. } => (Kind::BodyTooLarge, None, Some("declared")),
            Refused::UriTooLong { .. } => (Kind::UriTooLong, None, None),
            Refused::Method { .. } => (Kind::MethodNotAllowed, None, None),
            Refused::ContentType => (Kind::UnsupportedMediaType, None, None),
            Refused::ClientBusy => (Kind::ClientBusy, None, None),
            Refused::Connections => return None,
        },
        ProxyError::Upstream(upstream::Error::ClientBodyTooLarge { .. }) => {
            (Kind::BodyTooLarge, None, Some("streamed"))
        }
        _ => return None,
    };
    Some(Hit {
        client,
        kind,
        key,
        detail,
    })
}
