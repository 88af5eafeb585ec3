//! `rdsiam sql` through the IAM gate and a real PostgreSQL: every output
//! format for the common types, errors and `--continue-on-error`, scripts
//! from `-c`, `-f` and stdin, meta-commands.

use std::io::Write;
use std::process::{Command, Stdio};

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

    let run = expect(
        sql(&env, &gate)
            .args(["-f"])
            .arg(env.home().join("missing.sql")),
        2,
    );
    assert!(run.stderr.contains("cannot read"), "{}", run.stderr);
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
