//! `rdsiam-sandbox [-v] [--] [COMMAND ...]`: the article's RDS Proxy + Aurora setup on
//! 127.0.0.1, for trying rdsiam without an AWS account (dev only; `scripts/sandbox` builds and
//! runs it).
//!
//! With a COMMAND it runs it in the sandbox's environment (see `rdsiam_testkit::sandbox`),
//! tears everything down and exits with the command's status (128+n when a signal ended it,
//! as shells report it). Without one it prints the environment as shell `export` lines and
//! waits for Ctrl-C or SIGTERM.
//!
//! Signals: the command stays in our process group, so a Ctrl-C typed at the terminal reaches
//! it directly and the sandbox only keeps waiting (it must outlive the command to clean up).
//! A SIGINT that didn't come from the terminal (we are not its foreground group, e.g. `kill
//! -INT` from a CI runner), SIGTERM and SIGHUP are passed on to the command; a command still
//! running 10 s after SIGTERM is killed. A signal during start-up stops the sandbox as soon as
//! the start finishes, and the exit status says so.

use std::ffi::OsString;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::Command as StdCommand;
use std::time::{Duration, Instant};

use rdsiam_testkit::sandbox::{Sandbox, print_flush, sh_quote};
use tokio::process::Command;
use tokio::signal::unix::{Signal, SignalKind, signal};

const USAGE: &str = "\
usage: rdsiam-sandbox [-v] [--] [COMMAND [ARG...]]

Starts the article's setup on 127.0.0.1 — a throwaway PostgreSQL (database `app`, IAM role
`iamuserapp`), an IAM gate playing RDS Proxy `PostgreSqlProxy` in front of it, and a local
RDS/STS API listing the proxy, the Aurora cluster `databasecluster` and an instance with IAM auth
off — with static sandbox credentials that never touch your AWS configuration.

With COMMAND: runs it there, removes everything and exits with its status.
Without: prints the environment to export and waits until Ctrl-C.

  --mysql         the MySQL world instead: a throwaway MariaDB (needs root) plays RDS Proxy
                  `MySqlProxy` (user `iamuserapp`, database `app`); RDSIAM_VIA points at it
  -v, --verbose   say what started where, and how long it took (stderr)
  -h, --help      this help

Example: scripts/sandbox rdsiam check --proxy PostgreSqlProxy --user iamuserapp --dbname app
         scripts/sandbox --mysql rdsiam check --proxy MySqlProxy --user iamuserapp --dbname app";

/// How long a command may take to go after SIGTERM before it is killed.
const TERM_GRACE: Duration = Duration::from_secs(10);

fn main() {
    std::process::exit(run());
}

fn run() -> i32 {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let mut verbose = false;
    let mut mysql = false;
    while let Some(first) = args.first().and_then(|a| a.to_str()) {
        match first {
            "--" => {
                args.remove(0);
                break;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return 0;
            }
            "-v" | "--verbose" => {
                verbose = true;
                args.remove(0);
            }
            "--mysql" => {
                mysql = true;
                args.remove(0);
            }
            s if s.starts_with('-') => {
                eprintln!("rdsiam-sandbox: unknown option {s}\n\n{USAGE}");
                return 2;
            }
            _ => break,
        }
    }

    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rdsiam-sandbox: building the runtime: {e}");
            return 1;
        }
    };
    rt.block_on(main_async(args, verbose, mysql))
}

/// The signals the sandbox handles. Installing tokio's handlers replaces the default action
/// (dying on the spot, leaving cleanup to the watchdogs) with a chance to tear down in order;
/// a command we exec gets the default actions back, as exec resets caught signals.
struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for any of them; returns its number.
    async fn next(&mut self) -> i32 {
        tokio::select! {
            _ = self.int.recv() => 2,
            _ = self.hup.recv() => 1,
            _ = self.term.recv() => 15,
        }
    }
}

