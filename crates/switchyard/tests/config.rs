//! The configuration file: the examples load, every kind of mistake is reported where it is
//! (line, column, key, message, "did you mean"), all mistakes of a file at once, `switchyard
//! check`, command-line flags over the file, and `${VAR}` interpolation.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use support::{backend, url_for, Client, TestProxy};
use switchyard::cli::Cli;
use switchyard::config::validate::from_text;
use switchyard::config::{ConfigError, RouteAction};
use switchyard::Config;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// A pool that is valid on its own (lines 1 and 2 of the files that start with it).
const POOL: &str = "[pools.web]\nbackends = [\"http://127.0.0.1:8080\"]\n";

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    from_text(Path::new("test.toml"), text)
}

fn parse_err(text: &str) -> ConfigError {
    match parse(text) {
        Ok(_) => panic!("expected an invalid configuration:\n{text}"),
        Err(e) => e,
    }
}

fn parse_ok(text: &str) -> Config {
    parse(text).unwrap_or_else(|e| panic!("expected a valid configuration:\n{text}\n{e}"))
}

/// A file under the temporary directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(text: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "switchyard-config-test-{}-{n}.toml",
            std::process::id()
        ));
        std::fs::write(&path, text).expect("write temporary config");
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("UTF-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn run_binary(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .env("SWITCHYARD_ALLOW_ROOT", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run switchyard")
}

fn cli(args: &[&str]) -> Cli {
    Cli::try_parse_args(
        std::iter::once("switchyard")
            .chain(args.iter().copied())
            .map(String::from),
    )
    .unwrap_or_else(|e| panic!("flags {args:?}: {e}"))
}

// === examples ===

#[test]
fn every_example_loads() {
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(examples_dir()).expect("examples dir") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).expect("read example");
        if text.contains("${STATUS_BACKEND}") {
            // Needs the environment; see `maintenance_example_needs_status_backend`.
            let text = text.replace("${STATUS_BACKEND}", "http://127.0.0.1:8080");
            from_text(&path, &text).unwrap_or_else(|e| panic!("{name}:\n{e}"));
        } else {
            let config = Config::load(&path).unwrap_or_else(|e| panic!("{name}:\n{e}"));
            assert_eq!(config.source.as_ref().map(|s| s.path.clone()), Some(path));
        }
        seen.push(name);
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "api-keys.toml",
            "client-rate-limits.toml",
            "forward-auth.toml",
            "host-and-path-routing.toml",
            "jwt.toml",
            "maintenance-redirect.toml",
            "single-pool.toml"
        ]
    );
}

#[test]
fn single_pool_example_has_the_files_values() {
    let config = Config::load(&examples_dir().join("single-pool.toml")).expect("load");
    assert_eq!(config.listeners.len(), 1);
    assert_eq!(config.listeners[0].addr.to_string(), ":3000");
    assert_eq!(config.listeners[0].read_timeout, Duration::from_secs(5));
    assert_eq!(config.listeners[0].write_timeout, Duration::from_secs(10));
    assert_eq!(config.rate_limit.requests, 100);
    let pool = config.pool("web").expect("pool web");
    assert_eq!(pool.backends.len(), 2);
    assert_eq!(pool.retries, 2);
    assert_eq!(pool.timeout, Duration::from_secs(10));
    assert_eq!(pool.breaker.failure_threshold, 5);
    // One pool and no routes: one catch-all route to it.
    assert_eq!(config.routes.len(), 1);
    assert_eq!(
        config.routes[0].action,
        RouteAction::Forward { pool: "web".into() }
    );
}

#[test]
fn host_and_path_example_routes_in_precedence_order() {
    let config = Config::load(&examples_dir().join("host-and-path-routing.toml")).expect("load");
    let names: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
    // Exact host, then wildcard host, then path prefix, then the catch-all.
    assert_eq!(names, ["api-host", "wildcard-tenants", "api-path", "web"]);
    assert_eq!(
        config.admin.listen.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:9901")
    );
    let api = config.pool("api").expect("pool api");
    assert_eq!(
        api.backends.iter().map(|b| b.weight).collect::<Vec<_>>(),
        [1, 2]
    );
    let api_path = &config.routes[2];
    assert_eq!(api_path.rate_limit.map(|r| r.requests), Some(50));
}

