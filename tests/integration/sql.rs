//! `rdsiam sql` through the IAM gate and a real PostgreSQL: every output
//! format for the common types, errors and `--continue-on-error`, scripts
//! from `-c`, `-f` and stdin, meta-commands.

use std::io::Write;
use std::process::{Command, Stdio};

use rdsiam_testkit::gate::Fault;

use crate::db::{at_gate, gate};
use crate::support::{Env, Run, expect, run};

/// One row of every type the issue names.
const TYPES: &str = "select 42::int as i, 12345678901234567890.5::numeric as n, \
E'line1\\nline2, with \"quotes\"' as t, true as b, \
'2024-05-01 12:34:56.789+00'::timestamptz as ts, '{\"k\": [1, 2.5, null]}'::jsonb as j, \
array[1, null, 3] as a, array['x,y', 'z'] as ta, '\\xdeadbeef'::bytea as x, null::text as z";

fn sql(env: &Env, gate: &rdsiam_testkit::gate::Gate) -> Command {
    let mut cmd = at_gate(env, gate, "sql", "iamuserapp");
    cmd.stdin(Stdio::null());
    cmd
}

fn with_stdin(cmd: &mut Command, input: &str) -> Run {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("rdsiam runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

#[test]
fn sql_json_values_are_typed() {
    let env = Env::new();
    let gate = gate();
    let run = expect(sql(&env, &gate).args(["-o", "json", "-c", TYPES]), 0);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect(&run.stdout);
    let row = &v[0];
    assert_eq!(row["i"], 42);
    assert_eq!(row["t"], "line1\nline2, with \"quotes\"");
    assert_eq!(row["b"], true);
    assert_eq!(row["ts"], "2024-05-01T12:34:56.789+00:00");
    assert_eq!(row["j"], serde_json::json!({"k": [1, 2.5, null]}));
    assert_eq!(row["a"], serde_json::json!([1, null, 3]));
    assert_eq!(row["ta"], serde_json::json!(["x,y", "z"]));
    assert_eq!(row["x"], "\\xdeadbeef");
    assert_eq!(row["z"], serde_json::Value::Null);
    // numeric keeps every digit: written as the server's text, never an f64.
    assert!(
        run.stdout.contains("\"n\": 12345678901234567890.5"),
        "{}",
        run.stdout
    );
    assert_eq!(v.as_array().unwrap().len(), 1);
}

#[test]
fn sql_csv_is_rfc_4180() {
    let env = Env::new();
    let gate = gate();
    let run = expect(sql(&env, &gate).args(["-o", "csv", "-c", TYPES]), 0);
    assert_eq!(
        run.stdout,
        "i,n,t,b,ts,j,a,ta,x,z\r\n\
         42,12345678901234567890.5,\"line1\nline2, with \"\"quotes\"\"\",t,2024-05-01 12:34:56.789+00,\
         \"{\"\"k\"\": [1, 2.5, null]}\",\"{1,NULL,3}\",\"{\"\"x,y\"\",z}\",\\xdeadbeef,\r\n"
    );
}

#[test]
fn sql_table_shows_null_and_counts_rows() {
    let env = Env::new();
    let gate = gate();
    let run = expect(sql(&env, &gate).args(["-c", TYPES]), 0);
    for want in [
        "42",
        "12345678901234567890.5",
        "line1",
        "\\xdeadbeef",
        "NULL",
        "{1,NULL,3}",
        "(1 row)",
    ] {
        assert!(run.stdout.contains(want), "{want}: {}", run.stdout);
    }
    let run = expect(
        sql(&env, &gate).args([
            "-c",
            "select g from generate_series(1, 3) g; select 1 where false",
        ]),
        0,
    );
    assert!(run.stdout.contains("(3 rows)"), "{}", run.stdout);
    assert!(run.stdout.contains("(0 rows)"), "{}", run.stdout);
}

#[test]
fn sql_runs_commands_in_order_with_session_state() {
    let env = Env::new();
    let gate = gate();
    let run = expect(
        sql(&env, &gate).args([
            "-o",
            "json",
            "-c",
            "create temp table t (a int, b text); insert into t values (1, 'a;b'), (2, $$x;'y$$)",
            "-c",
            "select * from t order by a -- a comment; with a semicolon",
        ]),
        0,
    );
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect(&run.stdout);
    assert_eq!(
        v,
        serde_json::json!([{"a": 1, "b": "a;b"}, {"a": 2, "b": "x;'y"}])
    );
}

#[test]
fn sql_first_error_stops_with_exit_1_and_the_server_message() {
    let env = Env::new();
    let gate = gate();
    let run = expect(
        sql(&env, &gate).args([
            "-c",
            "select 1 as first",
            "-c",
            "select *\nfrom no_such_table",
            "-c",
            "select 3 as third",
        ]),
        1,
    );
    assert!(run.stdout.contains("first"), "{}", run.stdout);
    assert!(!run.stdout.contains("third"), "{}", run.stdout);
    assert!(
        run.stderr.starts_with(
            "rdsiam: statement 2 failed: ERROR 42P01: relation \"no_such_table\" does not exist"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("LINE 2: from no_such_table"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--continue-on-error"), "{}", run.stderr);

    // Detail and hint come through too.
    let run = expect(
        sql(&env, &gate).args([
            "-c",
            "do $$ begin raise exception 'boom' using detail = 'the detail', hint = 'the hint', errcode = '22012'; end $$",
        ]),
        1,
    );
    assert!(run.stderr.contains("ERROR 22012: boom"), "{}", run.stderr);
    assert!(run.stderr.contains("DETAIL: the detail"), "{}", run.stderr);
    assert!(run.stderr.contains("HINT: the hint"), "{}", run.stderr);
}

#[test]
fn sql_continue_on_error_runs_the_rest_then_exits_1() {
    let env = Env::new();
    let gate = gate();
    let run = expect(
        sql(&env, &gate).args([
            "--continue-on-error",
            "-o",
            "csv",
            "-c",
            "select 1/0; select 'after' as x; select nope",
        ]),
        1,
    );
    assert_eq!(run.stdout, "x\r\nafter\r\n");
    assert!(
        run.stderr.contains("statement 1 failed: ERROR 22012"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("statement 3 failed: ERROR 42703"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("2 of 3 statements failed"),
        "{}",
        run.stderr
    );
}

#[test]
fn sql_reads_a_script_from_stdin_and_files() {
    let env = Env::new();
    let gate = gate();
    let script = "-- a script\ncreate temp table s (v text);\ninsert into s values\n  ('one;'),\n  ($t$two$$;$t$);\n\\x\nselect v from s order by v\n";
    let run = with_stdin(&mut sql(&env, &gate), script);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("CREATE"), "{}", run.stdout);
    assert!(run.stdout.contains("INSERT 2"), "{}", run.stdout);
    assert!(run.stdout.contains("-[ RECORD 1 ]"), "{}", run.stdout);
    assert!(run.stdout.contains("v | one;"), "{}", run.stdout);
    assert!(run.stdout.contains("v | two$$;"), "{}", run.stdout);

    let path = env.home().join("script.sql");
    std::fs::write(&path, "select 'from file' as src;").unwrap();
    let run = expect(sql(&env, &gate).args(["-o", "json", "-f"]).arg(&path), 0);
    assert!(
        run.stdout.contains("\"src\": \"from file\""),
        "{}",
        run.stdout
    );

    let run = with_stdin(
        sql(&env, &gate).args(["-o", "csv", "-f", "-"]),
        "select 7 as n",
    );
    assert_eq!((run.code, run.stdout.as_str()), (0, "n\r\n7\r\n"));

    // \i runs another file; \o sends results to a file and back.
    let inner = env.home().join("inner.sql");
    std::fs::write(&inner, "select 'included' as inc;\n").unwrap();
    let out = env.home().join("out.txt");
    let script = format!(
        "\\o {}\n\\i {}\n\\o\nselect 'to stdout' as s;\n",
        out.display(),
        inner.display()
    );
    let run = with_stdin(sql(&env, &gate).args(["-o", "csv"]), &script);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "s\r\nto stdout\r\n");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "inc\r\nincluded\r\n"
    );
    let run = expect(
        sql(&env, &gate)
            .args(["-f"])
            .arg(env.home().join("missing.sql")),
        2,
    );
    assert!(run.stderr.contains("cannot read"), "{}", run.stderr);
}

#[test]
fn sql_scripts_with_comments_before_meta_commands_and_begin_atomic() {
    let env = Env::new();
    let gate = gate();
    // A comment line before a meta-command once made `-f` fail with
    // `unknown meta-command \--`.
    let path = env.home().join("commented.sql");
    std::fs::write(
        &path,
        "-- list tables\n\\dt\n/* settings */ \\x\nselect 'ok' as commented;\n",
    )
    .unwrap();
    let run = expect(sql(&env, &gate).arg("-f").arg(&path), 0);
    assert!(run.stdout.contains("commented | ok"), "{}", run.stdout);

    // A SQL-standard function body keeps its inner semicolons (psql 15+).
    let run = expect(
        sql(&env, &gate).args([
            "-o",
            "json",
            "-c",
            "create function pg_temp.atomic_f(x int) returns text language sql\n\
             BEGIN ATOMIC\n  select 'ignored';\n  select case when x > 0 then 'pos' else 'neg' end;\nEND;\n\
             select pg_temp.atomic_f(1) as v",
        ]),
        0,
    );
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect(&run.stdout);
    assert_eq!(v, serde_json::json!([{"v": "pos"}]));
}

#[test]
fn sql_meta_commands_in_scripts() {
    let env = Env::new();
    let gate = gate();
    crate::db::postgres()
        .psql_super(
            "app",
            "create table if not exists sql_meta_t (id int primary key, note text default 'n'); \
             grant select on sql_meta_t to iamuserapp;",
        )
        .unwrap();
    let run = expect(
        sql(&env, &gate).args(["-c", "\\dt sql_meta*", "-c", "\\d sql_meta_t"]),
        0,
    );
    assert!(run.stdout.contains("sql_meta_t"), "{}", run.stdout);
    assert!(run.stdout.contains("not null"), "{}", run.stdout);
    assert!(run.stdout.contains("sql_meta_t_pkey"), "{}", run.stdout);
    let run = expect(sql(&env, &gate).args(["-o", "json", "-c", "\\du"]), 0);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect(&run.stdout);
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|r| r["role"] == "iamuserapp"
                && r["member_of"]
                    .as_array()
                    .unwrap()
                    .contains(&"rds_iam".into())),
        "{v}"
    );
    let run = expect(sql(&env, &gate).args(["-c", "\\nope"]), 2);
    assert!(
        run.stderr.contains("unknown meta-command"),
        "{}",
        run.stderr
    );
    let run = expect(sql(&env, &gate).args(["-c", "\\d no_such_rel"]), 2);
    assert!(run.stderr.contains("no relation named"), "{}", run.stderr);
}

#[test]
fn sql_login_failure_keeps_its_exit_code() {
    let env = Env::new();
    let gate = gate();
    let run = run(at_gate(&env, &gate, "sql", "nosuchuser")
        .stdin(Stdio::null())
        .args(["-c", "select 1"]));
    assert_eq!(run.code, 5, "{}", run.stderr);
}

/// A pseudo-terminal driving `rdsiam sql` the way a person would: raw-mode
/// line editing, Ctrl-C as the 0x03 byte, SIGINT from the terminal driver.
// openpty/ptsname need libc calls; the only unsafe code in the crate.
#[allow(unsafe_code)]
pub(crate) mod pty {
    use std::fs::{File, OpenOptions};
    use std::io::{Read, Write};
    use std::os::fd::{AsRawFd, FromRawFd};
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::process::CommandExt;
    use std::process::{Child, Command};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    /// Ctrl-C from outside: SIGINT to the child, not through a pty (for a
    /// script running in the background).
    pub fn interrupt(child: &Child) {
        let pid = libc::pid_t::try_from(child.id()).unwrap();
        // SAFETY: kill(2) on our own child, not yet reaped.
        let rc = unsafe { libc::kill(pid, libc::SIGINT) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    }

    pub struct Pty {
        master: File,
        seen: Arc<Mutex<String>>,
        /// How much of `seen` earlier expectations consumed.
        pos: usize,
        pub child: Child,
    }

    impl Pty {
        pub fn spawn(mut cmd: Command) -> Pty {
            // SAFETY: plain libc calls on descriptors we own; the pre_exec
            // closure only calls async-signal-safe functions.
            let master = unsafe {
                let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
                assert!(fd >= 0, "posix_openpt");
                assert_eq!(libc::grantpt(fd), 0);
                assert_eq!(libc::unlockpt(fd), 0);
                let size = libc::winsize {
                    ws_row: 40,
                    ws_col: 160,
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                libc::ioctl(fd, libc::TIOCSWINSZ, &size);
                File::from_raw_fd(fd)
            };
            let mut name = [0 as libc::c_char; 256];
            // SAFETY: the buffer is as long as we say.
            let rc = unsafe { libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()) };
            assert_eq!(rc, 0, "ptsname_r");
            // SAFETY: ptsname_r wrote a NUL-terminated string.
            let path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
                .to_str()
                .unwrap()
                .to_owned();
            let slave = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOCTTY)
                .open(&path)
                .unwrap();
            cmd.stdin(slave.try_clone().unwrap())
                .stdout(slave.try_clone().unwrap())
                .stderr(slave)
                .env("TERM", "xterm");
            // SAFETY: setsid and ioctl are async-signal-safe.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let child = cmd.spawn().expect("rdsiam starts on the pty");
            drop(cmd);
            let seen = Arc::new(Mutex::new(String::new()));
            let mut reader = master.try_clone().unwrap();
            let sink = seen.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = reader.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
            Pty {
                master,
                seen,
                pos: 0,
                child,
            }
        }

        pub fn send(&mut self, text: &str) {
            self.master.write_all(text.as_bytes()).unwrap();
            self.master.flush().unwrap();
        }

        /// Type a line and press Enter.
        pub fn line(&mut self, text: &str) {
            self.send(text);
            self.send("\r");
        }

        /// Everything printed so far, escape sequences removed.
        pub fn screen(&self) -> String {
            strip_ansi(&self.seen.lock().unwrap())
        }

        /// Wait until `needle` appears after what earlier calls consumed.
        #[track_caller]
        pub fn expect(&mut self, needle: &str) -> String {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let screen = self.screen();
                if let Some(at) = screen.get(self.pos..).and_then(|s| s.find(needle)) {
                    let start = self.pos;
                    self.pos += at + needle.len();
                    return screen[start..self.pos].to_owned();
                }
                assert!(
                    Instant::now() < deadline,
                    "timed out waiting for {needle:?}; screen after the last match:\n{}",
                    screen.get(self.pos..).unwrap_or("")
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    impl Drop for Pty {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn strip_ansi(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() || c == '~' {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            } else if c != '\r' {
                out.push(c);
            }
        }
        out
    }
}

fn sleeping_queries() -> usize {
    running("select pg_sleep(30)")
}

/// Active queries starting with `prefix` (tests running in parallel share
/// the server: each sleeps for its own number of seconds).
fn running(prefix: &str) -> usize {
    let out = crate::db::postgres()
        .psql_super(
            "app",
            &format!(
                "select count(*) from pg_stat_activity where state = 'active' and query like '{prefix}%'"
            ),
        )
        .unwrap();
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("count: {out}"))
}

#[test]
fn sql_interactive_session_through_a_terminal() {
    let env = Env::new();
    let gate = gate();
    let cmd = at_gate(&env, &gate, "sql", "iamuserapp");
    let mut term = pty::Pty::spawn(cmd);
    term.expect("iamuserapp@app=> ");

    // Multi-line entry: the continuation prompt, then the result.
    term.line("select 1 +");
    term.expect("iamuserapp@app-> ");
    term.line("41 as answer; select 'two' as second;");
    term.expect("answer");
    term.expect("42");
    term.expect("(1 row");
    term.expect("two");
    term.expect("iamuserapp@app=> ");

    // A meta-command.
    term.line("\\conninfo");
    term.expect("connected: database \"app\" as user \"iamuserapp\"");
    term.expect("sslmode verify-full");
    term.expect("iamuserapp@app=> ");

    // Ctrl-C at the prompt throws the unfinished statement away.
    term.line("select 'junk'");
    term.expect("iamuserapp@app-> ");
    term.send("\x03");
    term.expect("iamuserapp@app=> ");
    term.line("select 'clean' as c;");
    let out = term.expect("iamuserapp@app=> ");
    assert!(
        out.contains("clean") && !out.contains("syntax error"),
        "{out}"
    );

    // Ctrl-C during a query cancels it on the server; the session lives on.
    term.line("select pg_sleep(30);");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sleeping_queries() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "pg_sleep never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let started = std::time::Instant::now();
    term.send("\x03");
    term.expect("57014");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    term.expect("iamuserapp@app=> ");
    assert_eq!(sleeping_queries(), 0);
    term.line("select 'still here' as alive;");
    term.expect("still here");
    term.expect("iamuserapp@app=> ");

    // A failed transaction shows in the prompt until it ends.
    term.line("begin;");
    term.expect("iamuserapp@app=> ");
    term.line("select nope;");
    term.expect("42703");
    term.expect("iamuserapp@app=!> ");
    term.line("rollback;");
    term.expect("iamuserapp@app=> ");

    // The gate drops the connection while a statement is half typed: it is
    // kept, and runs on a fresh connection with a fresh token.
    let accepted_before = gate
        .events()
        .iter()
        .filter(|e| e.starts_with("accepted"))
        .count();
    term.line("select 'typed before' ||");
    term.expect("iamuserapp@app-> ");
    gate.drop_all_sessions();
    term.line("' the drop' as kept;");
    term.expect("connection to the server was lost");
    term.expect("session state was lost");
    term.expect("typed before the drop");
    term.expect("iamuserapp@app=> ");
    let accepted_after = gate
        .events()
        .iter()
        .filter(|e| e.starts_with("accepted"))
        .count();
    assert_eq!(accepted_after, accepted_before + 1, "{:?}", gate.events());

    // Nothing that looks like a secret reaches the history file.
    term.line("select 'my password' as p;");
    term.expect("iamuserapp@app=> ");
    term.line("\\q");
    let status = term.child.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", term.screen());
    let history = env.home().join(".local/share/rdsiam/history");
    let text = std::fs::read_to_string(&history).unwrap();
    assert!(text.contains("select 1 +"), "{text}");
    assert!(!text.to_lowercase().contains("password"), "{text}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&history).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

/// The count of `iamuserapp` backends waiting for a lock.
fn lock_waiters() -> usize {
    let out = crate::db::postgres()
        .psql_super(
            "app",
            "select count(*) from pg_stat_activity where usename = 'iamuserapp' and wait_event_type = 'Lock' and query like '%sql_lock_t%'",
        )
        .unwrap();
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("count: {out}"))
}

#[track_caller]
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} never happened"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Ctrl-C reaches a Describe blocked behind a lock, stops an `\i` file and
/// the rest of a line (which comes back to the prompt), and abandons a
/// stalled reconnect; a statement whose reconnect failed is not lost.
#[test]
fn sql_interactive_ctrl_c_and_failed_reconnects_lose_nothing() {
    let env = Env::new();
    let gate = gate();
    let pg = crate::db::postgres();
    pg.psql_super(
        "app",
        "create table if not exists sql_lock_t (a int); grant select on sql_lock_t to iamuserapp;",
    )
    .unwrap();
    // JSON output: statements are described first.
    let mut cmd = at_gate(&env, &gate, "sql", "iamuserapp");
    cmd.args(["-o", "json"]);
    let mut term = pty::Pty::spawn(cmd);
    term.expect("iamuserapp@app=> ");

    // A pending ACCESS EXCLUSIVE lock blocks the Describe itself.
    let locker = std::thread::spawn(|| {
        let _ = crate::db::postgres().psql_super(
            "app",
            "begin; lock table sql_lock_t in access exclusive mode; select pg_sleep(60) as sql_lock_holder; commit;",
        );
    });
    let holder = "select pid from pg_stat_activity where query like '%sql_lock_holder%' and pid <> pg_backend_pid()";
    wait_for("the lock", || {
        !pg.psql_super("app", holder).unwrap().trim().is_empty()
    });
    term.line("select * from sql_lock_t;");
    wait_for("the Describe waiting", || lock_waiters() == 1);
    term.send("\x03");
    term.expect("57014");
    term.expect("iamuserapp@app=> ");
    assert_eq!(lock_waiters(), 0);
    pg.psql_super(
        "app",
        &format!("select pg_terminate_backend(pid) from ({holder}) h"),
    )
    .unwrap();
    locker.join().unwrap();

    // Ctrl-C in an \i file stops the file, not just its statement.
    let file = env.home().join("sleepy.sql");
    std::fs::write(
        &file,
        "select pg_sleep(31);\nselect 'not reached' as after_sleep;\n",
    )
    .unwrap();
    term.line(&format!("\\i {}", file.display()));
    wait_for("pg_sleep", || running("select pg_sleep(31)") == 1);
    term.send("\x03");
    term.expect("57014");
    let out = term.expect("iamuserapp@app=> ");
    assert!(
        out.contains("stopped by Ctrl-C before item 2 (of 2); the rest of the file did not run"),
        "{out}"
    );
    assert!(!out.contains("not reached"), "{out}");
    assert_eq!(running("select pg_sleep(31)"), 0);

    // Ctrl-C stops the rest of a line, which comes back to the prompt.
    term.line("select pg_sleep(31); select 'the rest' as r;");
    wait_for("pg_sleep", || running("select pg_sleep(31)") == 1);
    term.send("\x03");
    term.expect("57014");
    term.expect("the rest of the input was not run");
    term.expect("back on the prompt line");
    term.expect("iamuserapp@app=> select 'the rest' as r;");
    term.send("\r");
    term.expect("\"r\": \"the rest\"");
    term.expect("iamuserapp@app=> ");

    // The connection drops and the reconnect fails: the statement is not
    // thrown away but given back, and runs once the server is reachable.
    gate.drop_all_sessions();
    gate.set_fault(Fault::WrongCert);
    term.line("select 'not lost' as kept;");
    term.expect("connection to the server was lost");
    term.expect("the statement was not sent");
    term.expect("back on the prompt line");
    term.expect("iamuserapp@app=> select 'not lost' as kept;");
    gate.set_fault(Fault::None);
    term.send("\r");
    term.expect("session state was lost");
    term.expect("\"kept\": \"not lost\"");
    term.expect("iamuserapp@app=> ");

    // A reconnect that stalls gives way to Ctrl-C, and the statement
    // comes back too.
    gate.drop_all_sessions();
    gate.set_fault(Fault::StallHandshake);
    term.line("select 'after the stall' as s;");
    term.expect("reconnecting with a fresh token");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    term.send("\x03");
    term.expect("reconnecting interrupted by Ctrl-C");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    term.expect("iamuserapp@app=> select 'after the stall' as s;");
    gate.set_fault(Fault::None);
    term.send("\r");
    term.expect("\"s\": \"after the stall\"");
    term.expect("iamuserapp@app=> ");

    term.line("\\q");
    let status = term.child.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", term.screen());
}

/// `rdsiam sql` with a script, in the background: its stderr as it comes.
struct Background {
    child: std::process::Child,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    fn spawn(mut cmd: Command) -> Background {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("rdsiam runs");
        let mut pipe = child.stderr.take().unwrap();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = stderr.clone();
        let reader = std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Background {
            child,
            stderr,
            reader: Some(reader),
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Wait (at most `limit`) for the exit; its code, stdout and stderr.
    #[track_caller]
    fn finish(&mut self, limit: std::time::Duration) -> Run {
        let deadline = std::time::Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still running after {limit:?}; stderr: {}",
                self.stderr()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        self.reader.take().unwrap().join().unwrap();
        let mut stdout = String::new();
        use std::io::Read;
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        Run {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr: self.stderr(),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Ctrl-C in a script cancels the running statement on the server, stops
/// the script even with --continue-on-error, and exits 1.
#[test]
fn sql_script_ctrl_c_cancels_the_statement_and_stops() {
    let env = Env::new();
    let gate = gate();
    let mut cmd = sql(&env, &gate);
    cmd.args([
        "--continue-on-error",
        "-c",
        "select pg_sleep(32); select 'not reached' as after_sleep",
    ]);
    let mut script = Background::spawn(cmd);
    wait_for("pg_sleep", || running("select pg_sleep(32)") == 1);
    let started = std::time::Instant::now();
    pty::interrupt(&script.child);
    let run = script.finish(std::time::Duration::from_secs(10));
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(
        run.code, 1,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(run.stderr.starts_with("rdsiam: "), "{}", run.stderr);
    assert!(
        run.stderr.contains("statement 1 cancelled by Ctrl-C"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("57014"), "{}", run.stderr);
    assert!(!run.stdout.contains("not reached"), "{}", run.stdout);
    assert!(!run.stderr.contains("not reached"), "{}", run.stderr);
    assert_eq!(running("select pg_sleep(32)"), 0);
    assert!(
        gate.events().iter().any(|e| e == "cancel forwarded"),
        "{:?}",
        gate.events()
    );
}

/// A second Ctrl-C stops at once when the cancel gets no answer.
#[test]
fn sql_script_second_ctrl_c_stops_without_waiting() {
    let env = Env::new();
    let gate = gate();
    let mut cmd = sql(&env, &gate);
    cmd.args(["--connect-timeout", "60", "-c", "select pg_sleep(33)"]);
    let mut script = Background::spawn(cmd);
    wait_for("pg_sleep", || running("select pg_sleep(33)") == 1);
    // The cancel request's connection stalls.
    gate.set_fault(Fault::StallHandshake);
    pty::interrupt(&script.child);
    wait_for("the cancel", || {
        script.stderr().contains("cancelling statement 1")
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    let started = std::time::Instant::now();
    pty::interrupt(&script.child);
    let run = script.finish(std::time::Duration::from_secs(5));
    let elapsed = started.elapsed();
    // The abandoned statement sleeps on (the server notices the closed
    // connection only when it ends): end it here.
    crate::db::postgres()
        .psql_super(
            "app",
            "select pg_cancel_backend(pid) from pg_stat_activity where query like 'select pg_sleep(33)%' and pid <> pg_backend_pid()",
        )
        .unwrap();
    assert!(elapsed < std::time::Duration::from_secs(5));
    assert_eq!(
        run.code, 1,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(
        run.stderr
            .contains("statement 1 abandoned by a second Ctrl-C"),
        "{}",
        run.stderr
    );
}