async fn main_async(args: Vec<OsString>, verbose: bool, mysql: bool) -> i32 {
    let mut signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rdsiam-sandbox: installing signal handlers: {e}");
            return 1;
        }
    };
    let bin_dir = rdsiam_dir();
    if bin_dir.is_none() {
        eprintln!(
            "rdsiam-sandbox: warning: no `rdsiam` beside this binary, so PATH finds whichever \
             rdsiam it finds; build it with `cargo build -p rdsiam` (scripts/sandbox does)"
        );
    }

    let t0 = Instant::now();
    // Start-up blocks for a second or two (initdb, pg_ctl): on the blocking pool, so a signal
    // arriving meanwhile is noticed and the sandbox is stopped right after it is up.
    let mut starting = tokio::task::spawn_blocking(move || Sandbox::start_with(bin_dir, mysql));
    let mut early_signal = None;
    let started = loop {
        tokio::select! {
            res = &mut starting => break res,
            n = signals.next(), if early_signal.is_none() => early_signal = Some(n),
        }
    };
    let sandbox = match started {
        Ok(Ok(sb)) => sb,
        Ok(Err(e)) => {
            eprintln!("rdsiam-sandbox: could not start the sandbox: {e:#}");
            return 1;
        }
        Err(e) => {
            eprintln!("rdsiam-sandbox: start-up crashed: {e}");
            return 1;
        }
    };
    let took = t0.elapsed();
    if let Some(n) = early_signal {
        drop(sandbox);
        return 128 + n;
    }
    if verbose {
        eprint!("{}", describe(&sandbox, took, "rdsiam-sandbox: "));
    }
    let sandbox = std::sync::Arc::new(sandbox);
    let failovers = tokio::spawn(failover_on_usr1(sandbox.clone()));
    let status = serve(&sandbox, &args, &mut signals, took, verbose).await;
    failovers.abort();
    let _ = failovers.await;
    drop(sandbox);
    status
}

/// `scripts/sandbox failover` sends SIGUSR1: fail the cluster over (issue 19), saying what
/// happens on stderr, so a person can watch rdsiam come through it.
async fn failover_on_usr1(sandbox: std::sync::Arc<Sandbox>) {
    let Ok(mut usr1) = signal(SignalKind::user_defined1()) else {
        return;
    };
    while usr1.recv().await.is_some() {
        eprintln!(
            "rdsiam-sandbox: failover: stopping the writer; the writer endpoint leads nowhere for 2 s (DNS lag), then to the promoted reader"
        );
        let sb = sandbox.clone();
        let how = rdsiam_testkit::gate::Failover {
            dns_lag: Duration::from_secs(2),
            ..Default::default()
        };
        match tokio::task::spawn_blocking(move || sb.failover(how)).await {
            Ok(Ok(t)) => eprintln!(
                "rdsiam-sandbox: failover: promoted after {:.1}s, writer endpoint on the new writer after {:.1}s; a new reader follows it",
                (t.promoted - t.started).as_secs_f64(),
                (t.spliced - t.started).as_secs_f64()
            ),
            Ok(Err(e)) => eprintln!("rdsiam-sandbox: failover failed: {e:#}"),
            Err(e) => eprintln!("rdsiam-sandbox: failover crashed: {e}"),
        }
    }
}

async fn serve(
    sandbox: &Sandbox,
    args: &[OsString],
    signals: &mut Signals,
    took: Duration,
    verbose: bool,
) -> i32 {
    if args.is_empty() {
        print_flush(&format!(
            "{}{PASTE}{}{TRY}",
            describe(sandbox, took, "# "),
            sandbox.shell_exports(),
        ));
        let n = signals.next().await;
        if verbose {
            eprintln!("rdsiam-sandbox: signal {n}: stopping");
        }
        return 0;
    }
    run_command(sandbox, args, signals).await
}

const PASTE: &str = "\
# Paste these into another shell, or run `scripts/sandbox bash` for a shell that has them
# (and HOME inside the sandbox too):
";

const TRY: &str = "\
# Then try:
#   rdsiam check --proxy PostgreSqlProxy --user iamuserapp --dbname app
#   rdsiam psql --proxy PostgreSqlProxy --user iamuserapp --dbname app
#   rdsiam token --proxy PostgreSqlProxy --user iamuserapp
#   rdsiam list
#   rdsiam proxy --cluster databasecluster --user iamuserapp --dbname app   (a writer target)
#   scripts/sandbox failover   (from a sandbox shell: fail the cluster over, watch the proxy)
# Ctrl-C here stops the sandbox and removes everything it made.
";

