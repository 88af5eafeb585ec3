//! `rdsiam token` with `--host`: the local fast path, output formats and
//! usage errors.

use std::process::Command;

use rdsiam_testkit::gate::{TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, sign_token, verify_token};

use crate::support::{Env, REGION, expect, token_time};

fn creds() -> Vec<(String, String, Option<String>)> {
    vec![(
        TEST_ACCESS_KEY_ID.into(),
        TEST_SECRET_ACCESS_KEY.into(),
        None,
    )]
}

#[test]
fn host_token_is_one_line_and_verifies_independently() {
    let env = Env::new();
    for user in [
        "iamuserapp",
        "jane@example.com",
        "ops+oncall",
        "a&b=c",
        "with space",
        "ユーザー",
    ] {
        let run = expect(
            env.cmd().args([
                "token",
                "--host",
                "Db.Example.COM",
                "--port",
                "6543",
                "--region",
                REGION,
                "-U",
                user,
            ]),
            0,
        );
        assert!(run.stderr.is_empty(), "{}", run.stderr);
        let token = run.stdout.strip_suffix('\n').expect("newline-terminated");
        assert!(!token.contains('\n'));
        assert!(token.starts_with("Db.Example.COM:6543/?Action=connect&DBUser="));
        // A second, hand-written SigV4 implementation agrees byte for byte.
        let at = token_time(token);
        let theirs = sign_token(
            "Db.Example.COM",
            6543,
            user,
            REGION,
            TEST_ACCESS_KEY_ID,
            TEST_SECRET_ACCESS_KEY,
            None,
            at,
        );
        assert_eq!(token, theirs, "user {user}");
        verify_token(
            token,
            user,
            "db.example.com",
            6543,
            REGION,
            &creds(),
            at + 60,
        )
        .unwrap();
    }
}

#[test]
fn session_token_and_region_from_environment() {
    let env = Env::new();
    let run = expect(
        env.cmd()
            .env("AWS_SESSION_TOKEN", "FwoG/session+token=")
            .env("AWS_DEFAULT_REGION", "eu-west-1")
            .args(["token", "--host", "h.example", "-U", "u"]),
        0,
    );
    let token = run.stdout.trim_end();
    assert!(token.contains("%2Feu-west-1%2Frds-db%2Faws4_request"));
    assert!(token.contains("&X-Amz-Security-Token=FwoG%2Fsession%2Btoken%3D&X-Amz-Signature="));
    assert!(token.starts_with("h.example:5432/"));
}

#[test]
fn json_output_has_every_field() {
    let env = Env::new();
    let run = expect(
        env.cmd().args([
            "token",
            "--host",
            "h.example",
            "-U",
            "iamuserapp",
            "--region",
            REGION,
            "-o",
            "json",
        ]),
        0,
    );
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["host"], "h.example");
    assert_eq!(v["port"], 5432);
    assert_eq!(v["user"], "iamuserapp");
    assert_eq!(v["region"], REGION);
    let token = v["token"].as_str().unwrap();
    let expires = aws_smithy_types::DateTime::from_str(
        v["expires_at"].as_str().unwrap(),
        aws_smithy_types::date_time::Format::DateTime,
    )
    .unwrap();
    assert_eq!(expires.secs(), crate::support::token_time(token) + 900);
}

#[test]
fn env_output_is_safe_to_eval() {
    let env = Env::new();
    let user = r#"o'brien "$(touch /tmp/pwned)" `x` \ ;"#;
    let script = format!(
        r#"eval "$("$RDSIAM" token --host h.example -U "$U" -d 'my db' --region {REGION} -o env)" && test -s "$PGSSLROOTCERT" && printf '%s|%s|%s|%s|%s' "$PGHOST" "$PGPORT" "$PGUSER" "$PGDATABASE" "$PGSSLMODE" && printf '\n%s' "$PGPASSWORD""#
    );
    let cmd = env.cmd();
    let program = cmd.get_program().to_owned();
    let envs: Vec<_> = cmd
        .get_envs()
        .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned())))
        .collect();
    let mut sh = Command::new("sh");
    sh.env_clear();
    for (k, v) in envs {
        if let Some(v) = v {
            sh.env(k, v);
        }
    }
    let run = expect(
        sh.env("RDSIAM", program)
            .env("U", user)
            .args(["-c", &script]),
        0,
    );
    let (vars, password) = run.stdout.split_once('\n').unwrap();
    assert_eq!(vars, format!("h.example|5432|{user}|my db|verify-full"));
    assert!(
        password.starts_with("h.example:5432/?Action=connect&DBUser=o%27brien%20%22%24%28touch")
    );
    assert!(!std::path::Path::new("/tmp/pwned").exists());
}

