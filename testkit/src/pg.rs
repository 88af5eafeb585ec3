//! A throwaway PostgreSQL server for one test run.
//!
//! Tests talk to a real PostgreSQL rather than a mock, so protocol details (TLS, parameter
//! status, cancel keys, error fields) are the server's own. Each [`Postgres`] is a fresh cluster
//! in a temp dir with a random port and its unix socket inside that dir, so parallel tests and
//! parallel CI runs never share state. The server runs with `ssl=on` and a certificate from a
//! [`TestCa`], because the gate (which plays RDS Proxy) reaches it over TLS the way RDS Proxy
//! reaches an RDS instance.
//!
//! initdb and postgres refuse to run as root, and CI runs as root, so in that case the cluster
//! belongs to the `postgres` system account (or `nobody`) and the server programs run through
//! `runuser`. A small watchdog shell process stops the server and removes the dir if the test
//! process dies without running `Drop` (a panic with `panic=abort`, a `static` that is never
//! dropped, a killed test binary), so no server outlives its test run.

use std::ffi::OsStr;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::ca::TestCa;

/// The superuser initdb creates; `psql_super` connects as this role over the unix socket.
pub const SUPERUSER: &str = "postgres";
/// The application database created at start-up.
pub const APP_DB: &str = "app";
/// LOGIN roles granted `rds_iam`: the plain one first, then names that need percent-encoding or
/// quoting somewhere along the way (in the token's DBUser, in a URI, in SQL).
pub const IAM_ROLES: &[&str] = &[
    "iamuserapp",
    "jane@example.com",
    "ops+oncall",
    "a&b=c",
    "with space",
    "ユーザー",
];
/// A LOGIN role deliberately *not* granted `rds_iam`.
pub const NO_RIGHTS_ROLE: &str = "norights";

/// Install hint shown when no PostgreSQL server binaries are found.
const INSTALL_HINT: &str = "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found \
     in /usr/lib/postgresql/*/bin or on PATH. Install them: `apt-get install postgresql` on \
     Debian/Ubuntu, `brew install postgresql@16` on macOS (and put its bin dir on PATH), or set \
     RDSIAM_PG_BIN to the directory that holds initdb.";

/// A running throwaway PostgreSQL server; dropping it stops the server and removes its files.
pub struct Postgres {
    bin: PathBuf,
    /// Held so the whole tree is removed on drop; `None` only while dropping.
    root: Option<tempfile::TempDir>,
    data: PathBuf,
    sock: PathBuf,
    port: u16,
    ca: Arc<TestCa>,
    /// The account the server runs as when we are root (`runuser -u <it> --`).
    run_as: Option<String>,
    /// Whether `pg_ctl start` was attempted, i.e. whether Drop must stop something.
    started: bool,
    watchdog: Option<Child>,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("port", &self.port)
            .field("data", &self.data)
            .field("run_as", &self.run_as)
            .finish_non_exhaustive()
    }
}

impl Postgres {
    /// Starts a fresh server with its own new test CA.
    pub fn start() -> Result<Postgres> {
        Self::start_with_ca(Arc::new(TestCa::new()?))
    }

    /// Starts a fresh server whose certificate is issued by `ca` (share one CA across the
    /// server and the gate when a test wants a single trust root).
    pub fn start_with_ca(ca: Arc<TestCa>) -> Result<Postgres> {
        let (mut pg, account) = Self::prepare(ca)?;
        // From here on `pg` is the guard: any `?` below drops it, which stops whatever started.
        pg.init(account.as_ref())?;
        pg.spawn_watchdog()?;
        pg.start_server()?;
        pg.setup_sql()?;
        Ok(pg)
    }

