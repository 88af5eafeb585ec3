//! The second adversarial pass (issue 24), one test per hole, each failing
//! without its fix: psql's abbreviated long options, a credential_process
//! that floods or hangs, hostile environment values, terminal escapes in
//! what we print, IAM policy variables in a user name, a server silent
//! after login under `sql -c`.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Env, REGION, expect, run};

/// `rdsiam psql` with a stand-in psql first on PATH that records that it ran.
fn psql_with_stand_in(env: &Env) -> (Command, std::path::PathBuf) {
    let bin = env.home().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let record = env.home().join("psql-ran");
    let script = bin.join("psql");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$@\" > '{}'\nexit 42\n", record.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = env.cmd();
    cmd.env(
        "PATH",
        format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
    )
    .args(["psql", "--host", "h.example", "-U", "u", "--region", REGION]);
    (cmd, record)
}

#[test]
fn psql_long_option_abbreviations_cannot_move_the_connection() {
    let env = Env::new();
    for args in [
        &["--db=host=127.0.0.1 port=1 sslmode=disable"][..],
        &["--d=host=127.0.0.1"],
        &["--dbn", "sslmode=disable"],
        &["--ho=127.0.0.1"],
        &["--ho", "127.0.0.1"],
        &["--po=1"],
        &["-XAd", "sslmode=disable"],
        &["--s=x"],
    ] {
        let (mut cmd, record) = psql_with_stand_in(&env);
        let out = expect(cmd.arg("--").args(args), 2);
        assert!(out.stderr.starts_with("rdsiam: "), "{}", out.stderr);
        assert!(!record.exists(), "psql ran with {args:?}");
    }
    // Abbreviations of harmless options still pass, as psql reads them.
    let (mut cmd, record) = psql_with_stand_in(&env);
    let out = run(cmd.args(["--", "--tuples", "--no-a", "--comm=select 1"]));
    assert_eq!(out.code, 42, "{}", out.stderr);
    assert!(record.exists());
}

/// `rdsiam token` for a profile whose credential_process is `process`, with
/// an address-space limit that an unbounded reader would hit in under a
/// second.
fn token_with_process(env: &Env, process: &str) -> Command {
    env.aws_file(
        "config",
        &format!("[profile helper]\nregion = {REGION}\ncredential_process = {process}\n"),
    );
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -v 1048576; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_rdsiam"))
        .args([
            "token",
            "--host",
            "h.example",
            "-U",
            "u",
            "--profile",
            "helper",
        ])
        .args(["--api-timeout", "3"]);
    let bare = env.bare();
    cmd.env_clear();
    for (k, v) in bare.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    cmd
}

#[test]
fn a_credential_process_that_never_stops_writing_is_cut_at_a_mebibyte() {
    let env = Env::new();
    let started = Instant::now();
    let out = run(&mut token_with_process(&env, "yes"));
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("more than 1024 KiB"), "{}", out.stderr);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_credential_process_that_hangs_is_killed_at_the_timeout() {
    let env = Env::new();
    let pidfile = env.home().join("helper.pid");
    let out = run(&mut token_with_process(
        &env,
        &format!("sh -c 'echo $$ > {}; exec sleep 60'", pidfile.display()),
    ));
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("after 3s"), "{}", out.stderr);
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    let pid = pid.trim();
    let deadline = Instant::now() + Duration::from_secs(3);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(true);
        if zombie {
            break;
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
            panic!("the credential helper (pid {pid}) outlived rdsiam");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_credential_process_that_works_still_gives_a_token() {
    let env = Env::new();
    let json = r#"{"Version":1,"AccessKeyId":"AKIDHELPER","SecretAccessKey":"s","SessionToken":"t","Expiration":"2099-01-01T00:00:00Z"}"#;
    let out = expect(&mut token_with_process(&env, &format!("echo '{json}'")), 0);
    assert!(out.stdout.contains("AKIDHELPER"), "{}", out.stdout);
}

#[test]
fn non_utf8_values_in_variables_we_read_exit_2_naming_the_variable() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    let bad = OsStr::from_bytes(b"pro\xfffile");
    for name in [
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL_RDS",
        "AWS_ENDPOINT_URL",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "RDSIAM_PSQL",
        "RDSIAM_CONFIG",
        "RDSIAM_API_TIMEOUT",
    ] {
        for args in [
            &[
                "token",
                "--host",
                "h.example",
                "-U",
                "u",
                "--region",
                REGION,
            ][..],
            &["list", "--region", REGION],
            &["psql", "--host", "h.example", "-U", "u", "--region", REGION],
        ] {
            let out = run(env.cmd().env(name, bad).args(args));
            assert_eq!(out.code, 2, "{name} {args:?}: {}", out.stderr);
            assert!(out.stderr.contains(name), "{name}: {}", out.stderr);
            assert!(out.stderr.starts_with("rdsiam: "), "{}", out.stderr);
        }
    }
}

