//! Text log lines as tracing-subscriber's default format writes them without colours
//! (`TIMESTAMP LEVEL message name=value ...`), with the access log's lines written by hand.
//!
//! Measured reason (callgrind, 22,500 proxied requests): the default formatter took about
//! 16,500 instructions per access-log line (as much as nginx spends on a whole proxied
//! request): every field name and `=` goes through its colour styles even with colours off,
//! and the timestamp is formatted from scratch. This writes the same characters: the
//! timestamp's date and time of day once a second per thread, each field as the default
//! visitor does (`name=` then its `Debug` form, the message bare). Every other event, and
//! any event inside a span, goes to the default format unchanged.

use std::cell::Cell;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::ACCESS_TARGET;

/// The text event format: the default one (no target, no colours), access lines by hand.
#[derive(Debug)]
pub struct TextLines {
    default: Format<Full>,
}

impl TextLines {
    /// The format for a log that is not a terminal.
    pub fn new() -> Self {
        TextLines {
            default: Format::default().with_target(false).with_ansi(false),
        }
    }
}

impl Default for TextLines {
    fn default() -> Self {
        Self::new()
    }
}

impl<S, N> FormatEvent<S, N> for TextLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if event.metadata().target() != ACCESS_TARGET || ctx.event_scope().is_some() {
            return self.default.format_event(ctx, writer, event);
        }
        timestamp(&mut writer, SystemTime::now())?;
        writer.write_str(level(*event.metadata().level()))?;
        let mut fields = Fields {
            writer: &mut writer,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_char('\n')
    }
}

/// The level as the default format pads it, and the space after it.
fn level(level: Level) -> &'static str {
    match level {
        Level::TRACE => "TRACE ",
        Level::DEBUG => "DEBUG ",
        Level::INFO => " INFO ",
        Level::WARN => " WARN ",
        Level::ERROR => "ERROR ",
    }
}

/// Fields as the default visitor writes them, colours off.
struct Fields<'w, 'a> {
    writer: &'w mut Writer<'a>,
    first: bool,
    result: fmt::Result,
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.field(field, |w| w.write_str(value));
        } else {
            self.field(field, |w| quoted(w, value));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |w| w.write_str(digits(value, &mut [0; 20])));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |w| {
            if value < 0 {
                w.write_char('-')?;
            }
            w.write_str(digits(value.unsigned_abs(), &mut [0; 20]))
        });
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.field(field, |w| float(w, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, |w| write!(w, "{value:?}"));
    }
}

impl Fields<'_, '_> {
    /// One field: the space before it, `name=` (none for the message), then its value.
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let w = &mut *self.writer;
        self.result = (|| {
            if !std::mem::take(&mut self.first) {
                w.write_char(' ')?;
            }
            let name = field.name();
            if name != "message" {
                w.write_str(name.strip_prefix("r#").unwrap_or(name))?;
                w.write_char('=')?;
            }
            value(w)
        })();
    }
}

/// A string as its `Debug` form writes it.
pub(super) fn quoted(w: &mut impl fmt::Write, value: &str) -> fmt::Result {
    if value
        .bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
    {
        // Printable ASCII with nothing to escape: its `Debug` form is itself, quoted.
        w.write_char('"')?;
        w.write_str(value)?;
        w.write_char('"')
    } else {
        write!(w, "{value:?}")
    }
}

/// A float as its `Debug` form writes it.
pub(super) fn float(w: &mut impl fmt::Write, value: f64) -> fmt::Result {
    match millis(value) {
        // A number of thousandths (the access log's `duration_ms`): its `Debug` form is its
        // decimal digits, which core's general float formatting takes ~1,000 instructions to
        // find.
        Some(k) => {
            w.write_str(digits(k / 1000, &mut [0; 20]))?;
            w.write_char('.')?;
            let frac = k % 1000;
            if frac == 0 {
                return w.write_char('0');
            }
            let mut buf = [0; 20];
            let text = digits(1000 + frac, &mut buf);
            w.write_str(text[1..].trim_end_matches('0'))
        }
        None => write!(w, "{value:?}"),
    }
}

/// `value` as a whole number of thousandths, when it is exactly one (below a million
/// seconds, where no shorter decimal names the same float).
fn millis(value: f64) -> Option<u64> {
    if !(0.0..1e9).contains(&value) {
        return None;
    }
    let k = (value * 1000.0).round();
    (k / 1000.0 == value).then_some(k as u64)
}

/// The decimal digits of `n`, written into the end of `buf`.
pub(super) fn digits(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // ASCII digits only.
    std::str::from_utf8(&buf[at..]).unwrap_or("0")
}

thread_local! {
    /// The second last formatted on this thread, and its `YYYY-MM-DDTHH:MM:SS.`.
    static SECOND: Cell<(u64, [u8; 20])> = const { Cell::new((u64::MAX, [0; 20])) };
}

/// `2026-12-01T23:52:06.269905Z ` (UTC, microseconds), as the default format's timestamp.
pub(super) fn timestamp(w: &mut impl fmt::Write, now: SystemTime) -> fmt::Result {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let prefix = SECOND.with(|s| {
        let (cached, text) = s.get();
        if cached == secs {
            return text;
        }
        let text = date_time(secs);
        s.set((secs, text));
        text
    });
    // The prefix is ASCII digits and punctuation, written by `date_time`.
    w.write_str(std::str::from_utf8(&prefix).unwrap_or("1970-01-01T00:00:00."))?;
    // Six digits, zero-padded: the microsecond count plus a million, its first digit cut.
    let mut buf = [0; 20];
    let micros = digits(1_000_000 + u64::from(since.subsec_micros()), &mut buf);
    w.write_str(&micros[1..])?;
    w.write_str("Z ")
}

