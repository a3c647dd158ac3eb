//! `--pid-file`: the file a running switchyard writes its process id to, and the signals
//! `switchyard reload` (SIGHUP) and `switchyard stop` (SIGTERM) send to the pid it holds.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::process::{self, Pid, Signal};

/// How often `stop` looks whether the process is gone.
const STOP_POLL: Duration = Duration::from_millis(20);

/// Why a pid file could not be written, read or acted on.
#[derive(Debug, thiserror::Error)]
pub enum PidError {
    /// `reload` or `stop` without `--pid-file`.
    #[error("give the pid file of the switchyard to signal with --pid-file FILE")]
    NoFile,
    /// The file could not be written.
    #[error("cannot write the pid file {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file could not be read.
    #[error("cannot read the pid file {} (is switchyard running with --pid-file?)", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file does not hold a process id.
    #[error("the pid file {} holds {content:?}, not a process id", path.display())]
    NotAPid {
        /// The file.
        path: PathBuf,
        /// What it holds.
        content: String,
    },
    /// The signal could not be sent (no such process: the pid file is stale).
    #[error("cannot send {signal} to process {pid} (from {})", path.display())]
    Signal {
        /// The signal's name.
        signal: &'static str,
        /// The process.
        pid: i32,
        /// The pid file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `stop`: the process was still running after the wait.
    #[error("process {pid} is still running {waited:?} after SIGTERM")]
    StillRunning {
        /// The process.
        pid: i32,
        /// How long `stop` waited.
        waited: Duration,
    },
}

/// A pid file written by this process; removed when dropped (at exit), if it still holds
/// this process's id.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    pid: u32,
}

// === impl PidFile ===

impl PidFile {
    /// Writes this process's id (and a newline) to `path`, replacing the file atomically
    /// (written beside it, then renamed), so a reader never sees half a number.
    pub fn create(path: &Path) -> Result<PidFile, PidError> {
        let pid = std::process::id();
        let write_err = |source| PidError::Write {
            path: path.to_owned(),
            source,
        };
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, format!("{pid}\n")).map_err(write_err)?;
        std::fs::rename(&tmp, path).map_err(write_err)?;
        Ok(PidFile {
            path: path.to_owned(),
            pid,
        })
    }

    /// [`PidFile::create`] when a path is given.
    pub fn create_if(path: Option<&Path>) -> Result<Option<PidFile>, PidError> {
        path.map(PidFile::create).transpose()
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Another switchyard may have taken the file over meanwhile: leave its file alone.
        if read_pid(&self.path).ok() == Some(self.pid as i32) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The process id in the pid file `path`.
pub fn read_pid(path: &Path) -> Result<i32, PidError> {
    let content = std::fs::read_to_string(path).map_err(|source| PidError::Read {
        path: path.to_owned(),
        source,
    })?;
    content
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|pid| *pid > 0)
        .ok_or_else(|| PidError::NotAPid {
            path: path.to_owned(),
            content: content.trim().to_owned(),
        })
}

/// `switchyard reload`: SIGHUP to the pid in `path`; returns the pid.
pub fn reload(path: Option<&Path>) -> Result<i32, PidError> {
    let path = path.ok_or(PidError::NoFile)?;
    let pid = read_pid(path)?;
    send(pid, Signal::HUP, "SIGHUP", path)?;
    Ok(pid)
}

/// `switchyard stop`: SIGTERM to the pid in `path`, then waits until the process is gone or
/// the pid file no longer names it (the proxy removes it once drained), at most `wait`.
/// Returns the pid.
pub fn stop(path: Option<&Path>, wait: Duration) -> Result<i32, PidError> {
    let path = path.ok_or(PidError::NoFile)?;
    let pid = read_pid(path)?;
    send(pid, Signal::TERM, "SIGTERM", path)?;
    let started = std::time::SystemTime::now();
    loop {
        let running = Pid::from_raw(pid).is_some_and(|p| process::test_kill_process(p).is_ok());
        if !running || read_pid(path).ok() != Some(pid) {
            return Ok(pid);
        }
        let waited = started.elapsed().unwrap_or_default();
        if waited >= wait {
            return Err(PidError::StillRunning { pid, waited });
        }
        std::thread::sleep(STOP_POLL);
    }
}

fn send(pid: i32, signal: Signal, name: &'static str, path: &Path) -> Result<(), PidError> {
    let err = |source| PidError::Signal {
        signal: name,
        pid,
        path: path.to_owned(),
        source,
    };
    let target = Pid::from_raw(pid).ok_or_else(|| err(io::ErrorKind::InvalidInput.into()))?;
    process::kill_process(target, signal).map_err(|e| err(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("switchyard-pid-{}-{name}", std::process::id()))
    }

    #[test]
    fn written_then_removed_on_drop() {
        let path = temp("drop");
        let file = PidFile::create(&path).expect("write");
        assert_eq!(read_pid(&path).expect("read"), std::process::id() as i32);
        drop(file);
        assert!(!path.exists());
    }

    #[test]
    fn a_file_taken_over_is_left_alone() {
        let path = temp("taken");
        let file = PidFile::create(&path).expect("write");
        std::fs::write(&path, "1\n").expect("overwrite");
        drop(file);
        assert_eq!(read_pid(&path).expect("read"), 1);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn bad_files_are_named() {
        let path = temp("bad");
        std::fs::write(&path, "not a pid").expect("write");
        let err = reload(Some(&path)).expect_err("not a pid");
        assert!(err.to_string().contains("not a process id"), "{err}");
        let _ = std::fs::remove_file(&path);
        let err = reload(Some(&path)).expect_err("missing");
        assert!(matches!(err, PidError::Read { .. }), "{err}");
        assert!(matches!(reload(None), Err(PidError::NoFile)));
    }
}
