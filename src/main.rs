//! `rdsiam`: parse, run, exit with the documented code.

use std::process::ExitCode;

use clap::Parser;
use rdsiam::error;

fn main() -> ExitCode {
    let cli = match rdsiam::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return error::clap_exit(&err),
    };
    match rdsiam::commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) if error::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{}", error::render(&err));
            ExitCode::from(error::exit_code(&err))
        }
    }
}
