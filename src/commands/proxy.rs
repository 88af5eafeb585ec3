//! `rdsiam proxy`: listeners for one or more targets, the ready lines, the
//! health endpoints, and the drain on SIGTERM/SIGINT. The proxy itself lives
//! in `crate::proxy`; this file turns flags into it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::{ListenArgs, LogFormat, ProxyArgs};
use crate::config::Entry;
use crate::error::{Failure, Kind};
use crate::flags::{self, Layered, Source};
use crate::output::warn;
use crate::proxy::admit::{self, Admission};
use crate::proxy::limits::Limits;
use crate::proxy::log::{Log, Value};
use crate::proxy::{self, Listen, Listener, Shared, Upstream};

use super::plan::{
    Planned, failover_settings, parse_addr, plan, planned, pool_config, proxy_runtime, resolve,
};

/// The first listener's port when `--listen` is not given.
const DEFAULT_LISTEN: &str = "127.0.0.1:5432";

pub fn run(args: ProxyArgs) -> Result<u8> {
    let settings = proxy_settings(&args)?;
    if let Some(secs) = args.listen.wait {
        return wait_ready(&settings, Duration::from_secs(secs));
    }
    let plan = ListenPlan::parse(&settings, &args.listen)?;
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

/// Where to listen, checked before any network call.
pub struct ListenPlan {
    pub tcp: Option<SocketAddr>,
    pub unix_dir: Option<PathBuf>,
    pub http: Option<SocketAddr>,
    pub max_connections: usize,
    pub rate: u32,
    pub sigterm_delay: Duration,
    /// Keep accepting this long after SIGTERM (readiness failing).
    pub min_sigterm_delay: Duration,
    pub quitquitquit: bool,
    pub log: LogFormat,
    /// `--allow-user`, as uids.
    pub allowed: Vec<u32>,
    pub any: bool,
}

/// The proxy's own settings, layered like every key: built-in < `[defaults]`
/// < the first target's table < `RDSIAM_<FLAG>` < flags.
fn proxy_settings(args: &ProxyArgs) -> Result<Layered> {
    let (targs, _) = plan(&args.target, args.target.target.as_deref())?;
    let mut layered = flags::layer(&targs, None)?;
    layered.overlay_flags(&listen_flags(&args.listen));
    Ok(layered)
}

/// The proxy's flags as an [`Entry`], to go over the other layers.
fn listen_flags(args: &ListenArgs) -> Entry {
    use clap::ValueEnum as _;
    Entry {
        listen: args.listen.clone(),
        unix_socket: args.unix_socket.clone(),
        http_address: args.http_address.clone(),
        max_connections: args.max_connections,
        max_connection_rate: args.max_connection_rate,
        min_sigterm_delay: args.min_sigterm_delay,
        max_sigterm_delay: args.max_sigterm_delay,
        log_format: args
            .log_format
            .and_then(|f| f.to_possible_value())
            .map(|v| v.get_name().to_owned()),
        quitquitquit: args.quitquitquit.then_some(true),
        ..Entry::default()
    }
}

/// Where a setting came from, for messages: the flag, the variable, or the file.
fn origin(layered: &Layered, key: &str) -> String {
    let var = crate::config::key(key).and_then(|k| k.env.first().copied());
    match (layered.sources.get(key), var) {
        (Some(Source::Env), Some(var)) => var.to_owned(),
        (Some(Source::Defaults | Source::Target), _) => format!("{key} in the config file"),
        _ => format!("--{key}"),
    }
}

/// A number setting within `lo..=hi`, else `default`.
fn ranged<T: Copy + PartialOrd + std::fmt::Display>(
    layered: &Layered,
    key: &str,
    value: Option<T>,
    (lo, hi): (T, T),
    default: T,
) -> Result<T> {
    match value {
        None => Ok(default),
        Some(v) if v >= lo && v <= hi => Ok(v),
        Some(v) => {
            let from = origin(layered, key);
            Err(Failure::usage(format!("{from} is {v}, not {lo} to {hi}"))
                .hint(format!("set {from} to a number from {lo} to {hi}"))
                .into())
        }
    }
}

impl ListenPlan {
    fn parse(layered: &Layered, args: &ListenArgs) -> Result<ListenPlan> {
        let e = &layered.entry;
        // A `listen` from the file is a target's own (see `planned`); the
        // base for counting ports is --listen or RDSIAM_LISTEN.
        let base = match layered.sources.get("listen") {
            Some(Source::Env | Source::Flag) => e.listen.as_deref(),
            _ => None,
        };
        let tcp = match base.unwrap_or(DEFAULT_LISTEN) {
            "none" => None,
            addr => Some(parse_addr(addr, "--listen")?),
        };
        if tcp.is_none() && e.unix_socket.is_none() {
            return Err(
                Failure::usage("--listen none and no --unix-socket: nothing to listen on")
                    .hint("add --unix-socket DIR, or drop --listen none")
                    .into(),
            );
        }
        if let Some(addr) = tcp {
            open_listen(addr, args.allow_any_local_user)?;
        }
        let mut allowed = Vec::new();
        for user in &args.allow_user {
            allowed.push(admit::resolve_user(user).map_err(|why| {
                Failure::usage(why).hint("pass --allow-user with an account name or a numeric uid")
            })?);
        }
        let http = e
            .http_address
            .as_deref()
            .map(|a| parse_addr(a, "--http-address"))
            .transpose()?;
        let log = match e.log_format.as_deref() {
            None => LogFormat::Text,
            Some(name) => {
                <LogFormat as clap::ValueEnum>::from_str(name.trim(), true).map_err(|_| {
                    let from = origin(layered, "log-format");
                    Failure::usage(format!(
                        "{from} `{}` is not text or json",
                        name.escape_debug()
                    ))
                    .hint(format!("set {from} to text or json"))
                })?
            }
        };
        let quitquitquit = e.quitquitquit.unwrap_or(false);
        if quitquitquit && http.is_none() {
            return Err(Failure::usage(format!(
                "{} needs an HTTP address to listen on",
                origin(layered, "quitquitquit")
            ))
            .hint("add --http-address ADDR:PORT (RDSIAM_HTTP_ADDRESS), or drop --quitquitquit")
            .into());
        }
        let secs =
            |key, value| ranged(layered, key, value, (0, 86_400), 0).map(Duration::from_secs);
        Ok(ListenPlan {
            tcp,
            unix_dir: e.unix_socket.clone(),
            http,
            max_connections: ranged(
                layered,
                "max-connections",
                e.max_connections,
                (1, 100_000),
                1000,
            )? as usize,
            rate: ranged(
                layered,
                "max-connection-rate",
                e.max_connection_rate,
                (1, 10_000),
                100,
            )?,
            sigterm_delay: secs("max-sigterm-delay", e.max_sigterm_delay)?,
            min_sigterm_delay: secs("min-sigterm-delay", e.min_sigterm_delay)?,
            quitquitquit,
            log,
            allowed,
            any: args.allow_any_local_user,
        })
    }
}

/// A listener beyond loopback admits whoever reaches it, whose account the
/// proxy can't know: only with --allow-any-local-user spelled out.
fn open_listen(addr: SocketAddr, any: bool) -> Result<()> {
    if addr.ip().is_loopback() {
        return Ok(());
    }
    if !any {
        return Err(Failure::usage(format!(
            "--listen {addr} is not loopback: whoever reaches it would log in to the database as you, and the proxy can't tell who they are"
        ))
        .hint(format!(
            "listen on 127.0.0.1:{port} (or [::1]:{port}); to serve other machines on purpose, add --allow-any-local-user",
            port = addr.port()
        ))
        .into());
    }
    warn(&format!(
        "listening on {addr}, which is not loopback: anyone who can reach it logs in to the database as you"
    ));
    Ok(())
}

/// The ready line: what to type to connect.
fn ready_line(up: &Upstream, listener: &Listener) -> String {
    let (host, port) = listener.host_port();
    // A wildcard address is where we listen, not where to connect.
    let connect_host = match &listener.listen {
        Listen::Tcp(l) => match l.local_addr().map(|a| a.ip()) {
            Ok(std::net::IpAddr::V4(ip)) if ip.is_unspecified() => "127.0.0.1".to_owned(),
            Ok(std::net::IpAddr::V6(ip)) if ip.is_unspecified() => "::1".to_owned(),
            _ => host.clone(),
        },
        Listen::Unix(..) => host.clone(),
    };
    if up.resolved.endpoint.family == crate::engine::Engine::Mysql {
        return mysql_ready_line(up, listener, &connect_host, port);
    }
    let mut conninfo = format!("host={connect_host} port={port}");
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

/// The ready line for a MySQL target: the `mysql` command that connects.
fn mysql_ready_line(up: &Upstream, listener: &Listener, host: &str, port: u16) -> String {
    use crate::output::shell_quote;
    let (at, how) = match &listener.listen {
        Listen::Tcp(_) => (
            format!("{}:{port}", listener.host_port().0),
            format!("--protocol=TCP -h {host} -P {port}"),
        ),
        Listen::Unix(_, path) => (
            path.display().to_string(),
            format!("-S {}", shell_quote(&path.to_string_lossy())),
        ),
    };
    let mut command = format!("mysql {how}");
    if let Some(user) = &up.pinned_user {
        command.push_str(&format!(" -u {}", shell_quote(user)));
    }
    if let Some(db) = &up.resolved.target.dbname {
        command.push_str(&format!(" {}", shell_quote(db)));
    }
    format!(
        "rdsiam proxy: ready on {at} for {} ({}); connect with: {command}",
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

/// Session pooling resets with DISCARD ALL, which MySQL has no equal of
/// here yet: say so rather than silently not pooling.
fn refuse_pool_for_mysql(pool: bool, upstreams: &[Arc<Upstream>]) -> Result<()> {
    if pool
        && let Some(up) = upstreams
            .iter()
            .find(|u| u.resolved.endpoint.family == crate::engine::Engine::Mysql)
    {
        return Err(Failure::usage(format!(
            "--pool is for PostgreSQL targets; {} is MySQL/MariaDB",
            up.name
        ))
        .hint("drop --pool for this target (each client then gets its own upstream login)")
        .into());
    }
    Ok(())
}

/// Each target's TCP listener (when it has an address) and Unix socket
/// (under --unix-socket, named for its port).
async fn bind_listeners(
    upstreams: &[Arc<Upstream>],
    addrs: &[Option<SocketAddr>],
    base_port: u16,
    plan: &ListenPlan,
) -> Result<Vec<Listener>> {
    let mut listeners = Vec::new();
    for (i, up) in upstreams.iter().enumerate() {
        let port = addrs[i].map_or(base_port + i as u16, |a| a.port());
        if let Some(addr) = addrs[i] {
            listeners.push(Listener {
                listen: Listen::Tcp(proxy::bind_tcp(addr).await?),
                target: i,
            });
        }
        if let Some(dir) = &plan.unix_dir {
            let (l, path) = proxy::bind_unix(dir, port, up.resolved.endpoint.family)?;
            listeners.push(Listener {
                listen: Listen::Unix(l, path),
                target: i,
            });
        }
    }
    Ok(listeners)
}

async fn serve(args: ProxyArgs, plan: ListenPlan, names: Vec<Option<String>>) -> Result<u8> {
    let pool = pool_config(&args.pool);
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
        if Some(*addr) != plan.tcp {
            open_listen(*addr, plan.any)?;
        }
    }
    let admission = Admission::new(plan.allowed.clone(), plan.any);
    if let Some(why) = admission.tcp_blind()
        && addrs.iter().any(Option::is_some)
    {
        warn(&format!(
            "the account behind a TCP connection can't be known here ({why}), so TCP clients will be refused; connect through --unix-socket DIR, or pass --allow-any-local-user to admit every local account"
        ));
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
            upstreams.push(Arc::new(
                resolve(p, bare)
                    .await?
                    .with_failover(failover_settings(&args.failover)),
            ));
        }
        Ok::<_, anyhow::Error>(upstreams)
    };
    let upstreams = tokio::select! {
        r = resolving => r?,
        _ = sigterm.recv() => return Ok(143),
        _ = sigint.recv() => return Ok(130),
    };
    refuse_pool_for_mysql(pool.is_some(), &upstreams)?;
    crate::proxy::limits::raise_fd_limit(plan.max_connections);

    let listeners = bind_listeners(&upstreams, &addrs, base_port, &plan).await?;
    let http = match plan.http {
        Some(addr) => Some(proxy::bind_tcp(addr).await?),
        None => None,
    };

    let log = Log {
        format: plan.log,
        quiet: false,
    };
    let shared = Arc::new(
        Shared::new(
            Limits::new(plan.max_connections, plan.rate),
            log,
            upstreams.clone(),
        )
        .with_admission(admission)
        .with_pool(pool),
    );
    shared.spawn_service(shared.clone().sweep_pool());
    if plan.quitquitquit {
        shared.enable_quitquitquit();
    }
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
        shared.spawn_service(proxy::accept_loop(listener, up, shared.clone()));
    }
    if let Some(http) = http {
        if let Ok(addr) = http.local_addr() {
            log.line("http", &[("address", Value::Str(&addr.to_string()))]);
        }
        shared.spawn_service(proxy::http::serve(http, shared.clone()));
    }
    shared.spawn_service(proxy::renew::keep_fresh(shared.clone(), upstreams.clone()));
    shared.set_started();
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        for line in &lines {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    }

    stop(&shared, &plan, log, sockets, sigterm, sigint).await
}

/// Wait for SIGTERM, SIGINT or /quitquitquit, then stop: the delay that
/// lets a load balancer notice, the drain, the listeners' sockets.
async fn stop(
    shared: &Shared,
    plan: &ListenPlan,
    log: Log,
    sockets: Vec<PathBuf>,
    mut sigterm: tokio::signal::unix::Signal,
    mut sigint: tokio::signal::unix::Signal,
) -> Result<u8> {
    let quit = shared.quit.clone();
    let by_signal = tokio::select! {
        _ = sigterm.recv() => true,
        _ = sigint.recv() => true,
        () = quit.cancelled() => false,
    };
    if !sigterm_delay(shared, plan, by_signal, &mut sigterm, &mut sigint).await {
        log.line(
            "stop-now",
            &[("open", Value::Num(shared.tracker.len() as u64))],
        );
        shared.stop_services().await;
        for path in sockets {
            let _ = std::fs::remove_file(path);
        }
        log.line("stopped", &[]);
        return Ok(0);
    }
    let drained = tokio::select! {
        () = proxy::drain(shared, plan.sigterm_delay) => true,
        _ = sigterm.recv() => false,
        _ = sigint.recv() => false,
    };
    if !drained {
        log.line(
            "stop-now",
            &[("open", Value::Num(shared.tracker.len() as u64))],
        );
    }
    shared.stop_services().await;
    for path in sockets {
        let _ = std::fs::remove_file(path);
    }
    let dropped = Log::dropped();
    if dropped > 0 {
        log.line("stopped", &[("log_lines_dropped", Value::Num(dropped))]);
    } else {
        log.line("stopped", &[]);
    }
    Log::flush(Duration::from_secs(1));
    Ok(0)
}

/// After SIGTERM, keep accepting for `--min-sigterm-delay` with readiness
/// failing, so a Service or target group stops sending clients before the
/// listeners close. POST /quitquitquit skips it: whoever asked is done.
/// False when a second signal says stop now.
async fn sigterm_delay(
    shared: &Shared,
    plan: &ListenPlan,
    by_signal: bool,
    sigterm: &mut tokio::signal::unix::Signal,
    sigint: &mut tokio::signal::unix::Signal,
) -> bool {
    shared.set_draining();
    if !by_signal {
        shared.log.line("quitquitquit", &[]);
        return true;
    }
    if plan.min_sigterm_delay.is_zero() {
        return true;
    }
    shared.log.line(
        "sigterm-delay",
        &[(
            "min_sigterm_delay",
            Value::Secs(plan.min_sigterm_delay.as_secs_f64()),
        )],
    );
    tokio::select! {
        () = tokio::time::sleep(plan.min_sigterm_delay) => true,
        _ = sigterm.recv() => false,
        _ = sigint.recv() => false,
    }
}

/// `rdsiam proxy --wait`: poll the running proxy's GET /readiness (as a
/// kubelet would) until it answers 200 or `limit` passes. Blocking and
/// without a runtime: one small request at a time.
fn wait_ready(settings: &Layered, limit: Duration) -> Result<u8> {
    let Some(addr) = settings.entry.http_address.as_deref() else {
        return Err(Failure::usage("--wait needs the proxy's --http-address")
            .hint("pass --http-address ADDR:PORT (or set RDSIAM_HTTP_ADDRESS) as the proxy has it")
            .into());
    };
    let mut addr = parse_addr(addr, "--http-address")?;
    // A proxy listening on every address is reached on loopback.
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let deadline = std::time::Instant::now() + limit;
    loop {
        let last = match readiness_once(addr) {
            Ok((200, _)) => {
                println!("rdsiam proxy: ready (http://{addr}/readiness)");
                return Ok(0);
            }
            Ok((status, body)) => format!("{status} {}", body.trim()),
            Err(err) => format!("no answer ({err})"),
        };
        if std::time::Instant::now() >= deadline {
            return Err(Failure::new(
                Kind::Expectation,
                format!(
                    "the proxy at {addr} was not ready after {}s: {last}",
                    limit.as_secs()
                ),
            )
            .hint("check the proxy's log on stderr; give it longer with --wait=SECS")
            .into());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// One GET /readiness: (status, body).
fn readiness_once(addr: SocketAddr) -> std::io::Result<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"GET /readiness HTTP/1.1\r\nHost: rdsiam\r\nConnection: close\r\n\r\n")?;
    let mut text = Vec::new();
    stream.take(64 * 1024).read_to_end(&mut text)?;
    let text = String::from_utf8_lossy(&text);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

fn planned_for(args: &ProxyArgs, name: Option<&str>) -> Result<(Planned, bool)> {
    planned(&args.target, &args.conn, name)
}
