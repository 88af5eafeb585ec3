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

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio_postgres::error::{DbError, ErrorPosition};
use tokio_postgres::{SimpleQueryMessage, Statement};

use crate::cli::SqlOutput;
use crate::commands::Resolved;
use crate::connect::{Connector, Session};
use crate::error::{Failure, Kind};
use crate::output::{print, warn};

use super::input::{self, Item, statement_text};
use super::meta::{self, Meta};
use super::render::{self, Column, ResultSet};

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

/// A session plus display settings; reconnects with a fresh token when the
/// connection was lost.
pub struct Runner {
    connector: Connector,
    resolved: Resolved,
    dbname: Option<String>,
    session: Option<Session>,
    /// A session existed and was lost: the next connect says what that cost.
    lost: bool,
    pub format: SqlOutput,
    pub expanded: bool,
    pub timing: bool,
    /// At the prompt: errors are shown and the session goes on; Ctrl-C cancels.
    pub interactive: bool,
    pub continue_on_error: bool,
    /// The last statement failed inside a transaction block.
    pub failed_tx: bool,
    /// Statements that failed so far (for `--continue-on-error`).
    pub errors: usize,
    statements: usize,
    out: Option<(PathBuf, File)>,
    depth: usize,
    interrupts: Interrupts,
    /// Ctrl-C was pressed since the current line started (in a script:
    /// since it started): what is left of it (and of any `\i` file) does
    /// not run.
    cancelled: bool,
}

/// Ctrl-C while statements run. At the prompt the line editor has the
/// terminal in raw mode, so Ctrl-C there is a keypress, not a signal; SIGINT
/// only arrives while something runs. A script listens from its start to
/// its end (once caught, SIGINT no longer kills the process by itself).
#[derive(Default)]
struct Interrupts {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Interrupts {
    /// Whether a SIGINT arrived since the last look (taking them all).
    /// Call inside the runtime.
    fn take_pending(&mut self) -> bool {
        #[cfg(unix)]
        if let Some(sig) = &mut self.signal {
            let mut any = false;
            while futures_util::FutureExt::now_or_never(sig.recv()).is_some() {
                any = true;
            }
            return any;
        }
        false
    }

    /// Whether nobody listens yet (so SIGINT still kills the process).
    fn signal_missing(&self) -> bool {
        #[cfg(unix)]
        return self.signal.is_none();
        #[cfg(not(unix))]
        true
    }

    /// The next SIGINT; never, when not listening.
    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(sig) = &mut self.signal
            && sig.recv().await.is_some()
        {
            return;
        }
        std::future::pending::<()>().await
    }
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
    pub fn new(connector: Connector, resolved: Resolved, dbname: Option<String>) -> Runner {
        Runner {
            connector,
            resolved,
            dbname,
            session: None,
            lost: false,
            format: SqlOutput::Table,
            expanded: false,
            timing: false,
            interactive: false,
            continue_on_error: false,
            failed_tx: false,
            errors: 0,
            statements: 0,
            out: None,
            depth: 0,
            interrupts: Interrupts::default(),
            cancelled: false,
        }
    }

    pub fn user(&self) -> &str {
        &self.resolved.target.user
    }

    /// The database name as the server sees it (default: the user's name).
    pub fn database(&self) -> &str {
        self.dbname.as_deref().unwrap_or(&self.resolved.target.user)
    }

