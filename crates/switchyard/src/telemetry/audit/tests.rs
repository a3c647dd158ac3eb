use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use super::summary::{timestamp, Summary};
use super::{Hit, Kind};

fn hit(ip: [u8; 4], kind: Kind) -> Hit {
    Hit {
        client: IpAddr::from(ip),
        kind,
        key: Some("unknown".into()),
        detail: None,
    }
}

#[test]
fn summarises_per_client_and_kind() {
    let mut s = Summary::new(8);
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    for i in 0..1000 {
        s.add(hit([10, 0, 0, (i % 2) as u8], Kind::AuthFailure), t);
        s.add(hit([10, 0, 0, 1], Kind::RateLimited), t);
    }
    let lines = s.drain();
    assert_eq!(lines.len(), 3, "{lines:?}");
    let counts: Vec<u64> = lines
        .iter()
        .map(|(_, f)| f["count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts.iter().sum::<u64>(), 2000);
    assert_eq!(lines[0].1["client"], "10.0.0.0");
    assert_eq!(lines[0].1["count"], 500);
    assert!(s.drain().is_empty(), "drained");
}

#[test]
fn bounded_by_max_clients_with_others() {
    let mut s = Summary::new(4);
    let t = SystemTime::now();
    for i in 0..=255u8 {
        s.add(hit([10, 0, 1, i], Kind::IpDenied), t);
    }
    assert_eq!(s.clients(), 4);
    let lines = s.drain();
    assert_eq!(lines.len(), 5);
    let others = &lines[4].1;
    assert_eq!(others["client"], "others");
    assert_eq!(others["count"], 252);
}

#[test]
fn timestamps_have_milliseconds() {
    let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_767_225_600_042);
    assert_eq!(timestamp(t), "2026-01-01T00:00:00.042Z");
}
