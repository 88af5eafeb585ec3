//! `rdsiam proxy` through the IAM gate and the throwaway PostgreSQL: psql
//! over TCP and a unix socket with no password anywhere, the pinned user,
//! PGOPTIONS against an RDS Proxy, token reuse and renewal, 200 clients at
//! once, cancel, the gate's faults, the drain on SIGTERM, and the health
//! and metrics endpoints.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdsiam_testkit::gate::{Fault, Gate, PROXY_ENDPOINT_HOST};
use rdsiam_testkit::rdsapi::{Inventory, RdsApi};

use crate::db::{ca_file, gate, gate_for, postgres};
use crate::support::{Env, REGION, closed_port, closed_port_pair, output_within, wait_running};

/// A running `rdsiam proxy`; killed when dropped.
pub struct Proxy {
    pub child: Child,
    pub ready: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Proxy {
    /// Start `cmd` (an `rdsiam proxy …` command) and wait for `listeners` ready lines.
    pub fn start(mut cmd: Command, listeners: usize) -> Proxy {
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = cmd.spawn().expect("rdsiam proxy starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut ready = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while ready.len() < listeners {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => ready.push(line),
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "the proxy did not get ready; stderr:\n{}",
                        stderr.lock().unwrap()
                    );
                }
            }
        }
        Proxy {
            child,
            ready,
            stderr,
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Wait up to 20 s for stderr to contain `text` (log lines reach it
    /// through a queue, and some are written after the client has its
    /// answer), then give all of it.
    #[track_caller]
    pub fn wait_log(&self, text: &str) -> String {
        self.wait_log_times(text, 1)
    }

    /// [`Proxy::wait_log`] for `times` occurrences of `text`.
    #[track_caller]
    pub fn wait_log_times(&self, text: &str, times: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = self.stderr();
            if log.matches(text).count() >= times {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "not {times} × `{text}` in the log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name}");
    }

    /// Wait up to `secs` for the proxy to exit.
    pub fn wait_exit(&mut self, secs: u64) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `rdsiam proxy --host localhost --port <gate> --region R --ca-bundle <ca>
/// --listen 127.0.0.1:<free>` plus `extra`.
pub fn proxy_cmd(env: &Env, gate: &Gate, extra: &[&str]) -> (Command, u16) {
    let port = closed_port();
    let mut cmd = env.cmd();
    cmd.args([
        "proxy",
        "--host",
        "localhost",
        "--port",
        &gate.port().to_string(),
        "--region",
        REGION,
    ]);
    if !extra.contains(&"--listen") {
        cmd.args(["--listen", &format!("127.0.0.1:{port}")]);
    }
    cmd.arg("--ca-bundle").arg(ca_file(env, gate)).args(extra);
    (cmd, port)
}

/// psql with nothing from the caller's environment (no PGPASSWORD) but PATH.
pub fn psql(env: &Env) -> Command {
    let mut cmd = Command::new(postgres().psql_path());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.home())
        .env("PSQLRC", "/dev/null")
        .stdin(Stdio::null());
    cmd
}

fn conninfo(port: u16, user: &str) -> String {
    format!(
        "host=127.0.0.1 port={port} user='{user}' dbname=app sslmode=disable connect_timeout=20"
    )
}

/// `psql -tAc SQL` through the proxy at `port`; (exit code, stdout, stderr).
fn query(env: &Env, port: u16, user: &str, sql: &str) -> (i32, String, String) {
    // psql's connect_timeout does not bound a stalled query: kill it.
    let out = output_within(psql(env).args([&conninfo(port, user), "-XtAc", sql]), 60);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// GET `path` from the HTTP endpoint: (status, body).
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A metric's value in Prometheus text (`name{labels} value`).
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn psql_over_tcp_and_unix_socket_signed_for_the_real_endpoint() {
    let env = Env::new();
    let api = RdsApi::start(Inventory::article()).unwrap();
    let endpoint = Inventory::article().proxies[0].endpoint.clone();
    assert_eq!(endpoint, PROXY_ENDPOINT_HOST);
    // The gate accepts only tokens signed for the RDS Proxy's own name and port.
    let gate = gate_for(&endpoint, Some(5432));
    let port = closed_port();
    let dir = env.home().join("sock");
    let http = closed_port();
    let mut cmd = env.cmd();
    cmd.args([
        "proxy",
        "--proxy",
        "PostgreSqlProxy",
        "-U",
        "iamuserapp",
        "-d",
        "app",
        "--region",
        REGION,
        "--endpoint-url",
        &api.url(),
        "--via",
        &format!("127.0.0.1:{}", gate.port()),
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--http-address",
        &format!("127.0.0.1:{http}"),
    ])
    .arg("--ca-bundle")
    .arg(ca_file(&env, &gate))
    .arg("--unix-socket")
    .arg(&dir);
    let proxy = Proxy::start(cmd, 2);
    assert!(
        proxy.ready[0].contains(&format!(
            "psql \"host=127.0.0.1 port={port} user=iamuserapp dbname=app sslmode=disable\""
        )),
        "{:?}",
        proxy.ready
    );
    assert!(proxy.ready[1].contains(&format!("host={} port={port}", dir.display())));

    let (code, out, err) = query(&env, port, "iamuserapp", "select current_user");
    assert_eq!((code, out.as_str()), (0, "iamuserapp"), "{err}");
    // Over the socket, as with any PostgreSQL: psql -h DIR -p PORT.
    let out = psql(&env)
        .arg("-h")
        .arg(&dir)
        .args([
            "-p",
            &port.to_string(),
            "-U",
            "iamuserapp",
            "-d",
            "app",
            "-XtAc",
        ])
        .arg("select current_database()")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "app");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        gate.events()
            .iter()
            .filter(|e| *e == "accepted user=iamuserapp")
            .count(),
        2,
        "{:?}",
        gate.events()
    );
    // Two logins, one token.
    let (_, metrics) = http_get(http, "/metrics");
    assert_eq!(
        metric(&metrics, "rdsiam_proxy_tokens_minted_total"),
        Some(1.0),
        "{metrics}"
    );
    // The close lines come once the proxy sees each client go.
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.stderr().matches("rdsiam: proxy: close ").count() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let stderr = proxy.stderr();
    assert_eq!(
        stderr.matches("rdsiam: proxy: open ").count(),
        2,
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("rdsiam: proxy: close ").count(),
        2,
        "{stderr}"
    );
    assert!(stderr.contains("user=iamuserapp database=app"), "{stderr}");
    assert!(!stderr.contains("X-Amz"), "{stderr}");
    assert!(!metrics.contains("X-Amz"));
}

