//! The public command-line contract under snapshot: the `--help` of the
//! top level and of every subcommand, and one case per error class with its
//! exact exit code, stdout and stderr, in `tests/snapshots/contract/`.
//!
//! Ports, temp paths and the local API's address are replaced by `[NAMES]`
//! so the files are stable. A change to the contract shows up as a diff of
//! those files: refresh them with
//! `RDSIAM_BLESS=1 cargo test --test integration contract`, review the diff,
//! commit it. Help snapshots follow `Cli::command()`: a new subcommand gets
//! its file on the next bless, and fails until then.

use std::path::Path;
use std::process::Command;

use clap::CommandFactory;
use rdsiam::cli::Cli;
use rdsiam_testkit::gate::Fault;
use rdsiam_testkit::rdsapi::{Inventory, RdsApi};

use crate::db::{at_gate, gate};
use crate::support::{Env, REGION, compare_or_bless, run};

const DIR: &str = "tests/snapshots/contract";
const BLESS: &str = "RDSIAM_BLESS=1 cargo test --test integration contract";

/// One snapshot: what ran, with what result, redacted.
struct Snapshot<'a> {
    /// A line saying what the case is, for whoever reads the file.
    about: &'a str,
    /// What changes from run to run, and the name that replaces it.
    redact: Vec<(String, &'static str)>,
}

impl Snapshot<'_> {
    fn new(about: &str) -> Snapshot<'_> {
        Snapshot {
            about,
            redact: Vec::new(),
        }
    }

    fn redact(mut self, value: impl ToString, name: &'static str) -> Self {
        self.redact.push((value.to_string(), name));
        self
    }

    /// Runs `cmd`, renders the run and compares it with (or blesses) `file`.
    #[track_caller]
    fn check(mut self, file: &str, env: &Env, cmd: &mut Command) {
        // Longest first, so a path is replaced before any part of it.
        self.redact
            .push((env.home().display().to_string(), "[HOME]"));
        self.redact
            .sort_by_key(|(value, _)| std::cmp::Reverse(value.len()));
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| shell_word(&a.to_string_lossy()))
            .collect();
        let run = run(cmd);
        let mut text = format!(
            "# {}\n$ rdsiam {}\n? {}\n--- stdout\n",
            self.about,
            args.join(" "),
            run.code
        );
        section(&mut text, &run.stdout);
        text.push_str("--- stderr\n");
        section(&mut text, &run.stderr);
        for (value, name) in &self.redact {
            text = replace_whole(&text, value, name);
        }
        compare_or_bless(&format!("{DIR}/{file}"), &text, BLESS);
    }
}

fn section(text: &mut String, output: &str) {
    text.push_str(output);
    if !output.is_empty() && !output.ends_with('\n') {
        text.push_str("\n[no newline at the end]\n");
    }
}

/// An argument as a reader would type it.
fn shell_word(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=@,[]+".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Replaces `value` in `text`; a number only where it stands alone, so a
/// port is not replaced inside a longer number.
fn replace_whole(text: &str, value: &str, name: &str) -> String {
    if value.is_empty() {
        return text.to_owned();
    }
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return text.replace(value, name);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(value) {
        out.push_str(&rest[..at]);
        let before = out.chars().last();
        let after = rest[at + value.len()..].chars().next();
        if before.is_some_and(|c| c.is_ascii_digit()) || after.is_some_and(|c| c.is_ascii_digit()) {
            out.push_str(value);
        } else {
            out.push_str(name);
        }
        rest = &rest[at + value.len()..];
    }
    out.push_str(rest);
    out
}

/// Every visible (sub)command as its path of names; `[]` is `rdsiam` itself.
fn command_paths() -> Vec<Vec<String>> {
    fn walk(cmd: &clap::Command, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        out.push(path.clone());
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            path.push(sub.get_name().to_owned());
            walk(sub, path, out);
            path.pop();
        }
    }
    let mut out = Vec::new();
    walk(&Cli::command(), &mut Vec::new(), &mut out);
    out
}

fn help_file(path: &[String]) -> String {
    match path {
        [] => "help.txt".to_owned(),
        _ => format!("help-{}.txt", path.join("-")),
    }
}

fn snapshot_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(DIR)
}

