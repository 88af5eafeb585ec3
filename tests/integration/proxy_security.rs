//! The proxy on a shared host and against hostile clients (issues 20, 24):
//! only the owner's account gets in (another account is `nobody`, run with
//! setpriv, as the tests run as root), socket directories others control
//! are refused, and clients that stall, lie about lengths, repeat keys,
//! guess cancel keys, stop reading or come in crowds neither hurt the
//! others nor leak.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdsiam_testkit::gate::Fault;

use crate::db::{ca_file, gate, postgres};
use crate::proxy::{Proxy, http_get, metric, proxy_cmd, psql};
use crate::support::{Env, REGION, closed_port, output_within};

const NOBODY: u32 = 65534;

/// `cmd` run as `nobody` (setpriv), with a HOME it may read.
fn as_nobody(cmd: &Command) -> Command {
    let mut wrapped = Command::new("setpriv");
    wrapped.args([
        &format!("--reuid={NOBODY}"),
        &format!("--regid={NOBODY}"),
        "--clear-groups",
        "--",
    ]);
    wrapped.arg(cmd.get_program()).args(cmd.get_args());
    wrapped.env_clear();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            wrapped.env(k, v);
        }
    }
    wrapped.env("HOME", "/").stdin(Stdio::null());
    wrapped
}

