//! `rdsiam check` through the IAM gate and a real PostgreSQL: verified TLS,
//! `--via`, and each failure with its exit code and message.

use rdsiam_testkit::gate::{Fault, PROXY_ENDPOINT_HOST};
use rdsiam_testkit::rdsapi::{Inventory, RdsApi};

use crate::db::{at_gate, ca_file, check_via_api, gate, gate_for};
use crate::support::{Env, REGION, expect};

fn check(env: &Env, gate: &rdsiam_testkit::gate::Gate, user: &str) -> std::process::Command {
    let mut cmd = at_gate(env, gate, "check", user);
    cmd.arg("--no-aws-identity");
    cmd
}

#[test]
fn check_logs_in_over_verified_tls() {
    let env = Env::new();
    let gate = gate();
    let run = expect(&mut check(&env, &gate, "iamuserapp"), 0);
    assert!(
        run.stdout
            .starts_with("ok: logged in as iamuserapp to app\n"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("primary (writable)"), "{}", run.stdout);
    assert!(run.stdout.contains("TLSv1."), "{}", run.stdout);
    assert!(
        gate.events()
            .contains(&"accepted user=iamuserapp".to_owned()),
        "{:?}",
        gate.events()
    );

    let run = expect(check(&env, &gate, "iamuserapp").args(["-o", "json"]), 0);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["current_user"], "iamuserapp");
    assert_eq!(v["session_user"], "iamuserapp");
    assert_eq!(v["database"], "app");
    assert_eq!(v["in_recovery"], false);
    assert_eq!(v["tls"]["in_use"], true);
    assert_eq!(v["tls"]["sslmode"], "verify-full");
    assert_eq!(v["server_addr"], "127.0.0.1");
    assert!(
        v["server_version"]
            .as_str()
            .unwrap()
            .starts_with(char::is_numeric)
    );
}

#[test]
fn reserved_and_non_ascii_user_names_log_in() {
    let env = Env::new();
    let gate = gate();
    for user in [
        "jane@example.com",
        "ops+oncall",
        "a&b=c",
        "with space",
        "ユーザー",
    ] {
        let run = expect(
            check(&env, &gate, user).args(["-o", "json", "--expect-user", user]),
            0,
        );
        let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(v["current_user"], user);
    }
}

#[test]
fn via_keeps_the_real_host_for_token_and_tls() {
    let env = Env::new();
    let gate = gate_for(PROXY_ENDPOINT_HOST, Some(5432));
    let via = format!("127.0.0.1:{}", gate.port());
    let run = expect(
        env.cmd()
            .args([
                "check",
                "--host",
                PROXY_ENDPOINT_HOST,
                "-U",
                "iamuserapp",
                "-d",
                "app",
                "--region",
                REGION,
            ])
            .args(["--via", &via, "--no-aws-identity", "-o", "json"])
            .arg("--ca-bundle")
            .arg(ca_file(&env, &gate)),
        0,
    );
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["endpoint"]["host"], PROXY_ENDPOINT_HOST);
    assert_eq!(v["endpoint"]["port"], 5432);
    assert_eq!(v["endpoint"]["via"], via.as_str());
    // Same through RDSIAM_VIA.
    expect(
        env.cmd()
            .env("RDSIAM_VIA", &via)
            .env("PGSSLROOTCERT", ca_file(&env, &gate))
            .args([
                "check",
                "--host",
                PROXY_ENDPOINT_HOST,
                "-U",
                "iamuserapp",
                "-d",
                "app",
                "--region",
                REGION,
                "--no-aws-identity",
            ]),
        0,
    );
}

#[test]
fn proxy_by_name_with_aws_identity() {
    let env = Env::new();
    let api = RdsApi::start(Inventory::article()).unwrap();
    let proxy = Inventory::article().proxies[0].clone();
    let gate = gate_for(&proxy.endpoint, Some(5432));
    let run = expect(
        check_via_api(
            &env,
            &gate,
            &api,
            &["--proxy", "PostgreSqlProxy"],
            "iamuserapp",
        )
        .env("AWS_ENDPOINT_URL_STS", api.url())
        .args(["-o", "json"]),
        0,
    );
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        v["aws_identity"]["arn"],
        Inventory::article().caller_arn.as_str()
    );
    assert_eq!(v["endpoint"]["kind"], "proxy");
    assert_eq!(v["endpoint"]["name"], "PostgreSqlProxy");
    assert_eq!(api.count("GetCallerIdentity"), 1);
}

#[test]
fn sts_failure_does_not_fail_the_check() {
    let env = Env::new();
    let gate = gate();
    let closed = crate::support::closed_port();
    let run = expect(
        at_gate(&env, &gate, "check", "iamuserapp")
            .env("AWS_ENDPOINT_URL_STS", format!("http://127.0.0.1:{closed}")),
        0,
    );
    assert!(
        run.stdout.contains("aws identity  unknown ("),
        "{}",
        run.stdout
    );
}