#[test]
fn config_target_names_cannot_drive_the_terminal_or_break_the_table() {
    let env = Env::new();
    let config = env.home().join("rdsiam.toml");
    std::fs::write(
        &config,
        "[targets.\"evil\\u001b]0;pwned\\u0007\\nrow\"]\nhost = \"h\\u001b[2J.example\"\nuser = \"u\"\n",
    )
    .unwrap();
    for args in [
        &["targets"][..],
        &["targets", "show", "evil\u{1b}]0;pwned\u{7}\nrow"],
    ] {
        let out = expect(env.cmd().env("RDSIAM_CONFIG", &config).args(args), 0);
        assert!(!out.stdout.contains('\u{1b}'), "{args:?}: {:?}", out.stdout);
        assert!(!out.stdout.contains('\u{7}'), "{:?}", out.stdout);
        assert!(out.stdout.contains("\\u{1b}"), "{:?}", out.stdout);
        // No line of the table starts with the name's second half.
        assert!(
            !out.stdout
                .lines()
                .any(|l| l.trim_start().starts_with("row")),
            "{:?}",
            out.stdout
        );
    }
}

#[test]
fn doctor_text_shows_server_and_user_text_escaped() {
    let env = Env::new();
    let gate = crate::db::gate();
    let api = rdsiam_testkit::rdsapi::RdsApi::start(rdsiam_testkit::rdsapi::Inventory::article())
        .unwrap();
    // The gate refuses the login and quotes the user name, as RDS does.
    let user = "x\u{1b}]8;;http://evil.example\u{7}y";
    let out = run(crate::db::at_gate(&env, &gate, "doctor", user)
        .args(["--endpoint-url", &api.url()])
        .env("AWS_ENDPOINT_URL_STS", api.url()));
    assert_eq!(out.code, 5, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("PAM authentication failed"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains('\u{1b}'), "{:?}", out.stdout);
    assert!(!out.stdout.contains('\u{7}'), "{:?}", out.stdout);
}

#[test]
fn policy_refuses_iam_policy_variables_unless_asked() {
    let env = Env::new();
    let api = rdsiam_testkit::rdsapi::RdsApi::start(rdsiam_testkit::rdsapi::Inventory::article())
        .unwrap();
    let policy = |extra: &[&str]| {
        let mut cmd = env.cmd();
        cmd.args([
            "policy",
            "--proxy",
            "PostgreSqlProxy",
            "-U",
            "${aws:username}",
        ])
        .args(["--region", REGION, "--endpoint-url", &api.url()])
        .env("AWS_ENDPOINT_URL_STS", api.url())
        .args(extra);
        cmd
    };
    let out = expect(&mut policy(&[]), 2);
    assert!(out.stderr.contains("policy variable"), "{}", out.stderr);
    assert!(
        out.stderr.contains("--allow-policy-variables"),
        "{}",
        out.stderr
    );
    assert!(
        api.requests().is_empty(),
        "called the API before the usage error"
    );
    let out = expect(&mut policy(&["--allow-policy-variables"]), 0);
    assert!(out.stdout.contains("/${aws:username}"), "{}", out.stdout);
}

#[test]
fn sql_c_against_a_server_silent_after_login_exits_4() {
    let env = Env::new();
    let gate = crate::db::gate();
    gate.set_fault(rdsiam_testkit::gate::Fault::SilentAfterLogin);
    let started = Instant::now();
    let out = crate::support::output_within(
        crate::db::at_gate(&env, &gate, "sql", "iamuserapp").args([
            "--connect-timeout",
            "2",
            "-c",
            "select 1",
        ]),
        20,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("went silent after login"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(12));
}

#[test]
fn api_timeouts_name_the_url_for_bare_names_and_in_doctor() {
    use rdsiam_testkit::rdsapi::{Fault, Inventory, RdsApi};
    let env = Env::new();
    let api = RdsApi::start(Inventory::article()).unwrap();
    api.set_fault(Fault::Hang);
    let out = crate::support::output_within(
        env.cmd()
            .args([
                "run",
                "PostgreSqlProxy",
                "-U",
                "iamuserapp",
                "--region",
                REGION,
            ])
            .args([
                "--endpoint-url",
                &api.url(),
                "--api-timeout",
                "2",
                "--",
                "true",
            ]),
        15,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(&api.url()), "{stderr}");
    let out = crate::support::output_within(
        env.cmd()
            .args(["doctor", "--proxy", "PostgreSqlProxy", "-U", "iamuserapp"])
            .args(["--region", REGION, "--endpoint-url", &api.url()])
            .args(["--api-timeout", "2"])
            .env("AWS_ENDPOINT_URL_STS", api.url()),
        25,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains(&api.url()), "{stdout}");
}
