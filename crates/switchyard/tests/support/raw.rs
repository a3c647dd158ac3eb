//! An HTTP/1.1 client connection written and read by hand, so that a test sees exactly what
//! goes over the wire (the head as sent, the framing, stray bytes) and whether the peer keeps
//! the connection or closes it.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest wait for any single read before the test gives up.
pub const WAIT: Duration = Duration::from_secs(2);

/// How long a connection must stay silent (no bytes, no close) to count as kept open.
pub const QUIET: Duration = Duration::from_millis(200);

/// A response read off a raw socket.
#[derive(Debug)]
pub struct RawResp {
    /// `HTTP/1.1` or `HTTP/1.0`, as the status line says.
    pub version: String,
    pub status: u16,
    /// The head as sent, for messages.
    pub head: String,
    /// Header names lowercased, values as sent, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResp {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (lowercase), in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The backend's view of the request, from a test-server `/echo` answer.
    pub fn echoed(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not echo JSON ({e}): {}", self.head))
    }
}

/// One client connection written and read by hand.
pub struct RawConn {
    pub stream: TcpStream,
    /// Bytes read and not yet taken by a response.
    pub buf: Vec<u8>,
}

impl RawConn {
    pub async fn connect(addr: SocketAddr) -> Self {
        RawConn {
            stream: TcpStream::connect(addr).await.expect("connect"),
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write request");
    }

    /// Reads more bytes; false on EOF or reset.
    pub async fn fill(&mut self) -> bool {
        let mut tmp = [0u8; 16 * 1024];
        let n = tokio::time::timeout(WAIT, self.stream.read(&mut tmp))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no answer within {WAIT:?}; so far {:?}",
                    String::from_utf8_lossy(&self.buf)
                )
            })
            .unwrap_or(0);
        self.buf.extend_from_slice(&tmp[..n]);
        n > 0
    }

    /// Reads a response head. The buffer must start with one: stray bytes before it mean
    /// the previous response's framing was wrong (say, a body it should not have had).
    pub async fn read_head(&mut self) -> RawResp {
        loop {
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..p + 4]).into_owned();
                self.buf.drain(..p + 4);
                let mut lines = head.split("\r\n");
                let status_line = lines.next().unwrap_or_default();
                let version = status_line.get(..8).unwrap_or_default().to_owned();
                assert!(
                    (version == "HTTP/1.1" || version == "HTTP/1.0")
                        && status_line.as_bytes().get(8) == Some(&b' '),
                    "not a status line: {head:?}"
                );
                let status = status_line
                    .get(9..12)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("no status code: {head:?}"));
                let headers = lines
                    .filter(|l| !l.is_empty())
                    .map(|l| {
                        let (n, v) = l
                            .split_once(':')
                            .unwrap_or_else(|| panic!("bad header line {l:?} in {head:?}"));
                        (n.trim().to_ascii_lowercase(), v.trim().to_owned())
                    })
                    .collect();
                return RawResp {
                    version,
                    status,
                    head,
                    headers,
                    body: Vec::new(),
                };
            }
            assert!(
                self.fill().await,
                "connection closed before a response head; got {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    /// Reads a whole response to a request with method `method`, framed as its head says:
    /// no body after HEAD, 1xx, 204 or 304; else chunked, `Content-Length`, or to the close.
    pub async fn read_response(&mut self, method: &str) -> RawResp {
        let mut resp = self.read_head().await;
        if method == "HEAD" || matches!(resp.status, 100..=199 | 204 | 304) {
            return resp;
        }
        if resp
            .header("transfer-encoding")
            .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
        {
            resp.body = self.read_chunked().await;
        } else if let Some(len) = resp.header("content-length") {
            let len: usize = len
                .parse()
                .unwrap_or_else(|_| panic!("bad content-length: {}", resp.head));
            while self.buf.len() < len {
                assert!(self.fill().await, "connection closed mid-body");
            }
            resp.body = self.buf.drain(..len).collect();
        } else {
            while self.fill().await {}
            resp.body = std::mem::take(&mut self.buf);
        }
        resp
    }

    /// Reads a chunked body, trailer fields and all; returns the chunks' data.
    pub async fn read_chunked(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line().await;
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
            if size == 0 {
                while !self.read_line().await.is_empty() {} // trailer fields
                return body;
            }
            while self.buf.len() < size + 2 {
                assert!(self.fill().await, "connection closed mid-chunk");
            }
            body.extend_from_slice(&self.buf[..size]);
            self.buf.drain(..size + 2);
        }
    }

    /// Reads one CRLF-terminated line, without the CRLF.
    pub async fn read_line(&mut self) -> String {
        loop {
            if let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..p]).into_owned();
                self.buf.drain(..p + 2);
                return line;
            }
            assert!(self.fill().await, "connection closed mid-body");
        }
    }

    /// Panics unless the peer closes the connection (EOF or reset) with nothing more sent.
    pub async fn assert_closed(&mut self, what: &str) {
        match self.next_read(what, WAIT).await {
            Some(Ok(more)) if !more.is_empty() => panic!(
                "{what}: more bytes instead of a close: {:?}",
                String::from_utf8_lossy(&more)
            ),
            Some(_) => {}
            None => panic!("{what}: the connection stayed open"),
        }
    }

    /// Panics unless the connection stays open and silent for `QUIET`.
    pub async fn assert_open(&mut self, what: &str) {
        match self.next_read(what, QUIET).await {
            None => {}
            Some(Ok(more)) if more.is_empty() => panic!("{what}: the proxy closed the connection"),
            Some(Ok(more)) => panic!(
                "{what}: unexpected bytes: {:?}",
                String::from_utf8_lossy(&more)
            ),
            Some(Err(e)) => panic!("{what}: the connection failed: {e}"),
        }
    }

    /// After a whole response: panics if bytes past it are buffered, then waits up to `wait`
    /// for one read. `None` if the connection stayed silent, else what the read got (empty on
    /// EOF).
    async fn next_read(&mut self, what: &str, wait: Duration) -> Option<io::Result<Vec<u8>>> {
        assert!(
            self.buf.is_empty(),
            "{what}: stray bytes after the response: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        let mut tmp = [0u8; 1024];
        let read = tokio::time::timeout(wait, self.stream.read(&mut tmp))
            .await
            .ok()?;
        Some(read.map(|n| tmp[..n].to_vec()))
    }

    /// The connection still serves: `GET /echo?again` is answered in full on it, by a
    /// test-server backend, and the connection then stays open.
    pub async fn assert_serves_another(&mut self) {
        self.send(b"GET /echo?again HTTP/1.1\r\nHost: a\r\n\r\n")
            .await;
        let resp = self.read_response("GET").await;
        assert_eq!(resp.status, 200, "{}", resp.head);
        assert_eq!(resp.echoed()["query"], "again");
        self.assert_open("after another request").await;
    }
}