#[test]
fn maintenance_example_needs_status_backend() {
    let path = examples_dir().join("maintenance-redirect.toml");
    assert!(
        std::env::var_os("STATUS_BACKEND").is_none(),
        "this test expects STATUS_BACKEND to be unset in its environment"
    );
    let err = Config::load(&path).expect_err("STATUS_BACKEND is not set");
    assert_eq!(err.errors.len(), 1, "{err}");
    let e = &err.errors[0];
    assert_eq!(e.line, 9, "{err}");
    assert_eq!(e.problem.key.as_deref(), Some("pools.status.backends[0]"));
    assert_eq!(
        e.problem.message,
        "environment variable STATUS_BACKEND is not set"
    );
    assert!(e.source_line.contains("${STATUS_BACKEND}"), "{err}");

    // With the variable's value substituted, the file is valid.
    let text = std::fs::read_to_string(&path).expect("read example");
    let text = text.replace("${STATUS_BACKEND}", "http://127.0.0.1:8089");
    let config = from_text(&path, &text).unwrap_or_else(|e| panic!("{e}"));
    let status = config.pool("status").expect("pool status");
    assert_eq!(status.backends[0].url.to_string(), "http://127.0.0.1:8089");
    let names: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["to-https", "status", "maintenance"]);
    match &config.routes[0].action {
        RouteAction::Redirect { to, status } => {
            assert_eq!(to, "https://{host}{uri}");
            assert_eq!(status.as_u16(), 308);
        }
        other => panic!("to-https is {other:?}"),
    }
}

// === bad configurations ===

/// One expected error: line, column, key, a substring of the message, suggestion.
type Expected = (
    usize,
    usize,
    Option<&'static str>,
    &'static str,
    Option<&'static str>,
);

fn check_case(name: &str, text: &str, expected: &[Expected]) -> Result<(), String> {
    let err = match parse(text) {
        Ok(_) => return Err(format!("{name}: accepted\n{text}")),
        Err(e) => e,
    };
    let got: Vec<String> = err
        .errors
        .iter()
        .map(|e| {
            format!(
                "({}, {}, {:?}, {:?}, {:?})",
                e.line, e.column, e.problem.key, e.problem.message, e.problem.suggestion
            )
        })
        .collect();
    let fail = |why: String| {
        Err(format!(
            "{name}: {why}\n--- text:\n{text}--- got:\n{}",
            got.join("\n")
        ))
    };
    if err.errors.len() != expected.len() {
        return fail(format!(
            "{} errors, expected {}",
            err.errors.len(),
            expected.len()
        ));
    }
    for (i, (e, want)) in err.errors.iter().zip(expected).enumerate() {
        let (line, column, key, message, suggestion) = *want;
        let suggestion = suggestion.map(|s| format!("did you mean `{s}`?"));
        if e.line != line
            || e.column != column
            || e.problem.key.as_deref() != key
            || !e.problem.message.contains(message)
            || e.problem.suggestion != suggestion
        {
            return fail(format!(
                "error {i}: expected ({line}, {column}, {key:?}, ~{message:?}, {suggestion:?})"
            ));
        }
        // The quoted line is the line the error points at.
        let quoted = text.lines().nth(line - 1).unwrap_or_default();
        if e.source_line != quoted {
            return fail(format!("error {i}: quotes {:?}", e.source_line));
        }
    }
    Ok(())
}

fn route(body: &str) -> String {
    format!("{POOL}\n[[routes]]\n{body}")
}

