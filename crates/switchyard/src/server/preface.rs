//! Which HTTP a client connection speaks, told from its first bytes: HTTP/2 with prior
//! knowledge starts with the connection preface (RFC 9113 §3.4), anything else is HTTP/1.
//! The bytes read to tell are handed back in front of the stream ([`Rewind`]).
//!
//! A deadline on the preface read (a client that sends `PRI` and then nothing would
//! otherwise hold the connection forever), and the protocol chosen, which the request path
//! needs (`Transport.protocol`) and which says which of switchyard's servers takes the
//! connection (`server::h1`, `server::h2`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use crate::proxy::context::Protocol;

/// The HTTP/2 connection preface.
pub const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How much the first read takes: usually a whole HTTP/1.1 request head, so that telling
/// the protocol costs no read of its own.
const FIRST_READ: usize = 2048;

/// Reads the first bytes of `io` (for at most `within`) and tells the protocol from them.
/// `None`: the client closed, or sent nothing in time, or reading failed.
pub async fn detect<I>(mut io: I, within: Duration) -> Option<(Protocol, Rewind<I>)>
where
    I: AsyncRead + Unpin,
{
    let mut buf = BytesMut::with_capacity(FIRST_READ);
    let read = async {
        loop {
            match io.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return buf.len(),
                Ok(_) => {
                    let n = buf.len().min(H2_PREFACE.len());
                    if buf[..n] != H2_PREFACE[..n] {
                        return buf.len();
                    }
                    if n == H2_PREFACE.len() {
                        return n;
                    }
                }
            }
        }
    };
    let got = tokio::time::timeout(within, read).await.ok()?;
    if got == 0 {
        return None;
    }
    let protocol = if buf.starts_with(H2_PREFACE) {
        Protocol::Http2
    } else {
        Protocol::Http1
    };
    Some((protocol, Rewind::new(buf.freeze(), io)))
}

/// A stream with bytes already read from it put back in front.
#[derive(Debug)]
pub struct Rewind<I> {
    prefix: Bytes,
    io: I,
}

// === impl Rewind ===

impl<I> Rewind<I> {
    /// `io`, reading `prefix` first.
    pub fn new(prefix: Bytes, io: I) -> Self {
        Rewind { prefix, io }
    }

    /// The bytes not read yet, and the stream.
    pub fn into_parts(self) -> (Bytes, I) {
        (self.prefix, self.io)
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            if self.prefix.is_empty() {
                // Free the buffer now rather than with the connection.
                self.prefix = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Rewind<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn detect_bytes(chunks: &[&[u8]]) -> Option<(Protocol, Vec<u8>)> {
        let (mut client, server) = tokio::io::duplex(4096);
        for chunk in chunks {
            client.write_all(chunk).await.expect("write");
        }
        drop(client);
        let (protocol, mut rewind) = detect(server, Duration::from_secs(1)).await?;
        let mut all = Vec::new();
        rewind.read_to_end(&mut all).await.expect("read");
        Some((protocol, all))
    }

    #[tokio::test]
    async fn tells_http2_from_http1_and_gives_every_byte_back() {
        let h1 = detect_bytes(&[b"GET / HTTP/1.1\r\n\r\n"])
            .await
            .expect("h1");
        assert_eq!(h1, (Protocol::Http1, b"GET / HTTP/1.1\r\n\r\n".to_vec()));
        let mut h2 = H2_PREFACE.to_vec();
        h2.extend_from_slice(b"\0\0\0\x04\0\0\0\0\0");
        let got = detect_bytes(&[&h2[..3], &h2[3..10], &h2[10..]])
            .await
            .expect("h2");
        assert_eq!(got, (Protocol::Http2, h2));
        // A method starting like the preface is still HTTP/1.
        let post = detect_bytes(&[b"P", b"OST / HTTP/1.1\r\n\r\n"]).await;
        assert_eq!(post.expect("post").0, Protocol::Http1);
        assert!(detect_bytes(&[]).await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_silent_after_a_partial_preface_is_given_up_on() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b"PRI * HT").await.expect("write");
        assert!(detect(server, Duration::from_secs(5)).await.is_none());
        drop(client);
    }
}