#[test]
fn contract_help_of_every_command() {
    let paths = command_paths();
    assert!(paths.len() > 5, "walked {paths:?}");
    let blessing = std::env::var_os("RDSIAM_BLESS").is_some();
    let missing: Vec<String> = paths
        .iter()
        .map(|p| help_file(p))
        .filter(|f| !snapshot_dir().join(f).exists())
        .collect();
    assert!(
        blessing || missing.is_empty(),
        "no help snapshot for {missing:?}: create them with `{BLESS}`, review and commit them"
    );
    let env = Env::new();
    for path in &paths {
        let about = match path.as_slice() {
            [] => "the top-level help".to_owned(),
            _ => format!("the help of `rdsiam {}`", path.join(" ")),
        };
        Snapshot::new(&about).check(&help_file(path), &env, env.bare().args(path).arg("--help"));
    }
}

/// A help snapshot whose command is gone (renamed, removed, hidden) fails
/// here rather than lingering; blessing deletes it.
#[test]
fn contract_help_snapshots_all_name_a_command() {
    let known: Vec<String> = command_paths().iter().map(|p| help_file(p)).collect();
    let blessing = std::env::var_os("RDSIAM_BLESS").is_some();
    let mut orphans = Vec::new();
    for entry in std::fs::read_dir(snapshot_dir()).into_iter().flatten() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with("help") && !known.contains(&name) {
            if blessing {
                std::fs::remove_file(snapshot_dir().join(&name)).unwrap();
            } else {
                orphans.push(name);
            }
        }
    }
    assert!(
        orphans.is_empty(),
        "help snapshots for no command: {orphans:?}; remove them with `{BLESS}`"
    );
}

#[test]
fn contract_error_usage() {
    let env = Env::new();
    Snapshot::new("usage error: two targets at once (exit 2)").check(
        "error-usage.txt",
        &env,
        env.cmd()
            .args(["check", "--proxy", "PostgreSqlProxy", "--host", "localhost"]),
    );
}

#[test]
fn contract_error_target_not_found() {
    let env = Env::new();
    let api = RdsApi::start(Inventory::article()).expect("fake RDS API starts");
    Snapshot::new("a proxy name with a typo, through the local RDS API (exit 3)")
        .redact(api.url(), "[RDS_API]")
        .check(
            "error-target-not-found.txt",
            &env,
            env.cmd().args([
                "token",
                "--proxy",
                "PostgresProxy",
                "-U",
                "iamuserapp",
                "--region",
                REGION,
                "--endpoint-url",
                &api.url(),
            ]),
        );
}

#[test]
fn contract_error_no_credentials() {
    let env = Env::new();
    Snapshot::new("no AWS credentials anywhere (empty environment and HOME) (exit 3)").check(
        "error-no-credentials.txt",
        &env,
        env.bare()
            .args(["token", "--host", "localhost", "-U", "iamuserapp"])
            .args(["--region", REGION]),
    );
}

#[test]
fn contract_error_login_refused() {
    let env = Env::new();
    let gate = gate();
    Snapshot::new("the IAM gate refuses a role that lacks rds_iam (exit 5)")
        .redact(gate.port(), "[GATE_PORT]")
        .check(
            "error-login-refused.txt",
            &env,
            at_gate(&env, &gate, "check", "norights").arg("--no-aws-identity"),
        );
}

#[test]
fn contract_error_untrusted_certificate() {
    let env = Env::new();
    let gate = gate();
    gate.set_fault(Fault::WrongCert);
    Snapshot::new("the gate presents a certificate from a CA nobody trusts (exit 4)")
        .redact(gate.port(), "[GATE_PORT]")
        .check(
            "error-untrusted-certificate.txt",
            &env,
            at_gate(&env, &gate, "check", "iamuserapp").arg("--no-aws-identity"),
        );
}

#[test]
fn contract_error_closed_port() {
    let env = Env::new();
    let port = crate::support::closed_port();
    Snapshot::new("nothing listens on the port (exit 4)")
        .redact(port, "[CLOSED_PORT]")
        .check(
            "error-closed-port.txt",
            &env,
            env.cmd().args([
                "check",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "-U",
                "iamuserapp",
                "--region",
                REGION,
                "--no-aws-identity",
            ]),
        );
}

#[test]
fn contract_redaction_replaces_whole_numbers_only() {
    assert_eq!(
        replace_whole("127.0.0.1:4321, 543210, 14321, 4321", "4321", "[PORT]"),
        "127.0.0.1:[PORT], 543210, 14321, [PORT]"
    );
    assert_eq!(shell_word("a b"), "'a b'");
    assert_eq!(shell_word("it's"), r"'it'\''s'");
    assert_eq!(shell_word("--port"), "--port");
}
