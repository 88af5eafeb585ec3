//! `rdsiam`: parse, run, exit with the documented code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = rdsiam::cli::Cli::parse();
    match rdsiam::commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) if rdsiam::error::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{}", rdsiam::error::render(&err));
            ExitCode::from(rdsiam::error::exit_code(&err))
        }
    }
}
