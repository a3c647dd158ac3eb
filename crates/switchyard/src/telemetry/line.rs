//! The access log's text line, written straight to standard error rather than through a
//! `tracing` event: the same characters [`super::text::TextLines`] writes for the event.
//!
//! Measured reason (callgrind, 22,500 proxied requests, one worker): the event cost about
//! 6,300 instructions per line, a fifth of a whole proxied request. Its `%` fields (method,
//! path, client address) each go through `core::fmt` behind two `dyn Write`s, and every
//! field through `tracing`'s dispatch; written here, the line costs about 2,000, most of
//! it the `write` to standard error. `tracing` has no way to hand a formatter a field's text
//! without that formatting, hence the hand-written line.
//!
//! Used only where the text format writes to a file or pipe ([`enable`], from
//! [`super::init`]); a terminal (colours) and the JSON format keep the event. Whether a line
//! is wanted is still asked of `tracing` ([`super::AccessLog::enabled`]), so `RUST_LOG`
//! decides as before.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use super::text::{digits, float, quoted, timestamp};
use super::AccessLog;

/// Set once the subscriber writes text lines to a non-terminal standard error.
static DIRECT: AtomicBool = AtomicBool::new(false);

/// Access lines are written here from now on.
pub(super) fn enable() {
    DIRECT.store(true, Ordering::Relaxed);
}

/// True when access lines are written here rather than as `tracing` events.
pub(super) fn direct() -> bool {
    DIRECT.load(Ordering::Relaxed)
}

thread_local! {
    /// The line being written, kept between lines so its allocation is made once per thread.
    static LINE: RefCell<String> = RefCell::new(String::with_capacity(256));
}

/// What goes on one line besides the [`AccessLog`] itself.
pub(super) struct Line<'a> {
    pub backend: &'a str,
    pub duration_ms: f64,
    pub bytes: u64,
    pub complete: bool,
}

/// Writes `log`'s line to standard error, in one `write` as the `tracing` layer does.
pub(super) fn write(log: &AccessLog, line: &Line<'_>) {
    LINE.with(|buf| {
        let Ok(mut buf) = buf.try_borrow_mut() else {
            return;
        };
        buf.clear();
        if format(&mut buf, log, line, SystemTime::now()).is_ok() {
            // As the `tracing` layer: a log that cannot be written is not the request's
            // failure.
            let _ = std::io::stderr().write_all(buf.as_bytes());
        }
    });
}

/// The line, as [`super::text::TextLines`] formats the event [`AccessLog::write`] would
/// emit: `TIMESTAMP LEVEL message name=value ...`, fields in the event's order, `%` fields
/// bare, strings quoted.
pub(super) fn format(
    out: &mut String,
    log: &AccessLog,
    line: &Line<'_>,
    now: SystemTime,
) -> fmt::Result {
    timestamp(out, now)?;
    let failed = log.error.as_deref();
    out.push_str(if failed.is_some() {
        " WARN request failed"
    } else {
        " INFO request"
    });
    out.push_str(" method=");
    out.push_str(log.method.as_str());
    out.push_str(" path=");
    out.push_str(log.uri.path());
    number(out, " status=", u64::from(log.status));
    out.push_str(" backend=");
    match failed {
        Some(_) => out.push_str(line.backend),
        None => quoted(out, line.backend)?,
    }
    number(out, " attempts=", u64::from(log.attempts));
    out.push_str(" duration_ms=");
    float(out, line.duration_ms)?;
    number(out, " bytes=", line.bytes);
    out.push_str(if line.complete {
        " complete=true"
    } else {
        " complete=false"
    });
    out.push_str(" client=");
    ip(out, log.client.ip())?;
    match failed {
        Some(error) => {
            out.push_str(" error=");
            out.push_str(error);
        }
        None => {
            out.push_str(" api_key=");
            quoted(out, log.api_key.as_deref().unwrap_or("-"))?;
            out.push_str(" jwt_sub=");
            quoted(out, log.jwt_sub.as_deref().unwrap_or("-"))?;
        }
    }
    out.push('\n');
    Ok(())
}

fn number(out: &mut String, name: &str, n: u64) {
    out.push_str(name);
    out.push_str(digits(n, &mut [0; 20]));
}

/// An address as its `Display` form writes it (an IPv4 one by hand: the common case).
fn ip(out: &mut String, ip: IpAddr) -> fmt::Result {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(digits(u64::from(octet), &mut [0; 20]));
            }
            Ok(())
        }
        IpAddr::V6(v6) => write!(out, "{v6}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tracing_subscriber::prelude::*;

    use super::super::text::tests::Sink;

    fn log(
        client: &str,
        error: Option<&str>,
        api_key: Option<&str>,
        jwt_sub: Option<&str>,
    ) -> AccessLog {
        AccessLog {
            method: http::Method::PATCH,
            uri: "/a/b%20c?q=1".parse().unwrap_or_default(),
            client: client
                .parse()
                .unwrap_or_else(|_| ([127, 0, 0, 1], 1).into()),
            status: 503,
            backend: None,
            attempts: 2,
            start: tokio::time::Instant::now(),
            error: error.map(str::to_owned),
            api_key: api_key.map(Arc::from),
            jwt_sub: jwt_sub.map(Arc::from),
        }
    }

    /// The event [`AccessLog::write`] emits, through the text format, without its timestamp.
    fn as_event(log: &AccessLog, line: &Line<'_>) -> String {
        let out = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = out.clone();
        let layer = tracing_subscriber::fmt::layer()
            .event_format(super::super::text::TextLines::new())
            .with_writer(move || Sink(sink.clone()));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || log.event(line));
        let text = out.lock().map(|v| v.clone()).unwrap_or_default();
        let text = String::from_utf8(text).unwrap_or_default();
        text.split_once(' ')
            .map_or(String::new(), |(_, rest)| rest.to_owned())
    }

    #[test]
    fn lines_are_the_events() {
        let cases = [
            log("127.0.0.1:4000", None, None, None),
            log(
                "10.200.3.45:1",
                None,
                Some("ci-deploy"),
                Some("user \"7\" caf\u{e9}"),
            ),
            log("[2001:db8::1]:443", None, None, Some("tab\there")),
            log(
                "[::ffff:10.0.0.1]:80",
                Some("connect: refused \"x\"\n"),
                None,
                None,
            ),
            log("192.168.0.255:9", Some(""), Some("k"), None),
        ];
        let lines = [
            Line {
                backend: "http://127.0.0.1:1",
                duration_ms: 0.123,
                bytes: 0,
                complete: true,
            },
            Line {
                backend: "-",
                duration_ms: 12.0,
                bytes: 1 << 40,
                complete: false,
            },
            Line {
                backend: "b\\ack",
                duration_ms: 1e-7,
                bytes: 35,
                complete: true,
            },
            Line {
                backend: "web-1",
                duration_ms: 999_999_999.999,
                bytes: 7,
                complete: false,
            },
            Line {
                backend: "",
                duration_ms: f64::NAN,
                bytes: u64::MAX,
                complete: true,
            },
        ];
        for (log, line) in cases.iter().zip(&lines) {
            let now = SystemTime::UNIX_EPOCH + Duration::from_micros(1_796_169_126_000_042);
            let mut ours = String::new();
            format(&mut ours, log, line, now).unwrap_or_default();
            assert!(ours.starts_with("2026-12-01T23:52:06.000042Z "), "{ours}");
            let ours = ours.split_once(' ').map_or("", |(_, rest)| rest);
            assert_eq!(ours, as_event(log, line));
        }
    }
}
