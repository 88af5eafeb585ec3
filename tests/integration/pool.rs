//! `rdsiam proxy --pool` (issue 21) through the IAM gate and a real
//! PostgreSQL: a session goes back only after a clean end outside a
//! transaction and a DISCARD ALL, so nothing one client set is seen by the
//! next; sessions past their lifetime are not reused; a reused session's
//! cancel key cancels the right query; upstream logins are counted at the
//! gate.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdsiam_testkit::gate::Gate;

use crate::db::{gate, postgres};
use crate::proxy::{Proxy, proxy_cmd, psql};
use crate::support::{Env, output_within, wait_running};

fn conninfo(port: u16, app: &str) -> String {
    format!(
        "host=127.0.0.1 port={port} user=iamuserapp dbname=app sslmode=disable connect_timeout=20 application_name={app}"
    )
}

/// psql -XtA -F '|' -c SQL through the proxy: stdout, or a panic with stderr.
fn sql(env: &Env, port: u16, app: &str, sql: &str) -> String {
    let out = output_within(
        psql(env).args([&conninfo(port, app), "-XtA", "-F", "|", "-c", sql]),
        60,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{sql}: {stderr}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Upstream logins the gate let through so far.
fn logins(gate: &Gate) -> usize {
    gate.events()
        .iter()
        .filter(|e| e.starts_with("accepted "))
        .count()
}

fn pooled(env: &Env, gate: &Gate, extra: &[&str]) -> (Proxy, u16) {
    let mut args = vec!["-U", "iamuserapp", "-d", "app", "--pool"];
    args.extend_from_slice(extra);
    let (cmd, port) = proxy_cmd(env, gate, &args);
    (Proxy::start(cmd, 1), port)
}

const PID: &str = "select pg_backend_pid()";

#[test]
fn state_set_by_one_client_is_never_seen_by_the_next() {
    let env = Env::new();
    let gate = gate();
    let (_proxy, port) = pooled(&env, &gate, &["--pool-size", "1"]);
    // Everything a session can carry: a SET, a temp table, a prepared
    // statement, LISTEN, an advisory lock, a held cursor, a role change.
    let first = sql(
        &env,
        port,
        "first",
        "SET work_mem = '7MB'; CREATE TEMP TABLE leak(x int); PREPARE leaked AS SELECT 1; \
         LISTEN leaks; SELECT pg_advisory_lock(4242); \
         BEGIN; DECLARE held CURSOR WITH HOLD FOR SELECT 1; COMMIT; \
         SET search_path = pg_temp, public; SELECT pg_backend_pid()",
    );
    let pid = first.lines().last().unwrap().to_owned();
    let next = sql(
        &env,
        port,
        "second",
        "SELECT pg_backend_pid(), current_setting('work_mem'), \
         (SELECT count(*) FROM pg_prepared_statements), \
         (SELECT count(*) FROM pg_listening_channels()), \
         (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()), \
         (SELECT count(*) FROM pg_cursors), \
         to_regclass('pg_temp.leak') IS NULL, current_setting('search_path'), \
         current_setting('application_name')",
    );
    let fields: Vec<&str> = next.split('|').collect();
    assert_eq!(fields[0], pid, "the session was not reused: {next}");
    assert_ne!(fields[1], "7MB", "{next}");
    assert_eq!(&fields[2..7], ["0", "0", "0", "0", "t"], "{next}");
    assert_eq!(fields[7], "\"$user\", public", "{next}");
    // The reused session speaks under the new client's own name.
    assert_eq!(fields[8], "second", "{next}");
    // Two clients, one upstream login.
    assert_eq!(logins(&gate), 1, "{:?}", gate.events());
}

#[test]
fn an_open_transaction_or_a_killed_client_closes_the_session() {
    let env = Env::new();
    let gate = gate();
    let (_proxy, port) = pooled(&env, &gate, &[]);
    // psql ends with a transaction still open: not reusable.
    let open = sql(
        &env,
        port,
        "a",
        "BEGIN; CREATE TEMP TABLE tx_leak(x int); SELECT pg_backend_pid()",
    );
    let open = open.lines().last().unwrap().to_owned();
    let after = sql(&env, port, "b", PID);
    assert_ne!(open, after, "a session with an open transaction was reused");
    // A client killed in the middle of a query: its session is closed.
    let child = psql(&env)
        .args([
            &conninfo(port, "c"),
            "-XtAc",
            "select pg_sleep(20), pg_backend_pid()",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_running("select pg_sleep(20), pg_backend_pid()");
    let busy = sql(
        &env,
        port,
        "d",
        "select pid from pg_stat_activity where query = 'select pg_sleep(20), pg_backend_pid()'",
    );
    let mut child = child;
    child.kill().unwrap();
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        assert_ne!(
            sql(&env, port, "e", PID),
            busy,
            "a session killed mid-query was reused"
        );
    }
}

#[test]
fn a_session_past_its_max_lifetime_is_not_reused() {
    let env = Env::new();
    let gate = gate();
    let (_proxy, port) = pooled(&env, &gate, &["--pool-max-lifetime", "2"]);
    let first = sql(&env, port, "a", PID);
    assert_eq!(
        sql(&env, port, "b", PID),
        first,
        "not reused within its lifetime"
    );
    std::thread::sleep(Duration::from_millis(2300));
    assert_ne!(
        sql(&env, port, "c", PID),
        first,
        "reused past --pool-max-lifetime"
    );
}

#[test]
fn a_session_the_server_ended_is_not_reused() {
    let env = Env::new();
    let gate = gate();
    let (_proxy, port) = pooled(&env, &gate, &[]);
    let first = sql(&env, port, "a", PID);
    postgres()
        .psql_super("postgres", &format!("SELECT pg_terminate_backend({first})"))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let next = sql(&env, port, "b", PID);
    assert_ne!(next, first);
}

#[test]
fn a_reused_sessions_cancel_key_cancels_its_query() {
    let env = Env::new();
    let gate = gate();
    let (_proxy, port) = pooled(&env, &gate, &[]);
    let first = sql(&env, port, "a", PID);
    let child = psql(&env)
        .args([&conninfo(port, "b"), "-Xc", "select pg_sleep(31)"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_running("select pg_sleep(31)");
    let running = sql(
        &env,
        port,
        "c",
        "select pid from pg_stat_activity where query = 'select pg_sleep(31)'",
    );
    assert_eq!(
        running, first,
        "the sleeping client did not get the kept session"
    );
    let interrupted = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    assert!(interrupted.elapsed() < Duration::from_secs(5));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("canceling statement due to user request"),
        "{err}"
    );
}

#[test]
fn without_pool_every_client_logs_in() {
    let env = Env::new();
    let gate = gate();
    let (cmd, port) = proxy_cmd(&env, &gate, &["-U", "iamuserapp", "-d", "app"]);
    let _proxy = Proxy::start(cmd, 1);
    let a = sql(&env, port, "a", PID);
    let b = sql(&env, port, "b", PID);
    assert_ne!(a, b);
    assert_eq!(logins(&gate), 2);
}

#[test]
fn pooling_in_front_of_an_rds_proxy_target_saves_its_logins() {
    use rdsiam_testkit::rdsapi::{Inventory, RdsApi};
    let env = Env::new();
    let api = RdsApi::start(Inventory::article()).unwrap();
    let endpoint = Inventory::article().proxies[0].endpoint.clone();
    // The gate plays the RDS Proxy endpoint: tokens must be signed for it.
    let gate = crate::db::gate_for(&endpoint, Some(5432));
    let port = crate::support::closed_port();
    let mut cmd = env.cmd();
    cmd.args([
        "proxy",
        "--proxy",
        "PostgreSqlProxy",
        "-U",
        "iamuserapp",
        "-d",
        "app",
    ])
    .args([
        "--region",
        crate::support::REGION,
        "--endpoint-url",
        &api.url(),
    ])
    .args(["--via", &format!("127.0.0.1:{}", gate.port())])
    .args(["--listen", &format!("127.0.0.1:{port}"), "--pool"])
    .arg("--ca-bundle")
    .arg(crate::db::ca_file(&env, &gate));
    let _proxy = Proxy::start(cmd, 1);
    let pids: Vec<String> = (0..5)
        .map(|i| sql(&env, port, &format!("c{i}"), PID))
        .collect();
    assert!(pids.iter().all(|p| *p == pids[0]), "{pids:?}");
    assert_eq!(logins(&gate), 1, "{:?}", gate.events());
}

#[test]
fn run_pool_reuses_sessions_for_a_commands_short_connections() {
    let env = Env::new();
    let gate = gate();
    let psql = postgres().psql_path().display().to_string();
    let script = format!("for i in 1 2 3; do '{psql}' -XtAc 'select pg_backend_pid()'; done");
    let tmp = env.home().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut cmd = env.cmd();
    cmd.args([
        "run",
        "--host",
        "localhost",
        "--port",
        &gate.port().to_string(),
    ])
    .args([
        "-U",
        "iamuserapp",
        "-d",
        "app",
        "--region",
        crate::support::REGION,
        "--pool",
    ])
    .arg("--ca-bundle")
    .arg(crate::db::ca_file(&env, &gate))
    .env("TMPDIR", &tmp)
    .args(["--", "sh", "-c", &script]);
    let out = crate::support::expect(&mut cmd, 0);
    let pids: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(pids.len(), 3, "{}", out.stdout);
    assert!(pids.iter().all(|p| *p == pids[0]), "{pids:?}");
    assert_eq!(logins(&gate), 1, "{:?}", gate.events());
}

#[test]
fn a_name_longer_than_postgresql_takes_is_refused_by_the_proxy_not_by_pam() {
    let env = Env::new();
    let gate = gate();
    let (cmd, port) = proxy_cmd(&env, &gate, &[]);
    let _proxy = Proxy::start(cmd, 1);
    let long = "u".repeat(64);
    let out = output_within(
        psql(&env).args([
            &format!("host=127.0.0.1 port={port} user={long} dbname=app sslmode=disable"),
            "-XtAc",
            "select 1",
        ]),
        30,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("64 bytes long"), "{err}");
    assert!(!err.contains("PAM"), "{err}");
    assert_eq!(logins(&gate), 0);
}
