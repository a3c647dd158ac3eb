//! Route matching, precedence, coverage and rewriting.

use super::*;

#[test]
fn prefix_on_segment_boundaries() {
    assert!(prefix_matches("/api", "/api"));
    assert!(prefix_matches("/api", "/api/x"));
    assert!(!prefix_matches("/api", "/apix"));
    assert!(prefix_matches("/api/", "/api/x"));
    assert!(prefix_matches("/", "/anything"));
}

#[test]
fn wildcard_hosts() {
    let w = HostMatch::Wildcard(".example.com".into());
    assert!(w.matches("a.example.com"));
    assert!(w.matches("a.b.example.com"));
    assert!(!w.matches("example.com"));
    assert!(!w.matches("badexample.com"));
}

#[test]
fn rewrites() {
    let strip = PathRewrite::Strip("/api".into());
    assert_eq!(strip.apply("/api/users").as_deref(), Some("/users"));
    assert_eq!(strip.apply("/api").as_deref(), Some("/"));
    let replace = PathRewrite::Replace {
        prefix: "/old".into(),
        with: "/new".into(),
    };
    assert_eq!(replace.apply("/old/x").as_deref(), Some("/new/x"));
    assert_eq!(PathRewrite::None.apply("/x"), None);
    assert_eq!(strip.apply("/apix/y"), None, "segment boundary");
    let to_root = PathRewrite::Replace {
        prefix: "/to-root".into(),
        with: "/".into(),
    };
    assert_eq!(to_root.apply("/to-root/x").as_deref(), Some("/x"));
    assert_eq!(to_root.apply("/to-root").as_deref(), Some("/"));
    let slash = PathRewrite::Replace {
        prefix: "/old".into(),
        with: "/new/".into(),
    };
    assert_eq!(slash.apply("/old/x").as_deref(), Some("/new/x"));
}

#[test]
fn specificity_order() {
    let exact_host = RouteMatch {
        host: HostMatch::Exact("a.example.com".into()),
        ..RouteMatch::default()
    };
    let wildcard = RouteMatch {
        host: HostMatch::Wildcard(".example.com".into()),
        path: PathMatch::Prefix("/very/long/prefix".into()),
        ..RouteMatch::default()
    };
    let long_prefix = RouteMatch {
        path: PathMatch::Prefix("/api/v1".into()),
        ..RouteMatch::default()
    };
    let short_prefix = RouteMatch {
        path: PathMatch::Prefix("/api".into()),
        methods: vec![Method::GET],
        ..RouteMatch::default()
    };
    assert!(exact_host.rank() > wildcard.rank());
    assert!(wildcard.rank() > long_prefix.rank());
    assert!(long_prefix.rank() > short_prefix.rank());
    assert!(short_prefix.rank() > RouteMatch::default().rank());
}

#[test]
fn coverage() {
    let any = RouteMatch::default();
    let api = RouteMatch {
        path: PathMatch::Prefix("/api".into()),
        ..RouteMatch::default()
    };
    let api_get = RouteMatch {
        methods: vec![Method::GET],
        ..api.clone()
    };
    assert!(any.covers(&api));
    assert!(api.covers(&api_get));
    assert!(!api_get.covers(&api));
    assert!(!api.covers(&any));
}

#[test]
fn client_certificate_conditions() {
    let sans = vec!["spiffe://test/web".to_owned()];
    let san = ClientMatch::San("spiffe://test/web".into());
    assert!(san.matches(Some(&sans)));
    assert!(!san.matches(Some(&[])));
    assert!(!san.matches(None));
    assert!(ClientMatch::Certificate.matches(Some(&[])));
    assert!(!ClientMatch::Certificate.matches(None));
    assert!(ClientMatch::Any.matches(None));

    let with = |client| RouteMatch {
        client,
        ..RouteMatch::default()
    };
    let any = with(ClientMatch::Any);
    let cert = with(ClientMatch::Certificate);
    let web = with(san.clone());
    assert!(web.rank() > cert.rank() && cert.rank() > any.rank());
    assert!(any.covers(&web) && cert.covers(&web) && web.covers(&web));
    assert!(!web.covers(&cert) && !cert.covers(&any));
    assert!(!web.covers(&with(ClientMatch::San("spiffe://test/ops".into()))));
}