    /// Starts a hot standby of `primary`: a `pg_basebackup -R` copy (roles, databases, the
    /// same certificate) that streams from it, read-only until [`Postgres::promote`]. With
    /// the primary it makes the writer and reader of an Aurora-like cluster (issue 19).
    pub fn start_standby_of(primary: &Postgres) -> Result<Postgres> {
        let (mut pg, account) = Self::prepare(primary.ca.clone())?;
        let mut cmd = pg.server_cmd(pg.bin.join("pg_basebackup"));
        cmd.arg("-h")
            .arg(&primary.sock)
            .arg("-p")
            .arg(primary.port.to_string())
            .args(["-U", SUPERUSER, "-D"])
            .arg(&pg.data)
            .args(["-R", "-X", "stream", "--no-sync", "-c", "fast"]);
        run(cmd, "pg_basebackup")?;
        // The copy carries the primary's settings; later lines win, so only what differs.
        let conf = format!(
            "\n# rdsiam testkit standby\nunix_socket_directories = '{}'\nhot_standby = on\n",
            pg.sock.display()
        );
        append(&pg.data.join("postgresql.conf"), &conf)?;
        if let Some(acct) = &account {
            std::os::unix::fs::chown(
                pg.data.join("postgresql.conf"),
                Some(acct.uid),
                Some(acct.gid),
            )?;
        }
        pg.spawn_watchdog()?;
        pg.start_server()?;
        Ok(pg)
    }

    /// A temp dir (owned by the server's account) and the not-yet-started server in it.
    fn prepare(ca: Arc<TestCa>) -> Result<(Postgres, Option<Account>)> {
        let bin = find_bin_dir()?;
        let base = temp_base()?;
        let root = tempfile::Builder::new()
            .prefix("rdsiam-pg-")
            .tempdir_in(&base)
            .with_context(|| format!("creating a temp dir in {}", base.display()))?;
        // The new dir is owned by our effective uid: a portable way to ask "are we root?"
        // without libc.
        let is_root = std::fs::metadata(root.path())?.uid() == 0;
        let account = if is_root {
            Some(unprivileged_account()?)
        } else {
            None
        };
        let data = root.path().join("data");
        let sock = root.path().join("sock");
        std::fs::create_dir(&sock)?;
        // 0755 so that whoever runs the client (root, or the account itself) can reach the
        // socket; the data dir itself stays 0700 as postgres insists.
        for dir in [root.path(), sock.as_path()] {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        }
        if let Some(acct) = &account {
            for dir in [root.path(), sock.as_path()] {
                std::os::unix::fs::chown(dir, Some(acct.uid), Some(acct.gid))
                    .with_context(|| format!("chown {} to {}", dir.display(), acct.name))?;
            }
        }
        check_socket_path_len(&sock)?;
        let pg = Postgres {
            bin,
            root: Some(root),
            data,
            sock,
            port: 0,
            ca,
            run_as: account.as_ref().map(|a| a.name.clone()),
            started: false,
            watchdog: None,
        };
        Ok((pg, account))
    }

    /// Promotes a standby to a writer (`pg_ctl promote -w`: returns once it accepts writes).
    pub fn promote(&self) -> Result<()> {
        let mut cmd = self.server_cmd(self.bin.join("pg_ctl"));
        cmd.arg("-D")
            .arg(&self.data)
            .args(["-w", "-t", "30", "-s", "promote"]);
        run(cmd, "pg_ctl promote")?;
        Ok(())
    }

    /// Stops the server the way a failover does: `fast` ends every session with 57P01,
    /// `immediate` drops them as a crash would. Drop copes with a server already stopped.
    pub fn stop(&self, mode: StopMode) -> Result<()> {
        let mut cmd = self.server_cmd(self.bin.join("pg_ctl"));
        cmd.arg("-D")
            .arg(&self.data)
            .args(["-m", mode.as_str(), "-w", "-t", "30", "-s", "stop"]);
        run(cmd, "pg_ctl stop")?;
        Ok(())
    }

