//! The writer thread: takes events off the queue, counts hits into the [`Summary`], writes
//! the summary every interval and other lines at once, and reopens the file when asked.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use tokio::time::Instant;

use super::summary::{timestamp, Summary};
use super::Hit;
use crate::config::{AuditConfig, AuditTarget};

/// What the queue carries.
#[derive(Debug)]
pub(super) enum Message {
    /// To be summarised.
    Hit(Hit),
    /// To be written at once.
    Line { event: &'static str, fields: Value },
    /// Look at the reopen flag.
    Wake,
}

/// Where lines go.
#[derive(Debug)]
pub(super) enum Sink {
    Stdout(io::Stdout),
    File {
        path: PathBuf,
        file: BufWriter<File>,
    },
}

/// The writer thread's state.
#[derive(Debug)]
pub(super) struct Writer {
    sink: Sink,
    summary: Summary,
    interval: Duration,
    reopen: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    dropped_reported: u64,
}

// === impl Sink ===

impl Sink {
    pub(super) fn open(target: &AuditTarget) -> io::Result<Sink> {
        Ok(match target {
            AuditTarget::Stdout => Sink::Stdout(io::stdout()),
            AuditTarget::File(path) => Sink::File {
                file: BufWriter::new(append(path)?),
                path: path.clone(),
            },
        })
    }

    fn write_line(&mut self, line: &str) -> io::Result<()> {
        match self {
            Sink::Stdout(out) => {
                let mut out = out.lock();
                out.write_all(line.as_bytes())?;
                out.write_all(b"\n")
            }
            Sink::File { file, .. } => {
                file.write_all(line.as_bytes())?;
                file.write_all(b"\n")
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout(out) => out.flush(),
            Sink::File { file, .. } => file.flush(),
        }
    }

    /// Opens the file again by its name (standard output stays).
    fn reopen(&mut self) -> io::Result<()> {
        if let Sink::File { path, file } = self {
            file.flush()?;
            *file = BufWriter::new(append(path)?);
        }
        Ok(())
    }
}

fn append(path: &std::path::Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

// === impl Writer ===

impl Writer {
    pub(super) fn new(
        sink: Sink,
        config: &AuditConfig,
        reopen: Arc<AtomicBool>,
        dropped: Arc<AtomicU64>,
    ) -> Self {
        Writer {
            sink,
            summary: Summary::new(config.max_clients),
            interval: config.interval,
            reopen,
            dropped,
            dropped_reported: 0,
        }
    }

    /// Runs until every sender is gone, then writes what is left.
    pub(super) fn run(mut self, queue: Receiver<Message>) {
        let mut next = Instant::now() + self.interval;
        loop {
            let wait = next.saturating_duration_since(Instant::now());
            match queue.recv_timeout(wait) {
                Ok(Message::Hit(hit)) => self.summary.add(hit, SystemTime::now()),
                Ok(Message::Line { event, fields }) => {
                    self.line(event, fields);
                    self.flush();
                }
                Ok(Message::Wake) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.write_summary();
                    return;
                }
            }
            if self.reopen.swap(false, Ordering::AcqRel) {
                match self.sink.reopen() {
                    Ok(()) => {
                        self.line("audit_reopened", json!({}));
                        self.flush();
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot reopen the audit log"),
                }
            }
            let now = Instant::now();
            if now >= next {
                self.write_summary();
                next = now + self.interval;
            }
        }
    }

    /// The interval's summary lines, and how many events were dropped since the last.
    fn write_summary(&mut self) {
        let interval_ms = u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX);
        for (event, mut fields) in self.summary.drain() {
            fields["interval_ms"] = json!(interval_ms);
            self.line(event, fields);
        }
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > self.dropped_reported {
            let count = dropped - self.dropped_reported;
            self.dropped_reported = dropped;
            self.line("audit_dropped", json!({ "count": count }));
        }
        self.flush();
    }

    fn line(&mut self, event: &'static str, fields: Value) {
        let mut line = serde_json::Map::new();
        line.insert("time".into(), json!(timestamp(SystemTime::now())));
        line.insert("event".into(), json!(event));
        if let Value::Object(fields) = fields {
            line.extend(fields);
        }
        let text = Value::Object(line).to_string();
        if let Err(e) = self.sink.write_line(&text) {
            tracing::warn!(error = %e, "cannot write the audit log");
        }
    }

    fn flush(&mut self) {
        if let Err(e) = self.sink.flush() {
            tracing::warn!(error = %e, "cannot write the audit log");
        }
    }
}
