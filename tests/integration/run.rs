//! `rdsiam run TARGET -- COMMAND` through the IAM gate: COMMAND's
//! environment, pg_dump, tokens renewed for a long-lived child, exit
//! statuses, Ctrl-C in a pseudo-terminal, SIGTERM, and the private socket
//! directory gone afterwards.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdsiam_testkit::gate::Gate;

use crate::db::{ca_file, gate, postgres};
use crate::support::{Env, REGION, expect, run};

/// `rdsiam run --host localhost --port <gate> -U iamuserapp -d app … -- COMMAND`,
/// with a private TMPDIR so the socket directory can be checked afterwards.
fn run_cmd(env: &Env, gate: &Gate, command: &[&str]) -> Command {
    gate_cmd(env, gate, &["run"], command)
}

/// `rdsiam SUBCOMMAND… --host localhost --port <gate> -U iamuserapp -d app
/// --region … --ca-bundle … -- ARGS`, with a private TMPDIR.
fn gate_cmd(env: &Env, gate: &Gate, subcommand: &[&str], command: &[&str]) -> Command {
    let tmp = tmpdir(env);
    let mut cmd = env.cmd();
    cmd.args(subcommand)
        .args([
            "--host",
            "localhost",
            "--port",
            &gate.port().to_string(),
            "-U",
            "iamuserapp",
            "-d",
            "app",
            "--region",
            REGION,
        ])
        .arg("--ca-bundle")
        .arg(ca_file(env, gate))
        .env("TMPDIR", &tmp)
        .arg("--")
        .args(command);
    cmd
}

fn tmpdir(env: &Env) -> std::path::PathBuf {
    let tmp = env.home().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    tmp
}

