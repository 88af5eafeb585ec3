//! `rdsiam completions SHELL`: the clap_complete script for our CLI.

use anyhow::Result;
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};

/// The completion script for `shell`, as committed under `completions/`.
pub fn script(shell: clap_complete::Shell) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "rdsiam", &mut out);
    String::from_utf8(out).expect("clap_complete writes UTF-8")
}

pub fn run(args: CompletionsArgs) -> Result<u8> {
    crate::output::print(&script(args.shell))?;
    Ok(0)
}