/// `YYYY-MM-DDTHH:MM:SS.` for seconds since the Unix epoch (proleptic Gregorian, UTC).
fn date_time(secs: u64) -> [u8; 20] {
    let days = secs / 86_400;
    let rest = secs % 86_400;
    let days = i64::try_from(days).unwrap_or(i64::MAX);
    let (year, month, day) = crate::clock::civil_from_days(days);
    let mut out = *b"0000-00-00T00:00:00.";
    let mut put = |at: usize, value: u64, width: usize| {
        let mut v = value;
        for i in (0..width).rev() {
            out[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    // Non-negative from the epoch on (`secs` is unsigned).
    let field = |v: i64| u64::try_from(v).unwrap_or(0);
    put(0, field(year % 10_000), 4);
    put(5, field(month), 2);
    put(8, field(day), 2);
    put(11, rest / 3600, 2);
    put(14, rest / 60 % 60, 2);
    put(17, rest % 60, 2);
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_match_known_instants() {
        assert_eq!(&date_time(0), b"1970-01-01T00:00:00.");
        assert_eq!(&date_time(951_782_400), b"2000-02-29T00:00:00.");
        assert_eq!(&date_time(1_796_169_126), b"2026-12-01T23:52:06.");
        assert_eq!(&date_time(4_107_542_399), b"2100-02-28T23:59:59.");
    }

    #[test]
    fn timestamps_match_the_default_formatter() {
        use tracing_subscriber::fmt::time::FormatTime;
        let now = SystemTime::now();
        let mut ours = String::new();
        timestamp(&mut Writer::new(&mut ours), now).unwrap();
        // The default formatter reads the clock itself: compare up to the second, and the
        // shape of the rest.
        let mut theirs = String::new();
        tracing_subscriber::fmt::time::SystemTime
            .format_time(&mut Writer::new(&mut theirs))
            .unwrap();
        assert_eq!(ours.len(), theirs.len() + 1, "{ours:?} vs {theirs:?}");
        assert_eq!(&ours[..10], &theirs[..10]);
        assert!(ours.ends_with("Z "));
        let later = now + Duration::from_micros(7);
        let mut again = String::new();
        timestamp(&mut Writer::new(&mut again), later).unwrap();
        assert_eq!(&again[..20], &ours[..20]);
    }

    /// The same events through the default format and through this one.
    fn both(emit: fn()) -> (String, String) {
        use std::sync::{Arc, Mutex};
        let run = |ours: bool| {
            let out = Arc::new(Mutex::new(Vec::<u8>::new()));
            let sink = out.clone();
            let layer = tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_ansi(false)
                .with_writer(move || Sink(sink.clone()));
            let subscriber = tracing_subscriber::registry();
            if ours {
                use tracing_subscriber::prelude::*;
                let s = subscriber.with(layer.event_format(TextLines::new()));
                tracing::subscriber::with_default(s, emit);
            } else {
                use tracing_subscriber::prelude::*;
                tracing::subscriber::with_default(subscriber.with(layer), emit);
            }
            let text = String::from_utf8(out.lock().map(|v| v.clone()).unwrap_or_default());
            // Drop the timestamps (the two formatters read the clock apart).
            text.unwrap_or_default()
                .lines()
                .map(|l| l.split_once(' ').map_or("", |(_, rest)| rest).to_owned() + "\n")
                .collect::<String>()
        };
        (run(false), run(true))
    }

    /// A log writer into a shared buffer.
    pub(in crate::telemetry) struct Sink(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut v) = self.0.lock() {
                v.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn access_lines_are_the_default_formats() {
        let (theirs, ours) = both(|| {
            let client: std::net::SocketAddr = ([127, 0, 0, 1], 4000).into();
            let error = "connect: refused \"x\"";
            tracing::info!(
                target: ACCESS_TARGET,
                method = %http::Method::GET,
                path = %"/a b",
                status = 200u16,
                backend = "http://127.0.0.1:1",
                attempts = 1u32,
                duration_ms = 3.0f64,
                d1 = 73.273f64,
                d2 = 0.05f64,
                d3 = 0.001f64,
                d4 = 120.5f64,
                d5 = 1e-7f64,
                d6 = 1e300f64,
                d7 = f64::NAN,
                d8 = -2.5f64,
                d9 = 999_999_999.999f64,
                d10 = 0.1f64 + 0.2f64,
                bytes = 35u64,
                complete = true,
                client = %client.ip(),
                api_key = "k\"ey",
                s1 = "tab\there",
                s2 = "back\\slash",
                s3 = "caf\u{e9} \u{1b}[31m",
                s4 = "",
                s5 = "plain-ascii ~!@#$%^&*()",
                jwt_sub = "-",
                r#type = "x",
                "request"
            );
            tracing::warn!(target: ACCESS_TARGET, status = 502u16, error = %error, "request failed");
            tracing::error!(target: ACCESS_TARGET, n = -4i64, m = i64::MIN, u = u64::MAX, z = 0u64, f = false, "odd");
            tracing::info!(target: ACCESS_TARGET, message = "a str message \"q\"", a = 1u64);
            tracing::info!(other = 1, "not an access line");
            let span = tracing::info_span!("in", id = 7);
            let _in = span.enter();
            tracing::info!(target: ACCESS_TARGET, status = 200u16, "request");
        });
        assert_eq!(ours, theirs);
        assert_eq!(ours.lines().count(), 6, "{ours}");
        assert!(
            ours.starts_with(" INFO request method=GET path=/a b status=200 "),
            "{ours}"
        );
    }
}
