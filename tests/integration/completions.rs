//! Completion scripts and the man page are committed; these tests fail when
//! they go stale (refresh with `RDSIAM_BLESS=1 cargo test --test integration
//! completions`), and load each script in its shell.

use std::path::Path;
use std::process::Command;

use crate::support::{Env, expect};

const SCRIPTS: &[(&str, &str)] = &[
    ("bash", "completions/rdsiam.bash"),
    ("zsh", "completions/_rdsiam"),
    ("fish", "completions/rdsiam.fish"),
    ("powershell", "completions/_rdsiam.ps1"),
    ("elvish", "completions/rdsiam.elv"),
];

const BLESS: &str = "RDSIAM_BLESS=1 cargo test --test integration completions";

fn compare_or_bless(path: &str, generated: &str) {
    crate::support::compare_or_bless(path, generated, BLESS);
}

#[test]
fn committed_completions_are_current() {
    let env = Env::new();
    for (shell, path) in SCRIPTS {
        let run = expect(env.bare().args(["completions", shell]), 0);
        compare_or_bless(path, &run.stdout);
    }
}

#[test]
fn committed_man_page_is_current() {
    let env = Env::new();
    let run = expect(env.bare().arg("man"), 0);
    assert!(run.stdout.contains(".TH rdsiam"));
    compare_or_bless("doc/rdsiam.1", &run.stdout);
}

/// A config with two targets, and PATH with our binary first, for shells
/// that call `rdsiam targets names` while completing.
fn shell(env: &Env, program: &str) -> Command {
    shell_with_config(
        env,
        program,
        "[targets.prod-orders]\nproxy = \"PostgreSqlProxy\"\n[targets.stage-orders]\nhost = \"h\"\n",
    )
}

/// `program` with the config file `config` and our binary first on PATH.
pub(crate) fn shell_with_config(env: &Env, program: &str, config: &str) -> Command {
    let text = config;
    let config = env.home().join("rdsiam.toml");
    std::fs::write(&config, text).unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_rdsiam")).parent().unwrap();
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("HOME", env.home())
        .env("RDSIAM_CONFIG", &config)
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

#[track_caller]
fn run_shell(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (install it: apt-get install zsh fish)"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "{cmd:?} failed: {stderr}"
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn bash_loads_and_completes_named_targets() {
    let env = Env::new();
    let out = run_shell(shell(&env, "bash").args([
        "-c",
        "source completions/rdsiam.bash && COMP_WORDS=(rdsiam psql prod) COMP_CWORD=2 && _rdsiam_with_targets rdsiam prod psql && printf '%s\\n' \"${COMPREPLY[@]}\"",
    ]));
    assert!(out.lines().any(|l| l == "prod-orders"), "{out}");
    assert!(!out.contains("stage-orders"), "{out}");
}

#[test]
fn zsh_loads_the_script() {
    let env = Env::new();
    let out = run_shell(shell(&env, "zsh").args([
        "-f",
        "-c",
        "autoload -U compinit && compinit -u -D && source completions/_rdsiam && print -r -- ${+functions[_rdsiam_targets]}",
    ]));
    assert_eq!(out.trim(), "1");
}

#[test]
fn fish_loads_and_completes_named_targets() {
    let env = Env::new();
    let out = run_shell(shell(&env, "fish").args([
        "-c",
        "source completions/rdsiam.fish; complete -C 'rdsiam check '",
    ]));
    assert!(out.contains("prod-orders"), "{out}");
    assert!(out.contains("stage-orders"), "{out}");
}
