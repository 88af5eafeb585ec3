//! `rdsiam run TARGET -- COMMAND`: a private proxy on a unix socket in a
//! fresh 0700 directory, living exactly as long as COMMAND, whose libpq
//! variables (and `DATABASE_URL`) point at it. Like `aws-vault exec`: the
//! command never sees a token, and every connection it opens, hours later
//! too, logs in with a fresh one.
//!
//! Signals: the terminal's SIGINT and SIGQUIT reach COMMAND directly (same
//! foreground process group); we only outlive them, so the proxy is there
//! while COMMAND cancels its query and exits. SIGTERM and SIGHUP sent to us
//! are passed on, and so are SIGINT and SIGQUIT that a process sent to our
//! PID alone ([`crate::child`]). Our status is COMMAND's (128+N for signal
//! N). If we are killed outright, the kernel kills COMMAND, and the next run
//! removes the directory we left.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use tokio::signal::unix::{SignalKind, signal};

use crate::child::{From, Interrupts};
use crate::cli::{LogFormat, RunArgs};
use crate::engine::Engine;
use crate::error::{Failure, Kind};
use crate::pgenv;
use crate::proxy::limits::Limits;
use crate::proxy::log::Log;
use crate::proxy::pool::PoolConfig;
use crate::proxy::{self, Listen, Listener, Shared, Upstream};

use super::plan::{Planned, failover_settings, planned, pool_config, proxy_runtime, resolve};

/// The port in the socket's name (`.s.PGSQL.5432`); no TCP port is opened.
const PORT: u16 = 5432;
/// The same for a MySQL target (`mysql-3306.sock`).
const MYSQL_PORT: u16 = 3306;
/// Logins per second for one command: RDS's own cap is 200/s.
const RATE: u32 = 100;

/// What the supervisor takes: the target planned once, and the command.
/// `run` builds it from its flags, `psql --long` from its own.
pub(super) struct RunPlan {
    pub planned: Planned,
    pub bare: bool,
    pub max_connections: usize,
    pub pool: Option<PoolConfig>,
    pub failover: proxy::FailoverSettings,
    pub command: Vec<OsString>,
}

pub fn run(args: RunArgs) -> Result<u8> {
    let (planned, bare) = planned(&args.target, &args.conn, args.target.target.as_deref())?;
    supervised(RunPlan {
        planned,
        bare,
        max_connections: args.max_connections as usize,
        pool: pool_config(&args.pool),
        failover: failover_settings(&args.failover),
        command: args.command,
    })
}

/// Run `plan.command` under a private proxy for the planned target.
pub(super) fn supervised(plan: RunPlan) -> Result<u8> {
    // Before the runtime starts a thread: SIGINT and SIGQUIT are read with
    // their sender, never delivered the default way.
    let blocked = Interrupts::block()?;
    let rt = proxy_runtime()?;
    let result = rt.block_on(supervise(plan, blocked));
    rt.shutdown_timeout(Duration::from_millis(200));
    result
}

