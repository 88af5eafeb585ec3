//! A hermetic environment for running the `rdsiam` binary: temp HOME, static
//! credentials, no instance metadata, and none of the caller's AWS or PG
//! variables.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rdsiam_testkit::gate::{TEST_ACCESS_KEY_ID, TEST_REGION, TEST_SECRET_ACCESS_KEY};
use tempfile::TempDir;

pub struct Env {
    pub home: TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            home: tempfile::tempdir().expect("temp HOME"),
        }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// `rdsiam` with static test credentials and no region.
    pub fn cmd(&self) -> Command {
        let mut cmd = self.bare();
        cmd.env("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", TEST_SECRET_ACCESS_KEY);
        cmd
    }

    /// `rdsiam` with nothing from the caller's environment but PATH.
    pub fn bare(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rdsiam"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .env("XDG_CONFIG_HOME", self.home().join(".config"))
            .env("XDG_CACHE_HOME", self.home().join(".cache"))
            .env("XDG_DATA_HOME", self.home().join(".local/share"))
            .env("AWS_CONFIG_FILE", self.home().join(".aws/config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.home().join(".aws/credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env(
                "RDSIAM_CONFIG",
                self.home().join("no-such-rdsiam-config.toml"),
            );
        cmd
    }

    /// Write `~/.aws/NAME`.
    pub fn aws_file(&self, name: &str, text: &str) -> PathBuf {
        let dir = self.home().join(".aws");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

pub const REGION: &str = TEST_REGION;

/// The result of one run, with its text decoded.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(cmd: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("rdsiam runs");
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8(stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(stderr).expect("stderr is UTF-8"),
    };
    // No command may ever panic or dump Rust debug output at a user.
    assert!(!run.stderr.contains("panicked"), "panic: {}", run.stderr);
    assert!(
        !run.stderr.contains("RUST_BACKTRACE"),
        "panic: {}",
        run.stderr
    );
    assert!(
        !run.stderr.contains(" { "),
        "debug dump on stderr: {}",
        run.stderr
    );
    run
}

/// Run and expect exit `code`, returning the run for more checks.
#[track_caller]
pub fn expect(cmd: &mut Command, code: i32) -> Run {
    let run = run(cmd);
    assert_eq!(
        run.code, code,
        "exit code\nstdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    if code != 0 {
        assert!(run.stderr.starts_with("rdsiam: "), "stderr: {}", run.stderr);
    }
    run
}

/// The X-Amz-Date of a token, as unix seconds.
pub fn token_time(token: &str) -> i64 {
    let date = token
        .split('&')
        .find_map(|p| p.strip_prefix("X-Amz-Date="))
        .expect("token has X-Amz-Date");
    let dt = aws_smithy_types::DateTime::from_str(
        &format!(
            "{}-{}-{}T{}:{}:{}Z",
            &date[0..4],
            &date[4..6],
            &date[6..8],
            &date[9..11],
            &date[11..13],
            &date[13..15]
        ),
        aws_smithy_types::date_time::Format::DateTime,
    )
    .unwrap();
    dt.secs()
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// A free port whose next one is free too, below Linux's ephemeral range
/// (32768–60999), so no test's client socket takes `port + 1` meanwhile
/// (the proxy counts ports up from `--listen`).
pub fn closed_port_pair() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = (std::process::id() % 4000) as u16 * 2;
    loop {
        let port = 20000 + (seed + NEXT.fetch_add(2, Ordering::Relaxed)) % 12000;
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 1) {
            return port;
        }
    }
}

/// Compare `generated` with the committed file at `path` (relative to the
/// repository), or rewrite the file when `RDSIAM_BLESS` is set. `bless` is
/// the command that refreshes it, for the failure message.
#[track_caller]
pub fn compare_or_bless(path: &str, generated: &str, bless: &str) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    if std::env::var_os("RDSIAM_BLESS").is_some() {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, generated).unwrap();
        return;
    }
    let Ok(committed) = std::fs::read_to_string(&file) else {
        panic!("{path} is missing: create it with `{bless}`, review it and commit it\n{generated}");
    };
    if committed != generated {
        let (old, new) = (committed.lines(), generated.lines());
        let at = old
            .clone()
            .zip(new.clone())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| old.clone().count().min(new.clone().count()));
        panic!(
            "{path} is stale: refresh it with `{bless}`, review the diff and commit it\n\
             first difference, line {}:\n- {}\n+ {}",
            at + 1,
            old.clone().nth(at).unwrap_or("(end of file)"),
            new.clone().nth(at).unwrap_or("(end of file)"),
        );
    }
}

/// Wait (up to 20 s) until a query that is exactly `sql` runs on the throwaway server.
#[track_caller]
pub fn wait_running(sql: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let n = crate::db::postgres()
            .psql_super(
                "app",
                &format!(
                    "select count(*) from pg_stat_activity where state = 'active' and query = '{}'",
                    sql.replace('\'', "''")
                ),
            )
            .unwrap();
        if n.trim() != "0" {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "`{sql}` never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Run `cmd` to its end like `Command::output`, but kill it after `secs`.
#[track_caller]
pub fn output_within(cmd: &mut Command, secs: u64) -> Output {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the command starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("wait");
            panic!(
                "still running after {secs}s, killed; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("wait")
}
