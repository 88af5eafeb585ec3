//! `rdsiam doctor` and `rdsiam policy` against the local RDS/STS API, the
//! IAM gate and the throwaway PostgreSQL: each cause produced for real, and
//! named by the step that finds it.

use std::process::Command;
use std::time::{Duration, SystemTime};

use rdsiam_testkit::gate::{
    Gate, GateConfig, TEST_ACCESS_KEY_ID, TEST_REGION, TEST_SECRET_ACCESS_KEY,
};
use rdsiam_testkit::rdsapi::{Instance, Inventory, RdsApi};
use serde_json::Value;

use crate::db::{ca_file, gate, gate_for, postgres};
use crate::support::{Env, REGION, closed_port, expect};

/// `rdsiam doctor <target…> -U user -d app`, AWS APIs from `api`, the
/// gate's CA trusted when there is a gate.
fn doctor(env: &Env, api: &RdsApi, gate: Option<&Gate>, target: &[&str], user: &str) -> Command {
    let mut cmd = env.cmd();
    cmd.arg("doctor")
        .args(target)
        .args(["-U", user, "-d", "app", "--region", REGION])
        .args(["--endpoint-url", &api.url()])
        .env("AWS_ENDPOINT_URL_STS", api.url());
    if let Some(gate) = gate {
        cmd.arg("--ca-bundle").arg(ca_file(env, gate));
    }
    cmd
}

/// The same through `--via` to the gate, for RDS-named endpoints.
fn doctor_via(env: &Env, api: &RdsApi, gate: &Gate, target: &[&str], user: &str) -> Command {
    let mut cmd = doctor(env, api, Some(gate), target, user);
    cmd.args(["--via", &format!("127.0.0.1:{}", gate.port())]);
    cmd
}

/// `--host localhost --port <gate>`: no RDS API call.
fn doctor_at_gate(env: &Env, api: &RdsApi, gate: &Gate, user: &str) -> Command {
    let port = gate.port().to_string();
    doctor(
        env,
        api,
        Some(gate),
        &["--host", "localhost", "--port", &port],
        user,
    )
}

#[track_caller]
fn json(cmd: &mut Command, code: i32) -> Value {
    let run = expect(cmd.args(["-o", "json"]), code);
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("doctor -o json: {e}\n{}\n{}", run.stdout, run.stderr))
}

#[track_caller]
fn step<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name}: {report:#}"))
}

#[track_caller]
fn status(report: &Value, name: &str) -> String {
    step(report, name)["status"].as_str().unwrap().to_owned()
}

fn text(v: &Value) -> String {
    v.to_string()
}

fn gate_playing(host: &str, port: u16, tweak: impl FnOnce(&mut GateConfig)) -> Gate {
    let mut cfg = GateConfig::new(postgres());
    cfg.endpoint_host = host.to_owned();
    cfg.endpoint_port = Some(port);
    tweak(&mut cfg);
    Gate::start(cfg).expect("gate starts")
}

