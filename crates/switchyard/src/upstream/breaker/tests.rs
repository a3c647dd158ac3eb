//! Unit tests of the circuit breaker: the state machine under a clock that never moves on
//! its own, and the shared breaker's lock-free clean flag.

use super::*;

const CONFIG: BreakerConfig = BreakerConfig {
    failure_threshold: 5,
    open_duration: Duration::from_secs(10),
};

fn fail(m: &mut Machine, now: Instant) -> Option<Transition> {
    let (permit, _) = m.try_acquire(now);
    m.on_failure(permit.expect("permitted"), now)
}

#[test]
fn opens_after_five_consecutive_failures() {
    let now = Instant::now();
    let mut m = Machine::new(CONFIG);
    for _ in 0..4 {
        assert_eq!(fail(&mut m, now), None);
        assert_eq!(m.state(), State::Closed);
    }
    assert_eq!(
        fail(&mut m, now),
        Some(Transition {
            from: State::Closed,
            to: State::Open
        })
    );
    assert_eq!(m.try_acquire(now).0, None);
    assert_eq!(m.try_acquire(now + Duration::from_millis(9_999)).0, None);
}

#[test]
fn a_success_resets_the_count() {
    let now = Instant::now();
    let mut m = Machine::new(CONFIG);
    for _ in 0..4 {
        fail(&mut m, now);
    }
    assert_eq!(m.on_success(Permit::Normal), None);
    assert_eq!(m.failures(), 0);
    for _ in 0..4 {
        fail(&mut m, now);
    }
    assert_eq!(m.state(), State::Closed);
}

#[test]
fn half_open_lets_exactly_one_probe_through() {
    let now = Instant::now();
    let mut m = Machine::new(CONFIG);
    for _ in 0..5 {
        fail(&mut m, now);
    }
    let later = now + Duration::from_secs(10);
    let (permit, transition) = m.try_acquire(later);
    assert_eq!(permit, Some(Permit::Probe));
    assert_eq!(transition.map(|t| t.to), Some(State::HalfOpen));
    assert_eq!(m.try_acquire(later).0, None, "second request while probing");
}

#[test]
fn probe_success_closes() {
    let now = Instant::now();
    let mut m = Machine::new(CONFIG);
    for _ in 0..5 {
        fail(&mut m, now);
    }
    let later = now + Duration::from_secs(10);
    let (permit, _) = m.try_acquire(later);
    let t = m.on_success(permit.expect("probe"));
    assert_eq!(t.map(|t| t.to), Some(State::Closed));
    assert_eq!(m.try_acquire(later).0, Some(Permit::Normal));
}

#[test]
fn probe_failure_reopens_for_a_full_period() {
    let now = Instant::now();
    let mut m = Machine::new(CONFIG);
    for _ in 0..5 {
        fail(&mut m, now);
    }
    let later = now + Duration::from_secs(10);
    let t = fail(&mut m, later);
    assert_eq!(
        t,
        Some(Transition {
            from: State::HalfOpen,
            to: State::Open
        })
    );
    assert_eq!(
        m.open_remaining(later),
        Some(Duration::from_secs(10)),
        "re-opened from the probe's failure time"
    );
}

#[test]
fn an_open_circuit_reads_half_open_once_its_time_has_passed() {
    let now = Instant::now();
    let mut m = Machine::new(CONFIG);
    for _ in 0..5 {
        fail(&mut m, now);
    }
    assert_eq!(m.state_at(now + Duration::from_millis(9_999)), State::Open);
    assert_eq!(m.state_at(now + Duration::from_secs(10)), State::HalfOpen);
    assert_eq!(m.state(), State::Open, "reading changes nothing");
    assert_eq!(
        m.try_acquire(now + Duration::from_secs(10)).0,
        Some(Permit::Probe)
    );
}

#[test]
fn cancelled_probe_hands_the_slot_back() {
    let now = Instant::now();
    let mut m = Machine::new(CONFIG);
    for _ in 0..5 {
        fail(&mut m, now);
    }
    let later = now + Duration::from_secs(11);
    let (permit, _) = m.try_acquire(later);
    m.on_cancel(permit.expect("probe"));
    assert_eq!(m.try_acquire(later).0, Some(Permit::Probe));
}

#[test]
fn late_results_of_old_requests_do_not_close_an_open_circuit() {
    let now = Instant::now();
    let mut m = Machine::new(CONFIG);
    for _ in 0..5 {
        fail(&mut m, now);
    }
    assert_eq!(m.on_success(Permit::Normal), None);
    assert_eq!(m.state(), State::Open);
    assert_eq!(m.on_failure(Permit::Normal, now), None);
}

#[test]
fn shared_breaker_is_clean_only_when_closed_without_failures() {
    let now = Instant::now();
    let b = Breaker::new(CONFIG);
    assert!(b.clean.load(Ordering::Relaxed));
    b.on_failure(Permit::Normal, now);
    assert!(!b.clean.load(Ordering::Relaxed));
    assert_eq!(b.snapshot(now), (State::Closed, 1));
    b.on_success(Permit::Normal);
    assert!(b.clean.load(Ordering::Relaxed));
}
