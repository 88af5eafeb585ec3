//! MySQL targets against a real MariaDB (testkit `mariadb`), whose IAM users the server
//! itself checks (PAM → the testkit's SigV4 verifier), so every refusal here is the server's.

use std::path::PathBuf;
use std::sync::OnceLock;

use rdsiam_testkit::mariadb::{self, MariaDb};
use rdsiam_testkit::rdsapi::{Inventory, RdsApi};

use crate::support::{Env, REGION, closed_port, expect, run};

/// One server for the whole run (4 s to start).
fn server() -> &'static MariaDb {
    static DB: OnceLock<MariaDb> = OnceLock::new();
    DB.get_or_init(|| MariaDb::start().expect("the MariaDB test server starts"))
}

/// The server's CA, written into `env`'s home.
fn ca(env: &Env) -> PathBuf {
    let path = env.home().join("mariadb-ca.pem");
    server().ca().write_ca(&path).unwrap();
    path
}

/// `rdsiam COMMAND --host localhost --port P --engine mysql --region R --ca-bundle CA`.
fn at_server(env: &Env, command: &str, user: &str) -> std::process::Command {
    at(env, command, user, "localhost", REGION)
}

fn at(env: &Env, command: &str, user: &str, host: &str, region: &str) -> std::process::Command {
    let mut cmd = env.cmd();
    cmd.args([
        command, "--host", host, "--engine", "mysql", "--region", region,
    ])
    .args(["--port", &server().port().to_string(), "-U", user]);
    if command != "token" {
        cmd.arg("--ca-bundle").arg(ca(env));
    }
    cmd
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn check_logs_in_over_verified_tls_and_says_who() {
    let env = Env::new();
    let mut cmd = at_server(&env, "check", "iamuserapp");
    cmd.args(["-d", "app", "--no-aws-identity", "-o", "json"]);
    let first = run(&mut cmd);
    assert_eq!(
        first.code,
        0,
        "{}\nverdicts: {:?}",
        first.stderr,
        server().verdicts()
    );
    let v = json(&first.stdout);
    assert_eq!(v["engine"], "mysql");
    assert_eq!(v["current_user"], "iamuserapp");
    assert_eq!(v["account"], "iamuserapp@%");
    assert!(
        v["session_user"]
            .as_str()
            .unwrap()
            .starts_with("iamuserapp@"),
        "{v}"
    );
    assert_eq!(v["database"], "app");
    assert!(
        v["server_version"].as_str().unwrap().contains("MariaDB"),
        "{v}"
    );
    assert_eq!(v["server_port"], server().port());
    assert_eq!(v["in_recovery"], false);
    assert_eq!(v["tls"]["in_use"], true);
    assert!(
        v["tls"]["version"].as_str().unwrap().starts_with("TLSv1."),
        "{v}"
    );
    assert_eq!(v["tls"]["sslmode"], "verify-full");
    assert!(server().verdicts().iter().any(|l| l == "iamuserapp ok"));

    // Text, a user whose name needs encoding in the token, and --expect-user.
    let mut cmd = at_server(&env, "check", "jane@example.com");
    cmd.args(["--no-aws-identity", "--expect-user", "jane@example.com"]);
    let out = expect(&mut cmd, 0).stdout;
    assert!(
        out.starts_with("ok: logged in as jane@example.com to no database"),
        "{out}"
    );
    assert!(
        out.contains("MariaDB") && out.contains("writer (read-write)"),
        "{out}"
    );
    let mut cmd = at_server(&env, "check", "iamuserapp");
    cmd.args(["--no-aws-identity", "--expect-user", "someoneelse"]);
    let run = expect(&mut cmd, 6);
    assert!(
        run.stderr.contains("expected `someoneelse`"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_server_refuses_bad_tokens_and_check_gives_the_known_causes() {
    let env = Env::new();
    // Signed for another region: the server's verifier says wrong-region, the server 1045.
    let mut cmd = at(&env, "check", "iamuserapp", "localhost", "eu-west-1");
    cmd.args(["--no-aws-identity"]);
    let run = expect(&mut cmd, 5);
    assert!(run.stderr.contains("ERROR 1045"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("IDENTIFIED WITH AWSAuthenticationPlugin")
            && run.stderr.contains("rds-db:connect")
            && run.stderr.contains("clock skew"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("X-Amz-Signature"), "{}", run.stderr);
    // A wrong secret: a bad signature.
    let mut cmd = at_server(&env, "check", "iamuserapp");
    cmd.args(["--no-aws-identity"])
        .env("AWS_SECRET_ACCESS_KEY", "not-the-test-secret");
    expect(&mut cmd, 5);
    let verdicts = server().verdicts();
    assert!(
        verdicts.iter().any(|l| l == "iamuserapp wrong-region"),
        "{verdicts:?}"
    );
    assert!(
        verdicts.iter().any(|l| l == "iamuserapp bad-signature"),
        "{verdicts:?}"
    );

    // A user with an ordinary password: the server wants another plugin.
    let mut cmd = at_server(&env, "check", mariadb::NATIVE_USER);
    cmd.arg("--no-aws-identity");
    let run = expect(&mut cmd, 5);
    assert!(
        run.stderr.contains("does not log in with IAM tokens"),
        "{}",
        run.stderr
    );
    // An IAM user without rights on the database.
    let mut cmd = at_server(&env, "check", mariadb::NO_DB_USER);
    cmd.args(["--no-aws-identity", "-d", "app"]);
    let run = expect(&mut cmd, 5);
    assert!(run.stderr.contains("ERROR 1044"), "{}", run.stderr);
}

#[test]
fn tls_is_verified_like_postgres() {
    let env = Env::new();
    // The built-in RDS bundle does not vouch for the test CA.
    let mut cmd = env.cmd();
    cmd.args([
        "check",
        "--host",
        "localhost",
        "--engine",
        "mysql",
        "--region",
        REGION,
    ])
    .args([
        "--port",
        &server().port().to_string(),
        "-U",
        "iamuserapp",
        "--no-aws-identity",
    ]);
    let run = expect(&mut cmd, 4);
    assert!(run.stderr.contains("not trusted"), "{}", run.stderr);
    // A name the certificate does not carry.
    let mut cmd = at(&env, "check", "iamuserapp", "db.example", REGION);
    cmd.args(["--no-aws-identity", "--via"])
        .arg(format!("127.0.0.1:{}", server().port()));
    let run = expect(&mut cmd, 4);
    assert!(run.stderr.contains("does not name"), "{}", run.stderr);
}

#[test]
fn a_server_without_tls_never_gets_the_token() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        // A greeting without CLIENT_SSL (protocol 41, secure connection, plugin auth).
        let mut g = vec![10];
        g.extend_from_slice(b"5.7.44\0");
        g.extend_from_slice(&1u32.to_le_bytes());
        g.extend_from_slice(b"abcdefgh\0");
        g.extend_from_slice(&(0x0200u16 | 0x8000).to_le_bytes());
        g.push(33);
        g.extend_from_slice(&2u16.to_le_bytes());
        g.extend_from_slice(&0x0028u16.to_le_bytes());
        g.push(21);
        g.extend_from_slice(&[0; 10]);
        g.extend_from_slice(b"ijklmnopqrst\0");
        g.extend_from_slice(b"mysql_native_password\0");
        let mut packet = (g.len() as u32).to_le_bytes()[..3].to_vec();
        packet.push(0);
        packet.extend_from_slice(&g);
        sock.write_all(&packet).unwrap();
        let mut got = Vec::new();
        let _ = sock.read_to_end(&mut got);
        got
    });
    let env = Env::new();
    let mut cmd = env.cmd();
    cmd.args([
        "check",
        "--host",
        "localhost",
        "--engine",
        "mysql",
        "--region",
        REGION,
    ])
    .args([
        "--port",
        &port.to_string(),
        "-U",
        "iamuserapp",
        "--no-aws-identity",
    ]);
    let run = expect(&mut cmd, 4);
    assert!(run.stderr.contains("does not offer TLS"), "{}", run.stderr);
    let got = server.join().unwrap();
    assert!(
        !String::from_utf8_lossy(&got).contains("X-Amz"),
        "the token was sent"
    );
}

#[test]
fn a_mysql_proxy_from_the_rds_api_through_via() {
    let env = Env::new();
    let api = RdsApi::start(Inventory::article().with_mysql()).unwrap();
    let mut cmd = env.cmd();
    cmd.args([
        "check",
        "--proxy",
        "MySqlProxy",
        "-U",
        "iamuserapp",
        "--region",
        REGION,
    ])
    .args([
        "--endpoint-url",
        &api.url(),
        "--no-aws-identity",
        "-o",
        "json",
    ])
    .arg("--via")
    .arg(format!("127.0.0.1:{}", server().port()))
    .arg("--ca-bundle")
    .arg(ca(&env));
    let v = json(&expect(&mut cmd, 0).stdout);
    assert_eq!(v["endpoint"]["host"], mariadb::mysql_proxy_host());
    assert_eq!(v["endpoint"]["port"], 3306);
    assert_eq!(v["current_user"], "iamuserapp");
}

#[test]
fn token_env_is_what_the_mariadb_client_reads() {
    let env = Env::new();
    let mut cmd = at_server(&env, "token", "iamuserapp");
    cmd.args(["-o", "env"]);
    let out = expect(&mut cmd, 0).stdout;
    assert!(out.contains("export MYSQL_HOST='localhost'\n"), "{out}");
    assert!(
        out.contains(&format!("export MYSQL_TCP_PORT='{}'\n", server().port())),
        "{out}"
    );
    assert!(out.contains("export MYSQL_PWD='localhost:"), "{out}");
    assert!(
        !out.contains("PGPASSWORD") && !out.contains("PGHOST"),
        "{out}"
    );
    // The real client logs in with exactly that environment (plus the flags the comment names).
    let script = format!(
        "eval \"$1\" && exec mariadb --no-defaults --protocol=TCP -u iamuserapp --ssl \
         --ssl-verify-server-cert --ssl-ca='{}' -N -B -e 'select current_user()'",
        ca(&env).display()
    );
    let mut sh = std::process::Command::new("sh");
    sh.args(["-c", &script, "sh", &out]);
    let done = run(&mut sh);
    assert_eq!(done.stdout.trim(), "iamuserapp@%", "{}", done.stderr);
}

/// A fake `mysql` on PATH that shows what it was given.
fn fake_client(env: &Env) -> PathBuf {
    let dir = env.home().join("bin");
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("mysql");
    std::fs::write(
        &script,
        "#!/bin/sh\n\
         if [ \"$1\" = --version ]; then echo 'mysql  Ver 15.1 Distrib 10.11.6-MariaDB'; exit 0; fi\n\
         for a in \"$@\"; do printf 'arg:%s\\n' \"$a\"; done\n\
         env | sed 's/^/env:/'\n\
         f=${1#--defaults-file=}\n\
         printf 'mode:%s\\n' \"$(stat -L -c %a \"$f\")\"\n\
         sed 's/^/file:/' \"$f\"\n\
         exit 7\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

#[test]
fn rdsiam_mysql_hands_the_token_in_a_private_option_file_only() {
    let env = Env::new();
    let bin = fake_client(&env);
    let mut cmd = at_server(&env, "mysql", "iamuserapp");
    cmd.env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("MYSQL_PWD", "stale")
        .args(["-d", "app", "--", "-N", "-e", "select 1"]);
    let run = run(&mut cmd);
    assert_eq!(run.code, 7, "the client's status is ours: {}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let args: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("arg:"))
        .collect();
    assert!(args[0].starts_with("--defaults-file=/dev/fd/"), "{args:?}");
    let port = format!("--port={}", server().port());
    for want in [
        "--host=localhost",
        port.as_str(),
        "--user=iamuserapp",
        "--ssl",
        "--ssl-verify-server-cert",
        "--database=app",
        "-N",
        "select 1",
    ] {
        assert!(args.contains(&want), "{want}: {args:?}");
    }
    assert!(args.iter().any(|a| a.starts_with("--ssl-ca=")), "{args:?}");
    // The token: in the option file (mode 600), nowhere in argv or the environment.
    assert!(lines.contains(&"mode:600"), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("file:password=\"localhost:")),
        "{lines:?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| (l.starts_with("arg:") || l.starts_with("env:")) && l.contains("X-Amz")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("env:MYSQL_PWD")),
        "{lines:?}"
    );
}

#[test]
fn rdsiam_mysql_logs_in_with_the_real_client() {
    let env = Env::new();
    let mut cmd = at_server(&env, "mysql", "iamuserapp");
    cmd.args(["--mysql", "mariadb", "-d", "app", "--", "-N", "-B", "-e"])
        .arg("select current_user(), database(), @@ssl_cipher is not null or 1");
    let ok = expect(&mut cmd, 0);
    assert!(
        ok.stdout.starts_with("iamuserapp@%\tapp"),
        "{}{}",
        ok.stdout,
        ok.stderr
    );
    // A refused token is the server's refusal, through the client.
    let mut cmd = at(&env, "mysql", "iamuserapp", "localhost", "eu-west-1");
    cmd.args(["--mysql", "mariadb", "--", "-e", "select 1"]);
    let run = run(&mut cmd);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("1045"), "{}", run.stderr);
}

#[test]
fn rdsiam_mysql_refuses_what_would_undo_tls_or_the_endpoint() {
    let env = Env::new();
    let bin = fake_client(&env);
    for bad in [
        "--skip-ssl",
        "--ssl-mode=DISABLED",
        "-uroot",
        "--ho=elsewhere",
        "--print-defaults",
        "-p",
    ] {
        let mut cmd = at_server(&env, "mysql", "iamuserapp");
        cmd.env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .args(["--", bad]);
        let run = expect(&mut cmd, 2);
        assert!(
            run.stderr.contains("rdsiam mysql sets"),
            "{bad}: {}",
            run.stderr
        );
    }
    // A PostgreSQL target: use psql.
    let mut cmd = env.cmd();
    cmd.env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .args([
            "mysql",
            "--host",
            "db.example",
            "-U",
            "u",
            "--region",
            REGION,
        ]);
    let run = expect(&mut cmd, 2);
    assert!(run.stderr.contains("use rdsiam psql"), "{}", run.stderr);
}

/// `rdsiam doctor -o json` at the server through the RDS API's `MySqlProxy` (`--via`).
fn doctor_report(env: &Env, api: &RdsApi, region: &str, code: i32) -> serde_json::Value {
    let mut cmd = env.cmd();
    cmd.args([
        "doctor",
        "--proxy",
        "MySqlProxy",
        "-U",
        "iamuserapp",
        "-d",
        "app",
    ])
    .args([
        "--region",
        region,
        "--endpoint-url",
        &api.url(),
        "-o",
        "json",
    ])
    .env("AWS_ENDPOINT_URL_STS", api.url())
    .arg("--via")
    .arg(format!("127.0.0.1:{}", server().port()))
    .arg("--ca-bundle")
    .arg(ca(env));
    json(&expect(&mut cmd, code).stdout)
}

fn step<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name}: {report:#}"))
}

#[test]
fn doctor_runs_all_eight_steps_for_a_mysql_proxy() {
    let env = Env::new();
    let api = RdsApi::start(Inventory::article().with_mysql()).unwrap();
    let report = doctor_report(&env, &api, REGION, 0);
    for name in [
        "credentials",
        "identity",
        "target",
        "policy",
        "network",
        "tls",
        "login",
        "inside",
    ] {
        assert_eq!(step(&report, name)["status"], "ok", "{name}: {report:#}");
    }
    let policy = step(&report, "policy");
    assert!(policy.to_string().contains(":dbuser:prx-"), "{policy:#}");
    let inside = step(&report, "inside");
    assert_eq!(inside["details"]["identified_with"], "pam", "{inside:#}");
    assert_eq!(inside["details"]["account"], "iamuserapp@%");
    assert_eq!(inside["details"]["role"], "writer");
    assert!(
        inside["found"]
            .as_str()
            .unwrap()
            .contains("identified via pam"),
        "{inside:#}"
    );

    // A token the server refuses: step 7 fails with exit 5 and the known causes.
    let report = doctor_report(&env, &api, "eu-west-1", 5);
    let login = step(&report, "login");
    assert_eq!(login["status"], "fail", "{login:#}");
    assert!(
        login["found"].as_str().unwrap().contains("ERROR 1045"),
        "{login:#}"
    );
    assert!(
        login["details"]["causes"]
            .to_string()
            .contains("identified with AWSAuthenticationPlugin"),
        "{login:#}"
    );
    assert_eq!(step(&report, "inside")["status"], "skip");
}

#[test]
fn policy_names_the_mysql_proxy_resource() {
    let env = Env::new();
    let api = RdsApi::start(Inventory::article().with_mysql()).unwrap();
    let inv = Inventory::article().with_mysql();
    let proxy = inv.proxies.iter().find(|p| p.name == "MySqlProxy").unwrap();
    let id = proxy.arn.rsplit(':').next().unwrap();
    let mut cmd = env.cmd();
    cmd.args([
        "policy",
        "--proxy",
        "MySqlProxy",
        "-U",
        "iamuserapp",
        "--region",
        REGION,
    ])
    .args(["--endpoint-url", &api.url(), "--account", "123456789012"]);
    let out = expect(&mut cmd, 0).stdout;
    assert!(
        out.contains(&format!(
            "arn:aws:rds-db:{REGION}:123456789012:dbuser:{id}/iamuserapp"
        )),
        "{out}"
    );
}

/// `rdsiam proxy` in front of the server: TCP and a unix socket.
fn mysql_proxy(env: &Env, extra: &[&str]) -> (crate::proxy::Proxy, u16, PathBuf, u16) {
    let (port, http) = (closed_port(), closed_port());
    let dir = env.home().join("sock");
    let mut cmd = at_server(env, "proxy", "iamuserapp");
    cmd.args(["-d", "app", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--unix-socket")
        .arg(&dir)
        .arg("--http-address")
        .arg(format!("127.0.0.1:{http}"))
        .args(extra);
    let proxy = crate::proxy::Proxy::start(cmd, 2);
    (proxy, port, dir.join(format!("mysql-{port}.sock")), http)
}

/// The real `mariadb` client, no password, no TLS on the local hop.
fn mariadb_client(args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new("mariadb");
    cmd.arg("--no-defaults").args(args).env_remove("MYSQL_PWD");
    cmd
}

#[test]
fn the_proxy_serves_the_real_client_over_tcp_and_its_socket_with_one_token() {
    let env = Env::new();
    let (proxy, port, socket, http) = mysql_proxy(&env, &[]);
    assert!(
        proxy.ready[0].contains(&format!(
            "mysql --protocol=TCP -h 127.0.0.1 -P {port} -u 'iamuserapp' 'app'"
        )),
        "{:?}",
        proxy.ready
    );
    let query = "select current_user(), database(), @@version like '%MariaDB%'";
    let tcp = expect(
        &mut mariadb_client(&[
            "--protocol=TCP",
            "-h",
            "127.0.0.1",
            "-P",
            &port.to_string(),
            "-u",
            "iamuserapp",
            "app",
            "-N",
            "-B",
            "-e",
            query,
        ]),
        0,
    );
    assert_eq!(tcp.stdout, "iamuserapp@%\tapp\t1\n", "{}", tcp.stderr);
    // The socket; no user given (the client sends the login name): the
    // proxy's pinned user it is. A multi-statement batch and a table round trip.
    let sock = expect(
        &mut mariadb_client(&[
            "-S",
            &socket.to_string_lossy(),
            "app",
            "-N",
            "-B",
            "-e",
            "create table if not exists proxied (i int); insert into proxied values (7); \
             select sum(i) > 0, current_user() from proxied; drop table proxied",
        ]),
        0,
    );
    assert_eq!(sock.stdout, "1\tiamuserapp@%\n", "{}", sock.stderr);
    // One token for the user across both logins, each checked by the server.
    let metrics = crate::proxy::http_get(http, "/metrics").1;
    assert!(
        metrics.contains("rdsiam_proxy_tokens_minted_total 1\n"),
        "{metrics}"
    );
    assert!(server().verdicts().len() >= 2, "{:?}", server().verdicts());
    // A client's COM_QUIT is a clean end, though the server just closes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while proxy.stderr().matches("outcome=ok").count() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let stderr = proxy.stderr();
    assert_eq!(stderr.matches("outcome=ok").count(), 2, "{stderr}");
    assert!(!stderr.contains("X-Amz-Signature"), "{stderr}");
}

#[test]
fn the_proxy_refuses_another_user_and_passes_on_the_servers_refusal() {
    let env = Env::new();
    let (_proxy, port, _, _) = mysql_proxy(&env, &[]);
    let p = port.to_string();
    let tcp = ["--protocol=TCP", "-h", "127.0.0.1", "-P", &p];
    let mut cmd = mariadb_client(&tcp);
    cmd.args(["-u", "someone_else", "-e", "select 1"]);
    let other = run(&mut cmd);
    assert_eq!(other.code, 1, "{}", other.stderr);
    assert!(
        other
            .stderr
            .contains("logs in only as `iamuserapp`, not `someone_else`"),
        "{}",
        other.stderr
    );
    // Signed for another region: the server's verifier refuses it.
    let mut cmd = at(&env, "proxy", "iamuserapp", "localhost", "eu-west-1");
    let wrong = closed_port();
    cmd.args(["--listen", &format!("127.0.0.1:{wrong}")]);
    let _wrong_proxy = crate::proxy::Proxy::start(cmd, 1);
    let mut cmd = mariadb_client(&[
        "--protocol=TCP",
        "-h",
        "127.0.0.1",
        "-P",
        &wrong.to_string(),
        "-u",
        "iamuserapp",
        "-e",
        "select 1",
    ]);
    let refused = run(&mut cmd);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("ERROR 1045"), "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("rdsiam proxy: the database refused the IAM login"),
        "{}",
        refused.stderr
    );
}

#[test]
fn pool_is_refused_for_a_mysql_target_rather_than_ignored() {
    let env = Env::new();
    let mut cmd = at(&env, "proxy", "iamuserapp", "localhost", "us-east-1");
    let port = closed_port();
    cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--pool"]);
    let out = run(&mut cmd);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("--pool is for PostgreSQL targets"),
        "{}",
        out.stderr
    );
}

#[test]
fn run_gives_a_bare_client_and_mysqldump_the_target_with_no_flags() {
    let env = Env::new();
    let mut cmd = at_server(&env, "run", "iamuserapp");
    cmd.args(["-d", "app", "--", "sh", "-c"]).arg(
        "mariadb -N -B -e 'create table if not exists dumped (i int); select current_user(), database()' \
         && mariadb-dump --skip-comments app dumped && mariadb -e 'drop table dumped' \
         && echo \"$DATABASE_URL\" && cat \"$MYSQL_HOME/my.cnf\"",
    );
    let ok = expect(&mut cmd, 0);
    let out = &ok.stdout;
    assert!(out.starts_with("iamuserapp@%\tapp\n"), "{out}{}", ok.stderr);
    assert!(out.contains("CREATE TABLE `dumped`"), "{out}");
    assert!(
        out.contains("mysql://iamuserapp@localhost:3306/app?socket=%2F"),
        "{out}"
    );
    assert!(out.contains("user=\"iamuserapp\"\n"), "{out}");
    assert!(!out.to_lowercase().contains("password"), "{out}");
}
