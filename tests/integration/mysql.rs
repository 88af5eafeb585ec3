//! MySQL and MariaDB targets (issue 22): resolution and the engine each
//! command serves, against the local RDS API.

use rdsiam_testkit::rdsapi::{Inventory, RdsApi};

use crate::support::{Env, REGION, expect};

fn api() -> RdsApi {
    RdsApi::start(Inventory::article().with_mysql()).expect("fake RDS API starts")
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// `rdsiam COMMAND -U iamuserapp --region R --endpoint-url <api> <args…>`.
fn cmd(env: &Env, api: &RdsApi, command: &str, args: &[&str]) -> std::process::Command {
    let mut cmd = env.cmd();
    cmd.args([
        command,
        "-U",
        "iamuserapp",
        "--region",
        REGION,
        "--endpoint-url",
        &api.url(),
    ])
    .args(args);
    cmd
}

#[test]
fn mysql_resources_resolve_on_3306() {
    let env = Env::new();
    let api = api();
    let inv = Inventory::article().with_mysql();
    let proxy = inv.proxies.iter().find(|p| p.name == "MySqlProxy").unwrap();
    let cluster = inv.clusters.iter().find(|c| c.id == "ordersmysql").unwrap();
    for (target, host) in [
        (&["--proxy", "MySqlProxy"][..], proxy.endpoint.as_str()),
        (&["--cluster", "ordersmysql"][..], cluster.endpoint.as_str()),
        (
            &["--cluster", "ordersmysql", "--reader"][..],
            cluster.reader_endpoint.as_str(),
        ),
    ] {
        let run = expect(cmd(&env, &api, "token", target).args(["-o", "json"]), 0);
        let v = json(&run.stdout);
        assert_eq!(v["host"], host, "{target:?}");
        assert_eq!(v["port"], 3306, "{target:?}");
        assert!(
            v["token"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{host}:3306/?Action=connect&DBUser=iamuserapp&")),
            "{target:?}"
        );
    }
    let run = expect(
        cmd(&env, &api, "token", &["--instance", "mariadb-reporting"]).args(["-o", "json"]),
        0,
    );
    assert_eq!(json(&run.stdout)["port"], 3306);
}

#[test]
fn a_host_target_names_its_engine_and_gets_its_port() {
    let env = Env::new();
    let host = |extra: &[&str]| {
        let mut c = env.cmd();
        c.args([
            "token",
            "--host",
            "db.example",
            "-U",
            "u",
            "--region",
            REGION,
            "-o",
            "json",
        ])
        .args(extra);
        json(&expect(&mut c, 0).stdout)["port"].clone()
    };
    assert_eq!(host(&[]), 5432);
    assert_eq!(host(&["--engine", "postgres"]), 5432);
    assert_eq!(host(&["--engine", "mysql"]), 3306);
    assert_eq!(host(&["--engine", "mysql", "--port", "3307"]), 3307);

    // From the config file too, and `targets show` says where it came from.
    let config = env.home().join("rdsiam.toml");
    std::fs::write(
        &config,
        "[targets.orders]\nhost = \"db.example\"\nengine = \"mysql\"\nuser = \"u\"\n",
    )
    .unwrap();
    let mut c = env.cmd();
    c.env("RDSIAM_CONFIG", &config)
        .args(["token", "orders", "--region", REGION, "-o", "json"]);
    assert_eq!(json(&expect(&mut c, 0).stdout)["port"], 3306);
    let mut c = env.cmd();
    c.env("RDSIAM_CONFIG", &config)
        .args(["targets", "show", "orders", "-o", "json"]);
    let rows = json(&expect(&mut c, 0).stdout);
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .any(|r| r["key"] == "engine" && r["value"] == "mysql"),
        "{rows}"
    );

    let mut c = env.cmd();
    c.args(["token", "--host", "h", "-U", "u", "--engine", "oracle"]);
    expect(&mut c, 2);
}

#[test]
fn list_shows_the_engine_and_mysql_ports() {
    let env = Env::new();
    let api = api();
    let mut c = env.cmd();
    c.args([
        "list",
        "--region",
        REGION,
        "--endpoint-url",
        &api.url(),
        "-o",
        "json",
    ]);
    let v = json(&expect(&mut c, 0).stdout);
    let find = |name: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name} listed: {v}"))
            .clone()
    };
    let proxy = find("MySqlProxy");
    assert_eq!(
        (proxy["port"].clone(), proxy["family"].clone()),
        (3306.into(), "mysql".into())
    );
    assert_eq!(find("ordersmysql")["engine"], "aurora-mysql");
    assert_eq!(find("mariadb-reporting")["family"], "mysql");
    assert_eq!(find("PostgreSqlProxy")["port"], 5432);

    let mut c = env.cmd();
    c.args(["list", "--region", REGION, "--endpoint-url", &api.url()]);
    let table = expect(&mut c, 0).stdout;
    let row = table.lines().find(|l| l.contains("MySqlProxy")).unwrap();
    assert!(row.contains("3306") && row.contains("MYSQL"), "{row}");
}

#[test]
fn postgres_only_commands_refuse_mysql_targets_naming_rdsiam_mysql() {
    let env = Env::new();
    let api = api();
    for command in ["sql", "psql"] {
        for target in [
            &["--proxy", "MySqlProxy"][..],
            &["--instance", "mariadb-reporting"][..],
        ] {
            let run = expect(&mut cmd(&env, &api, command, target), 2);
            assert!(
                run.stderr
                    .contains(&format!("rdsiam {command} serves PostgreSQL targets only"))
                    && run.stderr.contains("use rdsiam mysql"),
                "{command} {target:?}: {}",
                run.stderr
            );
        }
        // A --host target is refused before any network.
        let mut c = env.cmd();
        c.args([
            command,
            "--host",
            "db.example",
            "--engine",
            "mysql",
            "-U",
            "u",
            "--region",
            REGION,
        ]);
        let run = expect(&mut c, 2);
        assert!(run.stderr.contains("use rdsiam mysql"), "{}", run.stderr);
    }
}

#[test]
fn run_gives_a_mysql_proxy_target_the_mysql_clients_variables() {
    let env = Env::new();
    let api = api();
    let mut c = cmd(
        &env,
        &api,
        "run",
        &[
            "--proxy",
            "MySqlProxy",
            "--",
            "sh",
            "-c",
            "echo \"$MYSQL_UNIX_PORT|$MYSQL_HOST|$MYSQL_TCP_PORT|${PGHOST:-}\"",
        ],
    );
    let run = expect(&mut c, 0);
    let line = run.stdout.trim();
    assert!(line.ends_with("/mysql-3306.sock|localhost|3306|"), "{line}");
}
