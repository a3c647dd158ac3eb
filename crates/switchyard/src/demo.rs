//! `switchyard demo`: two built-in test backends and the proxy in front of them, with the
//! commands to try printed, so that a newcomer sees every feature with one command. What it
//! is doing while it starts is printed too (stdout, one line per step).

use crate::config::{BackendConfig, BackendUrl, Config};
use crate::server::{self, Server, StartError};

/// The demo's rate limit unless `--rate-limit` is given: the seed scenario's 20 per second.
pub const RATE_LIMIT: u32 = 20;

/// The running demo: backends and proxy.
#[derive(Debug)]
pub struct Demo {
    /// The proxy.
    pub server: Server,
    /// The two backends.
    pub backends: Vec<test_server::TestServer>,
}

/// Starts two backends on free loopback ports and the proxy (on `config.listen`) in front of
/// them, printing each step. Must be called inside a tokio runtime, which then serves the
/// backends.
pub async fn start(mut config: Config) -> Result<Demo, StartError> {
    println!("switchyard demo: starting two test backends on free loopback ports");
    let mut backends = Vec::new();
    let mut urls = Vec::new();
    for n in 1..=2 {
        let bind_err = |source| StartError::Bind {
            addr: "127.0.0.1:0".parse().unwrap_or(config.listeners[0].addr),
            source,
        };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(bind_err)?;
        let message = format!("Response from server {n}");
        let backend = test_server::spawn(
            listener,
            test_server::Options {
                message: message.clone(),
            },
        )
        .map_err(bind_err)?;
        println!(
            "switchyard demo: backend {n} on {} answers {message:?}",
            backend.addr()
        );
        urls.push(BackendConfig {
            url: BackendUrl::http("127.0.0.1", backend.addr().port()),
            weight: 1,
        });
        backends.push(backend);
    }
    for pool in &mut config.pools {
        pool.backends = urls.clone();
    }
    let listen: Vec<String> = config
        .listeners
        .iter()
        .map(|l| l.addr.to_string())
        .collect();
    println!(
        "switchyard demo: starting the proxy on {} (rate limit {} per {}; --rate-limit changes it)",
        listen.join(", "),
        config.rate_limit.requests,
        crate::config::duration::format(config.rate_limit.window),
    );
    let server = server::start(config)?;
    Ok(Demo { server, backends })
}

/// What to try, printed once the demo is up.
pub fn instructions(demo: &Demo, rate_limit: u32) -> String {
    let port = demo.server.local_addr().port();
    let state = demo.server.shared().state();
    // Over HTTPS (`--tls-cert`), curl trusts the certificate given (self-signed in the demo).
    let (base, curl) = match state.config.listeners.first().and_then(|l| l.tls.as_ref()) {
        Some(tls) => (
            format!("https://localhost:{port}"),
            format!(
                "curl --http1.1 --cacert {}",
                tls.certificates[tls.default].cert.display()
            ),
        ),
        None => (format!("http://localhost:{port}"), "curl".to_owned()),
    };
    let b1 = demo.backends[0].addr();
    let b2 = demo.backends[1].addr();
    format!(
        "\nswitchyard demo: proxy on {base}, backends on {b1} and {b2}\n\n\
         Try, in another terminal:\n\n  \
         {curl} {base}/                 # twice: answered by server 1, then server 2\n  \
         for i in $(seq 1 {burst}); do {curl} -s -o /dev/null -w '%{{http_code}} ' {base}/; done; echo\n  \
         \x20                                  # over {rate_limit} requests/s: 429 Too Many Requests\n  \
         {curl} {base}/health           # status, uptime, circuit state per backend\n  \
         {curl} {base}/metrics          # counters as JSON\n  \
         {curl} '{base}/metrics?format=prometheus'\n  \
         {curl} {base}/echo             # what the backend received (X-Forwarded-For, ...)\n\n\
         Press Ctrl+C to stop.\n",
        burst = rate_limit.saturating_mul(2).max(40),
    )
}
