//! Per-backend circuit breaker: `Closed` → (N consecutive failures) → `Open` for a while →
//! `HalfOpen`, where one trial request decides: success closes, failure re-opens.
//!
//! [`Machine`] is the state machine, sans-io: no clock reads, every method takes `now`, so
//! the unit tests below never sleep. [`Breaker`] shares one machine between worker threads:
//! a healthy backend (closed, no failures counted) is answered from one atomic load, and
//! the mutex is only taken on the failure and recovery paths.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::BreakerConfig;

/// The three states, as the seed names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Traffic flows; consecutive failures are counted.
    Closed,
    /// No traffic until the open duration has passed.
    Open,
    /// One trial request is let through.
    HalfOpen,
}

// === impl State ===

impl State {
    /// The state's name in logs, `/health` and `/metrics`: `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the breaker allows for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permit {
    /// An ordinary request through a closed circuit.
    Normal,
    /// The single trial request of a half-open circuit.
    Probe,
}

/// A state change, returned so the caller logs it once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// State before.
    pub from: State,
    /// State after.
    pub to: State,
}

/// The sans-io state machine.
#[derive(Debug, Clone)]
pub struct Machine {
    config: BreakerConfig,
    inner: Inner,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

// === impl Machine ===

impl Machine {
    /// A closed circuit with no failures counted.
    pub fn new(config: BreakerConfig) -> Self {
        Machine {
            config,
            inner: Inner::Closed { failures: 0 },
        }
    }

    /// The state the machine is in (an open circuit whose time is up still reads `Open`
    /// until a request asks for a permit; see [`Machine::state_at`]).
    pub fn state(&self) -> State {
        match self.inner {
            Inner::Closed { .. } => State::Closed,
            Inner::Open { .. } => State::Open,
            Inner::HalfOpen { .. } => State::HalfOpen,
        }
    }

    /// The state as of `now`: an open circuit whose open time has passed reads `HalfOpen`,
    /// as the next request will find it (ready for a trial), without waiting for one.
    pub fn state_at(&self, now: Instant) -> State {
        match self.inner {
            Inner::Open { until } if now >= until => State::HalfOpen,
            _ => self.state(),
        }
    }

    /// Consecutive failures counted while closed.
    pub fn failures(&self) -> u32 {
        match self.inner {
            Inner::Closed { failures } => failures,
            _ => self.config.failure_threshold,
        }
    }

    /// Asks to send one request. `None`: skip this backend.
    pub fn try_acquire(&mut self, now: Instant) -> (Option<Permit>, Option<Transition>) {
        match self.inner {
            Inner::Closed { .. } => (Some(Permit::Normal), None),
            Inner::Open { until } if now >= until => {
                self.inner = Inner::HalfOpen { probing: true };
                (
                    Some(Permit::Probe),
                    Some(Transition {
                        from: State::Open,
                        to: State::HalfOpen,
                    }),
                )
            }
            Inner::Open { .. } => (None, None),
            Inner::HalfOpen { probing: false } => {
                self.inner = Inner::HalfOpen { probing: true };
                (Some(Permit::Probe), None)
            }
            Inner::HalfOpen { probing: true } => (None, None),
        }
    }

    /// A request that held `permit` succeeded.
    pub fn on_success(&mut self, permit: Permit) -> Option<Transition> {
        match (self.inner, permit) {
            (Inner::Closed { .. }, _) => {
                self.inner = Inner::Closed { failures: 0 };
                None
            }
            (Inner::HalfOpen { .. }, Permit::Probe) => {
                self.inner = Inner::Closed { failures: 0 };
                Some(Transition {
                    from: State::HalfOpen,
                    to: State::Closed,
                })
            }
            // A request let through before the circuit opened finished late: it says nothing
            // about the backend now.
            _ => None,
        }
    }

    /// A request that held `permit` failed.
    pub fn on_failure(&mut self, permit: Permit, now: Instant) -> Option<Transition> {
        match (self.inner, permit) {
            (Inner::Closed { failures }, _) => {
                let failures = failures.saturating_add(1);
                if failures >= self.config.failure_threshold {
                    self.open(now, State::Closed)
                } else {
                    self.inner = Inner::Closed { failures };
                    None
                }
            }
            (Inner::HalfOpen { .. }, Permit::Probe) => self.open(now, State::HalfOpen),
            _ => None,
        }
    }

    /// A request that held `permit` ended without an outcome (the client went away): a probe
    /// slot is handed back for the next request.
    pub fn on_cancel(&mut self, permit: Permit) {
        if let (Inner::HalfOpen { .. }, Permit::Probe) = (self.inner, permit) {
            self.inner = Inner::HalfOpen { probing: false };
        }
    }

    fn open(&mut self, now: Instant, from: State) -> Option<Transition> {
        self.inner = Inner::Open {
            until: now + self.config.open_duration,
        };
        Some(Transition {
            from,
            to: State::Open,
        })
    }

    /// Time left until an open circuit lets a trial request through.
    pub fn open_remaining(&self, now: Instant) -> Option<Duration> {
        match self.inner {
            Inner::Open { until } => Some(until.saturating_duration_since(now)),
            _ => None,
        }
    }
}

/// A [`Machine`] shared by every worker thread.
#[derive(Debug)]
pub struct Breaker {
    /// True while closed with no failures counted: the common case, read without locking.
    clean: AtomicBool,
    machine: Mutex<Machine>,
}

// === impl Breaker ===

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Breaker {
            clean: AtomicBool::new(true),
            machine: Mutex::new(Machine::new(config)),
        }
    }

    /// Asks to send one request; `None` means the circuit keeps traffic away.
    pub fn try_acquire(&self, now: Instant) -> (Option<Permit>, Option<Transition>) {
        if self.clean.load(Ordering::Acquire) {
            return (Some(Permit::Normal), None);
        }
        self.with_machine(|m| m.try_acquire(now))
    }

    /// Records a success.
    pub fn on_success(&self, permit: Permit) -> Option<Transition> {
        if permit == Permit::Normal && self.clean.load(Ordering::Acquire) {
            return None;
        }
        self.with_machine(|m| m.on_success(permit))
    }

    /// Records a failure.
    pub fn on_failure(&self, permit: Permit, now: Instant) -> Option<Transition> {
        self.with_machine(|m| m.on_failure(permit, now))
    }

    /// Records a request that ended without an outcome.
    pub fn on_cancel(&self, permit: Permit) {
        if permit == Permit::Probe {
            self.with_machine(|m| m.on_cancel(permit));
        }
    }

    /// Changes the threshold and open duration (on reload), keeping the state.
    pub fn set_config(&self, config: BreakerConfig) {
        self.with_machine(|m| m.config = config);
    }

    /// The state as of `now` (see [`Machine::state_at`]) and the consecutive failure
    /// count, for `/health` and `/metrics`.
    pub fn snapshot(&self, now: Instant) -> (State, u32) {
        if self.clean.load(Ordering::Acquire) {
            return (State::Closed, 0);
        }
        self.with_machine(|m| (m.state_at(now), m.failures()))
    }

    fn with_machine<T>(&self, f: impl FnOnce(&mut Machine) -> T) -> T {
        // A panic while holding this lock cannot leave the machine half-updated (every method
        // assigns whole states), so a poisoned lock is safe to keep using.
        let mut machine = self
            .machine
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let out = f(&mut machine);
        let clean = machine.inner == Inner::Closed { failures: 0 };
        self.clean.store(clean, Ordering::Release);
        out
    }
}

#[cfg(test)]
mod tests;
