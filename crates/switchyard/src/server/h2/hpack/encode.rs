//! Encoding the answers' header blocks.
//!
//! A field whose value repeats from answer to answer (`content-type`, `server`, `vary`...)
//! goes into the dynamic table the first time and is one octet after that (`date` too: it
//! changes once a second, and a busy connection sends it many times a second); a value that
//! changes every time (`content-length`, validators) or that must not be kept
//! (credentials, cookies, anything marked sensitive) is sent as a literal, named by the
//! static table when it can be. Literals are Huffman-coded only when they enter the table,
//! where the octets saved are saved again on every later hit.

use std::collections::VecDeque;

use bytes::{BufMut, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::StatusCode;

use super::table::{self, static_name, static_status, Field, Pseudo};
use super::{huffman, put_integer};

/// The largest table this encoder uses, whatever the client allows.
pub const TABLE_MAX: usize = 4096;
/// The static table's first `:status` entry.
const STATUS_NAME: usize = 8;
/// Values longer than this are never put in the table.
const INDEX_AT_MOST: usize = 128;

/// One connection's encoding state: the dynamic table the client's decoder mirrors.
#[derive(Debug)]
pub struct Encoder {
    /// Newest first: `(field, its size)`.
    table: VecDeque<(Field, usize)>,
    size: usize,
    max: usize,
    /// Size updates owed at the start of the next block: the smallest, then the last.
    update: Option<(usize, usize)>,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder {
            table: VecDeque::new(),
            size: 0,
            max: TABLE_MAX,
            update: None,
        }
    }
}

impl Encoder {
    /// The client's `SETTINGS_HEADER_TABLE_SIZE` changed to `limit`.
    pub fn set_limit(&mut self, limit: usize) {
        let max = limit.min(TABLE_MAX);
        if max == self.max {
            return;
        }
        self.max = max;
        self.evict(0);
        self.update = Some(match self.update {
            Some((smallest, _)) => (smallest.min(max), max),
            None => (max, max),
        });
    }

    /// Empties the table (an idle connection keeps none): the next block starts by telling
    /// the client's decoder to empty its copy (a size update to 0, then back to the maximum).
    pub fn forget(&mut self) {
        if self.table.capacity() == 0 {
            return;
        }
        self.table = VecDeque::new();
        self.size = 0;
        self.update = Some((0, self.max));
    }

    /// Starts a header block: sends any size update owed.
    pub fn begin(&mut self, dst: &mut BytesMut) {
        if let Some((smallest, last)) = self.update.take() {
            put_integer(dst, smallest, 5, 0x20);
            if last != smallest {
                put_integer(dst, last, 5, 0x20);
            }
        }
    }

    /// `:status`.
    pub fn status(&mut self, status: StatusCode, dst: &mut BytesMut) {
        match static_status(status.as_u16()) {
            Some(index) => put_integer(dst, index, 7, 0x80),
            None => {
                // Named by the static table's `:status` entries.
                put_integer(dst, STATUS_NAME, 4, 0);
                put_string(status.as_str().as_bytes(), false, dst);
            }
        }
    }

    /// A pseudo-header other than `:status`, as a literal (a request's, for a backend).
    pub fn pseudo(&mut self, pseudo: Pseudo, value: &[u8], dst: &mut BytesMut) {
        put_integer(dst, 0, 4, 0);
        put_string(pseudo.name().as_bytes(), false, dst);
        put_string(value, false, dst);
    }

    /// A regular header field.
    pub fn header(&mut self, name: &HeaderName, value: &HeaderValue, dst: &mut BytesMut) {
        let sensitive = value.is_sensitive()
            || matches!(
                *name,
                header::AUTHORIZATION
                    | header::PROXY_AUTHORIZATION
                    | header::COOKIE
                    | header::SET_COOKIE
            );
        let index = !sensitive && value.len() <= INDEX_AT_MOST && !changes(name);
        if index {
            if let Some(at) = self.find(|n, v| n == name && v == value) {
                put_integer(dst, at, 7, 0x80);
                return;
            }
        }
        let (prefix, flags) = match (index, sensitive) {
            (true, _) => (6, 0x40),
            (false, true) => (4, 0x10),
            (false, false) => (4, 0x00),
        };
        match static_name(name).or_else(|| self.find(|n, _| n == name)) {
            Some(at) => put_integer(dst, at, prefix, flags),
            None => {
                put_integer(dst, 0, prefix, flags);
                put_string(name.as_str().as_bytes(), true, dst);
            }
        }
        put_string(value.as_bytes(), index, dst);
        if index {
            // Copied: the value may share a backend's read buffer, which the table would
            // otherwise keep for the connection's life.
            let mut kept =
                HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
            kept.set_sensitive(false);
            self.insert(Field::Header(name.clone(), kept));
        }
    }

    /// The index of the newest table entry that `matches` (a header's name and value).
    fn find(&self, matches: impl Fn(&HeaderName, &HeaderValue) -> bool) -> Option<usize> {
        self.table
            .iter()
            .position(|(field, _)| matches!(field, Field::Header(n, v) if matches(n, v)))
            .map(|i| i + table::STATIC.len() + 1)
    }

    fn insert(&mut self, field: Field) {
        let size = field.size();
        if size > self.max {
            self.table.clear();
            self.size = 0;
            return;
        }
        self.evict(size);
        self.size += size;
        self.table.push_front((field, size));
    }

    fn evict(&mut self, room: usize) {
        while self.size + room > self.max {
            let Some((_, size)) = self.table.pop_back() else {
                break;
            };
            self.size -= size;
        }
    }
}

/// Headers whose values change from one answer to the next: kept out of the table.
fn changes(name: &HeaderName) -> bool {
    matches!(
        *name,
        header::CONTENT_LENGTH
            | header::CONTENT_RANGE
            | header::ETAG
            | header::LAST_MODIFIED
            | header::AGE
            | header::EXPIRES
            | header::LOCATION
            | header::RETRY_AFTER
    )
}

/// A string literal, Huffman-coded when asked and shorter.
fn put_string(src: &[u8], huffman: bool, dst: &mut BytesMut) {
    if huffman {
        let len = huffman::encoded_len(src);
        if len < src.len() {
            put_integer(dst, len, 7, 0x80);
            huffman::encode(src, dst);
            return;
        }
    }
    put_integer(dst, src.len(), 7, 0);
    dst.put_slice(src);
}
