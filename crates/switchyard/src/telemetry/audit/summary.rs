//! The summary table of one interval: per client, one count per event, key and detail, with
//! the first and last time; bounded by `max_clients`, the rest counted per event as
//! `"others"`.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{json, Value};

use super::{Hit, Kind};
use crate::config::tls::format_utc;

/// Hits counted since the last drain.
#[derive(Debug)]
pub(super) struct Summary {
    max_clients: usize,
    clients: HashMap<IpAddr, Vec<Entry>>,
    others: BTreeMap<Kind, Count>,
}

#[derive(Debug)]
struct Entry {
    kind: Kind,
    key: Option<Arc<str>>,
    detail: Option<&'static str>,
    count: Count,
}

#[derive(Clone, Copy, Debug)]
struct Count {
    n: u64,
    first: SystemTime,
    last: SystemTime,
}

// === impl Summary ===

impl Summary {
    /// An empty table for at most `max_clients` clients.
    pub(super) fn new(max_clients: usize) -> Self {
        Summary {
            max_clients: max_clients.max(1),
            clients: HashMap::new(),
            others: BTreeMap::new(),
        }
    }

    /// Counts `hit` at `now`.
    pub(super) fn add(&mut self, hit: Hit, now: SystemTime) {
        let full = self.clients.len() >= self.max_clients;
        let entries = match self.clients.get_mut(&hit.client) {
            Some(entries) => entries,
            None if full => {
                Count::bump(self.others.entry(hit.kind), now);
                return;
            }
            None => self.clients.entry(hit.client).or_default(),
        };
        let same = entries
            .iter_mut()
            .find(|e| e.kind == hit.kind && e.key == hit.key && e.detail == hit.detail);
        match same {
            Some(entry) => entry.count.add(now),
            None => entries.push(Entry {
                kind: hit.kind,
                key: hit.key,
                detail: hit.detail,
                count: Count::new(now),
            }),
        }
    }

    /// Clients tracked now.
    #[cfg(test)]
    pub(super) fn clients(&self) -> usize {
        self.clients.len()
    }

    /// The lines of the interval (clients in address order, then `"others"`), leaving the
    /// table empty.
    pub(super) fn drain(&mut self) -> Vec<(&'static str, Value)> {
        let mut clients: Vec<(IpAddr, Vec<Entry>)> = self.clients.drain().collect();
        clients.sort_by_key(|(ip, _)| *ip);
        let mut lines = Vec::new();
        for (ip, entries) in clients {
            for e in entries {
                let mut fields = e.count.fields(json!(ip.to_string()));
                if let Some(key) = &e.key {
                    fields["key"] = json!(&**key);
                }
                if let Some(detail) = e.detail {
                    fields["detail"] = json!(detail);
                }
                lines.push((e.kind.name(), fields));
            }
        }
        for (kind, count) in std::mem::take(&mut self.others) {
            lines.push((kind.name(), count.fields(json!("others"))));
        }
        lines
    }
}

// === impl Count ===

impl Count {
    fn new(now: SystemTime) -> Self {
        Count {
            n: 1,
            first: now,
            last: now,
        }
    }

    fn add(&mut self, now: SystemTime) {
        self.n += 1;
        self.last = now;
    }

    fn bump(entry: std::collections::btree_map::Entry<'_, Kind, Count>, now: SystemTime) {
        entry
            .and_modify(|c| c.add(now))
            .or_insert_with(|| Count::new(now));
    }

    fn fields(&self, client: Value) -> Value {
        json!({
            "client": client,
            "count": self.n,
            "first": timestamp(self.first),
            "last": timestamp(self.last),
        })
    }
}

/// `2026-01-31T12:00:00.123Z`.
pub(super) fn timestamp(t: SystemTime) -> String {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
    let text = format_utc(secs);
    let millis = since.subsec_millis();
    match text.strip_suffix('Z') {
        Some(head) => format!("{head}.{millis:03}Z"),
        None => text,
    }
}