#[test]
fn pinned_user_and_rds_proxy_options_are_refused_clearly() {
    let env = Env::new();
    let api = RdsApi::start(Inventory::article()).unwrap();
    let gate = gate_for(PROXY_ENDPOINT_HOST, Some(5432));
    let port = closed_port();
    let mut cmd = env.cmd();
    cmd.args([
        "proxy",
        "PostgreSqlProxy", // not in the config file: an RDS name
        "-U",
        "iamuserapp",
        "--region",
        REGION,
        "--endpoint-url",
        &api.url(),
        "--via",
        &format!("127.0.0.1:{}", gate.port()),
        "--listen",
        &format!("127.0.0.1:{port}"),
    ])
    .arg("--ca-bundle")
    .arg(ca_file(&env, &gate));
    let proxy = Proxy::start(cmd, 1);
    let (code, _, err) = query(&env, port, "postgres", "select 1");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("this proxy logs in only as `iamuserapp`, not `postgres`"),
        "{err}"
    );
    let out = psql(&env)
        .env("PGOPTIONS", "-c statement_timeout=5s")
        .args([&conninfo(port, "iamuserapp"), "-XtAc", "select 1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("RDS Proxy refuses the `options` startup parameter"),
        "{err}"
    );
    assert!(err.contains("unset PGOPTIONS"), "{err}");
    // Neither reached the gate, and the proxy keeps serving.
    assert!(gate.events().is_empty(), "{:?}", gate.events());
    let (code, out, err) = query(&env, port, "iamuserapp", "select 7");
    assert_eq!((code, out.as_str()), (0, "7"), "{err}");
    proxy.wait_log("outcome=rejected");
}

