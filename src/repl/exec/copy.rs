//! COPY as psql does it (issue 14): `COPY … TO STDOUT` data goes to the
//! output, `COPY … FROM STDIN` data comes from the script after the
//! statement (up to `\.`) or, at the prompt, from the lines typed next; and
//! `\copy`, psql's client-side copy, which turns into one of those two with
//! the data read from or written to a file on this machine (the form RDS
//! needs: the server has no access to our files).
//!
//! tokio-postgres runs COPY over the extended protocol (Parse, Bind,
//! Execute), so the statement must be recognised before it is sent: its
//! first word is COPY and, outside quotes and parentheses, it says
//! `FROM STDIN` or `TO STDOUT`.

use std::cell::Cell;
use std::path::PathBuf;

use anyhow::Context as _;
use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, TryStreamExt};
// Files and stdout through tokio: a slow disk or a full pipe must not stop
// the runtime the connection's task runs on.
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::Failure;

use super::super::input::{Lexer, top_level_words};
use super::super::script::{CopyData, StdinData};
use super::{Runner, StmtError, interrupt};

/// How much COPY data goes in one message.
const CHUNK: usize = 64 * 1024;

/// Which way a COPY statement moves data through the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Direction {
    /// `COPY … FROM STDIN`
    In,
    /// `COPY … TO STDOUT`
    Out,
}

/// Whether `sql` is a COPY through the client, and which way.
pub(super) fn direction(sql: &str, lexer: Lexer) -> Option<Direction> {
    let words = top_level_words(sql, lexer);
    if !words.first()?.eq_ignore_ascii_case("copy") {
        return None;
    }
    words.windows(2).find_map(|pair| {
        if pair[0].eq_ignore_ascii_case("from") && pair[1].eq_ignore_ascii_case("stdin") {
            Some(Direction::In)
        } else if pair[0].eq_ignore_ascii_case("to") && pair[1].eq_ignore_ascii_case("stdout") {
            Some(Direction::Out)
        } else {
            None
        }
    })
}

/// Where `\copy` reads or writes.
#[derive(Debug, PartialEq, Eq)]
enum Place {
    File(PathBuf),
    /// `stdin`/`stdout`: the script's own input, or the query output.
    Script,
    /// `pstdin`/`pstdout`: this process's stdin or stdout.
    Process,
}

/// A parsed `\copy`.
#[derive(Debug, PartialEq, Eq)]
struct SlashCopy {
    sql: String,
    direction: Direction,
    place: Place,
}

