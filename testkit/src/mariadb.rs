//! A throwaway MariaDB server whose IAM users are checked the way RDS checks them: by the
//! server, with the token as a cleartext password.
//!
//! Like [`crate::pg`]: a fresh datadir (`mariadb-install-db`) in a temp dir, a random port on
//! 127.0.0.1, the unix socket in the temp dir, TLS with a certificate from a [`TestCa`] whose
//! SANs are `localhost`, `127.0.0.1` and [`MYSQL_PROXY_HOST`] (what the RDS API test server
//! calls `MySqlProxy`). RDS's `AWSAuthenticationPlugin` is played by MariaDB's PAM plugin with
//! `pam_use_cleartext_plugin=ON` (so clients send the password as `mysql_clear_password`, as
//! for RDS): each IAM user is `IDENTIFIED VIA pam USING '<service>'`, and the service runs
//! `pam_exec.so expose_authtok` on `rdsiam-pam-verify` (this crate's binary), which verifies
//! the password with the gate's SigV4 verifier: host:port, DBUser = the PAM user, signed with
//! the test secret, not expired. So a bad token is refused by the server (ERROR 1045).
//!
//! PAM reads services only from /etc/pam.d, and each server's service names its own port, so
//! the harness writes `/etc/pam.d/rdsiam-test-<tag>` itself and removes it on drop: that needs
//! root, which CI is (mariadbd then runs with `--user=root`). Not root: [`MariaDb::start`]
//! fails saying so, it never skips. Note that `pam_exec` hands over at most 512 bytes of a
//! password, which a token without a session token stays well under.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::ca::TestCa;
use crate::gate::TEST_REGION;
use crate::rdsapi::DNS_SUFFIX;

/// The database created at start-up, which the IAM users may use.
pub const APP_DB: &str = "app";
/// Users identified via the PAM service (IAM users): a plain one and one that needs encoding.
pub const IAM_USERS: &[&str] = &["iamuserapp", "jane@example.com"];
/// A user with an ordinary password (`mysql_native_password`): no token can log in as it.
pub const NATIVE_USER: &str = "nativeuser";
/// An IAM user with no privileges on [`APP_DB`].
pub const NO_DB_USER: &str = "nodbuser";

/// The host name of the RDS API test server's `MySqlProxy`, among the certificate's SANs.
pub fn mysql_proxy_host() -> String {
    format!("mysqlproxy.proxy-{DNS_SUFFIX}")
}

/// A running throwaway MariaDB; dropping it stops the server and removes its files.
pub struct MariaDb {
    root: Option<tempfile::TempDir>,
    port: u16,
    sock: PathBuf,
    ca: Arc<TestCa>,
    pam_service: String,
    server: Option<Child>,
    watchdog: Option<Child>,
}

impl std::fmt::Debug for MariaDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MariaDb")
            .field("port", &self.port)
            .field("pam_service", &self.pam_service)
            .finish_non_exhaustive()
    }
}

impl MariaDb {
    /// Starts a fresh server with a new test CA, accepting tokens signed for `localhost`,
    /// `127.0.0.1` or [`mysql_proxy_host`] on its own port or on 3306 (what the RDS API says,
    /// for logins through `--via`).
    pub fn start() -> Result<MariaDb> {
        Self::start_with_ca(Arc::new(TestCa::new()?))
    }

