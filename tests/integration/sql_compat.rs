//! `rdsiam sql` runs what psql runs (issue 14): the same scripts through
//! real psql and through rdsiam, and the statements the server received —
//! recorded by the IAM gate, which sees every Query and Parse message —
//! compared one by one. The large corpus is real SQL nobody here wrote:
//! the scripts the PostgreSQL server package installs (every extension's
//! install and upgrade scripts, the information schema, the system views
//! and functions), read at test time from the same installation the
//! throwaway server runs from, so nothing is copied into this repository
//! (they are under the PostgreSQL Licence). Hand-written scripts add what
//! that corpus lacks: `standard_conforming_strings = off` mid-script,
//! dollar quotes after numbers, `\;`, string continuation, COPY data.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rdsiam_testkit::gate::Gate;

use crate::db::{at_gate, gate};
use crate::support::{Env, Run, expect};

/// The SQL that PostgreSQL's own package installs beside the server.
fn corpus_files() -> Vec<PathBuf> {
    let bin = crate::db::postgres().bin_dir().to_path_buf();
    // /usr/lib/postgresql/15/bin → /usr/share/postgresql/15
    let version = bin
        .parent()
        .and_then(Path::file_name)
        .expect("PostgreSQL's bin dir names its version")
        .to_owned();
    let share = Path::new("/usr/share/postgresql").join(&version);
    assert!(
        share.is_dir(),
        "{} is missing: install PostgreSQL's server package (apt-get install postgresql)",
        share.display()
    );
    let mut files = Vec::new();
    for name in [
        "information_schema.sql",
        "system_views.sql",
        "system_functions.sql",
        "snowball_create.sql",
    ] {
        let path = share.join(name);
        if path.is_file() {
            files.push(path);
        }
    }
    let mut ext: Vec<PathBuf> = std::fs::read_dir(share.join("extension"))
        .expect("the extension directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    ext.sort();
    files.extend(ext);
    files
}

/// What a statement looks like once leading whitespace and comments and
/// the final `;` are gone: psql sends leading `/* */` comments and the
/// `;`, rdsiam sends neither. Written here from scratch, not with
/// rdsiam's own splitter, so the two cannot share a mistake.
fn normalize(sql: &str) -> String {
    let mut s = sql;
    loop {
        let t = s.trim_start();
        if let Some(after) = t.strip_prefix("--") {
            s = after.find('\n').map_or("", |i| &after[i + 1..]);
        } else if t.starts_with("/*") {
            let mut depth = 0;
            let mut end = t.len();
            let b = t.as_bytes();
            let mut i = 0;
            while i + 1 < b.len() {
                if &b[i..i + 2] == b"/*" {
                    depth += 1;
                    i += 2;
                } else if &b[i..i + 2] == b"*/" {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            s = &t[end..];
        } else {
            s = t;
            break;
        }
    }
    s.trim_end().trim_end_matches(';').trim_end().to_owned()
}

/// The statements one client's session sent, with the recording taken.
fn session_statements(gate: &Gate) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while gate.open_connections() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "sessions still open at the gate"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let sessions = gate.take_statements();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    sessions.into_iter().next().unwrap()
}

fn with_stdin(cmd: &mut Command, input: &[u8]) -> Run {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("runs");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Run `script` through psql and through rdsiam (both reading it from a
/// file), and return what the server received from each, normalised.
fn both(env: &Env, gate: &Gate, script: &[u8]) -> (Vec<String>, Vec<String>, Run, Run) {
    let path = env.home().join("compat.sql");
    std::fs::write(&path, script).unwrap();
    gate.record_statements(true);
    let mut psql = at_gate(env, gate, "psql", "iamuserapp");
    psql.args(["--", "-X", "-q", "-v", "ON_ERROR_STOP=0", "-f"])
        .arg(&path)
        .stdin(Stdio::null());
    let psql_run = crate::support::run(&mut psql);
    let by_psql = session_statements(gate);
    let mut sql = at_gate(env, gate, "sql", "iamuserapp");
    sql.args(["--continue-on-error", "-f"])
        .arg(&path)
        .stdin(Stdio::null());
    let sql_run = crate::support::run(&mut sql);
    let mut by_rdsiam = session_statements(gate);
    gate.record_statements(false);
    // rdsiam asks for its backend's pid once per session (for the
    // pg_cancel_backend fallback); psql does not.
    assert_eq!(
        by_rdsiam.first().map(String::as_str),
        Some("SELECT pg_backend_pid()")
    );
    by_rdsiam.remove(0);
    let norm = |v: Vec<String>| v.iter().map(|s| normalize(s)).collect::<Vec<_>>();
    (norm(by_psql), norm(by_rdsiam), psql_run, sql_run)
}

#[track_caller]
fn assert_same(by_psql: &[String], by_rdsiam: &[String]) {
    for (n, (p, r)) in by_psql.iter().zip(by_rdsiam).enumerate() {
        assert_eq!(
            p,
            r,
            "statement {n} differs (psql first, rdsiam second); before it: {:?}",
            by_psql.get(n.saturating_sub(1))
        );
    }
    assert_eq!(
        by_psql.len(),
        by_rdsiam.len(),
        "psql sent {} statements, rdsiam {}",
        by_psql.len(),
        by_rdsiam.len()
    );
}

/// The corpus, inside one transaction that the first failure aborts: every
/// statement still reaches the server (and fails at once with 25P02), and
/// nothing is left behind in the shared test database.
#[test]
fn sql_sends_the_statements_psql_sends_for_postgresqls_own_scripts() {
    let env = Env::new();
    let gate = gate();
    let files = corpus_files();
    assert!(files.len() > 100, "only {} corpus files", files.len());
    let mut script = String::from("BEGIN;\nselect 1/0;\n");
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        // Extension scripts start with `\echo … \quit`, which guards them
        // against psql: drop psql commands, keeping line numbers.
        for line in text.lines() {
            if line.trim_start().starts_with('\\') {
                script.push_str("-- (psql command dropped)\n");
            } else {
                script.push_str(line);
                script.push('\n');
            }
        }
    }
    let (by_psql, by_rdsiam, _, sql_run) = both(&env, &gate, script.as_bytes());
    assert!(
        by_psql.len() > 3000,
        "the corpus gave psql only {} statements",
        by_psql.len()
    );
    assert_same(&by_psql, &by_rdsiam);
    assert_eq!(sql_run.code, 1, "{}", sql_run.stderr);
    eprintln!(
        "corpus: {} files, {} statements, identical",
        files.len(),
        by_psql.len()
    );
}

/// What the corpus lacks, written to trip a splitter: the server's string
/// setting changed mid-script, dollar quotes where psql starts them, `\;`, `\g`,
/// strings continued over newlines, prefixed strings, nested comments,
/// BEGIN ATOMIC bodies, and COPY data inline.
#[test]
fn sql_sends_the_statements_psql_sends_for_tricky_scripts() {
    let env = Env::new();
    let gate = gate();
    let script = concat!(
        // psql reads a line with the setting it started with: on, here.
        "set standard_conforming_strings = off; select 'x\\' as same_line;\n",
        "select 'a\\';b' as off_1;\n",
        "select 2 as off_2;\n",
        "select E'x\\'y', 'p''q', 'c:\\\\' as off_3;\n",
        "reset standard_conforming_strings;\n",
        "select 'C:\\' as on_1;\n",
        "select 1$$;$$ as dollar_after_digit; select 2;\n",
        "select $1$$;$$;\n",
        "select a$$ from (select 1 as a$$) t;\n",
        "select $abc$ ; $ab$ $abc$ as tagged;\n",
        "select 1 \\; select 2;\n",
        "select 3 as via_g \\g\n",
        "select 4 as via_gx\n\\gx\n",
        "select 'a'\n  'b;c' as continued;\n",
        "select B'1', X'ff', N'n;', U&'u;' as prefixed;\n",
        "select /* a /* nested ; */ ; */ 3 as nested;\n",
        "select 1 -- trailing ; comment\n + 1 as commented;\n",
        "create function pg_temp.f() returns int language sql begin atomic select 1; select 2; end;\n",
        "create temp table copy_t (a int, b text);\n",
        "copy copy_t from stdin;\n1\tone\n2\t\\N\n\\.\n",
        "copy copy_t to stdout;\n",
        "select count(*) as copied from copy_t;\n",
        "select 'last without semicolon'\n",
    );
    let (by_psql, by_rdsiam, psql_run, sql_run) = both(&env, &gate, script.as_bytes());
    assert_same(&by_psql, &by_rdsiam);
    assert!(by_psql.len() >= 20, "{by_psql:?}");
    assert!(
        by_psql.iter().any(|s| s == "select 'a\\';b' as off_1"),
        "{by_psql:?}"
    );
    // The server itself rejects `'x\' as same_line` (for it the setting is
    // off already), `1$$;$$` and `$1$$;$$`: the three failures (psql sends
    // them just so). The rest ran.
    assert_eq!(sql_run.code, 1, "{}", sql_run.stderr);
    assert!(
        by_psql.iter().any(|s| s == "select 'x\\' as same_line"),
        "{by_psql:?}"
    );
    assert!(
        sql_run.stderr.contains("rdsiam: 3 of ")
            && sql_run
                .stderr
                .matches("syntax error at or near \"$$;$$\"")
                .count()
                == 2,
        "{}",
        sql_run.stderr
    );
    // Warnings and notices reach stderr as psql prints them.
    assert!(
        sql_run
            .stderr
            .contains("WARNING:  nonstandard use of \\' in a string literal\nHINT:  "),
        "{}",
        sql_run.stderr
    );
    assert!(psql_run.stdout.contains("a';b"), "{}", psql_run.stdout);
    for want in [
        "a';b",
        "tagged",
        "1\tone\n2\t\\N\n",
        "last without semicolon",
    ] {
        assert!(sql_run.stdout.contains(want), "{want}: {}", sql_run.stdout);
    }
}

/// `-f` and stdin are read as they run: a 40 MB script takes a few MB.
#[test]
fn sql_streams_a_large_script_in_bounded_memory() {
    let env = Env::new();
    let gate = gate();
    let statement = format!("select length('{}');\n", "x".repeat(20_000));
    let count = 2_000;
    let mut cmd = at_gate(&env, &gate, "sql", "iamuserapp");
    cmd.args(["-o", "csv"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let peak = std::thread::spawn(move || {
        let mut peak = 0u64;
        for _ in 0..count {
            stdin.write_all(statement.as_bytes()).unwrap();
            peak = peak.max(hwm_kib(pid));
        }
        peak
    })
    .join()
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("20000").count(), count);
    // The whole script is 40 MB; held in memory it would be twice that.
    assert!(peak > 0 && peak < 40 * 1024, "peak RSS {peak} KiB");
}

/// The process's peak resident set so far (VmHWM), in KiB.
fn hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// COPY TO STDOUT prints the data and the script goes on; COPY FROM STDIN
/// reads the inline data to `\.` from a file and from stdin; `\copy` reads
/// and writes files here.
#[test]
fn sql_copy_in_and_out_like_psql() {
    let env = Env::new();
    let gate = gate();
    let data = env.home().join("in.csv");
    std::fs::write(&data, "10,ten\n11,\"el,even\"\n").unwrap();
    let out = env.home().join("out.csv");
    let script = format!(
        "create temp table t (a int, b text);\n\
         copy t from stdin;\n1\tone\n2\t\\N\n\\.\n\
         copy t to stdout;\n\
         \\copy t from '{}' with (format csv)\n\
         \\copy (select a, b from t order by a) to '{}' with (format csv)\n\
         copy (select count(*) from t) to stdout;\n\
         select 'after' as still_running;\n",
        data.display(),
        out.display()
    );
    let run = with_stdin(
        at_gate(&env, &gate, "sql", "iamuserapp").args(["--continue-on-error"]),
        script.as_bytes(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("COPY 2\n"), "{}", run.stdout);
    assert!(run.stdout.contains("1\tone\n2\t\\N\n"), "{}", run.stdout);
    assert!(run.stdout.contains("4\n"), "{}", run.stdout);
    assert!(run.stdout.contains("after"), "{}", run.stdout);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "1,one\n2,\n10,ten\n11,\"el,even\"\n"
    );

    // `-c`: the data comes from stdin, as with psql -c.
    let run = with_stdin(
        at_gate(&env, &gate, "sql", "iamuserapp").args([
            "-c",
            "create temp table s (a int); copy s from stdin; select sum(a) as total from s",
        ]),
        b"5\n6\n\\.\n",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("11"), "{}", run.stdout);

    // A bad \copy says what to type.
    let run = expect(
        at_gate(&env, &gate, "sql", "iamuserapp").args(["-c", "\\copy t from program 'ls'"]),
        2,
    );
    assert!(
        run.stderr.contains("PROGRAM is not supported"),
        "{}",
        run.stderr
    );
}

/// NOTICE and WARNING reach stderr as psql prints them; NULL is shown
/// apart from the text 'NULL', and `\pset null` changes it; `-o json` with
/// several result sets is JSON Lines.
#[test]
fn sql_notices_nulls_and_json_lines() {
    let env = Env::new();
    let gate = gate();
    let run = expect(
        at_gate(&env, &gate, "sql", "iamuserapp").args([
            "-c",
            "drop table if exists sql_no_such_table; do $$ begin raise warning 'careful' using hint = 'a hint'; end $$",
        ]),
        0,
    );
    assert!(
        run.stderr
            .contains("NOTICE:  table \"sql_no_such_table\" does not exist, skipping\n"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("WARNING:  careful\nHINT:  a hint\n"),
        "{}",
        run.stderr
    );

    let run = expect(
        at_gate(&env, &gate, "sql", "iamuserapp").args([
            "-c",
            "select null::text as a, 'NULL' as b",
            "-c",
            "\\pset null (nil)",
            "-c",
            "select null::text as c",
        ]),
        0,
    );
    assert!(run.stdout.contains("│ ∅ ┆ NULL │"), "{}", run.stdout);
    assert!(run.stdout.contains("│ (nil) │"), "{}", run.stdout);

    let run = expect(
        at_gate(&env, &gate, "sql", "iamuserapp").args([
            "-o",
            "json",
            "-c",
            "select 1 as a; create temp table j (x int); select g as b from generate_series(1, 2) g",
        ]),
        0,
    );
    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect(l))
        .collect();
    assert_eq!(
        lines,
        [
            serde_json::json!([{"a": 1}]),
            serde_json::json!([{"b": 1}, {"b": 2}])
        ]
    );
}

/// When a proxy does not pass the CancelRequest on, Ctrl-C still stops the
/// statement: pg_cancel_backend from a second connection, said on stderr.
#[test]
fn sql_ctrl_c_falls_back_to_pg_cancel_backend() {
    let env = Env::new();
    let gate = gate();
    gate.set_drop_cancels(true);
    let mut cmd = at_gate(&env, &gate, "sql", "iamuserapp");
    cmd.args(["-c", "select pg_sleep(35)"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let running = || {
        crate::db::postgres()
            .psql_super(
                "app",
                "select count(*) from pg_stat_activity where state = 'active' and query like 'select pg_sleep(35)%'",
            )
            .unwrap()
            .trim()
            .to_owned()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while running() != "1" {
        assert!(
            std::time::Instant::now() < deadline,
            "pg_sleep never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let started = std::time::Instant::now();
    assert_eq!(interrupt(child.id()), 0);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("57014"), "{stderr}");
    assert!(
        stderr.contains("from a second connection") && stderr.contains("pg_cancel_backend("),
        "{stderr}"
    );
    assert!(
        gate.events().iter().any(|e| e == "cancel dropped"),
        "{:?}",
        gate.events()
    );
    assert_eq!(running(), "0");
}

/// SIGINT to `pid` (Ctrl-C), through kill(1).
fn interrupt(pid: u32) -> i32 {
    Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .map(|s| s.code().unwrap_or(-1))
        .unwrap_or(-1)
}
