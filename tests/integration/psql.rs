//! `rdsiam psql`: real psql through the IAM gate, and a stand-in psql that
//! records exactly what it was given.

use std::path::{Path, PathBuf};

use rdsiam_testkit::gate::{
    PROXY_ENDPOINT_HOST, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, verify_token,
};

use crate::db::{at_gate, ca_file, gate, gate_for, postgres};
use crate::support::{Env, REGION, expect};

#[test]
fn real_psql_through_the_gate_with_verify_full() {
    let env = Env::new();
    let gate = gate();
    let run = expect(
        at_gate(&env, &gate, "psql", "iamuserapp").args(["--", "-tAc", "select current_user"]),
        0,
    );
    assert_eq!(run.stdout, "iamuserapp\n");
    assert!(
        gate.events()
            .contains(&"accepted user=iamuserapp".to_owned())
    );
}

#[test]
fn real_psql_via_a_tunnel_to_an_rds_host_name() {
    let env = Env::new();
    let gate = gate_for(PROXY_ENDPOINT_HOST, Some(5432));
    let run = expect(
        env.cmd()
            .args([
                "psql",
                "--host",
                PROXY_ENDPOINT_HOST,
                "-U",
                "ops+oncall",
                "-d",
                "app",
                "--region",
                REGION,
            ])
            .args(["--via", &format!("localhost:{}", gate.port())])
            .arg("--ca-bundle")
            .arg(ca_file(&env, &gate))
            .args([
                "--",
                "-tAc",
                "select current_user || ' ' || ssl from pg_stat_ssl where pid = pg_backend_pid()",
            ]),
        0,
    );
    assert_eq!(run.stdout, "ops+oncall true\n");
}

#[test]
fn psql_exit_status_passes_through() {
    let env = Env::new();
    let gate = gate();
    let script = env.home().join("fail.sql");
    std::fs::write(&script, "select 1/0;\nselect 'not reached';\n").unwrap();
    let run = crate::support::run(
        at_gate(&env, &gate, "psql", "iamuserapp")
            .args(["--", "-X", "-v", "ON_ERROR_STOP=1", "-f"])
            .arg(&script),
    );
    assert_eq!(run.code, 3, "psql's ON_ERROR_STOP status: {}", run.stderr);
    assert!(run.stderr.contains("division by zero"), "{}", run.stderr);
    assert!(!run.stdout.contains("not reached"));
}

/// A psql stand-in that records argv and environment, then exits 42.
fn stand_in(env: &Env) -> (PathBuf, PathBuf) {
    let bin = env.home().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let record = env.home().join("record");
    let script = bin.join("psql");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n: > '{r}.argv'\nfor a in \"$@\"; do printf '%s\\0' \"$a\" >> '{r}.argv'; done\nenv -0 > '{r}.env'\nexit 42\n",
            r = record.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (bin, record)
}

fn read_nul(path: &Path) -> Vec<String> {
    let data = std::fs::read(path).unwrap();
    data.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8(s.to_vec()).unwrap())
        .collect()
}

