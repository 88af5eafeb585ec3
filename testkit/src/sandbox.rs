//! The article's world on one machine, for a newcomer without an AWS account.
//!
//! A [`Sandbox`] starts the same parts the tests use — the throwaway [`Postgres`] with database
//! `app` and IAM role `iamuserapp`, the [`Gate`] playing RDS Proxy in front of it, and the local
//! [`RdsApi`] answering for [`Inventory::article`] — and describes the environment in which
//! `rdsiam check --proxy PostgreSqlProxy --user iamuserapp --dbname app` works exactly as the
//! article's reader would type it:
//!
//! - The RDS API reports the real-looking endpoint names on port 5432. `RDSIAM_VIA` sends the
//!   TCP connection to the gate on 127.0.0.1 while the token and TLS verification still use
//!   those names, so nothing (no `/etc/hosts` entry, no DNS) changes outside the sandbox.
//! - The gate's certificate names every IAM-enabled endpoint and comes from a sandbox CA that
//!   `PGSSLROOTCERT` points at; the gate accepts tokens signed for any of those endpoints.
//! - Credentials are the gate's static test keys, and every AWS, PostgreSQL and rdsiam variable
//!   of the caller's environment is removed, with the AWS config and credentials files pointed
//!   at empty files: running it on a laptop with production profiles can't reach production.
//! - `HOME` and the XDG dirs point into the sandbox's temp dir, so history files and caches
//!   written by psql and rdsiam vanish with it.
//!
//! Dropping the sandbox stops everything and removes its temp dirs. A watchdog shell (like
//! [`Postgres`]'s own) removes the sandbox dir if the process dies without running `Drop`.

use std::ffi::{OsStr, OsString};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::ca::TestCa;
use crate::gate::cluster::WriterGuard;
use crate::gate::{
    Cluster, Failover, FailoverTimes, Gate, TEST_ACCESS_KEY_ID, TEST_REGION, TEST_SECRET_ACCESS_KEY,
};
use crate::mariadb::MariaDb;
use crate::pg::Postgres;
use crate::rdsapi::{Inventory, RdsApi};

/// The port the RDS API reports for every endpoint of [`Inventory::article`] and so the port
/// tokens are signed for; the gate itself listens on a random port.
pub const ENDPOINT_PORT: u16 = 5432;

/// Variables passed to commands as given: everything a shell, a terminal and a locale need.
/// Whatever the caller set that starts with one of [`SCRUBBED_PREFIXES`] is removed instead.
const SCRUBBED_PREFIXES: &[&str] = &["AWS_", "PG", "RDSIAM_"];
/// Single variables that would make psql read or write outside the sandbox.
const SCRUBBED_NAMES: &[&str] = &["PSQLRC", "PSQL_HISTORY", "PSQL_PAGER"];

/// A running sandbox: PostgreSQL, the IAM gate and the RDS/STS API on 127.0.0.1.
pub struct Sandbox {
    // Field order is drop order: the front ends go before the database they lead to. The
    // sandbox dir and its watchdog are removed by `Drop::drop`, before any of these.
    api: RdsApi,
    /// The writer, a hot-standby reader and the gate in front (issue 19: `failover`).
    cluster: Cluster,
    /// The MySQL world (`rdsiam-sandbox --mysql`): a MariaDB playing `MySqlProxy`.
    mariadb: Option<MariaDb>,
    inventory: Inventory,
    accepted_hosts: Vec<String>,
    bin_dir: Option<PathBuf>,
    watchdog: Option<Child>,
    dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("dir", &self.dir())
            .field("api", &self.api.url())
            .field("gate", &self.cluster.gate().addr())
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Starts everything. `bin_dir` (the dir holding the built `rdsiam`) goes first on the
    /// commands' `PATH`. On error, whatever had started is stopped and removed again.
    pub fn start(bin_dir: Option<PathBuf>) -> Result<Sandbox> {
        Sandbox::start_with(bin_dir, false)
    }

