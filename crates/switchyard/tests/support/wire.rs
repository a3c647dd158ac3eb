//! HTTP/1.1 on raw sockets, for tests that decide exactly when bytes go out and when a
//! connection closes: a client that uploads in timed pieces while it reads the answer, and
//! the reading end of a raw backend.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How reading an answer ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// A whole response: head, and as many body bytes as its `Content-Length` says.
    Complete,
    /// The peer closed the connection first.
    Eof,
    /// Reading failed (typically `ConnectionReset`).
    Error(io::ErrorKind),
    /// Nothing more came within the wait.
    TimedOut,
}

/// A response as read off a raw socket, whole or not.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The status code, once the status line arrived.
    pub status: Option<u16>,
    /// The head, lowercased (status line and headers).
    pub head: String,
    /// Body bytes read (not decoded: `Content-Length` bodies only).
    pub body: Vec<u8>,
    /// The `Content-Length` the head announced.
    pub content_length: Option<usize>,
    /// How reading ended.
    pub end: End,
}

impl Answer {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Status and how the answer ended, for messages: `413 Complete`, `none Error(ConnectionReset)`.
    pub fn summary(&self) -> String {
        let status = self.status.map_or("none".to_owned(), |s| s.to_string());
        format!("{status} {:?}", self.end)
    }
}

/// Reads one response from `reader`: until it is complete (by its `Content-Length`), the
/// peer closes, reading fails, or `within` passes.
pub async fn read_answer(reader: &mut (impl AsyncRead + Unpin), within: Duration) -> Answer {
    let mut buf = Vec::new();
    let mut tmp = vec![0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + within;
    let end = loop {
        if let Some(answer) = parse(&buf, End::Complete) {
            if answer
                .content_length
                .is_some_and(|len| answer.body.len() >= len)
            {
                return answer;
            }
        }
        match tokio::time::timeout_at(deadline, reader.read(&mut tmp)).await {
            Err(_) => break End::TimedOut,
            Ok(Ok(0)) => break End::Eof,
            Ok(Ok(n)) => buf.extend_from_slice(&tmp[..n]),
            Ok(Err(e)) => break End::Error(e.kind()),
        }
    };
    parse(&buf, end).unwrap_or(Answer {
        status: None,
        head: String::from_utf8_lossy(&buf).to_ascii_lowercase(),
        body: Vec::new(),
        content_length: None,
        end,
    })
}

/// The response in `buf`, if its head is there.
fn parse(buf: &[u8], end: End) -> Option<Answer> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok());
    let content_length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == "content-length")
        .and_then(|(_, v)| v.trim().parse().ok());
    Some(Answer {
        status,
        head,
        body: buf[head_end..].to_vec(),
        content_length,
        end,
    })
}

/// Sends `head`, then each of `pieces` after waiting `pause` (none before the first), on a
/// fresh connection to `addr`, while reading the answer; returns the answer once it is read
/// (see [`read_answer`], bounded by `within` from the start). Write errors end the writing,
/// not the reading: a server may answer and close before the body is all sent. The
/// connection is not half-closed after the last piece, so a client that stops sending
/// midway (pieces that stop short of the declared length) is a client that stalls.
pub async fn upload(
    addr: SocketAddr,
    head: String,
    pieces: Vec<Bytes>,
    pause: Duration,
    within: Duration,
) -> Answer {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let write = async move {
        if writer.write_all(head.as_bytes()).await.is_ok() {
            for (i, piece) in pieces.iter().enumerate() {
                if i > 0 && !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                if writer.write_all(piece).await.is_err() {
                    break;
                }
            }
        }
        // Keep the write half (dropping it would send FIN) until the answer is read.
        std::future::pending::<()>().await;
    };
    tokio::select! {
        answer = read_answer(&mut reader, within) => answer,
        _ = write => unreachable!("the writer never finishes"),
    }
}

/// `body` cut in pieces of `size` bytes, each framed as one chunk of a chunked body; the
/// last piece also carries the final empty chunk.
pub fn chunked(body: &[u8], size: usize) -> Vec<Bytes> {
    let mut pieces: Vec<Bytes> = body
        .chunks(size)
        .map(|c| {
            let mut framed = format!("{:x}\r\n", c.len()).into_bytes();
            framed.extend_from_slice(c);
            framed.extend_from_slice(b"\r\n");
            Bytes::from(framed)
        })
        .collect();
    match pieces.last_mut() {
        Some(last) => {
            let mut with_end = last.to_vec();
            with_end.extend_from_slice(b"0\r\n\r\n");
            *last = Bytes::from(with_end);
        }
        None => pieces.push(Bytes::from_static(b"0\r\n\r\n")),
    }
    pieces
}

/// Reads a request head from `stream` (a raw backend's side); returns it with whatever
/// bytes came after it, or `None` if the connection closed first.
pub async fn read_request_head(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..p + 4]).into_owned();
            return Some((head, buf[p + 4..].to_vec()));
        }
        match stream.read(&mut tmp).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
}