    pub fn start_with_ca(ca: Arc<TestCa>) -> Result<MariaDb> {
        if !is_root() {
            bail!(
                "the MariaDB test server needs root: its PAM service goes in /etc/pam.d (CI runs \
                 as root; run the tests as root, e.g. in a container)"
            );
        }
        for program in ["mariadbd", "mariadb-install-db", "mariadb"] {
            if which(program).is_none() {
                bail!(
                    "`{program}` not found: install MariaDB with `apt-get install mariadb-server \
                     mariadb-client` (scripts/test does it when run as root)"
                );
            }
        }
        let verifier = verifier()?;
        // Short, because the unix socket path must fit in 108 bytes.
        let root = tempfile::Builder::new()
            .prefix("rdsiam-mdb-")
            .tempdir_in("/tmp")
            .context("creating the MariaDB temp dir")?;
        let tag = root
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("x")
            .trim_start_matches("rdsiam-mdb-")
            .to_owned();
        let data = root.path().join("data");
        let sock = root.path().join("sock");
        let mut db = MariaDb {
            root: Some(root),
            port: 0,
            sock,
            ca,
            // Linux-PAM looks services up in lower case.
            pam_service: format!("rdsiam-test-{}", tag.to_ascii_lowercase()),
            server: None,
            watchdog: None,
        };
        let dir = db.dir().to_path_buf();
        run(
            Command::new(which("mariadb-install-db").unwrap_or_default())
                .arg("--no-defaults")
                .arg("--user=root")
                .arg(format!("--datadir={}", data.display()))
                .args(["--auth-root-authentication-method=normal", "--skip-test-db"]),
            "mariadb-install-db",
        )?;
        let (cert, key) = db
            .ca
            .issue(&["localhost", "127.0.0.1", &mysql_proxy_host()])?;
        std::fs::write(dir.join("server.crt"), cert)?;
        std::fs::write(dir.join("server.key"), key)?;
        db.ca.write_ca(dir.join("ca.crt"))?;
        let mut last = None;
        for _ in 0..3 {
            let port = free_port()?;
            db.port = port;
            db.write_pam(&verifier)?;
            match db.start_server(&data) {
                Ok(()) => {
                    db.spawn_watchdog()?;
                    db.setup()?;
                    return Ok(db);
                }
                Err(err) => {
                    db.stop();
                    if !db.log().contains("Address already in use") {
                        return Err(err);
                    }
                    last = Some(err);
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("MariaDB did not start")))
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The unix socket.
    pub fn socket(&self) -> &Path {
        &self.sock
    }

    /// The CA that issued the server's certificate.
    pub fn ca(&self) -> &Arc<TestCa> {
        &self.ca
    }

    /// The PAM service the IAM users are identified via.
    pub fn pam_service(&self) -> &str {
        &self.pam_service
    }

    /// The verifier's verdicts, one line each (`USER ok` or `USER REASON`), never a token.
    pub fn verdicts(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir().join("verdicts.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The server's error log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("server.log")).unwrap_or_default()
    }

    fn dir(&self) -> &Path {
        self.root.as_ref().expect("root is set").path()
    }

    /// Runs `sql` as root over the unix socket (batch mode, tab-separated, no headers) and
    /// returns stdout without its trailing newline.
    pub fn sql(&self, sql: &str) -> Result<String> {
        let out = Command::new("mariadb")
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.sock.display()))
            .args(["-uroot", "-N", "-B", "-e", sql])
            .stdin(Stdio::null())
            .output()
            .context("running mariadb")?;
        if !out.status.success() {
            bail!(
                "mariadb failed ({}): {}\nSQL: {sql}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let mut s = String::from_utf8(out.stdout).context("mariadb printed non-UTF-8")?;
        while s.ends_with('\n') {
            s.pop();
        }
        Ok(s)
    }

    fn write_pam(&self, verifier: &Path) -> Result<()> {
        let hosts = format!("localhost,127.0.0.1,{}", mysql_proxy_host());
        let text = format!(
            "# rdsiam testkit: MariaDB test server on port {port}; removed when it stops\n\
             auth required pam_exec.so expose_authtok quiet {verifier} --hosts {hosts} --ports {port},3306 --region {TEST_REGION} --log {log}\n\
             account required pam_permit.so\n",
            port = self.port,
            verifier = verifier.display(),
            log = self.dir().join("verdicts.log").display(),
        );
        std::fs::write(self.pam_path(), text).context("writing the PAM service in /etc/pam.d")
    }

    fn pam_path(&self) -> PathBuf {
        Path::new("/etc/pam.d").join(&self.pam_service)
    }

    fn start_server(&mut self, data: &Path) -> Result<()> {
        let dir = self.dir().to_path_buf();
        let log = dir.join("server.log");
        let _ = std::fs::remove_file(&log);
        let mariadbd = which("mariadbd").unwrap_or_else(|| PathBuf::from("mariadbd"));
        let child = Command::new(mariadbd)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", self.sock.display()))
            .arg(format!("--port={}", self.port))
            .arg(format!("--pid-file={}", dir.join("pid").display()))
            .arg(format!("--log-error={}", log.display()))
            .arg(format!("--ssl-ca={}", dir.join("ca.crt").display()))
            .arg(format!("--ssl-cert={}", dir.join("server.crt").display()))
            .arg(format!("--ssl-key={}", dir.join("server.key").display()))
            .args([
                "--user=root",
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--plugin-load-add=auth_pam",
                "--pam-use-cleartext-plugin=ON",
                "--innodb-buffer-pool-size=16M",
                "--innodb-log-file-size=8M",
                "--max-connections=100",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting mariadbd")?;
        self.server = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(child) = self.server.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "mariadbd exited ({status})\n--- server log ---\n{}",
                    self.log()
                );
            }
            if self.log().contains("ready for connections") && self.sql("SELECT 1").is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "mariadbd not ready in 60s\n--- server log ---\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A shell that waits for our end of its stdin to close (when this process exits, however
    /// it exits: a shared server in a `static` is never dropped) and then stops the server and
    /// removes its dir and PAM service.
    fn spawn_watchdog(&mut self) -> Result<()> {
        let pid = self.server.as_ref().map(Child::id).unwrap_or_default();
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(
                "trap '' INT HUP; while read -r _; do :; done; \
                 kill -TERM \"$1\" 2>/dev/null; sleep 2; kill -KILL \"$1\" 2>/dev/null; \
                 rm -rf \"$2\" \"$3\"",
            )
            .arg("rdsiam-mariadb-watchdog")
            .arg(pid.to_string())
            .arg(self.dir())
            .arg(self.pam_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the cleanup watchdog")?;
        self.watchdog = Some(child);
        Ok(())
    }

    fn setup(&self) -> Result<()> {
        let service = &self.pam_service;
        let mut sql = format!("CREATE DATABASE {APP_DB};\n");
        for user in IAM_USERS {
            sql.push_str(&format!(
                "CREATE USER '{user}'@'%' IDENTIFIED VIA pam USING '{service}';\n\
                 GRANT ALL ON {APP_DB}.* TO '{user}'@'%';\n"
            ));
        }
        sql.push_str(&format!(
            "CREATE USER '{NO_DB_USER}'@'%' IDENTIFIED VIA pam USING '{service}';\n\
             CREATE USER '{NATIVE_USER}'@'%' IDENTIFIED BY 'not-a-token';\n\
             GRANT ALL ON {APP_DB}.* TO '{NATIVE_USER}'@'%';\n"
        ));
        self.sql(&sql)
            .map_err(|e| anyhow!("{e:#}\n--- server log ---\n{}", self.log()))?;
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.server.take() {
            // SIGTERM for a clean shutdown, then SIGKILL if it lingers.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.stop();
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        let _ = std::fs::remove_file(self.pam_path());
        if let Some(root) = self.root.take() {
            let _ = root.close();
        }
    }
}

/// `rdsiam-pam-verify`: `RDSIAM_PAM_VERIFY`, else beside the running test binary (cargo puts
/// bins in `target/debug`, tests in `target/debug/deps`).
fn verifier() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("RDSIAM_PAM_VERIFY") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().context("finding the test binary")?;
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join("rdsiam-pam-verify");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "rdsiam-pam-verify is not built: run `cargo build -p rdsiam-testkit --bins` first \
         (scripts/test does), or set RDSIAM_PAM_VERIFY to it"
    )
}

/// /proc/self belongs to the process's effective uid.
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
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
    Ok(())
}
