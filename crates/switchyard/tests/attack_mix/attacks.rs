//! The hostile clients of the attack mix, one kind per function. Each runs connection after
//! connection until the deadline (or its own cap on connections), and notes what each
//! connection got: the first status, `closed` (the proxy closed with no answer) or
//! `no answer` (nothing within the wait).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::support::Client;

/// The kinds, and how many of the 200 hostile connections each keeps open at a time.
pub const KINDS: [(Kind, usize); 6] = [
    (Kind::Slowloris, 40),
    (Kind::Malformed, 30),
    (Kind::Smuggling, 30),
    (Kind::Oversize, 30),
    (Kind::KeyGuessing, 35),
    (Kind::DistinctKeys, 35),
];

/// Most connections one hostile task makes (the deadline usually comes first).
const MAX_CONNECTIONS_PER_TASK: u32 = 200;

/// Pause between two connections of a hostile client that is answered at once: 160 such
/// clients make about 1,600 connections a second (key guessers and floods 5 requests each).
const PAUSE: Duration = Duration::from_millis(100);

/// Longest wait for one answer.
const WAIT: Duration = Duration::from_secs(2);

/// The request a smuggling attempt hides in its body; it must never reach the backend.
pub const SMUGGLED: &str = "GET /open/smuggled HTTP/1.1\r\nHost: a\r\n\r\n";

/// What a hostile client does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A request head sent a byte a second.
    Slowloris,
    /// Bad bytes, a bad `Content-Length`, an invalid chunked body.
    Malformed,
    /// CL+TE, TE obfuscations, two `Content-Length`s, each hiding [`SMUGGLED`].
    Smuggling,
    /// Bodies over `max_body_size`: declared, chunked without a length, `Expect: 100-continue`.
    Oversize,
    /// Wrong API keys on the keyed route, five per keep-alive connection.
    KeyGuessing,
    /// Every request another key and another `X-Forwarded-For`, on the rate-limited route.
    DistinctKeys,
}

/// What the hostile connections got: per kind, outcome → count.
#[derive(Default)]
pub struct Tally {
    outcomes: Mutex<BTreeMap<Kind, BTreeMap<String, u64>>>,
    connections: Mutex<BTreeMap<Kind, u64>>,
}

impl Tally {
    fn note(&self, kind: Kind, outcome: String) {
        let mut all = self.outcomes.lock().expect("tally lock");
        *all.entry(kind).or_default().entry(outcome).or_default() += 1;
    }

    fn connection(&self, kind: Kind) {
        *self
            .connections
            .lock()
            .expect("tally lock")
            .entry(kind)
            .or_default() += 1;
    }

    /// Outcomes of `kind`.
    pub fn outcomes(&self, kind: Kind) -> BTreeMap<String, u64> {
        let all = self.outcomes.lock().expect("tally lock");
        all.get(&kind).cloned().unwrap_or_default()
    }

    /// Connections `kind` made.
    pub fn connections(&self, kind: Kind) -> u64 {
        let all = self.connections.lock().expect("tally lock");
        all.get(&kind).copied().unwrap_or(0)
    }
}

/// Runs hostile client `n` of `kind` until `deadline`.
pub async fn run(kind: Kind, n: u32, addr: SocketAddr, deadline: Instant, tally: &Tally) {
    for i in 0..MAX_CONNECTIONS_PER_TASK {
        if Instant::now() >= deadline {
            return;
        }
        tally.connection(kind);
        let seq = n * MAX_CONNECTIONS_PER_TASK + i;
        match kind {
            Kind::Slowloris => tally.note(kind, slowloris(addr, deadline).await),
            Kind::Malformed => tally.note(kind, exchange(addr, &malformed(seq), true).await.0),
            Kind::Smuggling => {
                let (outcome, responses) = exchange(addr, &smuggling(seq), false).await;
                let outcome = if responses > 1 {
                    format!("{responses} responses")
                } else {
                    outcome
                };
                tally.note(kind, outcome);
            }
            Kind::Oversize => tally.note(kind, oversize(addr, seq).await),
            Kind::KeyGuessing | Kind::DistinctKeys => {
                let mut client = Client::connect(addr).await;
                for j in 0..5 {
                    let req = if kind == Kind::KeyGuessing {
                        http::Request::get(format!("/keyed/guess/{seq}"))
                            .header("x-api-key", format!("guess-{seq}-{j}"))
                    } else {
                        http::Request::get(format!("/flood/{seq}"))
                            .header("x-api-key", format!("flood-{seq}-{j}"))
                            .header(
                                "x-forwarded-for",
                                format!("10.{}.{}.{j}", seq >> 8, seq & 255),
                            )
                    };
                    let req = req.body(Bytes::new()).expect("request");
                    match client.send(req).await {
                        Ok(resp) => tally.note(kind, resp.status.to_string()),
                        Err(_) => {
                            tally.note(kind, "closed".to_owned());
                            break;
                        }
                    }
                }
            }
        }
        // The kinds that are answered at once would otherwise spin: the mix is about
        // fairness and bounds, not throughput (see `PAUSE`).
        if kind != Kind::Slowloris {
            tokio::time::sleep(PAUSE).await;
        }
    }
}

