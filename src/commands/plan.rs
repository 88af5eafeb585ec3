//! A proxy's targets, planned once (issue 18): flags, environment and
//! config layered and checked before any network call, then resolved
//! through the RDS API into an [`Upstream`]. Shared by `proxy`, `run` and
//! `psql --long`, so no command calls another and each target is layered
//! exactly once.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::Result;

use crate::cli::{ConnArgs, PoolArgs, TargetArgs};
use crate::config::Config;
use crate::connect::Connector;
use crate::endpoint;
use crate::error::{Failure, suggestions};
use crate::flags::{self, Source};
use crate::proxy::pool::PoolConfig;
use crate::proxy::tokens::system_clock;
use crate::proxy::{self, Upstream};
use crate::target::{self, Conn, Target};
use crate::token::LIFETIME;

use super::Resolved;

/// Test-only: a shorter token life, so a test can run past it in seconds
/// (the token itself is still signed for 15 minutes; we only renew sooner).
const LIFETIME_VAR: &str = "RDSIAM_TEST_TOKEN_LIFETIME";

/// The proxy's runtime: one thread. On measurement (bench/proxy) a
/// current-thread runtime relays as fast as a multi-threaded one on a
/// small machine where the database and its clients want the other cores.
pub(crate) fn proxy_runtime() -> Result<tokio::runtime::Runtime> {
    super::runtime()
}

/// `--pool` and its limits as the proxy takes them.
pub(crate) fn pool_config(args: &PoolArgs) -> Option<PoolConfig> {
    args.pool.then(|| PoolConfig {
        size: args.pool_size as usize,
        idle_timeout: Duration::from_secs(args.pool_idle_timeout),
        max_lifetime: Duration::from_secs(args.pool_max_lifetime),
    })
}

pub(super) fn parse_addr(value: &str, flag: &str) -> Result<SocketAddr> {
    let bad = || {
        Failure::usage(format!("{flag} `{value}` is not ADDR:PORT"))
            .hint(format!("for example {flag} 127.0.0.1:5432"))
    };
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    // `localhost:5432`: resolved here, once, so it is a usage error if
    // wrong. The lookup blocks and may hang on a broken resolver: run it
    // aside and give up after a while.
    let (tx, rx) = std::sync::mpsc::channel();
    let name = value.to_owned();
    std::thread::spawn(move || {
        let _ = tx.send(name.to_socket_addrs().map(Iterator::collect::<Vec<_>>));
    });
    let addrs = match rx.recv_timeout(RESOLVE_TIMEOUT) {
        Ok(Ok(addrs)) => addrs,
        Ok(Err(_)) => return Err(bad().into()),
        Err(_) => {
            return Err(Failure::usage(format!(
                "{flag} `{value}`: resolving the name timed out after {}s",
                RESOLVE_TIMEOUT.as_secs()
            ))
            .hint(format!(
                "pass an address, for example {flag} 127.0.0.1:5432"
            ))
            .into());
        }
    };
    // IPv4 first, as before; an IPv6-only name still works.
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| bad().into())
}

/// How long resolving a `--listen`/`--http-address` host name may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// `--expect-writer`, `--failover-timeout`, `--login-timeout` for the proxy.
pub(crate) fn failover_settings(args: &crate::cli::FailoverArgs) -> proxy::FailoverSettings {
    proxy::FailoverSettings {
        expect_writer: args.expect_writer,
        failover_timeout: Duration::from_secs(args.failover_timeout),
        login_timeout: Duration::from_secs(args.login_timeout),
    }
}

/// Test-only token lifetime, else 15 minutes.
pub(crate) fn token_lifetime() -> Result<Duration> {
    match std::env::var(LIFETIME_VAR) {
        Ok(v) if !v.is_empty() => match v.parse::<u64>() {
            Ok(secs @ 1..=900) => Ok(Duration::from_secs(secs)),
            _ => Err(
                Failure::usage(format!("{LIFETIME_VAR}={v} is not 1..900 seconds"))
                    .hint(format!(
                        "it is for tests only: unset {LIFETIME_VAR}, or set it to a whole number of seconds from 1 to 900"
                    ))
                    .into(),
            ),
        },
        _ => Ok(LIFETIME),
    }
}

/// One target's settings, layered and checked, before any network call.
pub(crate) struct Planned {
    name: Option<String>,
    target: Target,
    pinned: Option<String>,
    connector: Connector,
    /// The target's own `listen` from the config file: `Some(None)` is `none`.
    pub(super) listen: Option<Option<SocketAddr>>,
    /// `--no-config`: the file is not read, not even for suggestions.
    no_config: bool,
}

