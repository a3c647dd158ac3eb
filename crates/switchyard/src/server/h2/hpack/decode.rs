//! Decoding a client's header blocks (RFC 7541 sections 3, 4 and 6).

use std::collections::VecDeque;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};

use super::table::{self, Field, Pseudo, STATIC};
use super::{huffman, integer, HpackError};

/// One connection's decoding state: the dynamic table the client's encoder fills.
#[derive(Debug)]
pub struct Decoder {
    /// Newest first.
    table: VecDeque<Entry>,
    /// Sum of the entries' sizes.
    size: usize,
    /// The table's maximum, as the client last set it.
    max: usize,
    /// The most the client may set it to (our `SETTINGS_HEADER_TABLE_SIZE`).
    limit: usize,
}

/// A dynamic table entry: the field (its octets copied out of the block, so the table never
/// holds a read buffer), or for a malformed one the name alone (a later field may use it),
/// and its size.
#[derive(Debug)]
struct Entry {
    field: Result<Field, Bytes>,
    size: usize,
}

impl Decoder {
    /// A decoder whose table may grow to `limit` octets (4,096 unless a SETTINGS frame said
    /// otherwise).
    pub fn new(limit: usize) -> Self {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max: limit,
            limit,
        }
    }

    /// Decodes `block`, handing each field to `each` with its size (see [`table::size`]):
    /// `None` for a field that decodes but is malformed (an uppercase or invalid name, an
    /// unknown pseudo-header, a control octet or edge whitespace in the value), which makes
    /// its request malformed but not the connection, so decoding goes on and keeps the table
    /// in step with the client's.
    pub fn decode(
        &mut self,
        block: &Bytes,
        mut each: impl FnMut(Option<Field>, usize),
    ) -> Result<(), HpackError> {
        let src = &block[..];
        let mut at = 0;
        let mut leading = true;
        while let Some(&b) = src.get(at) {
            if b & 0x80 != 0 {
                let index = integer(src, &mut at, 7)?;
                let (field, size) = self.get(index)?;
                each(field, size);
            } else if b & 0x40 != 0 {
                let (name, value) = self.literal(block, &mut at, 6)?;
                let value = Bytes::copy_from_slice(&value);
                let size = table::size(name.len(), value.len());
                let kept = name.clone();
                let field = field(name, value);
                self.insert(Entry {
                    field: field.clone().ok_or_else(|| kept.to_bytes()),
                    size,
                });
                each(field, size);
            } else if b & 0x20 != 0 {
                // Only before the first field (RFC 7541 section 4.2).
                let max = integer(src, &mut at, 5)?;
                if !leading || max > self.limit {
                    return Err(HpackError::SizeUpdate);
                }
                self.max = max;
                self.evict(0);
                continue;
            } else {
                // Without indexing (0000) or never indexed (0001): the same to a decoder.
                let (name, value) = self.literal(block, &mut at, 4)?;
                let size = table::size(name.len(), value.len());
                each(field(name, value), size);
            }
            leading = false;
        }
        Ok(())
    }

    /// The octets the dynamic table holds, by RFC 7541's count.
    pub fn table_size(&self) -> usize {
        self.size
    }

    /// The entry at `index` of the static table then the dynamic one, and its size.
    fn get(&self, index: usize) -> Result<(Option<Field>, usize), HpackError> {
        if let Some(field) = index.checked_sub(1).and_then(|i| STATIC.get(i)) {
            return Ok((Some(field.clone()), field.size()));
        }
        let entry = index
            .checked_sub(STATIC.len() + 1)
            .and_then(|i| self.table.get(i))
            .ok_or(HpackError::Index(index))?;
        Ok((entry.field.as_ref().ok().cloned(), entry.size))
    }

    /// A literal field's name (indexed or literal, by an `n`-bit prefix) and value.
    fn literal(&self, block: &Bytes, at: &mut usize, n: u32) -> Result<(Name, Bytes), HpackError> {
        let index = integer(block, at, n)?;
        let name = if index == 0 {
            Name::Raw(string(block, at)?)
        } else if let Some(field) = STATIC.get(index - 1) {
            Name::of(field)
        } else {
            let entry = index
                .checked_sub(STATIC.len() + 1)
                .and_then(|i| self.table.get(i))
                .ok_or(HpackError::Index(index))?;
            match &entry.field {
                Ok(field) => Name::of(field),
                Err(raw) => Name::Raw(raw.clone()),
            }
        };
        Ok((name, string(block, at)?))
    }

    fn insert(&mut self, entry: Entry) {
        let size = entry.size;
        if size > self.max {
            // Larger than the whole table: it empties the table (RFC 7541 section 4.4).
            self.table.clear();
            self.size = 0;
            return;
        }
        self.evict(size);
        self.size += size;
        self.table.push_front(entry);
    }

    /// Evicts the oldest entries until `room` more octets fit.
    fn evict(&mut self, room: usize) {
        while self.size + room > self.max {
            let Some(old) = self.table.pop_back() else {
                break;
            };
            self.size -= old.size;
        }
    }
}