    /// Whether the server is a hot standby now (`pg_is_in_recovery()`).
    pub fn in_recovery(&self) -> Result<bool> {
        Ok(self.psql_super("postgres", "select pg_is_in_recovery()")? == "t")
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the unix socket (use as `host=` for libpq).
    pub fn socket_dir(&self) -> &Path {
        &self.sock
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The directory the PostgreSQL binaries (initdb, pg_ctl, psql…) were taken from.
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// The psql to use with this server: the one beside the server binaries if present.
    pub fn psql_path(&self) -> PathBuf {
        let p = self.bin.join("psql");
        if p.exists() { p } else { PathBuf::from("psql") }
    }

    /// The CA that issued the server's certificate (SANs `localhost` and `127.0.0.1`).
    pub fn ca(&self) -> &Arc<TestCa> {
        &self.ca
    }

    /// The server log (everything postgres wrote since start-up), for failure messages.
    pub fn log(&self) -> String {
        self.root
            .as_ref()
            .and_then(|r| std::fs::read_to_string(r.path().join("postgres.log")).ok())
            .unwrap_or_default()
    }

    /// Runs `sql` with psql as the superuser over the unix socket and returns its stdout with
    /// the trailing newline removed (`-tAX -v ON_ERROR_STOP=1`, so `select 1` gives `"1"`).
    /// SQL goes through stdin, so several statements (even `CREATE DATABASE`) may be given.
    pub fn psql_super(&self, db: &str, sql: &str) -> Result<String> {
        let mut cmd = Command::new(self.psql_path());
        cmd.arg("-h")
            .arg(&self.sock)
            .arg("-p")
            .arg(self.port.to_string())
            .args([
                "-U",
                SUPERUSER,
                "-d",
                db,
                "-tAX",
                "-v",
                "ON_ERROR_STOP=1",
                "-f",
                "-",
            ]);
        clean_pg_env(&mut cmd);
        // The reserved/non-ASCII role names must round-trip byte for byte.
        cmd.env("PGCLIENTENCODING", "UTF8");
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().context("running psql")?;
        {
            let mut stdin = child.stdin.take().expect("stdin is piped");
            stdin.write_all(sql.as_bytes())?;
            // stdin dropped here: psql sees EOF and exits after the last statement.
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "psql on {db} failed ({}): {}\nSQL: {sql}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let mut s = String::from_utf8(out.stdout).context("psql printed non-UTF-8")?;
        while s.ends_with('\n') {
            s.pop();
        }
        Ok(s)
    }

    /// Wraps a server program so it runs as the unprivileged account when we are root.
    fn server_cmd(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(program);
                c
            }
            None => Command::new(program),
        };
        clean_pg_env(&mut cmd);
        // Keep messages in English so log matching (port in use) works.
        cmd.env("LC_MESSAGES", "C");
        cmd
    }

    fn init(&mut self, account: Option<&Account>) -> Result<()> {
        let mut cmd = self.server_cmd(self.bin.join("initdb"));
        cmd.arg("-D").arg(&self.data).args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ]);
        run(cmd, "initdb")?;