#[test]
fn expect_user_mismatch_exits_6() {
    let env = Env::new();
    let gate = gate();
    let run = expect(
        check(&env, &gate, "iamuserapp").args(["--expect-user", "admin"]),
        6,
    );
    assert!(
        run.stderr
            .contains("logged in as `iamuserapp`, expected `admin`"),
        "{}",
        run.stderr
    );
    expect(
        check(&env, &gate, "iamuserapp").args(["--expect-user", "iamuserapp"]),
        0,
    );
}

#[test]
fn untrusted_certificate_exits_4() {
    let env = Env::new();
    let gate = gate();
    // The built-in bundle does not hold the test CA: verify-full must refuse.
    let run = expect(
        env.cmd().args([
            "check",
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
            "--no-aws-identity",
        ]),
        4,
    );
    assert!(
        run.stderr.contains("certificate is not trusted"),
        "{}",
        run.stderr
    );
    assert!(
        !gate.events().iter().any(|e| e.starts_with("accepted")),
        "no login without trust"
    );

    gate.set_fault(Fault::WrongCert);
    let run = expect(&mut check(&env, &gate, "iamuserapp"), 4);
    assert!(run.stderr.contains("not trusted"), "{}", run.stderr);
    assert!(run.stderr.contains("--ca-bundle"), "{}", run.stderr);
}

#[test]
fn system_roots_back_up_the_built_in_bundle() {
    let env = Env::new();
    let gate = gate();
    // rustls-native-certs reads SSL_CERT_FILE as the system store: a CA
    // there is trusted alongside the built-in bundle, with no --ca-bundle.
    let run = expect(
        env.cmd().env("SSL_CERT_FILE", ca_file(&env, &gate)).args([
            "check",
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
            "--no-aws-identity",
        ]),
        0,
    );
    assert!(run.stdout.contains("sslmode verify-full"), "{}", run.stdout);
    // --ca-bundle is the whole trust store, as libpq's sslrootcert is.
    let other = env.home().join("other.pem");
    std::fs::write(&other, rdsiam::ca::BUNDLE).unwrap();
    let run = expect(
        env.cmd()
            .env("SSL_CERT_FILE", ca_file(&env, &gate))
            .args([
                "check",
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
                "--no-aws-identity",
            ])
            .arg("--ca-bundle")
            .arg(&other),
        4,
    );
    assert!(run.stderr.contains("not trusted"), "{}", run.stderr);
}

#[test]
fn certificate_for_another_name_exits_4_unless_verify_ca() {
    let env = Env::new();
    let gate = gate();
    gate.set_fault(Fault::WrongHostCert);
    let run = expect(&mut check(&env, &gate, "iamuserapp"), 4);
    assert!(
        run.stderr.contains("does not name `localhost`"),
        "{}",
        run.stderr
    );
    expect(
        check(&env, &gate, "iamuserapp").args(["--sslmode", "verify-ca"]),
        0,
    );
    gate.set_fault(Fault::WrongCert);
    expect(
        check(&env, &gate, "iamuserapp").args(["--sslmode", "verify-ca"]),
        4,
    );
    expect(
        check(&env, &gate, "iamuserapp").args(["--sslmode", "require"]),
        0,
    );
}

#[test]
fn refused_logins_exit_5_with_the_known_causes() {
    let env = Env::new();
    let gate = gate();
    let run = expect(&mut check(&env, &gate, "norights"), 5);
    assert!(
        run.stderr
            .contains("PAM authentication failed for user \"norights\""),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("28P01"), "{}", run.stderr);
    let rds_iam = run
        .stderr
        .find("GRANT rds_iam TO \"norights\"")
        .expect("rds_iam cause");
    let policy = run.stderr.find("rds-db:connect").expect("policy cause");
    let clock = run.stderr.find("clock skew").expect("clock cause");
    assert!(
        rds_iam < policy && policy < clock,
        "causes in order: {}",
        run.stderr
    );
    // Nothing secret leaks into the message.
    assert!(!run.stderr.contains("X-Amz-Signature"), "{}", run.stderr);

    let run = expect(&mut check(&env, &gate, "nosuchrole"), 5);
    assert!(
        run.stderr.contains("PAM authentication failed"),
        "{}",
        run.stderr
    );
}

#[test]
fn expired_token_and_wrong_credentials_exit_5() {
    let env = Env::new();
    let gate = gate();
    gate.set_clock_offset(16 * 60);
    expect(&mut check(&env, &gate, "iamuserapp"), 5);
    gate.set_clock_offset(0);
    assert!(
        gate.events().iter().any(|e| e.contains("reason=expired")),
        "{:?}",
        gate.events()
    );

    let run = expect(
        check(&env, &gate, "iamuserapp").env("AWS_SECRET_ACCESS_KEY", "not-the-secret"),
        5,
    );
    assert!(
        run.stderr.contains("PAM authentication failed"),
        "{}",
        run.stderr
    );
    assert!(
        gate.events()
            .iter()
            .any(|e| e.contains("reason=bad-signature")),
        "{:?}",
        gate.events()
    );
}

