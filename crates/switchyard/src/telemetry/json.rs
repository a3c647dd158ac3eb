//! JSON log lines: one object per event, `timestamp`, `level`, the event's fields (its
//! message as `message`) and `target`, in that order.
//!
//! tracing fields are scalars, so a list or a table (the start-up summary's `listen`,
//! `admin`, `pools`) is logged as a value whose `Debug` form is JSON ([`AsJson`]): a field
//! logged with `?` whose text is a JSON array or object is written as that array or object,
//! not as a quoted string. Everything else is written as tracing-subscriber's own JSON
//! formatter writes it (errors with their whole source chain, see [`crate::errors::Chain`]).

use std::fmt;

use serde::Serialize;
use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// A value logged as JSON: its `Debug` form is its JSON text, so that JSON log lines carry
/// it as JSON (and text lines show it as JSON too).
pub struct AsJson<T>(pub T);

impl<T: Serialize> fmt::Debug for AsJson<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json::to_string(&self.0).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

/// The JSON lines event format.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut timestamp = String::with_capacity(32);
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let meta = event.metadata();
        let mut fields = Fields(Vec::with_capacity(8));
        event.record(&mut fields);
        let mut out = String::with_capacity(256);
        out.push('{');
        push(&mut out, "timestamp", &Value::String(timestamp));
        push(&mut out, "level", &Value::String(meta.level().to_string()));
        for (name, value) in &fields.0 {
            push(&mut out, name, value);
        }
        push(&mut out, "target", &Value::String(meta.target().to_owned()));
        out.pop(); // the last comma
        out.push('}');
        writeln!(writer, "{out}")
    }
}

/// Appends `"name":value,`.
fn push(out: &mut String, name: &str, value: &Value) {
    // Serialising a string or a `Value` cannot fail.
    out.push_str(&serde_json::to_string(name).unwrap_or_default());
    out.push(':');
    out.push_str(&serde_json::to_string(value).unwrap_or_default());
    out.push(',');
}

/// An event's fields, in the order they were given.
struct Fields(Vec<(&'static str, Value)>);

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let v = serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number);
        self.0.push((field.name(), v));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.push((field.name(), Value::from(value)));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.push((field.name(), Value::from(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.push((field.name(), Value::Bool(value)));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name(), Value::String(value.to_owned())));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let text = crate::errors::Chain(value).to_string();
        self.0.push((field.name(), Value::String(text)));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        let structured = (text.starts_with('[') || text.starts_with('{'))
            .then(|| serde_json::from_str::<Value>(&text).ok())
            .flatten();
        let v = structured.unwrap_or(Value::String(text));
        self.0.push((field.name(), v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lists_and_tables_are_json_and_the_rest_as_usual() {
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(JsonLines)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let listen = vec!["127.0.0.1:3000".to_owned()];
            tracing::info!(
                listen = ?AsJson(&listen),
                workers = 2u64,
                ok = true,
                name = "p",
                debug = ?"quoted",
                "switchyard started"
            );
        });
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let line: Value = serde_json::from_str(text.trim()).expect(&text);
        assert_eq!(
            line["listen"],
            serde_json::json!(["127.0.0.1:3000"]),
            "{text}"
        );
        assert_eq!(line["workers"], 2);
        assert_eq!(line["ok"], true);
        assert_eq!(line["name"], "p");
        assert_eq!(line["debug"], "\"quoted\"");
        assert_eq!(line["message"], "switchyard started");
        assert_eq!(line["level"], "INFO");
        assert!(line["timestamp"].is_string());
        assert!(text.starts_with("{\"timestamp\":"), "{text}");
    }
}
