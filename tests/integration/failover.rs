//! Issue 19: an Aurora-like cluster (a writer and a hot-standby reader in
//! streaming replication behind the IAM gate) failing over under `rdsiam
//! check` and `rdsiam proxy`; a refused token; slow logins.

use std::process::Command;
use std::time::{Duration, Instant};

use rdsiam_testkit::gate::{Cluster, Failover, Fault, OldWriter};
use rdsiam_testkit::pg::StopMode;

use crate::db::{ca_file, gate};
use crate::proxy::{Proxy, http_get, metric, proxy_cmd, psql};
use crate::support::{Env, REGION, closed_port, expect, output_within};

const WRITER: &str = "app.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com";
const READER: &str = "app.cluster-ro-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com";

fn cluster() -> Cluster {
    match Cluster::start(WRITER, READER, &[], None) {
        Ok(c) => c,
        Err(err) => panic!("cannot start the cluster: {err:#}"),
    }
}

/// `rdsiam COMMAND --host HOST --port <gate> --via 127.0.0.1:<gate> -U iamuserapp -d app`.
fn at(env: &Env, cluster: &Cluster, command: &str, host: &str) -> Command {
    let gate = cluster.gate();
    let mut cmd = env.cmd();
    cmd.args([
        command,
        "--host",
        host,
        "--port",
        &gate.port().to_string(),
        "--via",
        &format!("127.0.0.1:{}", gate.port()),
        "-U",
        "iamuserapp",
        "-d",
        "app",
        "--region",
        REGION,
    ])
    .arg("--ca-bundle")
    .arg(ca_file(env, gate));
    cmd
}

