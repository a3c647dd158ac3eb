//! Test backends beyond [`super::backend`]: which one answered, restarting one on its port,
//! and pool configurations over several of them.

use std::path::Path;

use switchyard::Config;
use test_server::TestServer;

use super::Resp;

/// The port a test server listens on (what its answers carry in `x-served-by`).
pub fn port(server: &TestServer) -> u16 {
    server.addr().port()
}

/// The `x-served-by` port of a response; 0 when absent (the proxy answered itself).
pub fn served_by(resp: &Resp) -> u16 {
    resp.served_by().unwrap_or(0)
}

/// Starts a test backend on `port` again, as restarting a stopped backend process would.
pub async fn restart_on(port: u16, message: &str) -> TestServer {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("rebind the stopped backend's port");
    test_server::spawn(
        listener,
        test_server::Options {
            message: message.to_owned(),
        },
    )
    .expect("spawn backend")
}

/// A configuration with one pool `p` over `backends` (server, weight), read from TOML as a
/// user would write it. `pool_keys` are extra `key = value` lines of `[pools.p]`, `tables`
/// its sub-tables (health check, outlier detection, circuit breaker), written after it.
pub fn pool_config(
    workers: usize,
    backends: &[(&TestServer, u32)],
    pool_keys: &str,
    tables: &str,
) -> Config {
    let list: Vec<String> = backends
        .iter()
        .map(|(s, w)| format!("{{ url = \"{}\", weight = {w} }}", s.url()))
        .collect();
    let text = format!(
        "workers = {workers}\n\
         shutdown_timeout = \"5s\"\n\
         [[listeners]]\n\
         address = \"127.0.0.1:0\"\n\
         [rate_limit]\n\
         requests = 0\n\
         [pools.p]\n\
         backends = [{}]\n\
         {pool_keys}\n\
         {tables}\n",
        list.join(", ")
    );
    switchyard::config::validate::from_text(Path::new("t.toml"), &text)
        .unwrap_or_else(|e| panic!("config:\n{text}\n{e}"))
}