#[test]
fn every_step_passes_through_the_proxy_and_the_schema_is_stable() {
    let env = Env::new();
    let api = RdsApi::start(Inventory::article()).unwrap();
    let inv = Inventory::article();
    let proxy = &inv.proxies[0];
    let gate = gate_for(&proxy.endpoint, Some(5432));
    let report = json(
        &mut doctor_via(
            &env,
            &api,
            &gate,
            &["--proxy", "PostgreSqlProxy"],
            "iamuserapp",
        ),
        0,
    );
    let top: Vec<&str> = report
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        top,
        [
            "exit_code",
            "failures",
            "schema_version",
            "steps",
            "target",
            "warnings"
        ]
    );
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["exit_code"], 0);
    let names: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "credentials",
            "identity",
            "target",
            "policy",
            "network",
            "tls",
            "login",
            "inside"
        ]
    );
    for s in report["steps"].as_array().unwrap() {
        let keys: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "details",
                "elapsed_ms",
                "exit_code",
                "found",
                "name",
                "next",
                "status",
                "step"
            ]
        );
        assert_eq!(s["status"], "ok", "{s:#}");
    }
    assert_eq!(report["target"]["kind"], "proxy");
    assert_eq!(report["target"]["host"], proxy.endpoint.as_str());
    let creds = &step(&report, "credentials")["details"];
    assert_eq!(creds["source"], "environment (AWS_ACCESS_KEY_ID)");
    assert_eq!(creds["access_key_id"], "AKIA…MPLE");
    assert!(!text(&report).contains(TEST_SECRET_ACCESS_KEY));
    let identity = &step(&report, "identity")["details"];
    assert_eq!(identity["arn"], inv.caller_arn.as_str());
    assert!(identity["clock_skew_s"].as_i64().unwrap().abs() <= 2);
    let target = &step(&report, "target")["details"];
    assert_eq!(target["auth_scheme"], "IAM_AUTH");
    assert_eq!(target["require_tls"], true);
    assert_eq!(
        target["backend"]["resource_id"],
        inv.clusters[0].resource_id.as_str()
    );
    let policy = &step(&report, "policy")["details"];
    assert_eq!(
        policy["resource_arn"],
        "arn:aws:rds-db:us-east-1:123456789012:dbuser:prx-0123456789abcdef0/iamuserapp"
    );
    assert_eq!(
        policy["proxy_role_arn"],
        "arn:aws:iam::123456789012:role/PostgreSqlProxy-proxy-role"
    );
    assert_eq!(
        policy["proxy_role_resource_arn"],
        format!(
            "arn:aws:rds-db:us-east-1:123456789012:dbuser:{}/iamuserapp",
            inv.clusters[0].resource_id
        )
    );
    let tls = &step(&report, "tls")["details"];
    assert_eq!(tls["trusted_by"], "ca-bundle");
    assert!(
        tls["anchor"]
            .as_str()
            .unwrap()
            .starts_with("rdsiam test CA"),
        "{tls}"
    );
    assert!(tls["certificate_days_left"].as_u64().unwrap() > 1000);
    let inside = &step(&report, "inside")["details"];
    assert_eq!(inside["current_user"], "iamuserapp");
    assert_eq!(inside["rds_iam_member"], true);
    assert_eq!(inside["database_exists"], true);
    assert_eq!(inside["role"], "writer");
    assert!(
        gate.events()
            .contains(&"accepted user=iamuserapp".to_owned())
    );

    // Text: one line per step, ok, with its time.
    let run = expect(
        &mut doctor_via(
            &env,
            &api,
            &gate,
            &["--proxy", "PostgreSqlProxy"],
            "iamuserapp",
        ),
        0,
    );
    for (n, name) in [
        "credentials",
        "identity",
        "target",
        "policy",
        "network",
        "tls",
        "login",
        "inside",
    ]
    .iter()
    .enumerate()
    {
        let line = run
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("ok    {} {name}", n + 1)))
            .unwrap_or_else(|| panic!("no ok line for {name}:\n{}", run.stdout));
        assert!(line.ends_with(" ms)"), "{line}");
    }
    assert!(
        run.stdout.contains("result: 0 failed, 0 warnings; exit 0"),
        "{}",
        run.stdout
    );
}

