//! The local proxy behind `rdsiam proxy` and `rdsiam run` (DESIGN.md,
//! "Long-running: the local proxy"): plain PostgreSQL on loopback TCP or a
//! unix socket, a verified TLS login with a cached IAM token upstream, then
//! the two streams spliced.
//!
//! - [`admit`]: who may connect (the owner, unless said otherwise);
//!   [`wire`]: the messages the proxy frames itself; [`conn`]: one client
//!   connection; [`upstream`]: the TLS login and cancel forwarding;
//!   [`tokens`]: the single-flight token cache; [`limits`]: connection and
//!   login-rate caps; [`http`] + [`metrics`]: health and Prometheus;
//!   [`log`]: the connection log.
//! - One [`CancellationToken`] stops the accept loops, a second closes
//!   whatever the drain left open; a [`TaskTracker`] knows when every
//!   connection is gone.

pub mod admit;
pub mod conn;
pub mod http;
pub mod limits;
pub mod log;
pub mod metrics;
pub mod mysql_conn;
pub mod pool;
pub mod renew;
#[cfg(target_os = "linux")]
pub mod sockdiag;
#[cfg(test)]
mod tests;
pub mod tokens;
pub mod upstream;
pub mod wire;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use rustls::pki_types::ServerName;
use tokio::net::{TcpListener, UnixListener};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::aws::Aws;
use crate::connect::Connector;
use crate::engine::Engine;
use crate::error::Failure;
use crate::session::Resolved;

use self::admit::Admission;
use self::limits::{Cancels, Limits};
use self::log::{Log, Value};
use self::metrics::Metrics;
use self::tokens::{Clock, TokenCache};

/// One target the proxy serves: where it logs in and how.
pub struct Upstream {
    /// The target's name for logs: the config name, or the endpoint's.
    pub name: String,
    pub resolved: Resolved,
    pub connector: Connector,
    /// A target that names a user admits only that user.
    pub pinned_user: Option<String>,
    pub tokens: TokenCache,
    /// How long the server may take to answer a login (after TCP and TLS,
    /// which `--connect-timeout` bounds), per attempt.
    pub login_timeout: Duration,
    /// A writer target (`--cluster` without `--reader`, or
    /// `--expect-writer`): a login that reaches a read-only server, or
    /// nothing, is retried during a failover (issue 19).
    pub writer_only: bool,
    /// How long a writer target's login keeps retrying through a failover.
    pub failover_timeout: Duration,
    /// When the failover under way was first seen.
    failover_since: std::sync::Mutex<Option<tokio::time::Instant>>,
    /// Refused logins per user, so a user refused again and again is
    /// answered from the count for a while.
    pub refusals: tokens::Refusals,
    /// Set when the database refused a fresh token and STS said the AWS
    /// credentials themselves are bad: `/readiness` answers 503 until a
    /// login works again (issue 24).
    pub credentials_refused: std::sync::Mutex<Option<String>>,
    /// A MySQL target's server version from its last greeting, for the
    /// proxy's own greeting to local clients.
    pub mysql_version: std::sync::Mutex<Option<String>>,
}

impl Upstream {
    pub fn new(
        name: String,
        resolved: Resolved,
        connector: Connector,
        pinned_user: Option<String>,
        clock: Clock,
        token_lifetime: Duration,
    ) -> Result<Upstream> {
        // Checked now so a bad name is a usage error at start, not per login.
        ServerName::try_from(resolved.endpoint.host.clone()).map_err(|_| {
            Failure::usage(format!(
                "`{}` is not a valid TLS server name",
                resolved.endpoint.host
            ))
        })?;
        let writer_only = resolved.endpoint.kind == crate::endpoint::EndpointKind::ClusterWriter;
        Ok(Upstream {
            name,
            login_timeout: DEFAULT_LOGIN_TIMEOUT,
            writer_only,
            failover_timeout: DEFAULT_FAILOVER_TIMEOUT,
            failover_since: std::sync::Mutex::new(None),
            refusals: tokens::Refusals::default(),
            credentials_refused: std::sync::Mutex::new(None),
            mysql_version: std::sync::Mutex::new(None),
            resolved,
            connector,
            pinned_user,
            tokens: TokenCache::new(clock, token_lifetime),
        })
    }

