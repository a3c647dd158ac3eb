use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use http::HeaderValue;

use super::*;
use crate::config::auth::key_line;

const W: Duration = Duration::from_secs(1);

fn ip(text: &str) -> IpAddr {
    text.parse().expect("address")
}

fn limited(requests: u32, key: ClientKeyKind) -> ClientRateLimitConfig {
    ClientRateLimitConfig {
        requests,
        window: W,
        key,
        ..ClientRateLimitConfig::default()
    }
}

/// Requests allowed for `id` at `now` before the first refusal (at most 10,000).
fn allowed(limiter: &ClientLimiter, id: &Identity<'_>, now: Instant) -> u32 {
    (0..10_000)
        .take_while(|_| {
            let (verdict, _) = limiter.check(id, now).expect("limited");
            verdict.decision == Decision::Allow
        })
        .count() as u32
}

#[test]
fn ipv6_clients_are_keyed_by_their_64_and_ipv4_by_address() {
    let a = ip_key(ip("2001:db8:1:2::1"));
    assert_eq!(
        a,
        ip_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
        "same /64"
    );
    assert_ne!(a, ip_key(ip("2001:db8:1:3::1")), "the next /64");
    assert_eq!(
        ip_key(ip("2001:db8:1:2::1")),
        ClientKey::V6(0x2001_0db8_0001_0002)
    );
    assert_ne!(
        ip_key(ip("192.0.2.1")),
        ip_key(ip("192.0.2.2")),
        "IPv4: /32"
    );
    let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
    assert_eq!(
        ip_key(mapped),
        ip_key(ip("192.0.2.1")),
        "IPv4-mapped is IPv4"
    );
    assert_ne!(
        ip_key(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ip_key(ip("127.0.0.1"))
    );
}

#[test]
fn a_missing_api_key_or_header_falls_back_to_the_address() {
    let none = HeaderMap::new();
    let id = Identity {
        ip: ip("192.0.2.7"),
        api_key: None,
        headers: &none,
        claims: None,
    };
    let tenant = ClientKeyKind::Header(http::HeaderName::from_static("x-tenant"));
    assert_eq!(key_of(&ClientKeyKind::ApiKey, &id), ip_key(id.ip));
    assert_eq!(key_of(&tenant, &id), ip_key(id.ip));
    let mut headers = HeaderMap::new();
    headers.insert("x-tenant", HeaderValue::from_static("blue"));
    let id = Identity {
        api_key: Some("acme"),
        headers: &headers,
        ..id
    };
    assert_eq!(
        key_of(&ClientKeyKind::ApiKey, &id),
        ClientKey::ApiKey("acme")
    );
    assert_eq!(key_of(&tenant, &id), ClientKey::Header(b"blue"));
    assert_eq!(key_of(&ClientKeyKind::Ip, &id), ip_key(id.ip));
}

#[test]
fn each_key_has_its_own_window() {
    let limiter = ClientLimiter::new(
        &limited(3, ClientKeyKind::Ip),
        &ApiKeys::default(),
        None,
        "client",
    );
    let headers = HeaderMap::new();
    let now = Instant::now();
    let id = |text| Identity {
        ip: ip(text),
        api_key: None,
        headers: &headers,
        claims: None,
    };
    assert_eq!(allowed(&limiter, &id("192.0.2.1"), now), 3);
    assert_eq!(
        allowed(&limiter, &id("192.0.2.2"), now),
        3,
        "another client"
    );
    assert_eq!(allowed(&limiter, &id("2001:db8::1"), now), 3);
    assert_eq!(
        allowed(&limiter, &id("2001:db8::2"), now),
        0,
        "the same /64"
    );
    // Two windows later everything is forgotten.
    assert_eq!(allowed(&limiter, &id("192.0.2.1"), now + 2 * W), 3);
}

#[test]
fn remaining_and_reset_follow_the_sliding_count() {
    let store = KeyedStore::local(16, W, Instant::now());
    let KeyedStore::Local(local) = &store;
    let epoch = local.epoch;
    let key = ClientKey::V4(1);
    let at = |ms| epoch + Duration::from_millis(ms);
    let v = store.check(&key, 10, at(100));
    assert_eq!((v.decision, v.remaining), (Decision::Allow, 9));
    assert_eq!(
        v.reset,
        Duration::from_millis(900),
        "to the end of the window"
    );
    for _ in 0..9 {
        store.check(&key, 10, at(200));
    }
    let v = store.check(&key, 10, at(300));
    assert_eq!(v.remaining, 0);
    let Decision::Deny { retry_after } = v.decision else {
        panic!("the 11th request is refused: {v:?}")
    };
    assert_eq!(v.reset, retry_after);
    assert!(retry_after > Duration::from_millis(700), "{retry_after:?}");
    // Half way into the next window, half of the 10 still weigh: 5 left, 4 after this one.
    let v = store.check(&key, 10, at(1500));
    assert_eq!((v.decision, v.remaining), (Decision::Allow, 4));
}

#[test]
fn limits_by_key_name_and_role_beat_the_default() {
    let line = |name: &str, roles: &[&str]| {
        let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        key_line(name, name.as_bytes(), &roles) + "\n"
    };
    let mut keys = ApiKeys::default();
    let text = line("free", &["read"])
        + &line("paid1", &["read", "paid"])
        + &line("acme", &["paid"])
        + &line("root", &["paid", "admin"]);
    keys.add_lines("test", &text).expect("key lines");
    let config = ClientRateLimitConfig {
        per_role: vec![("paid".into(), 5), ("admin".into(), 0)],
        per_key: vec![("acme".into(), 7)],
        ..limited(2, ClientKeyKind::ApiKey)
    };
    let limiter = ClientLimiter::new(&config, &keys, None, "client");
    let headers = HeaderMap::new();
    let now = Instant::now();
    let id = |key| Identity {
        ip: ip("192.0.2.1"),
        api_key: key,
        headers: &headers,
        claims: None,
    };
    assert_eq!(allowed(&limiter, &id(Some("free")), now), 2, "the default");
    assert_eq!(allowed(&limiter, &id(Some("paid1")), now), 5, "per_role");
    assert_eq!(
        allowed(&limiter, &id(Some("acme")), now),
        7,
        "per_key over its role"
    );
    assert!(
        limiter.check(&id(Some("root")), now).is_none(),
        "admin: 0 is no limit"
    );
    assert_eq!(
        allowed(&limiter, &id(None), now),
        2,
        "no key: by address, the default"
    );
}

#[test]
fn a_flood_of_distinct_keys_stays_within_the_cap() {
    let cap = 1_000;
    let store = KeyedStore::local(cap, W, Instant::now());
    let now = Instant::now();
    let flood = 50_000u32;
    let mut evicted = 0;
    for i in 0..flood {
        let v = store.check(&ClientKey::V4(i), 100, now);
        assert_eq!(v.decision, Decision::Allow, "a new key is never refused");
        evicted += u32::from(v.evicted);
    }
    let tracked = store.tracked(now);
    assert!(
        tracked <= u64::from(cap),
        "{tracked} keys tracked over a cap of {cap}"
    );
    assert_eq!(tracked, u64::from(cap), "a full table");
    assert_eq!(
        evicted,
        flood - cap,
        "each key past the cap took a live key's place"
    );
    // A key hammering through the flood keeps its slot: the idlest are pushed out first.
    let hot = ClientKey::V4(u32::MAX);
    let later = now + Duration::from_millis(10);
    for _ in 0..5 {
        store.check(&hot, 100, later);
    }
    for i in 0..20_000u32 {
        store.check(&ClientKey::V4(flood + i), 100, later);
        if i % 1000 == 0 {
            store.check(&hot, 100, later);
        }
    }
    let v = store.check(&hot, 100, later);
    assert!(v.remaining < 100 - 5, "the hot key kept its count: {v:?}");
    println!(
        "flood: {flood} distinct keys into a cap of {cap}: {tracked} tracked, {evicted} evictions, {} bytes",
        store.bytes()
    );
}

/// Keys fall into buckets of 8 slots by hash, so a bucket can overflow before the table is
/// full: how many keys lose their place at half and at full load.
#[test]
fn evictions_are_rare_below_half_of_max_clients() {
    let cap = 100_000u32;
    let now = Instant::now();
    let mut figures = Vec::new();
    for load in [cap / 4, cap / 2, cap] {
        let store = KeyedStore::local(cap, W, now);
        let evicted = (0..load)
            .filter(|i| store.check(&ClientKey::V4(*i), 10, now).evicted)
            .count();
        let share = evicted as f64 / f64::from(load);
        figures.push(format!("{load} keys: {:.2}% evicted", share * 100.0));
        if load <= cap / 2 {
            assert!(share < 0.02, "{evicted} of {load} evicted");
        }
        assert_eq!(store.tracked(now), u64::from(load) - evicted as u64);
    }
    println!("max_clients = {cap}: {}", figures.join(", "));
}

#[test]
fn idle_keys_stop_counting_once_their_window_has_passed() {
    let store = KeyedStore::local(64, W, Instant::now());
    let now = Instant::now();
    for i in 0..10 {
        store.check(&ClientKey::V4(i), 5, now);
    }
    assert_eq!(store.tracked(now), 10);
    assert_eq!(
        store.tracked(now + W),
        10,
        "still weighed in the next window"
    );
    assert_eq!(store.tracked(now + 2 * W), 0, "idle: their places are free");
    // A new key takes a free place without pushing anyone out.
    let v = store.check(&ClientKey::V4(99), 5, now + 2 * W);
    assert!(!v.evicted);
}

#[test]
fn keys_are_counted_apart_across_threads() {
    let store = Arc::new(KeyedStore::local(
        10_000,
        Duration::from_secs(3600),
        Instant::now(),
    ));
    let now = Instant::now();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut allowed = 0;
                for round in 0..200 {
                    // 50 keys shared by every thread, one request each per round.
                    let key = ClientKey::V4(round % 50);
                    if store.check(&key, 10, now).decision == Decision::Allow {
                        allowed += 1;
                    }
                    let _ = t;
                }
                allowed
            })
        })
        .collect();
    let allowed: u32 = handles.into_iter().map(|h| h.join().expect("thread")).sum();
    assert_eq!(
        allowed,
        50 * 10,
        "each of 50 keys allowed its limit of 10, no more"
    );
}

