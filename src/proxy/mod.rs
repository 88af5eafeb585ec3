//! The local proxy behind `rdsiam proxy` and `rdsiam run` (DESIGN.md,
//! "Long-running: the local proxy"): plain PostgreSQL on loopback TCP or a
//! unix socket, a verified TLS login with a cached IAM token upstream, then
//! the two streams spliced.
//!
//! - [`wire`]: the messages the proxy frames itself; [`conn`]: one client
//!   connection; [`upstream`]: the TLS login and cancel forwarding;
//!   [`tokens`]: the single-flight token cache; [`limits`]: connection and
//!   login-rate caps; [`http`] + [`metrics`]: health and Prometheus;
//!   [`log`]: the connection log.
//! - One [`CancellationToken`] stops the accept loops, a second closes
//!   whatever the drain left open; a [`TaskTracker`] knows when every
//!   connection is gone.

pub mod conn;
pub mod http;
pub mod limits;
pub mod log;
pub mod metrics;
pub mod renew;
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
use crate::error::Failure;
use crate::session::Resolved;

use self::limits::Limits;
use self::log::{Log, Value};
use self::metrics::Metrics;
use self::tokens::{Clock, TokenCache};

/// One target the proxy serves: where it logs in and how.
pub struct Upstream {
    /// The target's name for logs: the config name, or the endpoint's.
    pub name: String,
    pub resolved: Resolved,
    pub connector: Connector,
    pub tls: tokio_rustls::TlsConnector,
    pub server_name: ServerName<'static>,
    /// A target that names a user admits only that user.
    pub pinned_user: Option<String>,
    pub tokens: TokenCache,
    /// TCP, TLS and login together, per connection.
    pub login_timeout: Duration,
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
        let config = crate::tls::client_config(connector.sslmode, &connector.roots)?;
        let server_name = ServerName::try_from(resolved.endpoint.host.clone()).map_err(|_| {
            Failure::usage(format!(
                "`{}` is not a valid TLS server name",
                resolved.endpoint.host
            ))
        })?;
        Ok(Upstream {
            name,
            login_timeout: connector.timeout,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            server_name,
            resolved,
            connector,
            pinned_user,
            tokens: TokenCache::new(clock, token_lifetime),
        })
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

/// State every task of one proxy shares.
pub struct Shared {
    pub metrics: Metrics,
    pub limits: Limits,
    pub log: Log,
    /// Stop accepting (first SIGTERM/SIGINT).
    pub stop: CancellationToken,
    /// Close every connection still open (the drain ran out).
    pub hard_stop: CancellationToken,
    /// Every client connection's task.
    pub tracker: TaskTracker,
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
            stop: CancellationToken::new(),
            hard_stop: CancellationToken::new(),
            tracker: TaskTracker::new(),
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
/// replacing a socket file nobody listens on any more.
pub fn bind_unix(dir: &Path, port: u16) -> Result<(UnixListener, PathBuf)> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
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
    let path = dir.join(format!(".s.PGSQL.{port}"));
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
    let listener = UnixListener::bind(&path).map_err(|err| {
        Failure::network(format!("cannot listen on {}: {err}", path.display()))
            .hint("pass --unix-socket with a directory you can write")
    })?;
    // Whoever can connect logs in as us: only our own user may, even in a
    // shared directory.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(|err| {
        let _ = std::fs::remove_file(&path);
        Failure::network(format!(
            "cannot restrict {} to mode 0600: {err}",
            path.display()
        ))
        .hint("pass --unix-socket with a directory you own")
    })?;
    Ok((listener, path))
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
                    (Conn::Tcp(s), peer.to_string())
                }),
            },
            Listen::Unix(l, path) => tokio::select! {
                biased;
                () = shared.stop.cancelled() => break,
                r = l.accept() => r.map(|(s, _)| (Conn::Unix(s), path.display().to_string())),
            },
        };
        match accepted {
            Ok((stream, peer)) => {
                complained = false;
                let permit = shared.limits.admit();
                let task = match stream {
                    Conn::Tcp(s) => shared.tracker.spawn(conn::handle(
                        s,
                        peer,
                        up.clone(),
                        shared.clone(),
                        permit,
                    )),
                    Conn::Unix(s) => shared.tracker.spawn(conn::handle(
                        s,
                        peer,
                        up.clone(),
                        shared.clone(),
                        permit,
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