        // Later settings win, so appending overrides initdb's defaults.
        let conf = format!(
            "\n# rdsiam testkit\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\n\
             ssl = on\n\
             ssl_cert_file = 'server.crt'\n\
             ssl_key_file = 'server.key'\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             shared_buffers = 32MB\n\
             max_connections = 60\n\
             log_connections = on\n\
             log_disconnections = on\n\
             log_line_prefix = '%m [%p] %q%u@%d '\n",
            self.sock.display()
        );
        append(&self.data.join("postgresql.conf"), &conf)?;
        // Trust over TLS and the socket only: the gate authenticates, PostgreSQL doesn't. No
        // plain `host` line, so a non-TLS TCP login fails the way RDS's rds.force_ssl would.
        std::fs::write(
            self.data.join("pg_hba.conf"),
            "local all all trust\nlocal replication all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )?;
        let (cert, key) = self.ca.issue(&["localhost", "127.0.0.1"])?;
        let cert_path = self.data.join("server.crt");
        let key_path = self.data.join("server.key");
        std::fs::write(&cert_path, cert)?;
        std::fs::write(&key_path, key)?;
        // postgres refuses a key readable by group/others.
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))?;
        if let Some(acct) = account {
            for p in [&cert_path, &key_path, &self.data.join("pg_hba.conf")] {
                std::os::unix::fs::chown(p, Some(acct.uid), Some(acct.gid))?;
            }
        }
        Ok(())
    }

    /// Starts a shell that waits for our end of its stdin to close (which happens when this
    /// process exits, however it exits) and then stops the server and removes the dir.
    fn spawn_watchdog(&mut self) -> Result<()> {
        let root = self.root.as_ref().expect("root is set").path();
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(
                // Ctrl-C in a terminal reaches the whole process group; the watchdog must
                // survive it to clean up after the test binary it watches.
                "trap '' INT HUP; root=$1; shift; \
                 while read -r _; do :; done; \
                 \"$@\" >/dev/null 2>&1; rm -rf \"$root\"",
            )
            .arg("rdsiam-pg-watchdog")
            .arg(root);
        if let Some(user) = &self.run_as {
            cmd.args(["runuser", "-u", user, "--"]);
        }
        cmd.arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"]);
        clean_pg_env(&mut cmd);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.watchdog = Some(cmd.spawn().context("starting the cleanup watchdog")?);
        Ok(())
    }

    fn start_server(&mut self) -> Result<()> {
        let root = self
            .root
            .as_ref()
            .expect("root is set")
            .path()
            .to_path_buf();
        let log = root.join("postgres.log");
        let mut last_err = None;
        // A port picked by binding :0 can be taken by someone else before postgres binds it;
        // a few tries make that race harmless.
        for _ in 0..3 {
            let port = free_port()?;
            append(
                &self.data.join("postgresql.conf"),
                &format!("port = {port}\n"),
            )?;
            self.port = port;
            self.started = true;
            let mut cmd = self.server_cmd(self.bin.join("pg_ctl"));
            cmd.arg("-D")
                .arg(&self.data)
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "30", "-s", "start"]);
            // With -l, pg_ctl points the server's stdout/stderr at the log file, so capturing
            // pg_ctl's own output here doesn't leave a pipe held open by the server.
            match run(cmd, "pg_ctl start") {
                Ok(_) => return Ok(()),
                Err(e) => {
                    let text = self.log();
                    let port_taken = text.contains("Address already in use")
                        || text.contains("could not create any TCP/IP sockets");
                    let err = anyhow!("{e:#}\n--- server log ---\n{text}");
                    eprintln!("rdsiam-testkit: PostgreSQL failed to start: {err:#}");
                    if !port_taken {
                        return Err(err);
                    }
                    // Make sure nothing half-started lingers before the next try.
                    self.stop_server();
                    last_err = Some(err);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("PostgreSQL did not start")))
    }

    fn setup_sql(&self) -> Result<()> {
        let mut sql = String::from(
            "CREATE ROLE rds_iam NOLOGIN;\n\
             CREATE DATABASE app;\n\
             CREATE ROLE iamuserapp LOGIN IN ROLE rds_iam;\n\
             GRANT CONNECT ON DATABASE app TO iamuserapp;\n",
        );
        for role in IAM_ROLES.iter().filter(|r| **r != "iamuserapp") {
            sql.push_str(&format!(
                "CREATE ROLE {} LOGIN IN ROLE rds_iam;\n",
                quote_ident(role)
            ));
        }
        sql.push_str(&format!(
            "CREATE ROLE {} LOGIN;\n",
            quote_ident(NO_RIGHTS_ROLE)
        ));
        self.psql_super("postgres", &sql)
            .map_err(|e| anyhow!("{e:#}\n--- server log ---\n{}", self.log()))?;
        self.psql_super(APP_DB, "GRANT USAGE ON SCHEMA public TO iamuserapp;")?;
        Ok(())
    }

    /// Stops the server immediately; falls back to SIGKILL on the postmaster if pg_ctl can't.
    fn stop_server(&mut self) {
        if !self.started {
            return;
        }
        self.started = false;
        let mut cmd = self.server_cmd(self.bin.join("pg_ctl"));
        cmd.arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "-t", "10", "-s", "stop"]);
        let stopped = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if stopped {
            return;
        }
        // pg_ctl also "fails" when no server was running; only kill a pid that is there.
        if let Some(pid) = std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().map(|l| l.trim().to_string()))
            .filter(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        {
            let _ = Command::new("kill")
                .args(["-KILL", &pid])
                .stderr(Stdio::null())
                .status();
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop_server();
        if let Some(mut w) = self.watchdog.take() {
            // We cleaned up ourselves; the watchdog's job is done. Killing it before closing its
            // stdin keeps it from running its own (redundant) cleanup.
            let _ = w.kill();
            let _ = w.wait();
        }
        if let Some(root) = self.root.take() {
            let path = root.path().to_path_buf();
            if let Err(e) = root.close() {
                eprintln!("rdsiam-testkit: removing {}: {e}", path.display());
            }
        }
    }
}

/// How [`Postgres::stop`] ends the sessions (pg_ctl's `-m`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopMode {
    /// Sessions get FATAL 57P01 "terminating connection due to administrator command".
    Fast,
    /// Sessions are dropped as in a crash.
    Immediate,
}