    /// Apply `--expect-writer`, `--failover-timeout` and `--login-timeout`.
    pub fn with_failover(mut self, settings: FailoverSettings) -> Upstream {
        self.writer_only |= settings.expect_writer;
        self.failover_timeout = settings.failover_timeout;
        self.login_timeout = settings.login_timeout;
        self
    }

    /// A login found no writer: the first such after good ones starts a
    /// failover (counted and logged once).
    pub fn failover_seen(&self, shared: &Shared, why: &str) {
        let mut since = self
            .failover_since
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if since.is_none() {
            *since = Some(tokio::time::Instant::now());
            shared.metrics.failovers.inc();
            shared.log.line(
                "failover",
                &[
                    ("target", Value::Str(&self.name)),
                    ("at", Value::Str(&self.at())),
                    ("reason", Value::Str(why)),
                ],
            );
        }
    }

    /// A login tried at `tried` reached a writer: a failover under way is
    /// over, unless the login began before it was seen (it raced past).
    pub fn failover_over(&self, shared: &Shared, tried: tokio::time::Instant) {
        let mut since = self
            .failover_since
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if since.is_some_and(|at| tried < at) {
            return;
        }
        if let Some(at) = since.take() {
            let took = at.elapsed().as_secs_f64();
            shared.metrics.failover_recovery_seconds.observe(took);
            shared.log.line(
                "failover-over",
                &[
                    ("target", Value::Str(&self.name)),
                    ("first_good_login_after", Value::Secs(took)),
                ],
            );
        }
    }

    /// `host:port` (and the tunnel), for messages.
    pub fn at(&self) -> String {
        let endpoint = &self.resolved.endpoint;
        match &self.connector.via {
            Some(via) => format!("{}:{} via {via}", endpoint.host, endpoint.port),
            None => format!("{}:{}", endpoint.host, endpoint.port),
        }
    }
}

/// Connections that have not yet sent their startup packet, beyond which
/// new ones get 53300 at once. They hold no `--max-connections` slot (a
/// client that says nothing can't starve those who log in), so they are
/// bounded here, and each for at most [`conn::STARTUP_DEADLINE`].
pub const MAX_PENDING: usize = 256;

/// Refused clients being told why at once; more are just closed.
const MAX_REFUSING: usize = 64;

/// The server's time to answer a login, by default: a busy server letting
/// many logins in at once takes seconds, which is not a network failure.
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a writer target's login waits through a failover, by default.
pub const DEFAULT_FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);

/// How a target's logins come through a failover and how long they wait.
#[derive(Clone, Copy, Debug)]
pub struct FailoverSettings {
    pub expect_writer: bool,
    pub failover_timeout: Duration,
    pub login_timeout: Duration,
}

/// State every task of one proxy shares.
pub struct Shared {
    pub metrics: Metrics,
    pub limits: Limits,
    pub log: Log,
    /// Who may connect, and the thread that checks.
    pub admission: admit::Checker,
    /// The sessions cancels may name, and each peer's cancel rate.
    pub cancels: Cancels,
    pending: Arc<tokio::sync::Semaphore>,
    pub(crate) refusing: Arc<tokio::sync::Semaphore>,
    /// Stop accepting (first SIGTERM/SIGINT).
    pub stop: CancellationToken,
    /// Close every connection still open (the drain ran out).
    pub hard_stop: CancellationToken,
    /// Every client connection's task.
    pub tracker: TaskTracker,
    /// The background loops (accept, HTTP, pool sweep, token renewal):
    /// tracked too, so a stop waits for them rather than dropping them.
    services: TaskTracker,
    /// `--pool`: upstream sessions kept for the next client.
    pub pool: Option<pool::Pool>,
    upstreams: Vec<Arc<Upstream>>,
    started: AtomicBool,
    next_id: AtomicU64,
    /// Stop asked for by `POST /quitquitquit` (when `quitquitquit` is on).
    pub quit: CancellationToken,
    quitquitquit: AtomicBool,
    /// Past the first SIGTERM (still accepting during --min-sigterm-delay).
    draining: AtomicBool,
}

