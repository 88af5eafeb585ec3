//! `rdsiam completions SHELL` and `rdsiam man`: generated from the clap
//! definition, and committed under `completions/` and `doc/`.

use anyhow::Result;
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};

use clap_complete::Shell;

/// Named targets come from the config file at completion time, through the
/// hidden `rdsiam targets names` (no network, no AWS). clap_complete's static
/// scripts can't call back, and its dynamic mode is still unstable, so a
/// small per-shell addition wraps the generated script instead.
///
/// Names are data: `compgen -W` would expand `$(…)` and backquotes in them
/// (issue 10), so bash matches each line literally; and `targets names`
/// prints only names that can be typed without quoting.
const BASH_TARGETS: &str = r#"
_rdsiam_with_targets() {
    _rdsiam "$@"
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" name
    case "${COMP_WORDS[1]}" in
        token|check|psql|sql)
            if [[ "$cur" != -* && ( "$prev" != -* || "$prev" == --reader || "$prev" == --no-config ) ]]; then
                while IFS= read -r name; do
                    if [[ "$name" == "$cur"* ]]; then COMPREPLY+=( "$name" ); fi
                done < <(rdsiam targets names 2>/dev/null)
            fi ;;
    esac
}
complete -F _rdsiam_with_targets -o bashdefault -o default rdsiam
"#;

const ZSH_TARGETS: &str = r#"
(( $+functions[_rdsiam_targets] )) ||
_rdsiam_targets() {
    local -a targets
    targets=(${(f)"$(rdsiam targets names 2>/dev/null)"})
    _describe -t targets 'named target' targets
}
"#;

const FISH_TARGETS: &str = "complete -c rdsiam -n \"__fish_seen_subcommand_from token check psql sql\" -f -a \"(rdsiam targets names 2>/dev/null)\" -d 'named target'\n";

/// The completion script for `shell`, as committed under `completions/`.
pub fn script(shell: Shell) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "rdsiam", &mut out);
    let script = String::from_utf8(out).expect("clap_complete writes UTF-8");
    match shell {
        Shell::Bash => script + BASH_TARGETS,
        Shell::Zsh => {
            let script = script.replace(
                "'::target -- A named target from the config file (`rdsiam targets` lists them):_default'",
                "'::target -- A named target from the config file (`rdsiam targets` lists them):_rdsiam_targets'",
            );
            // Functions must exist before the compdef line at the end runs.
            match script.rfind("\nif [ \"$funcstack[1]\" = \"_rdsiam\" ]") {
                Some(at) => format!("{}{ZSH_TARGETS}{}", &script[..at], &script[at..]),
                None => script + ZSH_TARGETS,
            }
        }
        Shell::Fish => script + FISH_TARGETS,
        _ => script,
    }
}

/// The man page, as committed in `doc/rdsiam.1`.
pub fn man_page() -> String {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .expect("rendering to memory does not fail");
    String::from_utf8(out).expect("clap_mangen writes UTF-8")
}

pub fn man() -> Result<u8> {
    crate::output::print(&man_page())?;
    Ok(0)
}

pub fn run(args: CompletionsArgs) -> Result<u8> {
    crate::output::print(&script(args.shell))?;
    Ok(0)
}
