//! `rdsiam sql`: the built-in SQL prompt (issue 5). With `-c`, `-f` or a
//! script on stdin it runs the statements and exits (0 when all succeed, 1 on
//! the first failure or, with `--continue-on-error`, at the end; Ctrl-C
//! cancels the running statement on the server and stops); on a
//! terminal it opens the interactive prompt in [`crate::repl`]. Scripts are
//! read as they run (issue 14), so their size does not matter.

use std::io::IsTerminal;

use anyhow::Result;

use crate::cli::SqlArgs;
use crate::connect::Connector;
use crate::engine::Engine;
use crate::repl::exec::{Mode, Runner};
use crate::repl::script::Script;
use crate::target::Target;

use super::{Resolved, runtime};

pub fn run(args: SqlArgs) -> Result<u8> {
    let (target, conn) = Target::with_conn(&args.target, &args.conn)?;
    target.require_engine(Engine::Postgres, "sql")?;
    let connector = Connector::from_args(&conn)?;
    let scripts = scripts(&args)?;
    let rt = runtime()?;
    let resolved = match Resolved::local(&target) {
        Some(resolved) => resolved,
        None => rt.block_on(Resolved::load(&target))?,
    };
    resolved.require(Engine::Postgres, "sql")?;
    let mode = match scripts {
        Some(_) => Mode::Script {
            continue_on_error: args.continue_on_error,
        },
        None => Mode::Interactive,
    };
    let mut runner = Runner::new(
        connector,
        resolved,
        target.dbname.clone(),
        mode,
        args.output,
    );
    rt.block_on(runner.connect())?;
    match scripts {
        Some(scripts) => {
            rt.block_on(runner.run_script(scripts))?;
            Ok(0)
        }
        None => crate::repl::interactive(&rt, runner),
    }
}

/// The scripts to run without a prompt: every `-c` in order, then `-f`
/// (`-f -` is stdin), or stdin when it is not a terminal. `None`:
/// interactive. Files are opened now, so a bad path fails before any
/// network call.
fn scripts(args: &SqlArgs) -> Result<Option<Vec<Script>>> {
    let mut scripts: Vec<Script> = args.commands.iter().map(|c| Script::command(c)).collect();
    match &args.file {
        Some(path) if path.as_os_str() == "-" => scripts.push(Script::stdin()),
        Some(path) => scripts.push(Script::open(path)?),
        None if args.commands.is_empty() => {
            if std::io::stdin().is_terminal() {
                return Ok(None);
            }
            scripts.push(Script::stdin());
        }
        None => {}
    }
    Ok(Some(scripts))
}
