//! Flags over a configuration (flags > file > defaults): [`Cli::apply`], one part per
//! concern (listeners, TLS, rate limit, backends, the upstream CA, upstream connections,
//! breaker, balancing, health checks, retries, top-level settings).

use std::sync::Arc;
use std::time::SystemTime;

use super::Cli;
use crate::config::client_limit::ClientRateLimitConfig;
use crate::config::tls::{self, ClientAuth, ClientAuthMode, TlsConfig};
use crate::config::upstream_tls::CaBundle;
use crate::config::{
    BackendConfig, Config, HealthCheckConfig, ListenerConfig, Policy, PoolConfig, RateLimitConfig,
};

impl Cli {
    /// Applies the flags to `config`: all of them (`only_given == false`, no file) or only
    /// those given on the command line. `--listen` sets the first listener; the timeouts and
    /// header limit every listener; `--tls-cert` and `--tls-key` make the first listener HTTPS
    /// with that certificate (replacing the file's certificates), `--tls-client-ca` makes it
    /// require client certificates, `--tls-resumption` applies to every HTTPS listener;
    /// `--backends` the pool's backends (only when there is one
    /// pool); the other upstream flags every pool; the rest the globals. Fails when a flag
    /// cannot be applied (`--backends` over several pools, `--policy` without the hash key it
    /// needs, an `--upstream-ca` file that cannot be read or used).
    pub fn apply(&self, config: &mut Config, only_given: bool) -> Result<(), String> {
        let flags = Flags {
            cli: self,
            only_given,
        };
        flags.listeners(&mut config.listeners);
        flags.tls(&mut config.listeners)?;
        flags.rate_limit(&mut config.rate_limit);
        flags.client_rate_limit(&mut config.client_rate_limit);
        flags.backends(&mut config.pools)?;
        let upstream_ca = flags.upstream_ca()?;
        for pool in &mut config.pools {
            if let Some(ca) = &upstream_ca {
                pool.tls.ca = Some(ca.clone());
            }
            flags.upstream_connections(pool);
            flags.breaker(pool);
            flags.balancing(pool)?;
            flags.health_check(pool);
            flags.retries(pool);
        }
        flags.globals(config);
        flags.access(config)?;
        flags.process(config);
        Ok(())
    }
}

/// The flags to apply: all of them, or only those given on the command line.
#[derive(Clone, Copy)]
pub(super) struct Flags<'a> {
    pub(super) cli: &'a Cli,
    only_given: bool,
}

// === impl Flags ===