impl Shared {
    pub fn new(limits: Limits, log: Log, upstreams: Vec<Arc<Upstream>>) -> Shared {
        let shared = Shared {
            metrics: Metrics::new(),
            limits,
            log,
            admission: admit::Checker::new(Admission::owner_only()),
            cancels: Cancels::default(),
            pending: Arc::new(tokio::sync::Semaphore::new(MAX_PENDING)),
            refusing: Arc::new(tokio::sync::Semaphore::new(MAX_REFUSING)),
            stop: CancellationToken::new(),
            hard_stop: CancellationToken::new(),
            tracker: TaskTracker::new(),
            services: TaskTracker::new(),
            pool: None,
            upstreams,
            started: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            quit: CancellationToken::new(),
            quitquitquit: AtomicBool::new(false),
            draining: AtomicBool::new(false),
        };
        for up in &shared.upstreams {
            shared.note_credentials(&up.resolved.aws);
        }
        shared
    }

    /// Admit whom `admission` says (the default: the owner only).
    pub fn with_admission(mut self, admission: Admission) -> Shared {
        self.admission = admit::Checker::new(admission);
        self
    }

    /// Keep upstream sessions for reuse (`--pool`).
    pub fn with_pool(mut self, config: Option<pool::PoolConfig>) -> Shared {
        self.pool = config.map(pool::Pool::new);
        self
    }

    /// Closes pooled sessions past their idle timeout or lifetime, each
    /// second, until the proxy stops (then all of them).
    pub async fn sweep_pool(self: Arc<Self>) {
        let Some(pool) = &self.pool else { return };
        loop {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {
                    self.metrics.pool.idle.set(pool.sweep() as i64);
                }
                () = self.stop.cancelled() => break,
            }
        }
        pool.clear();
        self.metrics.pool.idle.set(0);
    }

    /// Run a background loop (it must end at `stop` or `hard_stop`).
    pub fn spawn_service<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.services.spawn(task);
    }

    /// Stop the background loops and wait, briefly, for them to end.
    pub async fn stop_services(&self) {
        self.stop.cancel();
        self.hard_stop.cancel();
        self.services.close();
        let _ = tokio::time::timeout(Duration::from_secs(1), self.services.wait()).await;
    }

    /// `rdsiam run`'s proxy: the owner only, and hints that fit it.
    pub fn private(mut self) -> Shared {
        let mut admission = self.admission.admission().clone();
        admission.private = true;
        self.admission = admit::Checker::new(admission);
        self
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn set_started(&self) {
        self.started.store(true, Ordering::SeqCst);
    }

    pub fn started(&self) -> bool {
        self.started.load(Ordering::SeqCst)
    }

    pub fn enable_quitquitquit(&self) {
        self.quitquitquit.store(true, Ordering::SeqCst);
    }

    pub fn quitquitquit(&self) -> bool {
        self.quitquitquit.load(Ordering::SeqCst)
    }

    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Ready while the listeners accept and no target's credentials have
    /// expired. It never dials the database.
    pub fn readiness(&self) -> std::result::Result<(), String> {
        if !self.started() {
            return Err("starting".into());
        }
        if self.stop.is_cancelled() || self.draining.load(Ordering::SeqCst) {
            return Err("shutting down".into());
        }
        for up in &self.upstreams {
            if let Some(why) = up
                .credentials_refused
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
            {
                return Err(format!(
                    "the database refuses IAM logins for {}: {why}",
                    up.name
                ));
            }
        }
        let now = SystemTime::now();
        for up in &self.upstreams {
            if up
                .resolved
                .aws
                .credentials()
                .expiry()
                .is_some_and(|at| at <= now)
            {
                return Err(format!(
                    "the AWS credentials for {} have expired; renew them (aws sso login)",
                    up.name
                ));
            }
        }
        // Full: a new client would get FATAL 53300, so send it elsewhere.
        if self.limits.at_capacity() {
            return Err(format!(
                "at --max-connections ({} open)",
                self.limits.max_connections
            ));
        }
        Ok(())
    }

    /// Publish when the credentials in use expire.
    pub fn note_credentials(&self, aws: &Aws) {
        let expiry = aws
            .credentials()
            .expiry()
            .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        self.metrics.credentials_expiry.set(expiry);
    }
}

