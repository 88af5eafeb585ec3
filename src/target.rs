//! What to reach, as whom, with which AWS settings, and how to connect: the
//! typed values every layer takes ([`Target`], [`Conn`], [`Via`],
//! [`AwsSettings`]). How flags, environment and the config file become
//! these is `flags.rs`, at the top beside `cli`.

use anyhow::Result;

use std::time::Duration;

use crate::ca::Roots;
use crate::engine::Engine;
use crate::error::Failure;
use crate::tls::SslMode;

/// A tunnel entrance: where TCP goes instead of the endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Via {
    pub host: String,
    pub port: u16,
}

impl Via {
    /// `ADDR:PORT`, `[v6]:PORT`.
    pub fn parse(value: &str) -> Result<Via> {
        let bad = || {
            Failure::usage(format!("--via `{}` is not ADDR:PORT", value.escape_debug()))
                .hint("for an SSM port forward or SSH tunnel listening on 15432, pass --via 127.0.0.1:15432 (an address and port, not a URL)")
        };
        let (host, port) = value.rsplit_once(':').ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(bad)?;
        // A host name or an IP address: `http://x:1` or `x/y` is not one.
        let host_ok = host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'%'));
        if host.is_empty() || !host_ok {
            return Err(bad().into());
        }
        Ok(Via {
            host: host.to_owned(),
            port,
        })
    }
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Where AWS settings come from: flags (or config) over the SDK's own sources.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AwsSettings {
    pub region: Option<String>,
    pub profile: Option<String>,
    /// RDS API endpoint; applies to the RDS client only, never to STS.
    pub endpoint_url: Option<String>,
    /// Bound on each AWS call (API, credentials); `None`: [`DEFAULT_API_TIMEOUT`].
    pub api_timeout: Option<Duration>,
}

/// How long one AWS API call (retries included) or one credentials lookup may
/// take unless `--api-timeout` says: the RDS API answers in well under a
/// second, so a person at a terminal learns of a dead endpoint in 15 s
/// rather than never.
pub const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(15);

impl AwsSettings {
    /// The bound on one API call or credentials lookup.
    pub fn timeout(&self) -> Duration {
        self.api_timeout.unwrap_or(DEFAULT_API_TIMEOUT)
    }
}

/// Seconds for TCP, TLS and login together, unless --connect-timeout says.
pub const DEFAULT_CONNECT_TIMEOUT: u64 = 10;

/// How to reach the endpoint and how to trust it, typed and checked: what
/// `connect`, `pgenv` and the REPL take. Clap types stop here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conn {
    pub via: Option<Via>,
    pub sslmode: SslMode,
    pub roots: Roots,
    /// TCP, TLS and login together (and `check`'s query after login).
    pub timeout: Duration,
}

impl Default for Conn {
    fn default() -> Conn {
        Conn {
            via: None,
            sslmode: SslMode::default(),
            roots: Roots::BuiltIn,
            timeout: Duration::from_secs(DEFAULT_CONNECT_TIMEOUT),
        }
    }
}

/// Which RDS resource names the endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    Proxy(String),
    Cluster {
        id: String,
        reader: bool,
    },
    Instance(String),
    /// A host used as is: no RDS API call.
    Host(String),
}

/// Everything needed to find the endpoint and sign for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub selector: Selector,
    pub port: Option<u16>,
    /// What `--engine` (or the config) says: used for a `--host` endpoint;
    /// the RDS API names the others' engine.
    pub engine: Option<Engine>,
    pub user: String,
    pub dbname: Option<String>,
    pub aws: AwsSettings,
}

impl Target {
    /// The engine known before any API call: a `--host` target's
    /// (`--engine`, default postgres); `None` when the RDS API will say.
    pub fn known_engine(&self) -> Option<Engine> {
        match self.selector {
            Selector::Host(_) => Some(self.engine.unwrap_or_default()),
            _ => None,
        }
    }

    /// Exit 2, before any network, when a `--host` target's engine is not
    /// the one `command` serves.
    pub fn require_engine(&self, serves: Engine, command: &str) -> Result<()> {
        match (&self.selector, self.known_engine()) {
            (Selector::Host(host), Some(engine)) => {
                crate::engine::require(engine, serves, command, &format!("host `{host}`"))
            }
            _ => Ok(()),
        }
    }
}
