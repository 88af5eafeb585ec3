//! An Aurora-like cluster on 127.0.0.1 (issue 19): a writer and a hot-standby reader in
//! streaming replication, and one [`Gate`] that plays the cluster's writer endpoint, its
//! reader endpoint and (in RDS Proxy mode) a proxy endpoint, each a host name the token must
//! be signed for. [`Cluster::failover`] does what an Aurora failover does to a client:
//!
//! 1. the writer stops (`fast`: open sessions get 57P01; `immediate`: they are dropped);
//! 2. for the DNS-lag window the writer endpoint still leads to the old writer: gone (the
//!    connection ends during login, as one to an address nobody listens on), or read-only
//!    (the gate reaches a hot standby, a server that is up but refuses writes);
//! 3. the standby is promoted and the writer endpoint leads to it from then on;
//! 4. a new standby is copied from the new writer and the reader endpoint leads to it, so the
//!    next failover can happen too.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::listener::{Gate, GateConfig};
use crate::pg::{Postgres, StopMode};

/// What the writer endpoint reaches during the DNS-lag window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OldWriter {
    /// Nothing: logins end before the server's answer.
    Gone,
    /// A read-only server (the standby before its promotion): logins work, writes fail.
    ReadOnly,
}

/// How a failover goes.
#[derive(Clone, Copy, Debug)]
pub struct Failover {
    pub stop: StopMode,
    /// How long the writer endpoint still leads to the old writer (Aurora's DNS TTL is 5 s).
    pub dns_lag: Duration,
    pub old_writer: OldWriter,
}

impl Default for Failover {
    fn default() -> Failover {
        Failover {
            stop: StopMode::Fast,
            dns_lag: Duration::from_secs(1),
            old_writer: OldWriter::Gone,
        }
    }
}

/// When the failover's steps happened.
#[derive(Clone, Copy, Debug)]
pub struct FailoverTimes {
    pub started: Instant,
    /// The new writer accepted writes.
    pub promoted: Instant,
    /// The writer endpoint led to the new writer.
    pub spliced: Instant,
}

struct Nodes {
    writer: Postgres,
    reader: Option<Postgres>,
}

/// A writer, a reader and the gate in front of both; dropping it stops everything.
pub struct Cluster {
    // The gate goes before the servers it leads to.
    gate: Gate,
    nodes: Mutex<Nodes>,
}

impl Cluster {
    /// Starts a writer, copies a standby from it, and starts a gate whose tokens must name
    /// `writer_host` (the main endpoint), `reader_host`, or one of `extra_hosts` (e.g. an RDS
    /// Proxy endpoint, which leads to the writer), all on the gate's own port unless
    /// `endpoint_port` is given.
    pub fn start(
        writer_host: &str,
        reader_host: &str,
        extra_hosts: &[&str],
        endpoint_port: Option<u16>,
    ) -> Result<Cluster> {
        let writer = Postgres::start().context("starting the writer")?;
        Self::around(writer, |cfg| {
            cfg.endpoint_host = writer_host.to_owned();
            cfg.endpoint_port = endpoint_port;
            cfg.extra_hosts = extra_hosts.iter().map(|h| (*h).to_owned()).collect();
            cfg.reader_hosts = vec![reader_host.to_owned()];
        })
    }

    /// A cluster around a writer already started: a standby copied from it, and a gate
    /// configured by `configure` (which sets the hosts; the ports are filled in here).
    pub fn around(writer: Postgres, configure: impl FnOnce(&mut GateConfig)) -> Result<Cluster> {
        let reader = Postgres::start_standby_of(&writer).context("starting the reader")?;
        let mut cfg = GateConfig::new(&writer);
        configure(&mut cfg);
        cfg.reader_backend_port = Some(reader.port());
        let gate = Gate::start(cfg)?;
        Ok(Cluster {
            gate,
            nodes: Mutex::new(Nodes {
                writer,
                reader: Some(reader),
            }),
        })
    }

    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// Runs `sql` as the superuser on the current writer (see [`Postgres::psql_super`]).
    pub fn psql_writer(&self, db: &str, sql: &str) -> Result<String> {
        self.nodes().writer.psql_super(db, sql)
    }

    /// Runs `sql` as the superuser on the current reader.
    pub fn psql_reader(&self, db: &str, sql: &str) -> Result<String> {
        let nodes = self.nodes();
        nodes
            .reader
            .as_ref()
            .context("the cluster has no reader now")?
            .psql_super(db, sql)
    }

    /// The current writer (held locked while the guard lives; a failover waits for it).
    pub fn writer(&self) -> WriterGuard<'_> {
        WriterGuard(self.nodes())
    }

    /// The current writer's PostgreSQL port.
    pub fn writer_port(&self) -> u16 {
        self.nodes().writer.port()
    }

    /// The psql beside the server binaries.
    pub fn psql_path(&self) -> std::path::PathBuf {
        self.nodes().writer.psql_path()
    }

    /// Fails over (see the module doc) and returns once the writer endpoint leads to the new
    /// writer and a new reader follows it. Blocks; run it on a thread to act meanwhile.
    pub fn failover(&self, how: Failover) -> Result<FailoverTimes> {
        let started = Instant::now();
        let mut nodes = self.nodes();
        let standby = nodes
            .reader
            .take()
            .context("no standby to promote: a failover is already under way")?;
        // Aurora's DNS still names the old writer: new logins go nowhere (or, read-only, to
        // a server that refuses writes) while it goes down.
        match how.old_writer {
            OldWriter::Gone => self.gate.set_writer_backend(None),
            OldWriter::ReadOnly => self.gate.set_writer_backend(Some(standby.port())),
        }
        nodes.writer.stop(how.stop).context("stopping the writer")?;
        let promoted = if how.old_writer == OldWriter::ReadOnly {
            std::thread::sleep(how.dns_lag);
            standby.promote().context("promoting the standby")?;
            Instant::now()
        } else {
            standby.promote().context("promoting the standby")?;
            let promoted = Instant::now();
            std::thread::sleep(how.dns_lag);
            promoted
        };
        self.gate.set_writer_backend(Some(standby.port()));
        let spliced = Instant::now();
        self.gate.set_reader_backend(standby.port());
        let old = std::mem::replace(&mut nodes.writer, standby);
        drop(old);
        let reader = Postgres::start_standby_of(&nodes.writer).context("starting a new reader")?;
        self.gate.set_reader_backend(reader.port());
        nodes.reader = Some(reader);
        Ok(FailoverTimes {
            started,
            promoted,
            spliced,
        })
    }

    fn nodes(&self) -> std::sync::MutexGuard<'_, Nodes> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Field order would drop the gate first anyway; said here so a reorder can't change it.
        self.gate.set_writer_backend(None);
    }
}

/// The current writer, borrowed from a [`Cluster`].
pub struct WriterGuard<'a>(std::sync::MutexGuard<'a, Nodes>);

impl std::ops::Deref for WriterGuard<'_> {
    type Target = Postgres;
    fn deref(&self) -> &Postgres {
        &self.0.writer
    }
}