impl Flags<'_> {
    /// True when the flag `id` is to be applied.
    pub(super) fn set(self, id: &str) -> bool {
        !self.only_given || self.cli.given(id)
    }

    /// `--listen` (the first listener), `--read-timeout`, `--write-timeout` and
    /// `--max-header-bytes` (every listener).
    fn listeners(self, listeners: &mut [ListenerConfig]) {
        let cli = self.cli;
        if self.set("listen") {
            if let Some(first) = listeners.first_mut() {
                first.addr = cli.listen;
            }
        }
        for l in listeners {
            if self.set("read_timeout") {
                l.read_timeout = cli.read_timeout;
            }
            if self.set("write_timeout") {
                l.write_timeout = cli.write_timeout;
            }
            if self.set("max_header_bytes") {
                l.max_header_bytes = cli.max_header_bytes;
            }
        }
    }

    /// `--tls-cert` with `--tls-key`, `--tls-client-ca` (the first listener) and
    /// `--tls-resumption` (every HTTPS listener); the files are checked as the configuration
    /// check does.
    fn tls(self, listeners: &mut [ListenerConfig]) -> Result<(), String> {
        let cli = self.cli;
        if let (Some(first), Some(cert), Some(key)) =
            (listeners.first_mut(), &cli.tls_cert, &cli.tls_key)
        {
            tls::load_pair(cert, key, SystemTime::now()).map_err(|e| format!("--tls-cert: {e}"))?;
            let single = TlsConfig::single(cert.clone(), key.clone());
            let config = match first.tls.take() {
                Some(mut file) => {
                    let file_config = Arc::make_mut(&mut file);
                    file_config.certificates = single.certificates;
                    file_config.default = 0;
                    file
                }
                None => Arc::new(single),
            };
            first.tls = Some(config);
            first.redirect_to_https = None;
        }
        if let Some(ca) = &cli.tls_client_ca {
            let Some(first) = listeners.first_mut().and_then(|l| l.tls.as_mut()) else {
                return Err(
                    "--tls-client-ca needs an HTTPS listener: give --tls-cert and --tls-key"
                        .to_owned(),
                );
            };
            tls::read_roots(ca).map_err(|e| format!("--tls-client-ca: {e}"))?;
            Arc::make_mut(first).client_auth = Some(ClientAuth {
                mode: ClientAuthMode::Required,
                ca: ca.clone(),
            });
        }
        if self.set("tls_resumption") {
            for tls in listeners.iter_mut().filter_map(|l| l.tls.as_mut()) {
                Arc::make_mut(tls).resumption = cli.tls_resumption;
            }
        }
        Ok(())
    }

    /// `--rate-limit` and `--rate-window`.
    fn rate_limit(self, rate_limit: &mut RateLimitConfig) {
        if self.set("rate_limit") {
            rate_limit.requests = self.cli.rate_limit;
        }
        if self.set("rate_window") {
            rate_limit.window = self.cli.rate_window;
        }
    }

    /// `--client-rate-limit` (with `--rate-window`, when given or when the file has no
    /// `[client_rate_limit]`): per client IP; `0` turns the global per-client limit off.
    fn client_rate_limit(self, limit: &mut Option<ClientRateLimitConfig>) {
        if !self.set("client_rate_limit") {
            return;
        }
        let requests = self.cli.client_rate_limit;
        if requests == 0 {
            *limit = None;
            return;
        }
        let from_file = limit.is_some();
        let mut config = limit.take().unwrap_or_default();
        config.requests = requests;
        if !from_file || self.set("rate_window") {
            config.window = self.cli.rate_window;
        }
        *limit = Some(config);
    }

    /// `--backends`: the backends of the only pool; an error when there are several.
    fn backends(self, pools: &mut [PoolConfig]) -> Result<(), String> {
        if !self.set("backends") {
            return Ok(());
        }
        match pools {
            [only] => {
                only.backends = self
                    .cli
                    .backends
                    .iter()
                    .map(|url| BackendConfig {
                        url: url.clone(),
                        weight: 1,
                    })
                    .collect();
                Ok(())
            }
            pools => Err(format!(
                "--backends cannot be used with a configuration of {} pools: set the backends in the file",
                pools.len()
            )),
        }
    }

    /// `--upstream-ca`, read (again at each reload, so a renewed bundle is picked up).
    fn upstream_ca(self) -> Result<Option<CaBundle>, String> {
        match &self.cli.upstream_ca {
            Some(path) => CaBundle::load(path)
                .map(Some)
                .map_err(|e| format!("--upstream-ca: {e}")),
            None => Ok(None),
        }
    }

    /// `--connect-timeout`, `--upstream-timeout` (default: `--write-timeout`),
    /// `--pool-max-idle`, `--pool-idle-timeout` and `--max-connections`.
    fn upstream_connections(self, pool: &mut PoolConfig) {
        let cli = self.cli;
        if self.set("connect_timeout") {
            pool.connect_timeout = cli.connect_timeout;
        }
        // --upstream-timeout defaults to --write-timeout.
        if !self.only_given || cli.given("upstream_timeout") || cli.given("write_timeout") {
            pool.timeout = cli.upstream_timeout.unwrap_or(cli.write_timeout);
        }
        if self.set("pool_max_idle") {
            pool.keepalive.max_idle = cli.pool_max_idle;
        }
        if self.set("pool_idle_timeout") {
            pool.keepalive.idle_timeout = cli.pool_idle_timeout;
        }
        if let Some(n) = cli.max_connections {
            pool.max_connections = Some(n);
        }
    }

    /// `--circuit-failures` and `--circuit-open`.
    fn breaker(self, pool: &mut PoolConfig) {
        if self.set("circuit_failures") {
            pool.breaker.failure_threshold = self.cli.circuit_failures;
        }
        if self.set("circuit_open") {
            pool.breaker.open_duration = self.cli.circuit_open;
        }
    }

    /// `--policy` and `--hash-key` (either one given sets the policy from both, `--policy`
    /// at its default when only `--hash-key` is given), and `--slow-start`.
    fn balancing(self, pool: &mut PoolConfig) -> Result<(), String> {
        let cli = self.cli;
        if self.set("policy") || cli.given("hash_key") {
            pool.policy = Policy::from_name(&cli.policy, cli.hash_key.clone())
                .map_err(|e| format!("--policy: {e} (give it with --hash-key)"))?;
        }
        if self.set("slow_start") {
            pool.slow_start = cli.slow_start;
        }
        Ok(())
    }

    /// `--health-check` (turns active checks on) and `--health-interval` (when they are on).
    fn health_check(self, pool: &mut PoolConfig) {
        if let Some(path) = &self.cli.health_check {
            let check = pool
                .health_check
                .get_or_insert_with(HealthCheckConfig::default);
            check.path = path.clone();
        }
        if let Some(check) = &mut pool.health_check {
            if self.set("health_interval") {
                check.interval = self.cli.health_interval;
            }
        }
    }

    /// `--retries`, `--retry-on` and `--request-timeout`.
    fn retries(self, pool: &mut PoolConfig) {
        if self.set("retries") {
            pool.retries = self.cli.retries;
        }
        if self.set("retry_on") {
            pool.retry.retry_on = self.cli.retry_on.clone();
        }
        if let Some(t) = self.cli.request_timeout {
            pool.request_timeout = Some(t);
        }
    }

    /// `--workers`, `--runtime`, `--shutdown-timeout`, `--log-format`, `--max-body-size`,
    /// `--max-requests-per-connection`, `--max-client-connections` and
    /// `--max-connections-per-ip`.
    fn globals(self, config: &mut Config) {
        let cli = self.cli;
        if let Some(max) = cli.max_body_size {
            config.limits.max_body_size = max;
        }
        if let Some(max) = cli.max_requests_per_connection {
            config.limits.connections.max_requests_per_connection = max;
        }
        if let Some(max) = cli.max_client_connections {
            config.limits.connections.max_connections = max;
        }
        if let Some(max) = cli.max_connections_per_ip {
            config.limits.connections.max_connections_per_ip = max;
        }
        if let Some(w) = cli.workers {
            config.workers = usize::from(w);
        }
        if self.set("runtime") {
            config.runtime = cli.runtime;
        }
        if self.set("shutdown_timeout") {
            config.shutdown_timeout = cli.shutdown_timeout;
        }
        if self.set("log_format") {
            config.log.format = cli.log_format;
        }
    }
}
