//! `rdsiam completions SHELL` and `rdsiam man`: generated from the clap
//! definition, and committed under `completions/` and `doc/`.

use anyhow::Result;
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};

/// The completion script for `shell`, as committed under `completions/`.
pub fn script(shell: clap_complete::Shell) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "rdsiam", &mut out);
    String::from_utf8(out).expect("clap_complete writes UTF-8")
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