/// `\copy TABLE [(COLUMNS)] | (QUERY) FROM|TO 'FILE'|FILE|STDIN|STDOUT|PSTDIN|PSTDOUT [OPTIONS]`
/// → the COPY to send and where the data goes.
fn parse_slash_copy(args: &str) -> Result<SlashCopy, String> {
    let usage = "\\copy TABLE|(QUERY) FROM|TO 'FILE'|STDIN|STDOUT [WITH (…)]";
    let words = top_level_words(args, Lexer::default());
    let keyword = words
        .iter()
        .skip(1)
        .find(|w| w.eq_ignore_ascii_case("from") || w.eq_ignore_ascii_case("to"))
        .or_else(|| {
            // `\copy (query) to …`: the query is one parenthesised token.
            words
                .first()
                .filter(|w| w.eq_ignore_ascii_case("from") || w.eq_ignore_ascii_case("to"))
                .filter(|_| args.trim_start().starts_with('('))
        })
        .ok_or_else(|| format!("\\copy needs FROM or TO: {usage}"))?;
    let at = keyword.as_ptr() as usize - args.as_ptr() as usize;
    let what = args[..at].trim();
    if what.is_empty() {
        return Err(format!("\\copy needs a table or a (query): {usage}"));
    }
    let direction = if keyword.eq_ignore_ascii_case("from") {
        Direction::In
    } else {
        Direction::Out
    };
    let after = args[at + keyword.len()..].trim_start();
    let (place, rest) = if let Some(quoted) = after.strip_prefix('\'') {
        // 'file name' with '' for a quote.
        let mut name = String::new();
        let mut chars = quoted.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if quoted[i + 1..].starts_with('\'') {
                    name.push('\'');
                    chars.next();
                } else {
                    end = Some(i + 1);
                    break;
                }
            } else {
                name.push(c);
            }
        }
        let end =
            end.ok_or_else(|| format!("\\copy: the file name's quote is not closed: {usage}"))?;
        (Place::File(PathBuf::from(name)), &quoted[end..])
    } else {
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        let token = &after[..end];
        let place = match token.to_ascii_lowercase().as_str() {
            "" => return Err(format!("\\copy needs a file, STDIN or STDOUT: {usage}")),
            "stdin" | "stdout" => Place::Script,
            "pstdin" | "pstdout" => Place::Process,
            "program" => {
                return Err(
                    "\\copy … PROGRAM is not supported: run the program yourself and pipe it through STDIN or STDOUT"
                        .to_owned(),
                );
            }
            _ => Place::File(PathBuf::from(token)),
        };
        (place, &after[end..])
    };
    let lower = after.to_ascii_lowercase();
    if (direction == Direction::In && (lower.starts_with("stdout") || lower.starts_with("pstdout")))
        || (direction == Direction::Out
            && (lower.starts_with("stdin") || lower.starts_with("pstdin")))
    {
        return Err(format!(
            "\\copy: FROM goes with STDIN and TO with STDOUT: {usage}"
        ));
    }
    let end = match direction {
        Direction::In => "FROM STDIN",
        Direction::Out => "TO STDOUT",
    };
    let rest = rest.trim();
    let sql = if rest.is_empty() {
        format!("COPY {what} {end}")
    } else {
        format!("COPY {what} {end} {rest}")
    };
    Ok(SlashCopy {
        sql,
        direction,
        place,
    })
}

/// Where COPY IN data comes from.
enum Source<'a> {
    Lines(&'a mut dyn CopyData),
    File(File, PathBuf),
}

/// Where COPY OUT data goes.
enum Sink {
    Output,
    Stdout,
    File(File, PathBuf),
}

/// A COPY that failed on our side or on the server's.
enum CopyError {
    Server(tokio_postgres::Error),
    Local(anyhow::Error),
}

impl Runner {
    /// `\copy`: the COPY it stands for, with the data from or to a file
    /// here, the script's input/output, or this process's stdin/stdout.
    pub(super) async fn slash_copy(
        &mut self,
        args: &str,
        data: &mut dyn CopyData,
    ) -> Result<(), StmtError> {
        let copy = parse_slash_copy(args)
            .map_err(|message| StmtError::Local(Failure::usage(message).into()))?;
        self.statements += 1;
        let local = |err: anyhow::Error| StmtError::Local(err);
        match (copy.direction, copy.place) {
            (Direction::In, Place::Script) => self.copy_from(&copy.sql, Source::Lines(data)).await,
            (Direction::In, Place::Process) => {
                self.copy_from(&copy.sql, Source::Lines(&mut StdinData))
                    .await
            }
            (Direction::In, Place::File(path)) => {
                let file = File::open(&path)
                    .await
                    .map_err(|err| {
                        Failure::usage(format!("\\copy: cannot read {}: {err}", path.display()))
                            .hint("\\copy reads the file on this machine; check the path")
                            .into()
                    })
                    .map_err(local)?;
                self.copy_from(&copy.sql, Source::File(file, path)).await
            }
            (Direction::Out, Place::Script) => self.copy_to(&copy.sql, Sink::Output).await,
            (Direction::Out, Place::Process) => self.copy_to(&copy.sql, Sink::Stdout).await,
            (Direction::Out, Place::File(path)) => {
                let file = File::create(&path)
                    .await
                    .map_err(|err| {
                        Failure::usage(format!("\\copy: cannot write {}: {err}", path.display()))
                            .hint("\\copy writes the file on this machine; check the path and permissions")
                            .into()
                    })
                    .map_err(local)?;
                self.copy_to(&copy.sql, Sink::File(file, path)).await
            }
        }
    }

