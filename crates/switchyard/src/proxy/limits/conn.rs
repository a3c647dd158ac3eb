//! Connection limits, counted per listener ([`ConnCounter`], shared by every worker): open
//! connections in all and per client IP, and requests in progress per client IP. What is
//! taken is a guard: a connection's [`ConnSlot`] is held (in its `ConnInfo`) by the
//! connection task and its requests, a request's [`RequestSlot`] by the request future;
//! dropping them gives the places back, however the connection or request ends.
//!
//! The total is one atomic; the per-IP counts sit in a map behind a lock taken once per
//! connection (opened, closed), never per request: a request increments its IP's counter,
//! which its connection already holds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use super::Refused;
use crate::config::ConnLimits;

/// The connections of one listener.
#[derive(Debug, Default)]
pub struct ConnCounter {
    open: AtomicU32,
    per_ip: Mutex<HashMap<IpAddr, Arc<IpCount>>>,
}

/// What one client IP holds on a listener.
#[derive(Debug, Default)]
struct IpCount {
    /// Its open connections (changed under the map's lock).
    conns: AtomicU32,
    /// Its requests in progress.
    requests: AtomicU32,
}

/// Which connection limit refused a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Over {
    /// `max_connections`.
    Total,
    /// `max_connections_per_ip`.
    PerIp,
}

/// A connection's place under the limits, given back when dropped.
#[derive(Debug)]
pub struct ConnSlot {
    /// The counter it is counted in; `None` for a connection over the limits.
    counter: Option<Arc<ConnCounter>>,
    ip: IpAddr,
    per_ip: Option<Arc<IpCount>>,
    max_requests_per_ip: u32,
}

/// A request's place under `max_requests_per_ip`, given back when dropped.
#[derive(Debug)]
pub struct RequestSlot(Arc<IpCount>);

// === impl ConnCounter ===

impl ConnCounter {
    /// Open connections now.
    pub fn open(&self) -> u32 {
        self.open.load(Ordering::Relaxed)
    }

    /// Takes a place for a connection from `ip`, or says which limit refuses it.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, limits: &ConnLimits) -> Result<ConnSlot, Over> {
        let before = self.open.fetch_add(1, Ordering::Relaxed);
        if limits.max_connections != 0 && before >= limits.max_connections {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return Err(Over::Total);
        }
        // From here the slot gives the place back if the per-IP limit refuses.
        let mut slot = ConnSlot {
            counter: Some(self.clone()),
            ip,
            per_ip: None,
            max_requests_per_ip: limits.max_requests_per_ip,
        };
        if limits.per_ip() {
            let mut map = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            let count = map.entry(ip).or_default().clone();
            let had = count.conns.load(Ordering::Relaxed);
            if limits.max_connections_per_ip != 0 && had >= limits.max_connections_per_ip {
                drop(map);
                return Err(Over::PerIp);
            }
            count.conns.store(had + 1, Ordering::Relaxed);
            slot.per_ip = Some(count);
        }
        Ok(slot)
    }

    /// Client IPs with a connection open now.
    pub fn clients(&self) -> usize {
        self.per_ip.lock().map_or(0, |m| m.len())
    }
}

// === impl ConnSlot ===

impl ConnSlot {
    /// The slot of a connection over the limits that is kept only to answer `503`
    /// (`over_connection_limit = "503"`): it holds no place.
    pub fn over_limit(ip: IpAddr) -> Self {
        ConnSlot {
            counter: None,
            ip,
            per_ip: None,
            max_requests_per_ip: 0,
        }
    }

    /// Takes a place for one request of this connection: refused when the connection is
    /// over the limits, or its IP has `max_requests_per_ip` requests in progress.
    pub fn request(&self) -> Result<Option<RequestSlot>, Refused> {
        if self.counter.is_none() {
            return Err(Refused::Connections);
        }
        let (Some(count), max) = (&self.per_ip, self.max_requests_per_ip) else {
            return Ok(None);
        };
        if max == 0 {
            return Ok(None);
        }
        let before = count.requests.fetch_add(1, Ordering::Relaxed);
        let slot = RequestSlot(count.clone());
        if before >= max {
            return Err(Refused::ClientBusy);
        }
        Ok(Some(slot))
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let Some(counter) = self.counter.take() else {
            return;
        };
        if let Some(count) = self.per_ip.take() {
            let mut map = counter.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            let left = count.conns.load(Ordering::Relaxed).saturating_sub(1);
            count.conns.store(left, Ordering::Relaxed);
            if left == 0 && count.requests.load(Ordering::Relaxed) == 0 {
                map.remove(&self.ip);
            }
        }
        counter.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for RequestSlot {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: u32, per_ip: u32, requests: u32) -> ConnLimits {
        ConnLimits {
            max_connections: total,
            max_connections_per_ip: per_ip,
            max_requests_per_ip: requests,
            ..ConnLimits::default()
        }
    }

    #[test]
    fn places_are_given_back_when_slots_drop() {
        let counter = Arc::new(ConnCounter::default());
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let l = limits(3, 2, 1);
        let a1 = counter.admit(a, &l).unwrap();
        let a2 = counter.admit(a, &l).unwrap();
        assert_eq!(counter.admit(a, &l).unwrap_err(), Over::PerIp);
        let b1 = counter.admit(b, &l).unwrap();
        assert_eq!(counter.admit(b, &l).unwrap_err(), Over::Total);
        assert_eq!(counter.open(), 3);
        let r = a1.request().unwrap();
        assert!(
            matches!(a2.request(), Err(Refused::ClientBusy)),
            "shared by a's connections"
        );
        drop(r);
        assert!(a2.request().unwrap().is_some());
        drop((a1, a2, b1));
        assert_eq!(counter.open(), 0);
        assert_eq!(counter.clients(), 0, "no entry left behind");
        assert!(matches!(
            ConnSlot::over_limit(a).request(),
            Err(Refused::Connections)
        ));
    }
}