/// A bound listener and the target it serves.
pub enum Listen {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

pub struct Listener {
    pub listen: Listen,
    pub target: usize,
}

impl Listener {
    /// How to reach it, for the ready line: (host, port).
    pub fn host_port(&self) -> (String, u16) {
        match &self.listen {
            Listen::Tcp(l) => {
                let addr = l.local_addr().ok();
                (
                    addr.map_or_else(String::new, |a| a.ip().to_string()),
                    addr.map_or(0, |a| a.port()),
                )
            }
            Listen::Unix(_, path) => {
                let port = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_prefix(".s.PGSQL."))
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                let dir = path.parent().unwrap_or(Path::new("/"));
                (dir.display().to_string(), port)
            }
        }
    }
}

/// Bind TCP on `addr`. A port in use names a free one to try.
pub async fn bind_tcp(addr: SocketAddr) -> Result<TcpListener> {
    match TcpListener::bind(addr).await {
        Ok(l) => Ok(l),
        Err(err) => {
            let mut failure = Failure::network(format!("cannot listen on {addr}: {err}"));
            if err.kind() == std::io::ErrorKind::AddrInUse {
                let mut free = None;
                for port in addr.port().saturating_add(1)..=addr.port().saturating_add(20) {
                    if std::net::TcpListener::bind(SocketAddr::new(addr.ip(), port)).is_ok() {
                        free = Some(port);
                        break;
                    }
                }
                failure = failure.hint(match free {
                    Some(port) => format!(
                        "another server (a local PostgreSQL?) has that port; try --listen {}",
                        SocketAddr::new(addr.ip(), port)
                    ),
                    None => "another server has that port; pick a free one with --listen ADDR:PORT"
                        .to_owned(),
                });
            } else {
                failure = failure
                    .hint("pass --listen with an address of this machine, e.g. 127.0.0.1:5432");
            }
            Err(failure.into())
        }
    }
}

/// Bind `dir/.s.PGSQL.<port>`, creating `dir` (mode 0700) when missing and
/// replacing a socket file nobody listens on any more. `dir` must be ours
/// and closed to others: whoever can write it can swap our socket for
/// theirs and read the sessions meant for the database (issue 24).
pub fn bind_unix(dir: &Path, port: u16, engine: Engine) -> Result<(UnixListener, PathBuf)> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if std::fs::symlink_metadata(dir).is_err() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|err| {
                Failure::usage(format!("cannot create {}: {err}", dir.display()))
                    .hint("pass --unix-socket with a directory you can write")
            })?;
        // The umask may have narrowed it further; make it exactly 0700.
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    check_socket_dir(dir)?;
    let path = dir.join(socket_name(engine, port));
    if path.as_os_str().len() > 100 {
        return Err(Failure::usage(format!(
            "the socket path {} is too long for a unix socket",
            path.display()
        ))
        .hint("pass --unix-socket with a shorter directory, e.g. /tmp/rdsiam")
        .into());
    }
    if let Ok(meta) = std::fs::symlink_metadata(&path) {
        use std::os::unix::fs::FileTypeExt;
        // Only a stale socket is ours to replace; anything else stays.
        if !meta.file_type().is_socket() {
            return Err(Failure::usage(format!(
                "cannot listen on {}: a file that is not a socket is in the way",
                path.display()
            ))
            .hint("move it away, or pass another --unix-socket DIR or --listen port")
            .into());
        }
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            return Err(Failure::network(format!(
                "cannot listen on {}: another server is listening there",
                path.display()
            ))
            .hint("stop it, or pass another --unix-socket DIR or --listen port")
            .into());
        }
        let _ = std::fs::remove_file(&path);
    }
    // Bound inside a fresh 0700 directory of ours, restricted to 0600, and
    // only then renamed into place: whatever the umask (process-wide, so
    // not ours to change with other threads running), nobody else can
    // reach the socket even for an instant.
    let staging = staging_dir(dir)?;
    let bound = (|| {
        let inner = staging.join("s");
        let listener = UnixListener::bind(&inner).map_err(|err| {
            Failure::network(format!("cannot listen on {}: {err}", path.display()))
                .hint("pass --unix-socket with a directory you can write")
        })?;
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o600)).map_err(
            |err| {
                Failure::network(format!(
                    "cannot restrict {} to mode 0600: {err}",
                    path.display()
                ))
                .hint("pass --unix-socket with a directory you own")
            },
        )?;
        std::fs::rename(&inner, &path).map_err(|err| {
            Failure::network(format!("cannot listen on {}: {err}", path.display()))
                .hint("pass --unix-socket with a directory you can write")
        })?;
        Ok::<_, Failure>(listener)
    })();
    let _ = std::fs::remove_dir_all(&staging);
    Ok((bound?, path))
}

