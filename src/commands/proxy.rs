//! `rdsiam proxy`: listeners for one or more targets, the ready lines, the
//! health endpoints, and the drain on SIGTERM/SIGINT. The proxy itself lives
//! in `crate::proxy`; this file turns flags into it.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::{ConnArgs, ListenArgs, LogFormat, ProxyArgs, TargetArgs};
use crate::config::Config;
use crate::connect::Connector;
use crate::endpoint;
use crate::error::{Failure, suggestions};
use crate::output::warn;
use crate::proxy::limits::Limits;
use crate::proxy::log::{Log, Value};
use crate::proxy::tokens::system_clock;
use crate::proxy::{self, Listen, Listener, Shared, Upstream};
use crate::target::{self, Conn, Target};
use crate::token::LIFETIME;

use super::Resolved;

/// Test-only: a shorter token life, so a test can run past it in seconds
/// (the token itself is still signed for 15 minutes; we only renew sooner).
const LIFETIME_VAR: &str = "RDSIAM_TEST_TOKEN_LIFETIME";

/// The first listener's port when `--listen` is not given.
const DEFAULT_LISTEN: &str = "127.0.0.1:5432";

pub fn run(args: ProxyArgs) -> Result<u8> {
    let plan = ListenPlan::parse(&args.listen)?;
    let names: Vec<Option<String>> = match &args.target.target {
        None => vec![None],
        Some(first) => std::iter::once(first.clone())
            .chain(args.more_targets.iter().cloned())
            .map(Some)
            .collect(),
    };
    if let Some(base) = plan.tcp
        && usize::from(base.port()) + names.len() - 1 > usize::from(u16::MAX)
    {
        return Err(
            Failure::usage("too many targets for the ports after --listen")
                .hint("pass a lower --listen port")
                .into(),
        );
    }
    let rt = proxy_runtime()?;
    let result = rt.block_on(serve(args, plan, names));
    rt.shutdown_timeout(Duration::from_millis(200));
    result
}

/// The proxy's runtime: one thread. On measurement (bench/proxy) a
/// current-thread runtime relays as fast as a multi-threaded one on a
/// small machine where the database and its clients want the other cores.
pub(crate) fn proxy_runtime() -> Result<tokio::runtime::Runtime> {
    super::runtime()
}

/// Where to listen, checked before any network call.
pub struct ListenPlan {
    pub tcp: Option<SocketAddr>,
    pub unix_dir: Option<PathBuf>,
    pub http: Option<SocketAddr>,
    pub max_connections: usize,
    pub rate: u32,
    pub sigterm_delay: Duration,
    pub log: LogFormat,
}

impl ListenPlan {
    fn parse(args: &ListenArgs) -> Result<ListenPlan> {
        let tcp = match args.listen.as_deref().unwrap_or(DEFAULT_LISTEN) {
            "none" => None,
            addr => Some(parse_addr(addr, "--listen")?),
        };
        if tcp.is_none() && args.unix_socket.is_none() {
            return Err(
                Failure::usage("--listen none and no --unix-socket: nothing to listen on")
                    .hint("add --unix-socket DIR, or drop --listen none")
                    .into(),
            );
        }
        if let Some(addr) = tcp
            && !addr.ip().is_loopback()
        {
            warn(&format!(
                "listening on {addr}, which is not loopback: anyone who can reach it logs in to the database as you"
            ));
        }
        let http = args
            .http_address
            .as_deref()
            .map(|a| parse_addr(a, "--http-address"))
            .transpose()?;
        Ok(ListenPlan {
            tcp,
            unix_dir: args.unix_socket.clone(),
            http,
            max_connections: args.max_connections as usize,
            rate: args.max_connection_rate,
            sigterm_delay: Duration::from_secs(args.max_sigterm_delay),
            log: args.log_format,
        })
    }
}

fn parse_addr(value: &str, flag: &str) -> Result<SocketAddr> {
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
    listen: Option<Option<SocketAddr>>,
}

/// A name on the command line that is not in the config file is taken as
/// an RDS proxy, cluster or instance of that name (resolved later).
fn plan(args: &TargetArgs, name: Option<&str>) -> Result<(TargetArgs, bool)> {
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
    let mut layered = target::layer(&args, Some(conn))?;
    let pinned = layered.entry.user.clone().filter(|u| !u.trim().is_empty());
    if pinned.is_none() {
        // No user: every client logs in as the user it asks for.
        layered.entry.user = Some("-".to_owned());
    }
    let target = Target::from_layered(&layered)?;
    let e = &layered.entry;
    let connector = Connector::from_args(&Conn::from_entry(e)?)?;
    let listen = match e.listen.as_deref() {
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
        },
        bare,
    ))
}