/// A name on the command line that is not in the config file is taken as
/// an RDS proxy, cluster or instance of that name (resolved later).
pub(super) fn plan(args: &TargetArgs, name: Option<&str>) -> Result<(TargetArgs, bool)> {
    let mut args = args.clone();
    args.target = name.map(str::to_owned);
    let kind_given = args.proxy.is_some()
        || args.cluster.is_some()
        || args.instance.is_some()
        || args.host.is_some();
    let bare = match name {
        Some(name) if !kind_given => {
            let config = if args.no_config {
                Config::default()
            } else {
                Config::load()?
            };
            !config.targets.contains_key(name)
        }
        _ => false,
    };
    if bare {
        // Layer as if the name were a proxy, to check the rest now; the
        // RDS API says later which kind of resource it really is.
        args.proxy = args.target.take();
    }
    Ok((args, bare))
}

pub(crate) fn planned(
    args: &TargetArgs,
    conn: &ConnArgs,
    name: Option<&str>,
) -> Result<(Planned, bool)> {
    let (args, bare) = plan(args, name)?;
    let mut layered = flags::layer(&args, Some(conn))?;
    let pinned = layered.entry.user.clone().filter(|u| !u.trim().is_empty());
    if pinned.is_none() {
        // No user: every client logs in as the user it asks for.
        layered.entry.user = Some("-".to_owned());
    }
    let target = Target::from_layered(&layered)?;
    let e = &layered.entry;
    let connector = Connector::from_args(&Conn::from_entry(e)?)?;
    // Only the file's `listen` is the target's own; RDSIAM_LISTEN is --listen.
    let own = match layered.sources.get("listen") {
        Some(Source::Defaults | Source::Target) => e.listen.as_deref(),
        _ => None,
    };
    let listen = match own {
        None => None,
        Some("none") => Some(None),
        Some(addr) => Some(Some(parse_addr(addr, "listen")?)),
    };
    Ok((
        Planned {
            name: name.map(str::to_owned),
            target,
            pinned,
            connector,
            listen,
            no_config: args.no_config,
        },
        bare,
    ))
}

impl Planned {
    /// The target as layered (before a bare name is looked up).
    pub(super) fn target(&self) -> &Target {
        &self.target
    }
}

/// Resolve a planned target through the RDS API into an upstream.
pub(crate) async fn resolve(planned: Planned, bare: bool) -> Result<Upstream> {
    let Planned {
        name,
        mut target,
        pinned,
        connector,
        listen: _,
        no_config,
    } = planned;
    if bare && let Some(name) = &name {
        target.selector = bare_selector(name, &target, no_config).await?;
    }
    let resolved = Resolved::load(&target).await?;
    let display = name.unwrap_or_else(|| resolved.endpoint.name.clone());
    Upstream::new(
        display,
        resolved,
        connector,
        pinned,
        system_clock(),
        token_lifetime()?,
    )
}

/// Which RDS resource a bare name is: a proxy, then a cluster, then an instance.
async fn bare_selector(name: &str, target: &Target, no_config: bool) -> Result<target::Selector> {
    let aws = crate::aws::load(&target.aws).await?;
    // A failed or silent API names its URL, as for any other target.
    bare_lookup(name, &aws, no_config)
        .await
        .map_err(|err| endpoint::naming_endpoint(err, &aws.rds_endpoint()))
}

async fn bare_lookup(
    name: &str,
    aws: &crate::aws::Aws,
    no_config: bool,
) -> Result<target::Selector> {
    let rds = aws.rds()?;
    let proxies = endpoint::list_proxies(&rds).await?;
    if proxies.iter().any(|e| e.name == name) {
        return Ok(target::Selector::Proxy(name.to_owned()));
    }
    let clusters = endpoint::list_clusters(&rds).await?;
    if clusters.iter().any(|e| e.name == name) {
        return Ok(target::Selector::Cluster {
            id: name.to_owned(),
            reader: false,
        });
    }
    let instances = endpoint::list_instances(&rds).await?;
    if instances.iter().any(|e| e.name == name) {
        return Ok(target::Selector::Instance(name.to_owned()));
    }
    let config = if no_config {
        Config::default()
    } else {
        Config::load().unwrap_or_default()
    };
    let known: Vec<&str> = config
        .targets
        .keys()
        .map(String::as_str)
        .chain(
            proxies
                .iter()
                .chain(&clusters)
                .chain(&instances)
                .map(|e| e.name.as_str()),
        )
        .collect();
    let mut failure = Failure::aws(format!(
        "`{name}` is neither a target in the config file nor an RDS proxy, cluster or instance in {}",
        aws.region
    ));
    match suggestions(name, known).first() {
        Some(best) => failure = failure.hint(format!("did you mean `{best}`?")),
        None => {
            failure = failure.hint(
                "`rdsiam targets` lists the config's targets and `rdsiam list` the region's resources",
            );
        }
    }
    Err(failure.into())
}