#[test]
fn credentials_expiring_soon_warn_and_fail_under_strict() {
    let env = Env::new();
    let api = RdsApi::start(Inventory::default()).unwrap();
    let gate = {
        let mut cfg = GateConfig::new(postgres());
        cfg.credentials = vec![(
            TEST_ACCESS_KEY_ID.to_owned(),
            TEST_SECRET_ACCESS_KEY.to_owned(),
            Some("session-from-process".to_owned()),
        )];
        Gate::start(cfg).unwrap()
    };
    let expires = aws_smithy_types::DateTime::from(SystemTime::now() + Duration::from_secs(600))
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap();
    let script = env.home().join("creds.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho '{{\"Version\": 1, \"AccessKeyId\": \"{TEST_ACCESS_KEY_ID}\", \"SecretAccessKey\": \"{TEST_SECRET_ACCESS_KEY}\", \"SessionToken\": \"session-from-process\", \"Expiration\": \"{expires}\"}}'\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    env.aws_file(
        "config",
        &format!(
            "[profile expiring]\ncredential_process = {}\nregion = {TEST_REGION}\n",
            script.display()
        ),
    );
    let run_with = |extra: &[&str], code| {
        let mut cmd = env.bare();
        cmd.env("AWS_ENDPOINT_URL_STS", api.url())
            .args([
                "doctor",
                "--host",
                "localhost",
                "--port",
                &gate.port().to_string(),
            ])
            .args(["-U", "iamuserapp", "-d", "app", "--profile", "expiring"])
            .arg("--ca-bundle")
            .arg(ca_file(&env, &gate))
            .args(extra);
        json(&mut cmd, code)
    };
    let report = run_with(&[], 0);
    let creds = step(&report, "credentials");
    assert_eq!(creds["status"], "warn", "{creds:#}");
    assert_eq!(
        creds["details"]["source"],
        "credential_process (profile expiring)"
    );
    assert_eq!(creds["details"]["session_token"], true);
    let left = creds["details"]["expires_in_s"].as_i64().unwrap();
    assert!((540..=600).contains(&left), "{left}");
    assert!(text(&creds["found"]).contains("a token minted now (15 min) would die with them"));
    assert!(
        text(&creds["next"]).contains("credential_process"),
        "{creds:#}"
    );
    // The login itself still works: the warning is about what comes next.
    assert_eq!(status(&report, "login"), "ok");
    assert_eq!(report["warnings"], 1);
    let report = run_with(&["--strict"], 6);
    assert_eq!(report["exit_code"], 6);
}

#[test]
fn clock_skew_is_read_from_the_sts_date_and_explains_the_refusal() {
    let env = Env::new();
    let api = RdsApi::start(Inventory::default()).unwrap();
    let gate = gate();
    // This machine is 7 minutes ahead of AWS: STS refuses the signature's
    // time (the SDK then corrects its own signing and retries) and says so
    // in its Date header; the gate (AWS's clock) sees tokens from the future.
    api.require_signatures(&[(TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY)]);
    api.set_clock_offset(-420);
    gate.set_clock_offset(-420);
    let report = json(&mut doctor_at_gate(&env, &api, &gate, "iamuserapp"), 3);
    let identity = step(&report, "identity");
    assert_eq!(identity["status"], "fail");
    let skew = identity["details"]["clock_skew_s"].as_i64().unwrap();
    assert!((-425..=-415).contains(&skew), "{skew}");
    assert!(
        text(&identity["found"]).contains("7 min ahead of AWS time"),
        "{identity:#}"
    );
    assert!(
        text(&identity["next"]).contains("timedatectl"),
        "{identity:#}"
    );
    let login = step(&report, "login");
    assert_eq!(login["status"], "fail");
    assert_eq!(login["exit_code"], 5);
    assert!(
        login["details"]["causes"][0]
            .as_str()
            .unwrap()
            .starts_with("clock skew (step 2)"),
        "{login:#}"
    );
    assert!(
        gate.events().iter().any(|e| e.contains("reason=")),
        "{:?}",
        gate.events()
    );

    // 90 s off: a warning, the login still works.
    api.set_clock_offset(-90);
    gate.set_clock_offset(-90);
    let report = json(&mut doctor_at_gate(&env, &api, &gate, "iamuserapp"), 0);
    assert_eq!(status(&report, "identity"), "warn");
    assert_eq!(status(&report, "login"), "ok");
    expect(
        doctor_at_gate(&env, &api, &gate, "iamuserapp").arg("--strict"),
        6,
    );
}