/// The socket file's name: libpq's for PostgreSQL (`psql -h DIR -p PORT`
/// finds it), `mysql-PORT.sock` for MySQL (`mysql -S DIR/mysql-PORT.sock`).
pub fn socket_name(engine: Engine, port: u16) -> String {
    match engine {
        Engine::Postgres => format!(".s.PGSQL.{port}"),
        Engine::Mysql => format!("mysql-{port}.sock"),
    }
}

/// A fresh private directory inside `dir` to bind in.
fn staging_dir(dir: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let mut last = None;
    for n in 0..20u32 {
        let staging = dir.join(format!(".rdsiam-{}-{n}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&staging) {
            Ok(()) => return Ok(staging),
            Err(err) => last = Some(err),
        }
    }
    Err(Failure::usage(format!(
        "cannot create a directory in {}: {}",
        dir.display(),
        last.map_or_else(String::new, |e| e.to_string())
    ))
    .hint("pass --unix-socket with a directory you can write")
    .into())
}

/// `dir` must be owned by us and writable by nobody else.
fn check_socket_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid().as_raw();
    let shown = dir.display();
    let owner = |uid: u32| match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) => format!("uid {uid} ({})", user.name),
        _ => format!("uid {uid}"),
    };
    let fix = "pass --unix-socket with a directory of your own that doesn't exist yet (rdsiam creates it with mode 0700), e.g. --unix-socket \"$XDG_RUNTIME_DIR/rdsiam\"";
    let link = std::fs::symlink_metadata(dir)
        .map_err(|err| Failure::usage(format!("cannot use {shown}: {err}")).hint(fix))?;
    // A link someone else owns can be pointed elsewhere later.
    if link.file_type().is_symlink() && link.uid() != me && link.uid() != 0 {
        return Err(Failure::usage(format!(
            "--unix-socket {shown} is a symbolic link owned by {}, not by you",
            owner(link.uid())
        ))
        .hint(fix)
        .into());
    }
    let meta = std::fs::metadata(dir)
        .map_err(|err| Failure::usage(format!("cannot use {shown}: {err}")).hint(fix))?;
    if !meta.is_dir() {
        return Err(
            Failure::usage(format!("--unix-socket {shown} is not a directory"))
                .hint(fix)
                .into(),
        );
    }
    if meta.uid() != me {
        return Err(Failure::usage(format!(
            "--unix-socket {shown} is owned by {}, not by you ({}): its owner could replace the proxy's socket with their own and read your sessions",
            owner(meta.uid()),
            owner(me)
        ))
        .hint(fix)
        .into());
    }
    if meta.mode() & 0o022 != 0 {
        return Err(Failure::usage(format!(
            "--unix-socket {shown} is writable by {} (mode {:o}): they could replace the proxy's socket with their own and read your sessions",
            if meta.mode() & 0o002 != 0 { "every local account" } else { "its group" },
            meta.mode() & 0o7777
        ))
        .hint(format!(
            "run `chmod go-w {}`, or {fix}",
            crate::output::shell_quote(&dir.display().to_string())
        ))
        .into());
    }
    Ok(())
}