/// A literal's name: one a table entry already checked, or octets to check.
#[derive(Clone)]
enum Name {
    Pseudo(Pseudo),
    Header(HeaderName),
    Raw(Bytes),
}

impl Name {
    fn of(field: &Field) -> Name {
        match field {
            Field::Pseudo(p, _) => Name::Pseudo(*p),
            Field::Header(name, _) => Name::Header(name.clone()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Name::Pseudo(p) => p.name().len(),
            Name::Header(name) => name.as_str().len(),
            Name::Raw(raw) => raw.len(),
        }
    }

    /// Its octets, owned (for the table).
    fn to_bytes(&self) -> Bytes {
        match self {
            Name::Pseudo(p) => Bytes::from_static(p.name().as_bytes()),
            Name::Header(name) => Bytes::copy_from_slice(name.as_str().as_bytes()),
            Name::Raw(raw) => Bytes::copy_from_slice(raw),
        }
    }
}

/// A string literal (RFC 7541 section 5.2): the block's own octets, or the Huffman-decoded
/// ones.
fn string(block: &Bytes, at: &mut usize) -> Result<Bytes, HpackError> {
    let huffman = block.get(*at).ok_or(HpackError::Truncated)? & 0x80 != 0;
    let len = integer(block, at, 7)?;
    let end = at
        .checked_add(len)
        .filter(|&end| end <= block.len())
        .ok_or(HpackError::Truncated)?;
    let raw = &block[*at..end];
    let out = if huffman {
        let mut out = Vec::with_capacity(len + len / 2);
        huffman::decode(raw, &mut out)?;
        Bytes::from(out)
    } else {
        block.slice(*at..end)
    };
    *at = end;
    Ok(out)
}

/// The field `name` and `value` make, if well-formed for HTTP/2 (RFC 9113 section 8.2.1).
fn field(name: Name, value: Bytes) -> Option<Field> {
    let bad_edge = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    if bad_edge(value.first()) || bad_edge(value.last()) {
        return None;
    }
    let name = match name {
        Name::Pseudo(p) => return pseudo(p, value),
        Name::Header(name) => name,
        Name::Raw(raw) if raw.first() == Some(&b':') => return pseudo(Pseudo::of(&raw)?, value),
        Name::Raw(raw) if raw.iter().any(u8::is_ascii_uppercase) => return None,
        Name::Raw(raw) => HeaderName::from_bytes(&raw).ok()?,
    };
    let value = HeaderValue::from_maybe_shared(value).ok()?;
    Some(Field::Header(name, value))
}

fn pseudo(p: Pseudo, value: Bytes) -> Option<Field> {
    if value.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n') {
        return None;
    }
    Some(Field::Pseudo(p, value))
}
