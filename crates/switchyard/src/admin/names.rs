//! Prometheus metric family names, in one place. Counter families are declared without the
//! `_total` suffix their samples get.

/// Requests received on the proxy path.
pub const REQUESTS: &str = "switchyard_requests";
/// Requests answered by a backend.
pub const RESPONSES: &str = "switchyard_responses";
/// Requests answered by a route's redirect or fixed response.
pub const LOCAL: &str = "switchyard_local_responses";
/// Requests answered with an error by switchyard.
pub const ERRORS: &str = "switchyard_errors";
/// Requests answered 429.
pub const RATE_LIMITED: &str = "switchyard_rate_limited";
/// Requests abandoned by their client.
pub const CANCELLED: &str = "switchyard_cancelled";
/// Requests waiting for a response head.
pub const IN_FLIGHT: &str = "switchyard_in_flight_requests";
/// Further attempts of a request, on another backend.
pub const RETRIES: &str = "switchyard_retries";
/// Retries refused by the retry budget.
pub const RETRIES_OVER_BUDGET: &str = "switchyard_retries_over_budget";
/// 503s: no backend available.
pub const UNAVAILABLE: &str = "switchyard_unavailable";
/// Per-try timeouts.
pub const TRY_TIMEOUTS: &str = "switchyard_try_timeouts";
/// Whole-request timeouts.
pub const REQUEST_TIMEOUTS: &str = "switchyard_request_timeouts";
/// WebSocket tunnels opened.
pub const TUNNELS_OPENED: &str = "switchyard_tunnels_opened";
/// WebSocket tunnels open now.
pub const TUNNELS_OPEN: &str = "switchyard_tunnels_open";
/// WebSocket upgrades refused at `max_tunnels`.
pub const TUNNELS_REFUSED: &str = "switchyard_tunnels_refused";
/// WebSocket tunnels closed by their idle timeout.
pub const TUNNELS_IDLE_TIMEOUTS: &str = "switchyard_tunnels_idle_timeouts";
/// Seconds since start.
pub const UPTIME: &str = "switchyard_uptime_seconds";
/// Attempts sent to a backend.
pub const BACKEND_REQUESTS: &str = "switchyard_backend_requests";
/// Responses received from a backend.
pub const BACKEND_RESPONSES: &str = "switchyard_backend_responses";
/// Attempts that got no response (connect error, timeout, reset).
pub const BACKEND_ERRORS: &str = "switchyard_backend_errors";
/// Attempts abandoned because the client went away.
pub const BACKEND_CANCELLED: &str = "switchyard_backend_cancelled";
/// Failures counted by the backend's circuit breaker.
pub const BACKEND_FAILURES: &str = "switchyard_backend_failures";
/// Connections that could not be opened within the connect timeout.
pub const BACKEND_CONNECT_TIMEOUTS: &str = "switchyard_backend_connect_timeouts";
/// Ejections for consecutive failed answers.
pub const BACKEND_EJECTIONS: &str = "switchyard_backend_ejections";
/// New upstream connections.
pub const BACKEND_CONNECTIONS_OPENED: &str = "switchyard_backend_connections_opened";
/// Requests on reused upstream connections.
pub const BACKEND_CONNECTIONS_REUSED: &str = "switchyard_backend_connections_reused";
/// 1 if health checks pass.
pub const BACKEND_HEALTHY: &str = "switchyard_backend_healthy";
/// 1 while ejected.
pub const BACKEND_EJECTED: &str = "switchyard_backend_ejected";
/// Attempts waiting for a response head.
pub const BACKEND_IN_FLIGHT: &str = "switchyard_backend_in_flight_requests";
/// Outstanding requests.
pub const BACKEND_OUTSTANDING: &str = "switchyard_backend_outstanding_requests";
/// Idle keep-alive connections.
pub const BACKEND_IDLE_CONNECTIONS: &str = "switchyard_backend_idle_connections";
/// Consecutive failures counted by the circuit breaker.
pub const BACKEND_CONSECUTIVE_FAILURES: &str = "switchyard_backend_consecutive_failures";
/// Peak-EWMA latency of response heads.
pub const BACKEND_LATENCY_EWMA: &str = "switchyard_backend_latency_ewma_seconds";
/// Circuit state: 0 closed, 1 half-open, 2 open.
pub const BACKEND_CIRCUIT: &str = "switchyard_backend_circuit_state";
/// Configuration reloads, by result.
pub const RELOADS: &str = "switchyard_config_reloads";
/// 1 if the last reload succeeded (or none was tried), 0 if it was rejected.
pub const LAST_RELOAD_SUCCESS: &str = "switchyard_config_last_reload_success";
/// Unix time of the last reload attempt.
pub const LAST_RELOAD_TIME: &str = "switchyard_config_last_reload_timestamp_seconds";
/// Always 1, labelled with the version (hash) of the configuration in force.
pub const CONFIG_INFO: &str = "switchyard_config_info";
/// TLS handshakes completed.
pub const TLS_HANDSHAKES: &str = "switchyard_tls_handshakes";
/// TLS handshakes that failed.
pub const TLS_HANDSHAKE_FAILURES: &str = "switchyard_tls_handshake_failures";
/// Connections closed for a missing, malformed or late PROXY protocol header.
pub const PROXY_PROTOCOL_ERRORS: &str = "switchyard_proxy_protocol_errors";
/// Requests refused 413: a body over max_body_size (declared, or counted as it streamed).
pub const REFUSED_BODY_SIZE: &str = "switchyard_refused_body_size";
/// Requests refused 414: a request target over max_uri_length.
pub const REFUSED_URI_LENGTH: &str = "switchyard_refused_uri_length";
/// Requests refused 405: a method outside the route's allowed_methods.
pub const REFUSED_METHOD: &str = "switchyard_refused_method";
/// Requests refused 415: a body type outside the route's allowed_content_types.
pub const REFUSED_CONTENT_TYPE: &str = "switchyard_refused_content_type";
/// Requests refused 503 because their client IP had max_requests_per_ip in progress.
pub const REFUSED_REQUESTS_PER_IP: &str = "switchyard_refused_requests_per_ip";
/// Connections refused because the listener had max_connections open.
pub const REFUSED_CONNECTIONS: &str = "switchyard_refused_connections";
/// Connections refused because their client IP had max_connections_per_ip open.
pub const REFUSED_CONNECTIONS_PER_IP: &str = "switchyard_refused_connections_per_ip";
/// Client connections closed (HTTP/1.1) or sent GOAWAY (HTTP/2) after max_requests_per_connection.
pub const CONNECTIONS_AT_MAX_REQUESTS: &str = "switchyard_connections_at_max_requests";
/// Audit events dropped with the audit writer's queue full.
pub const AUDIT_DROPPED: &str = "switchyard_audit_dropped";
/// When a certificate in use expires, per listener and certificate.
pub const TLS_CERTIFICATE_EXPIRY: &str = "switchyard_tls_certificate_expiry_timestamp_seconds";
/// Requests refused with 401.
pub const UNAUTHENTICATED: &str = "switchyard_unauthenticated";
/// Requests refused with 403.
pub const FORBIDDEN: &str = "switchyard_forbidden";
/// Requests that presented an API key, per key name.
pub const API_KEY_REQUESTS: &str = "switchyard_api_key_requests";
/// Requests answered 429 by a per-client rate limit.
pub const CLIENT_RATE_LIMITED: &str = "switchyard_client_rate_limited";
/// Live keys pushed out of a per-client rate limiter at its `max_clients`.
pub const CLIENT_RATE_LIMIT_EVICTIONS: &str = "switchyard_client_rate_limit_evictions";
/// Keys with counts in their window, all per-client rate limiters.
pub const CLIENT_RATE_LIMIT_KEYS: &str = "switchyard_client_rate_limit_keys";
/// Keys the per-client rate limiters can track at once.
pub const CLIENT_RATE_LIMIT_CAPACITY: &str = "switchyard_client_rate_limit_capacity";
/// Bytes the per-client rate limiters' counts take.
pub const CLIENT_RATE_LIMIT_MEMORY: &str = "switchyard_client_rate_limit_memory_bytes";
/// Forward auth outcomes, per outcome (`allowed`, `denied`, `failed`).
pub const FORWARD_AUTH: &str = "switchyard_forward_auth";
/// Requests refused for their JWT, per reason.
pub const JWT_REFUSED: &str = "switchyard_jwt_refused";
