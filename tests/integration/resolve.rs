//! Target resolution through a local RDS Query API (testkit `rdsapi`):
//! each kind, pagination, not-found with suggestions, throttling, 5xx.

use rdsiam_testkit::rdsapi::{Fault, Inventory, RdsApi};

use crate::support::{Env, REGION, expect};

fn api() -> RdsApi {
    RdsApi::start(Inventory::article()).expect("fake RDS API starts")
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// `rdsiam token -U iamuserapp --region R --endpoint-url <api> <target…>`.
fn token_cmd(env: &Env, api: &RdsApi, target: &[&str]) -> std::process::Command {
    let mut cmd = env.cmd();
    cmd.args([
        "token",
        "-U",
        "iamuserapp",
        "--region",
        REGION,
        "--endpoint-url",
        &api.url(),
    ])
    .args(target);
    cmd
}

fn token_json(env: &Env, api: &RdsApi, target: &[&str]) -> serde_json::Value {
    let run = expect(token_cmd(env, api, target).args(["-o", "json"]), 0);
    json(&run.stdout)
}

#[test]
fn proxy_cluster_reader_and_instance_resolve() {
    let env = Env::new();
    let api = api();
    let inv = Inventory::article();
    let proxy = &inv.proxies[0];
    let cluster = &inv.clusters[0];

    let v = token_json(&env, &api, &["--proxy", "PostgreSqlProxy"]);
    assert_eq!(v["host"], proxy.endpoint.as_str());
    assert_eq!(v["port"], 5432);
    assert!(v["token"].as_str().unwrap().starts_with(&format!(
        "{}:5432/?Action=connect&DBUser=iamuserapp&",
        proxy.endpoint
    )));

    let v = token_json(&env, &api, &["--cluster", "databasecluster"]);
    assert_eq!(v["host"], cluster.endpoint.as_str());
    let v = token_json(&env, &api, &["--cluster", "databasecluster", "--reader"]);
    assert_eq!(v["host"], cluster.reader_endpoint.as_str());

    let writer = inv.instances.iter().find(|i| i.iam_enabled).unwrap();
    let v = token_json(&env, &api, &["--instance", &writer.id, "--port", "6543"]);
    assert_eq!(v["host"], writer.address.as_str());
    assert_eq!(v["port"], 6543);

    // Every API call was signed for the region we asked for.
    assert!(
        api.requests()
            .iter()
            .all(|r| r.region.as_deref() == Some(REGION))
    );
}

#[test]
fn proxy_names_match_case_insensitively_after_exact() {
    let env = Env::new();
    let api = api();
    let v = token_json(&env, &api, &["--proxy", "postgresqlproxy"]);
    assert_eq!(v["host"], Inventory::article().proxies[0].endpoint.as_str());
    assert_eq!(
        api.count("DescribeDBProxies"),
        2,
        "exact lookup, then the listing"
    );
}

#[test]
fn endpoint_from_environment_variable() {
    let env = Env::new();
    let api = api();
    let run = expect(
        env.cmd().env("AWS_ENDPOINT_URL_RDS", api.url()).args([
            "token",
            "-U",
            "iamuserapp",
            "--region",
            REGION,
            "--cluster",
            "databasecluster",
        ]),
        0,
    );
    assert!(run.stdout.starts_with("databasecluster.cluster-"));
}

#[test]
fn iam_off_warns_but_still_prints_the_token() {
    let env = Env::new();
    let api = api();
    let off = Inventory::article()
        .instances
        .into_iter()
        .find(|i| !i.iam_enabled)
        .unwrap();
    let run = expect(&mut token_cmd(&env, &api, &["--instance", &off.id]), 0);
    assert!(run.stdout.starts_with(&off.address));
    assert!(
        run.stderr.contains("IAM database authentication is off"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("--enable-iam-database-authentication"),
        "{}",
        run.stderr
    );
}

#[test]
fn pagination_past_a_hundred_items() {
    let env = Env::new();
    let api = RdsApi::start(Inventory::article().with_extra(260)).unwrap();
    // The case-insensitive fallback must read every page to find the last proxy.
    let last = api.inventory().proxies.last().unwrap().clone();
    let v = token_json(&env, &api, &["--proxy", &last.name.to_uppercase()]);
    assert_eq!(v["host"], last.endpoint.as_str());
    assert!(api.count("DescribeDBProxies") >= 4, "1 exact + 3 pages");

    let run = expect(
        env.cmd().args([
            "list",
            "--region",
            REGION,
            "--endpoint-url",
            &api.url(),
            "-o",
            "json",
        ]),
        0,
    );
    let items = json(&run.stdout);
    let inv = api.inventory();
    assert_eq!(
        items.as_array().unwrap().len(),
        inv.proxies.len() + inv.clusters.len() + inv.instances.len()
    );
}

#[test]
fn list_table_shows_iam_state() {
    let env = Env::new();
    let api = api();
    let run = expect(
        env.cmd()
            .args(["list", "--region", REGION, "--endpoint-url", &api.url()]),
        0,
    );
    for needle in [
        "PostgreSqlProxy",
        "databasecluster",
        "legacy-reporting",
        "iam auth",
        "off",
        "on",
    ] {
        assert!(
            run.stdout.contains(needle),
            "{needle} missing:\n{}",
            run.stdout
        );
    }
}

#[test]
fn unknown_names_get_did_you_mean() {
    let env = Env::new();
    let api = api();
    for (flag, typo, suggestion) in [
        ("--proxy", "PostgresProxy", "--proxy PostgreSqlProxy"),
        ("--cluster", "databaseclustr", "--cluster databasecluster"),
        (
            "--instance",
            "legacy-reportin",
            "--instance legacy-reporting",
        ),
    ] {
        let run = expect(&mut token_cmd(&env, &api, &[flag, typo]), 3);
        assert!(
            run.stderr.contains(&format!("named `{typo}`")),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr
                .contains(&format!("did you mean `{suggestion}`?")),
            "{}",
            run.stderr
        );
        assert!(run.stdout.is_empty());
    }
}

#[test]
fn throttling_succeeds_on_retry() {
    let env = Env::new();
    let api = api();
    api.set_fault(Fault::Throttle { times: 2 });
    let v = token_json(&env, &api, &["--proxy", "PostgreSqlProxy"]);
    assert_eq!(v["host"], Inventory::article().proxies[0].endpoint.as_str());
    assert_eq!(api.count("DescribeDBProxies"), 3);
}

#[test]
fn server_error_that_persists_is_reported_with_its_code() {
    let env = Env::new();
    let api = api();
    api.set_fault(Fault::ServerError);
    let run = expect(
        &mut token_cmd(&env, &api, &["--cluster", "databasecluster"]),
        3,
    );
    assert!(run.stderr.contains("DescribeDBClusters"), "{}", run.stderr);
    assert!(run.stderr.contains("InternalFailure"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
}

#[test]
fn unreachable_api_is_an_aws_side_error() {
    let env = Env::new();
    let port = crate::support::closed_port();
    let run = expect(
        env.cmd().args([
            "list",
            "--region",
            REGION,
            "--endpoint-url",
            &format!("http://127.0.0.1:{port}"),
        ]),
        3,
    );
    assert!(
        run.stderr.contains("could not reach the RDS API"),
        "{}",
        run.stderr
    );
}
