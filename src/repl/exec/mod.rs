//! Running statements and meta-commands on a session that can be lost and
//! reopened: the part shared by scripts (`-c`, `-f`, stdin) and the prompt.
//!
//! Statements go over the simple query protocol, so each runs exactly as
//! psql would send it and every value comes back in PostgreSQL's exact text
//! form; for typed JSON the column types come from a Describe (`prepare`) of
//! the same statement first (see [`Runner::run_sql`] for why only JSON).
//!
//! At the prompt Ctrl-C (SIGINT, caught) cancels what runs on the server —
//! the Describe too — or abandons a reconnect, and stops the rest of the
//! input: the other statements of the line (given back to the prompt) or of
//! the `\i` file.
//!
//! In a script (`-c`, `-f`, stdin) Ctrl-C cancels the running statement on
//! the server the same way, then stops the script (even with
//! `--continue-on-error`) with exit code 1. A second Ctrl-C, or one while no
//! statement runs, stops it at once without waiting for the server.
//!
//! The jobs live in their own files: the session and its reconnects
//! (`session.rs`), Ctrl-C (`interrupt.rs`), result assembly and display
//! (`results.rs`), psql's catalogue queries (`catalog.rs`) and COPY
//! (`copy.rs`); here the runner ties them together item by item, each
//! statement split just before it runs (see [`super::script`]).

mod catalog;
mod copy;
mod interrupt;
mod results;
mod session;
mod sigint;

use std::cell::Cell;
use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use tokio_postgres::Statement;

use crate::connect::Connector;
use crate::error::{Failure, Kind};
use crate::output::SqlOutput;
use crate::output::warn;
use crate::session::Resolved;

use super::input::{self, Item, Lexer, statement_text_with};
use super::meta::{self, Meta};
use super::script::{CopyData, Script};
use crate::tap::TxStatus;

use results::Display;
use session::Link;
use sigint::Interrupts;

pub use results::server_error;

/// What the caller does after an item.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
    /// It failed before anything was sent (a reconnect failed or was
    /// interrupted): nothing ran, so the prompt gives the text back.
    NotSent,
    /// An `\i` file stopped partway (Ctrl-C, or a statement not sent) and
    /// said so: nothing after it runs, and it is not given back (part of
    /// it ran).
    Stopped,
}

/// How a line of items at the prompt ended ([`Runner::run_line`]).
#[derive(Debug, PartialEq, Eq)]
pub enum LineEnd {
    /// Every item ran (errors included: they were shown).
    Done,
    /// `\q`.
    Quit,
    /// Items from this index on did not run: not sent, or Ctrl-C stopped
    /// the line. The prompt gives their text back.
    NotRun(usize),
}

/// How `\i` may nest before we call it a loop.
const MAX_INCLUDE_DEPTH: usize = 16;

/// How the runner treats errors and Ctrl-C.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// At the prompt: errors are shown and the session goes on; Ctrl-C
    /// cancels and stops the rest of the line.
    Interactive,
    /// `-c`, `-f`, stdin: the first error stops the script (exit 1) unless
    /// `continue_on_error`; Ctrl-C cancels and stops it either way.
    Script { continue_on_error: bool },
}

/// A session plus display settings; reconnects with a fresh token when the
/// connection was lost.
pub struct Runner {
    link: Link,
    display: Display,
    interrupts: Interrupts,
    mode: Mode,
    /// Statements that failed so far (for `--continue-on-error`).
    errors: usize,
    statements: usize,
    /// How deep in `\i` files we are.
    depth: usize,
}

/// A statement's failure, already rendered for the user.
enum StmtError {
    /// The server answered with an error; the session is fine.
    Server(String),
    /// The connection broke: the session is gone.
    Lost(String),
    /// Nothing was sent: no session (the reconnect failed or Ctrl-C
    /// abandoned it), or Ctrl-C came before the statement started.
    NotSent(String),
    /// Anything else (a file that cannot be read, a bad meta-command).
    Local(anyhow::Error),
    /// A script's second Ctrl-C came before the server answered the cancel
    /// (or before the cancel request went out): we stopped waiting.
    Abandoned,
}

impl Runner {
    /// A runner for `mode`, results in `format`; not connected yet. At the
    /// prompt timing starts on, as psql users expect from `\timing`.
    pub fn new(
        connector: Connector,
        resolved: Resolved,
        dbname: Option<String>,
        mode: Mode,
        format: SqlOutput,
    ) -> Runner {
        Runner {
            link: Link::new(connector, resolved, dbname),
            display: Display::new(format, mode == Mode::Interactive),
            interrupts: Interrupts::default(),
            mode,
            errors: 0,
            statements: 0,
            depth: 0,
        }
    }

