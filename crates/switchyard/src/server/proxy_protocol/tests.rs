use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

fn v2(command: u8, source: &str, destination: &str, tlv: Option<&[u8]>) -> Vec<u8> {
    let addresses: v2::Addresses = (
        source.parse::<SocketAddr>().expect("address"),
        destination.parse::<SocketAddr>().expect("address"),
    )
        .into();
    let mut builder = v2::Builder::with_addresses(command, v2::Protocol::Stream, addresses);
    if let Some(value) = tlv {
        builder = builder.write_tlv(0xE0, value).expect("tlv");
    }
    builder.build().expect("header")
}

const PROXY_V2: u8 = 0x21;
const LOCAL_V2: u8 = 0x20;

#[test]
fn v1_headers_name_their_source() {
    let header = b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 443\r\n";
    assert!(matches!(framing(header), Framing::Complete(n) if n == header.len()));
    assert_eq!(
        parse(header).expect("parses"),
        Some("203.0.113.7:51234".parse().expect("address"))
    );
    let six = b"PROXY TCP6 2001:db8::7 2001:db8::1 51234 443\r\n";
    assert_eq!(
        parse(six).expect("parses"),
        Some("[2001:db8::7]:51234".parse().expect("address"))
    );
    assert_eq!(parse(b"PROXY UNKNOWN\r\n").expect("parses"), None);
}

#[test]
fn v1_framing_stops_at_the_line_end_and_bounds_the_line() {
    let with_request = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nGET / HTTP/1.1\r\n";
    assert!(matches!(framing(with_request), Framing::Complete(n) if n == 32));
    assert!(matches!(framing(b"PROXY TCP4 1.2.3.4"), Framing::Partial));
    assert!(matches!(framing(b"PRO"), Framing::Partial));
    let long = [b"PROXY ".as_slice(), &[b'1'; 120]].concat();
    assert!(matches!(framing(&long), Framing::Invalid(Error::TooLong)));
    assert!(matches!(
        framing(b"GET / HTTP/1.1\r\n"),
        Framing::Invalid(Error::Missing)
    ));
    assert!(matches!(
        parse(b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n"),
        Err(Error::Malformed(_))
    ));
    assert!(matches!(
        parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n"),
        Err(Error::Malformed(_))
    ));
}

#[test]
fn v2_headers_name_their_source_and_local_means_the_peer() {
    let header = v2(PROXY_V2, "198.51.100.9:40000", "10.0.0.1:443", None);
    assert!(matches!(framing(&header), Framing::Complete(n) if n == header.len()));
    assert_eq!(
        parse(&header).expect("parses"),
        Some("198.51.100.9:40000".parse().expect("address"))
    );
    let six = v2(
        PROXY_V2,
        "[2001:db8::9]:40000",
        "[2001:db8::1]:443",
        Some(b"vpce-1"),
    );
    assert_eq!(
        parse(&six).expect("parses"),
        Some("[2001:db8::9]:40000".parse().expect("address"))
    );
    let local = v2(LOCAL_V2, "10.0.0.2:1", "10.0.0.1:443", None);
    assert_eq!(parse(&local).expect("parses"), None);
}

#[test]
fn v2_framing_reads_the_length_and_refuses_oversize() {
    let header = v2(PROXY_V2, "198.51.100.9:40000", "10.0.0.1:443", None);
    assert!(matches!(framing(&header[..10]), Framing::Partial));
    assert!(matches!(framing(&header[..15]), Framing::Partial));
    let mut huge = header[..16].to_vec();
    huge[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
    assert!(matches!(framing(&huge), Framing::Invalid(Error::TooLong)));
    let mut bad_version = header.clone();
    bad_version[12] = 0x31;
    assert!(matches!(parse(&bad_version), Err(Error::Malformed(_))));
}

/// A connected pair on loopback: (switchyard's side, the proxy's side).
async fn pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let client = tokio::net::TcpStream::connect(listener.local_addr().expect("addr"));
    let (accepted, client) = tokio::join!(listener.accept(), client);
    (accepted.expect("accept").0, client.expect("connect"))
}

#[tokio::test]
async fn read_takes_the_header_in_pieces_and_leaves_the_request() {
    let (mut ours, mut theirs) = pair().await;
    let header = v2(
        PROXY_V2,
        "198.51.100.9:40000",
        "10.0.0.1:443",
        Some(&[7; 300]),
    );
    let writer = tokio::spawn(async move {
        for piece in header.chunks(50) {
            theirs.write_all(piece).await.expect("write");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        theirs
            .write_all(b"GET / HTTP/1.1\r\n")
            .await
            .expect("write");
        theirs
    });
    let client = read(&mut ours, Duration::from_secs(2))
        .await
        .expect("header");
    assert_eq!(client, Some("198.51.100.9:40000".parse().expect("address")));
    let _theirs = writer.await.expect("writer");
    let mut rest = [0u8; 16];
    ours.read_exact(&mut rest).await.expect("request bytes");
    assert_eq!(&rest, b"GET / HTTP/1.1\r\n");
}

#[tokio::test]
async fn read_leaves_what_follows_a_v1_line_sent_with_it() {
    let (mut ours, mut theirs) = pair().await;
    theirs
        .write_all(b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 443\r\nGET /x HTTP/1.1\r\n")
        .await
        .expect("write");
    let client = read(&mut ours, Duration::from_secs(2))
        .await
        .expect("header");
    assert_eq!(client, Some("203.0.113.7:51234".parse().expect("address")));
    let mut rest = [0u8; 17];
    ours.read_exact(&mut rest).await.expect("request bytes");
    assert_eq!(&rest, b"GET /x HTTP/1.1\r\n");
}

#[tokio::test]
async fn read_gives_up_at_its_deadline_and_at_a_close() {
    let (mut ours, mut theirs) = pair().await;
    theirs.write_all(b"PROXY TCP4 1.2").await.expect("write");
    let late = read(&mut ours, Duration::from_millis(50)).await;
    assert!(matches!(late, Err(Error::TimedOut(_))), "{late:?}");
    drop(theirs);
    let (mut ours, theirs) = pair().await;
    drop(theirs);
    assert!(matches!(
        read(&mut ours, Duration::from_secs(1)).await,
        Err(Error::Io(_))
    ));
}
