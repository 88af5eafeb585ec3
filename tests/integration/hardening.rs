//! Issue 10: bounded waits, hostile input, honest exit codes. Each test
//! here failed before its fix: API endpoints that accept and never answer,
//! a server silent after login, hostile target names in completion, SQL in
//! user names, relative config paths, psql arguments that turn TLS off,
//! other refused logins, inputs the server can't take, FIFOs and devices,
//! non-UTF-8 variables, messages, and the small ones.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdsiam_testkit::gate::Fault as GateFault;
use rdsiam_testkit::rdsapi::{Fault, Inventory, RdsApi};

use crate::db::{at_gate, ca_file, gate, postgres};
use crate::support::{Env, REGION, Run, expect};

/// Run `cmd`, failing the test (and killing it) if it takes longer than
/// `limit`: what "never hangs" means here.
#[track_caller]
fn within(cmd: &mut Command, limit: Duration) -> Run {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rdsiam runs");
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}; stderr so far: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!run.stderr.contains("panicked"), "panic: {}", run.stderr);
    assert!(!run.stderr.contains(" { "), "debug dump: {}", run.stderr);
    run
}

#[track_caller]
fn expect_within(cmd: &mut Command, limit: Duration, code: i32) -> Run {
    let run = within(cmd, limit);
    assert_eq!(
        run.code, code,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(run.stderr.starts_with("rdsiam: "), "{}", run.stderr);
    run
}

/// `rdsiam <command> --proxy PostgreSqlProxy` resolved through `api`.
fn through_api(env: &Env, api: &RdsApi, command: &str) -> Command {
    let mut cmd = env.cmd();
    cmd.args([
        command,
        "--proxy",
        "PostgreSqlProxy",
        "-U",
        "iamuserapp",
        "--region",
        REGION,
        "--endpoint-url",
        &api.url(),
    ]);
    if command == "check" {
        cmd.arg("--no-aws-identity");
    }
    cmd
}

/// An RDS API that fails the test's later assertion if it is called.
fn untouchable_api() -> RdsApi {
    RdsApi::start(Inventory::article()).unwrap()
}

#[track_caller]
fn assert_not_called(api: &RdsApi) {
    assert!(
        api.requests().is_empty(),
        "the RDS API was called before the usage error: {:?}",
        api.requests()
            .iter()
            .map(|r| r.action.clone())
            .collect::<Vec<_>>()
    );
}

// 1. RDS / STS API calls are bounded.

#[test]
fn an_api_that_accepts_and_never_answers_exits_3_in_seconds() {
    let env = Env::new();
    let api = RdsApi::start(Inventory::article()).unwrap();
    api.set_fault(Fault::Hang);
    for command in ["token", "check", "psql"] {
        let run = expect_within(
            through_api(&env, &api, command).args(["--api-timeout", "2"]),
            Duration::from_secs(12),
            3,
        );
        assert!(run.stderr.contains(&api.url()), "{command}: {}", run.stderr);
        assert!(run.stderr.contains("did not answer"), "{}", run.stderr);
        assert!(run.stderr.contains("--api-timeout"), "{}", run.stderr);
    }
    // list, with the timeout from the environment.
    let run = expect_within(
        env.cmd().env("RDSIAM_API_TIMEOUT", "2").args([
            "list",
            "--region",
            REGION,
            "--endpoint-url",
            &api.url(),
        ]),
        Duration::from_secs(12),
        3,
    );
    assert!(run.stderr.contains(&api.url()), "{}", run.stderr);
}

#[test]
fn an_api_that_stalls_after_the_status_line_exits_3() {
    let env = Env::new();
    let api = RdsApi::start(Inventory::article()).unwrap();
    api.set_fault(Fault::StallAfterStatus);
    expect_within(
        through_api(&env, &api, "token").args(["--api-timeout", "2"]),
        Duration::from_secs(12),
        3,
    );
}

#[test]
fn an_endless_answer_is_cut_at_the_size_cap() {
    let env = Env::new();
    let api = RdsApi::start(Inventory::article()).unwrap();
    api.set_fault(Fault::EndlessBody);
    let run = expect_within(
        &mut through_api(&env, &api, "token"),
        Duration::from_secs(30),
        3,
    );
    assert!(run.stderr.contains("exceeded 8 MiB"), "{}", run.stderr);
}

#[test]
fn a_credential_process_that_never_returns_exits_3_naming_the_profile() {
    let env = Env::new();
    env.aws_file(
        "config",
        "[profile stuck]\nregion = us-east-1\ncredential_process = sleep 30\n",
    );
    let run = expect_within(
        env.bare().args([
            "token",
            "--host",
            "h.example",
            "-U",
            "u",
            "--profile",
            "stuck",
            "--api-timeout",
            "2",
        ]),
        Duration::from_secs(12),
        3,
    );
    assert!(run.stderr.contains("profile `stuck`"), "{}", run.stderr);
    assert!(run.stderr.contains("after 2s"), "{}", run.stderr);
}

#[test]
fn api_timeout_is_checked_and_shown_in_help() {
    let env = Env::new();
    expect(
        env.cmd()
            .args(["token", "--host", "h", "-U", "u", "--region", REGION])
            .args(["--api-timeout", "0"]),
        2,
    );
    expect(
        env.cmd()
            .env("RDSIAM_API_TIMEOUT", "soon")
            .args(["token", "--host", "h", "-U", "u", "--region", REGION]),
        2,
    );
    let help = expect(env.bare().args(["token", "--help"]), 0);
    assert!(help.stdout.contains("--api-timeout"), "{}", help.stdout);
    assert!(
        help.stdout.contains("RDSIAM_API_TIMEOUT"),
        "{}",
        help.stdout
    );
}

// 2. check is bounded after login too.

#[test]
fn check_against_a_server_silent_after_login_exits_4() {
    let env = Env::new();
    let gate = gate();
    gate.set_fault(GateFault::SilentAfterLogin);
    let run = expect_within(
        at_gate(&env, &gate, "check", "iamuserapp").args([
            "--no-aws-identity",
            "--connect-timeout",
            "2",
        ]),
        Duration::from_secs(15),
        4,
    );
    assert!(
        run.stderr.contains("went silent after login"),
        "{}",
        run.stderr
    );
}

// 3. Target names are data in every shell.

/// A config whose hostile target names would create files under `home`
/// if a shell ran them.
fn hostile_shell(env: &Env, program: &str) -> Command {
    let home = env.home().display().to_string();
    crate::completions::shell_with_config(
        env,
        program,
        &format!(
            "[targets.prod-orders]\nhost = \"h\"\n[targets.\"$(touch {home}/pwned1)\"]\nhost = \"h\"\n[targets.\"`touch {home}/pwned2`\"]\nhost = \"h\"\n[targets.\"p;touch {home}/pwned3\"]\nhost = \"h\"\n"
        ),
    )
}

#[track_caller]
fn shell_output(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (install it: apt-get install zsh fish)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[track_caller]
fn assert_nothing_ran(env: &Env, out: &str) {
    for n in 1..=3 {
        assert!(
            !env.home().join(format!("pwned{n}")).exists(),
            "completion ran code from a target name: {out}"
        );
    }
    assert!(out.contains("prod-orders"), "{out}");
    assert!(!out.contains("touch"), "an unsafe name was offered: {out}");
}

#[test]
fn bash_completion_never_runs_target_names() {
    let env = Env::new();
    for cur in ["", "p"] {
        let out = shell_output(hostile_shell(&env, "bash").args([
            "-c",
            &format!("source completions/rdsiam.bash && COMP_WORDS=(rdsiam psql '{cur}') COMP_CWORD=2 && _rdsiam_with_targets rdsiam '{cur}' psql && printf '%s\\n' \"${{COMPREPLY[@]}}\""),
        ]));
        assert_nothing_ran(&env, &out);
    }
}

#[test]
fn zsh_completion_never_runs_target_names() {
    let env = Env::new();
    // _describe needs a live completion; a stand-in prints what it gets.
    let out = shell_output(hostile_shell(&env, "zsh").args([
        "-f",
        "-c",
        "autoload -U compinit && compinit -u -D && source completions/_rdsiam && _describe() { print -rl -- \"${(@P)4}\" } && _rdsiam_targets",
    ]));
    assert_nothing_ran(&env, &out);
}

#[test]
fn fish_completion_never_runs_target_names() {
    let env = Env::new();
    let out = shell_output(hostile_shell(&env, "fish").args([
        "-c",
        "source completions/rdsiam.fish; complete -C 'rdsiam check '",
    ]));
    assert_nothing_ran(&env, &out);
}

// 4. SQL we print quotes identifiers.

#[test]
fn the_grant_hint_quotes_a_hostile_user_name() {
    let env = Env::new();
    let gate = gate();
    let user = "x\"; DROP DATABASE app; --";
    let run = expect(
        at_gate(&env, &gate, "check", user).arg("--no-aws-identity"),
        5,
    );
    assert!(
        run.stderr
            .contains("GRANT rds_iam TO \"x\"\"; DROP DATABASE app; --\";"),
        "{}",
        run.stderr
    );
}

// 5. Relative paths in the config file follow the file.

#[test]
fn a_relative_ca_bundle_in_the_config_is_read_beside_the_file() {
    let env = Env::new();
    let gate = gate();
    let conf_dir = env.home().join("conf");
    std::fs::create_dir_all(conf_dir.join("certs")).unwrap();
    std::fs::write(conf_dir.join("certs/ca.pem"), gate.ca_pem()).unwrap();
    let config = conf_dir.join("rdsiam.toml");
    std::fs::write(
        &config,
        format!(
            "[targets.t]\nhost = \"localhost\"\nport = {}\nuser = \"iamuserapp\"\ndbname = \"app\"\nregion = \"{REGION}\"\nca-bundle = \"certs/ca.pem\"\n",
            gate.port()
        ),
    )
    .unwrap();
    // Elsewhere, a directory with a certs/ca.pem of its own that must not count.
    let elsewhere = env.home().join("elsewhere");
    std::fs::create_dir_all(elsewhere.join("certs")).unwrap();
    std::fs::write(elsewhere.join("certs/ca.pem"), "not a certificate").unwrap();
    expect(
        env.cmd()
            .env("RDSIAM_CONFIG", &config)
            .current_dir(&elsewhere)
            .args(["check", "t", "--no-aws-identity"]),
        0,
    );
}

// 6. psql arguments can't turn TLS off or move the connection.

fn psql_stand_in(env: &Env, body: &str) -> (PathBuf, PathBuf) {
    let bin = env.home().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let record = env.home().join("record");
    let script = bin.join("psql");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{}\nexit 42\n",
            body.replace("RECORD", &record.display().to_string())
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (bin, record)
}

#[test]
fn psql_arguments_that_disable_tls_or_move_the_connection_exit_2() {
    let env = Env::new();
    let (bin, record) = psql_stand_in(&env, "echo ran > RECORD");
    let api = untouchable_api();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    for args in [
        &["sslmode=disable"][..],
        &["postgresql://u@localhost/app?sslmode=disable"],
        &["-d", "dbname=app host=evil.example"],
        &["-h", "evil.example"],
        &["-c", "select 1", "hostaddr=10.0.0.1"],
    ] {
        let run = expect(
            through_api(&env, &api, "psql")
                .env("PATH", &path)
                .arg("--")
                .args(args),
            2,
        );
        assert!(run.stderr.contains("rdsiam"), "{}", run.stderr);
        assert!(!record.exists(), "psql ran with {args:?}");
    }
    assert_not_called(&api);
    // Session arguments still pass.
    let run = crate::support::run(
        env.cmd()
            .env("PATH", &path)
            .args(["psql", "--host", "h.example", "-U", "u", "--region", REGION])
            .args([
                "--",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                "select 'sslmode=disable'",
            ]),
    );
    assert_eq!(run.code, 42, "{}", run.stderr);
}

// 7. Other refused logins exit 5 with their own hints.

#[test]
fn no_connect_privilege_and_closed_databases_exit_5() {
    let env = Env::new();
    let gate = gate();
    let pg = postgres();
    // Once per test run (the server is shared): a database PUBLIC can't reach.
    let _ = pg.psql_super("postgres", "CREATE DATABASE noconnect");
    pg.psql_super(
        "postgres",
        "REVOKE CONNECT ON DATABASE noconnect FROM PUBLIC",
    )
    .unwrap();
    let check_db = |db: &str| {
        let mut cmd = env.cmd();
        cmd.args([
            "check",
            "--host",
            "localhost",
            "--port",
            &gate.port().to_string(),
            "-U",
            "iamuserapp",
            "-d",
            db,
            "--region",
            REGION,
            "--no-aws-identity",
        ])
        .arg("--ca-bundle")
        .arg(ca_file(&env, &gate));
        cmd
    };
    let run = expect(&mut check_db("noconnect"), 5);
    assert!(run.stderr.contains("42501"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("GRANT CONNECT ON DATABASE \"noconnect\" TO \"iamuserapp\";"),
        "{}",
        run.stderr
    );

    let run = expect(&mut check_db("template0"), 5);
    assert!(run.stderr.contains("55000"), "{}", run.stderr);
    assert!(
        run.stderr.contains("does not accept connections"),
        "{}",
        run.stderr
    );
}

// 8. Inputs the server can't take: exit 2 before any network.

#[test]
fn names_regions_and_tunnels_the_server_cant_take_exit_2_before_any_network() {
    let env = Env::new();
    let api = untouchable_api();
    let long_user = "u".repeat(64);
    for (command, extra) in [
        ("token", &["-U", long_user.as_str()][..]),
        ("check", &["-U", long_user.as_str()]),
        ("sql", &["--dbname", long_user.as_str()]),
        ("psql", &["--region", ""]),
        ("token", &["--region", ""]),
        ("sql", &["--region", "us east-1"]),
        ("check", &["--region", "us-east-1\n"]),
        ("psql", &["--via", "http://x:1"]),
        ("token", &["--via", "http://x:1"]),
        ("check", &["--via", "x/y:5432"]),
        ("list", &["--region", ""]),
    ] {
        let mut cmd = env.cmd();
        if command == "list" {
            cmd.args(["list", "--endpoint-url", &api.url()]);
        } else {
            cmd.args([command, "--proxy", "PostgreSqlProxy"])
                .args(["--endpoint-url", &api.url()]);
            if !extra.contains(&"-U") {
                cmd.args(["-U", "iamuserapp"]);
            }
            if !extra.contains(&"--region") {
                cmd.args(["--region", REGION]);
            }
        }
        // token takes no connection flags: --via comes from the environment.
        let extra: Vec<&str> = extra.to_vec();
        if command == "token" && extra[0] == "--via" {
            cmd.env("RDSIAM_VIA", extra[1]);
        } else {
            cmd.args(&extra);
        }
        let run = expect(&mut cmd, 2);
        assert!(run.stderr.len() > 20, "{command} {extra:?}: {}", run.stderr);
    }
    assert_not_called(&api);

    // NUL can't come through argv or the environment, but can through the file.
    let config = env.home().join("nul.toml");
    std::fs::write(
        &config,
        "[targets.t]\nproxy = \"PostgreSqlProxy\"\nuser = \"a\\u0000b\"\n[targets.d]\nproxy = \"PostgreSqlProxy\"\nuser = \"u\"\ndbname = \"a\\u0000b\"\n",
    )
    .unwrap();
    for target in ["t", "d"] {
        let run = expect(
            env.cmd().env("RDSIAM_CONFIG", &config).args([
                "token",
                target,
                "--region",
                REGION,
                "--endpoint-url",
                &api.url(),
            ]),
            2,
        );
        assert!(run.stderr.contains("NUL"), "{}", run.stderr);
    }
    assert_not_called(&api);
}

// 9. FIFOs and devices are refused, not read.

fn fifo(env: &Env) -> PathBuf {
    let path = env.home().join("fifo");
    let status = Command::new("mkfifo").arg(&path).status().expect("mkfifo");
    assert!(status.success());
    path
}

#[test]
fn a_fifo_or_device_as_config_or_ca_bundle_is_refused_at_once() {
    let env = Env::new();
    let fifo = fifo(&env);
    let run = expect_within(
        env.bare()
            .env("RDSIAM_CONFIG", &fifo)
            .args(["targets", "names"]),
        Duration::from_secs(10),
        2,
    );
    assert!(run.stderr.contains("not a regular file"), "{}", run.stderr);
    for bundle in [fifo.as_path(), Path::new("/dev/zero")] {
        for command in ["check", "psql"] {
            let run = expect_within(
                env.cmd()
                    .args([
                        command,
                        "--host",
                        "localhost",
                        "-U",
                        "u",
                        "--region",
                        REGION,
                    ])
                    .arg("--ca-bundle")
                    .arg(bundle),
                Duration::from_secs(10),
                2,
            );
            assert!(run.stderr.contains("not a regular file"), "{}", run.stderr);
        }
    }
}

// 10. Variables that aren't UTF-8 are errors, not silently dropped.

#[test]
fn non_utf8_environment_values_exit_2() {
    let env = Env::new();
    let api = untouchable_api();
    let bad = OsStr::from_bytes(b"\xff\xfe");
    for var in ["PGUSER", "PGDATABASE", "RDSIAM_VIA", "PGSSLROOTCERT"] {
        let mut cmd = through_api(&env, &api, "check");
        if var == "PGUSER" {
            // The flag would win over PGUSER.
            cmd = env.cmd();
            cmd.args(["check", "--proxy", "PostgreSqlProxy", "--region", REGION])
                .args(["--endpoint-url", &api.url()]);
        }
        let run = expect(cmd.env(var, bad), 2);
        assert!(run.stderr.contains(var), "{var}: {}", run.stderr);
        assert!(run.stderr.contains("UTF-8"), "{}", run.stderr);
    }
    assert_not_called(&api);
}

// 11. Messages.

#[test]
fn a_password_in_the_endpoint_url_is_never_printed() {
    let env = Env::new();
    for url in ["http://a:PW@[::1", "http://a:PW@127.0.0.1:1"] {
        let run = expect(
            env.cmd()
                .args(["list", "--region", REGION, "--endpoint-url", url]),
            2,
        );
        assert!(!run.stderr.contains("PW"), "{}", run.stderr);
        let run = expect(
            env.cmd()
                .env("AWS_ENDPOINT_URL_RDS", url)
                .args(["token", "--proxy", "p", "-U", "u", "--region", REGION]),
            2,
        );
        assert!(!run.stderr.contains("PW"), "{}", run.stderr);
    }
}

#[test]
fn an_answer_that_is_not_aws_shows_its_status_and_text() {
    let env = Env::new();
    let api = RdsApi::start(Inventory::article()).unwrap();
    api.set_fault(Fault::Raw {
        status: 502,
        body: "<html>Bad gateway from the corporate proxy</html>".into(),
    });
    let run = expect(&mut through_api(&env, &api, "token"), 3);
    assert!(run.stderr.contains("HTTP 502"), "{}", run.stderr);
    assert!(run.stderr.contains("corporate proxy"), "{}", run.stderr);
    assert!(!run.stderr.contains("UnknownError"), "{}", run.stderr);
    api.set_fault(Fault::Raw {
        status: 200,
        body: "garbage".into(),
    });
    let run = expect(&mut through_api(&env, &api, "token"), 3);
    assert!(!run.stderr.contains("UnknownError"), "{}", run.stderr);
}

#[test]
fn an_expired_server_certificate_is_called_expired_with_its_date() {
    let env = Env::new();
    let gate = gate();
    gate.set_fault(GateFault::ExpiredCert);
    let run = expect(
        at_gate(&env, &gate, "check", "iamuserapp").arg("--no-aws-identity"),
        4,
    );
    assert!(
        run.stderr.contains("expired on 2021-12-31"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("does not chain"), "{}", run.stderr);
    assert!(!run.stderr.contains("Context"), "{}", run.stderr);
}

#[test]
fn server_text_cannot_drive_the_terminal() {
    let env = Env::new();
    let gate = gate();
    let sql = "DO $$ BEGIN RAISE EXCEPTION E'\\x1b]0;pwned\\x07\\x1b[2J'; END $$";
    let run = crate::support::run(
        at_gate(&env, &gate, "sql", "iamuserapp")
            .stdin(Stdio::null())
            .args(["-c", sql]),
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(!run.stderr.contains('\u{1b}'), "raw ESC: {:?}", run.stderr);
    assert!(!run.stderr.contains('\u{7}'), "raw BEL: {:?}", run.stderr);
    assert!(run.stderr.contains("\\u{1b}]0;pwned"), "{}", run.stderr);
}

// 12. Small ones.

#[test]
fn an_empty_rdsiam_psql_means_psql_on_path() {
    let env = Env::new();
    let (bin, _) = psql_stand_in(&env, "");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let run = crate::support::run(env.cmd().env("PATH", &path).env("RDSIAM_PSQL", "").args([
        "psql",
        "--host",
        "h.example",
        "-U",
        "u",
        "--region",
        REGION,
    ]));
    assert_eq!(run.code, 42, "{}", run.stderr);
}

#[test]
fn processes_holding_credentials_dump_no_core() {
    let env = Env::new();
    let (bin, record) = psql_stand_in(&env, "ulimit -c > RECORD");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let run = crate::support::run(env.cmd().env("PATH", &path).args([
        "psql",
        "--host",
        "h.example",
        "-U",
        "u",
        "--region",
        REGION,
    ]));
    assert_eq!(run.code, 42, "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&record).unwrap().trim(), "0");
}