    /// `COPY … FROM STDIN` in SQL: data from the script or the prompt.
    pub(super) async fn copy_in(
        &mut self,
        sql: &str,
        data: &mut dyn CopyData,
    ) -> Result<(), StmtError> {
        self.copy_from(sql, Source::Lines(data)).await
    }

    /// `COPY … TO STDOUT` in SQL: data to the output (or the `\o` file).
    pub(super) async fn copy_out(&mut self, sql: &str) -> Result<(), StmtError> {
        self.copy_to(sql, Sink::Output).await
    }

    async fn copy_from(&mut self, sql: &str, source: Source<'_>) -> Result<(), StmtError> {
        if self.interrupts.interrupted() {
            return Err(StmtError::NotSent(
                "Ctrl-C: the statement was not sent".to_owned(),
            ));
        }
        self.ensure_session().await?;
        let client = self.link.client().expect("ensure_session connected");
        // If the server refuses the COPY, no data is read: as in psql, the
        // lines that follow are then read as statements.
        let sink = match client.copy_in::<_, Bytes>(sql).await {
            Ok(sink) => sink,
            Err(err) => return Err(self.statement_failed(sql, &err).await),
        };
        let mut sink = std::pin::pin!(sink);
        let mut chunk = BytesMut::with_capacity(CHUNK);
        let result: Result<u64, CopyError> = async {
            match source {
                Source::Lines(data) => {
                    data.start().map_err(CopyError::Local)?;
                    let read = read_lines(data, &mut sink, &mut chunk, &mut self.interrupts).await;
                    data.end();
                    read?;
                }
                Source::File(mut file, path) => loop {
                    chunk.resize(CHUNK, 0);
                    let n = file
                        .read(&mut chunk)
                        .await
                        .with_context(|| format!("\\copy: reading {}", path.display()))
                        .map_err(CopyError::Local)?;
                    chunk.truncate(n);
                    if n == 0 {
                        break;
                    }
                    sink.send(chunk.split().freeze())
                        .await
                        .map_err(CopyError::Server)?;
                    if self.interrupts.interrupted() {
                        return Err(CopyError::Local(anyhow::anyhow!(
                            "\\copy stopped by Ctrl-C; no row was copied"
                        )));
                    }
                },
            }
            if !chunk.is_empty() {
                sink.send(chunk.split().freeze())
                    .await
                    .map_err(CopyError::Server)?;
            }
            sink.as_mut().finish().await.map_err(CopyError::Server)
        }
        .await;
        match result {
            Ok(rows) => self
                .display
                .tag(&format!("COPY {rows}"))
                .map_err(StmtError::Local),
            Err(CopyError::Server(err)) => Err(self.statement_failed(sql, &err).await),
            // Dropping the sink unfinished aborts the COPY on the server.
            Err(CopyError::Local(err)) => Err(StmtError::Local(err)),
        }
    }