    /// Listen for Ctrl-C from now on: while a query runs it becomes a cancel
    /// request instead of killing the process. Call inside the runtime.
    pub fn catch_interrupts(&mut self) {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::interrupt()) {
                Ok(sig) => self.interrupts.signal = Some(sig),
                Err(err) => warn(&format!("Ctrl-C will not cancel queries: {err}")),
            }
        }
    }

    /// Log in now (a fresh token), so a bad login fails before any input.
    pub async fn connect(&mut self) -> Result<()> {
        let session = self
            .connector
            .connect(&self.resolved, self.dbname.as_deref())
            .await?;
        self.session = Some(session);
        Ok(())
    }

    /// Make sure there is a live session, reconnecting (new token) when the
    /// last one died.
    async fn ensure_session(&mut self) -> Result<(), StmtError> {
        // Let the connection task see an EOF that arrived while we waited
        // at the prompt (the runtime only runs inside block_on).
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        if let Some(s) = &self.session
            && (s.client.is_closed() || s.task.is_finished())
        {
            self.session = None;
            self.lost = true;
            self.note("the connection to the server was lost; reconnecting with a fresh token");
        }
        if self.session.is_none() {
            if !self.interactive && self.lost {
                return Err(StmtError::Lost(
                    "the connection to the server was lost; stopping so the rest of the script does not run outside its session".to_owned(),
                ));
            }
            // Ctrl-C abandons a reconnect that hangs (a stalled network
            // waits for the connect timeout otherwise).
            let Runner {
                connector,
                resolved,
                dbname,
                interrupts,
                interactive,
                ..
            } = self;
            let connect = connector.connect(resolved, dbname.as_deref());
            let connected = if *interactive {
                tokio::select! {
                    result = connect => Some(result),
                    () = interrupts.next() => None,
                }
            } else {
                Some(connect.await)
            };
            match connected {
                Some(Ok(session)) => {
                    self.session = Some(session);
                    if std::mem::take(&mut self.lost) {
                        self.failed_tx = false;
                        self.note("reconnected; session state was lost: any open transaction was rolled back, SET values and temporary tables are gone");
                    }
                }
                Some(Err(err)) => {
                    return Err(StmtError::NotSent(format!(
                        "{}\nrdsiam: not connected, so the statement was not sent",
                        crate::error::render(&err)
                    )));
                }
                None => {
                    self.cancelled = true;
                    return Err(StmtError::NotSent(
                        "rdsiam: reconnecting interrupted by Ctrl-C; the statement was not sent"
                            .to_owned(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Start a line at the prompt: SIGINTs still queued from before (say,
    /// pressed while the last result was printed) are not meant for it.
    fn forget_interrupts(&mut self) {
        self.interrupts.take_pending();
        self.cancelled = false;
    }

    /// Whether Ctrl-C was pressed since the line started, so what is left
    /// of it (and of `\i` files) must not run.
    fn interrupted(&mut self) -> bool {
        if self.interrupts.take_pending() {
            self.cancelled = true;
        }
        self.cancelled
    }

    /// Run the complete items of one prompt line in order. Ctrl-C stops
    /// the line after the statement it cancelled; a statement that was not
    /// sent stops it too. Either way the caller gives back, from
    /// [`LineEnd::NotRun`], what did not run.
    pub async fn run_line(&mut self, items: &[Item]) -> Result<LineEnd> {
        self.forget_interrupts();
        for (n, item) in items.iter().enumerate() {
            if self.interrupted() {
                eprintln!("Ctrl-C: the rest of the input was not run");
                return Ok(LineEnd::NotRun(n));
            }
            match self.run_item(item).await? {
                Flow::Quit => return Ok(LineEnd::Quit),
                Flow::NotSent => return Ok(LineEnd::NotRun(n)),
                Flow::Stopped if n + 1 < items.len() => return Ok(LineEnd::NotRun(n + 1)),
                Flow::Stopped | Flow::Continue => {}
            }
        }
        Ok(LineEnd::Done)
    }

    fn note(&self, message: &str) {
        if self.interactive {
            eprintln!("{message}");
        } else {
            warn(message);
        }
    }

    /// Run a whole script; `Err` stops it (with the exit code inside).
    /// Ctrl-C cancels the running statement and stops the script (exit 1).
    pub async fn run_script(&mut self, items: &[Item]) -> Result<()> {
        if !self.interactive && self.interrupts.signal_missing() {
            self.catch_interrupts();
        }
        for item in items {
            self.stop_if_interrupted()?;
            if self.run_item(item).await? == Flow::Quit {
                break;
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
        if self.interrupted() {
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
    pub async fn run_item(&mut self, item: &Item) -> Result<Flow> {
        let result = match item {
            Item::Meta(line) => match line.parse::<Meta>() {
                Ok(meta) => Box::pin(self.run_meta(meta)).await,
                Err(err) => Err(StmtError::Local(Failure::usage(err.0).into())),
            },
            Item::Sql(raw) => {
                if input::is_blank(raw) {
                    return Ok(Flow::Continue);
                }
                self.statements += 1;
                self.run_sql(statement_text(raw), None)
                    .await
                    .map(|()| Flow::Continue)
            }
        };
        let err = match result {
            Ok(flow) => return Ok(flow),
            Err(err) => err,
        };
        self.errors += 1;
        if self.interactive {
            match err {
                StmtError::Server(text) | StmtError::Lost(text) => eprintln!("{text}"),
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
        if self.cancelled {
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
        match err {
            StmtError::Abandoned => Err(Failure::new(
                Kind::Other,
                format!("statement {} abandoned by Ctrl-C", self.statements),
            )
            .into()),
            StmtError::Lost(text) | StmtError::NotSent(text) => {
                Err(Failure::network(text.trim_start_matches("rdsiam: ").to_owned()).into())
            }
            StmtError::Local(err) if !self.continue_on_error => Err(err),
            StmtError::Local(err) => {
                eprintln!("{}", crate::error::render(&err));
                Ok(Flow::Continue)
            }
            StmtError::Server(text) if !self.continue_on_error => Err(Failure::new(
                Kind::Other,
                format!("statement {} failed: {text}", self.statements),
            )
            .hint("stopped there; pass --continue-on-error to run the rest anyway")
            .into()),
            StmtError::Server(text) => {
                eprintln!("rdsiam: statement {} failed: {text}", self.statements);
                Ok(Flow::Continue)
            }
        }
    }

    /// Run one statement and show its result; `title` heads meta output.
    async fn run_sql(&mut self, sql: &str, title: Option<&str>) -> Result<(), StmtError> {
        if self.interrupted() {
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
        let describe = self.format == SqlOutput::Json && returns_rows(sql);
        self.ensure_session().await?;
        let started = Instant::now();
        let Runner {
            session,
            connector,
            resolved,
            interrupts,
            interactive,
            statements,
            ..
        } = self;
        let client = &session.as_ref().expect("ensure_session connected").client;
        // Set when Ctrl-C sent a cancel request: a Describe that finished
        // anyway must not be followed by its statement.
        let cancelled = std::cell::Cell::new(false);
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
        // can block (behind a lock, say) and Ctrl-C must reach both. (Not
        // listening, `interrupts.next()` never fires.) `None`: a script's
        // second Ctrl-C stopped the wait.
        let result = {
            let cancel = client.cancel_token();
            let mut work = std::pin::pin!(work);
            loop {
                tokio::select! {
                    result = &mut work => break Some(result),
                    () = interrupts.next() => {
                        if !*interactive && cancelled.get() {
                            break None;
                        }
                        cancelled.set(true);
                        if *interactive {
                            eprintln!("cancelling the query…");
                        } else {
                            eprintln!(
                                "rdsiam: Ctrl-C: cancelling statement {statements} (Ctrl-C again stops without waiting)"
                            );
                        }
                        let request = connector.cancel(resolved, &cancel);
                        // At the prompt Ctrl-C again sends another cancel once
                        // this one is done; in a script it stops at once.
                        let sent = if *interactive {
                            Some(request.await)
                        } else {
                            tokio::select! {
                                sent = request => Some(sent),
                                () = interrupts.next() => None,
                            }
                        };
                        match sent {
                            Some(Ok(())) => {}
                            Some(Err(err)) => eprintln!("{}", crate::error::render(&err)),
                            None => break None,
                        }
                    }
                }
            }
        };
        if cancelled.get() {
            self.cancelled = true;
        }
        let Some(result) = result else {
            // The statement may still be running: this session is not to
            // be trusted with another one.
            self.session = None;
            self.lost = true;
            return Err(StmtError::Abandoned);
        };
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
        self.failed_tx = false;
        let types: Option<Vec<_>> = statement
            .as_ref()
            .map(|s| s.columns().iter().map(|c| c.type_().clone()).collect());
        self.show(sql, title, messages, types, elapsed)
            .map_err(StmtError::Local)
    }

    /// Turn a failed statement into its message; notice a lost connection
    /// and, at the prompt, whether a transaction is now failed.
    async fn statement_failed(&mut self, sql: &str, err: &tokio_postgres::Error) -> StmtError {
        if let Some(db) = err.as_db_error() {
            let text = server_error(db, sql);
            if self.interactive {
                self.failed_tx = self.in_failed_transaction().await;
            }
            return StmtError::Server(text);
        }
        let closed = err.is_closed()
            || self
                .session
                .as_ref()
                .is_none_or(|s| s.client.is_closed() || s.task.is_finished());
        if closed || err.code().is_none() {
            self.session = None;
            self.lost = true;
            let next = if self.interactive {
                "; it may or may not have run. The next statement reconnects with a fresh token (press Up to get it back)"
            } else {
                "; it may or may not have run"
            };
            return StmtError::Lost(format!(
                "the connection to the server was lost during the statement ({}){next}",
                crate::aws::error_chain(err)
            ));
        }
        StmtError::Server(err.to_string())
    }

    /// `SELECT 1` fails with 25P02 exactly when the transaction is aborted.
    async fn in_failed_transaction(&self) -> bool {
        let Some(session) = &self.session else {
            return false;
        };
        match session.client.simple_query("SELECT 1").await {
            Ok(_) => false,
            Err(err) => {
                err.code() == Some(&tokio_postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION)
            }
        }
    }

    fn show(
        &mut self,
        sql: &str,
        title: Option<&str>,
        messages: Vec<SimpleQueryMessage>,
        types: Option<Vec<tokio_postgres::types::Type>>,
        elapsed: Duration,
    ) -> Result<()> {
        let mut sets: Vec<(Option<ResultSet>, u64)> = Vec::new();
        let mut current: Option<ResultSet> = None;
        for message in messages {
            match message {
                SimpleQueryMessage::RowDescription(columns) => {
                    current = Some(ResultSet {
                        columns: columns
                            .iter()
                            .map(|c| Column {
                                name: c.name().to_owned(),
                                ty: None,
                            })
                            .collect(),
                        rows: Vec::new(),
                    });
                }
                SimpleQueryMessage::Row(row) => {
                    let set = current.get_or_insert_with(|| ResultSet {
                        columns: row
                            .columns()
                            .iter()
                            .map(|c| Column {
                                name: c.name().to_owned(),
                                ty: None,
                            })
                            .collect(),
                        rows: Vec::new(),
                    });
                    set.rows.push(
                        (0..row.len())
                            .map(|i| row.get(i).map(str::to_owned))
                            .collect(),
                    );
                }
                SimpleQueryMessage::CommandComplete(n) => sets.push((current.take(), n)),
                _ => {}
            }
        }
        if let Some(set) = current.take() {
            let n = set.rows.len() as u64;
            sets.push((Some(set), n));
        }
        // Types apply when the Describe matched what ran: one result set
        // with the same number of columns.
        if let (Some(types), [(Some(set), _)]) = (types, sets.as_mut_slice())
            && types.len() == set.columns.len()
        {
            for (col, ty) in set.columns.iter_mut().zip(types) {
                col.ty = Some(ty);
            }
        }
        let mut text = String::new();
        for (set, n) in &sets {
            match (self.format, set) {
                (SqlOutput::Json, Some(set)) => text.push_str(&render::json(set)),
                (SqlOutput::Csv, Some(set)) => text.push_str(&render::csv(set)),
                (SqlOutput::Table, Some(set)) => {
                    if let Some(title) = title {
                        text.push_str(title);
                        text.push('\n');
                    }
                    if self.expanded {
                        text.push_str(&render::expanded(set));
                    } else {
                        text.push_str(&render::table(
                            set,
                            self.out.is_none() && std::io::stdout().is_terminal(),
                        ));
                    }
                    let rows = if set.rows.len() == 1 { "row" } else { "rows" };
                    text.push_str(&format!(
                        "({} {rows}{})\n",
                        set.rows.len(),
                        self.time_note(elapsed)
                    ));
                }
                (SqlOutput::Table, None) => {
                    text.push_str(&format!(
                        "{}{}\n",
                        command_tag(sql, *n),
                        self.time_note(elapsed)
                    ));
                }
                _ => {}
            }
        }
        if self.interactive && self.format == SqlOutput::Table && !text.is_empty() {
            text.push('\n');
        }
        self.emit(&text)
    }

    fn time_note(&self, elapsed: Duration) -> String {
        if self.timing {
            format!(", {:.3} ms", elapsed.as_secs_f64() * 1000.0)
        } else {
            String::new()
        }
    }

    /// Results go to the `\o` file when one is set, else stdout.
    fn emit(&mut self, text: &str) -> Result<()> {
        match &mut self.out {
            Some((path, file)) => file
                .write_all(text.as_bytes())
                .with_context(|| format!("writing to {}", path.display())),
            None => print(text),
        }
    }

    async fn run_meta(&mut self, meta: Meta) -> Result<Flow, StmtError> {
        match meta {
            Meta::Quit => return Ok(Flow::Quit),
            Meta::Help => self.emit(&meta::help()).map_err(StmtError::Local)?,
            Meta::Expanded => {
                self.expanded = !self.expanded;
                let state = if self.expanded { "on" } else { "off" };
                if self.interactive {
                    eprintln!("Expanded display is {state}.");
                }
            }
            Meta::Timing => {
                self.timing = !self.timing;
                let state = if self.timing { "on" } else { "off" };
                if self.interactive {
                    eprintln!("Timing is {state}.");
                }
            }
            Meta::ConnInfo => {
                let text = self.conninfo();
                self.emit(&text).map_err(StmtError::Local)?;
            }
            Meta::Tables(pattern) => {
                let sql = tables_sql(pattern.as_deref(), &["r", "p"]);
                self.run_sql(&sql, Some("List of tables")).await?;
            }
            Meta::Describe(None) => {
                let sql = tables_sql(None, &["r", "p", "v", "m", "S", "f"]);
                self.run_sql(&sql, Some("List of relations")).await?;
            }
            Meta::Describe(Some(name)) => self.describe(&name).await?,
            Meta::Databases => {
                self.run_sql(DATABASES_SQL, Some("List of databases"))
                    .await?;
            }
            Meta::Roles => self.run_sql(ROLES_SQL, Some("List of roles")).await?,
            Meta::Include(path) => return self.include(&path).await,
            Meta::Output(None) => self.out = None,
            Meta::Output(Some(path)) => {
                let file = File::create(&path)
                    .with_context(|| {
                        format!(
                            "cannot write {}: check the path and permissions",
                            path.display()
                        )
                    })
                    .map_err(StmtError::Local)?;
                self.out = Some((path, file));
            }
        }
        Ok(Flow::Continue)
    }

    fn conninfo(&self) -> String {
        let e = &self.resolved.endpoint;
        let via = self
            .connector
            .via
            .as_ref()
            .map(|v| format!(" via {v}"))
            .unwrap_or_default();
        let state = match &self.session {
            Some(s) if !s.client.is_closed() => "connected",
            _ => "not connected (the next statement reconnects)",
        };
        format!(
            "{state}: database \"{}\" as user \"{}\" at {}:{}{via} ({} {}, region {}), TLS sslmode {}, IAM token minted per connection\n",
            self.database(),
            self.user(),
            e.host,
            e.port,
            e.kind,
            e.name,
            self.resolved.aws.region,
            self.connector.sslmode.as_str(),
        )
    }

    async fn describe(&mut self, name: &str) -> Result<(), StmtError> {
        let lit = literal(name);
        self.ensure_session().await?;
        let found = self
            .session
            .as_ref()
            .expect("ensure_session connected")
            .client
            .simple_query(&format!(
                "SELECT c.relkind::text FROM pg_class c WHERE c.oid = to_regclass({lit})"
            ))
            .await;
        let found = match found {
            Ok(messages) => messages.into_iter().find_map(|m| match m {
                SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                _ => None,
            }),
            Err(err) => return Err(self.statement_failed("", &err).await),
        };
        let Some(kind) = found else {
            return Err(StmtError::Local(
                Failure::usage(format!("no relation named \"{name}\""))
                    .hint("\\dt lists tables, \\d lists every relation")
                    .into(),
            ));
        };
        let what = match kind.as_str() {
            "r" | "p" => "Table",
            "v" => "View",
            "m" => "Materialized view",
            "S" => "Sequence",
            "i" | "I" => "Index",
            "f" => "Foreign table",
            _ => "Relation",
        };
        let columns = format!(
            "SELECT a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type, \
             CASE WHEN a.attnotnull THEN 'not null' ELSE '' END AS nullable, \
             pg_get_expr(d.adbin, d.adrelid) AS default \
             FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE a.attrelid = to_regclass({lit}) AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum"
        );
        self.run_sql(&columns, Some(&format!("{what} \"{name}\"")))
            .await?;
        if matches!(kind.as_str(), "r" | "p" | "m") {
            let indexes = format!(
                "SELECT i.indexrelid::regclass::text AS index, pg_get_indexdef(i.indexrelid) AS definition \
                 FROM pg_index i WHERE i.indrelid = to_regclass({lit}) ORDER BY 1"
            );
            self.run_sql(&indexes, Some("Indexes")).await?;
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
        let text = read_script(path).map_err(StmtError::Local)?;
        let items = input::split_script(&text);
        self.depth += 1;
        let mut stopped = None;
        for (n, item) in items.iter().enumerate() {
            if self.interrupted() {
                stopped = Some(format!("stopped by Ctrl-C before item {}", n + 1));
                break;
            }
            match Box::pin(self.run_item(item)).await {
                Ok(Flow::Continue) => {}
                // `\q` inside a file ends that file, as in psql.
                Ok(Flow::Quit) => break,
                Ok(Flow::NotSent) => {
                    stopped = Some(format!("item {} was not sent", n + 1));
                    break;
                }
                Ok(Flow::Stopped) => {
                    stopped = Some(format!("item {} stopped", n + 1));
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
                    "\\i {}: {why} (of {}); the rest of the file did not run",
                    path.display(),
                    items.len()
                );
                Ok(Flow::Stopped)
            }
        }
    }
}

/// Read a script file, with a message that says what to do.
pub fn read_script(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|err| {
        Failure::usage(format!("cannot read {}: {err}", path.display()))
            .hint("check the path; -f - reads the script from stdin")
            .into()
    })
}

/// The server's error the way an operator needs it: SQLSTATE, message, the
/// statement line with a caret at the position, detail, hint, context.
pub fn server_error(db: &DbError, sql: &str) -> String {
    let mut out = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    if let Some(ErrorPosition::Original(pos)) = db.position()
        && let Some((line_no, line, col)) = locate(sql, *pos as usize)
    {
        let prefix = format!("LINE {line_no}: ");
        out.push_str(&format!(
            "\n  {prefix}{line}\n  {}^",
            " ".repeat(prefix.chars().count() + col)
        ));
    }
    if let Some(detail) = db.detail() {
        out.push_str(&format!("\n  DETAIL: {detail}"));
    }
    if let Some(hint) = db.hint() {
        out.push_str(&format!("\n  HINT: {hint}"));
    }
    if let Some(context) = db.where_() {
        out.push_str(&format!("\n  CONTEXT: {context}"));
    }
    out
}

/// 1-based character `pos` → (line number, that line, column in chars).
fn locate(sql: &str, pos: usize) -> Option<(usize, &str, usize)> {
    let offset = sql
        .char_indices()
        .nth(pos.checked_sub(1)?)
        .map(|(i, _)| i)?;
    let line_start = sql[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = sql[offset..].find('\n').map_or(sql.len(), |i| offset + i);
    let line_no = sql[..offset].matches('\n').count() + 1;
    let col = sql[line_start..offset].chars().count();
    Some((line_no, &sql[line_start..line_end], col))
}

/// What a statement without a result set did, from its first word and the
/// row count (the simple protocol gives us the count, not the tag).
/// The statement's first word (its verb), or "" when there is none.
fn first_word(sql: &str) -> &str {
    sql.split(|c: char| !c.is_ascii_alphabetic())
        .find(|w| !w.is_empty())
        .unwrap_or("")
}

fn command_tag(sql: &str, rows: u64) -> String {
    let verb = match first_word(sql) {
        "" => "OK".to_owned(),
        word => word.to_uppercase(),
    };
    match verb.as_str() {
        "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "COPY" | "SELECT" | "FETCH" | "MOVE" => {
            format!("{verb} {rows}")
        }
        _ => verb,
    }
}

/// Whether a statement can return rows, so its column types are worth a
/// Describe. Others (DDL, `CREATE FUNCTION … BEGIN ATOMIC`) skip it.
fn returns_rows(sql: &str) -> bool {
    let lower = sql.to_lowercase();
    match first_word(&lower) {
        "select" | "with" | "values" | "table" | "show" | "explain" | "fetch" => true,
        "insert" | "update" | "delete" | "merge" => lower.contains("returning"),
        _ => false,
    }
}

/// A SQL string literal (standard_conforming_strings, the default since 9.1).
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `\dt` / `\d`: relations of `kinds`, visible in the search path unless a
/// pattern names them (`*` and `?` as in psql; `schema.name` splits).
fn tables_sql(pattern: Option<&str>, kinds: &[&str]) -> String {
    let kinds: Vec<String> = kinds.iter().map(|k| literal(k)).collect();
    let mut filter = String::new();
    match pattern {
        None => filter.push_str(" AND pg_table_is_visible(c.oid)"),
        Some(p) => {
            let like = |s: &str| literal(&s.replace('*', "%").replace('?', "_"));
            match p.split_once('.') {
                Some((schema, name)) => filter.push_str(&format!(
                    " AND n.nspname LIKE {} AND c.relname LIKE {}",
                    like(schema),
                    like(name)
                )),
                None => filter.push_str(&format!(" AND c.relname LIKE {}", like(p))),
            }
        }
    }
    format!(
        "SELECT n.nspname AS schema, c.relname AS name, \
         CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' WHEN 'v' THEN 'view' \
         WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table' END AS type, \
         pg_get_userbyid(c.relowner) AS owner \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ({}) AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
         AND n.nspname !~ '^pg_toast'{filter} ORDER BY 1, 2",
        kinds.join(", ")
    )
}

const DATABASES_SQL: &str = "SELECT datname AS name, pg_get_userbyid(datdba) AS owner, \
pg_encoding_to_char(encoding) AS encoding, datallowconn AS allow_connections \
FROM pg_database ORDER BY 1";

const ROLES_SQL: &str = "SELECT r.rolname AS role, concat_ws(', ', \
CASE WHEN r.rolsuper THEN 'superuser' END, CASE WHEN r.rolcreaterole THEN 'create role' END, \
CASE WHEN r.rolcreatedb THEN 'create db' END, CASE WHEN NOT r.rolcanlogin THEN 'cannot login' END, \
CASE WHEN r.rolreplication THEN 'replication' END, CASE WHEN r.rolbypassrls THEN 'bypass rls' END) AS attributes, \
ARRAY(SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON m.roleid = b.oid \
WHERE m.member = r.oid ORDER BY 1) AS member_of \
FROM pg_roles r WHERE r.rolname !~ '^pg_' ORDER BY 1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_error_positions_by_character() {
        assert_eq!(
            locate("select * from nope", 15),
            Some((1, "select * from nope", 14))
        );
        assert_eq!(
            locate("select 1,\n  ü, nope", 16),
            Some((2, "  ü, nope", 5))
        );
        assert_eq!(locate("x", 5), None);
        assert_eq!(locate("x", 0), None);
    }

    #[test]
    fn command_tags_from_the_verb() {
        assert_eq!(command_tag("insert into t values (1)", 1), "INSERT 1");
        assert_eq!(command_tag("  create table t (a int)", 0), "CREATE");
        assert_eq!(command_tag("", 0), "OK");
    }

    #[test]
    fn only_row_returning_statements_are_described() {
        assert!(returns_rows("SELECT 1"));
        assert!(returns_rows("(select 1)"));
        assert!(returns_rows("with x as (select 1) select * from x"));
        assert!(returns_rows("insert into t values (1) returning id"));
        assert!(!returns_rows("insert into t values (1)"));
        assert!(!returns_rows(
            "create function f() returns int begin atomic select 1; end"
        ));
        assert!(!returns_rows("begin"));
    }

    #[test]
    fn table_patterns() {
        assert!(tables_sql(None, &["r"]).contains("pg_table_is_visible"));
        let sql = tables_sql(Some("pub*.ord?r's"), &["r"]);
        assert!(sql.contains("n.nspname LIKE 'pub%'"), "{sql}");
        assert!(sql.contains("c.relname LIKE 'ord_r''s'"), "{sql}");
    }
}