async fn supervise(plan: RunPlan, blocked: crate::child::Blocked) -> Result<u8> {
    let RunPlan {
        planned,
        bare,
        max_connections,
        pool,
        failover,
        command: argv,
    } = plan;
    // Installed before anything else: from now on these signals are ours
    // to handle, and COMMAND (exec resets handlers) gets the defaults.
    let mut interrupts = Interrupts::new(blocked)?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;

    // Before COMMAND runs, a signal stops rdsiam itself (the RDS API may hang).
    let up = tokio::select! {
        r = resolve(planned, bare) => Arc::new(r?.with_failover(failover)),
        r = interrupts.recv() => return Ok(match r?.0 {
            Signal::SIGQUIT => 131,
            _ => 130,
        }),
        _ = sigterm.recv() => return Ok(143),
        _ = sighup.recv() => return Ok(129),
    };
    PrivateDir::remove_stale();
    let dir = PrivateDir::new()?;
    let engine = up.resolved.endpoint.family;
    let (listener, socket) = proxy::bind_unix(dir.path(), port(engine), engine)?;
    let shared = Arc::new(
        Shared::new(
            Limits::new(max_connections, RATE),
            Log {
                format: LogFormat::Text,
                quiet: true,
            },
            vec![up.clone()],
        )
        .private()
        .with_pool(pool),
    );
    shared.spawn_service(shared.clone().sweep_pool());
    shared.spawn_service(proxy::accept_loop(
        Listener {
            listen: Listen::Unix(listener, socket),
            target: 0,
        },
        up.clone(),
        shared.clone(),
    ));
    shared.set_started();

    let program = &argv[0];
    let mut command = tokio::process::Command::new(program);
    command.args(&argv[1..]);
    crate::child::die_with_us(&mut command);
    let env = match engine {
        Engine::Postgres => environment(&up, dir.path()),
        Engine::Mysql => mysql_environment(&up, dir.path())?,
    };
    for (name, value) in env {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            let shown = program.to_string_lossy();
            let (code, what) = match err.kind() {
                std::io::ErrorKind::NotFound => (127, "command not found".to_owned()),
                std::io::ErrorKind::PermissionDenied => (126, "permission denied".to_owned()),
                _ => (126, err.to_string()),
            };
            eprintln!("rdsiam: {shown}: {what}");
            return Ok(code);
        }
    };
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    let forward = |sig: Signal| {
        if let Some(pid) = pid {
            let _ = kill(pid, sig);
        }
    };
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            r = interrupts.recv() => match r {
                // The terminal sent it to COMMAND too; COMMAND decides.
                Ok((_, From::Terminal)) => {}
                // Aimed at us alone (`kill -INT PID`): COMMAND decides too.
                Ok((sig, From::Process(sender))) if Some(sender) != pid.map(|p| p.as_raw()) => forward(sig),
                Ok(_) => {}
                Err(_) => {}
            },
            _ = sigterm.recv() => forward(Signal::SIGTERM),
            _ = sighup.recv() => forward(Signal::SIGHUP),
        }
    };
    shared.stop.cancel();
    shared.tracker.close();
    shared.hard_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(2), shared.tracker.wait()).await;
    shared.stop_services().await;
    Log::flush(Duration::from_secs(1));
    drop(dir);
    let status = status.map_err(|err| {
        Failure::new(
            Kind::Other,
            format!("waiting for the command failed: {err}"),
        )
    })?;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(sig)) => u8::try_from(128 + sig).unwrap_or(1),
        (None, None) => 1,
    })
}

/// The port in the socket's name; no TCP port is opened.
fn port(engine: Engine) -> u16 {
    match engine {
        Engine::Postgres => PORT,
        Engine::Mysql => MYSQL_PORT,
    }
}

/// What the `mysql`/`mariadb` client, `mysqldump` and drivers read, for a
/// MySQL target: the socket and port variables, a `mysql://` DATABASE_URL,
/// and, since Debian's /etc/mysql/my.cnf sets `socket=` (which beats
/// `MYSQL_UNIX_PORT`) and a client given no user sends the login name,
/// `MYSQL_HOME/my.cnf` with the socket and user (read after /etc's). No
/// password anywhere: the proxy logs in upstream with the token.
fn mysql_environment(up: &Upstream, dir: &Path) -> Result<Vec<(&'static str, Option<String>)>> {
    let socket = dir.join(proxy::socket_name(Engine::Mysql, MYSQL_PORT));
    let socket_text = socket.to_string_lossy().into_owned();
    let mut cnf = format!("[client]\nsocket={}\n", option_value(&socket_text));
    if let Some(user) = &up.pinned_user {
        cnf.push_str(&format!("user={}\n", option_value(user)));
    }
    if let Some(db) = &up.resolved.target.dbname {
        cnf.push_str(&format!("[mysql]\ndatabase={}\n", option_value(db)));
    }
    std::fs::write(dir.join("my.cnf"), cnf).map_err(|err| {
        Failure::new(
            Kind::Other,
            format!("cannot write {}: {err}", dir.join("my.cnf").display()),
        )
        .hint("set TMPDIR to a directory you can write")
    })?;
    let mut env: Vec<(&'static str, Option<String>)> = vec![
        ("MYSQL_PWD", None),
        ("MYSQL_HOST", Some("localhost".to_owned())),
        ("MYSQL_UNIX_PORT", Some(socket_text.clone())),
        ("MYSQL_TCP_PORT", Some(MYSQL_PORT.to_string())),
        ("MYSQL_HOME", Some(dir.to_string_lossy().into_owned())),
    ];
    if std::env::var_os("DATABASE_URL").is_none() {
        let enc = |v: &str| utf8_percent_encode(v, NON_ALPHANUMERIC).to_string();
        let user = up
            .pinned_user
            .as_deref()
            .map(|u| format!("{}@", enc(u)))
            .unwrap_or_default();
        let db = up
            .resolved
            .target
            .dbname
            .as_deref()
            .map(enc)
            .unwrap_or_default();
        env.push((
            "DATABASE_URL",
            Some(format!(
                "mysql://{user}localhost:{MYSQL_PORT}/{db}?socket={}",
                enc(&socket_text)
            )),
        ));
    }
    Ok(env)
}