#[test]
fn region_mismatch_is_named_first() {
    let env = Env::new();
    let gate = gate_for(PROXY_ENDPOINT_HOST, Some(5432));
    let run = expect(
        env.cmd()
            .args([
                "check",
                "--host",
                PROXY_ENDPOINT_HOST,
                "-U",
                "iamuserapp",
                "-d",
                "app",
                "--region",
                "eu-west-1",
            ])
            .args([
                "--via",
                &format!("127.0.0.1:{}", gate.port()),
                "--no-aws-identity",
            ])
            .arg("--ca-bundle")
            .arg(ca_file(&env, &gate)),
        5,
    );
    assert!(run.stderr.contains("1. region mismatch"), "{}", run.stderr);
    assert!(run.stderr.contains("--region us-east-1"), "{}", run.stderr);
}

#[test]
fn missing_database_exits_5() {
    let env = Env::new();
    let gate = gate();
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
        "nosuchdb",
        "--region",
        REGION,
        "--no-aws-identity",
    ])
    .arg("--ca-bundle")
    .arg(ca_file(&env, &gate));
    let run = expect(&mut cmd, 5);
    assert!(run.stderr.contains("3D000"), "{}", run.stderr);
    assert!(run.stderr.contains("--dbname"), "{}", run.stderr);
}

#[test]
fn network_failures_exit_4() {
    let env = Env::new();
    let gate = gate();

    gate.set_fault(Fault::DropAfterBytes(10));
    let run = expect(&mut check(&env, &gate, "iamuserapp"), 4);
    assert!(run.stderr.starts_with("rdsiam: "), "{}", run.stderr);

    gate.set_fault(Fault::StallHandshake);
    let run = expect(
        check(&env, &gate, "iamuserapp").args(["--connect-timeout", "1"]),
        4,
    );
    assert!(run.stderr.contains("timed out after 1s"), "{}", run.stderr);
    assert!(run.stderr.contains("--via"), "{}", run.stderr);

    // Failures before any TLS: no gate needed.
    let at = |host: &str, extra: &[&str]| {
        let mut cmd = env.cmd();
        cmd.args([
            "check",
            "--host",
            host,
            "-U",
            "u",
            "--region",
            REGION,
            "--no-aws-identity",
        ])
        .args(extra);
        cmd
    };
    let closed = crate::support::closed_port().to_string();
    let run = expect(&mut at("127.0.0.1", &["--port", &closed]), 4);
    assert!(
        run.stderr.contains("cannot connect to 127.0.0.1:"),
        "{}",
        run.stderr
    );

    let run = expect(&mut at("no-such-host.invalid", &[]), 4);
    assert!(
        run.stderr.contains("cannot resolve `no-such-host.invalid`"),
        "{}",
        run.stderr
    );

    let run = expect(&mut at("h", &["--via", &format!("127.0.0.1:{closed}")]), 4);
    assert!(run.stderr.contains("tunnel"), "{}", run.stderr);
}

#[test]
fn iam_off_on_the_target_is_the_first_cause() {
    let env = Env::new();
    let api = RdsApi::start(Inventory::article()).unwrap();
    let off = Inventory::article()
        .instances
        .into_iter()
        .find(|i| !i.iam_enabled)
        .unwrap();
    let mut cfg = rdsiam_testkit::gate::GateConfig::new(crate::db::postgres());
    cfg.endpoint_host = off.address.clone();
    cfg.endpoint_port = Some(off.port);
    cfg.iam_off_hosts = vec![off.address.clone()];
    let gate = rdsiam_testkit::gate::Gate::start(cfg).unwrap();
    let run = expect(
        check_via_api(&env, &gate, &api, &["--instance", &off.id], "iamuserapp")
            .arg("--no-aws-identity"),
        5,
    );
    // The server checked the token as a password: with IAM off on the
    // target, that is the one cause (the one list of causes, issue 18).
    assert!(
        run.stderr.contains("1. IAM auth is off on the target"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "--db-instance-identifier {} --enable-iam-database-authentication",
            off.id
        )),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("2. "), "{}", run.stderr);
}

#[test]
fn aurora_instance_policy_names_the_cluster_resource_id() {
    let env = Env::new();
    let api = RdsApi::start(Inventory::article()).unwrap();
    let inv = Inventory::article();
    let writer = inv
        .instances
        .iter()
        .find(|i| i.cluster_id.is_some())
        .unwrap()
        .clone();
    let gate = gate_for(&writer.address, Some(writer.port));
    let run = expect(
        check_via_api(&env, &gate, &api, &["--instance", &writer.id], "norights")
            .arg("--no-aws-identity"),
        5,
    );
    let cluster_id = &inv.clusters[0].resource_id;
    assert!(
        run.stderr
            .contains(&format!(":dbuser:{cluster_id}/norights")),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(&writer.resource_id), "{}", run.stderr);
}