    /// With `mysql`, also the MySQL world: a throwaway MariaDB (its IAM users checked by the
    /// server, see [`MariaDb`]; needs root) with the same CA, the RDS API listing `MySqlProxy`,
    /// the Aurora MySQL cluster `ordersmysql` and a MariaDB instance beside the article's
    /// PostgreSQL ones, and `RDSIAM_VIA` pointing at the MariaDB, so
    /// `rdsiam check --proxy MySqlProxy --user iamuserapp --dbname app` works as typed.
    pub fn start_with(bin_dir: Option<PathBuf>, mysql: bool) -> Result<Sandbox> {
        // Made first, so the watchdog guards it while the slower parts start.
        let dir = tempfile::Builder::new()
            .prefix("rdsiam-sandbox-")
            .tempdir()
            .context("creating the sandbox's temp dir")?;
        let watchdog = spawn_watchdog(dir.path())?;
        let mut guard = DirGuard {
            dir: Some(dir),
            watchdog: Some(watchdog),
        };
        let root = guard.path().to_path_buf();
        for sub in [
            "home",
            "home/.config",
            "home/.cache",
            "home/.local/share",
            "aws",
        ] {
            std::fs::create_dir_all(root.join(sub))
                .with_context(|| format!("creating {}", root.join(sub).display()))?;
        }
        // Empty files rather than unset variables: unset, the SDK falls back to ~/.aws.
        std::fs::write(root.join("aws/config"), "")?;
        std::fs::write(root.join("aws/credentials"), "")?;

        let ca = Arc::new(TestCa::new()?);
        ca.write_ca(root.join("ca.pem"))?;
        let pg = Postgres::start_with_ca(ca.clone()).map_err(explain_pg_failure)?;

        let mariadb = if mysql {
            Some(
                MariaDb::start_with_ca(ca.clone())
                    .context("starting the MariaDB for the MySQL world")?,
            )
        } else {
            None
        };
        let inventory = if mysql {
            Inventory::article().with_mysql()
        } else {
            Inventory::article()
        };
        let accepted_hosts = iam_endpoint_hosts(&inventory);
        // The clusters' reader endpoints lead to the standby; everything else to the writer.
        let readers: Vec<String> = inventory
            .clusters
            .iter()
            .filter(|c| c.iam_enabled)
            .map(|c| c.reader_endpoint.clone())
            .collect();
        let cluster = Cluster::around(pg, |cfg| {
            // The proxy is the article's front door; the others ride along as extra hosts.
            cfg.endpoint_host = accepted_hosts[0].clone();
            cfg.extra_hosts = accepted_hosts[1..]
                .iter()
                .filter(|h| !readers.contains(h))
                .cloned()
                .collect();
            cfg.reader_hosts = readers.clone();
            cfg.iam_off_hosts = iam_off_hosts(&inventory);
            cfg.endpoint_port = Some(ENDPOINT_PORT);
        })
        .context("starting the cluster and the IAM gate")?;
        let api = RdsApi::start(inventory.clone()).context("starting the local RDS API")?;

        let (dir, watchdog) = guard.disarm();
        Ok(Sandbox {
            api,
            cluster,
            mariadb,
            inventory,
            accepted_hosts,
            bin_dir,
            watchdog,
            dir,
        })
    }