impl StopMode {
    fn as_str(self) -> &'static str {
        match self {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// The unprivileged account the server runs as when we are root.
struct Account {
    name: String,
    uid: u32,
    gid: u32,
}

fn unprivileged_account() -> Result<Account> {
    let passwd = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    for wanted in ["postgres", "nobody"] {
        for line in passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 4
                && f[0] == wanted
                && let (Ok(uid), Ok(gid)) = (f[2].parse(), f[3].parse())
            {
                return Ok(Account {
                    name: wanted.to_string(),
                    uid,
                    gid,
                });
            }
        }
    }
    bail!(
        "running as root, but neither a `postgres` nor a `nobody` account exists to run \
         PostgreSQL as (initdb and postgres refuse root)"
    )
}

/// Where to make the temp dir. As root the server runs as another account, which must be able
/// to reach its dir, so every ancestor must be traversable by others (a TMPDIR under /root is
/// not); in that case fall back to /tmp.
fn temp_base() -> Result<PathBuf> {
    let preferred = std::env::temp_dir();
    let is_root = std::fs::metadata(&preferred).is_ok()
        && tempfile::tempdir_in(&preferred)
            .ok()
            .and_then(|d| std::fs::metadata(d.path()).ok())
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
    if !is_root {
        return Ok(preferred);
    }
    for cand in [preferred, PathBuf::from("/tmp")] {
        if traversable_by_others(&cand) {
            return Ok(cand);
        }
    }
    bail!(
        "running as root, but neither TMPDIR nor /tmp is traversable by other users, so the \
         unprivileged PostgreSQL account could not reach its data dir"
    )
}

fn traversable_by_others(dir: &Path) -> bool {
    let Ok(dir) = dir.canonicalize() else {
        return false;
    };
    dir.ancestors().all(|p| {
        std::fs::metadata(p)
            .map(|m| m.is_dir() && m.mode() & 0o001 != 0)
            .unwrap_or(false)
    })
}

/// Finds the directory with initdb/pg_ctl/postgres: RDSIAM_PG_BIN, then the highest
/// `/usr/lib/postgresql/<ver>/bin` (Debian's layout, not on PATH), then PATH, then Homebrew's
/// keg-only `postgresql@N` dirs.
fn find_bin_dir() -> Result<PathBuf> {
    let has_all = |d: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| d.join(b).is_file())
    };
    if let Some(d) = std::env::var_os("RDSIAM_PG_BIN") {
        let d = PathBuf::from(d);
        if has_all(&d) {
            return Ok(d);
        }
        bail!(
            "RDSIAM_PG_BIN={} does not contain initdb, pg_ctl and postgres",
            d.display()
        );
    }
    if let Some(d) = highest_versioned("/usr/lib/postgresql", "", &has_all) {
        return Ok(d);
    }
    if let Some(path) = std::env::var_os("PATH")
        && let Some(d) = std::env::split_paths(&path).find(|d| has_all(d))
    {
        return Ok(d);
    }
    for brew in ["/opt/homebrew/opt", "/usr/local/opt"] {
        if let Some(d) = highest_versioned(brew, "postgresql@", &has_all) {
            return Ok(d);
        }
    }
    bail!("{INSTALL_HINT}")
}

/// Among `<parent>/<prefix><version>/bin` dirs that pass `ok`, the one with the highest
/// version (compared numerically, so 16 beats 9.6).
fn highest_versioned(parent: &str, prefix: &str, ok: &dyn Fn(&Path) -> bool) -> Option<PathBuf> {
    let mut best: Option<(Vec<u32>, PathBuf)> = None;
    for entry in std::fs::read_dir(parent).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(ver) = name.strip_prefix(prefix) else {
            continue;
        };
        let Ok(key) = ver
            .split('.')
            .map(str::parse::<u32>)
            .collect::<Result<Vec<_>, _>>()
        else {
            continue;
        };
        let bin = entry.path().join("bin");
        if ok(&bin) && best.as_ref().is_none_or(|(k, _)| key > *k) {
            best = Some((key, bin));
        }
    }
    best.map(|(_, p)| p)
}