/// Run `cmd` (killed after 30 s: a proxy that should have refused to
/// start would run forever) and expect exit `code` with an rdsiam error.
#[track_caller]
fn expect(cmd: &mut Command, code: i32) -> crate::support::Run {
    let out = output_within(cmd, 30);
    let run = crate::support::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_eq!(
        run.code, code,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    if code != 0 {
        assert!(run.stderr.starts_with("rdsiam: "), "{}", run.stderr);
    }
    run
}

fn conninfo(port: u16, user: &str) -> String {
    format!("host=127.0.0.1 port={port} user={user} dbname=app sslmode=disable connect_timeout=20")
}

/// (exit code, stdout, stderr) of `cmd`, killed after 60 s.
fn outcome(cmd: &mut Command) -> (i32, String, String) {
    let out = output_within(cmd, 60);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// Raw protocol, for the clients psql won't play.

fn packet(code: i32, rest: &[u8]) -> Vec<u8> {
    let mut out = ((rest.len() + 8) as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(rest);
    out
}

fn startup(params: &[(&str, &str)], minor: i32) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    packet(0x0003_0000 | minor, &body)
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// One typed message: (tag, body).
fn read_msg(s: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    s.read_exact(&mut head)?;
    let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut body = vec![0; len - 4];
    s.read_exact(&mut body)?;
    Ok((head[0], body))
}

/// An ErrorResponse's (code, message, hint).
fn error_fields(body: &[u8]) -> (String, String, String) {
    let (mut code, mut message, mut hint) = (String::new(), String::new(), String::new());
    for field in body.split(|b| *b == 0) {
        if let Some((&tag, value)) = field.split_first() {
            let value = String::from_utf8_lossy(value).into_owned();
            match tag {
                b'C' => code = value,
                b'M' => message = value,
                b'H' => hint = value,
                _ => {}
            }
        }
    }
    (code, message, hint)
}

/// Send `bytes` as the first packet and expect an ErrorResponse: (code, message, hint).
#[track_caller]
fn refused_with(port: u16, bytes: &[u8]) -> (String, String, String) {
    let mut s = connect(port);
    s.write_all(bytes).unwrap();
    let (tag, body) = read_msg(&mut s).expect("an answer");
    assert_eq!(tag, b'E', "{:?}", String::from_utf8_lossy(&body));
    error_fields(&body)
}

/// Log in as iamuserapp over the raw protocol; the stream at ReadyForQuery.
fn login(port: u16) -> TcpStream {
    let mut s = connect(port);
    s.write_all(&startup(&[("user", "iamuserapp"), ("database", "app")], 0))
        .unwrap();
    loop {
        let (tag, body) = read_msg(&mut s).unwrap();
        match tag {
            b'Z' => return s,
            b'E' => panic!("login refused: {:?}", error_fields(&body)),
            _ => {}
        }
    }
}

fn query_msg(sql: &str) -> Vec<u8> {
    let mut out = vec![b'Q'];
    out.extend_from_slice(&((sql.len() + 5) as i32).to_be_bytes());
    out.extend_from_slice(sql.as_bytes());
    out.push(0);
    out
}

/// Run `sql` on a logged-in stream; the first DataRow's first column.
fn simple_query(s: &mut TcpStream, sql: &str) -> String {
    s.write_all(&query_msg(sql)).unwrap();
    let mut value = String::new();
    loop {
        let (tag, body) = read_msg(s).unwrap();
        match tag {
            b'D' if value.is_empty() => {
                let len = i32::from_be_bytes([body[2], body[3], body[4], body[5]]) as usize;
                value = String::from_utf8_lossy(&body[6..6 + len]).into_owned();
            }
            b'E' => panic!("{:?}", error_fields(&body)),
            b'Z' => return value,
            _ => {}
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn another_account_is_refused_unless_allowed_and_refusals_are_counted() {
    let env = Env::new();
    let gate = gate();
    let http = closed_port();
    let (cmd, port) = proxy_cmd(
        &env,
        &gate,
        &[
            "-U",
            "iamuserapp",
            "--http-address",
            &format!("127.0.0.1:{http}"),
        ],
    );
    let proxy = Proxy::start(cmd, 1);
    let mut client = psql(&env);
    client.args([
        &conninfo(port, "iamuserapp"),
        "-XtAc",
        "select current_user",
    ]);
    let (code, _, err) = outcome(&mut as_nobody(&client));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("uid 65534 (nobody) may not use this proxy"),
        "{err}"
    );
    assert!(err.contains("its owner, uid 0 (root)"), "{err}");
    assert!(err.contains("--allow-user 'nobody'"), "{err}");
    let log = proxy.wait_log("refused client=127.0.0.1:");
    assert!(log.contains("uid=65534 reason=uid"), "{log}");
    // Nothing reached the database, and the owner still gets in.
    assert!(gate.events().is_empty(), "{:?}", gate.events());
    let (code, out, err) = outcome(&mut client);
    assert_eq!((code, out.as_str()), (0, "iamuserapp"), "{err}");
    let (_, metrics) = http_get(http, "/metrics");
    assert_eq!(
        metric(&metrics, "rdsiam_proxy_refusals_total{reason=\"uid\"}"),
        Some(1.0),
        "{metrics}"
    );
    drop(proxy);

    // Shared on purpose: named by --allow-user.
    let (cmd, port) = proxy_cmd(&env, &gate, &["-U", "iamuserapp", "--allow-user", "nobody"]);
    let _proxy = Proxy::start(cmd, 1);
    let mut client = psql(&env);
    client.args([&conninfo(port, "iamuserapp"), "-XtAc", "select 'shared'"]);
    let (code, out, err) = outcome(&mut as_nobody(&client));
    assert_eq!((code, out.as_str()), (0, "shared"), "{err}");

    let run = expect(
        proxy_cmd(&env, &gate, &["--allow-user", "no-such-account-here"])
            .0
            .arg("-U")
            .arg("x"),
        2,
    );
    assert!(run.stderr.contains("no account is named"), "{}", run.stderr);
}

#[test]
fn non_loopback_needs_allow_any_local_user_and_the_ready_line_names_loopback() {
    let env = Env::new();
    let gate = gate();
    let port = closed_port();
    let listen = format!("0.0.0.0:{port}");
    let run = expect(
        &mut proxy_cmd(&env, &gate, &["-U", "iamuserapp", "--listen", &listen]).0,
        2,
    );
    assert!(run.stderr.contains("is not loopback"), "{}", run.stderr);
    assert!(
        run.stderr.contains("--allow-any-local-user"),
        "{}",
        run.stderr
    );
    let (cmd, _) = proxy_cmd(
        &env,
        &gate,
        &[
            "-U",
            "iamuserapp",
            "--listen",
            &listen,
            "--allow-any-local-user",
        ],
    );
    let proxy = Proxy::start(cmd, 1);
    let ready = &proxy.ready[0];
    assert!(
        ready.contains(&format!("psql \"host=127.0.0.1 port={port} ")),
        "{ready}"
    );
    assert!(!ready.contains("host=0.0.0.0"), "{ready}");
    // Every account is admitted now.
    let mut client = psql(&env);
    client.args([&conninfo(port, "iamuserapp"), "-XtAc", "select 'any'"]);
    let (code, out, err) = outcome(&mut as_nobody(&client));
    assert_eq!((code, out.as_str()), (0, "any"), "{err}");
}

#[test]
fn without_the_socket_tables_tcp_is_refused_and_the_unix_socket_serves() {
    let env = Env::new();
    let gate = gate();
    let dir = env.home().join("sock");
    let (cmd, port) = proxy_cmd(&env, &gate, &["-U", "iamuserapp"]);
    // A mount namespace whose /proc is an empty tmpfs: no /proc/net/tcp.
    let mut hidden = Command::new("unshare");
    hidden
        .args([
            "-m",
            "sh",
            "-c",
            "mount -t tmpfs none /proc && exec \"$@\"",
            "sh",
        ])
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .arg("--unix-socket")
        .arg(&dir)
        .env_clear();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            hidden.env(k, v);
        }
    }
    let proxy = Proxy::start(hidden, 2);
    let log = proxy.wait_log("can't be known here");
    assert!(log.contains("TCP clients will be refused"), "{log}");
    let (code, _, err) =
        outcome(psql(&env).args([&conninfo(port, "iamuserapp"), "-XtAc", "select 1"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("can't be known, so it is refused"), "{err}");
    assert!(err.contains("--allow-any-local-user"), "{err}");
    let socket = format!(
        "host={} port={port} user=iamuserapp dbname=app",
        dir.display()
    );
    let (code, out, err) = outcome(psql(&env).args([&socket, "-XtAc", "select 'unix'"]));
    assert_eq!((code, out.as_str()), (0, "unix"), "{err}");
}

#[test]
fn a_socket_directory_others_control_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let gate = gate();
    // Made by another account, as a predictable /tmp/rdsiam may be.
    let theirs = env.home().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(NOBODY), Some(NOBODY)).unwrap();
    let (mut cmd, _) = proxy_cmd(&env, &gate, &["-U", "iamuserapp"]);
    let run = expect(cmd.arg("--unix-socket").arg(&theirs), 2);
    assert!(
        run.stderr
            .contains("is owned by uid 65534 (nobody), not by you"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("doesn't exist yet"), "{}", run.stderr);
    // Ours, but anyone may write in it.
    let open = env.home().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let (mut cmd, _) = proxy_cmd(&env, &gate, &["-U", "iamuserapp"]);
    let run = expect(cmd.arg("--unix-socket").arg(&open), 2);
    assert!(
        run.stderr
            .contains("is writable by every local account (mode 1777)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("chmod go-w"), "{}", run.stderr);
    assert!(std::fs::read_dir(&open).unwrap().next().is_none());
}

#[test]
fn the_socket_is_never_reachable_by_others_even_while_it_is_made() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let gate = gate();
    // Others may enter the directory (0755) and the umask is 000: the
    // socket would be born 0777. strace holds every chmod for half a
    // second, the window another account needs.
    let base = tempfile::Builder::new()
        .prefix("rdsiam-race")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = base.path().join("sock");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (cmd, port) = proxy_cmd(&env, &gate, &["-U", "iamuserapp"]);
    let socket = dir.join(format!(".s.PGSQL.{port}"));
    // `nobody` tries to connect, over and over, and says when it got in.
    let script = format!(
        "import socket, time\nend = time.time() + 12\nwhile time.time() < end:\n    s = socket.socket(socket.AF_UNIX)\n    try:\n        s.connect({:?})\n        print('connected', flush=True)\n        break\n    except OSError:\n        pass\n    finally:\n        s.close()\n",
        socket.display().to_string()
    );
    let mut spy = Command::new("python3");
    spy.args(["-c", &script]);
    let spy = as_nobody(&spy).stdout(Stdio::piped()).spawn().unwrap();
    let mut traced = Command::new("sh");
    traced
        .args([
            "-c",
            "umask 000 && exec strace -f -qq -o /dev/null -e trace=chmod,fchmodat,fchmod -e inject=chmod,fchmodat,fchmod:delay_enter=500000 \"$@\"",
            "sh",
        ])
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .arg("--unix-socket")
        .arg(&dir)
        .env_clear();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            traced.env(k, v);
        }
    }
    let proxy = Proxy::start(traced, 2);
    let (code, out, err) = outcome(psql(&env).args([
        &format!(
            "host={} port={port} user=iamuserapp dbname=app",
            dir.display()
        ),
        "-XtAc",
        "select 'mine'",
    ]));
    assert_eq!((code, out.as_str()), (0, "mine"), "{err}");
    // Killing strace leaves its tracee running: end the proxy itself too.
    let pid = proxy.child.id();
    let tracees =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    drop(proxy);
    for tracee in tracees.split_whitespace() {
        let _ = Command::new("kill").args(["-KILL", tracee]).status();
    }
    let out = spy.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        !said.contains("connected"),
        "another account reached the socket"
    );
}

#[test]
fn a_client_that_never_sends_its_startup_holds_no_slot_and_is_closed() {
    let env = Env::new();
    let gate = gate();
    let (cmd, port) = proxy_cmd(&env, &gate, &["-U", "iamuserapp", "--max-connections", "1"]);
    let proxy = Proxy::start(cmd, 1);
    // Silent, and half a startup packet.
    let mut silent = connect(port);
    let mut half = connect(port);
    half.write_all(&startup(&[("user", "iamuserapp")], 0)[..10])
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (code, out, err) =
        outcome(psql(&env).args([&conninfo(port, "iamuserapp"), "-XtAc", "select 'in'"]));
    assert_eq!((code, out.as_str()), (0, "in"), "{err}");
    // Both are told and closed after the startup deadline.
    for s in [&mut silent, &mut half] {
        let (tag, body) = read_msg(s).unwrap();
        assert_eq!(tag, b'E');
        let (code, message, _) = error_fields(&body);
        assert_eq!(code, "08P01");
        assert!(
            message.contains("no startup packet within 10s"),
            "{message}"
        );
        assert_eq!(s.read(&mut [0u8; 1]).unwrap(), 0);
    }
    let log = proxy.wait_log_times("reason=startup_timeout", 2);
    assert_eq!(log.matches("reason=startup_timeout").count(), 2, "{log}");
}

#[test]
fn hostile_first_packets_each_get_a_fatal_and_a_log_line() {
    let env = Env::new();
    let gate = gate();
    let (cmd, port) = proxy_cmd(&env, &gate, &["-U", "iamuserapp"]);
    let proxy = Proxy::start(cmd, 1);
    // An absurd length.
    let (code, message, _) = refused_with(port, &i32::MAX.to_be_bytes());
    assert_eq!(code, "08P01");
    assert!(
        message.contains("invalid startup packet length"),
        "{message}"
    );
    // A repeated key: PostgreSQL would use the last `database`, a log the first.
    let (code, message, _) = refused_with(
        port,
        &startup(
            &[
                ("user", "iamuserapp"),
                ("database", "app"),
                ("database", "postgres"),
            ],
            0,
        ),
    );
    assert_eq!(code, "08P01");
    assert!(message.contains("names `database` twice"), "{message}");
    // A short CancelRequest is named as one.
    let (_, message, _) = refused_with(port, &packet(80_877_102, &[0, 0, 0, 1]));
    assert!(message.contains("invalid CancelRequest"), "{message}");
    assert!(!message.contains("1234.5678"), "{message}");
    // Protocol 4.0.
    let (_, message, _) = refused_with(port, &packet(0x0004_0000, b"user\0x\0\0"));
    assert!(
        message.contains("unsupported frontend protocol 4.0"),
        "{message}"
    );
    // TLS after our `N`.
    let mut s = connect(port);
    s.write_all(&packet(80_877_103, b"")).unwrap();
    let mut n = [0u8; 1];
    s.read_exact(&mut n).unwrap();
    assert_eq!(&n, b"N");
    s.write_all(&[0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00])
        .unwrap();
    let (tag, body) = read_msg(&mut s).unwrap();
    assert_eq!(tag, b'E');
    let (_, message, _) = error_fields(&body);
    assert!(message.contains("sent a TLS handshake"), "{message}");
    // Replication.
    let (code, message, _) = refused_with(
        port,
        &startup(&[("user", "iamuserapp"), ("replication", "database")], 0),
    );
    assert_eq!(code, "0A000");
    assert!(
        message.contains("replication connections are not relayed"),
        "{message}"
    );
    proxy.wait_log_times("reason=bad_startup", 5);
    let log = proxy.wait_log("outcome=rejected");
    assert_eq!(log.matches("reason=bad_startup").count(), 5, "{log}");
    assert!(
        log.contains("replication connections are not relayed"),
        "{log}"
    );
    assert!(gate.events().is_empty(), "{:?}", gate.events());

    // A 3.2 client is told 3.0, as PostgreSQL tells it, then logged in.
    let mut s = connect(port);
    s.write_all(&startup(&[("user", "iamuserapp"), ("database", "app")], 2))
        .unwrap();
    let (tag, body) = read_msg(&mut s).unwrap();
    assert_eq!(tag, b'v');
    assert_eq!(&body[..4], &0i32.to_be_bytes());
    while read_msg(&mut s).unwrap().0 != b'Z' {}
    assert_eq!(simple_query(&mut s, "select 'three-two'"), "three-two");
}

#[test]
fn refusal_hints_quote_the_client_user_and_fit_rdsiam_run() {
    let env = Env::new();
    let gate = gate();
    let (cmd, port) = proxy_cmd(&env, &gate, &["-U", "iamuserapp"]);
    let _proxy = Proxy::start(cmd, 1);
    let (code, _, hint) = refused_with(
        port,
        &startup(&[("user", "a$(id)"), ("database", "app")], 0),
    );
    assert_eq!(code, "28000");
    assert!(hint.contains("--user 'a$(id)'"), "{hint}");

    // Under `rdsiam run`: the same refusal, with no word of another proxy.
    let psql_path = postgres().psql_path();
    let script = format!(
        "{} -XtAc 'select 1' -U postgres 2>&1; exit 0",
        psql_path.display()
    );
    let mut cmd = env.cmd();
    cmd.args([
        "run",
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
    ])
    .arg("--ca-bundle")
    .arg(ca_file(&env, &gate))
    .env("PSQLRC", "/dev/null")
    .args(["--", "sh", "-c", &script]);
    let run = expect(&mut cmd, 0);
    assert!(
        run.stdout.contains("logs in only as `iamuserapp`"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("another proxy"), "{}", run.stdout);
}

#[test]
fn rdsiam_run_checks_the_peer_too() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let gate = gate();
    // A TMPDIR others may enter, and COMMAND opens the socket to all: the
    // peer check alone stands between `nobody` and the database.
    let tmp = tempfile::Builder::new()
        .prefix("rdsiam-run-peer")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let psql_path = postgres().psql_path();
    let script = format!(
        "chmod 755 \"$PGHOST\" && chmod 777 \"$PGHOST/.s.PGSQL.5432\" && \
         setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups -- env HOME=/ {psql} -XtAc 'select 1' 2>&1; \
         {psql} -XtAc \"select 'owner'\"",
        psql = psql_path.display()
    );
    let mut cmd = env.cmd();
    cmd.args([
        "run",
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
    ])
    .arg("--ca-bundle")
    .arg(ca_file(&env, &gate))
    .env("TMPDIR", tmp.path())
    .env("PSQLRC", "/dev/null")
    .args(["--", "sh", "-c", &script]);
    let run = expect(&mut cmd, 0);
    assert!(
        run.stdout
            .contains("uid 65534 (nobody) may not use this connection"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("`rdsiam run` admits only uid 0 (root)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.trim_end().ends_with("owner"), "{}", run.stdout);
    assert_eq!(
        gate.events()
            .iter()
            .filter(|e| e.starts_with("accepted"))
            .count(),
        1,
        "{:?}",
        gate.events()
    );
}

#[test]
fn cancels_with_keys_that_are_not_ours_never_dial() {
    let env = Env::new();
    let gate = gate();
    let http = closed_port();
    let (cmd, port) = proxy_cmd(
        &env,
        &gate,
        &[
            "-U",
            "iamuserapp",
            "--http-address",
            &format!("127.0.0.1:{http}"),
        ],
    );
    let proxy = Proxy::start(cmd, 1);
    // Any dial from now on would show as `stalled` at the gate.
    gate.set_fault(Fault::StallHandshake);
    for n in 0..200i32 {
        let mut key = n.to_be_bytes().to_vec();
        key.extend_from_slice(&(n * 7919).to_be_bytes());
        let mut s = connect(port);
        s.write_all(&packet(80_877_102, &key)).unwrap();
        assert_eq!(s.read(&mut [0u8; 16]).unwrap(), 0);
    }
    let log = proxy.wait_log("not one of this proxy's sessions");
    assert!(log.contains("dropped, not sent"), "{log}");
    let (_, metrics) = http_get(http, "/metrics");
    assert_eq!(
        metric(
            &metrics,
            "rdsiam_proxy_refusals_total{reason=\"cancel_unknown_key\"}"
        ),
        Some(200.0),
        "{metrics}"
    );
    assert!(gate.events().is_empty(), "{:?}", gate.events());
}

#[test]
fn a_broken_relay_counts_the_bytes_it_moved() {
    let env = Env::new();
    let gate = gate();
    let http = closed_port();
    let (cmd, port) = proxy_cmd(
        &env,
        &gate,
        &[
            "-U",
            "iamuserapp",
            "--http-address",
            &format!("127.0.0.1:{http}"),
        ],
    );
    let proxy = Proxy::start(cmd, 1);
    gate.set_fault(Fault::DropAfterBytes(2_000_000));
    let (code, _, err) = outcome(psql(&env).args([
        &conninfo(port, "iamuserapp"),
        "-XtAc",
        "select repeat('x', 1000) from generate_series(1, 10000)",
    ]));
    assert_eq!(code, 2, "{err}");
    let log = proxy.wait_log("outcome=broken");
    let close = log.lines().find(|l| l.contains("outcome=broken")).unwrap();
    let to_client: u64 = close
        .split_whitespace()
        .find_map(|f| f.strip_prefix("bytes_to_client="))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(to_client >= 1_000_000, "{close}");
    let (_, metrics) = http_get(http, "/metrics");
    let counted = metric(
        &metrics,
        "rdsiam_proxy_bytes_total{direction=\"server_to_client\"}",
    );
    assert!(counted.unwrap_or(0.0) >= 1_000_000.0, "{metrics}");
}

#[test]
fn probes_are_answered_past_idle_connections_and_head_has_no_body() {
    let env = Env::new();
    let gate = gate();
    let http = closed_port();
    let (cmd, _) = proxy_cmd(
        &env,
        &gate,
        &[
            "-U",
            "iamuserapp",
            "--http-address",
            &format!("127.0.0.1:{http}"),
        ],
    );
    let _proxy = Proxy::start(cmd, 1);
    let idle: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect(("127.0.0.1", http)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let (status, body) = http_get(http, "/liveness");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let mut s = TcpStream::connect(("127.0.0.1", http)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "HEAD /readiness HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("content-length: 3\r\n"), "{text}");
    assert!(
        text.ends_with("\r\n\r\n"),
        "a HEAD answer carried a body: {text:?}"
    );
    drop(idle);
}

#[test]
fn a_client_that_stops_reading_a_huge_result_costs_bounded_memory() {
    let env = Env::new();
    let gate = gate();
    let (cmd, port) = proxy_cmd(&env, &gate, &["-U", "iamuserapp"]);
    let proxy = Proxy::start(cmd, 1);
    let pid = proxy.child.id();
    let mut warm = login(port);
    assert_eq!(simple_query(&mut warm, "select 'warm'"), "warm");
    let before = rss_kib(pid);
    // A 1 GB result nobody reads.
    let mut stalled = login(port);
    stalled
        .write_all(&query_msg(
            "select repeat('x', 1000) from generate_series(1, 1000000)",
        ))
        .unwrap();
    let mut peak = 0;
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(300));
        peak = peak.max(rss_kib(pid));
        // The others keep working meanwhile.
        assert_eq!(simple_query(&mut warm, "select 'alive'"), "alive");
    }
    eprintln!("proxy RSS: {before} KiB before, {peak} KiB at most while a client stalls");
    assert!(
        peak < before + 16 * 1024,
        "RSS grew from {before} to {peak} KiB"
    );
    drop(stalled);
}

#[test]
fn cycles_and_a_crowd_leak_nothing_and_extras_get_53300_at_once() {
    let env = Env::new();
    let gate = gate();
    let (cmd, port) = proxy_cmd(
        &env,
        &gate,
        &[
            "-U",
            "iamuserapp",
            "--max-connections",
            "50",
            "--max-connection-rate",
            "2000",
        ],
    );
    let proxy = Proxy::start(cmd, 1);
    let pid = proxy.child.id();
    // Warm up (first token, allocator), then take the baseline.
    drop(login(port));
    std::thread::sleep(Duration::from_millis(300));
    let (fd_before, rss_before) = (fds(pid), rss_kib(pid));

    // 1,000 cycles: half full logins, half connect-and-hang-up.
    std::thread::scope(|scope| {
        for t in 0..4 {
            scope.spawn(move || {
                for i in 0..250 {
                    if (i + t) % 2 == 0 {
                        let mut s = login(port);
                        s.write_all(b"X\0\0\0\x04").unwrap();
                    } else {
                        drop(connect(port));
                    }
                }
            });
        }
    });

    let deadline = Instant::now() + Duration::from_secs(10);
    while fds(pid) > fd_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (fd_after, rss_after) = (fds(pid), rss_kib(pid));
    eprintln!("1,000 cycles: fds {fd_before} -> {fd_after}, RSS {rss_before} -> {rss_after} KiB");
    assert_eq!(fd_after, fd_before);
    assert!(rss_after < rss_before + 8 * 1024);
    drop(proxy);

    // 300 at once against 50 slots: the first 50 hold theirs (waiting on
    // a login rate of 5/s, so they reach the server one by one), the other
    // 250 are refused at once.
    let (cmd, port) = proxy_cmd(
        &env,
        &gate,
        &[
            "-U",
            "iamuserapp",
            "--max-connections",
            "50",
            "--max-connection-rate",
            "5",
            "--connect-timeout",
            "60",
        ],
    );
    let crowd_proxy = Proxy::start(cmd, 1);
    let crowd_pid = crowd_proxy.child.id();
    drop(login(port));
    std::thread::sleep(Duration::from_millis(300));
    let (crowd_fd_before, crowd_rss_before) = (fds(crowd_pid), rss_kib(crowd_pid));
    let streams: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut s = connect(port);
            s.write_all(&startup(&[("user", "iamuserapp"), ("database", "app")], 0))
                .unwrap();
            s
        })
        .collect();
    // Every extra is answered without waiting for a slot: all 250 refusals
    // come while the admitted logins still wait their turn (5/s).
    let sent = Instant::now();
    let mut refused = 0;
    let mut waiting: Vec<TcpStream> = streams;
    let deadline = Instant::now() + Duration::from_secs(30);
    while refused < 250 && Instant::now() < deadline {
        let mut still = Vec::new();
        for mut s in waiting {
            s.set_nonblocking(true).unwrap();
            let mut head = [0u8; 1];
            let first = s.peek(&mut head);
            s.set_nonblocking(false).unwrap();
            if matches!(first, Ok(1)) && head[0] == b'E' {
                let (_, body) = read_msg(&mut s).unwrap();
                let (code, _, _) = error_fields(&body);
                assert_eq!(code, "53300");
                refused += 1;
            } else {
                still.push(s);
            }
        }
        waiting = still;
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("250 refusals within {:?}", sent.elapsed());
    assert_eq!(refused, 250, "{} waiting", waiting.len());
    // The admitted all log in and work.
    for s in &mut waiting {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        while read_msg(s).unwrap().0 != b'Z' {}
        assert_eq!(simple_query(s, "select 'admitted'"), "admitted");
        s.write_all(b"X\0\0\0\x04").unwrap();
    }
    drop(waiting);
    // Everything closed: back to the baseline descriptors, and no growth in memory.
    let deadline = Instant::now() + Duration::from_secs(10);
    while fds(crowd_pid) > crowd_fd_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "crowd: fds {crowd_fd_before} -> {}, RSS {crowd_rss_before} -> {} KiB",
        fds(crowd_pid),
        rss_kib(crowd_pid)
    );
    assert_eq!(fds(crowd_pid), crowd_fd_before);
    assert!(rss_kib(crowd_pid) < crowd_rss_before + 8 * 1024);
}

#[test]
fn a_stderr_nobody_reads_does_not_stop_the_proxy() {
    use std::io::BufRead;
    let env = Env::new();
    let gate = gate();
    let (mut cmd, port) = proxy_cmd(&env, &gate, &["-U", "iamuserapp"]);
    // stderr is a pipe nobody reads: it fills at 64 KiB.
    /// Killed when dropped, if the test fails on the way.
    struct Guard(std::process::Child);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut guard = Guard(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let child = &mut guard.0;
    let mut ready = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert!(ready.contains("ready on"), "{ready}");
    // 1,500 refused packets, one log line of ~150 bytes each: over 200 KiB.
    for _ in 0..1500 {
        let (code, _, _) = refused_with(port, &i32::MAX.to_be_bytes());
        assert_eq!(code, "08P01");
    }
    let mut s = login(port);
    assert_eq!(
        simple_query(&mut s, "select 'still serving'"),
        "still serving"
    );
    drop(s);
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the proxy did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
}