    /// The sandbox's temp dir (HOME, the CA file, the empty AWS files live here).
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("dir is set until drop").path()
    }

    /// The sandbox CA's PEM file (`PGSSLROOTCERT`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir().join("ca.pem")
    }

    /// The current writer.
    pub fn pg(&self) -> WriterGuard<'_> {
        self.cluster.writer()
    }

    pub fn gate(&self) -> &Gate {
        self.cluster.gate()
    }

    /// Fails the cluster over (see [`Cluster::failover`]); `scripts/sandbox failover`.
    pub fn failover(&self, how: Failover) -> Result<FailoverTimes> {
        self.cluster.failover(how)
    }

    pub fn api(&self) -> &RdsApi {
        &self.api
    }

    /// The MariaDB of the MySQL world, if started.
    pub fn mariadb(&self) -> Option<&MariaDb> {
        self.mariadb.as_ref()
    }

    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// The endpoint host names the gate answers for (the proxy's first).
    pub fn accepted_hosts(&self) -> &[String] {
        &self.accepted_hosts
    }

    /// The variables the sandbox sets, in a stable order. With `isolate_home` false, `HOME`
    /// is left out (for pasting into an interactive shell, where moving HOME would surprise).
    pub fn vars(&self, isolate_home: bool) -> Vec<(String, OsString)> {
        let dir = self.dir();
        let home = dir.join("home");
        let s = |v: &str| OsString::from(v);
        let p = |v: PathBuf| v.into_os_string();
        let mut vars = vec![
            ("AWS_ACCESS_KEY_ID", s(TEST_ACCESS_KEY_ID)),
            ("AWS_SECRET_ACCESS_KEY", s(TEST_SECRET_ACCESS_KEY)),
            ("AWS_REGION", s(TEST_REGION)),
            ("AWS_EC2_METADATA_DISABLED", s("true")),
            ("AWS_CONFIG_FILE", p(dir.join("aws/config"))),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                p(dir.join("aws/credentials")),
            ),
            ("AWS_ENDPOINT_URL_RDS", s(&self.api.url())),
            ("AWS_ENDPOINT_URL_STS", s(&self.api.url())),
            (
                "RDSIAM_VIA",
                s(&match &self.mariadb {
                    Some(db) => format!("127.0.0.1:{}", db.port()),
                    None => self.cluster.gate().addr().to_string(),
                }),
            ),
            // `scripts/sandbox failover` signals this process (SIGUSR1) to fail over.
            ("RDSIAM_SANDBOX_PID", s(&std::process::id().to_string())),
            // Never created: a named target in the user's real config must not leak in.
            ("RDSIAM_CONFIG", p(dir.join("rdsiam.toml"))),
            ("PGSSLROOTCERT", p(self.ca_file())),
            ("PSQL_HISTORY", p(home.join(".psql_history"))),
        ];
        if isolate_home {
            vars.push(("HOME", p(home.clone())));
        }
        vars.extend([
            ("XDG_CONFIG_HOME", p(home.join(".config"))),
            ("XDG_CACHE_HOME", p(home.join(".cache"))),
            ("XDG_DATA_HOME", p(home.join(".local/share"))),
            ("XDG_STATE_HOME", p(home.join(".local/state"))),
        ]);
        vars.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// `PATH` with the dir holding `rdsiam` first and PostgreSQL's bin dir last: `rdsiam psql`
    /// then finds a psql even where the server's (keg-only Homebrew, Debian's versioned dir)
    /// is not on PATH, and the user's own psql still wins where there is one.
    pub fn path_var(&self) -> OsString {
        let rest = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs: Vec<PathBuf> = self.bin_dir.iter().cloned().collect();
        dirs.extend(std::env::split_paths(&rest));
        dirs.push(self.pg().bin_dir().to_path_buf());
        std::env::join_paths(dirs).unwrap_or(rest)
    }

    /// The caller's variables the sandbox removes and doesn't set again, sorted.
    pub fn scrubbed(&self, isolate_home: bool) -> Vec<String> {
        let set: Vec<String> = self
            .vars(isolate_home)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let mut out: Vec<String> = std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .filter(|k| is_scrubbed(k) && !set.contains(k))
            .collect();
        out.sort();
        out
    }

    /// Gives `cmd` the sandbox's environment: the caller's minus every AWS, PG and rdsiam
    /// variable, plus [`Sandbox::vars`] (with HOME) and the PATH with `rdsiam` first.
    pub fn apply(&self, cmd: &mut Command) {
        for (k, _) in std::env::vars_os() {
            if k.to_str().is_some_and(is_scrubbed) {
                cmd.env_remove(&k);
            }
        }
        for (k, v) in self.vars(true) {
            cmd.env(k, v);
        }
        cmd.env("PATH", self.path_var());
    }

    /// `unset …` and `export …` lines (shell-quoted) for pasting into a POSIX shell. HOME is
    /// left alone there; `PATH` keeps the shell's own value after the rdsiam dir.
    pub fn shell_exports(&self) -> String {
        let mut out = String::new();
        let unset = self.scrubbed(false);
        if !unset.is_empty() {
            out.push_str(&format!("unset {}\n", unset.join(" ")));
        }
        for (k, v) in self.vars(false) {
            out.push_str(&format!("export {k}={}\n", sh_quote(&v)));
        }
        let mut path = String::new();
        if let Some(bin) = &self.bin_dir {
            path.push_str(&format!("{}:", sh_quote(bin.as_os_str())));
        }
        path.push_str(&format!(
            "\"$PATH\":{}",
            sh_quote(self.pg().bin_dir().as_os_str())
        ));
        out.push_str(&format!("export PATH={path}\n"));
        out
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Nothing running uses the sandbox dir by now (pg has its own), so it goes first.
        let mut guard = DirGuard {
            dir: self.dir.take(),
            watchdog: self.watchdog.take(),
        };
        guard.cleanup();
    }
}