/// Runs the command to completion, passing signals on; returns its exit status as a shell
/// would report it.
async fn run_command(sandbox: &Sandbox, args: &[OsString], signals: &mut Signals) -> i32 {
    let mut cmd = Command::new(&args[0]);
    cmd.args(&args[1..]);
    sandbox.apply(cmd.as_std_mut());
    let shown = args[0].to_string_lossy().into_owned();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            // The shell's codes: 127 not found, 126 found but not runnable.
            let (code, what) = match e.kind() {
                std::io::ErrorKind::NotFound => (127, "command not found".to_string()),
                _ => (126, e.to_string()),
            };
            eprintln!("rdsiam-sandbox: {shown}: {what}");
            return code;
        }
    };
    let pid = child.id();
    let mut kill_at: Option<tokio::time::Instant> = None;
    loop {
        // Only polled when armed; the fallback just gives the disabled branch a value.
        let deadline = kill_at.unwrap_or_else(tokio::time::Instant::now);
        tokio::select! {
            status = child.wait() => {
                return match status {
                    Ok(s) => exit_code(s),
                    Err(e) => {
                        eprintln!("rdsiam-sandbox: waiting for {shown}: {e}");
                        1
                    }
                };
            }
            n = signals.next() => {
                // A terminal's Ctrl-C already reached the command (same process group).
                if n == 2 && terminal_delivers_sigint() {
                    continue;
                }
                if let Some(pid) = pid {
                    send_signal(pid, n);
                }
                if n == 15 && kill_at.is_none() {
                    kill_at = Some(tokio::time::Instant::now() + TERM_GRACE);
                }
            }
            _ = tokio::time::sleep_until(deadline), if kill_at.is_some() => {
                eprintln!(
                    "rdsiam-sandbox: {shown} still running {TERM_GRACE:?} after SIGTERM; killing it"
                );
                let _ = child.start_kill();
                kill_at = None;
            }
        }
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status
        .code()
        .or_else(|| status.signal().map(|n| 128 + n))
        .unwrap_or(1)
}

/// Whether a SIGINT we got most likely came from the terminal, which sends it to the whole
/// foreground process group (and so to the command too): true when our group is the
/// terminal's foreground group.
fn terminal_delivers_sigint() -> bool {
    // Linux: /proc/self/stat has pgrp (field 5) and the terminal's foreground group tpgid
    // (field 8, -1 without a terminal); the command name before them may contain spaces.
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
        && let Some((_, rest)) = stat.rsplit_once(')')
    {
        let f: Vec<&str> = rest.split_whitespace().collect();
        if let (Some(pgrp), Some(tpgid)) = (f.get(2), f.get(5)) {
            return pgrp == tpgid;
        }
    }
    // Elsewhere, a terminal on stdin is the usual sign of an interactive Ctrl-C.
    std::io::stdin().is_terminal()
}

/// Sends signal `n` to `pid` with the shell's `kill` builtin (always there, unlike
/// /usr/bin/kill in slim images), which keeps this dev tool free of a libc binding.
fn send_signal(pid: u32, n: i32) {
    let _ = StdCommand::new("/bin/sh")
        .arg("-c")
        .arg(format!("kill -{n} {pid} 2>/dev/null"))
        .status();
}

/// The dir of this executable when `rdsiam` was built beside it (target/debug).
fn rdsiam_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.to_path_buf();
    dir.join("rdsiam").is_file().then_some(dir)
}

/// A few lines on what runs where, each starting with `prefix`.
fn describe(sb: &Sandbox, took: Duration, prefix: &str) -> String {
    let inv = sb.inventory();
    let gate = sb.gate().addr();
    let mut lines = vec![format!(
        "rdsiam sandbox up in {:.1} s: the article's setup on 127.0.0.1 (temp dir {})",
        took.as_secs_f64(),
        sh_quote(sb.dir().as_os_str())
    )];
    for p in &inv.proxies {
        lines.push(format!(
            "  RDS Proxy {}: {}:5432 (IAM auth {}, TLS required) -> IAM gate {gate}",
            p.name, p.endpoint, p.iam_auth
        ));
    }
    for c in &inv.clusters {
        lines.push(format!(
            "  Aurora cluster {}: writer {}, reader {} -> same gate",
            c.id, c.endpoint, c.reader_endpoint
        ));
    }
    for i in &inv.instances {
        let how = if i.iam_enabled {
            "-> same gate".to_string()
        } else {
            "(IAM auth off: same gate, which refuses tokens for it)".to_string()
        };
        lines.push(format!("  instance {}: {} {how}", i.id, i.address));
    }
    lines.push(format!(
        "  {} on 127.0.0.1:{} (database app, IAM role iamuserapp)",
        pg_version(sb),
        sb.pg().port()
    ));
    lines.push(format!("  RDS/STS API at {}", sb.api().url()));
    lines
        .iter()
        .map(|l| format!("{prefix}{l}\n"))
        .collect::<String>()
}

fn pg_version(sb: &Sandbox) -> String {
    StdCommand::new(sb.pg().bin_dir().join("postgres"))
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)" -> "PostgreSQL 15.18"
        .and_then(|s| {
            let rest = s.trim().strip_prefix("postgres (PostgreSQL) ")?;
            Some(format!("PostgreSQL {}", rest.split_whitespace().next()?))
        })
        .unwrap_or_else(|| "PostgreSQL".to_string())
}
