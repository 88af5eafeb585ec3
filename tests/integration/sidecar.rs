//! `rdsiam proxy` as a sidecar: started with exactly the args and env that
//! deploy/kubernetes/deployment.yaml and deploy/ecs/task-definition.json
//! give it, probed as the kubelet and ECS's health check do; settings from
//! RDSIAM_<FLAG> and the config file; --min-sigterm-delay, POST
//! /quitquitquit, readiness while full, and --wait.

use std::io::Write as _;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rdsiam_testkit::gate::Gate;
use rdsiam_testkit::rdsapi::{Inventory, Proxy as ApiProxy, RdsApi};
use serde_yaml_ng::Value;

use crate::db::{ca_file, gate, gate_for, postgres};
use crate::proxy::{Proxy, http_get, proxy_cmd, psql};
use crate::support::{Env, closed_port, run};

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The proxy container of a Kubernetes manifest: args, env, and each
/// probe's (kind, path, port number).
struct Container {
    args: Vec<String>,
    env: Vec<(String, String)>,
    probes: Vec<(String, String, u16)>,
}

fn sidecar_of(manifest: &str, name: &str) -> (Container, Value) {
    let text = std::fs::read_to_string(repo(manifest)).unwrap();
    let doc: Value = serde_yaml_ng::from_str(&text).unwrap();
    let pod = &doc["spec"]["template"]["spec"];
    let c = pod["initContainers"]
        .as_sequence()
        .expect("initContainers")
        .iter()
        .find(|c| c["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no init container {name} in {manifest}"))
        .clone();
    // A native sidecar: an init container that keeps running.
    assert_eq!(c["restartPolicy"].as_str(), Some("Always"), "{manifest}");
    let strs = |v: &Value| -> Vec<String> {
        v.as_sequence()
            .map(|s| s.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    };
    let env = c["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let port_of = |p: &Value| -> u16 {
        match p {
            Value::Number(n) => n.as_u64().unwrap() as u16,
            Value::String(name) => c["ports"]
                .as_sequence()
                .unwrap()
                .iter()
                .find(|x| x["name"].as_str() == Some(name))
                .and_then(|x| x["containerPort"].as_u64())
                .unwrap() as u16,
            _ => panic!("probe port {p:?}"),
        }
    };
    let mut probes = Vec::new();
    for kind in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let get = &c[kind]["httpGet"];
        let path = get["path"]
            .as_str()
            .unwrap_or_else(|| panic!("{kind} has no httpGet path"))
            .to_owned();
        probes.push((kind.to_owned(), path, port_of(&get["port"])));
    }
    let container = Container {
        args: strs(&c["args"]),
        env,
        probes,
    };
    (container, doc)
}

/// Replace the port of an ADDR:PORT setting, keeping the address.
fn with_port(value: &str, port: u16) -> String {
    let (host, _) = value.rsplit_once(':').unwrap();
    format!("{host}:{port}")
}

/// GET `path` as the kubelet does, until it answers 200 or `secs` pass.
fn probe_until_ok(port: u16, path: &str, secs: u64) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            http_get(port, path)
        } else {
            (0, String::new())
        };
        if got.0 == 200 || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The RDS API with the examples' `orders-proxy`, and a gate that plays it.
fn orders_proxy() -> (RdsApi, Gate) {
    let mut inventory = Inventory::article();
    inventory.proxies.push(ApiProxy {
        targets: vec!["databasecluster".to_owned()],
        ..ApiProxy::new("orders-proxy")
    });
    let endpoint = inventory.proxies.last().unwrap().endpoint.clone();
    let api = RdsApi::start(inventory).unwrap();
    let gate = gate_for(&endpoint, Some(5432));
    // The examples' user and database.
    let pg = postgres();
    let _ = pg.psql_super(
        "postgres",
        "DO $$ BEGIN CREATE ROLE orders_app LOGIN IN ROLE rds_iam; EXCEPTION WHEN duplicate_object THEN NULL; END $$;",
    );
    let _ = pg.psql_super("postgres", "CREATE DATABASE orders");
    let _ = pg.psql_super("orders", "GRANT ALL ON SCHEMA public TO orders_app");
    (api, gate)
}

/// psql with the app's DATABASE_URL: (exit code, stdout).
fn app_query(env: &Env, url: &str, sql: &str) -> (i32, String) {
    let out = crate::support::output_within(psql(env).args([url, "-XtAc", sql]), 60);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    )
}

