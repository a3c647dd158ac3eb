use super::*;

const S1: &str = "1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0"; // s3cret

#[test]
fn key_file_lines_comments_and_roles() {
    let mut keys = ApiKeys::default();
    let text = format!(
        "# keys\n\nci sha256:{S1} deploy,read  # the CI\nops {} \n",
        SecretDigest::of(b"other")
    );
    keys.add_lines("keys.txt", &text).unwrap();
    assert_eq!(keys.keys().len(), 2);
    let ci = keys.find(b"s3cret").expect("ci");
    assert_eq!(&*ci.name, "ci");
    assert_eq!(ci.roles, ["deploy", "read"]);
    assert_eq!(keys.find(b"other").map(|k| &*k.name), Some("ops"));
    assert!(keys.find(b"s3cre").is_none());
    assert!(keys.find(b"").is_none());
}

#[test]
fn key_file_errors_name_the_line() {
    let cases = [
        ("ci", "keys.txt:1: expected `NAME sha256:HEX [role,role]`"),
        ("ci md5:abc", "keys.txt:1: the hash must be"),
        ("\nci sha256:abc", "keys.txt:2: the hash must be"),
        ("c i sha256:x", "keys.txt:1: the hash must be"),
        ("c/i sha256:{S1}", "keys.txt:1: key name \"c/i\""),
        ("ci sha256:{S1} a b", "keys.txt:1: too many fields"),
        ("ci sha256:{S1} a,,b", "keys.txt:1: role \"\""),
        (
            "ci sha256:{S1}\nci sha256:{S1}",
            "keys.txt:2: key name \"ci\" is used twice",
        ),
    ];
    for (text, want) in cases {
        let text = text.replace("{S1}", S1);
        let err = ApiKeys::default().add_lines("keys.txt", &text).unwrap_err();
        assert!(err.starts_with(want), "{text:?}: {err}");
        assert!(!err.contains(S1), "the digest is not echoed: {err}");
    }
}

#[test]
fn digests_parse_print_and_compare() {
    let d = SecretDigest::parse(&format!("sha256:{S1}")).unwrap();
    assert_eq!(d.to_string(), format!("sha256:{S1}"));
    assert_eq!(d, SecretDigest::of(b"s3cret"));
    assert!(d.matches(b"s3cret"));
    assert!(!d.matches(b"s3cret "));
    assert_eq!(format!("{d:?}"), "SecretDigest(..)");
    assert!(SecretDigest::parse(&format!("sha256:{}", &S1[..63])).is_err());
    assert!(SecretDigest::parse(&format!("sha256:{}g", &S1[..63])).is_err());
    assert_eq!(
        key_line("ci", b"s3cret", &["a".into(), "b".into()]),
        format!("ci sha256:{S1} a,b")
    );
}

#[test]
fn key_sources_and_realm() {
    assert_eq!("bearer".parse::<KeySource>(), Ok(KeySource::Bearer));
    assert_eq!(
        "header:X-Api-Key".parse::<KeySource>(),
        Ok(KeySource::Header(HeaderName::from_static("x-api-key")))
    );
    assert_eq!(
        "query:api_key".parse::<KeySource>(),
        Ok(KeySource::Query("api_key".into()))
    );
    assert!("cookie:k".parse::<KeySource>().is_err());
    assert!("header:bad name".parse::<KeySource>().is_err());
    assert_eq!(
        AccessConfig::challenge_for("api").unwrap(),
        "Bearer realm=\"api\""
    );
    assert!(AccessConfig::challenge_for("a\"b").is_err());
}
