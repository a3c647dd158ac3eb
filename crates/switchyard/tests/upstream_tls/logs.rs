//! The log lines of this test binary, captured: one global subscriber writes every event (of
//! every proxy in the process, from any thread) to a list that tests search by content.

use std::io::Write;
use std::sync::{Mutex, Once};

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// One event's text, added to [`LINES`] when the subscriber is done writing it.
struct Line(Vec<u8>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0).into_owned();
        LINES.lock().unwrap_or_else(|e| e.into_inner()).push(text);
    }
}

/// Installs the capturing subscriber (once per process).
pub fn capture() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(|| Line(Vec::new()))
            .try_init();
    });
}

/// The lines logged so far that contain every one of `parts`.
pub fn lines_with(parts: &[&str]) -> Vec<String> {
    LINES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .cloned()
        .collect()
}
