//! The bytes on their way to a client, in order: a long data chunk queued as it came (never
//! copied), the small pieces between chunks (an HTTP/1.1 head and chunk-size lines, HTTP/2
//! frame heads and control frames, short chunks) copied together, all written with one
//! `writev` when there are several.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::HeaderMap;
use http::StatusCode;
use tokio::io::AsyncWrite;

/// A data chunk at most this long is copied behind what is queued; a longer one is queued.
const COPY_AT_MOST: usize = 4096;

/// Most pieces handed to one `writev`.
const MAX_SLICES: usize = 16;

/// `len` in hex with CRLF, written into `line`.
pub fn chunk_size(len: usize, line: &mut [u8; 18]) -> &[u8] {
    let digits = (usize::BITS - len.leading_zeros()).div_ceil(4).max(1) as usize;
    for (i, slot) in line[..digits].iter_mut().enumerate() {
        let shift = 4 * (digits - 1 - i);
        *slot = b"0123456789abcdef"[(len >> shift) & 0xf];
    }
    line[digits..digits + 2].copy_from_slice(b"\r\n");
    &line[..digits + 2]
}

/// Bytes on their way to the client, in order: long chunks as they came, the small pieces
/// between them copied together.
#[derive(Debug, Default)]
pub struct Out {
    queue: VecDeque<Bytes>,
    tail: BytesMut,
    /// Bytes queued in all.
    pub queued: usize,
}

impl Out {
    /// The status line (`HTTP/1.0` to an HTTP/1.0 client, as hyper's server wrote it) and
    /// the header section.
    pub fn head(&mut self, http10: bool, status: StatusCode, headers: &HeaderMap) {
        let size: usize = headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum();
        self.tail.reserve(size + 32 + COPY_AT_MOST);
        self.copy(if http10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
        self.copy(status.as_str().as_bytes());
        self.copy(b" ");
        self.copy(status.canonical_reason().unwrap_or("").as_bytes());
        self.copy(b"\r\n");
        for (name, value) in headers {
            self.field(name.as_str().as_bytes(), value.as_bytes());
        }
        self.copy(b"\r\n");
    }

    /// Writes into the copied pieces with `put` (HTTP/2 frames).
    pub fn put(&mut self, put: impl FnOnce(&mut BytesMut)) {
        let before = self.tail.len();
        put(&mut self.tail);
        self.queued += self.tail.len() - before;
    }

    /// Nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Frees the buffer of copied pieces when nothing is queued (an idle connection holds
    /// none).
    pub fn release(&mut self) {
        if self.queued == 0 {
            self.tail = BytesMut::new();
            self.queue = VecDeque::new();
        }
    }

    /// One field line of an HTTP/1.1 head.
    pub fn field(&mut self, name: &[u8], value: &[u8]) {
        self.copy(name);
        self.copy(b": ");
        self.copy(value);
        self.copy(b"\r\n");
    }

    /// Copies `bytes` in.
    pub fn copy(&mut self, bytes: &[u8]) {
        self.tail.extend_from_slice(bytes);
        self.queued += bytes.len();
    }

    /// Queues `data` (copied when short).
    pub fn data(&mut self, data: Bytes) {
        if data.len() <= COPY_AT_MOST {
            self.copy(&data);
            return;
        }
        if !self.tail.is_empty() {
            self.queue.push_back(self.tail.split().freeze());
        }
        self.queued += data.len();
        self.queue.push_back(data);
    }

    /// Writes what it can of the queue, then of the tail, in one call.
    pub fn poll_write<W: AsyncWrite + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        mut io: Pin<&mut W>,
    ) -> Poll<io::Result<usize>> {
        let n = if self.queue.is_empty() {
            std::task::ready!(io.as_mut().poll_write(cx, &self.tail))?
        } else {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut count = 0;
            for piece in self.queue.iter().take(MAX_SLICES - 1) {
                slices[count] = IoSlice::new(piece);
                count += 1;
            }
            if count == self.queue.len() && !self.tail.is_empty() {
                slices[count] = IoSlice::new(&self.tail);
                count += 1;
            }
            std::task::ready!(io.as_mut().poll_write_vectored(cx, &slices[..count]))?
        };
        self.advance(n);
        Poll::Ready(Ok(n))
    }

    fn advance(&mut self, mut n: usize) {
        self.queued -= n;
        while n > 0 {
            match self.queue.front_mut() {
                Some(piece) if piece.len() <= n => {
                    n -= piece.len();
                    self.queue.pop_front();
                }
                Some(piece) => {
                    piece.advance(n);
                    return;
                }
                None => {
                    self.tail.advance(n);
                    if self.tail.is_empty() {
                        // Reused from its start for what comes next.
                        self.tail.clear();
                    }
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_are_lowercase_hex_lines() {
        let mut line = [0u8; 18];
        assert_eq!(chunk_size(1, &mut line), b"1\r\n");
        assert_eq!(chunk_size(255, &mut line), b"ff\r\n");
        assert_eq!(chunk_size(4096, &mut line), b"1000\r\n");
        assert_eq!(chunk_size(usize::MAX, &mut line).len(), 18);
    }

    #[test]
    fn queued_bytes_leave_in_order_and_long_chunks_are_not_copied() {
        let mut out = Out::default();
        out.copy(b"head ");
        let long = Bytes::from(vec![b'x'; COPY_AT_MOST + 1]);
        out.data(long.clone());
        out.copy(b" end");
        assert_eq!(out.queue.len(), 2);
        assert_eq!(out.queue[1].as_ptr(), long.as_ptr());
        assert_eq!(out.queued, 5 + long.len() + 4);
        out.advance(3);
        assert_eq!(&out.queue[0][..], b"d ");
        out.advance(2 + long.len() + 1);
        assert!(out.queue.is_empty());
        assert_eq!(&out.tail[..], b"end");
        out.advance(3);
        assert_eq!(out.queued, 0);
    }
}