    fn interactive(&self) -> bool {
        self.mode == Mode::Interactive
    }

    fn continue_on_error(&self) -> bool {
        matches!(
            self.mode,
            Mode::Script {
                continue_on_error: true
            }
        )
    }

    pub fn user(&self) -> &str {
        self.link.user()
    }

    /// The database name as the server sees it (default: the user's name).
    pub fn database(&self) -> &str {
        self.link.database()
    }

    /// psql's `%x`: `*` inside a transaction block, `!` inside a failed
    /// one, else nothing.
    pub fn tx_mark(&self) -> &'static str {
        match self.link.tx_status() {
            TxStatus::InTransaction => "*",
            TxStatus::Failed => "!",
            TxStatus::Idle | TxStatus::Unknown => "",
        }
    }

    /// How the next statement splits: by the server's current
    /// `standard_conforming_strings`.
    pub fn lexer(&self) -> Lexer {
        Lexer {
            std_strings: self.link.std_strings(),
            first_line_std_strings: None,
            more_to_come: false,
        }
    }

    /// Listen for Ctrl-C from now on: while a query runs it becomes a cancel
    /// request instead of killing the process. Call inside the runtime.
    pub fn catch_interrupts(&mut self) {
        self.interrupts.listen();
    }

    /// Log in now (a fresh token), so a bad login fails before any input.
    pub async fn connect(&mut self) -> Result<()> {
        self.link.connect().await
    }

    /// Make sure there is a live session (see [`Link::ensure`]).
    async fn ensure_session(&mut self) -> Result<(), StmtError> {
        // A script with --continue-on-error reconnects after a lost session
        // (issue 19), as the prompt does; otherwise it stops there.
        let reconnect = self.interactive() || self.continue_on_error();
        self.link.ensure(reconnect, &mut self.interrupts).await?;
        Ok(())
    }

    /// Run the complete items of one prompt line in order. Ctrl-C stops
    /// the line after the statement it cancelled; a statement that was not
    /// sent stops it too. Either way the caller gives back, from
    /// [`LineEnd::NotRun`], what did not run.
    pub async fn run_line(&mut self, items: &[Item], data: &mut dyn CopyData) -> Result<LineEnd> {
        self.interrupts.forget();
        for (n, item) in items.iter().enumerate() {
            if self.interrupts.interrupted() {
                eprintln!("Ctrl-C: the rest of the input was not run");
                return Ok(LineEnd::NotRun(n));
            }
            match self.run_item(item, data).await? {
                Flow::Quit => return Ok(LineEnd::Quit),
                Flow::NotSent => return Ok(LineEnd::NotRun(n)),
                Flow::Stopped if n + 1 < items.len() => return Ok(LineEnd::NotRun(n + 1)),
                Flow::Stopped | Flow::Continue => {}
            }
        }
        Ok(LineEnd::Done)
    }

    /// Run whole scripts in order, each read as it runs; `Err` stops them
    /// (with the exit code inside). Ctrl-C cancels the running statement
    /// and stops the script (exit 1).
    pub async fn run_script(&mut self, scripts: Vec<Script>) -> Result<()> {
        if !self.interactive() && self.interrupts.signal_missing() {
            self.catch_interrupts();
        }
        'scripts: for mut script in scripts {
            loop {
                self.stop_if_interrupted()?;
                let Some(item) = script.next_item(self.link.std_strings())? else {
                    break;
                };
                if self.run_item(&item, &mut script).await? == Flow::Quit {
                    break 'scripts;
                }
            }
        }
        self.stop_if_interrupted()?;
        if self.errors > 0 {
            return Err(Failure::new(
                Kind::Other,
                format!("{} of {} statements failed", self.errors, self.statements),
            )
            .hint("the errors are shown above")
            .into());
        }
        Ok(())
    }

    /// In a script: Ctrl-C came while no statement ran (or the statement
    /// finished before its cancel took effect), so stop here.
    fn stop_if_interrupted(&mut self) -> Result<()> {
        if self.interrupts.interrupted() {
            return Err(Failure::new(
                Kind::Other,
                format!("interrupted by Ctrl-C after statement {}", self.statements),
            )
            .hint("the rest of the script did not run")
            .into());
        }
        Ok(())
    }

    /// Run one item. At the prompt every error is shown and `Ok` returned;
    /// in a script an error stops it unless `--continue-on-error`.
    pub async fn run_item(&mut self, item: &Item, data: &mut dyn CopyData) -> Result<Flow> {
        let result = match item {
            Item::Meta(line) => match line.parse::<Meta>() {
                Ok(meta) => Box::pin(self.run_meta(meta, data)).await,
                Err(err) => Err(StmtError::Local(Failure::usage(err.0).into())),
            },
            Item::Sql(raw) => {
                if input::is_blank(raw) {
                    return Ok(Flow::Continue);
                }
                self.statements += 1;
                let lexer = self.lexer();
                let sql = statement_text_with(raw, lexer);
                let run = match copy::direction(&sql, lexer) {
                    Some(copy::Direction::In) => self.copy_in(&sql, data).await,
                    Some(copy::Direction::Out) => self.copy_out(&sql).await,
                    None => self.run_sql(&sql, None).await,
                };
                run.map(|()| Flow::Continue)
            }
        };
        let err = match result {
            Ok(flow) => return Ok(flow),
            Err(err) => err,
        };
        self.errors += 1;
        if self.interactive() {
            match err {
                StmtError::Server(text) => {
                    eprintln!("{}", crate::output::escape_controls(&text));
                }
                // Issue 19: a session lost mid-statement (a failover) gives the
                // statement back to the prompt instead of re-running it.
                StmtError::Lost(text) => {
                    eprintln!("rdsiam: {}", crate::output::escape_controls(&text));
                    return Ok(Flow::NotSent);
                }
                StmtError::Abandoned => eprintln!("Ctrl-C: stopped waiting for the statement"),
                StmtError::NotSent(text) => {
                    eprintln!("{text}");
                    return Ok(Flow::NotSent);
                }
                StmtError::Local(err) => eprintln!("{}", crate::error::render(&err)),
            }
            return Ok(Flow::Continue);
        }
        // Ctrl-C in a script: whatever the statement's fate, the script
        // stops here, --continue-on-error or not.
        if self.interrupts.was_cancelled() {
            let n = self.statements;
            let (message, hint) = match err {
                // An `\i` file's statement, already said.
                StmtError::Local(err) => return Err(err),
                StmtError::Server(text) | StmtError::Lost(text) => (
                    format!("statement {n} cancelled by Ctrl-C: {text}"),
                    "the rest of the script did not run",
                ),
                StmtError::NotSent(_) => (
                    format!("interrupted by Ctrl-C; statement {n} was not sent"),
                    "the rest of the script did not run",
                ),
                StmtError::Abandoned => (
                    format!("statement {n} abandoned by a second Ctrl-C"),
                    "it may still run on the server until it ends; the rest of the script did not run",
                ),
            };
            return Err(Failure::new(Kind::Other, message).hint(hint).into());
        }
        let continue_on_error = self.continue_on_error();
        match err {
            StmtError::Abandoned => Err(Failure::new(
                Kind::Other,
                format!("statement {} abandoned by Ctrl-C", self.statements),
            )
            .into()),
            StmtError::Lost(text) if continue_on_error => {
                eprintln!(
                    "rdsiam: statement {} failed: {}; going on (--continue-on-error): the next statement reconnects with a fresh token",
                    self.statements,
                    crate::output::escape_controls(&text)
                );
                Ok(Flow::Continue)
            }
            StmtError::Lost(text) | StmtError::NotSent(text) => {
                Err(Failure::network(text.trim_start_matches("rdsiam: ").to_owned()).into())
            }
            StmtError::Local(err) if !continue_on_error => Err(err),
            StmtError::Local(err) => {
                eprintln!("{}", crate::error::render(&err));
                Ok(Flow::Continue)
            }
            StmtError::Server(text) if !continue_on_error => Err(Failure::new(
                Kind::Other,
                format!("statement {} failed: {text}", self.statements),
            )
            .hint("stopped there; pass --continue-on-error to run the rest anyway")
            .into()),
            StmtError::Server(text) => {
                eprintln!(
                    "rdsiam: statement {} failed: {}",
                    self.statements,
                    crate::output::escape_controls(&text)
                );
                Ok(Flow::Continue)
            }
        }
    }

    /// Run one statement and show its result; `title` heads meta output.
    async fn run_sql(&mut self, sql: &str, title: Option<&str>) -> Result<(), StmtError> {
        if self.interrupts.interrupted() {
            return Err(StmtError::NotSent(
                "Ctrl-C: the statement was not sent".to_owned(),
            ));
        }
        // The Describe is for JSON only. It is the one thing that needs the
        // column types (numbers as numbers, booleans, arrays); CSV is text,
        // and tables align numbers from the values themselves. Skipping it
        // elsewhere saves a round trip per statement, and `prepare` creates
        // a named prepared statement, which can pin the session to one
        // database connection behind RDS Proxy. Only statements that can
        // return rows are described: a Describe error is the statement's own
        // error (same parser, same analysis) and inside a transaction it
        // has already aborted it, so it is reported rather than run into
        // 25P02.
        let describe = self.display.format == SqlOutput::Json && results::returns_rows(sql);
        self.ensure_session().await?;
        let started = Instant::now();
        let interactive = self.interactive();
        let Runner {
            link,
            interrupts,
            statements,
            ..
        } = self;
        let client = link.client().expect("ensure_session connected");
        // Set when Ctrl-C sent a cancel request: a Describe that finished
        // anyway must not be followed by its statement.
        let cancelled = Cell::new(false);
        let work = async {
            let statement: Option<Statement> = if describe {
                Some(client.prepare(sql).await?)
            } else {
                None
            };
            if cancelled.get() {
                return Ok(None);
            }
            let messages = client.simple_query(sql).await?;
            Ok::<_, tokio_postgres::Error>(Some((statement, messages)))
        };
        // One cancel-aware wait around the Describe and the query: either
        // can block (behind a lock, say) and Ctrl-C must reach both.
        let result = interrupt::cancellable(
            work,
            &cancelled,
            interrupts,
            link,
            client.cancel_token(),
            interactive,
            *statements,
        )
        .await;
        let result = self.settle(&cancelled, result)?;
        let elapsed = started.elapsed();
        let (statement, messages) = match result {
            Ok(Some(done)) => done,
            Ok(None) => {
                return Err(StmtError::NotSent(
                    "Ctrl-C: cancelled before the statement ran".to_owned(),
                ));
            }
            Err(err) => return Err(self.statement_failed(sql, &err).await),
        };
        let types: Option<Vec<_>> = statement
            .as_ref()
            .map(|s| s.columns().iter().map(|c| c.type_().clone()).collect());
        self.display
            .show(sql, title, messages, types, elapsed, interactive)
            .map_err(StmtError::Local)
    }

    /// Turn a failed statement into its message; notice a lost connection.
    async fn statement_failed(&mut self, sql: &str, err: &tokio_postgres::Error) -> StmtError {
        if let Some(db) = err.as_db_error() {
            self.link.settle().await;
            // 57P01-03: the server ended the session (a failover, a restart,
            // an admin): the session is gone, not just the statement.
            if db.code().code().starts_with("57P") || self.link.is_closed() {
                self.link.drop_session();
                return StmtError::Lost(format!(
                    "the server ended the session during the statement: {} (SQLSTATE {}); a failover or restart does this. The statement's fate is unknown: it may or may not have run{}",
                    db.message(),
                    db.code().code(),
                    if self.interactive() {
                        "; it is back on the prompt line, not re-run: check before sending it again. The next statement reconnects with a fresh token"
                    } else {
                        ""
                    }
                ));
            }
            return StmtError::Server(server_error(db, sql));
        }
        let closed = err.is_closed() || self.link.is_closed();
        if closed || err.code().is_none() {
            self.link.drop_session();
            let next = if self.interactive() {
                "; its fate is unknown: it may or may not have run. It is back on the prompt line, not re-run: check before sending it again. The next statement reconnects with a fresh token"
            } else {
                "; the statement's fate is unknown: it may or may not have run"
            };
            return StmtError::Lost(format!(
                "the connection to the server was lost during the statement ({}){next}",
                crate::aws::error_chain(err)
            ));
        }
        StmtError::Server(err.to_string())
    }

    async fn run_meta(&mut self, meta: Meta, data: &mut dyn CopyData) -> Result<Flow, StmtError> {
        match meta {
            Meta::Quit => return Ok(Flow::Quit),
            Meta::Help => self.display.emit(&meta::help()).map_err(StmtError::Local)?,
            Meta::Expanded => {
                self.display.expanded = !self.display.expanded;
                let state = if self.display.expanded { "on" } else { "off" };
                if self.interactive() {
                    eprintln!("Expanded display is {state}.");
                }
            }
            Meta::Timing => {
                self.display.timing = !self.display.timing;
                let state = if self.display.timing { "on" } else { "off" };
                if self.interactive() {
                    eprintln!("Timing is {state}.");
                }
            }
            Meta::ConnInfo => {
                let text = self.link.conninfo();
                self.display.emit(&text).map_err(StmtError::Local)?;
            }
            Meta::Tables(pattern) => {
                let sql = catalog::tables_sql(pattern.as_deref(), &["r", "p"]);
                self.run_sql(&sql, Some("List of tables")).await?;
            }
            Meta::Describe(None) => {
                let sql = catalog::tables_sql(None, &["r", "p", "v", "m", "S", "f"]);
                self.run_sql(&sql, Some("List of relations")).await?;
            }
            Meta::Describe(Some(name)) => self.describe(&name).await?,
            Meta::Databases => {
                self.run_sql(catalog::DATABASES_SQL, Some("List of databases"))
                    .await?;
            }
            Meta::Roles => {
                self.run_sql(catalog::ROLES_SQL, Some("List of roles"))
                    .await?;
            }
            Meta::Include(path) => return self.include(&path).await,
            Meta::Output(path) => self.display.set_output(path).map_err(StmtError::Local)?,
            Meta::Copy(args) => self.slash_copy(&args, data).await?,
            Meta::Pset(option, value) => self.pset(&option, value)?,
        }
        Ok(Flow::Continue)
    }

    /// `\pset null TEXT`: how NULL looks in tables; without TEXT, say it.
    fn pset(&mut self, option: &str, value: Option<String>) -> Result<(), StmtError> {
        if option != "null" {
            return Err(StmtError::Local(
                Failure::usage(format!("\\pset {option} is not supported"))
                    .hint("rdsiam has \\pset null TEXT; \\x toggles expanded output, -o picks table, csv or json")
                    .into(),
            ));
        }
        let set = value.is_some();
        if let Some(text) = value {
            self.display.null = text;
        }
        if !set || self.interactive() {
            eprintln!("Null display is \"{}\".", self.display.null);
        }
        Ok(())
    }

    /// `\i FILE`: run its items. At the prompt Ctrl-C stops the file, not
    /// just the statement it cancelled, as in psql; so does a statement that
    /// was not sent (running on would run the rest without it). Either way
    /// it says so and returns [`Flow::Stopped`], which stops the files and
    /// the line around it too.
    async fn include(&mut self, path: &Path) -> Result<Flow, StmtError> {
        if self.depth >= MAX_INCLUDE_DEPTH {
            return Err(StmtError::Local(
                Failure::usage(format!(
                    "\\i {} nests deeper than {MAX_INCLUDE_DEPTH} files; does a file include itself?",
                    path.display()
                ))
                .into(),
            ));
        }
        let mut script = Script::open(path).map_err(StmtError::Local)?;
        self.depth += 1;
        let mut stopped = None;
        let mut n = 0;
        loop {
            n += 1;
            if self.interrupts.interrupted() {
                stopped = Some(format!("stopped by Ctrl-C before item {n}"));
                break;
            }
            let item = match script.next_item(self.link.std_strings()) {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(err) => {
                    self.depth -= 1;
                    return Err(StmtError::Local(err));
                }
            };
            match Box::pin(self.run_item(&item, &mut script)).await {
                Ok(Flow::Continue) => {}
                // `\q` inside a file ends that file, as in psql.
                Ok(Flow::Quit) => break,
                Ok(Flow::NotSent) => {
                    stopped = Some(format!("item {n} was not sent"));
                    break;
                }
                Ok(Flow::Stopped) => {
                    stopped = Some(format!("item {n} stopped"));
                    break;
                }
                Err(err) => {
                    self.depth -= 1;
                    return Err(StmtError::Local(err));
                }
            }
        }
        self.depth -= 1;
        match stopped {
            None => Ok(Flow::Continue),
            Some(why) => {
                eprintln!(
                    "\\i {}: {why}; the rest of the file did not run",
                    path.display(),
                );
                Ok(Flow::Stopped)
            }
        }
    }
}

/// A note about the session: plain at the prompt, `rdsiam: warning:` in a
/// script.
fn note(interactive: bool, message: &str) {
    if interactive {
        eprintln!("{message}");
    } else {
        warn(message);
    }
}
