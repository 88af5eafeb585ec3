//! Named targets from the config file drive every command to the same
//! endpoint as the flags do; bad files and names fail with exit 2.

use std::path::PathBuf;

use rdsiam_testkit::gate::PROXY_ENDPOINT_HOST;

use crate::db::{ca_file, gate_for};
use crate::support::{Env, REGION, expect};

fn write_config(env: &Env, text: &str) -> PathBuf {
    let path = env.home().join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn named_target_drives_token_check_and_psql() {
    let env = Env::new();
    let gate = gate_for(PROXY_ENDPOINT_HOST, Some(5432));
    let config = write_config(
        &env,
        &format!(
            "[defaults]\nregion = \"{REGION}\"\nconnect-timeout = 5\n\n[targets.prod-orders]\nhost = \"{PROXY_ENDPOINT_HOST}\"\nuser = \"iamuserapp\"\ndbname = \"app\"\nvia = \"127.0.0.1:{}\"\nca-bundle = \"{}\"\n",
            gate.port(),
            ca_file(&env, &gate).display()
        ),
    );
    let with = |args: &[&str]| {
        let mut cmd = env.cmd();
        cmd.env("RDSIAM_CONFIG", &config).args(args);
        cmd
    };
    let run = expect(&mut with(&["token", "prod-orders", "-o", "json"]), 0);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["host"], PROXY_ENDPOINT_HOST);
    assert_eq!(v["user"], "iamuserapp");
    assert_eq!(v["region"], REGION);

    let run = expect(
        &mut with(&["check", "prod-orders", "--no-aws-identity", "-o", "json"]),
        0,
    );
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["current_user"], "iamuserapp");
    assert_eq!(v["database"], "app");
    assert_eq!(v["endpoint"]["via"], format!("127.0.0.1:{}", gate.port()));

    let run = expect(
        &mut with(&["psql", "prod-orders", "--", "-tAc", "select current_user"]),
        0,
    );
    assert_eq!(run.stdout, "iamuserapp\n");

    // Flags beat the target: a different user is refused by the gate.
    expect(
        &mut with(&[
            "check",
            "prod-orders",
            "-U",
            "norights",
            "--no-aws-identity",
        ]),
        5,
    );
    // --no-config ignores the file entirely.
    let run = expect(
        &mut with(&["check", "prod-orders", "--no-config", "--no-aws-identity"]),
        2,
    );
    assert!(
        run.stderr.contains("no target named `prod-orders`"),
        "{}",
        run.stderr
    );
}

#[test]
fn targets_list_and_show_with_sources() {
    let env = Env::new();
    let config = write_config(
        &env,
        "[defaults]\nregion = \"eu-west-1\"\nuser = \"ro\"\n\n[targets.prod-orders]\nproxy = \"PostgreSqlProxy\"\nuser = \"iamuserapp\"\n\n[targets.reporting]\ncluster = \"databasecluster\"\nreader = true\n",
    );
    let run = expect(
        env.bare()
            .env("RDSIAM_CONFIG", &config)
            .args(["targets", "-o", "json"]),
        0,
    );
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v[0]["name"], "prod-orders");
    assert_eq!(v[0]["kind"], "proxy");
    assert_eq!(v[1]["user"], "ro");

    let run = expect(
        env.bare().env("RDSIAM_CONFIG", &config).args([
            "targets",
            "show",
            "prod-orders",
            "-o",
            "json",
        ]),
        0,
    );
    let rows: Vec<serde_json::Value> = serde_json::from_str(&run.stdout).unwrap();
    let find = |key: &str| {
        rows.iter()
            .find(|r| r["key"] == key)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(find("user")["source"], "target");
    assert_eq!(find("user")["value"], "iamuserapp");
    assert_eq!(find("region")["source"], "defaults");

    // The environment beats the file.
    let run = expect(
        env.bare()
            .env("RDSIAM_CONFIG", &config)
            .env("AWS_REGION", "ap-southeast-2")
            .args(["targets", "show", "prod-orders", "-o", "json"]),
        0,
    );
    assert!(
        run.stdout.contains("ap-southeast-2 ($AWS_REGION)"),
        "{}",
        run.stdout
    );

    let run = expect(
        env.bare()
            .env("RDSIAM_CONFIG", &config)
            .args(["targets", "names"]),
        0,
    );
    assert_eq!(run.stdout, "prod-orders\nreporting\n");
}

#[test]
fn bad_files_and_names_are_usage_errors() {
    let env = Env::new();
    let config = write_config(&env, "[targets.a]\nhost = \"h\"\nregoin = \"x\"\n");
    let run = expect(
        env.cmd()
            .env("RDSIAM_CONFIG", &config)
            .args(["token", "a", "-U", "u"]),
        2,
    );
    assert!(
        run.stderr.contains(&format!("{}:3:1", config.display())),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("did you mean `region`?"),
        "{}",
        run.stderr
    );

    let config = write_config(&env, "[targets.a\nhost = \"h\"\n");
    let run = expect(
        env.cmd()
            .env("RDSIAM_CONFIG", &config)
            .args(["token", "--host", "h", "-U", "u"]),
        2,
    );
    assert!(
        run.stderr.contains(&format!("{}:1:", config.display())),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--no-config"), "{}", run.stderr);
    // --no-config gets past a broken file.
    expect(
        env.cmd().env("RDSIAM_CONFIG", &config).args([
            "token",
            "--host",
            "h",
            "-U",
            "u",
            "--region",
            REGION,
            "--no-config",
        ]),
        0,
    );

    let config = write_config(&env, "[targets.prod-orders]\nhost = \"h\"\n");
    let run = expect(
        env.cmd()
            .env("RDSIAM_CONFIG", &config)
            .args(["token", "prod-ordrs", "-U", "u"]),
        2,
    );
    assert!(
        run.stderr.contains("did you mean `prod-orders`?"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("known targets: prod-orders"),
        "{}",
        run.stderr
    );
}

#[test]
fn default_location_is_the_config_dir_and_is_never_created() {
    let env = Env::new();
    let dir = env.home().join(".config/rdsiam");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        "[targets.t]\nhost = \"from-default-location\"\nuser = \"u\"\n",
    )
    .unwrap();
    let run = expect(
        env.cmd()
            .env_remove("RDSIAM_CONFIG")
            .args(["token", "t", "--region", REGION]),
        0,
    );
    assert!(
        run.stdout.starts_with("from-default-location:5432/"),
        "{}",
        run.stdout
    );

    let fresh = Env::new();
    expect(
        fresh
            .cmd()
            .env_remove("RDSIAM_CONFIG")
            .args(["token", "--host", "h", "-U", "u", "--region", REGION]),
        0,
    );
    assert!(
        !fresh.home().join(".config/rdsiam").exists(),
        "config dir created unasked"
    );
}
