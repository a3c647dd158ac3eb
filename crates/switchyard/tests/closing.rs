//! How switchyard closes a client connection it answered before reading the whole request
//! body: with a lingering close, as nginx does. Its FIN goes out after the answer and what
//! the client keeps sending is read and discarded, so the client can finish writing, read
//! the answer and see a clean end of stream, never a reset that could destroy the answer
//! before the client read it.

mod support;

use std::path::Path;
use std::time::Duration;

use support::wire::{self, End};
use support::TestProxy;
use switchyard::config::validate::from_text;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn an_upload_answered_early_gets_a_clean_close_not_a_reset() {
    let text = r#"
[pools.app]
backends = ["http://127.0.0.1:9"]

[[routes]]
name = "too-large"
match = { path_prefix = "/upload" }
respond = { status = 413, body = "Payload Too Large\n" }
"#;
    let mut config = from_text(Path::new("closing.toml"), text).expect("config");
    config.listeners[0].addr = "127.0.0.1:0".parse().expect("listen address");
    config.rate_limit.requests = 0;
    let proxy = TestProxy::start(config);

    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    let announced = 64 * 1024 * 1024;
    let head =
        format!("POST /upload HTTP/1.1\r\nHost: switchyard\r\nContent-Length: {announced}\r\n\r\n");
    stream.write_all(head.as_bytes()).await.expect("head");
    let chunk = vec![b'x'; 64 * 1024];
    // Some of the body, then the answer.
    for _ in 0..16 {
        stream.write_all(&chunk).await.expect("first MiB");
    }
    let answer = wire::read_answer(&mut stream, Duration::from_secs(2)).await;
    assert_eq!(answer.status, Some(413), "{}", answer.summary());
    assert_eq!(answer.end, End::Complete, "{}", answer.summary());
    assert!(answer.head.contains("connection: close"), "{}", answer.head);

    // The client goes on writing: another 8 MiB are taken (read and discarded), not reset.
    let mut written = 0usize;
    let mut write_error = None;
    for _ in 0..128 {
        match tokio::time::timeout(Duration::from_secs(2), stream.write_all(&chunk)).await {
            Ok(Ok(())) => written += chunk.len(),
            Ok(Err(e)) => {
                write_error = Some(e.kind());
                break;
            }
            Err(_) => {
                write_error = Some(std::io::ErrorKind::TimedOut);
                break;
            }
        }
    }
    // Then it stops, and sees the end of the stream.
    let _ = stream.shutdown().await;
    let mut rest = Vec::new();
    let end = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut rest)).await;
    println!(
        "413 after 1 MiB of a 64 MiB upload: then {} KiB more written (error {write_error:?}), \
         end of stream {end:?}",
        written / 1024
    );
    assert_eq!(
        write_error, None,
        "the client's writes after the answer failed"
    );
    assert_eq!(written, 8 * 1024 * 1024);
    assert!(
        matches!(end, Ok(Ok(0))),
        "a clean end of stream after the answer, got {end:?}"
    );
    proxy.stop().await;
}