#[test]
fn iam_auth_off_is_found_at_the_target_and_named_at_the_login() {
    let env = Env::new();
    let api = RdsApi::start(Inventory::article()).unwrap();
    let off = Inventory::article()
        .instances
        .into_iter()
        .find(|i| !i.iam_enabled)
        .unwrap();
    let gate = gate_playing(&off.address, off.port, |cfg| {
        cfg.iam_off_hosts = vec![off.address.clone()];
    });
    let run = expect(
        &mut doctor_via(&env, &api, &gate, &["--instance", &off.id], "iamuserapp"),
        3,
    );
    assert!(run.stdout.contains("FAIL  3 target"), "{}", run.stdout);
    assert!(
        run.stdout.contains(&format!(
            "aws rds modify-db-instance --db-instance-identifier {} --enable-iam-database-authentication",
            off.id
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .starts_with("rdsiam: doctor: step 3 (target) failed"),
        "{}",
        run.stderr
    );
    let report = json(
        &mut doctor_via(&env, &api, &gate, &["--instance", &off.id], "iamuserapp"),
        3,
    );
    let login = step(&report, "login");
    assert!(
        login["details"]["causes"][0]
            .as_str()
            .unwrap()
            .starts_with("IAM auth is off on the target"),
        "{login:#}"
    );
    assert!(text(&login["found"]).contains("password authentication failed"));
}

#[test]
fn a_sql_server_target_is_not_served() {
    let env = Env::new();
    // It listens (so the network step passes), but it is neither PostgreSQL nor MySQL.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sqlserver = Instance {
        engine: "sqlserver-ee".to_owned(),
        engine_version: "16.00".to_owned(),
        address: "127.0.0.1".to_owned(),
        port,
        ..Instance::new("shop-sqlserver")
    };
    let api = RdsApi::start(Inventory {
        instances: vec![sqlserver],
        ..Inventory::default()
    })
    .unwrap();
    let report = json(
        &mut doctor(&env, &api, None, &["--instance", "shop-sqlserver"], "app"),
        3,
    );
    let target = step(&report, "target");
    assert_eq!(target["status"], "fail");
    assert!(text(&target["found"]).contains("sqlserver"), "{target:#}");
    assert!(
        text(&target["found"]).contains("neither PostgreSQL nor MySQL"),
        "{target:#}"
    );
    assert_eq!(status(&report, "network"), "ok");
    for later in ["tls", "login", "inside"] {
        assert_eq!(status(&report, later), "skip", "{later}");
    }
}

#[test]
fn an_unknown_target_gets_a_did_you_mean_and_stops_the_chain() {
    let env = Env::new();
    let api = RdsApi::start(Inventory::article()).unwrap();
    let report = json(
        &mut doctor(
            &env,
            &api,
            None,
            &["--proxy", "PostgresProxy"],
            "iamuserapp",
        ),
        3,
    );
    let target = step(&report, "target");
    assert!(
        text(&target["found"]).contains("no proxy named `PostgresProxy`"),
        "{target:#}"
    );
    assert!(
        text(&target["next"]).contains("did you mean `--proxy PostgreSqlProxy`?"),
        "{target:#}"
    );
    assert_eq!(status(&report, "credentials"), "ok");
    assert_eq!(status(&report, "identity"), "ok");
    for later in ["policy", "network", "tls", "login", "inside"] {
        assert_eq!(status(&report, later), "skip", "{later}");
    }
}

#[test]
fn a_private_address_gets_the_ssm_tunnel_and_the_via_to_add() {
    let env = Env::new();
    let api = RdsApi::start(Inventory::default()).unwrap();
    let report = json(
        doctor(&env, &api, None, &["--host", "10.255.255.1"], "iamuserapp")
            .args(["--connect-timeout", "1"]),
        4,
    );
    let network = step(&report, "network");
    assert_eq!(network["details"]["private"], true);
    assert!(text(&network["found"]).contains("(private)"), "{network:#}");
    // From outside the VPC the address either does not answer (step 5
    // fails) or something else answers for it, such as an intercepting
    // proxy (step 6 fails); either way the failing step says how to tunnel in.
    let failed = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["status"] == "fail")
        .expect("a failed step");
    assert!(
        ["network", "tls"].contains(&failed["name"].as_str().unwrap()),
        "{failed:#}"
    );
    let next = text(&failed["next"]);
    assert!(next.contains("aws ssm start-session"), "{next}");
    assert!(
        next.contains("AWS-StartPortForwardingSessionToRemoteHost"),
        "{next}"
    );
    assert!(
        next.contains("\\\"host\\\":[\\\"10.255.255.1\\\"]"),
        "{next}"
    );
    assert!(next.contains("--via 127.0.0.1:15432"), "{next}");
    assert_eq!(status(&report, "login"), "skip");
}

