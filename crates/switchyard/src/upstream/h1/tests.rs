//! The client against scripted backends on loopback sockets.

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::conn::{Conn, Error};

/// A backend that reads a request head (and `body` more bytes) then writes `reply`, for each
/// pair in `script`, on one connection; returns what it read.
async fn backend(script: Vec<(usize, &'static [u8])>) -> (Conn, tokio::task::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        for (body, reply) in script {
            let start = seen.len();
            let mut byte = [0u8; 1];
            while !seen[start..].ends_with(b"\r\n\r\n") {
                if s.read(&mut byte).await.unwrap() == 0 {
                    return seen;
                }
                seen.push(byte[0]);
            }
            let mut rest = vec![0u8; body];
            s.read_exact(&mut rest).await.unwrap();
            seen.extend_from_slice(&rest);
            s.write_all(reply).await.unwrap();
        }
        seen
    });
    let io = TcpStream::connect(addr).await.unwrap();
    (Conn::new(Box::new(io), 8192, 32 * 1024), task)
}

fn get(path: &str) -> http::request::Parts {
    Request::get(path)
        .header("host", "b")
        .body(())
        .unwrap()
        .into_parts()
        .0
}

#[tokio::test]
async fn keep_alive_exchanges_reuse_the_connection() {
    let (conn, task) = backend(vec![
        (0, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
        (0, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-t: 1\r\n\r\n"),
    ])
    .await;
    let (head, body) = conn
        .send(&get("/one"), Empty::<Bytes>::new())
        .await
        .unwrap();
    assert_eq!(head.parts.status, 200);
    let mut body = body;
    let data = (&mut body).collect().await.unwrap().to_bytes();
    assert_eq!(&data[..], b"hello");
    let conn = body.take_conn().expect("reusable");
    let (head, mut body) = conn
        .send(&get("/two"), Empty::<Bytes>::new())
        .await
        .unwrap();
    assert_eq!(head.parts.status, 200, "the 100 was skipped");
    let collected = (&mut body).collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["x-t"], "1");
    assert_eq!(&collected.to_bytes()[..], b"abc");
    assert!(body.take_conn().is_some());
    let seen = String::from_utf8(task.await.unwrap()).unwrap();
    assert_eq!(
        seen,
        "GET /one HTTP/1.1\r\nhost: b\r\n\r\nGET /two HTTP/1.1\r\nhost: b\r\n\r\n"
    );
}

#[tokio::test]
async fn a_body_until_close_ends_the_connection() {
    let (conn, _task) = backend(vec![(0, b"HTTP/1.1 200 OK\r\n\r\nall of it")]).await;
    let (_, mut body) = conn.send(&get("/"), Empty::<Bytes>::new()).await.unwrap();
    let data = (&mut body).collect().await.unwrap().to_bytes();
    assert_eq!(&data[..], b"all of it");
    assert!(body.take_conn().is_none());
}

#[tokio::test]
async fn uploads_are_framed_by_length_or_chunked() {
    let ok: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";
    let (conn, task) = backend(vec![(5, ok), (25, ok)]).await;
    let post = Request::post("/up").body(()).unwrap().into_parts().0;
    let (_, mut body) = conn
        .send(&post, Full::new(Bytes::from_static(b"hello")))
        .await
        .unwrap();
    let conn = body.take_conn().expect("a 204 is complete at once");
    let chunks = futures_chunks(&[b"hello", b"", b"world"]);
    let (head, mut body) = conn.send(&post, chunks).await.unwrap();
    assert_eq!(head.parts.status, 204);
    assert!(body.take_conn().is_some());
    let seen = String::from_utf8(task.await.unwrap()).unwrap();
    assert_eq!(
        seen,
        "POST /up HTTP/1.1\r\ncontent-length: 5\r\n\r\nhello\
         POST /up HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n"
    );
}

/// A body of unknown length yielding `parts`.
fn futures_chunks(parts: &[&'static [u8]]) -> Chunks {
    Chunks(parts.iter().map(|p| Bytes::from_static(p)).collect())
}

struct Chunks(std::collections::VecDeque<Bytes>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.pop_front().map(|b| Ok(http_body::Frame::data(b))))
    }
}

#[tokio::test]
async fn a_connection_closed_before_an_answer_says_so() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let closer = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf).await;
    });
    let io = TcpStream::connect(addr).await.unwrap();
    let conn = Conn::new(Box::new(io), 8192, 32 * 1024);
    let err = conn
        .send(&get("/"), Empty::<Bytes>::new())
        .await
        .unwrap_err();
    closer.await.unwrap();
    assert!(matches!(err.error, Error::ClosedBeforeResponse), "{err:?}");
}

#[tokio::test]
async fn an_idle_connection_closed_by_the_backend_is_noticed() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let io = TcpStream::connect(addr).await.unwrap();
    let (server, _) = listener.accept().await.unwrap();
    let mut conn = Conn::new(Box::new(io), 8192, 32 * 1024);
    assert!(!conn.closed_while_idle());
    drop(server);
    // The FIN reaches the socket at once on loopback; the readiness, on the next event-loop turn.
    let mut closed = false;
    for _ in 0..100 {
        tokio::task::yield_now().await;
        if conn.closed_while_idle() {
            closed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    assert!(closed);
}
