//! Every usage error is reported before any network call (issue 11): for
//! each command, an RDS API that fails the test if it is called.

use rdsiam_testkit::rdsapi::{Inventory, RdsApi};

use crate::support::{Env, REGION, expect};

#[test]
fn every_command_reports_usage_errors_before_calling_the_api() {
    let env = Env::new();
    let api = RdsApi::start(Inventory::article()).unwrap();
    let missing = env.home().join("no-such-ca.pem");
    let missing = missing.to_str().unwrap();
    let not_pem = env.home().join("not-a-bundle.pem");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let not_pem = not_pem.to_str().unwrap();
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("token", vec!["-o", "env"]),
        ("check", vec![]),
        ("psql", vec![]),
        ("sql", vec!["-c", "select 1"]),
    ];
    for (command, extra) in &cases {
        for bad in [
            vec!["--via", "junk"],
            vec!["--ca-bundle", missing],
            vec!["--ca-bundle", not_pem],
            vec!["--connect-timeout", "0"],
            vec!["--sslmode", "disable"],
        ] {
            let mut cmd = env.cmd();
            cmd.args([command, "--proxy", "PostgreSqlProxy", "-U", "iamuserapp"])
                .args(["--region", REGION, "--endpoint-url", &api.url()])
                .args(extra);
            if *command == "token" {
                // token takes no connection flags; the same settings come
                // from the environment and the config file.
                match bad[0] {
                    "--via" => cmd.env("RDSIAM_VIA", bad[1]),
                    "--ca-bundle" => cmd.env("PGSSLROOTCERT", bad[1]),
                    _ => continue,
                };
            } else {
                cmd.args(&bad);
            }
            expect(&mut cmd, 2);
            assert!(
                api.requests().is_empty(),
                "{command} {bad:?} called the RDS API before its usage error"
            );
        }
    }
    for bad in [
        vec!["--endpoint-url", "ftp://x"],
        vec!["--region", "US East"],
        vec!["--api-timeout", "0"],
    ] {
        let mut cmd = env.cmd();
        cmd.arg("list").args(&bad);
        if bad[0] != "--endpoint-url" {
            cmd.args(["--endpoint-url", &api.url()]);
        }
        if bad[0] != "--region" {
            cmd.args(["--region", REGION]);
        }
        expect(&mut cmd, 2);
        assert!(api.requests().is_empty(), "list {bad:?} called the RDS API");
    }
}