/// Resolve a planned target through the RDS API into an upstream.
pub(crate) async fn resolve(planned: Planned, bare: bool) -> Result<Upstream> {
    let Planned {
        name,
        mut target,
        pinned,
        connector,
        listen: _,
    } = planned;
    if bare && let Some(name) = &name {
        target.selector = bare_selector(name, &target).await?;
    }
    let resolved = Resolved::load(&target).await?;
    // The proxy speaks PostgreSQL only (issue 22's MySQL side is not built yet).
    resolved.require(crate::engine::Engine::Postgres, "proxy")?;
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
async fn bare_selector(name: &str, target: &Target) -> Result<target::Selector> {
    let aws = crate::aws::load(&target.aws).await?;
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
    let config = Config::load().unwrap_or_default();
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

/// The ready line: what to type to connect.
fn ready_line(up: &Upstream, listener: &Listener) -> String {
    let (host, port) = listener.host_port();
    let mut conninfo = format!("host={host} port={port}");
    if let Some(user) = &up.pinned_user {
        conninfo.push_str(&format!(" user={}", conninfo_value(user)));
    }
    if let Some(db) = &up.resolved.target.dbname {
        conninfo.push_str(&format!(" dbname={}", conninfo_value(db)));
    }
    if matches!(listener.listen, Listen::Tcp(_)) {
        conninfo.push_str(" sslmode=disable");
    }
    let at = match &listener.listen {
        Listen::Tcp(_) => format!("{host}:{port}"),
        Listen::Unix(_, path) => path.display().to_string(),
    };
    format!(
        "rdsiam proxy: ready on {at} for {} ({}); connect with: psql \"{conninfo}\"",
        up.name,
        up.at()
    )
}

fn conninfo_value(value: &str) -> String {
    if value.is_empty() || value.contains([' ', '\'', '\\', '"']) {
        format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
    } else {
        value.to_owned()
    }
}

async fn serve(args: ProxyArgs, plan: ListenPlan, names: Vec<Option<String>>) -> Result<u8> {
    // Installed first: a signal during start-up stops the proxy once it has started.
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;

    let mut planned = Vec::new();
    for name in &names {
        planned.push(planned_for(&args, name.as_deref())?);
    }
    // A target's own `listen` beats the port counted from --listen.
    let base_port = plan.tcp.map_or(5432, |a| a.port());
    let addrs: Vec<Option<SocketAddr>> = planned
        .iter()
        .enumerate()
        .map(|(i, (p, _))| match p.listen {
            Some(own) => own,
            None => plan
                .tcp
                .map(|base| SocketAddr::new(base.ip(), base_port + i as u16)),
        })
        .collect();
    for addr in addrs.iter().flatten() {
        if !addr.ip().is_loopback() && Some(*addr) != plan.tcp {
            warn(&format!(
                "listening on {addr}, which is not loopback: anyone who can reach it logs in to the database as you"
            ));
        }
    }
    if addrs.iter().all(Option::is_none) && plan.unix_dir.is_none() {
        return Err(
            Failure::usage("no target has a TCP listener and there is no --unix-socket")
                .hint("add --unix-socket DIR, or give a target a listen address")
                .into(),
        );
    }
    // The RDS API may be slow or hang: a signal stops the start-up at once.
    let resolving = async {
        let mut upstreams = Vec::new();
        for (p, bare) in planned {
            upstreams.push(Arc::new(resolve(p, bare).await?));
        }
        Ok::<_, anyhow::Error>(upstreams)
    };
    let upstreams = tokio::select! {
        r = resolving => r?,
        _ = sigterm.recv() => return Ok(143),
        _ = sigint.recv() => return Ok(130),
    };
    crate::proxy::limits::raise_fd_limit(plan.max_connections);

    let mut listeners = Vec::new();
    for (i, _) in upstreams.iter().enumerate() {
        let port = addrs[i].map_or(base_port + i as u16, |a| a.port());
        if let Some(addr) = addrs[i] {
            listeners.push(Listener {
                listen: Listen::Tcp(proxy::bind_tcp(addr).await?),
                target: i,
            });
        }
        if let Some(dir) = &plan.unix_dir {
            let (l, path) = proxy::bind_unix(dir, port)?;
            listeners.push(Listener {
                listen: Listen::Unix(l, path),
                target: i,
            });
        }
    }
    let http = match plan.http {
        Some(addr) => Some(proxy::bind_tcp(addr).await?),
        None => None,
    };

    let log = Log {
        format: plan.log,
        quiet: false,
    };
    let shared = Arc::new(Shared::new(
        Limits::new(plan.max_connections, plan.rate),
        log,
        upstreams.clone(),
    ));
    let sockets: Vec<PathBuf> = listeners
        .iter()
        .filter_map(|l| match &l.listen {
            Listen::Unix(_, path) => Some(path.clone()),
            Listen::Tcp(_) => None,
        })
        .collect();
    let mut lines = Vec::new();
    for listener in listeners {
        let up = upstreams[listener.target].clone();
        lines.push(ready_line(&up, &listener));
        tokio::spawn(proxy::accept_loop(listener, up, shared.clone()));
    }
    if let Some(http) = http {
        if let Ok(addr) = http.local_addr() {
            log.line("http", &[("address", Value::Str(&addr.to_string()))]);
        }
        tokio::spawn(proxy::http::serve(http, shared.clone()));
    }
    shared.set_started();
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        for line in &lines {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    }

    tokio::select! {
        _ = sigterm.recv() => {}
        _ = sigint.recv() => {}
    }
    let drained = tokio::select! {
        () = proxy::drain(&shared, plan.sigterm_delay) => true,
        _ = sigterm.recv() => false,
        _ = sigint.recv() => false,
    };
    if !drained {
        log.line(
            "stop-now",
            &[("open", Value::Num(shared.tracker.len() as u64))],
        );
    }
    for path in sockets {
        let _ = std::fs::remove_file(path);
    }
    log.line("stopped", &[]);
    Ok(0)
}

fn planned_for(args: &ProxyArgs, name: Option<&str>) -> Result<(Planned, bool)> {
    planned(&args.target, &args.conn, name)
}
