//! Raw HTTP/2 frames over a TCP socket, for tests that send what no well-behaved client
//! would (floods, resets, header bombs, a stalled window): a frame encoder, the least of
//! HPACK (literals with and without indexing, indexed fields; no Huffman), and a reader that
//! parses frames until the server closes the connection.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const DATA: u8 = 0;
pub const HEADERS: u8 = 1;
pub const RST_STREAM: u8 = 3;
pub const SETTINGS: u8 = 4;
pub const PING: u8 = 6;
pub const GOAWAY: u8 = 7;
pub const WINDOW_UPDATE: u8 = 8;
pub const CONTINUATION: u8 = 9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;

pub const CANCEL: u32 = 0x8;
pub const REFUSED_STREAM: u32 = 0x7;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

/// One frame: 9-byte header, then the payload.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A SETTINGS frame with `(id, value)` pairs.
pub fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (id, value) in pairs {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&value.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &payload)
}

/// RST_STREAM with `code`.
pub fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &code.to_be_bytes())
}

/// HPACK integer with an `n`-bit prefix, the prefix's other bits `first`.
pub fn hpack_int(out: &mut Vec<u8>, first: u8, n: u8, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

fn hpack_str(out: &mut Vec<u8>, s: &[u8]) {
    hpack_int(out, 0, 7, s.len());
    out.extend_from_slice(s);
}

/// A literal header field without indexing (new name).
pub fn literal(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.push(0x00);
    hpack_str(out, name.as_bytes());
    hpack_str(out, value);
}

/// A literal header field with incremental indexing: it enters the dynamic table (index 62
/// when it is the newest entry).
pub fn literal_indexed(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.push(0x40);
    hpack_str(out, name.as_bytes());
    hpack_str(out, value);
}

/// An indexed header field (static table 1-61, dynamic from 62).
pub fn indexed(out: &mut Vec<u8>, index: usize) {
    hpack_int(out, 0x80, 7, index);
}

/// The header block of `GET path` to `authority`.
pub fn get_block(path: &str, authority: &str) -> Vec<u8> {
    let mut out = Vec::new();
    indexed(&mut out, 2); // :method GET
    indexed(&mut out, 6); // :scheme http
    literal(&mut out, ":path", path.as_bytes());
    literal(&mut out, ":authority", authority.as_bytes());
    out
}

/// A frame read back.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The error code of a RST_STREAM or GOAWAY.
    pub fn error_code(&self) -> Option<u32> {
        let at = match self.kind {
            RST_STREAM => 0,
            GOAWAY => 4,
            _ => return None,
        };
        let bytes = self.payload.get(at..at + 4)?;
        Some(u32::from_be_bytes(bytes.try_into().ok()?))
    }
}

/// What reading a connection showed.
#[derive(Debug, Default)]
pub struct Seen {
    pub frames: Vec<Frame>,
    /// The server closed the connection (EOF or reset).
    pub closed: bool,
}

impl Seen {
    pub fn goaway(&self) -> Option<&Frame> {
        self.frames.iter().find(|f| f.kind == GOAWAY)
    }

    pub fn count(&self, kind: u8) -> usize {
        self.frames.iter().filter(|f| f.kind == kind).count()
    }

    /// RST_STREAMs with `code`.
    pub fn resets(&self, code: u32) -> usize {
        self.frames
            .iter()
            .filter(|f| f.kind == RST_STREAM && f.error_code() == Some(code))
            .count()
    }

    /// The `:status` of response HEADERS frames: counted, not decoded (it is enough to know
    /// a response began).
    pub fn responses(&self) -> usize {
        self.count(HEADERS)
    }
}

/// A raw HTTP/2 client connection.
pub struct RawH2 {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawH2 {
    /// Connects and sends the preface and a SETTINGS frame with `pairs`.
    pub async fn connect(addr: SocketAddr, pairs: &[(u16, u32)]) -> Self {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let _ = stream.set_nodelay(true);
        let mut hello = PREFACE.to_vec();
        hello.extend_from_slice(&settings(pairs));
        stream.write_all(&hello).await.expect("preface");
        RawH2 {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes `bytes`; false if the server closed the connection meanwhile.
    pub async fn send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok()
    }

    /// Reads frames until the server closes the connection, `stop` says enough, or
    /// `within` passes.
    pub async fn read(&mut self, within: Duration, mut stop: impl FnMut(&Frame) -> bool) -> Seen {
        let mut seen = Seen::default();
        let deadline = tokio::time::Instant::now() + within;
        let mut tmp = vec![0u8; 64 * 1024];
        loop {
            while let Some(frame) = self.next_buffered() {
                let done = stop(&frame);
                seen.frames.push(frame);
                if done {
                    return seen;
                }
            }
            match tokio::time::timeout_at(deadline, self.stream.read(&mut tmp)).await {
                Err(_) => return seen,
                Ok(Ok(0)) | Ok(Err(_)) => {
                    seen.closed = true;
                    return seen;
                }
                Ok(Ok(n)) => self.buf.extend_from_slice(&tmp[..n]),
            }
        }
    }

    fn next_buffered(&mut self) -> Option<Frame> {
        if self.buf.len() < 9 {
            return None;
        }
        let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
        if self.buf.len() < 9 + len {
            return None;
        }
        let head: Vec<u8> = self.buf.drain(..9 + len).collect();
        Some(Frame {
            kind: head[3],
            flags: head[4],
            stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
            payload: head[9..].to_vec(),
        })
    }
}

/// An HTTP/2 backend that refuses every stream (`RST_STREAM REFUSED_STREAM`), as an
/// overloaded server does: each request provably unprocessed. Counts the streams refused.
pub async fn refusing_backend() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let refused = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = refused.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut preface = [0u8; 24];
                if stream.read_exact(&mut preface).await.is_err() {
                    return;
                }
                let _ = stream.write_all(&settings(&[])).await;
                let mut conn = RawH2 {
                    stream,
                    buf: Vec::new(),
                };
                loop {
                    let seen = conn.read(Duration::from_secs(5), |_| true).await;
                    let Some(frame) = seen.frames.first() else {
                        return;
                    };
                    let answer = match frame.kind {
                        SETTINGS if frame.flags & ACK == 0 => frame_ack(),
                        HEADERS => {
                            count.fetch_add(1, Ordering::SeqCst);
                            rst_stream(frame.stream, REFUSED_STREAM)
                        }
                        _ => continue,
                    };
                    if !conn.send(&answer).await {
                        return;
                    }
                }
            });
        }
    });
    (addr, refused)
}

fn frame_ack() -> Vec<u8> {
    frame(SETTINGS, ACK, 0, &[])
}
