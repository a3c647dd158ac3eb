//! Unit tests of the byte copy under a tunnel, over in-memory pipes.

use std::time::Duration;

use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt};

use super::*;

#[tokio::test(start_paused = true)]
async fn copies_both_ways_and_passes_each_close_on() {
    let (client, mut client_peer) = duplex(64);
    let (backend, mut backend_peer) = duplex(64);
    let run = tokio::spawn(splice(client, backend, Duration::from_secs(60)));

    // More than the pipes and the buffer hold at once, so both directions wait on writes.
    let big = vec![7u8; 3 * BUFFER + 5];
    let (sent, received) = tokio::join!(
        async {
            client_peer.write_all(&big).await.unwrap();
            // The client is done sending: the backend sees the end of its stream.
            client_peer.shutdown().await.unwrap();
        },
        async {
            let mut got = Vec::new();
            backend_peer.read_to_end(&mut got).await.unwrap();
            got
        }
    );
    let () = sent;
    assert_eq!(received.len(), big.len());

    // The other direction still runs after one has closed.
    backend_peer.write_all(b"bye").await.unwrap();
    backend_peer.shutdown().await.unwrap();
    let mut got = Vec::new();
    client_peer.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"bye");

    let spliced = run.await.unwrap();
    assert_eq!(spliced.end, End::Closed);
    assert_eq!(
        (spliced.to_backend, spliced.to_client),
        (big.len() as u64, 3)
    );
}

#[tokio::test(start_paused = true)]
async fn closes_after_the_idle_timeout_and_traffic_keeps_it_open() {
    let (client, mut client_peer) = duplex(64);
    let (backend, mut backend_peer) = duplex(64);
    let started = tokio::time::Instant::now();
    let run = tokio::spawn(splice(client, backend, Duration::from_secs(10)));

    // Traffic every 6 s, in turn each way: never idle for 10 s.
    let mut byte = [0u8; 1];
    for i in 0..4 {
        tokio::time::sleep(Duration::from_secs(6)).await;
        if i % 2 == 0 {
            client_peer.write_all(b"x").await.unwrap();
            backend_peer.read_exact(&mut byte).await.unwrap();
        } else {
            backend_peer.write_all(b"y").await.unwrap();
            client_peer.read_exact(&mut byte).await.unwrap();
        }
    }
    assert!(!run.is_finished(), "closed while traffic flowed");

    let spliced = run.await.unwrap();
    assert_eq!(spliced.end, End::Idle);
    assert_eq!(started.elapsed(), Duration::from_secs(24 + 10));
    // Both sides were closed with it.
    assert_eq!(client_peer.read(&mut byte).await.unwrap(), 0);
    assert_eq!(backend_peer.read(&mut byte).await.unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_side_that_goes_away_ends_the_tunnel() {
    let (client, client_peer) = duplex(64);
    let (backend, mut backend_peer) = duplex(64);
    let run = tokio::spawn(splice(client, backend, Duration::from_secs(60)));
    drop(client_peer);
    // The client's end reached the backend as the end of its stream.
    let mut got = Vec::new();
    backend_peer.read_to_end(&mut got).await.unwrap();
    // Writing towards the vanished client fails, and the tunnel ends.
    backend_peer.write_all(b"late").await.unwrap();
    let spliced = run.await.unwrap();
    assert_eq!(spliced.end, End::Failed(io::ErrorKind::BrokenPipe));
}
