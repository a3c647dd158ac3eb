//! `switchyard check` and reloads refuse limits that make no sense, naming file, line and
//! key: negative or unparsable sizes, empty or invalid method and media type lists, unknown
//! presets and values.

use std::path::Path;

use switchyard::config::validate::from_text;

/// Each nonsense limit, and the key and line `switchyard check` must name.
#[test]
fn check_rejects_nonsense_limits_naming_file_line_and_key() {
    let pool = "[pools.web]\nbackends = [\"http://127.0.0.1:8080\"]\n";
    let route = |extra: &str| format!("{pool}[[routes]]\npool = \"web\"\n{extra}\n");
    let cases: Vec<(String, &str)> = vec![
        (
            route("max_body_size = \"-1MiB\""),
            "routes[0].max_body_size",
        ),
        (route("max_body_size = -5"), "routes[0].max_body_size"),
        (
            route("max_body_size = \"ten megs\""),
            "routes[0].max_body_size",
        ),
        (route("allowed_methods = []"), "routes[0].allowed_methods"),
        (
            route("allowed_methods = [\"GE T\"]"),
            "routes[0].allowed_methods",
        ),
        (
            route("allowed_content_types = [\"json\"]"),
            "routes[0].allowed_content_types",
        ),
        (
            route("security_headers = \"strict\""),
            "routes[0].security_headers",
        ),
        (
            route("security_headers = { preset = \"strict\" }"),
            "routes[0].security_headers.preset",
        ),
        (
            route("security_headers = { nosniff = true }"),
            "routes[0].security_headers",
        ),
        (
            format!("{pool}[limits]\nover_connection_limit = \"drop\"\n"),
            "limits.over_connection_limit",
        ),
        (
            format!("{pool}[limits]\nmax_uri_length = 0\n"),
            "limits.max_uri_length",
        ),
        (
            format!("{pool}max_body_size = \"1.5GB\"\n"),
            "pools.web.max_body_size",
        ),
    ];
    for (text, key) in &cases {
        let err = match from_text(Path::new("check.toml"), text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("check.toml:"), "{err}");
        assert!(err.contains(key), "expected {key} in: {err}");
    }
    // A zero-byte limit (no limit) and sizes in every unit are fine.
    let ok =
        route("max_body_size = 0\nallowed_methods = [\"put\"]\nsecurity_headers = \"recommended\"");
    from_text(Path::new("check.toml"), &ok).expect("valid");
    println!(
        "{} nonsense limits rejected with file, line and key",
        cases.len()
    );
}
