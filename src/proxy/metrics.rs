//! The proxy's Prometheus metrics (`/metrics`), in the text exposition
//! format written by `prometheus-client`. Counts and times only: no label
//! ever carries a user's token, and none carries a client address (that
//! would grow without bound).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, &'static str)>;

/// How a client connection ended, the `outcome` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Logged in and relayed until one side closed.
    Ok,
    /// The database refused the IAM login.
    Refused,
    /// DNS, TCP, TLS or timeout on the way to the database.
    Failed,
    /// Refused by the proxy itself (limits, pinned user, parameters).
    Rejected,
    /// The client went away or spoke something other than PostgreSQL.
    ClientError,
    /// A cancel request, forwarded.
    Cancel,
    /// Closed when the drain after SIGTERM ran out.
    Shutdown,
    /// Logged in, then the relay broke (a reset, a TLS error) instead of closing.
    Broken,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
            Outcome::Rejected => "rejected",
            Outcome::ClientError => "client_error",
            Outcome::Cancel => "cancel",
            Outcome::Shutdown => "shutdown",
            Outcome::Broken => "broken",
        }
    }
}

pub struct Metrics {
    registry: Registry,
    pub open: Gauge,
    connections: Family<Labels, Counter>,
    pub login_seconds: Histogram,
    pub tokens_minted: Counter,
    bytes: Family<Labels, Counter>,
    refusals: Family<Labels, Counter>,
    pub credentials_expiry: Gauge<f64, AtomicU64>,
    /// `--pool`: sessions idle and in use, reuses, failed resets.
    pub pool: PoolMetrics,
    /// Issue 19: what a failover and a refused token did.
    pub failovers: Counter,
    pub logins_retried: Counter,
    pub tokens_dropped: Counter,
    pub failover_recovery_seconds: Histogram,
}

#[derive(Default)]
pub struct PoolMetrics {
    pub idle: Gauge,
    pub in_use: Gauge,
    pub reuses: Counter,
    pub resets_failed: Counter,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("rdsiam_proxy");
        let open = Gauge::default();
        let connections = Family::<Labels, Counter>::default();
        let login_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        let tokens_minted = Counter::default();
        let bytes = Family::<Labels, Counter>::default();
        let credentials_expiry = Gauge::<f64, AtomicU64>::default();
        let refusals = Family::<Labels, Counter>::default();
        registry.register(
            "connections_open",
            "Client connections open now",
            open.clone(),
        );
        registry.register(
            "connections",
            "Client connections closed, by outcome",
            connections.clone(),
        );
        registry.register(
            "login_seconds",
            "Time from the client's startup message to ReadyForQuery, for successful logins",
            login_seconds.clone(),
        );
        registry.register(
            "tokens_minted",
            "IAM tokens signed (one serves many logins)",
            tokens_minted.clone(),
        );
        registry.register("bytes", "Bytes relayed, by direction", bytes.clone());
        registry.register(
            "refusals",
            "Clients and cancels the proxy turned away before any upstream work, by reason",
            refusals.clone(),
        );
        registry.register(
            "credentials_expiry_timestamp_seconds",
            "When the AWS credentials in use expire (unix time; 0 when they don't)",
            credentials_expiry.clone(),
        );
        let pool = PoolMetrics::default();
        registry.register(
            "pool_sessions_idle",
            "--pool: upstream sessions kept idle for the next client",
            pool.idle.clone(),
        );
        registry.register(
            "pool_sessions_in_use",
            "--pool: upstream sessions serving a client",
            pool.in_use.clone(),
        );
        registry.register(
            "pool_reuses",
            "--pool: clients served by a kept session: upstream logins saved",
            pool.reuses.clone(),
        );
        registry.register(
            "pool_resets_failed",
            "--pool: sessions closed because their reset (DISCARD ALL) failed",
            pool.resets_failed.clone(),
        );
        let failovers = Counter::default();
        let logins_retried = Counter::default();
        let tokens_dropped = Counter::default();
        let failover_recovery_seconds = Histogram::new(exponential_buckets(0.25, 2.0, 10));
        registry.register(
            "failovers",
            "Failovers seen: a writer target's login found no writer after a good one",
            failovers.clone(),
        );
        registry.register(
            "logins_retried",
            "Upstream logins tried again during a failover (a read-only server, a refused or dropped connection)",
            logins_retried.clone(),
        );
        registry.register(
            "tokens_dropped",
            "Cached IAM tokens dropped because the database refused them",
            tokens_dropped.clone(),
        );
        registry.register(
            "failover_recovery_seconds",
            "Time from the first login that found no writer to the first good login after it",
            failover_recovery_seconds.clone(),
        );
        Metrics {
            pool,
            failovers,
            logins_retried,
            tokens_dropped,
            failover_recovery_seconds,
            registry,
            open,
            connections,
            login_seconds,
            tokens_minted,
            bytes,
            refusals,
            credentials_expiry,
        }
    }

    pub fn closed(&self, outcome: Outcome) {
        self.connections
            .get_or_create(&vec![("outcome", outcome.as_str())])
            .inc();
    }

    /// One refusal: `uid`, `uid_unknown`, `startup_timeout`, `bad_startup`,
    /// `too_many_pending`, `cancel_*`.
    pub fn refused(&self, reason: &'static str) {
        self.refusals.get_or_create(&vec![("reason", reason)]).inc();
    }

    pub fn relayed(&self, to_server: u64, to_client: u64) {
        self.bytes
            .get_or_create(&vec![("direction", "client_to_server")])
            .inc_by(to_server);
        self.bytes
            .get_or_create(&vec![("direction", "server_to_client")])
            .inc_by(to_client);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new();
        m.open.inc();
        m.closed(Outcome::Refused);
        m.tokens_minted.inc();
        m.relayed(10, 20);
        m.login_seconds.observe(0.004);
        m.refused("uid");
        let text = m.render();
        assert!(
            text.contains("rdsiam_proxy_refusals_total{reason=\"uid\"} 1"),
            "{text}"
        );
        assert!(text.contains("rdsiam_proxy_connections_open 1"), "{text}");
        assert!(
            text.contains("rdsiam_proxy_connections_total{outcome=\"refused\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("rdsiam_proxy_tokens_minted_total 1"),
            "{text}"
        );
        assert!(
            text.contains("rdsiam_proxy_bytes_total{direction=\"server_to_client\"} 20"),
            "{text}"
        );
        assert!(
            text.contains("rdsiam_proxy_login_seconds_count 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