#[test]
fn a_closed_port_fails_the_network_step() {
    let env = Env::new();
    let api = RdsApi::start(Inventory::default()).unwrap();
    let closed = closed_port().to_string();
    let run = expect(
        &mut doctor(
            &env,
            &api,
            None,
            &["--host", "127.0.0.1", "--port", &closed],
            "iamuserapp",
        ),
        4,
    );
    assert!(run.stdout.contains("FAIL  5 network"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains(&format!("nothing listens on port {closed}")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("skip  6 tls"), "{}", run.stdout);
    // Steps that need no network still ran.
    assert!(run.stdout.contains("ok    2 identity"), "{}", run.stdout);
}

#[test]
fn an_untrusted_certificate_names_its_issuer() {
    let env = Env::new();
    let api = RdsApi::start(Inventory::default()).unwrap();
    let gate = gate();
    let port = gate.port().to_string();
    let report = json(
        &mut doctor(
            &env,
            &api,
            None,
            &["--host", "localhost", "--port", &port],
            "iamuserapp",
        ),
        4,
    );
    let tls = step(&report, "tls");
    assert_eq!(tls["status"], "fail");
    let found = text(&tls["found"]);
    assert!(found.contains("chains to `rdsiam test CA"), "{found}");
    assert!(
        found.contains("the built-in RDS bundle or the system store"),
        "{found}"
    );
    assert!(text(&tls["next"]).contains("--ca-bundle"), "{tls:#}");
    assert_eq!(status(&report, "login"), "skip");
    assert!(!gate.events().iter().any(|e| e.starts_with("accepted")));

    // The system store (rustls-native-certs reads SSL_CERT_FILE) is named
    // when it is what vouched.
    let report = json(
        doctor(
            &env,
            &api,
            None,
            &["--host", "localhost", "--port", &port],
            "iamuserapp",
        )
        .env("SSL_CERT_FILE", ca_file(&env, &gate)),
        0,
    );
    assert_eq!(step(&report, "tls")["details"]["trusted_by"], "system");
}

#[test]
fn without_credentials_the_network_and_tls_are_still_checked() {
    let env = Env::new();
    let api = RdsApi::start(Inventory::default()).unwrap();
    let gate = gate();
    let mut cmd = env.bare();
    cmd.args([
        "doctor",
        "--host",
        "localhost",
        "--port",
        &gate.port().to_string(),
    ])
    .args(["-U", "iamuserapp", "--region", REGION])
    .env("AWS_ENDPOINT_URL_STS", api.url())
    .arg("--ca-bundle")
    .arg(ca_file(&env, &gate));
    let report = json(&mut cmd, 3);
    let creds = step(&report, "credentials");
    assert_eq!(creds["status"], "fail");
    assert!(
        text(&creds["found"]).contains("no AWS credentials found"),
        "{creds:#}"
    );
    assert!(text(&creds["next"]).contains("aws configure"), "{creds:#}");
    assert_eq!(status(&report, "identity"), "skip");
    assert_eq!(status(&report, "network"), "ok");
    assert_eq!(status(&report, "tls"), "ok");
    assert_eq!(status(&report, "login"), "skip");
    assert!(api.requests().is_empty());
}

#[test]
fn a_certificate_expiring_in_ten_days_warns() {
    let env = Env::new();
    let api = RdsApi::start(Inventory::default()).unwrap();
    let gate = gate_playing("localhost", 0, |cfg| {
        cfg.endpoint_port = None;
        cfg.cert_expires_in = Some(Duration::from_secs(10 * 86400));
    });
    let report = json(&mut doctor_at_gate(&env, &api, &gate, "iamuserapp"), 0);
    let tls = step(&report, "tls");
    assert_eq!(tls["status"], "warn", "{tls:#}");
    let days = tls["details"]["certificate_days_left"].as_u64().unwrap();
    assert!((9..=10).contains(&days), "{days}");
    assert!(text(&tls["next"]).contains("renew"), "{tls:#}");
    assert_eq!(status(&report, "login"), "ok");
    expect(
        doctor_at_gate(&env, &api, &gate, "iamuserapp").arg("--strict"),
        6,
    );
}

#[test]
fn a_role_without_rds_iam_is_named_when_the_token_was_good() {
    let env = Env::new();
    let db = Instance::new("orders-db");
    let api = RdsApi::start(Inventory {
        instances: vec![db.clone()],
        ..Inventory::default()
    })
    .unwrap();
    // A direct instance: the gate accepts the token, PostgreSQL's rds_iam
    // membership says no, and the instance answers as RDS does.
    let gate = gate_playing(&db.address, db.port, |cfg| {
        cfg.direct_hosts = vec![db.address.clone()];
    });
    let report = json(
        &mut doctor_via(&env, &api, &gate, &["--instance", "orders-db"], "norights"),
        5,
    );
    let login = step(&report, "login");
    assert_eq!(login["exit_code"], 5);
    let first = login["details"]["causes"][0].as_str().unwrap();
    assert!(
        first.contains("`norights` is not a member of rds_iam"),
        "{first}"
    );
    assert!(first.contains("GRANT rds_iam TO \"norights\";"), "{first}");
    assert!(
        gate.events()
            .contains(&"rejected user=norights reason=no-rds-iam".to_owned())
    );

    // Through the proxy the refusal is PAM's, for any cause: doctor lists
    // the ones steps 1–6 left open, the policy's exact ARN among them.
    let inv = Inventory::article();
    let api = RdsApi::start(inv.clone()).unwrap();
    let gate = gate_for(&inv.proxies[0].endpoint, Some(5432));
    let report = json(
        &mut doctor_via(
            &env,
            &api,
            &gate,
            &["--proxy", "PostgreSqlProxy"],
            "norights",
        ),
        5,
    );
    let login = step(&report, "login");
    let causes = text(&login["details"]["causes"]);
    assert!(causes.contains("the role lacks rds_iam"), "{causes}");
    assert!(
        causes.contains("dbuser:prx-0123456789abcdef0/norights"),
        "{causes}"
    );
    assert!(
        causes.contains("-proxy-role must allow rds-db:connect"),
        "{causes}"
    );
    let ruled_out = text(&login["details"]["ruled_out"]);
    for gone in [
        "IAM auth off",
        "clock skew (step 2)",
        "a wrong secret key",
        "region mismatch",
    ] {
        assert!(ruled_out.contains(gone), "{gone}: {ruled_out}");
        assert!(!causes.contains(gone), "{gone}: {causes}");
    }
}

#[test]
fn a_missing_database_is_told_apart_from_the_login() {
    let env = Env::new();
    let api = RdsApi::start(Inventory::default()).unwrap();
    let gate = gate();
    let port = gate.port().to_string();
    let mut cmd = env.cmd();
    cmd.args([
        "doctor",
        "--host",
        "localhost",
        "--port",
        &port,
        "-U",
        "iamuserapp",
    ])
    .args(["-d", "appp", "--region", REGION])
    .env("AWS_ENDPOINT_URL_STS", api.url())
    .arg("--ca-bundle")
    .arg(ca_file(&env, &gate));
    let report = json(&mut cmd, 5);
    assert_eq!(status(&report, "login"), "ok");
    let inside = step(&report, "inside");
    assert_eq!(inside["status"], "fail");
    assert_eq!(inside["exit_code"], 5);
    assert!(
        text(&inside["found"]).contains("database `appp` does not exist"),
        "{inside:#}"
    );
    assert!(
        text(&inside["next"]).contains("did you mean `-d app`?"),
        "{inside:#}"
    );
    assert_eq!(inside["details"]["database_exists"], false);
}

#[test]
fn a_server_that_never_answers_after_login_fails_inside_within_the_timeout() {
    // In this database the role's search_path puts a `pg_roles` that
    // sleeps for a minute before the catalog's: the login works, the
    // inside query never comes back in time.
    let pg = postgres();
    let _ = pg.psql_super("postgres", "CREATE DATABASE doctor_stall");
    pg.psql_super(
        "doctor_stall",
        "CREATE SCHEMA IF NOT EXISTS stall; \
         CREATE OR REPLACE VIEW stall.pg_roles AS \
           SELECT r.rolname FROM pg_catalog.pg_roles r CROSS JOIN pg_sleep(60); \
         GRANT USAGE ON SCHEMA stall TO PUBLIC; \
         GRANT SELECT ON stall.pg_roles TO PUBLIC; \
         ALTER ROLE iamuserapp IN DATABASE doctor_stall SET search_path = stall, pg_catalog",
    )
    .unwrap();
    let env = Env::new();
    let api = RdsApi::start(Inventory::default()).unwrap();
    let gate = gate();
    let port = gate.port().to_string();
    let mut cmd = env.cmd();
    cmd.args(["doctor", "--host", "localhost", "--port", &port])
        .args(["-U", "iamuserapp", "-d", "doctor_stall", "--region", REGION])
        .args(["--connect-timeout", "2"])
        .env("AWS_ENDPOINT_URL_STS", api.url())
        .arg("--ca-bundle")
        .arg(ca_file(&env, &gate));
    let started = std::time::Instant::now();
    let report = json(&mut cmd, 4);
    assert!(started.elapsed() < Duration::from_secs(30), "{report:#}");
    assert_eq!(status(&report, "login"), "ok");
    let inside = step(&report, "inside");
    assert_eq!(inside["status"], "fail");
    assert!(
        text(&inside["found"]).contains("no answer within 2s"),
        "{inside:#}"
    );
}

#[test]
fn a_wrong_secret_is_caught_by_sts_and_explains_the_refusal() {
    let env = Env::new();
    let api = RdsApi::start(Inventory::default()).unwrap();
    api.require_signatures(&[(TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY)]);
    let gate = gate();
    let report = json(
        doctor_at_gate(&env, &api, &gate, "iamuserapp")
            .env("AWS_SECRET_ACCESS_KEY", "not-the-secret"),
        3,
    );
    let identity = step(&report, "identity");
    assert_eq!(identity["status"], "fail");
    assert_eq!(identity["details"]["error_code"], "SignatureDoesNotMatch");
    assert!(
        text(&identity["found"]).contains("the secret access key does not match"),
        "{identity:#}"
    );
    let login = step(&report, "login");
    assert_eq!(login["status"], "fail");
    assert!(
        text(&login["details"]["causes"]).contains("wrong or revoked AWS credentials"),
        "{login:#}"
    );
    assert!(
        gate.events()
            .iter()
            .any(|e| e.contains("reason=bad-signature"))
    );
    assert!(!text(&report).contains("not-the-secret"));
    // With the right secret the same STS answers.
    let report = json(&mut doctor_at_gate(&env, &api, &gate, "iamuserapp"), 0);
    assert_eq!(status(&report, "identity"), "ok");
}

/// The ARN a refused `check` names in its hint.
fn hinted_arn(stderr: &str) -> String {
    let start = stderr
        .find("rds-db:connect on arn:")
        .expect("an ARN in the hint")
        + "rds-db:connect on ".len();
    stderr[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

fn policy(env: &Env, api: &RdsApi, args: &[&str]) -> Command {
    let mut cmd = env.cmd();
    cmd.arg("policy")
        .args(args)
        .args(["--region", REGION, "--endpoint-url", &api.url()])
        .env("AWS_ENDPOINT_URL_STS", api.url());
    cmd
}

#[test]
fn policy_names_exactly_the_arn_of_the_refusal_hint() {
    let env = Env::new();
    let inv = Inventory::article();
    let api = RdsApi::start(inv.clone()).unwrap();
    let proxy_gate = gate_for(&inv.proxies[0].endpoint, Some(5432));
    let writer = inv
        .instances
        .iter()
        .find(|i| i.cluster_id.is_some())
        .unwrap();
    let writer_gate = gate_for(&writer.address, Some(writer.port));
    for (target, gate) in [
        (vec!["--proxy", "PostgreSqlProxy"], &proxy_gate),
        (vec!["--instance", writer.id.as_str()], &writer_gate),
    ] {
        let refused = expect(
            crate::db::check_via_api(&env, gate, &api, &target, "norights")
                .arg("--no-aws-identity"),
            5,
        );
        let arn = hinted_arn(&refused.stderr);
        let run = expect(policy(&env, &api, &target).args(["-U", "norights"]), 0);
        let doc: Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(doc["Version"], "2012-10-17");
        let statement = &doc["Statement"][0];
        assert_eq!(statement["Effect"], "Allow");
        assert_eq!(statement["Action"], "rds-db:connect");
        assert_eq!(
            statement["Resource"],
            serde_json::json!([arn]),
            "{target:?}"
        );
        assert!(!run.stdout.contains('*'), "no wildcards: {}", run.stdout);
    }
}

#[test]
fn policy_for_several_users_the_proxy_role_and_terraform() {
    let env = Env::new();
    let inv = Inventory::article();
    let api = RdsApi::start(inv.clone()).unwrap();
    let prx = "arn:aws:rds-db:us-east-1:123456789012:dbuser:prx-0123456789abcdef0";
    let cluster = format!(
        "arn:aws:rds-db:us-east-1:123456789012:dbuser:{}",
        inv.clusters[0].resource_id
    );
    let run = expect(
        &mut policy(
            &env,
            &api,
            &[
                "--proxy",
                "PostgreSqlProxy",
                "-U",
                "iamuserapp",
                "-U",
                "jane@example.com",
            ],
        ),
        0,
    );
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        doc["Statement"][0]["Resource"],
        serde_json::json!([
            format!("{prx}/iamuserapp"),
            format!("{prx}/jane@example.com")
        ])
    );
    // The proxy reaches its cluster with IAM: its role's policy is pointed out…
    assert!(run.stderr.contains("--proxy-role"), "{}", run.stderr);
    // …and printed on request.
    let run = expect(
        &mut policy(
            &env,
            &api,
            &[
                "--proxy",
                "PostgreSqlProxy",
                "-U",
                "iamuserapp",
                "--proxy-role",
            ],
        ),
        0,
    );
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        doc["Statement"][0]["Resource"],
        serde_json::json!([format!("{cluster}/iamuserapp")])
    );
    let run = expect(
        &mut policy(
            &env,
            &api,
            &[
                "--proxy",
                "PostgreSqlProxy",
                "-U",
                "iamuserapp",
                "-o",
                "terraform",
            ],
        ),
        0,
    );
    assert!(
        run.stdout
            .contains("data \"aws_iam_policy_document\" \"rdsiam_connect_postgresqlproxy\""),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("data \"aws_iam_policy_document\" \"rdsiam_proxy_role_postgresqlproxy\""),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!("\"{prx}/iamuserapp\",")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!("\"{cluster}/iamuserapp\",")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("role/PostgreSqlProxy-proxy-role"),
        "{}",
        run.stdout
    );

    // --account replaces STS's; bad input is a usage error before any call.
    let run = expect(
        &mut policy(
            &env,
            &api,
            &[
                "--cluster",
                "databasecluster",
                "-U",
                "app",
                "--account",
                "111122223333",
            ],
        ),
        0,
    );
    assert!(
        run.stdout.contains(&format!(
            "arn:aws:rds-db:us-east-1:111122223333:dbuser:{}/app",
            inv.clusters[0].resource_id
        )),
        "{}",
        run.stdout
    );
    api.clear_requests();
    expect(
        &mut policy(
            &env,
            &api,
            &[
                "--cluster",
                "databasecluster",
                "-U",
                "app",
                "--account",
                "12",
            ],
        ),
        2,
    );
    expect(
        &mut policy(&env, &api, &["--cluster", "databasecluster", "-U", "a*"]),
        2,
    );
    expect(
        &mut policy(&env, &api, &["--host", "h.example", "-U", "app"]),
        2,
    );
    assert!(
        api.requests().is_empty(),
        "usage errors come before any call"
    );
    expect(
        &mut policy(
            &env,
            &api,
            &["--cluster", "databasecluster", "-U", "app", "--proxy-role"],
        ),
        2,
    );
    let run = expect(
        &mut policy(&env, &api, &["--proxy", "NoSuchProxy", "-U", "app"]),
        3,
    );
    assert!(
        run.stderr.contains("no proxy named `NoSuchProxy`"),
        "{}",
        run.stderr
    );
}