/// An option file value, quoted so spaces, `#` and quotes survive.
fn option_value(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// COMMAND's libpq variables: set (`Some`) or removed (`None`).
fn environment(up: &Upstream, dir: &Path) -> Vec<(&'static str, Option<String>)> {
    let mut env: Vec<(&'static str, Option<String>)> =
        pgenv::MANAGED.iter().map(|name| (*name, None)).collect();
    // Kept when the caller set them: they don't fight the proxy.
    let appname = std::env::var("PGAPPNAME").ok().filter(|v| !v.is_empty());
    let dir_text = dir.to_string_lossy().into_owned();
    env.push(("PGHOST", Some(dir_text.clone())));
    env.push(("PGPORT", Some(PORT.to_string())));
    if let Some(user) = &up.pinned_user {
        env.push(("PGUSER", Some(user.clone())));
    }
    if let Some(db) = &up.resolved.target.dbname {
        env.push(("PGDATABASE", Some(db.clone())));
    }
    // The hop is a private socket; the hop to AWS is TLS as the target says.
    env.push(("PGSSLMODE", Some("disable".to_owned())));
    env.push((
        "PGAPPNAME",
        Some(appname.unwrap_or_else(|| "rdsiam-run".to_owned())),
    ));
    if std::env::var_os("DATABASE_URL").is_none() {
        let enc = |v: &str| utf8_percent_encode(v, NON_ALPHANUMERIC).to_string();
        let user = up
            .pinned_user
            .as_deref()
            .map(|u| format!("{}@", enc(u)))
            .unwrap_or_default();
        let db = up
            .resolved
            .target
            .dbname
            .as_deref()
            .map(enc)
            .unwrap_or_default();
        // The socket directory percent-encoded in the host position: libpq
        // (psql, psycopg), asyncpg, node-postgres and WHATWG URL parsers
        // (Node's `new URL`) all take this form; `user@/db?host=…` is
        // refused by `new URL`, and asyncpg ignores a `host` parameter when
        // the URL names a host (issue 20, tests/clients).
        env.push((
            "DATABASE_URL",
            Some(format!("postgresql://{user}{}:{PORT}/{db}", enc(&dir_text))),
        ));
    }
    // Later entries win: drop the removals a setting replaces.
    let set: Vec<&str> = env
        .iter()
        .filter(|(_, v)| v.is_some())
        .map(|(k, _)| *k)
        .collect();
    env.retain(|(k, v)| v.is_some() || !set.contains(k));
    env
}

/// A fresh 0700 directory under the temp dir, removed with what it holds.
struct PrivateDir(PathBuf);

impl PrivateDir {
    fn new() -> Result<PrivateDir> {
        use std::os::unix::fs::DirBuilderExt;
        let base = std::env::temp_dir();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let mut last = None;
        for n in 0..100u32 {
            let name = format!(
                "rdsiam-run-{}-{:08x}",
                std::process::id(),
                seed.wrapping_add(n.wrapping_mul(0x9e37_79b9))
            );
            let path = base.join(name);
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(PrivateDir(path)),
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(err) => {
                    last = Some(err);
                    break;
                }
            }
        }
        Err(Failure::new(
            Kind::Other,
            format!(
                "cannot create a private directory in {}: {}",
                base.display(),
                last.map_or_else(|| "too many exist".to_owned(), |e| e.to_string())
            ),
        )
        .hint("set TMPDIR to a directory you can write")
        .into())
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// Removes the directories earlier runs of ours left behind when they
    /// were killed (SIGKILL runs no destructor): named for a PID that is
    /// gone, owned by us, not a symlink.
    fn remove_stale() {
        use std::os::unix::fs::MetadataExt;
        let base = std::env::temp_dir();
        let Ok(entries) = std::fs::read_dir(&base) else {
            return;
        };
        let me = nix::unistd::geteuid().as_raw();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix("rdsiam-run-"))
                .and_then(|rest| rest.split_once('-'))
                .and_then(|(pid, _)| pid.parse::<i32>().ok())
            else {
                continue;
            };
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if !meta.is_dir() || meta.uid() != me || pid <= 0 {
                continue;
            }
            // ESRCH: no such process. Any other answer (alive, or alive
            // under another user) keeps the directory.
            if kill(Pid::from_raw(pid), None) == Err(nix::errno::Errno::ESRCH) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