fn leftovers(env: &Env) -> Vec<String> {
    std::fs::read_dir(tmpdir(env))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn psql() -> String {
    postgres().psql_path().display().to_string()
}

#[test]
fn psql_gets_the_database_and_no_token() {
    let env = Env::new();
    let gate = gate();
    let psql = psql();
    let out = expect(
        &mut run_cmd(&env, &gate, &[&psql, "-XtAc", "select current_user"]),
        0,
    );
    assert_eq!(out.stdout.trim(), "iamuserapp");
    assert!(leftovers(&env).is_empty(), "{:?}", leftovers(&env));

    // A spy: what COMMAND sees, with fighting variables inherited.
    let mut cmd = run_cmd(&env, &gate, &["env"]);
    cmd.env("PGPASSWORD", "hunter2")
        .env("PGHOSTADDR", "10.0.0.1")
        .env("PGSSLMODE", "verify-full");
    let out = expect(&mut cmd, 0);
    let vars: std::collections::BTreeMap<&str, &str> = out
        .stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .collect();
    let host = vars["PGHOST"];
    assert!(host.contains("rdsiam-run-"), "{host}");
    assert_eq!(vars["PGPORT"], "5432");
    assert_eq!(vars["PGUSER"], "iamuserapp");
    assert_eq!(vars["PGDATABASE"], "app");
    assert_eq!(vars["PGSSLMODE"], "disable");
    assert_eq!(vars["PGAPPNAME"], "rdsiam-run");
    let encoded_host: String = host
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    assert_eq!(
        vars["DATABASE_URL"],
        format!("postgresql://iamuserapp@{encoded_host}:5432/app")
    );
    assert!(!vars.contains_key("PGPASSWORD"), "{vars:?}");
    assert!(!vars.contains_key("PGHOSTADDR"), "{vars:?}");
    assert!(!out.stdout.contains("X-Amz"), "{}", out.stdout);
    assert!(!out.stderr.contains("X-Amz"), "{}", out.stderr);

    // A DATABASE_URL already set is the caller's choice.
    let mut cmd = run_cmd(&env, &gate, &["sh", "-c", "echo \"$DATABASE_URL\""]);
    cmd.env("DATABASE_URL", "postgresql://elsewhere/db");
    assert_eq!(
        expect(&mut cmd, 0).stdout.trim(),
        "postgresql://elsewhere/db"
    );
}

#[test]
fn pg_dump_plain_and_parallel() {
    let env = Env::new();
    let gate = gate();
    let bin = postgres().bin_dir().to_path_buf();
    let dump = bin.join("pg_dump").display().to_string();
    let out = expect(&mut run_cmd(&env, &gate, &[&dump, "--schema-only"]), 0);
    assert!(
        out.stdout.contains("PostgreSQL database dump complete"),
        "{}",
        out.stdout
    );
    let dir = env.home().join("dump");
    let out = expect(
        &mut run_cmd(
            &env,
            &gate,
            &[&dump, "-j", "2", "-Fd", "-f", &dir.display().to_string()],
        ),
        0,
    );
    assert!(dir.join("toc.dat").exists(), "{}", out.stderr);
}

#[test]
fn a_child_that_outlives_a_token_keeps_connecting() {
    let env = Env::new();
    let gate = gate();
    // The gate refuses tokens older than 4 s; the proxy renews after 2 s.
    gate.set_clock_offset(896);
    let psql = psql();
    let script = format!("'{psql}' -XtAc 'select 1' && sleep 4.5 && '{psql}' -XtAc 'select 2'");
    let mut cmd = run_cmd(&env, &gate, &["sh", "-c", &script]);
    cmd.env("RDSIAM_TEST_TOKEN_LIFETIME", "3");
    let out = expect(&mut cmd, 0);
    assert_eq!(
        out.stdout.split_whitespace().collect::<Vec<_>>(),
        ["1", "2"]
    );
}

#[test]
fn exit_statuses_pass_through() {
    let env = Env::new();
    let gate = gate();
    for code in [0, 3, 7] {
        let out = run(&mut run_cmd(
            &env,
            &gate,
            &["sh", "-c", &format!("exit {code}")],
        ));
        assert_eq!(out.code, code, "{}", out.stderr);
    }
    let out = run(&mut run_cmd(&env, &gate, &["sh", "-c", "kill -KILL $$"]));
    assert_eq!(out.code, 137, "{}", out.stderr);
    let out = run(&mut run_cmd(&env, &gate, &["no-such-command-rdsiam"]));
    assert_eq!(out.code, 127);
    assert_eq!(
        out.stderr.trim(),
        "rdsiam: no-such-command-rdsiam: command not found"
    );
    assert!(leftovers(&env).is_empty(), "{:?}", leftovers(&env));
    // rdsiam's own failures before COMMAND keep their codes.
    let mut bad = env.cmd();
    bad.args(["run", "--host", "localhost", "-U", "u", "--", "true"]);
    expect(&mut bad, 3);
    let mut usage = env.cmd();
    usage.args(["run", "--host", "localhost", "-U", "u"]);
    expect(&mut usage, 2);
}

#[test]
fn sigterm_is_forwarded_and_the_directory_removed() {
    let env = Env::new();
    let gate = gate();
    let mut child = run_cmd(&env, &gate, &["sleep", "30"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while leftovers(&env).is_empty() {
        assert!(Instant::now() < deadline, "no socket dir appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    assert!(leftovers(&env).is_empty(), "{:?}", leftovers(&env));
}

#[test]
fn ctrl_c_in_a_terminal_cancels_the_childs_query_and_rdsiam_waits_for_it() {
    let env = Env::new();
    let gate = gate();
    let psql = psql();
    let cmd = run_cmd(&env, &gate, &[&psql, "-Xc", "select pg_sleep(30)"]);
    let mut pty = rdsiam_testkit::pty::Pty::spawn(cmd);
    crate::support::wait_running("select pg_sleep(30)");
    let pressed = Instant::now();
    pty.send("\x03");
    pty.expect("canceling statement due to user request");
    let status = loop {
        if let Some(status) = pty.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            pressed.elapsed() < Duration::from_secs(10),
            "rdsiam did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(pressed.elapsed() < Duration::from_secs(5));
    // psql's own status for a failed statement, not a signal death.
    assert_eq!(status.code(), Some(1), "{}", pty.screen());
    assert!(leftovers(&env).is_empty(), "{:?}", leftovers(&env));
}

/// Starts `run … -- COMMAND` and waits until its socket directory exists.
fn started(env: &Env, gate: &Gate, command: &[&str]) -> std::process::Child {
    let child = run_cmd(env, gate, command)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while leftovers(env).is_empty() {
        assert!(Instant::now() < deadline, "no socket dir appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    child
}

fn signal(pid: u32, name: &str) {
    assert!(
        Command::new("kill")
            .args([&format!("-{name}"), &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
}

fn wait_exit(child: &mut std::process::Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("rdsiam run did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigint_and_sigquit_sent_to_rdsiams_own_pid_reach_command() {
    let env = Env::new();
    let gate = gate();
    for (name, code) in [("INT", 130), ("QUIT", 131)] {
        let mut child = started(&env, &gate, &["sleep", "30"]);
        signal(child.id(), name);
        let status = wait_exit(&mut child, Duration::from_secs(10));
        assert_eq!(status.code(), Some(code), "SIG{name}");
        assert!(leftovers(&env).is_empty(), "{:?}", leftovers(&env));
    }
}

fn alive(pid: &str) -> bool {
    // A zombie waiting for its new parent to reap it is dead too.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z')
        })
        .unwrap_or(false)
}

#[test]
fn command_dies_with_a_killed_rdsiam_and_the_next_run_removes_its_directory() {
    let env = Env::new();
    let gate = gate();
    let pidfile = env.home().join("command.pid");
    let script = format!("echo $$ > '{}'; exec sleep 60", pidfile.display());
    let mut child = started(&env, &gate, &["sh", "-c", &script]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid = loop {
        if let Ok(text) = std::fs::read_to_string(&pidfile)
            && !text.trim().is_empty()
        {
            break text.trim().to_owned();
        }
        assert!(Instant::now() < deadline, "COMMAND never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(alive(&pid));
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(&pid) {
        if Instant::now() > deadline {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            panic!("COMMAND (pid {pid}) outlived a SIGKILLed rdsiam");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGKILL left the directory; the next run removes it (ours, PID gone).
    assert_eq!(leftovers(&env).len(), 1, "{:?}", leftovers(&env));
    // Someone else's look-alike and a live PID's directory are kept.
    let tmp = tmpdir(&env);
    let live = tmp.join(format!("rdsiam-run-{}-0000beef", std::process::id()));
    std::fs::create_dir(&live).unwrap();
    expect(&mut run_cmd(&env, &gate, &["true"]), 0);
    assert_eq!(
        leftovers(&env),
        [live.file_name().unwrap().to_string_lossy().into_owned()]
    );
}

#[test]
fn libpq_variables_that_break_the_private_hop_are_not_inherited() {
    let env = Env::new();
    let gate = gate();
    let psql = psql();
    let mut cmd = run_cmd(&env, &gate, &[&psql, "-XtAc", "select current_user"]);
    cmd.env("PGCHANNELBINDING", "require")
        .env("PGREQUIREPEER", "postgres")
        .env("PGSSLCERTMODE", "require")
        .env("PGREQUIRESSL", "1");
    let out = expect(&mut cmd, 0);
    assert_eq!(out.stdout.trim(), "iamuserapp");
}

/// `rdsiam psql --long`: psql behind the private proxy, its target planned
/// once (issue 18), no token in psql's environment, the socket gone after.
#[test]
fn psql_long_runs_psql_behind_the_private_proxy() {
    let env = Env::new();
    let gate = gate();
    let psql = psql();
    let mut cmd = gate_cmd(
        &env,
        &gate,
        &["psql", "--long", "--psql", &psql],
        &["-XtA", "-c", "select current_user", "-c", "\\conninfo"],
    );
    let out = expect(&mut cmd, 0);
    // As the role, through the private proxy's Unix socket.
    assert!(out.stdout.starts_with("iamuserapp\n"), "{}", out.stdout);
    assert!(out.stdout.contains("via socket in"), "{}", out.stdout);
    assert!(leftovers(&env).is_empty(), "{:?}", leftovers(&env));

    // A MySQL --host target is refused before any network, as without --long.
    let mut cmd = env.cmd();
    cmd.args([
        "psql",
        "--long",
        "--host",
        "localhost",
        "--engine",
        "mysql",
        "-U",
        "u",
        "--region",
        REGION,
    ]);
    let out = run(&mut cmd);
    assert_eq!(out.code, 2, "{}", out.stderr);
}
