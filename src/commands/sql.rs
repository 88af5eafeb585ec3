//! `rdsiam sql`: the built-in SQL prompt (issue 5). With `-c`, `-f` or a
//! script on stdin it runs the statements and exits (0 when all succeed, 1 on
//! the first failure or, with `--continue-on-error`, at the end; Ctrl-C
//! cancels the running statement on the server and stops); on a
//! terminal it opens the interactive prompt in [`crate::repl`].

use std::io::{IsTerminal, Read};

use anyhow::Result;

use crate::cli::SqlArgs;
use crate::connect::Connector;
use crate::error::Failure;
use crate::repl::exec::{Mode, Runner, read_script};
use crate::repl::input::{Item, split_script};
use crate::target::Target;

use super::{Resolved, runtime};

pub fn run(args: SqlArgs) -> Result<u8> {
    let (target, conn) = Target::with_conn(&args.target, &args.conn)?;
    let connector = Connector::from_args(&conn)?;
    let script = script(&args)?;
    let rt = runtime()?;
    let resolved = match Resolved::local(&target) {
        Some(resolved) => resolved,
        None => rt.block_on(Resolved::load(&target))?,
    };
    let mode = match script {
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
    match script {
        Some(items) => {
            rt.block_on(runner.run_script(&items))?;
            Ok(0)
        }
        None => crate::repl::interactive(&rt, runner),
    }
}

/// The statements to run without a prompt: every `-c` in order, then `-f`
/// (`-f -` is stdin), or stdin when it is not a terminal. `None`: interactive.
fn script(args: &SqlArgs) -> Result<Option<Vec<Item>>> {
    let mut items = Vec::new();
    for command in &args.commands {
        items.extend(split_script(command));
    }
    match &args.file {
        Some(path) if path.as_os_str() == "-" => items.extend(split_script(&read_stdin()?)),
        Some(path) => items.extend(split_script(&read_script(path)?)),
        None if args.commands.is_empty() => {
            if std::io::stdin().is_terminal() {
                return Ok(None);
            }
            items.extend(split_script(&read_stdin()?));
        }
        None => {}
    }
    Ok(Some(items))
}

fn read_stdin() -> Result<String> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).map_err(|err| {
        Failure::usage(format!("cannot read the script from stdin: {err}"))
            .hint("pipe SQL text (UTF-8) in, or pass -c SQL / -f FILE")
    })?;
    Ok(text)
}
