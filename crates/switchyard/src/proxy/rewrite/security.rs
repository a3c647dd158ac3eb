//! A route's security headers on its responses (`security_headers`): headers the response
//! lacks are added (`X-Content-Type-Options`, `X-Frame-Options`, a CSP `frame-ancestors`
//! when the response has no CSP of its own, `Referrer-Policy`, and over TLS only
//! `Strict-Transport-Security`), and the backend's `Server` and `X-Powered-By` are removed.
//! What the backend set itself is kept; the route's `response_headers` edits come after
//! and win.

use http::header::{
    CONTENT_SECURITY_POLICY, REFERRER_POLICY, SERVER, STRICT_TRANSPORT_SECURITY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::SecurityHeaders;

const X_POWERED_BY: HeaderName = HeaderName::from_static("x-powered-by");

/// Applies `security` (when the route has any) to `headers`; `tls`: the client's connection
/// is encrypted.
pub fn apply(security: Option<&SecurityHeaders>, headers: &mut HeaderMap, tls: bool) {
    let Some(s) = security else {
        return;
    };
    if s.hide_server {
        headers.remove(SERVER);
        headers.remove(X_POWERED_BY);
    }
    let mut add = |name: HeaderName, value: &Option<HeaderValue>| {
        if let Some(value) = value {
            headers.entry(name).or_insert_with(|| value.clone());
        }
    };
    add(X_CONTENT_TYPE_OPTIONS, &s.content_type_options);
    add(X_FRAME_OPTIONS, &s.frame_options);
    add(REFERRER_POLICY, &s.referrer_policy);
    add(CONTENT_SECURITY_POLICY, &s.frame_ancestors);
    if tls {
        add(STRICT_TRANSPORT_SECURITY, &s.hsts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_what_is_missing_keeps_what_the_backend_set_and_hsts_only_over_tls() {
        let preset = SecurityHeaders::recommended();
        let mut headers = HeaderMap::new();
        headers.insert(SERVER, HeaderValue::from_static("nginx/1.2"));
        headers.insert(X_POWERED_BY, HeaderValue::from_static("PHP/5"));
        headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        apply(Some(&preset), &mut headers, false);
        assert!(headers.get(SERVER).is_none());
        assert!(headers.get(X_POWERED_BY).is_none());
        assert_eq!(
            headers[X_FRAME_OPTIONS], "DENY",
            "the backend's own is kept"
        );
        assert_eq!(headers[X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[CONTENT_SECURITY_POLICY], "frame-ancestors 'self'");
        assert!(
            headers.get(STRICT_TRANSPORT_SECURITY).is_none(),
            "plaintext"
        );
        apply(Some(&preset), &mut headers, true);
        assert_eq!(headers[STRICT_TRANSPORT_SECURITY], "max-age=31536000");
    }
}
