//! Default values, one place for all of them. The seed's defaults come first.

use std::time::Duration;

/// `--listen`: every interface, port 3000 (the seed's `:3000`).
pub const LISTEN: &str = ":3000";
/// `--read-timeout`: time a client has to send a request head (and between body reads).
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// `--write-timeout`: time a response may stall; also the default upstream timeout.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// `--rate-limit`: requests per window (per second by default).
pub const RATE_LIMIT: u32 = 100;
/// `--rate-window`: the sliding window's length.
pub const RATE_WINDOW: Duration = Duration::from_secs(1);
/// `--backends`.
pub const BACKENDS: &str = "http://localhost:8080";
/// `--retries`: further backends tried after a connect failure, and for idempotent
/// requests after a reset, a per-try timeout or a `retry_on` status (within the budget).
pub const RETRIES: u32 = 2;
/// `--connect-timeout`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// `--circuit-failures`: consecutive failures that open a backend's circuit.
pub const CIRCUIT_FAILURES: u32 = 5;
/// `--circuit-open`: how long an open circuit refuses traffic before a trial request.
pub const CIRCUIT_OPEN: Duration = Duration::from_secs(10);
/// `--shutdown-timeout`: how long in-flight requests may take to finish on SIGTERM.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// `--max-header-bytes`: request line plus headers; larger heads get 431.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// `--pool-max-idle`: idle keep-alive connections kept per backend and worker. High enough
/// not to close connections a busy moment needs again the next moment (160 HTTP/2 streams
/// at once past a cap of 128 made 50 new backend connections a second); idle ones still go
/// after `--pool-idle-timeout`. HAProxy keeps any number, nginx its `keepalive`.
pub const POOL_MAX_IDLE: usize = 1024;
/// `--pool-idle-timeout`: idle upstream connections older than this are closed.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// `max_streams_per_connection`: requests one HTTP/2 backend connection carries at once.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 100;
/// Largest value `--rate-limit` accepts (the limiter packs counts into 20 bits).
pub const RATE_LIMIT_MAX: u32 = (1 << 20) - 1;
/// Path of the health endpoint.
pub const HEALTH_PATH: &str = "/health";
/// Path of the metrics endpoint.
pub const METRICS_PATH: &str = "/metrics";
/// `[admin] down_status`: what `/health` answers when `DOWN`, so that a load balancer
/// probing it stops sending traffic.
pub const DOWN_STATUS: http::StatusCode = http::StatusCode::SERVICE_UNAVAILABLE;
/// Name of the pool the flags describe.
pub const POOL_NAME: &str = "default";
/// How often the configuration file is checked for changes.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(500);
/// `[websocket] max_tunnels`: WebSocket tunnels open at once, over all listeners. Each
/// holds two sockets and two 8 KiB copy buffers: 10,000 is 20,000 file descriptors and
/// about 160 MiB of buffers at most, within what a server's raised `ulimit -n` allows.
pub const MAX_TUNNELS: u32 = 10_000;
/// `[websocket] idle_timeout`: a tunnel with no byte either way for this long is closed.
/// Five minutes, as Envoy's stream idle timeout: nginx's 60 s `proxy_read_timeout` cuts
/// chat apps that ping every minute or less often, and a tunnel left open by a vanished
/// peer should not hold its place for HAProxy-style hours.
pub const TUNNEL_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// `[audit] interval`: refusals are summarised over this long, one line per client, event
/// and key.
pub const AUDIT_INTERVAL: Duration = Duration::from_secs(10);

/// `[audit] max_clients`: clients tracked per interval; more are counted as `"others"`.
pub const AUDIT_MAX_CLIENTS: usize = 1024;

/// `[audit] queue`: events waiting for the audit writer before new ones are dropped.
pub const AUDIT_QUEUE: usize = 4096;
