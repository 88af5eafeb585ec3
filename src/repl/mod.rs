//! The SQL prompt behind `rdsiam sql` (issue 5): input splitting
//! ([`input`]), meta-commands ([`meta`]), result rendering ([`render`]),
//! statement execution with reconnects and cancel ([`exec`]), and here the
//! interactive loop: rustyline, history, prompts.
//!
//! The loop reads one line at a time, psql style, into a buffer; complete
//! statements and meta-commands run as soon as a line finishes them, and the
//! unfinished rest stays in the buffer under the `->` prompt. So a lost
//! connection never costs the statement being typed: reconnecting happens
//! when the next statement runs. And when a finished statement could not be
//! sent (the reconnect failed, or Ctrl-C abandoned it) or Ctrl-C stopped a
//! line of several, what did not run comes back on the next prompt line,
//! as typed, to send again with Enter (or clear with Ctrl-C).

pub mod exec;
pub mod input;
pub mod meta;
pub mod render;
pub mod script;

use std::path::PathBuf;

use anyhow::{Context, Result};
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{Config, Editor};

use exec::{LineEnd, Runner};

/// Run the prompt until `\q` or Ctrl-D. The runner is already connected,
/// in [`exec::Mode::Interactive`].
pub fn interactive(rt: &tokio::runtime::Runtime, mut runner: Runner) -> Result<u8> {
    {
        let _guard = rt.enter();
        runner.catch_interrupts();
    }
    let config = Config::builder()
        .auto_add_history(false)
        .max_history_size(2000)
        .context("configuring the line editor")?
        .build();
    let mut editor: Editor<(), FileHistory> =
        Editor::with_config(config).context("starting the line editor")?;
    let history = history_path();
    if let Some(path) = &history {
        prepare_history_file(path);
        let _ = editor.load_history(path);
    }
    eprintln!(
        "rdsiam sql: connected to \"{}\" as \"{}\" over TLS. Type \\? for help, \\q to quit.",
        runner.database(),
        runner.user()
    );
    let mut buffer = String::new();
    // Text that did not run, to put back on the next prompt line.
    let mut give_back = String::new();
    loop {
        let prompt = prompt(&runner, !buffer.is_empty());
        let read = if give_back.is_empty() {
            editor.readline(&prompt)
        } else {
            editor.readline_with_initial(&prompt, (&std::mem::take(&mut give_back), ""))
        };
        let line = match read {
            Ok(line) => line,
            // Ctrl-C at the prompt throws away what was typed, as psql does.
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(err) => return Err(err).context("reading input"),
        };
        if !buffer.is_empty() {
            buffer.push('\n');
        }
        buffer.push_str(&line);
        let (spans, rest) = input::split_spans_with(&buffer, runner.lexer());
        if spans.is_empty() {
            if input::is_blank(&buffer) && !buffer.contains("/*") {
                buffer.clear();
            }
            continue;
        }
        let done = &buffer[..buffer.len() - rest.len()];
        remember(&mut editor, history.as_deref(), done.trim());
        let rest = rest.trim_start().to_owned();
        let (starts, items): (Vec<usize>, Vec<input::Item>) = spans.into_iter().unzip();
        let mut data = PromptData {
            editor: &mut editor,
        };
        match rt.block_on(runner.run_line(&items, &mut data))? {
            LineEnd::Quit => return Ok(0),
            LineEnd::Done => buffer = rest,
            LineEnd::NotRun(n) => {
                give_back = buffer[starts[n]..].trim().to_owned();
                buffer.clear();
                eprintln!("(it is back on the prompt line: Enter sends it, Ctrl-C clears it)");
            }
        }
    }
    Ok(0)
}

/// `user@db=> `; `user@db-> ` while a statement continues; psql's `%x`
/// after it: `=*>` inside a transaction block, `=!>` inside a failed one.
pub fn prompt(runner: &Runner, continuing: bool) -> String {
    let state = if continuing { "-" } else { "=" };
    format!(
        "{}@{}{state}{}> ",
        runner.user(),
        runner.database(),
        runner.tx_mark()
    )
}

/// `COPY … FROM STDIN` typed at the prompt: data lines under `>> ` until
/// `\.`, Ctrl-D or Ctrl-C (which aborts the COPY).
struct PromptData<'a> {
    editor: &'a mut Editor<(), FileHistory>,
}

impl script::CopyData for PromptData<'_> {
    fn data_line(&mut self) -> Result<Option<String>> {
        match self.editor.readline(">> ") {
            Ok(line) => Ok(Some(line)),
            Err(ReadlineError::Eof) => Ok(None),
            Err(ReadlineError::Interrupted) => {
                Err(anyhow::anyhow!("COPY aborted by Ctrl-C; no row was copied"))
            }
            Err(err) => Err(err).context("reading COPY data"),
        }
    }

    fn interactive(&self) -> bool {
        true
    }
}

/// `data_dir()/rdsiam/history` (`~/.local/share/rdsiam/history` on Linux).
fn history_path() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("rdsiam").join("history"))
}

/// The directory 0700 and the file 0600 before anything is written: entries
/// are SQL, and SQL can hold secrets.
fn prepare_history_file(path: &std::path::Path) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path);
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
}

/// Words that mark an entry as holding a secret: a token (its
/// `X-Amz-Signature`), a password (`ALTER ROLE … PASSWORD '…'`), or AWS keys
/// (RDS's `aws_commons.create_aws_credentials('AKIA…', 'secret', '')`).
const SECRET_MARKS: &[&str] = &[
    "x-amz-signature",
    "password",
    "create_aws_credentials",
    "secret_access_key",
];

/// Whether an entry may be written to history: never one holding a secret.
pub fn may_remember(entry: &str) -> bool {
    let lower = entry.to_lowercase();
    !entry.trim().is_empty() && !SECRET_MARKS.iter().any(|mark| lower.contains(mark))
}

fn remember(editor: &mut Editor<(), FileHistory>, path: Option<&std::path::Path>, entry: &str) {
    if !may_remember(entry) {
        return;
    }
    let _ = editor.add_history_entry(entry);
    if let Some(path) = path {
        let _ = editor.append_history(path);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_never_keeps_tokens_or_passwords() {
        assert!(may_remember("select 1;"));
        assert!(!may_remember("alter role x with Password 'hunter2';"));
        assert!(!may_remember(
            "select 'h:5432/?Action=connect&X-Amz-Signature=abc';"
        ));
        assert!(!may_remember("select 'x-amz-signature';"));
        assert!(!may_remember(
            "select aws_commons.create_aws_credentials('AKIA1', 'wJalr', '');"
        ));
        assert!(!may_remember("set my.aws_secret_access_key = 'wJalr';"));
        assert!(!may_remember("   "));
    }
}