#[test]
fn a_reload_keeps_the_counts_when_the_window_key_and_cap_stay() {
    let keys = ApiKeys::default();
    let first = ClientLimiter::new(&limited(3, ClientKeyKind::Ip), &keys, None, "client");
    let headers = HeaderMap::new();
    let id = Identity {
        ip: ip("192.0.2.1"),
        api_key: None,
        headers: &headers,
        claims: None,
    };
    let now = Instant::now();
    assert_eq!(allowed(&first, &id, now), 3);
    let higher = ClientLimiter::new(
        &limited(5, ClientKeyKind::Ip),
        &keys,
        Some(&first),
        "client",
    );
    assert!(Arc::ptr_eq(first.store(), higher.store()));
    assert_eq!(
        allowed(&higher, &id, now),
        2,
        "3 already counted of the new 5"
    );
    let other_key = limited(5, ClientKeyKind::ApiKey);
    let fresh = ClientLimiter::new(&other_key, &keys, Some(&higher), "client");
    assert!(
        !Arc::ptr_eq(higher.store(), fresh.store()),
        "counted otherwise: anew"
    );
}

/// Bytes per tracked key, two ways: the table's allocation divided by its slots, and the
/// process's resident memory before and after a table of a million slots is built (Linux:
/// `VmRSS` of `/proc/self/status`; other tests running meanwhile make it noisy, so it is
/// printed, and only the allocation is asserted).
#[test]
fn bytes_per_tracked_key() {
    let slots = 1_000_000u32;
    let rss = || -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
            .map(|kb| kb * 1024)
    };
    let before = rss();
    let store = KeyedStore::local(slots, W, Instant::now());
    let now = Instant::now();
    for i in 0..slots {
        store.check(&ClientKey::V4(i), 10, now);
    }
    let after = rss();
    let per_key = store.bytes() as f64 / f64::from(slots);
    assert!(per_key < 16.1, "{per_key} bytes per key");
    assert_eq!(std::mem::size_of::<table::Slot>(), 16);
    let by_rss = match (before, after) {
        (Some(b), Some(a)) => format!("{:.1}", a.saturating_sub(b) as f64 / f64::from(slots)),
        _ => "n/a".to_owned(),
    };
    println!(
        "bytes per tracked key: {per_key:.2} (allocation: {} bytes for {slots} slots); by RSS: {by_rss}; {} keys tracked",
        store.bytes(),
        store.tracked(now)
    );
}