/// Owns the sandbox dir and its watchdog until [`Sandbox`] takes them over, so that a failed
/// start removes the dir too.
struct DirGuard {
    dir: Option<tempfile::TempDir>,
    watchdog: Option<Child>,
}

impl DirGuard {
    fn path(&self) -> &Path {
        self.dir.as_ref().expect("dir is set").path()
    }

    fn disarm(&mut self) -> (Option<tempfile::TempDir>, Option<Child>) {
        (self.dir.take(), self.watchdog.take())
    }

    fn cleanup(&mut self) {
        if let Some(mut w) = self.watchdog.take() {
            // Killed before its stdin closes, so it doesn't race us removing the same dir.
            let _ = w.kill();
            let _ = w.wait();
        }
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            if let Err(e) = dir.close() {
                eprintln!("rdsiam-sandbox: removing {}: {e}", path.display());
            }
        }
    }
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// A shell that waits for its stdin to close (when this process exits, however it exits) and
/// then removes `dir`. It ignores the signals a terminal or `kill` send to the whole group, so
/// it outlives the sandbox it watches.
fn spawn_watchdog(dir: &Path) -> Result<Child> {
    Command::new("/bin/sh")
        .arg("-c")
        .arg("trap '' INT HUP TERM QUIT; while read -r _; do :; done; rm -rf \"$1\"")
        .arg("rdsiam-sandbox-watchdog")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the sandbox's cleanup watchdog (/bin/sh)")
}

/// Host names of the endpoints with IAM auth on: proxies first (the article's front door),
/// then cluster writer and reader endpoints, then instances.
pub fn iam_endpoint_hosts(inv: &Inventory) -> Vec<String> {
    let mut hosts: Vec<String> = Vec::new();
    let mut add = |h: &str| {
        if !h.is_empty() && !hosts.iter().any(|x| x.eq_ignore_ascii_case(h)) {
            hosts.push(h.to_string());
        }
    };
    for p in inv.proxies.iter().filter(|p| p.iam_auth != "DISABLED") {
        add(&p.endpoint);
    }
    for c in inv.clusters.iter().filter(|c| c.iam_enabled) {
        add(&c.endpoint);
        add(&c.reader_endpoint);
    }
    for i in inv.instances.iter().filter(|i| i.iam_enabled) {
        add(&i.address);
    }
    hosts
}

/// Whether we are root, asked the way pg.rs does (the owner of a file we just made), so
/// no libc binding is needed.
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    tempfile::tempfile()
        .and_then(|f| f.metadata())
        .is_ok_and(|m| m.uid() == 0)
}

/// Host names of the endpoints with IAM auth off: the gate has them on its certificate (TLS
/// works, as it does with a real instance) but refuses any token as a password.
pub fn iam_off_hosts(inv: &Inventory) -> Vec<String> {
    let proxies = inv.proxies.iter().filter(|p| p.iam_auth == "DISABLED");
    let clusters = inv.clusters.iter().filter(|c| !c.iam_enabled);
    let instances = inv.instances.iter().filter(|i| !i.iam_enabled);
    proxies
        .map(|p| p.endpoint.clone())
        .chain(clusters.flat_map(|c| [c.endpoint.clone(), c.reader_endpoint.clone()]))
        .chain(instances.map(|i| i.address.clone()))
        .filter(|h| !h.is_empty())
        .collect()
}