/// `psql -XtAc SQL` through the proxy at `port`: (exit code, stdout, stderr).
fn through(env: &Env, port: u16, sql: &str) -> (i32, String, String) {
    let out = output_within(
        psql(env).args([
            &format!(
                "host=127.0.0.1 port={port} user=iamuserapp dbname=app sslmode=disable connect_timeout=60"
            ),
            "-XtAc",
            sql,
        ]),
        90,
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_expect_writer_and_expect_reader() {
    let env = Env::new();
    let cluster = cluster();
    expect(
        at(&env, &cluster, "check", WRITER).arg("--expect-writer"),
        0,
    );
    let run = expect(
        at(&env, &cluster, "check", READER).arg("--expect-writer"),
        6,
    );
    assert!(
        run.stderr
            .contains("the session is on a reader (a read-only hot standby), expected the writer"),
        "{}",
        run.stderr
    );
    expect(
        at(&env, &cluster, "check", READER).arg("--expect-reader"),
        0,
    );
    let run = expect(
        at(&env, &cluster, "check", WRITER).arg("--expect-reader"),
        6,
    );
    assert!(
        run.stderr.contains("on a writer, expected the reader"),
        "{}",
        run.stderr
    );
}

/// The proxy on the cluster's writer endpoint, with /metrics.
fn writer_proxy(env: &Env, cluster: &Cluster, extra: &[&str]) -> (Proxy, u16, u16) {
    let port = closed_port();
    let http = closed_port();
    let mut cmd = at(env, cluster, "proxy", WRITER);
    cmd.args([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--http-address",
        &format!("127.0.0.1:{http}"),
    ])
    .args(extra);
    (Proxy::start(cmd, 1), port, http)
}

fn metrics(http: u16) -> String {
    http_get(http, "/metrics").1
}

/// During the DNS lag the writer endpoint leads to a read-only server: a
/// client connecting then waits and its write lands on the new writer.
#[test]
fn a_write_during_a_failover_waits_for_the_new_writer() {
    let env = Env::new();
    let cluster = cluster();
    let (proxy, port, http) = writer_proxy(&env, &cluster, &["--expect-writer"]);
    cluster
        .psql_writer(
            "app",
            "create table t(x int); grant insert, select on t to iamuserapp",
        )
        .unwrap();
    // A session open across the failover is cut, with the server's reason.
    let mut open = psql(&env);
    open.args([
        &format!("host=127.0.0.1 port={port} user=iamuserapp dbname=app sslmode=disable"),
        "-XtAc",
        "select pg_sleep(60)",
    ]);
    let open = std::thread::spawn(move || output_within(&mut open, 90));
    let deadline = Instant::now() + Duration::from_secs(20);
    while cluster
        .psql_writer(
            "app",
            "select count(*) from pg_stat_activity where query = 'select pg_sleep(60)'",
        )
        .unwrap()
        != "1"
    {
        assert!(Instant::now() < deadline, "the long query never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::scope(|scope| {
        let failing = scope.spawn(|| {
            cluster
                .failover(Failover {
                    stop: StopMode::Fast,
                    dns_lag: Duration::from_secs(2),
                    old_writer: OldWriter::ReadOnly,
                })
                .unwrap()
        });
        // Wait until the writer endpoint leads to the read-only server.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cluster
            .gate()
            .events()
            .iter()
            .any(|e| e.starts_with("writer-endpoint port="))
        {
            assert!(Instant::now() < deadline, "the failover never started");
            std::thread::sleep(Duration::from_millis(20));
        }
        let (code, out, err) = through(&env, port, "insert into t values (1) returning x");
        assert_eq!(
            (code, out.as_str()),
            (0, "1\nINSERT 0 1"),
            "code {code} out {out:?} err {err}\n{}",
            proxy.stderr()
        );
        failing.join().unwrap();
    });
    assert_eq!(
        cluster
            .psql_writer("app", "select count(*) from t")
            .unwrap(),
        "1"
    );
    let cut = open.join().unwrap();
    let cut_err = String::from_utf8_lossy(&cut.stderr);
    assert_ne!(cut.status.code(), Some(0));
    assert!(
        cut_err.contains("terminating connection due to administrator command"),
        "{cut_err}"
    );
    let text = metrics(http);
    assert_eq!(
        metric(&text, "rdsiam_proxy_failovers_total"),
        Some(1.0),
        "{text}"
    );
    assert!(
        metric(&text, "rdsiam_proxy_logins_retried_total").unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "rdsiam_proxy_failover_recovery_seconds_count"),
        Some(1.0),
        "{text}"
    );
    let log = proxy.stderr();
    assert!(
        log.contains("failover") && log.contains("read-only server"),
        "{log}"
    );
    assert!(log.contains("failover-over"), "{log}");
}

/// During the DNS lag the old writer is gone: logins end mid-way; clients
/// wait instead of failing, and give up with a FATAL naming the failover
/// after --failover-timeout.
#[test]
fn logins_wait_while_the_writer_is_gone_and_give_up_naming_the_failover() {
    let env = Env::new();
    let cluster = cluster();
    let (proxy, port, _http) = writer_proxy(&env, &cluster, &["--expect-writer"]);
    let (code, _, err) = through(&env, port, "select 1");
    assert_eq!(code, 0, "{err}");
    std::thread::scope(|scope| {
        let failing = scope.spawn(|| {
            cluster
                .failover(Failover {
                    stop: StopMode::Immediate,
                    dns_lag: Duration::from_secs(2),
                    old_writer: OldWriter::Gone,
                })
                .unwrap()
        });
        assert!(
            cluster
                .gate()
                .wait_for_event("writer-endpoint port=0", Duration::from_secs(20))
        );
        let (code, out, err) = through(&env, port, "select not pg_is_in_recovery()");
        assert_eq!((code, out.as_str()), (0, "t"), "{err}\n{}", proxy.stderr());
        failing.join().unwrap();
    });
    drop(proxy);
    // A writer that never comes back: the client gets a FATAL that says so.
    let (proxy, port, _http) = writer_proxy(
        &env,
        &cluster,
        &["--expect-writer", "--failover-timeout", "2"],
    );
    cluster.gate().set_writer_backend(None);
    let (code, _, err) = through(&env, port, "select 1");
    assert_ne!(code, 0);
    assert!(
        err.contains("no writer at") && err.contains("seems to be failing over"),
        "{err}\n{}",
        proxy.stderr()
    );
}

/// A cached token the database starts refusing (rotated or revoked keys)
/// is dropped and the login retried once with a fresh one; a user refused
/// again and again is answered from the count for a while.
#[test]
fn a_refused_token_is_dropped_and_the_login_retried_once() {
    let env = Env::new();
    let gate = gate();
    let http = closed_port();
    let (cmd, port) = proxy_cmd(
        &env,
        &gate,
        &["--http-address", &format!("127.0.0.1:{http}")],
    );
    let proxy = Proxy::start(cmd, 1);
    let (code, _, err) = through(&env, port, "select 1");
    assert_eq!(code, 0, "{err}");
    // Every token signed until now is refused from now on.
    let moment = gate.now() + 1;
    gate.revoke_signed_before(moment);
    while gate.now() < moment {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, _, err) = through(&env, port, "select 1");
    assert_eq!(code, 0, "{err}\n{}", proxy.stderr());
    let events = gate.events();
    assert_eq!(
        events
            .iter()
            .filter(|e| *e == "rejected user=iamuserapp reason=revoked")
            .count(),
        1,
        "{events:?}"
    );
    let text = metrics(http);
    assert_eq!(
        metric(&text, "rdsiam_proxy_tokens_dropped_total"),
        Some(1.0),
        "{text}"
    );
    proxy.wait_log("token-dropped");

    // Refused for good: the client gets the causes; after three, the count answers.
    gate.revoke_signed_before(gate.now() + 100_000);
    for _ in 0..3 {
        let (code, _, err) = through(&env, port, "select 1");
        assert_ne!(code, 0);
        assert!(err.contains("wrong or revoked AWS credentials"), "{err}");
    }
    let asked = gate.events().len();
    let (code, _, err) = through(&env, port, "select 1");
    assert_ne!(code, 0);
    assert!(err.contains("answered from that count"), "{err}");
    assert_eq!(
        gate.events().len(),
        asked,
        "the database was not asked again"
    );
}

/// 50 logins at once against a server slow to answer them: time in
/// rdsiam's queue and the server's answer are not network failures.
#[test]
fn a_burst_of_slow_logins_succeeds_and_timeouts_name_their_stage() {
    let env = Env::new();
    let gate = gate();
    gate.set_fault(Fault::SlowLogin(Duration::from_millis(1500)));
    let (cmd, port) = proxy_cmd(
        &env,
        &gate,
        &["--connect-timeout", "2", "--max-connection-rate", "20"],
    );
    let proxy = Proxy::start(cmd, 1);
    let mut failed = Vec::new();
    std::thread::scope(|scope| {
        let clients: Vec<_> = (0..50)
            .map(|_| scope.spawn(|| through(&env, port, "select 1")))
            .collect();
        for c in clients {
            let (code, out, err) = c.join().unwrap();
            if (code, out.as_str()) != (0, "1") {
                failed.push(err);
            }
        }
    });
    assert!(
        failed.is_empty(),
        "{} of 50 failed: {:?}\n{}",
        failed.len(),
        failed.first(),
        proxy.stderr()
    );
    drop(proxy);

    // The server's answer has its own bound, and its message blames no network.
    gate.set_fault(Fault::SlowLogin(Duration::from_secs(4)));
    let (cmd, port) = proxy_cmd(&env, &gate, &["--login-timeout", "1"]);
    let _proxy = Proxy::start(cmd, 1);
    let (code, _, err) = through(&env, port, "select 1");
    assert_ne!(code, 0);
    assert!(
        err.contains("did not answer the login within 1s (TCP and TLS worked)"),
        "{err}"
    );
    assert!(
        !err.contains("VPC") && !err.contains("security group"),
        "{err}"
    );
}

/// Issue 24: with a wrong AWS secret every login is refused; once STS
/// confirms the credentials are the cause, /readiness turns 503.
#[test]
fn readiness_turns_503_when_the_credentials_are_refused() {
    use rdsiam_testkit::gate::{TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY};
    use rdsiam_testkit::rdsapi::{Inventory, RdsApi};
    let env = Env::new();
    let gate = gate();
    let api = RdsApi::start(Inventory::article()).unwrap();
    api.require_signatures(&[(TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY)]);
    let http = closed_port();
    let (mut cmd, port) = proxy_cmd(
        &env,
        &gate,
        &["--http-address", &format!("127.0.0.1:{http}")],
    );
    cmd.env(
        "AWS_SECRET_ACCESS_KEY",
        "wrongwrongwrongwrongwrongwrongwrongwrong",
    )
    .env("AWS_ENDPOINT_URL_STS", api.url());
    let proxy = Proxy::start(cmd, 1);
    assert_eq!(http_get(http, "/readiness").0, 200);
    let (code, _, err) = through(&env, port, "select 1");
    assert_ne!(code, 0);
    assert!(err.contains("wrong or revoked AWS credentials"), "{err}");
    let (status, body) = http_get(http, "/readiness");
    assert_eq!(status, 503, "{body}\n{}", proxy.stderr());
    assert!(body.contains("SignatureDoesNotMatch"), "{body}");
}

/// `sql -c` whose session a failover cuts stops with exit 4 and says the
/// statement's fate is unknown; nothing is re-run.
#[test]
fn a_script_cut_by_a_failover_stops_with_exit_4() {
    let env = Env::new();
    let cluster = cluster();
    let mut sql = at(&env, &cluster, "sql", WRITER);
    sql.args(["-c", "select pg_sleep(60)"]);
    let running = std::thread::spawn(move || output_within(&mut sql, 90));
    let deadline = Instant::now() + Duration::from_secs(20);
    while cluster
        .psql_writer(
            "app",
            "select count(*) from pg_stat_activity where query = 'select pg_sleep(60)'",
        )
        .unwrap()
        != "1"
    {
        assert!(Instant::now() < deadline, "the statement never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    cluster
        .failover(Failover {
            dns_lag: Duration::from_millis(200),
            ..Failover::default()
        })
        .unwrap();
    let out = running.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.starts_with("rdsiam: "), "{err}");
    assert!(
        err.contains("fate is unknown") && err.contains("57P01"),
        "{err}"
    );
}

/// At the prompt, a statement whose session a failover cuts comes back on
/// the prompt line, not re-run; the next statement reconnects (a fresh
/// token, the name resolved again) and lands on the new writer.
#[test]
fn the_prompt_gives_back_a_statement_a_failover_cut_and_reconnects() {
    let env = Env::new();
    let cluster = cluster();
    let cmd = at(&env, &cluster, "sql", WRITER);
    let mut term = rdsiam_testkit::pty::Pty::spawn(cmd);
    term.expect("iamuserapp@app=> ");
    term.line("select pg_sleep(60);");
    let deadline = Instant::now() + Duration::from_secs(20);
    while cluster
        .psql_writer(
            "app",
            "select count(*) from pg_stat_activity where query like 'select pg_sleep(60)%' and pid <> pg_backend_pid()",
        )
        .unwrap()
        != "1"
    {
        assert!(Instant::now() < deadline, "the statement never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    cluster
        .failover(Failover {
            dns_lag: Duration::from_millis(200),
            ..Failover::default()
        })
        .unwrap();
    term.expect("57P01");
    term.expect("back on the prompt line, not re-run");
    // The interrupted statement is on the prompt line again: Ctrl-C clears it.
    term.expect("iamuserapp@app=> select pg_sleep(60);");
    term.send("\x03");
    term.expect("iamuserapp@app=> ");
    term.line("select pg_is_in_recovery() as standby;");
    term.expect("reconnected");
    term.expect("standby");
    term.expect("f");
    term.expect("iamuserapp@app=> ");
    term.line("\\q");
}

/// With --continue-on-error the script says so, reconnects and goes on.
#[test]
fn continue_on_error_reconnects_after_a_failover() {
    let env = Env::new();
    let cluster = cluster();
    let mut sql = at(&env, &cluster, "sql", WRITER);
    sql.args([
        "--continue-on-error",
        "-c",
        "select pg_sleep(60); select pg_is_in_recovery() as standby",
    ]);
    let running = std::thread::spawn(move || output_within(&mut sql, 90));
    let deadline = Instant::now() + Duration::from_secs(20);
    while cluster
        .psql_writer(
            "app",
            "select count(*) from pg_stat_activity where query like 'select pg_sleep(60)%' and pid <> pg_backend_pid()",
        )
        .unwrap()
        != "1"
    {
        assert!(Instant::now() < deadline, "the statement never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    cluster
        .failover(Failover {
            dns_lag: Duration::from_millis(200),
            ..Failover::default()
        })
        .unwrap();
    let out = running.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        err.contains("fate is unknown") && err.contains("going on"),
        "{err}"
    );
    assert!(
        stdout.contains("standby") && stdout.contains('f'),
        "{stdout}\n{err}"
    );
}

/// Issue 24: a login that waited its whole turn in rdsiam's own queue
/// says so; the server was never contacted.
#[test]
fn a_login_timed_out_in_rdsiams_queue_says_so() {
    let env = Env::new();
    let gate = gate();
    let (cmd, port) = proxy_cmd(
        &env,
        &gate,
        &["--max-connection-rate", "1", "--login-timeout", "1"],
    );
    let _proxy = Proxy::start(cmd, 1);
    let mut errors = Vec::new();
    std::thread::scope(|scope| {
        let clients: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| through(&env, port, "select 1")))
            .collect();
        for c in clients {
            let (code, _, err) = c.join().unwrap();
            if code != 0 {
                errors.push(err);
            }
        }
    });
    assert!(
        !errors.is_empty(),
        "at 1 login/s, 4 at once can't all get a turn within 1 s"
    );
    for err in &errors {
        assert!(
            err.contains("in rdsiam's own queue") && err.contains("the server was never contacted"),
            "{err}"
        );
    }
}