    async fn copy_to(&mut self, sql: &str, mut sink: Sink) -> Result<(), StmtError> {
        if self.interrupts.interrupted() {
            return Err(StmtError::NotSent(
                "Ctrl-C: the statement was not sent".to_owned(),
            ));
        }
        self.ensure_session().await?;
        let interactive = self.interactive();
        let Runner {
            link,
            interrupts,
            display,
            statements,
            ..
        } = self;
        let client = link.client().expect("ensure_session connected");
        let cancelled = Cell::new(false);
        let work = async {
            let stream = client.copy_out(sql).await.map_err(CopyError::Server)?;
            let mut stream = std::pin::pin!(stream);
            while let Some(data) = stream.try_next().await.map_err(CopyError::Server)? {
                let written = match &mut sink {
                    Sink::Output => display.emit_bytes(&data),
                    Sink::Stdout => {
                        let mut out = tokio::io::stdout();
                        let wrote = async {
                            out.write_all(&data).await?;
                            out.flush().await
                        };
                        wrote.await.context("writing to stdout")
                    }
                    Sink::File(file, path) => file
                        .write_all(&data)
                        .await
                        .with_context(|| format!("\\copy: writing {}", path.display())),
                };
                written.map_err(CopyError::Local)?;
            }
            // tokio's File writes in the background: flush to see the
            // last write's error (a full disk) before saying COPY n.
            if let Sink::File(file, path) = &mut sink {
                file.flush()
                    .await
                    .with_context(|| format!("\\copy: writing {}", path.display()))
                    .map_err(CopyError::Local)?;
            }
            Ok::<(), CopyError>(())
        };
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
        match self.settle(&cancelled, result)? {
            Ok(()) => Ok(()),
            Err(CopyError::Server(err)) => Err(self.statement_failed(sql, &err).await),
            Err(CopyError::Local(err)) => Err(StmtError::Local(err)),
        }
    }
}

/// Send data lines up to `\.` (or the end of input) through `sink`.
async fn read_lines(
    data: &mut dyn CopyData,
    sink: &mut std::pin::Pin<&mut tokio_postgres::CopyInSink<Bytes>>,
    chunk: &mut BytesMut,
    interrupts: &mut super::sigint::Interrupts,
) -> Result<(), CopyError> {
    if data.interactive() {
        eprintln!(
            "Enter data to be copied followed by a newline.\nEnd with a backslash and a period on a line by itself, or an EOF signal."
        );
    }
    let mut lines = 0usize;
    while let Some(line) = data.data_line().map_err(CopyError::Local)? {
        if line == "\\." {
            break;
        }
        chunk.extend_from_slice(line.as_bytes());
        chunk.extend_from_slice(b"\n");
        lines += 1;
        if chunk.len() >= CHUNK {
            sink.send(chunk.split().freeze())
                .await
                .map_err(CopyError::Server)?;
        }
        if lines.is_multiple_of(1024) && interrupts.interrupted() {
            return Err(CopyError::Local(anyhow::anyhow!(
                "COPY stopped by Ctrl-C; no row was copied"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_copy_through_the_client() {
        let lexer = Lexer::default();
        assert_eq!(direction("COPY t FROM STDIN", lexer), Some(Direction::In));
        assert_eq!(
            direction("copy t (a, b) from stdin with (format csv)", lexer),
            Some(Direction::In)
        );
        assert_eq!(
            direction("copy (select 'to stdout') to stdout", lexer),
            Some(Direction::Out)
        );
        assert_eq!(direction("copy t to '/tmp/x'", lexer), None);
        assert_eq!(direction("select 'copy t from stdin'", lexer), None);
    }

    #[test]
    fn slash_copy_becomes_copy() {
        let c = parse_slash_copy("t (a, b) from 'my file.csv' with (format csv)").unwrap();
        assert_eq!(c.sql, "COPY t (a, b) FROM STDIN with (format csv)");
        assert_eq!(c.place, Place::File("my file.csv".into()));
        let c = parse_slash_copy("(select 1 as \"from\") to stdout csv header").unwrap();
        assert_eq!(c.sql, "COPY (select 1 as \"from\") TO STDOUT csv header");
        assert_eq!((c.direction, c.place), (Direction::Out, Place::Script));
        let c = parse_slash_copy("t from pstdin").unwrap();
        assert_eq!(c.place, Place::Process);
        let c = parse_slash_copy("t to out.csv").unwrap();
        assert_eq!(c.place, Place::File("out.csv".into()));
        assert_eq!(
            parse_slash_copy("t from 'it''s.csv'").unwrap().place,
            Place::File("it's.csv".into())
        );
        for bad in [
            "t",
            "from x",
            "t from",
            "t from stdout",
            "t to stdin",
            "t from program 'x'",
            "t from 'x",
        ] {
            assert!(parse_slash_copy(bad).is_err(), "{bad}");
        }
    }
}