#[test]
fn an_unknown_bare_name_is_an_aws_error_with_a_suggestion() {
    let env = Env::new();
    let api = RdsApi::start(Inventory::article()).unwrap();
    let run = crate::support::expect(
        env.cmd().args([
            "proxy",
            "PostgresProxy",
            "-U",
            "iamuserapp",
            "--region",
            REGION,
            "--endpoint-url",
            &api.url(),
            "--listen",
            &format!("127.0.0.1:{}", closed_port()),
        ]),
        3,
    );
    assert!(
        run.stderr.contains("did you mean `PostgreSqlProxy`?"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_port_in_use_exits_4_naming_another() {
    let env = Env::new();
    let gate = gate();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let (mut cmd, _) = proxy_cmd(&env, &gate, &["-U", "iamuserapp", "--listen", &listen]);
    let run = crate::support::expect(&mut cmd, 4);
    assert!(
        run.stderr
            .contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("try --listen 127.0.0.1:"),
        "{}",
        run.stderr
    );
    let run = crate::support::expect(&mut proxy_cmd(&env, &gate, &["--listen", "none"]).0, 2);
    assert!(
        run.stderr.contains("nothing to listen on"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_unix_socket_is_ours_alone_and_only_a_stale_one_is_replaced() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let env = Env::new();
    let gate = gate();
    // A directory others can enter, as a shared --unix-socket DIR may be.
    let dir = env.home().join("shared");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (mut cmd, port) = proxy_cmd(&env, &gate, &["-U", "iamuserapp"]);
    cmd.arg("--unix-socket").arg(&dir);
    let path = dir.join(format!(".s.PGSQL.{port}"));

    // Not a socket: left alone, and said so.
    std::fs::write(&path, "keep me").unwrap();
    let mut refused = Proxy::start(cmd, 0);
    assert_eq!(refused.wait_exit(20), Some(2), "{}", refused.stderr());
    // The stderr reader may trail the exit by a moment.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        refused
            .stderr()
            .contains("a file that is not a socket is in the way"),
        "{}",
        refused.stderr()
    );
    let (mut cmd, _) = proxy_cmd(
        &env,
        &gate,
        &["-U", "iamuserapp", "--listen", &format!("127.0.0.1:{port}")],
    );
    cmd.arg("--unix-socket").arg(&dir);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
    std::fs::remove_file(&path).unwrap();

    // A socket nobody listens on any more is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let proxy = Proxy::start(cmd, 2);
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    drop(proxy);
}

#[test]
fn a_bad_test_token_lifetime_is_a_usage_error_with_a_hint() {
    let env = Env::new();
    let gate = gate();
    let (mut cmd, _) = proxy_cmd(&env, &gate, &["-U", "iamuserapp"]);
    cmd.env("RDSIAM_TEST_TOKEN_LIFETIME", "forever");
    let mut proxy = Proxy::start(cmd, 0);
    assert_eq!(proxy.wait_exit(20), Some(2), "{}", proxy.stderr());
    std::thread::sleep(Duration::from_millis(200));
    let stderr = proxy.stderr();
    assert!(
        stderr.contains("RDSIAM_TEST_TOKEN_LIFETIME=forever is not 1..900 seconds"),
        "{stderr}"
    );
    assert!(
        stderr.contains("unset RDSIAM_TEST_TOKEN_LIFETIME"),
        "{stderr}"
    );
}

#[test]
fn tokens_are_renewed_before_the_gate_would_refuse_them() {
    let env = Env::new();
    let gate = gate();
    let http = closed_port();
    let (mut cmd, port) = proxy_cmd(
        &env,
        &gate,
        &[
            "-U",
            "iamuserapp",
            "--http-address",
            &format!("127.0.0.1:{http}"),
        ],
    );
    // Tokens "live" 3 s for the proxy (renewed after 2 s), and the gate's
    // clock runs 896 s ahead, so it refuses any token older than 4 s: only a
    // renewed token gets the second login through.
    cmd.env("RDSIAM_TEST_TOKEN_LIFETIME", "3");
    gate.set_clock_offset(896);
    let _proxy = Proxy::start(cmd, 1);
    let (code, _, err) = query(&env, port, "iamuserapp", "select 1");
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = query(&env, port, "iamuserapp", "select 1");
    assert_eq!(code, 0, "{err}");
    let (_, metrics) = http_get(http, "/metrics");
    assert_eq!(
        metric(&metrics, "rdsiam_proxy_tokens_minted_total"),
        Some(1.0)
    );
    std::thread::sleep(Duration::from_millis(4500));
    let (code, out, err) = query(&env, port, "iamuserapp", "select 'renewed'");
    assert_eq!((code, out.as_str()), (0, "renewed"), "{err}");
    let (_, metrics) = http_get(http, "/metrics");
    assert_eq!(
        metric(&metrics, "rdsiam_proxy_tokens_minted_total"),
        Some(2.0)
    );
    assert!(
        !gate.events().iter().any(|e| e.contains("expired")),
        "{:?}",
        gate.events()
    );
}

#[test]
fn expiring_credentials_are_renewed_before_minting() {
    let env = Env::new();
    let gate = gate();
    // credential_process hands out credentials that expire in 4 minutes
    // (inside the 5-minute renewal window) and counts its calls.
    let count = env.home().join("calls");
    let script = env.home().join("creds.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho x >> '{}'\nexp=$(date -u -d '+4 min' +%Y-%m-%dT%H:%M:%SZ)\nprintf '{{\"Version\":1,\"AccessKeyId\":\"{}\",\"SecretAccessKey\":\"{}\",\"Expiration\":\"%s\"}}' \"$exp\"\n",
            count.display(),
            rdsiam_testkit::gate::TEST_ACCESS_KEY_ID,
            rdsiam_testkit::gate::TEST_SECRET_ACCESS_KEY,
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    env.aws_file(
        "config",
        &format!("[default]\ncredential_process = {}\n", script.display()),
    );
    let http = closed_port();
    let (cmd, port) = proxy_cmd(
        &env,
        &gate,
        &[
            "-U",
            "iamuserapp",
            "--http-address",
            &format!("127.0.0.1:{http}"),
        ],
    );
    // No keys in the environment: the profile's process is the only source.
    let mut cmd = cmd;
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    let _proxy = Proxy::start(cmd, 1);
    let calls = || {
        std::fs::read_to_string(&count)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let at_start = calls();
    assert!(at_start >= 1);
    let (code, _, err) = query(&env, port, "iamuserapp", "select 1");
    assert_eq!(code, 0, "{err}");
    assert!(
        calls() > at_start,
        "credentials were not renewed before minting"
    );
    let (_, metrics) = http_get(http, "/metrics");
    let expiry = metric(
        &metrics,
        "rdsiam_proxy_credentials_expiry_timestamp_seconds",
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(expiry > now && expiry < now + 300.0, "{expiry} vs {now}");
}

#[test]
fn two_hundred_clients_at_once_share_one_token_under_the_rate_cap() {
    let env = Env::new();
    let gate = gate();
    let http = closed_port();
    let (cmd, port) = proxy_cmd(
        &env,
        &gate,
        &[
            "-U",
            "iamuserapp",
            "--http-address",
            &format!("127.0.0.1:{http}"),
            // Low enough that the shared test server (60 connections)
            // never holds too many of these short sessions at once.
            "--max-connection-rate",
            "40",
            "--log-format",
            "json",
        ],
    );
    let proxy = Proxy::start(cmd, 1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let results = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let conninfo =
                format!("host=127.0.0.1 port={port} user=iamuserapp dbname=app connect_timeout=30");
            tasks.push(tokio::spawn(async move {
                let (client, conn) =
                    tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await?;
                let task = tokio::spawn(conn);
                let row = client.query_one("select 1::int", &[]).await?;
                drop(client);
                let _ = task.await;
                Ok::<i32, tokio_postgres::Error>(row.get(0))
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let elapsed = started.elapsed();
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| format!("{e:?}")))
        .collect();
    assert!(
        failed.is_empty(),
        "{} failed, e.g. {:?}",
        failed.len(),
        failed.first()
    );
    // 200 logins at 40/s: the last one waits about five seconds.
    assert!(elapsed >= Duration::from_millis(4900), "{elapsed:?}");
    // The proxy notices the last clients' goodbyes a moment later.
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let (_, metrics) = http_get(http, "/metrics");
        if metric(&metrics, "rdsiam_proxy_connections_open") == Some(0.0)
            || Instant::now() > deadline
        {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        metric(&metrics, "rdsiam_proxy_tokens_minted_total"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "rdsiam_proxy_connections_total{outcome=\"ok\"}"),
        Some(200.0)
    );
    assert_eq!(
        metric(&metrics, "rdsiam_proxy_login_seconds_count"),
        Some(200.0)
    );
    // JSON logs: one object per line, an open and a close per connection.
    let stderr = proxy.stderr();
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    assert_eq!(events.iter().filter(|e| e["event"] == "open").count(), 200);
    assert_eq!(events.iter().filter(|e| e["event"] == "close").count(), 200);
}

#[test]
fn max_connections_answers_53300() {
    let env = Env::new();
    let gate = gate();
    let (cmd, port) = proxy_cmd(&env, &gate, &["-U", "iamuserapp", "--max-connections", "1"]);
    let _proxy = Proxy::start(cmd, 1);
    let mut first = psql(&env)
        .args([&conninfo(port, "iamuserapp"), "-XtAc", "select pg_sleep(3)"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let (code, _, err) = query(&env, port, "iamuserapp", "select 1");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("too many connections: the limit is 1 (--max-connections)"),
        "{err}"
    );
    assert!(first.wait().unwrap().success());
}

#[test]
fn cancel_through_the_proxy_stops_the_query() {
    let env = Env::new();
    let gate = gate();
    let (cmd, port) = proxy_cmd(&env, &gate, &["-U", "iamuserapp"]);
    let proxy = Proxy::start(cmd, 1);
    let child = psql(&env)
        .args([&conninfo(port, "iamuserapp"), "-Xc", "select pg_sleep(31)"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_running("select pg_sleep(31)");
    let interrupted = Instant::now();
    // psql sends a CancelRequest on SIGINT, as on Ctrl-C.
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    assert!(
        interrupted.elapsed() < Duration::from_secs(3),
        "{:?}",
        interrupted.elapsed()
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("canceling statement due to user request"),
        "{err}"
    );
    // The proxy logs the cancel once the server has closed the cancel
    // connection, which can be after psql has its answer.
    proxy.wait_log("rdsiam: proxy: cancel ");
}

#[test]
fn a_cancel_to_a_silent_server_gives_up_after_the_connect_timeout() {
    let env = Env::new();
    let gate = gate();
    let (cmd, port) = proxy_cmd(&env, &gate, &["-U", "iamuserapp", "--connect-timeout", "2"]);
    let proxy = Proxy::start(cmd, 1);
    let child = start_running(&env, port, "select pg_sleep(6)");
    // From now on the server accepts and never answers the SSLRequest; the
    // cancel (a real key: guessed ones are never sent) meets that.
    gate.set_fault(Fault::StallHandshake);
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !proxy.stderr().contains("rdsiam: proxy: cancel ") {
        assert!(
            Instant::now() < deadline,
            "the cancel never gave up: {}",
            proxy.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(proxy.stderr().contains("timed out"), "{}", proxy.stderr());
    gate.set_fault(Fault::None);
    let _ = child.wait_with_output();
}

/// psql running `sql` as iamuserapp through the proxy at `port`, returned
/// once the server runs it.
fn start_running(env: &Env, port: u16, sql: &str) -> Child {
    let child = psql(env)
        .args([&conninfo(port, "iamuserapp"), "-XtAc", sql])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_running(sql);
    child
}

#[test]
fn gate_faults_reach_the_client_and_spare_the_others() {
    let env = Env::new();
    let gate = gate();
    let (cmd, port) = proxy_cmd(&env, &gate, &["--connect-timeout", "2"]);
    // No user pinned: each client logs in as itself.
    let proxy = Proxy::start(cmd, 1);
    // A long session that must survive everything below.
    let mut bystander = psql(&env)
        .args([
            &conninfo(port, "iamuserapp"),
            "-XtAc",
            "select pg_sleep(4), 'alive'",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_running("select pg_sleep(4), 'alive'");

    // Refused login: a role without rds_iam gets the causes, as `check` shows them.
    let (code, _, err) = query(&env, port, "norights", "select 1");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("PAM authentication failed for user \"norights\""),
        "{err}"
    );
    assert!(err.contains("GRANT rds_iam TO \"norights\""), "{err}");

    gate.set_fault(Fault::StallHandshake);
    let (code, _, err) = query(&env, port, "iamuserapp", "select 1");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("rdsiam proxy: timed out after 2s in the TLS handshake with localhost:"),
        "{err}"
    );

    gate.set_fault(Fault::WrongCert);
    let (code, _, err) = query(&env, port, "iamuserapp", "select 1");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("certificate is not trusted"), "{err}");

    gate.set_fault(Fault::WrongHostCert);
    let (code, _, err) = query(&env, port, "iamuserapp", "select 1");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not name `localhost`"), "{err}");

    gate.set_fault(Fault::DropAfterBytes(600));
    let (code, _, err) = query(
        &env,
        port,
        "iamuserapp",
        "select repeat('x', 100) from generate_series(1, 1000)",
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("server closed the connection unexpectedly"),
        "{err}"
    );

    gate.set_fault(Fault::None);
    let out = bystander.wait().map(|_| ()).and_then(|()| {
        let mut s = String::new();
        bystander
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut s)
            .map(|_| s)
    });
    assert!(out.unwrap().contains("alive"));
    let (code, out, err) = query(&env, port, "iamuserapp", "select 'still serving'");
    assert_eq!((code, out.as_str()), (0, "still serving"), "{err}");
    let log = proxy.stderr();
    assert!(log.contains("outcome=refused"), "{log}");
    assert!(log.contains("outcome=failed"), "{log}");
}

#[test]
fn sigterm_drains_within_max_sigterm_delay_and_a_second_ends_it() {
    let env = Env::new();
    let gate = gate();
    let (cmd, port) = proxy_cmd(
        &env,
        &gate,
        &["-U", "iamuserapp", "--max-sigterm-delay", "5"],
    );
    let mut proxy = Proxy::start(cmd, 1);
    let running = start_running(&env, port, "select pg_sleep(1.5), 'finished'");
    proxy.signal("TERM");
    std::thread::sleep(Duration::from_millis(200));
    // No new connections once draining.
    let (code, _, _) = query(&env, port, "iamuserapp", "select 1");
    assert_eq!(code, 2);
    let out = running.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("finished"));
    assert_eq!(proxy.wait_exit(5), Some(0), "{}", proxy.stderr());

    // A second signal ends the drain at once.
    let (cmd, port) = proxy_cmd(
        &env,
        &gate,
        &["-U", "iamuserapp", "--max-sigterm-delay", "60"],
    );
    let mut proxy = Proxy::start(cmd, 1);
    let running = start_running(&env, port, "select pg_sleep(20)");
    proxy.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(proxy.child.try_wait().unwrap(), None, "still draining");
    let stopped = Instant::now();
    proxy.signal("TERM");
    assert_eq!(proxy.wait_exit(3), Some(0), "{}", proxy.stderr());
    assert!(stopped.elapsed() < Duration::from_secs(2));
    let out = running.wait_with_output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn health_endpoints_answer() {
    let env = Env::new();
    let gate = gate();
    let http = closed_port();
    let (cmd, _) = proxy_cmd(
        &env,
        &gate,
        &[
            "-U",
            "iamuserapp",
            "--http-address",
            &format!("127.0.0.1:{http}"),
        ],
    );
    let proxy = Proxy::start(cmd, 1);
    for path in ["/startup", "/liveness", "/readiness"] {
        assert_eq!(http_get(http, path), (200, "ok\n".to_owned()), "{path}");
    }
    let (status, body) = http_get(http, "/metrics");
    assert_eq!(status, 200);
    for name in [
        "rdsiam_proxy_connections_open 0",
        "rdsiam_proxy_tokens_minted_total 0",
        "# TYPE rdsiam_proxy_login_seconds histogram",
        "rdsiam_proxy_credentials_expiry_timestamp_seconds 0",
    ] {
        assert!(body.contains(name), "{name} in {body}");
    }
    assert_eq!(http_get(http, "/nope").0, 404);
    // Readiness never dials the database: with the gate gone it stays ready.
    drop(gate);
    assert_eq!(http_get(http, "/readiness").0, 200);
    drop(proxy);
}

#[test]
fn several_targets_count_up_and_a_targets_listen_wins() {
    let env = Env::new();
    let gate = gate();
    let ca = ca_file(&env, &gate);
    let (base, own) = (closed_port_pair(), closed_port());
    let config = env.home().join("rdsiam.toml");
    std::fs::write(
        &config,
        format!(
            "[defaults]\nhost = \"localhost\"\nport = {}\nregion = \"{REGION}\"\nca-bundle = \"{}\"\ndbname = \"app\"\n\
             [targets.first]\nuser = \"iamuserapp\"\n\
             [targets.second]\nuser = \"iamuserapp\"\n\
             [targets.third]\nlisten = \"127.0.0.1:{own}\"\n",
            gate.port(),
            ca.display()
        ),
    )
    .unwrap();
    let mut cmd = env.cmd();
    cmd.env("RDSIAM_CONFIG", &config).args([
        "proxy",
        "first",
        "second",
        "third",
        "--listen",
        &format!("127.0.0.1:{base}"),
    ]);
    let proxy = Proxy::start(cmd, 3);
    let second = base + 1;
    assert!(
        proxy.ready[0].contains(&format!("ready on 127.0.0.1:{base} for first")),
        "{:?}",
        proxy.ready
    );
    assert!(
        proxy.ready[1].contains(&format!("ready on 127.0.0.1:{second} for second")),
        "{:?}",
        proxy.ready
    );
    assert!(
        proxy.ready[2].contains(&format!("ready on 127.0.0.1:{own} for third")),
        "{:?}",
        proxy.ready
    );
    // The third names no user: each client logs in as itself.
    assert!(!proxy.ready[2].contains("user="), "{:?}", proxy.ready);
    for port in [base, second, own] {
        let (code, out, err) = query(&env, port, "iamuserapp", "select current_user");
        assert_eq!((code, out.as_str()), (0, "iamuserapp"), "{err}");
    }
    let (code, out, err) = query(&env, own, "ops+oncall", "select current_user");
    assert_eq!((code, out.as_str()), (0, "ops+oncall"), "{err}");
}