#[test]
fn bad_configurations_are_located_and_explained() {
    let cases: Vec<(&str, String, Vec<Expected>)> = vec![
        (
            "a key after a table belongs to the table",
            format!("{POOL}worker = 2\n"),
            // `worker = 2` after the table belongs to the pool.
            vec![(3, 1, Some("pools.web.worker"), "unknown key `worker`", None)],
        ),
        (
            "unknown top-level key before any table",
            format!("worker = 2\n{POOL}"),
            vec![(1, 1, Some("worker"), "unknown key `worker`", Some("workers"))],
        ),
        (
            "unknown top-level table",
            "[pool.web]\nbackends = [\"http://127.0.0.1:8080\"]\n[pools.web]\nbackends = [\"http://127.0.0.1:8080\"]\n".into(),
            vec![(1, 2, Some("pool"), "unknown key `pool`", Some("pools"))],
        ),
        (
            "unknown key in a pool",
            format!("{POOL}retires = 2\n"),
            vec![(3, 1, Some("pools.web.retires"), "unknown key `retires`", Some("retries"))],
        ),
        (
            "unknown key with no close match lists the expected keys",
            format!("{POOL}zzzzzz = 1\n"),
            vec![(
                3,
                1,
                Some("pools.web.zzzzzz"),
                "unknown key `zzzzzz` (expected one of: backends, policy, retries, connect_timeout, timeout, circuit_breaker, max_idle_connections, idle_timeout, hash_key, health_check, outlier_detection, retry, request_timeout, max_connections, queue_timeout, slow_start, panic_mode, protocol, max_streams_per_connection, tls, max_body_size)",
                None,
            )],
        ),
        (
            "unknown key in a route",
            route("pool = \"web\"\nstrip_prefx = \"/api\"\n"),
            vec![(6, 1, Some("routes[0].strip_prefx"), "unknown key `strip_prefx`", Some("strip_prefix"))],
        ),
        (
            "unknown key in a route's match",
            route("pool = \"web\"\nmatch = { hst = \"a.example.com\" }\n"),
            vec![(6, 11, Some("routes[0].match.hst"), "unknown key `hst`", Some("host"))],
        ),
        (
            "syntax error: unclosed string",
            format!("{POOL}policy = \"round_robin\nretries = 1\n"),
            vec![(3, 22, None, "invalid basic string", None)],
        ),
        (
            "wrong type",
            format!("{POOL}retries = \"x\"\n"),
            vec![(3, 11, Some("pools.web.retries"), "invalid type: string \"x\", expected u32", None)],
        ),
        (
            "duration without unit",
            format!("{POOL}timeout = \"5\"\n"),
            vec![(3, 11, Some("pools.web.timeout"), "missing unit in duration \"5\"", None)],
        ),
        (
            "duration that is not one",
            format!("{POOL}timeout = \"soon\"\n"),
            vec![(3, 11, Some("pools.web.timeout"), "invalid duration \"soon\"", None)],
        ),
        (
            "zero timeout",
            format!("{POOL}timeout = \"0s\"\n"),
            vec![(3, 11, Some("pools.web.timeout"), "must be greater than 0", None)],
        ),
        (
            "zero read_timeout",
            format!("[[listeners]]\naddress = \":8000\"\nread_timeout = \"0s\"\n\n{POOL}"),
            vec![(3, 16, Some("listeners[0].read_timeout"), "must be greater than 0", None)],
        ),
        (
            "backend URL with a bad scheme",
            "[pools.web]\nbackends = [\"htp://x\"]\n".into(),
            vec![(2, 13, Some("pools.web.backends[0]"), "\"htp://x\" scheme \"htp\" is not supported", None)],
        ),
        (
            "backend URL without scheme",
            "[pools.web]\nbackends = [\"localhost:80\"]\n".into(),
            vec![(2, 13, Some("pools.web.backends[0]"), "\"localhost:80\" is not a URL of the form http://host:port", None)],
        ),
        (
            "empty pool",
            "[pools.web]\nbackends = []\n".into(),
            vec![(2, 12, Some("pools.web.backends"), "a pool needs at least one backend", None)],
        ),
        (
            "duplicate backend",
            "[pools.web]\nbackends = [\n  \"http://127.0.0.1:8080\",\n  { url = \"http://127.0.0.1:8080/\", weight = 2 },\n]\n".into(),
            vec![(4, 3, Some("pools.web.backends[1]"), "backend http://127.0.0.1:8080 is listed twice", None)],
        ),
        (
            "zero weight",
            "[pools.web]\nbackends = [{ url = \"http://127.0.0.1:8080\", weight = 0 }]\n".into(),
            vec![(2, 13, Some("pools.web.backends[0].weight"), "must be at least 1", None)],
        ),
        (
            "duplicate listener address",
            format!("[[listeners]]\naddress = \"127.0.0.1:8000\"\n\n[[listeners]]\naddress = \"127.0.0.1:8000\"\n\n{POOL}"),
            vec![(5, 11, Some("listeners[1].address"), "duplicate listener address 127.0.0.1:8000 (also listeners[0])", None)],
        ),
        (
            "listener on every interface overlaps one on loopback",
            format!("[[listeners]]\naddress = \":8000\"\n\n[[listeners]]\naddress = \"127.0.0.1:8000\"\n\n{POOL}"),
            vec![(5, 11, Some("listeners[1].address"), "duplicate listener address 127.0.0.1:8000", None)],
        ),
        (
            "bad listener address",
            format!("[[listeners]]\naddress = \"127.0.0.1:99999\"\n\n{POOL}"),
            vec![(2, 11, Some("listeners[0].address"), "port \"99999\" is not a number from 0 to 65535", None)],
        ),
        (
            "route to an unknown pool",
            "[pools.backend]\nbackends = [\"http://127.0.0.1:8080\"]\n\n[[routes]]\npool = \"backnd\"\n".into(),
            vec![(5, 8, Some("routes[0].pool"), "no pool named \"backnd\"", Some("backend"))],
        ),
        (
            "route to an unknown pool, nothing close",
            route("pool = \"zzz\"\n"),
            vec![(5, 8, Some("routes[0].pool"), "no pool named \"zzz\"", None)],
        ),
        (
            "route with both pool and respond",
            route("pool = \"web\"\nrespond = { status = 200 }\n"),
            vec![(4, 1, Some("routes[0]"), "a route needs exactly one of pool, redirect or respond", None)],
        ),
        (
            "route with no action",
            route("name = \"nothing\"\n"),
            vec![(4, 1, Some("routes[0]"), "a route needs exactly one of pool, redirect or respond", None)],
        ),
        (
            "path_prefix not starting with /",
            route("pool = \"web\"\nmatch = { path_prefix = \"api\" }\n"),
            vec![(6, 25, Some("routes[0].match.path_prefix"), "must start with /", None)],
        ),
        (
            "path and path_prefix",
            route("pool = \"web\"\nmatch = { path = \"/a\", path_prefix = \"/b\" }\n"),
            vec![(6, 18, Some("routes[0].match.path"), "use either path or path_prefix, not both", None)],
        ),
        (
            "shadowed route",
            route("name = \"first\"\npool = \"web\"\nmatch = { path_prefix = \"/api\" }\n\n[[routes]]\nname = \"second\"\nrespond = { status = 410 }\nmatch = { path_prefix = \"/api\", methods = [] }\n"),
            vec![(9, 1, Some("routes[1]"), "route \"second\" can never match: route \"first\" (routes[0]) takes every request it would take", None)],
        ),
        (
            "route after a catch-all that covers it on the same host",
            route("name = \"any\"\npool = \"web\"\nmatch = { host = \"a.example.com\" }\n\n[[routes]]\nname = \"same\"\npool = \"web\"\nmatch = { host = \"A.example.com\" }\n"),
            vec![(9, 1, Some("routes[1]"), "route \"same\" can never match: route \"any\" (routes[0])", None)],
        ),
        (
            "redirect with status 200",
            route("redirect = { to = \"https://x\", status = 200 }\n"),
            vec![(5, 12, Some("routes[0].redirect.status"), "must be 301, 302, 303, 307 or 308", None)],
        ),
        (
            "respond with status 99",
            route("respond = { status = 99 }\n"),
            vec![(5, 11, Some("routes[0].respond.status"), "must be a status code from 200 to 999", None)],
        ),
        (
            "wildcard host with two stars",
            route("pool = \"web\"\nmatch = { host = \"*.*.com\" }\n"),
            vec![(6, 18, Some("routes[0].match.host"), "\"*.*.com\" is not a valid wildcard host", None)],
        ),
        (
            "host with a space",
            route("pool = \"web\"\nmatch = { host = \"a b\" }\n"),
            vec![(6, 18, Some("routes[0].match.host"), "\"a b\" is not a host name", None)],
        ),
        (
            "host with a port",
            route("pool = \"web\"\nmatch = { host = \"a.example.com:80\" }\n"),
            vec![(6, 18, Some("routes[0].match.host"), "without port", None)],
        ),
        (
            "invalid method",
            route("pool = \"web\"\nmatch = { methods = [\"GET\", \"GE T\"] }\n"),
            vec![(6, 29, Some("routes[0].match.methods"), "\"GE T\" is not a method", None)],
        ),
        (
            "CONNECT is not a method a route can take",
            route("pool = \"web\"\nmatch = { methods = [\"CONNECT\"] }\n"),
            vec![(6, 22, Some("routes[0].match.methods"), "\"CONNECT\" is not a method", None)],
        ),
        (
            "invalid header name in request_headers",
            route("pool = \"web\"\nrequest_headers = { set = { \"bad header\" = \"x\" } }\n"),
            vec![(6, 29, Some("routes[0].request_headers.set.bad header"), "is not a valid header name", None)],
        ),
        (
            "invalid header name to remove",
            route("pool = \"web\"\nresponse_headers = { remove = [\"x(y)\"] }\n"),
            vec![(6, 32, Some("routes[0].response_headers.remove"), "\"x(y)\" is not a valid header name", None)],
        ),
        (
            "invalid header value in a match",
            route("pool = \"web\"\nmatch = { headers = { x-a = \"line\\nbreak\" } }\n"),
            vec![(6, 29, Some("routes[0].match.headers.x-a"), "is not a valid header value", None)],
        ),
        (
            "rewrite_prefix without path_prefix",
            route("pool = \"web\"\nrewrite_prefix = \"/new\"\n"),
            vec![(6, 18, Some("routes[0].rewrite_prefix"), "needs match.path_prefix (the prefix it replaces)", None)],
        ),
        (
            "strip_prefix and rewrite_prefix",
            route("pool = \"web\"\nmatch = { path_prefix = \"/a\" }\nstrip_prefix = \"/a\"\nrewrite_prefix = \"/b\"\n"),
            vec![(7, 16, Some("routes[0].strip_prefix"), "use either strip_prefix or rewrite_prefix, not both", None)],
        ),
        (
            "duplicate route name",
            route("name = \"r\"\npool = \"web\"\nmatch = { path = \"/a\" }\n\n[[routes]]\nname = \"r\"\npool = \"web\"\n"),
            vec![(9, 1, Some("routes[1].name"), "route name \"r\" is used twice", None)],
        ),
        (
            "several pools and no routes",
            format!("{POOL}\n[pools.api]\nbackends = [\"http://127.0.0.1:8081\"]\n"),
            vec![(1, 1, Some("routes"), "several pools but no routes", None)],
        ),
        (
            "no pools at all",
            "workers = 2\n".into(),
            vec![(1, 1, Some("pools"), "no pools: add a [pools.NAME] table with backends", None)],
        ),
        (
            "missing environment variable",
            "[pools.web]\nbackends = [\"${SWITCHYARD_TEST_SURELY_UNSET_VAR}\"]\n".into(),
            vec![(2, 13, Some("pools.web.backends[0]"), "environment variable SWITCHYARD_TEST_SURELY_UNSET_VAR is not set", None)],
        ),
        (
            "admin.listen equal to a proxy listener",
            format!("[[listeners]]\naddress = \"127.0.0.1:8000\"\n\n[admin]\nlisten = \"127.0.0.1:8000\"\n\n{POOL}"),
            vec![(5, 10, Some("admin.listen"), "127.0.0.1:8000 is also a proxy listener's address", None)],
        ),
        (
            "admin.listen on a port every interface already has",
            format!("[[listeners]]\naddress = \":8000\"\n\n[admin]\nlisten = \"127.0.0.1:8000\"\n\n{POOL}"),
            vec![(5, 10, Some("admin.listen"), "is also a proxy listener's address", None)],
        ),
        (
            "health_path equal to metrics_path",
            format!("{POOL}\n[admin]\nhealth_path = \"/x\"\nmetrics_path = \"/x\"\n"),
            vec![(6, 16, Some("admin.metrics_path"), "is the same as admin.health_path", None)],
        ),
        (
            "admin path without /",
            format!("{POOL}\n[admin]\nhealth_path = \"health\"\n"),
            vec![(5, 15, Some("admin.health_path"), "must be a path starting with /", None)],
        ),
        (
            "unknown log format",
            format!("log_format = \"jsn\"\n{POOL}"),
            vec![(1, 14, Some("log_format"), "unknown log format \"jsn\"", Some("json"))],
        ),
        (
            "unknown policy",
            format!("{POOL}policy = \"round_robn\"\n"),
            vec![(3, 10, Some("pools.web.policy"), "unknown policy \"round_robn\"", Some("round_robin"))],
        ),
    ];
    assert!(cases.len() >= 15);
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(name, text, expected)| check_case(name, text, expected).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// `[admin] health_path = "/metrics"` collides with the default metrics path; the error
/// should point at the line that was written, not at the top of the file.
#[test]

fn health_path_equal_to_default_metrics_path_is_located() {
    let text = format!("{POOL}\n[admin]\nhealth_path = \"/metrics\"\n");
    let err = parse_err(&text);
    assert_eq!(err.errors.len(), 1, "{err}");
    let e = &err.errors[0];
    assert!(
        e.problem.message.contains("same as"),
        "{}",
        e.problem.message
    );
    assert_eq!((e.line, e.column), (5, 15), "{err}");
}

/// A letter pair swapped is the commonest typo; in a short name it is two edits in
/// Levenshtein distance, more than `suggest` allows for words under six letters.
#[test]

fn swapped_letters_get_a_suggestion() {
    let err = parse_err(&route(
        "pool = \"web\"\nmatch = { hots = \"a.example.com\" }\n",
    ));
    assert_eq!(
        err.errors[0].problem.suggestion.as_deref(),
        Some("did you mean `host`?"),
        "{err}"
    );
    let err = parse_err(&route("pool = \"wbe\"\n"));
    assert_eq!(
        err.errors[0].problem.suggestion.as_deref(),
        Some("did you mean `web`?"),
        "{err}"
    );
}

/// A section missing a required key is located at its header, but the error has no key
/// path, so the text does not say which pool (listener, ...) it is about.
#[test]

fn missing_required_key_names_its_section() {
    let err = parse_err(&format!(
        "{POOL}\n[pools.api]\nretries = 1\n\n[[routes]]\npool = \"web\"\n"
    ));
    assert_eq!(err.errors.len(), 1, "{err}");
    let e = &err.errors[0];
    assert_eq!((e.line, e.column), (4, 1), "{err}");
    assert!(
        e.problem.message.contains("missing field `backends`"),
        "{err}"
    );
    assert_eq!(e.problem.key.as_deref(), Some("pools.api"), "{err}");
}

/// A route whose `respond` table is broken has an action; it should not also be told it
/// has none.
#[test]

fn broken_respond_is_reported_once() {
    let err = parse_err(&route("respond = { body = \"x\" }\n"));
    let got: Vec<String> = err
        .errors
        .iter()
        .map(|e| e.problem.message.clone())
        .collect();
    assert_eq!(got, ["missing field `status`"], "{err}");
    assert_eq!(
        err.errors[0].problem.key.as_deref(),
        Some("routes[0].respond")
    );
}

#[test]
fn every_error_of_a_file_is_reported_in_file_order() {
    let text = "\
worker = 2

[[listeners]]
address = \"127.0.0.1:99999\"
read_timeout = \"soon\"

[pools.api]
backends = [\"htp://x\"]
retires = 3

[pools.web]
backends = [\"http://127.0.0.1:8080\", \"http://127.0.0.1:8080\"]

[[routes]]
pool = \"ap\"
match = { path_prefix = \"api\", methods = [\"GE T\"] }

[[routes]]
redirect = { to = \"https://x\", status = 200 }
";
    let err = parse_err(text);
    let got: Vec<(usize, usize, Option<&str>)> = err
        .errors
        .iter()
        .map(|e| (e.line, e.column, e.problem.key.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            (1, 1, Some("worker")),
            (4, 11, Some("listeners[0].address")),
            (5, 16, Some("listeners[0].read_timeout")),
            (8, 13, Some("pools.api.backends[0]")),
            (9, 1, Some("pools.api.retires")),
            (12, 38, Some("pools.web.backends[1]")),
            (15, 8, Some("routes[0].pool")),
            (16, 25, Some("routes[0].match.path_prefix")),
            (16, 43, Some("routes[0].match.methods")),
            (19, 12, Some("routes[1].redirect.status")),
        ],
        "{err}"
    );
    let shown = err.to_string();
    for line in [
        "test.toml:1:1: worker: unknown key `worker` (did you mean `workers`?)",
        "test.toml:4:11: listeners[0].address: \"127.0.0.1:99999\" port \"99999\" is not a number from 0 to 65535",
        "test.toml:5:16: listeners[0].read_timeout: invalid duration \"soon\"",
        "test.toml:9:1: pools.api.retires: unknown key `retires` (did you mean `retries`?)",
        "test.toml:12:38: pools.web.backends[1]: backend http://127.0.0.1:8080 is listed twice",
        "test.toml:15:8: routes[0].pool: no pool named \"ap\" (did you mean `api`?)",
        "test.toml:19:12: routes[1].redirect.status: must be 301, 302, 303, 307 or 308",
    ] {
        assert!(shown.contains(line), "missing {line:?} in:\n{shown}");
    }
    // The offending line is quoted under each error, with a caret under the column.
    assert!(shown.contains("9 | retires = 3"), "{shown}");
    assert!(shown.contains("  |        ^"), "{shown}");
    assert!(
        shown.ends_with("\n10 errors in test.toml"),
        "does not end with the count:\n{shown}"
    );
    // Errors come in file order in the text too.
    let positions: Vec<usize> = err
        .errors
        .iter()
        .map(|e| {
            let head = format!("test.toml:{}:{}: ", e.line, e.column);
            shown
                .find(&head)
                .unwrap_or_else(|| panic!("{head} not in {shown}"))
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
}

#[test]
fn one_error_is_shown_without_a_count() {
    let err = parse_err(&format!("{POOL}retires = 2\n"));
    let shown = err.to_string();
    assert!(
        shown.starts_with(
            "test.toml:3:1: pools.web.retires: unknown key `retires` (did you mean `retries`?)"
        ),
        "{shown}"
    );
    assert!(!shown.contains("errors in"), "{shown}");
}

// === switchyard check ===

#[test]
fn check_accepts_a_valid_file() {
    let file = TempFile::new(&format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n\n{POOL}\n[[routes]]\npool = \"web\"\n"
    ));
    let out = run_binary(&["check", "--config", file.path()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout {stdout}\nstderr {stderr}"
    );
    assert!(stdout.contains("OK"), "{stdout}");
    assert!(stdout.contains(file.path()), "{stdout}");
    assert!(
        stdout.contains("1 listener(s), 1 pool(s), 1 route(s)"),
        "{stdout}"
    );
}

#[test]
fn check_accepts_the_single_pool_example() {
    let path = examples_dir().join("single-pool.toml");
    let out = run_binary(&["check", "--config", path.to_str().expect("UTF-8 path")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK"));
}

#[test]
fn check_rejects_an_invalid_file_with_every_error() {
    let file = TempFile::new(&format!(
        "{POOL}retires = 2\ntimeout = \"5\"\n\n[[routes]]\npool = \"wbe\"\n"
    ));
    let out = run_binary(&["check", "--config", file.path()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout {stdout}\nstderr {stderr}"
    );
    assert!(!stdout.contains("OK"), "{stdout}");
    let path = file.path();
    for line in [
        format!("{path}:3:1: pools.web.retires: unknown key `retires` (did you mean `retries`?)"),
        format!("{path}:4:11: pools.web.timeout: missing unit in duration \"5\""),
        format!("{path}:7:8: routes[0].pool: no pool named \"wbe\""),
        format!("3 errors in {path}"),
    ] {
        assert!(stderr.contains(&line), "missing {line:?} in:\n{stderr}");
    }
}

#[test]
fn check_of_a_missing_file_fails() {
    let path = std::env::temp_dir().join(format!(
        "switchyard-config-test-{}-missing.toml",
        std::process::id()
    ));
    let out = run_binary(&["check", "--config", path.to_str().expect("UTF-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot read"), "{stderr}");
}

// === flags over the file ===

#[tokio::test]
async fn flags_override_only_what_they_name() {
    let one = backend("one").await;
    let file = TempFile::new(&format!(
        "workers = 1\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\nread_timeout = \"7s\"\n\n[rate_limit]\nrequests = 50\nwindow = \"30s\"\n\n[pools.web]\nbackends = [\"{}\"]\nretries = 7\n",
        url_for(&one)
    ));
    let cli = cli(&["--config", file.path(), "--rate-limit", "3"]);
    let config = cli.load_config().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.rate_limit.requests, 3, "the flag wins");
    assert_eq!(
        config.rate_limit.window,
        Duration::from_secs(30),
        "the file's window stays"
    );
    assert_eq!(config.pools[0].retries, 7, "the file's retries stay");
    assert_eq!(config.listeners[0].read_timeout, Duration::from_secs(7));
    assert_eq!(config.workers, 1);

    // And the running proxy limits at 3.
    let proxy = TestProxy::start(config);
    let mut client = Client::connect(proxy.addr).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(client.get("/").await.status);
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    assert_eq!(one.requests(), 3);
    proxy.stop().await;
}

#[test]
fn go_style_flags_override_the_file_too() {
    let file = TempFile::new(&format!(
        "{POOL}retries = 7\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\n"
    ));
    let config = cli(&[
        "-config",
        file.path(),
        "-retries=1",
        "-listen=127.0.0.1:4567",
    ])
    .load_config()
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.pools[0].retries, 1);
    assert_eq!(config.listeners[0].addr.to_string(), "127.0.0.1:4567");
}

#[test]
fn backends_flag_replaces_the_only_pools_backends() {
    let file = TempFile::new(POOL);
    let config = cli(&[
        "--config",
        file.path(),
        "--backends",
        "http://127.0.0.1:9001,http://127.0.0.1:9002",
    ])
    .load_config()
    .unwrap_or_else(|e| panic!("{e}"));
    let urls: Vec<String> = config.pools[0]
        .backends
        .iter()
        .map(|b| b.url.to_string())
        .collect();
    assert_eq!(urls, ["http://127.0.0.1:9001", "http://127.0.0.1:9002"]);
}

#[test]
fn backends_flag_with_two_pools_is_an_error_naming_it() {
    let text = format!(
        "{POOL}\n[pools.api]\nbackends = [\"http://127.0.0.1:8081\"]\n\n[[routes]]\npool = \"web\"\n"
    );
    let file = TempFile::new(&text);
    let err = cli(&[
        "--config",
        file.path(),
        "--backends",
        "http://127.0.0.1:9001",
    ])
    .load_config()
    .expect_err("--backends with two pools");
    let shown = err.to_string();
    assert!(shown.contains("--backends"), "{shown}");
    assert!(shown.contains("2 pools"), "{shown}");

    // The binary says the same and does not start.
    let out = run_binary(&[
        "check",
        "--config",
        file.path(),
        "--backends",
        "http://127.0.0.1:9001",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--backends"), "{stderr}");
}

// === ${VAR} ===

#[test]
fn environment_variables_are_interpolated() {
    let (name, value) = ["PATH", "HOME", "CARGO_MANIFEST_DIR"]
        .iter()
        .find_map(|n| std::env::var(n).ok().map(|v| (*n, v)))
        .expect("one of PATH, HOME, CARGO_MANIFEST_DIR is set");
    let text = format!(
        "{POOL}\n[[routes]]\nname = \"env\"\nrespond = {{ status = 200, body = \"[${{{name}}}] $${{{name}}}\" }}\n"
    );
    let config = parse_ok(&text);
    match &config.routes[0].action {
        RouteAction::Respond { body, .. } => {
            assert_eq!(
                String::from_utf8_lossy(body),
                format!("[{value}] ${{{name}}}")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn interpolation_errors_are_located() {
    let err = parse_err("[pools.web]\nbackends = [\"http://${BAD-NAME}:80\"]\n");
    assert_eq!(err.errors.len(), 1, "{err}");
    let e = &err.errors[0];
    assert_eq!((e.line, e.column), (2, 13));
    assert!(
        e.problem
            .message
            .contains("invalid environment variable name \"BAD-NAME\""),
        "{}",
        e.problem.message
    );
}
