//! A capturing log subscriber, for tests of what switchyard logs: every line at the level
//! given and above goes into one buffer. The subscriber is global, so a test file that uses
//! it is a test binary of its own.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();

struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.get_or_init(Mutex::default)
            .lock()
            .expect("logs")
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber at `level` (once; later calls keep the first level).
pub fn capture(level: tracing::Level) {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_writer(|| Capture)
            .try_init();
    });
}

/// Everything logged so far.
pub fn logs() -> String {
    let logs = LOGS.get_or_init(Mutex::default).lock().expect("logs");
    String::from_utf8_lossy(&logs).into_owned()
}
