//! The PROXY protocol (HAProxy's, versions 1 and 2): a TCP load balancer in front of
//! switchyard opens each connection with a header naming the client it came from. On a
//! listener with `proxy_protocol = true` a connection from `[access] trusted_proxies` must
//! start with one, and its source address becomes the connection's client for logs, limits
//! and IP rules alike; a connection from any other peer is served as it is (its peer is the
//! client, and a PROXY header it sends is just a malformed request).
//!
//! The parsing is the `ppp` crate's; what is ours is taking exactly the header's bytes off
//! the socket and nothing of the request behind it, without reading byte by byte:
//! [`read`] peeks at what has arrived, consumes only bytes that are certainly header, and
//! waits for more only once everything arrived so far is consumed (so a peek never spins).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use ppp::v2;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The v2 header's fixed part: the signature, then version and command, family and
/// protocol, and the length of what follows.
const V2_FIXED: usize = 16;
/// The v2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The v1 header's start.
const V1_PREFIX: &[u8; 6] = b"PROXY ";
/// The longest v1 header, `\r\n` included (the specification's 107 bytes).
const V1_MAX: usize = 107;
/// The longest v2 header taken: addresses and the TLVs load balancers add (a VPC endpoint
/// id, an authority) fit many times over; more is refused rather than buffered.
pub const V2_MAX: usize = 4096;

/// Why a connection's PROXY header was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection closed or failed before the header was whole.
    #[error("connection ended inside the PROXY header: {0}")]
    Io(#[from] io::Error),
    /// Not a PROXY header at all (a trusted peer must send one).
    #[error("no PROXY protocol header")]
    Missing,
    /// A header `ppp` could not parse.
    #[error("malformed PROXY header: {0}")]
    Malformed(String),
    /// Longer than the protocol (v1) or [`V2_MAX`] (v2) allows.
    #[error("PROXY header too long")]
    TooLong,
    /// Not whole within the listener's read timeout.
    #[error("PROXY header not received within {0:?}")]
    TimedOut(Duration),
}

/// What the bytes so far say about the header's length.
#[derive(Debug)]
pub enum Framing {
    /// The header is this many bytes long.
    Complete(usize),
    /// Everything so far belongs to a header that is not whole yet.
    Partial,
    /// Not a PROXY header, or one longer than allowed.
    Invalid(Error),
}

/// Tells the length of the header that `bytes` (the connection's first bytes) start with.
pub fn framing(bytes: &[u8]) -> Framing {
    let starts = |prefix: &[u8]| {
        let n = bytes.len().min(prefix.len());
        bytes[..n] == prefix[..n]
    };
    if starts(V2_SIGNATURE) {
        if bytes.len() < V2_FIXED {
            return Framing::Partial;
        }
        let len = V2_FIXED + usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
        return if len > V2_MAX {
            Framing::Invalid(Error::TooLong)
        } else {
            Framing::Complete(len)
        };
    }
    if starts(V1_PREFIX) {
        let window = &bytes[..bytes.len().min(V1_MAX)];
        return match window.windows(2).position(|w| w == b"\r\n") {
            Some(end) => Framing::Complete(end + 2),
            None if bytes.len() >= V1_MAX => Framing::Invalid(Error::TooLong),
            None => Framing::Partial,
        };
    }
    Framing::Invalid(Error::Missing)
}

/// The client a whole header names: `Some` source address for a proxied TCP connection,
/// `None` when the header says the connection is the proxy's own (v2 `LOCAL`, v1
/// `UNKNOWN`, or a family other than TCP over IPv4/IPv6): its peer is then the client.
pub fn parse(header: &[u8]) -> Result<Option<SocketAddr>, Error> {
    if header.starts_with(V2_SIGNATURE) {
        let parsed = v2::Header::try_from(header).map_err(|e| Error::Malformed(e.to_string()))?;
        if parsed.command == v2::Command::Local {
            return Ok(None);
        }
        return Ok(match parsed.addresses {
            v2::Addresses::IPv4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
            v2::Addresses::IPv6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
            v2::Addresses::Unspecified | v2::Addresses::Unix(_) => None,
        });
    }
    let parsed = ppp::v1::Header::try_from(header).map_err(|e| Error::Malformed(e.to_string()))?;
    Ok(match parsed.addresses {
        ppp::v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        ppp::v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        ppp::v1::Addresses::Unknown => None,
    })
}

/// Takes the PROXY header off `stream` (within `within`) and returns the client it names
/// (`None`: the peer itself). Nothing after the header is read.
pub async fn read(stream: &mut TcpStream, within: Duration) -> Result<Option<SocketAddr>, Error> {
    tokio::time::timeout(within, read_header(stream))
        .await
        .map_err(|_| Error::TimedOut(within))?
}

async fn read_header(stream: &mut TcpStream) -> Result<Option<SocketAddr>, Error> {
    // What is consumed so far (all of it header), and a window for peeking at what follows.
    let mut header: Vec<u8> = Vec::with_capacity(V1_MAX);
    let mut peeked = [0u8; V1_MAX + 1];
    loop {
        let n = stream.peek(&mut peeked).await?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        let had = header.len();
        header.extend_from_slice(&peeked[..n]);
        match framing(&header) {
            Framing::Complete(len) => {
                // Peeked beyond the header: keep only its part. Peeked short of it: the
                // rest is header too, read as it comes.
                header.resize(len, 0);
                stream.read_exact(&mut header[had..]).await?;
                return parse(&header);
            }
            Framing::Partial => {
                stream.read_exact(&mut header[had..]).await?;
            }
            Framing::Invalid(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests;
