//! The real parts behind every connection test: one throwaway PostgreSQL per
//! test run, and an IAM gate (plays RDS Proxy) per test, so faults and clock
//! moves stay local to the test that makes them.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use rdsiam_testkit::gate::{Gate, GateConfig};
use rdsiam_testkit::pg::Postgres;
use rdsiam_testkit::rdsapi::RdsApi;

use crate::support::{Env, REGION};

/// The shared server. A missing PostgreSQL is a loud failure with the
/// install hint, never a skip.
pub fn postgres() -> &'static Postgres {
    static PG: OnceLock<Postgres> = OnceLock::new();
    PG.get_or_init(|| match Postgres::start() {
        Ok(pg) => pg,
        Err(err) => panic!("cannot start the throwaway PostgreSQL: {err:#}"),
    })
}

/// A gate whose tokens must name `host` and (when given) `port`.
pub fn gate_for(host: &str, port: Option<u16>) -> Gate {
    let mut cfg = GateConfig::new(postgres());
    cfg.endpoint_host = host.to_owned();
    cfg.endpoint_port = port;
    Gate::start(cfg).expect("gate starts")
}

/// A gate reached as `localhost:<its port>`.
pub fn gate() -> Gate {
    gate_for("localhost", None)
}

/// Write the gate's CA to a file in the test's HOME.
pub fn ca_file(env: &Env, gate: &Gate) -> PathBuf {
    let path = env.home().join("gate-ca.pem");
    std::fs::write(&path, gate.ca_pem()).unwrap();
    path
}

/// `rdsiam <command> --host localhost --port <gate> -U <user> -d app --ca-bundle <ca>`.
pub fn at_gate(env: &Env, gate: &Gate, command: &str, user: &str) -> Command {
    let mut cmd = env.cmd();
    cmd.args([
        command,
        "--host",
        "localhost",
        "--port",
        &gate.port().to_string(),
        "-U",
        user,
        "-d",
        "app",
        "--region",
        REGION,
    ])
    .arg("--ca-bundle")
    .arg(ca_file(env, gate));
    cmd
}

/// `rdsiam check <target…> -U <user> -d app --region R`, resolved through
/// `api`, with TCP to `gate` by `--via` and the gate's CA trusted: an
/// RDS-named endpoint reached the way a tunnel reaches it.
pub fn check_via_api(env: &Env, gate: &Gate, api: &RdsApi, target: &[&str], user: &str) -> Command {
    let mut cmd = env.cmd();
    cmd.arg("check")
        .args(target)
        .args([
            "-U",
            user,
            "-d",
            "app",
            "--region",
            REGION,
            "--endpoint-url",
            &api.url(),
        ])
        .args(["--via", &format!("127.0.0.1:{}", gate.port())])
        .arg("--ca-bundle")
        .arg(ca_file(env, gate));
    cmd
}