#[test]
fn the_kubernetes_sidecar_starts_from_the_manifest_and_passes_the_kubelet_probes() {
    let env = Env::new();
    let (api, gate) = orders_proxy();
    let (sidecar, doc) = sidecar_of("deploy/kubernetes/deployment.yaml", "rdsiam-proxy");
    let listen = closed_port();
    let http = closed_port();

    let mut cmd = env.cmd();
    cmd.args(&sidecar.args);
    let mut min_delay = 0;
    for (name, value) in &sidecar.env {
        // Only the port numbers change (the test's free ports); everything
        // else is the manifest's own.
        let value = match name.as_str() {
            "RDSIAM_LISTEN" => with_port(value, listen),
            "RDSIAM_HTTP_ADDRESS" => with_port(value, http),
            _ => value.clone(),
        };
        if name == "RDSIAM_MIN_SIGTERM_DELAY" {
            min_delay = value.parse().unwrap();
        }
        cmd.env(name, value);
    }
    assert!(min_delay > 0, "the example sets RDSIAM_MIN_SIGTERM_DELAY");
    // What the cluster provides, not the manifest: the AWS endpoints and the
    // path to the database (here the gate, via a tunnel-like --via).
    cmd.env("AWS_ENDPOINT_URL_RDS", api.url())
        .env("RDSIAM_VIA", format!("127.0.0.1:{}", gate.port()))
        .env("PGSSLROOTCERT", ca_file(&env, &gate));
    let mut proxy = Proxy::start(cmd, 1);
    assert!(
        proxy.ready[0].contains(&format!("127.0.0.1:{listen}")),
        "{:?}",
        proxy.ready
    );
    // The JSON log format the manifest asks for.
    // (The log is written by its own thread: give it a moment.)
    let deadline = Instant::now() + Duration::from_secs(5);
    while !proxy.stderr().lines().any(|l| l.starts_with('{')) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let stderr = proxy.stderr();
    assert!(stderr.lines().any(|l| l.starts_with('{')), "{stderr}");

    for (kind, path, port) in &sidecar.probes {
        assert_eq!(*port, 9801, "{kind} probes the http address's port");
        let (status, body) = probe_until_ok(http, path, 20);
        assert_eq!(status, 200, "{kind} GET {path}: {body}");
    }

    // The app, with its own DATABASE_URL from the manifest.
    let app = doc["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"].as_str() == Some("DATABASE_URL"))
        .and_then(|e| e["value"].as_str())
        .unwrap()
        .replace(":5432/", &format!(":{listen}/"));
    let (code, out) = app_query(
        &env,
        &app,
        "select current_user || '@' || current_database()",
    );
    assert_eq!(
        (code, out.as_str()),
        (0, "orders_app@orders"),
        "{}",
        proxy.stderr()
    );

    // The kubelet stops the sidecar with SIGTERM: readiness fails at once,
    // the listener keeps accepting for --min-sigterm-delay, then it drains
    // and exits 0.
    let stopped_at = Instant::now();
    proxy.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(5);
    while http_get(http, "/readiness").0 == 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body) = http_get(http, "/readiness");
    assert_eq!((status, body.trim()), (503, "shutting down"));
    assert_eq!(http_get(http, "/liveness").0, 200);
    let (code, out) = app_query(&env, &app, "select 1");
    assert_eq!(
        (code, out.as_str()),
        (0, "1"),
        "still accepting during the delay"
    );
    assert!(
        stopped_at.elapsed() < Duration::from_secs(min_delay),
        "the check ran inside the delay"
    );
    assert_eq!(
        proxy.wait_exit(min_delay + 30),
        Some(0),
        "{}",
        proxy.stderr()
    );
    assert!(
        proxy.stderr().contains("sigterm-delay"),
        "{}",
        proxy.stderr()
    );
    drop(gate);
}

