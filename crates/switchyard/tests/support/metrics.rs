//! Reading `/metrics` and `/health` JSON: the entry of one backend, and numbers in it.

use serde_json::Value;
use switchyard::config::BackendUrl;
use test_server::TestServer;

/// Names one backend of a `/metrics` or `/health` document: by its URL (`&str`, `&String`,
/// `&BackendUrl`), by the test server behind it, or by its port alone (`u16`).
pub trait BackendRef {
    /// True when the entry whose `url` is `url` is this backend.
    fn is(&self, url: &str) -> bool;
    /// How the backend is named in a panic message.
    fn describe(&self) -> String;
}

impl BackendRef for u16 {
    fn is(&self, url: &str) -> bool {
        url.ends_with(&format!(":{self}"))
    }

    fn describe(&self) -> String {
        format!("on port {self}")
    }
}

impl BackendRef for &str {
    fn is(&self, url: &str) -> bool {
        url == *self
    }

    fn describe(&self) -> String {
        (*self).to_owned()
    }
}

impl BackendRef for &String {
    fn is(&self, url: &str) -> bool {
        url == self.as_str()
    }

    fn describe(&self) -> String {
        (*self).clone()
    }
}

impl BackendRef for &BackendUrl {
    fn is(&self, url: &str) -> bool {
        url == self.to_string()
    }

    fn describe(&self) -> String {
        self.to_string()
    }
}

impl BackendRef for &TestServer {
    fn is(&self, url: &str) -> bool {
        url == super::url_for(self).to_string()
    }

    fn describe(&self) -> String {
        super::url_for(self).to_string()
    }
}

/// The entry of `doc["backends"]` (in `/metrics` or `/health`) for `backend`; panics, showing
/// the document, when there is none.
pub fn backend_entry(doc: &Value, backend: impl BackendRef) -> &Value {
    doc["backends"]
        .as_array()
        .expect("backends array")
        .iter()
        .find(|b| b["url"].as_str().is_some_and(|u| backend.is(u)))
        .unwrap_or_else(|| panic!("no backend {} in {doc:#}", backend.describe()))
}

/// The entry of `doc["backends"]` for `url` in pool `pool`, if listed.
pub fn pool_backend_entry<'a>(doc: &'a Value, pool: &str, url: &str) -> Option<&'a Value> {
    doc["backends"]
        .as_array()
        .expect("backends array")
        .iter()
        .find(|b| b["pool"] == pool && b["url"] == url)
}

/// A JSON number as `u64`; panics on anything else.
pub fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}