/// Unix socket paths are limited to ~107 bytes; a long TMPDIR would fail obscurely later.
fn check_socket_path_len(sock: &Path) -> Result<()> {
    let len = sock.as_os_str().len() + "/.s.PGSQL.65535".len();
    if len > 100 {
        bail!(
            "socket path under {} is too long ({len} bytes) for a unix socket; set TMPDIR to a \
             shorter directory",
            sock.display()
        );
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// The caller's PG* variables (PGHOST, PGDATA, PGSSLMODE…) would silently redirect or change
/// our commands, so they never reach them.
fn clean_pg_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PG") {
            cmd.env_remove(k);
        }
    }
}

fn run(mut cmd: Command, what: &str) -> Result<Output> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

fn append(path: &Path, text: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// SQL identifier quoting (double the double quotes).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lists postmaster/postgres processes whose command line names `data`.
    fn processes_for(data: &Path) -> Vec<String> {
        let needle = data.to_string_lossy().into_owned();
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let name = entry.file_name();
            if !name.to_string_lossy().chars().all(|c| c.is_ascii_digit()) {
                continue;
            }
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&needle) && !cmdline.contains("rdsiam-pg-watchdog") {
                found.push(format!("{}: {cmdline}", name.to_string_lossy()));
            }
        }
        found
    }

    #[test]
    fn starts_has_roles_and_cleans_up() {
        let t0 = std::time::Instant::now();
        let pg = Postgres::start().unwrap();
        let took = t0.elapsed();
        eprintln!("PostgreSQL started in {took:?} on port {}", pg.port());
        assert_eq!(pg.psql_super("app", "select 1").unwrap(), "1");

        let roles = pg
            .psql_super(
                "postgres",
                "select rolname from pg_roles where rolcanlogin and \
                 pg_has_role(oid, 'rds_iam', 'MEMBER') and not rolsuper order by 1",
            )
            .unwrap();
        let mut want: Vec<&str> = IAM_ROLES.to_vec();
        want.sort();
        let mut got: Vec<&str> = roles.lines().collect();
        got.sort();
        assert_eq!(got, want);
        assert_eq!(
            pg.psql_super(
                "postgres",
                "select rolcanlogin, pg_has_role(oid, 'rds_iam', 'MEMBER') \
                 from pg_roles where rolname = 'norights'"
            )
            .unwrap(),
            "t|f"
        );
        assert_eq!(
            pg.psql_super(
                "app",
                "select has_database_privilege('iamuserapp', 'app', 'CONNECT'), \
                 has_schema_privilege('iamuserapp', 'public', 'USAGE')"
            )
            .unwrap(),
            "t|t"
        );
        assert_eq!(
            pg.psql_super("postgres", "show ssl").unwrap(),
            "on",
            "the gate reaches the server over TLS"
        );
        // Several statements, including one that can't run in a transaction block.
        pg.psql_super("postgres", "create database scratch; select 2")
            .unwrap();

        let data = pg.data_dir().to_path_buf();
        assert!(
            !processes_for(&data).is_empty(),
            "the server should be visible while running"
        );
        drop(pg);
        assert_eq!(processes_for(&data), Vec::<String>::new());
        assert!(!data.exists(), "the temp dir is removed");
    }

    /// Runs in a child copy of the test binary: starts a server and exits without Drop.
    #[test]
    fn watchdog_child() {
        if std::env::var_os("RDSIAM_TESTKIT_WATCHDOG_CHILD").is_none() {
            return;
        }
        let pg = Postgres::start().unwrap();
        println!("DATA={}", pg.data_dir().display());
        std::process::exit(0);
    }

    #[test]
    fn watchdog_cleans_up_when_the_process_exits_without_drop() {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "pg::tests::watchdog_child", "--nocapture"])
            .env("RDSIAM_TESTKIT_WATCHDOG_CHILD", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let data = stdout
            .lines()
            .find_map(|l| l.strip_prefix("DATA="))
            .unwrap_or_else(|| {
                panic!(
                    "child printed no data dir: {stdout}{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        let data = PathBuf::from(data);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while (data.exists() || !processes_for(&data).is_empty())
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(processes_for(&data), Vec::<String>::new());
        assert!(!data.exists(), "the watchdog removes the dir");
    }

    #[test]
    fn bad_sql_is_an_error_with_the_message() {
        let pg = Postgres::start().unwrap();
        let err = pg
            .psql_super("app", "select * from no_such_table")
            .unwrap_err();
        assert!(format!("{err:#}").contains("no_such_table"), "{err:#}");
    }
}