#[test]
fn the_ecs_sidecar_starts_from_the_task_definition_and_its_health_check_passes() {
    let env = Env::new();
    let (api, gate) = orders_proxy();
    let text = std::fs::read_to_string(repo("deploy/ecs/task-definition.json")).unwrap();
    let task: serde_json::Value = serde_json::from_str(&text).unwrap();
    let proxy_def = task["containerDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "rdsiam-proxy")
        .unwrap();
    let http = closed_port();
    let listen = closed_port();
    let envs: Vec<(String, String)> = proxy_def["environment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let (name, value) = (e["name"].as_str().unwrap(), e["value"].as_str().unwrap());
            let value = match name {
                "RDSIAM_LISTEN" => with_port(value, listen),
                "RDSIAM_HTTP_ADDRESS" => with_port(value, http),
                _ => value.to_owned(),
            };
            (name.to_owned(), value)
        })
        .collect();
    let with_env = |mut cmd: Command| {
        cmd.envs(envs.iter().cloned())
            .env("AWS_ENDPOINT_URL_RDS", api.url())
            .env("RDSIAM_VIA", format!("127.0.0.1:{}", gate.port()))
            .env("PGSSLROOTCERT", ca_file(&env, &gate));
        cmd
    };
    // The health check, exactly as the task definition gives it, minus the
    // image's path to the binary.
    let check: Vec<String> = proxy_def["healthCheck"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(check[0], "CMD");
    assert!(check[1].ends_with("/rdsiam"), "{check:?}");
    let health = || {
        let mut cmd = with_env(env.cmd());
        cmd.args(&check[2..]);
        run(&mut cmd)
    };
    // Before the proxy runs, the check fails (exit 6: not ready).
    let before = health();
    assert_eq!(before.code, 6, "{}", before.stderr);
    assert!(before.stderr.starts_with("rdsiam: "), "{}", before.stderr);

    let mut cmd = with_env(env.cmd());
    cmd.args(
        proxy_def["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap()),
    );
    let mut proxy = Proxy::start(cmd, 1);
    let after = health();
    assert_eq!(after.code, 0, "{}\n{}", after.stderr, proxy.stderr());
    let url = format!("host=127.0.0.1 port={listen} user=orders_app dbname=orders sslmode=disable");
    assert_eq!(app_query(&env, &url, "select 2"), (0, "2".to_owned()));
    proxy.signal("TERM");
    assert_eq!(proxy.wait_exit(40), Some(0), "{}", proxy.stderr());
}

#[test]
fn quitquitquit_stops_the_proxy_with_exit_0_only_when_enabled() {
    let env = Env::new();
    let gate = gate();
    // Off by default: the path does not exist and the proxy keeps running.
    let http = closed_port();
    let (cmd, _) = proxy_cmd(
        &env,
        &gate,
        &["--http-address", &format!("127.0.0.1:{http}")],
    );
    let mut proxy = Proxy::start(cmd, 1);
    assert_eq!(post(http, "/quitquitquit").0, 404);
    assert_eq!(proxy.wait_exit(1), None, "still running");
    assert_eq!(http_get(http, "/liveness").0, 200);
    drop(proxy);

    // On (from the environment, as a sidecar sets it): GET is refused, POST stops it.
    let http = closed_port();
    let (mut cmd, _) = proxy_cmd(&env, &gate, &[]);
    cmd.env("RDSIAM_HTTP_ADDRESS", format!("127.0.0.1:{http}"))
        .env("RDSIAM_QUITQUITQUIT", "true")
        // Skipped for /quitquitquit: whoever asked is done with the proxy.
        .env("RDSIAM_MIN_SIGTERM_DELAY", "600");
    let mut proxy = Proxy::start(cmd, 1);
    assert_eq!(http_get(http, "/quitquitquit").0, 405);
    let (status, body) = post(http, "/quitquitquit");
    assert_eq!((status, body.trim()), (200, "stopping"));
    assert_eq!(proxy.wait_exit(20), Some(0), "{}", proxy.stderr());
    assert!(
        proxy.stderr().contains("quitquitquit"),
        "{}",
        proxy.stderr()
    );
}

#[test]
fn quitquitquit_without_an_http_address_is_a_usage_error() {
    let env = Env::new();
    let gate = gate();
    let (mut cmd, _) = proxy_cmd(&env, &gate, &["--quitquitquit"]);
    let r = run(&mut cmd);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .starts_with("rdsiam: --quitquitquit needs an HTTP address"),
        "{}",
        r.stderr
    );
}

/// POST `path` with an empty body: (status, body).
fn post(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn readiness_fails_while_every_connection_slot_is_taken() {
    let env = Env::new();
    let gate = gate();
    let http = closed_port();
    let (mut cmd, port) = proxy_cmd(
        &env,
        &gate,
        &["--http-address", &format!("127.0.0.1:{http}")],
    );
    cmd.env("RDSIAM_MAX_CONNECTIONS", "1");
    let _proxy = Proxy::start(cmd, 1);
    assert_eq!(http_get(http, "/readiness").0, 200);
    // One client holds the only slot: it has sent its startup packet (a
    // client that says nothing holds none, issue 20) and waits on its login.
    let mut held = TcpStream::connect(("127.0.0.1", port)).unwrap();
    held.write_all(&startup_packet("iamuserapp", "app"))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = http_get(http, "/readiness");
    while got.0 == 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        got = http_get(http, "/readiness");
    }
    assert_eq!(got.0, 503, "{}", got.1);
    assert!(got.1.contains("at --max-connections (1 open)"), "{}", got.1);
    drop(held);
    let (status, body) = probe_until_ok(http, "/readiness", 10);
    assert_eq!(status, 200, "ready again once the slot is free: {body}");
}

#[test]
fn wait_blocks_until_the_proxy_is_ready_and_fails_with_6_when_it_never_is() {
    let env = Env::new();
    let gate = gate();
    let http = closed_port();
    let address = format!("127.0.0.1:{http}");
    // Nothing there: exit 6 after the time given, with what it saw.
    let mut cmd = env.cmd();
    cmd.args(["proxy", "--wait=1", "--http-address", &address]);
    let r = run(&mut cmd);
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert!(
        r.stderr.starts_with(&format!(
            "rdsiam: the proxy at {address} was not ready after 1s: no answer"
        )),
        "{}",
        r.stderr
    );
    // No address to ask: a usage error.
    let r = run(env.cmd().args(["proxy", "--wait"]));
    assert_eq!(r.code, 2, "{}", r.stderr);

    // Started before the proxy, it returns once the proxy is ready; the
    // address from RDSIAM_HTTP_ADDRESS, as an init script shares the env.
    let mut waiter = env.cmd();
    waiter
        .args(["proxy", "--wait=60"])
        .env("RDSIAM_HTTP_ADDRESS", &address)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let waiter = waiter.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let (cmd, _) = proxy_cmd(&env, &gate, &["--http-address", &address]);
    let _proxy = Proxy::start(cmd, 1);
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ready"));
}

#[test]
fn proxy_flags_come_from_env_and_config_with_the_usual_precedence() {
    let env = Env::new();
    let gate = gate();
    let config = env.home().join("rdsiam.toml");
    std::fs::write(
        &config,
        "[defaults]\nmax-connections = 7\nlog-format = \"json\"\n\n[targets.side]\nhost = \"localhost\"\nhttp-address = \"127.0.0.1:1\"\nmin-sigterm-delay = 3\n",
    )
    .unwrap();
    // `targets show` says where each came from.
    let show = |extra: &[(&str, &str)]| {
        let mut cmd = env.cmd();
        cmd.env("RDSIAM_CONFIG", &config)
            .args(["targets", "show", "side", "--output", "json"]);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let r = run(&mut cmd);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let rows: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["key"].as_str().unwrap().to_owned(),
                    (
                        r["value"].as_str().unwrap().to_owned(),
                        r["source"].as_str().unwrap().to_owned(),
                    ),
                )
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let rows = show(&[]);
    assert_eq!(rows["max-connections"], ("7".into(), "defaults".into()));
    assert_eq!(
        rows["http-address"],
        ("127.0.0.1:1".into(), "target".into())
    );
    assert_eq!(rows["min-sigterm-delay"], ("3".into(), "target".into()));
    let rows = show(&[
        ("RDSIAM_MAX_CONNECTIONS", "9"),
        ("RDSIAM_QUITQUITQUIT", "true"),
    ]);
    assert_eq!(rows["max-connections"], ("9".into(), "env".into()));
    assert_eq!(rows["quitquitquit"], ("true".into(), "env".into()));

    // Bad values name where they came from; a flag beats the variable.
    let mut cmd = env.cmd();
    cmd.env("RDSIAM_CONFIG", &config)
        .env("RDSIAM_MAX_CONNECTIONS", "0")
        .args([
            "proxy",
            "side",
            "--port",
            &gate.port().to_string(),
            "--region",
            "us-east-1",
        ]);
    let r = run(&mut cmd);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .starts_with("rdsiam: RDSIAM_MAX_CONNECTIONS is 0, not 1 to 100000"),
        "{}",
        r.stderr
    );
    let r = run(env
        .bare()
        .env("RDSIAM_MAX_CONNECTION_RATE", "lots")
        .args(["proxy", "--host", "h"]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("RDSIAM_MAX_CONNECTION_RATE `lots`"),
        "{}",
        r.stderr
    );

    // A running proxy gets [defaults]' log-format from the file and
    // --min-sigterm-delay from the environment.
    let http = closed_port();
    let (mut cmd, _) = proxy_cmd(
        &env,
        &gate,
        &["--http-address", &format!("127.0.0.1:{http}")],
    );
    cmd.env("RDSIAM_CONFIG", &config)
        .env("RDSIAM_MAX_CONNECTIONS", "5")
        .env("RDSIAM_MIN_SIGTERM_DELAY", "1");
    let mut proxy = Proxy::start(cmd, 1);
    assert_eq!(http_get(http, "/liveness").0, 200);
    let (_, metrics) = http_get(http, "/metrics");
    assert!(!metrics.is_empty());
    proxy.signal("TERM");
    assert_eq!(proxy.wait_exit(30), Some(0), "{}", proxy.stderr());
    let log = proxy.stderr();
    // json from [defaults], the delay from the environment.
    assert!(
        log.contains("\"sigterm-delay\"") || log.contains("sigterm-delay"),
        "{log}"
    );
    assert!(log.lines().any(|l| l.starts_with('{')), "{log}");
}

/// A protocol 3.0 StartupMessage for `user` and `database`.
fn startup_packet(user: &str, database: &str) -> Vec<u8> {
    let mut body = 196_608u32.to_be_bytes().to_vec();
    for (k, v) in [("user", user), ("database", database)] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    packet.extend(body);
    packet
}