/// Accept until the stop signal, one tracked task per connection.
pub async fn accept_loop(listener: Listener, up: Arc<Upstream>, shared: Arc<Shared>) {
    let mut complained = false;
    loop {
        let accepted = match &listener.listen {
            Listen::Tcp(l) => tokio::select! {
                biased;
                () = shared.stop.cancelled() => break,
                r = l.accept() => r.map(|(s, peer)| {
                    let _ = s.set_nodelay(true);
                    let who = s.local_addr().ok().map(|local| admit::Who::Tcp { local, peer });
                    (Conn::Tcp(s), peer.to_string(), who)
                }),
            },
            Listen::Unix(l, path) => tokio::select! {
                biased;
                () = shared.stop.cancelled() => break,
                r = l.accept() => r.map(|(s, _)| {
                    let uid = s.peer_cred().ok().map(|c| c.uid());
                    (Conn::Unix(s), path.display().to_string(), Some(admit::Who::Unix(uid)))
                }),
            },
        };
        match accepted {
            Ok((stream, peer, who)) => {
                complained = false;
                let who = who.unwrap_or(admit::Who::Unix(None));
                // Over the cap of clients yet to send a startup packet: 53300
                // at once, without reading, and closed.
                let Ok(pending) = shared.pending.clone().try_acquire_owned() else {
                    shared.metrics.refused("too_many_pending");
                    shared.metrics.closed(metrics::Outcome::Rejected);
                    let reply = conn::too_many_pending().encode();
                    let _ = match &stream {
                        Conn::Tcp(s) => s.try_write(&reply),
                        Conn::Unix(s) => s.try_write(&reply),
                    };
                    continue;
                };
                let (up, shared) = (up.clone(), shared.clone());
                let task = match (stream, up.resolved.endpoint.family) {
                    (Conn::Tcp(s), Engine::Postgres) => shared.tracker.spawn(conn::handle(
                        s,
                        peer,
                        who,
                        up,
                        shared.clone(),
                        pending,
                    )),
                    (Conn::Unix(s), Engine::Postgres) => shared.tracker.spawn(conn::handle(
                        s,
                        peer,
                        who,
                        up,
                        shared.clone(),
                        pending,
                    )),
                    (Conn::Tcp(s), Engine::Mysql) => shared.tracker.spawn(mysql_conn::handle(
                        s,
                        peer,
                        who,
                        up,
                        shared.clone(),
                        pending,
                    )),
                    (Conn::Unix(s), Engine::Mysql) => shared.tracker.spawn(mysql_conn::handle(
                        s,
                        peer,
                        who,
                        up,
                        shared.clone(),
                        pending,
                    )),
                };
                drop(task);
            }
            Err(err) => {
                // Out of file descriptors and the like: keep serving.
                if !complained {
                    shared
                        .log
                        .line("accept-error", &[("error", Value::Str(&err.to_string()))]);
                    complained = true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    if let Listen::Unix(_, path) = &listener.listen {
        let _ = std::fs::remove_file(path);
    }
}

enum Conn {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// Stop accepting, give open connections up to `delay` to finish, then
/// close the rest.
pub async fn drain(shared: &Shared, delay: Duration) {
    shared.stop.cancel();
    shared.tracker.close();
    let open = shared.tracker.len() as u64;
    shared.log.line(
        "draining",
        &[
            ("open", Value::Num(open)),
            ("max_sigterm_delay", Value::Secs(delay.as_secs_f64())),
        ],
    );
    if open > 0
        && tokio::time::timeout(delay, shared.tracker.wait())
            .await
            .is_err()
    {
        shared.log.line(
            "drain-timeout",
            &[("closing", Value::Num(shared.tracker.len() as u64))],
        );
    }
    shared.hard_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(2), shared.tracker.wait()).await;
}