/// A head a byte a second until the proxy answers or closes (or the deadline passes).
async fn slowloris(addr: SocketAddr, deadline: Instant) -> String {
    let Ok(stream) = TcpStream::connect(addr).await else {
        return "connect failed".to_owned();
    };
    let (mut reader, mut writer) = stream.into_split();
    let head = b"GET /open/slow HTTP/1.1\r\nHost: a\r\nX-Slow: 1234567890\r\n\r\n";
    let write = async {
        for byte in head.chunks(1) {
            if writer.write_all(byte).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        std::future::pending::<()>().await;
    };
    let read = async {
        let mut buf = [0u8; 1024];
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => "closed".to_owned(),
            Ok(n) => status(&buf[..n]).unwrap_or_else(|| "garbled".to_owned()),
        }
    };
    tokio::select! {
        outcome = read => outcome,
        _ = write => unreachable!("the writer never finishes"),
        _ = tokio::time::sleep_until(deadline + WAIT) => "no answer".to_owned(),
    }
}

/// Writes `bytes` (write errors ignored: the proxy may close first), then reads the first
/// response head (`first_only`) or until the proxy closes. Returns the outcome and the
/// number of responses read.
async fn exchange(addr: SocketAddr, bytes: &[u8], first_only: bool) -> (String, usize) {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return ("connect failed".to_owned(), 0);
    };
    let _ = stream.write_all(bytes).await;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let read = tokio::time::timeout(WAIT, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
            if first_only && out.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&out);
    let responses = text.matches("HTTP/1.1 ").count();
    let outcome = match (status(&out), read) {
        (Some(s), _) => s,
        (None, Ok(())) => "closed".to_owned(),
        (None, Err(_)) => "no answer".to_owned(),
    };
    (outcome, responses)
}

/// The status code at the start of `out`.
fn status(out: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(out.get(..12)?).ok()?;
    let code = text.strip_prefix("HTTP/1.1 ")?;
    Some(code.to_owned())
}

fn malformed(seq: u32) -> Vec<u8> {
    match seq % 5 {
        0 => {
            // Pseudo-random bytes, then an end of head.
            let mut state = seq.wrapping_mul(2_654_435_761) | 1;
            let mut bytes: Vec<u8> = (0..512)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state as u8
                })
                .collect();
            bytes.extend_from_slice(b"\r\n\r\n");
            bytes
        }
        1 => b"POST /open/m HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\nabc".to_vec(),
        2 => b"POST /open/m HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
            .to_vec(),
        3 => b"GET /open/\x01\x7f HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        _ => b"GET /open/m HTTP/1.1\r\nHost: a\r\nX-Bad: a\x00b\r\n\r\n".to_vec(),
    }
}

fn smuggling(seq: u32) -> Vec<u8> {
    let chunked = format!("0\r\n\r\n{SMUGGLED}");
    let plain = format!("hello{SMUGGLED}");
    let (head, body) = match seq % 6 {
        0 => (
            format!(
                "Content-Length: {}\r\nTransfer-Encoding: chunked",
                chunked.len()
            ),
            chunked,
        ),
        1 => (
            format!(
                "Transfer-Encoding: chunked\r\nContent-Length: {}",
                chunked.len()
            ),
            chunked,
        ),
        2 => (
            format!("Content-Length: 5\r\nContent-Length: {}", plain.len()),
            plain,
        ),
        3 => ("Transfer-Encoding: chunked, identity".to_owned(), chunked),
        4 => (
            format!(
                "Transfer-Encoding:\r\n chunked\r\nContent-Length: {}",
                chunked.len()
            ),
            chunked,
        ),
        _ => (
            format!(
                "Transfer-Encoding : chunked\r\nContent-Length: {}",
                chunked.len()
            ),
            chunked,
        ),
    };
    format!("POST /open/outer HTTP/1.1\r\nHost: a\r\n{head}\r\n\r\n{body}").into_bytes()
}

/// A body over the proxy's 64 KiB limit, one of three ways.
async fn oversize(addr: SocketAddr, seq: u32) -> String {
    let filler = vec![b'x'; 8 * 1024];
    match seq % 3 {
        0 => {
            let mut bytes =
                b"POST /open/big HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n".to_vec();
            bytes.extend_from_slice(&filler);
            exchange(addr, &bytes, true).await.0
        }
        1 => {
            let mut bytes =
                b"POST /open/big HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                    .to_vec();
            for _ in 0..12 {
                bytes.extend_from_slice(format!("{:x}\r\n", filler.len()).as_bytes());
                bytes.extend_from_slice(&filler);
                bytes.extend_from_slice(b"\r\n");
            }
            bytes.extend_from_slice(b"0\r\n\r\n");
            exchange(addr, &bytes, true).await.0
        }
        _ => {
            let head = b"POST /open/big HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\nExpect: 100-continue\r\n\r\n";
            exchange(addr, head, true).await.0
        }
    }
}
