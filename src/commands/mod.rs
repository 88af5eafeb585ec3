//! One module per subcommand, each with a `run`; the shared steps from a
//! target to an endpoint and a token live in [`crate::session`].

mod check;
mod completions;
mod doctor;
mod list;
mod mysql;
mod plan;
mod policy;
mod proxy;
mod psql;
mod run;
mod sql;
mod targets;
mod token;

use anyhow::Result;

use crate::cli::{Cli, Command};

/// Run the parsed command; the `Ok` value is the process exit code.
pub fn run(cli: Cli) -> Result<u8> {
    // Every command that may hold credentials or a token; only the ones
    // that print files or help are left out.
    if !matches!(
        cli.command,
        Command::Targets(_) | Command::Completions(_) | Command::Man
    ) {
        crate::hardening::no_core_dumps();
    }
    if !matches!(cli.command, Command::Completions(_) | Command::Man) {
        crate::flags::check_env_encoding()?;
    }
    match cli.command {
        Command::Token(args) => token::run(args),
        Command::Check(args) => check::run(args),
        Command::List(args) => list::run(args),
        Command::Psql(args) => psql::run(args),
        Command::Mysql(args) => mysql::run(args),
        Command::Sql(args) => sql::run(args),
        Command::Proxy(args) => proxy::run(args),
        Command::Run(args) => run::run(args),
        Command::Targets(args) => targets::run(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Policy(args) => policy::run(args),
        Command::Completions(args) => completions::run(args),
        Command::Man => completions::man(),
    }
}

// The step from a target to tokens lives in `session.rs`; re-exported for
// the commands here.
pub use crate::session::{Resolved, resolve_blocking, runtime};