#[test]
fn stand_in_gets_token_in_pgpassword_and_args_unchanged() {
    let env = Env::new();
    let (bin, record) = stand_in(&env);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let passthrough = [
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        "select 'a b', \"x\" from t where y = 'it''s'",
        "--",
        "-tA",
        "  spaced  ",
    ];
    let run = crate::support::run(
        env.cmd()
            .env("PATH", &path)
            .env("PGHOSTADDR", "10.9.9.9")
            .args([
                "psql",
                "--host",
                "db.example.com",
                "--port",
                "6543",
                "-U",
                "jane@example.com",
                "-d",
                "app",
                "--region",
                REGION,
                "--",
            ])
            .args(passthrough),
    );
    assert_eq!(
        run.code, 42,
        "stand-in's status passes through: {}",
        run.stderr
    );

    let argv = read_nul(&record.with_extension("argv"));
    assert_eq!(argv, passthrough);
    let vars: std::collections::HashMap<String, String> = read_nul(&record.with_extension("env"))
        .into_iter()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect();
    let token = &vars["PGPASSWORD"];
    assert!(
        argv.iter().all(|a| !a.contains("X-Amz-Signature")),
        "token in argv"
    );
    let creds = vec![(
        TEST_ACCESS_KEY_ID.to_owned(),
        TEST_SECRET_ACCESS_KEY.to_owned(),
        None,
    )];
    let now = crate::support::token_time(token);
    verify_token(
        token,
        "jane@example.com",
        "db.example.com",
        6543,
        REGION,
        &creds,
        now,
    )
    .unwrap();
    assert_eq!(vars["PGHOST"], "db.example.com");
    assert_eq!(vars["PGPORT"], "6543");
    assert_eq!(vars["PGUSER"], "jane@example.com");
    assert_eq!(vars["PGDATABASE"], "app");
    assert_eq!(vars["PGSSLMODE"], "verify-full");
    assert_eq!(vars["PGAPPNAME"], "rdsiam");
    assert!(
        !vars.contains_key("PGHOSTADDR"),
        "an inherited PGHOSTADDR would bypass the endpoint"
    );
    let ca = Path::new(&vars["PGSSLROOTCERT"]);
    assert!(
        ca.starts_with(env.home()),
        "CA cache lives in the user's cache dir: {}",
        ca.display()
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(ca).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(std::fs::read_to_string(ca).unwrap(), rdsiam::ca::BUNDLE);
}

#[test]
fn stand_in_with_via_gets_pghostaddr_and_the_tunnel_port() {
    let env = Env::new();
    let (bin, record) = stand_in(&env);
    let ca = env.home().join("my-ca.pem");
    std::fs::write(&ca, rdsiam::ca::BUNDLE).unwrap();
    crate::support::run(
        env.cmd()
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .args([
                "psql",
                "--host",
                PROXY_ENDPOINT_HOST,
                "-U",
                "u",
                "--region",
                REGION,
                "--via",
                "localhost:15432",
                "--sslmode",
                "verify-ca",
            ])
            .arg("--ca-bundle")
            .arg(&ca),
    );
    let vars = read_nul(&record.with_extension("env"));
    for want in [
        format!("PGHOST={PROXY_ENDPOINT_HOST}"),
        "PGHOSTADDR=127.0.0.1".to_owned(),
        "PGPORT=15432".to_owned(),
        "PGSSLMODE=verify-ca".to_owned(),
        format!("PGSSLROOTCERT={}", ca.display()),
    ] {
        assert!(vars.contains(&want), "{want} missing: {vars:?}");
    }
}

#[test]
fn print_env_masks_the_password() {
    let env = Env::new();
    let (bin, _) = stand_in(&env);
    let run = expect(
        env.cmd()
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .args([
                "psql",
                "--host",
                "h.example",
                "-U",
                "u",
                "--region",
                REGION,
                "--print-env",
                "--",
                "-c",
                "select 1",
            ]),
        0,
    );
    assert!(run.stdout.contains("PGHOST='h.example'"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("PGPASSWORD='<IAM token, valid 15 minutes>'"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("'-c' 'select 1'"), "{}", run.stdout);
    assert!(!run.stdout.contains("X-Amz"), "{}", run.stdout);
}

#[test]
fn missing_psql_says_how_to_install_it() {
    let env = Env::new();
    let empty = env.home().join("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let run = expect(
        env.cmd()
            .env("PATH", &empty)
            .args(["psql", "--host", "h", "-U", "u", "--region", REGION]),
        1,
    );
    assert!(
        run.stderr.contains("psql is not installed"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("apt-get install postgresql-client"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("brew install libpq"), "{}", run.stderr);

    let run = expect(
        env.cmd().args([
            "psql",
            "--host",
            "h",
            "-U",
            "u",
            "--region",
            REGION,
            "--psql",
            "/nonexistent/psql",
        ]),
        1,
    );
    assert!(
        run.stderr
            .contains("/nonexistent/psql is not an executable file"),
        "{}",
        run.stderr
    );
    let run = expect(
        env.cmd()
            .env("RDSIAM_PSQL", "/nonexistent/psql")
            .args(["psql", "--host", "h", "-U", "u", "--region", REGION]),
        1,
    );
    assert!(run.stderr.contains("/nonexistent/psql"), "{}", run.stderr);
    // The real one, named explicitly with an empty PATH, works through the gate.
    let real = postgres().psql_path();
    assert!(
        real.is_absolute(),
        "psql must be found in PostgreSQL's bin dir: {}",
        real.display()
    );
    let gate = gate();
    let run = expect(
        at_gate(&env, &gate, "psql", "iamuserapp")
            .env("PATH", &empty)
            .arg("--psql")
            .arg(&real)
            .args(["--", "-tAc", "select current_user"]),
        0,
    );
    assert_eq!(run.stdout, "iamuserapp\n");
}