#[test]
fn usage_errors_exit_2() {
    let env = Env::new();
    let cases: &[&[&str]] = &[
        &["token", "--proxy", "p", "--cluster", "c", "-U", "u"],
        &["token", "--host", "h", "--instance", "i", "-U", "u"],
        &["token", "--host", "h", "-U", ""],
        &["token", "--host", "h"],
        &["token", "-U", "u"],
        &["token", "--host", "h", "-U", "u", "--port", "70000"],
        &["token", "--host", "h", "-U", "u", "--port", "0"],
        &["token", "--proxy", "p", "--reader", "-U", "u"],
        &["token", "--host", "h", "-U", "u", "-o", "yaml"],
    ];
    for args in cases {
        let run = expect(env.cmd().args(*args).arg("--region").arg(REGION), 2);
        assert!(run.stdout.is_empty(), "{args:?} printed {}", run.stdout);
    }
    let run = expect(
        env.cmd().args(["token", "--host", "h", "--region", REGION]),
        2,
    );
    assert!(run.stderr.contains("PGUSER"), "{}", run.stderr);
}

#[test]
fn no_region_anywhere_says_how_to_set_one() {
    let env = Env::new();
    let run = expect(env.cmd().args(["token", "--host", "h", "-U", "u"]), 3);
    assert!(run.stderr.contains("no AWS region"), "{}", run.stderr);
    assert!(run.stderr.contains("--region"), "{}", run.stderr);
}

#[test]
fn no_credentials_anywhere_fails_fast() {
    let env = Env::new();
    let started = std::time::Instant::now();
    let run = expect(
        env.bare()
            .args(["token", "--host", "h", "-U", "u", "--region", REGION]),
        3,
    );
    assert!(
        run.stderr.contains("no AWS credentials found"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("aws sso login"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
    // Not a timing assertion on speed, a guard against IMDS retry loops.
    assert!(started.elapsed().as_secs() < 10);
}

#[test]
fn profile_from_files_is_used() {
    let env = Env::new();
    env.aws_file("config", "[profile oncall]\nregion = ap-southeast-2\n");
    env.aws_file(
        "credentials",
        "[oncall]\naws_access_key_id = AKIAPROFILEEXAMPLE\naws_secret_access_key = profilesecret\n",
    );
    // --profile wins over keys in the environment, as in the AWS CLI.
    let run = expect(
        env.cmd()
            .args(["token", "--host", "h", "-U", "u", "--profile", "oncall"]),
        0,
    );
    assert!(
        run.stdout
            .contains("X-Amz-Credential=AKIAPROFILEEXAMPLE%2F"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("%2Fap-southeast-2%2Frds-db"),
        "{}",
        run.stdout
    );
    // AWS_PROFILE selects it too when no keys are in the environment.
    let run = expect(
        env.bare()
            .env("AWS_PROFILE", "oncall")
            .args(["token", "--host", "h", "-U", "u"]),
        0,
    );
    assert!(run.stdout.contains("AKIAPROFILEEXAMPLE"));
}

#[test]
fn unknown_profile_names_the_profile() {
    let env = Env::new();
    env.aws_file("config", "[profile real]\nregion = us-east-1\n");
    let run = expect(
        env.bare().args([
            "token",
            "--host",
            "h",
            "-U",
            "u",
            "--profile",
            "typo",
            "--region",
            REGION,
        ]),
        3,
    );
    assert!(run.stderr.contains("typo"), "{}", run.stderr);
}

#[test]
fn expired_sso_session_says_which_login_to_run() {
    let env = Env::new();
    env.aws_file(
        "config",
        "[profile prod-sso]\nsso_session = corp\nsso_account_id = 123456789012\nsso_role_name = OnCall\nregion = us-east-1\n\n[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = us-east-1\nsso_registration_scopes = sso:account:access\n",
    );
    // The SDK's cache file name is the SHA-1 of the session name.
    let cache = env.home().join(".aws/sso/cache");
    std::fs::create_dir_all(&cache).unwrap();
    let name = sha1_hex("corp");
    std::fs::write(
        cache.join(format!("{name}.json")),
        r#"{"accessToken":"expired","expiresAt":"2020-01-01T00:00:00Z","region":"us-east-1","startUrl":"https://corp.awsapps.com/start"}"#,
    )
    .unwrap();
    let run = expect(
        env.bare()
            .args(["token", "--host", "h", "-U", "u", "--profile", "prod-sso"]),
        3,
    );
    assert!(
        run.stderr.contains("aws sso login --profile prod-sso"),
        "{}",
        run.stderr
    );
}

fn sha1_hex(text: &str) -> String {
    let out = Command::new("sha1sum")
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn help_lists_exit_codes_and_version_works() {
    let env = Env::new();
    let run = expect(env.bare().arg("--help"), 0);
    assert!(run.stdout.contains("Exit codes:"));
    assert!(run.stdout.contains("5  the database refused the login"));
    let run = expect(env.bare().args(["token", "--help"]), 0);
    assert!(run.stdout.contains("--proxy"));
    assert!(run.stdout.contains("Exit codes:"));
    let run = expect(env.bare().arg("--version"), 0);
    assert!(run.stdout.starts_with("rdsiam "));
}
