//! How a client connection waits for its client's next bytes without a buffer
//! ([`IdleIo::poll_readable`]): an idle HTTP/1.1 connection frees its read buffer
//! (`super::h1`), as nginx frees a keep-alive connection's buffers once its answer is out
//! (`ngx_http_set_keepalive`), and waits on the socket alone, or on what TLS already
//! decrypted.

use std::io;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;

use super::io::ClientIo;

pub use super::h1::clock::RELEASE_AFTER;

/// A client transport whose connection can wait for the client's next bytes without a
/// buffer.
pub trait IdleIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {
    /// `Ready` once reading may give something (bytes, the end of the stream, an error).
    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl IdleIo for ClientIo {
    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_read_ready(cx)
    }
}

impl IdleIo for TlsStream<ClientIo> {
    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let (socket, tls) = self.get_mut();
        // Records already decrypted are readable now, whatever the socket says.
        match tls.process_new_packets() {
            Ok(state) if state.plaintext_bytes_to_read() > 0 || state.peer_has_closed() => {
                Poll::Ready(Ok(()))
            }
            Ok(_) => socket.poll_read_ready(cx),
            Err(e) => Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e))),
        }
    }
}