fn is_scrubbed(name: &str) -> bool {
    SCRUBBED_PREFIXES.iter().any(|p| name.starts_with(p)) || SCRUBBED_NAMES.contains(&name)
}

/// Adds what to do next to a PostgreSQL start-up failure that doesn't already say it.
fn explain_pg_failure(e: anyhow::Error) -> anyhow::Error {
    let text = format!("{e:#}");
    let hint = if text.contains("apt-get install") || text.contains("RDSIAM_PG_BIN") {
        // pg.rs's own messages for missing server binaries already say what to do.
        return e.context("starting the throwaway PostgreSQL");
    } else if text.contains("running psql") {
        "psql (the PostgreSQL client) was not found beside the server binaries or on PATH: \
         `apt-get install postgresql-client` on Debian/Ubuntu, `brew install libpq` on macOS"
    } else if text.contains("runuser") || (text.contains("os error 2") && running_as_root()) {
        "running as root, PostgreSQL runs through `runuser` (util-linux, usually \
         /usr/sbin/runuser): install util-linux and make sure /usr/sbin is on PATH, or run the \
         sandbox as an ordinary user"
    } else {
        "the PostgreSQL log is above; a new start picks new random ports"
    };
    anyhow::anyhow!("starting the throwaway PostgreSQL: {text}\nhint: {hint}")
}

/// Quotes `s` for a POSIX shell: bare when that is unambiguous, else in single quotes.
pub fn sh_quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Writes `text` to stdout and flushes, ignoring a closed pipe (`rdsiam-sandbox | head`).
pub fn print_flush(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_round_trips_through_sh() {
        for s in [
            "plain",
            "",
            "with space",
            "it's",
            "$HOME",
            "a\"b",
            "ユーザー",
            "x\ny",
        ] {
            let q = sh_quote(OsStr::new(s));
            let out = Command::new("/bin/sh")
                .arg("-c")
                .arg(format!("printf %s {q}"))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), s, "{q}");
        }
        assert_eq!(sh_quote(OsStr::new("/tmp/x-1/ca.pem")), "/tmp/x-1/ca.pem");
    }

    #[test]
    fn article_hosts_are_the_iam_enabled_endpoints() {
        let hosts = iam_endpoint_hosts(&Inventory::article());
        assert_eq!(
            hosts,
            [
                "postgresqlproxy.proxy-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com",
                "databasecluster.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com",
                "databasecluster.cluster-ro-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com",
                "databasecluster-writer.c1a2b3c4d5e6.us-east-1.rds.amazonaws.com",
            ]
        );
        assert_eq!(
            iam_off_hosts(&Inventory::article()),
            ["legacy-reporting.c1a2b3c4d5e6.us-east-1.rds.amazonaws.com"]
        );
    }

    #[test]
    fn starts_connects_through_the_gate_and_cleans_up() {
        let sb = Sandbox::start(None).unwrap();
        let dir = sb.dir().to_path_buf();
        assert!(sb.ca_file().is_file());
        // A real psql, with the sandbox's environment plus what `rdsiam psql` would add.
        let mut cmd = Command::new(sb.pg().psql_path());
        sb.apply(&mut cmd);
        cmd.env("PGHOST", &sb.accepted_hosts()[0])
            .env("PGHOSTADDR", "127.0.0.1")
            .env("PGPORT", sb.gate().port().to_string())
            .env("PGUSER", "iamuserapp")
            .env("PGDATABASE", "app")
            .env("PGSSLMODE", "verify-full")
            .env("PGPASSWORD", sb.gate().token_for("iamuserapp"))
            .args(["-XtAc", "select current_user"])
            .stdin(Stdio::null());
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "iamuserapp");
        let exports = sb.shell_exports();
        assert!(exports.contains("export AWS_ENDPOINT_URL_RDS=http://127.0.0.1:"));
        assert!(!exports.contains("export HOME="));
        let data = sb.pg().data_dir().to_path_buf();
        drop(sb);
        assert!(!dir.exists(), "the sandbox dir is removed");
        assert!(!data.exists(), "PostgreSQL's dir is removed");
    }
}
