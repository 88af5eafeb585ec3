//! Result assembly: the simple protocol's messages turned into result sets
//! and command tags, drawn in the chosen format, and written to stdout or
//! the `\o` file; and the server's errors as an operator needs them.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio_postgres::error::{DbError, ErrorPosition};
use tokio_postgres::{SimpleColumn, SimpleQueryMessage};

use crate::output::SqlOutput;
use crate::output::print;

use super::super::render::{self, Column, ResultSet};

/// How results are shown, and where they go.
pub(super) struct Display {
    pub(super) format: SqlOutput,
    pub(super) expanded: bool,
    pub(super) timing: bool,
    /// How NULL looks in tables (`\pset null`).
    pub(super) null: String,
    /// `\o FILE`: results go there instead of stdout.
    out: Option<(PathBuf, File)>,
}

impl Display {
    pub(super) fn new(format: SqlOutput, timing: bool) -> Display {
        Display {
            format,
            expanded: false,
            timing,
            null: render::NULL.to_owned(),
            out: None,
        }
    }

    /// `\o`: send results to `path`, or back to stdout.
    pub(super) fn set_output(&mut self, path: Option<PathBuf>) -> Result<()> {
        self.out = match path {
            None => None,
            Some(path) => {
                let file = File::create(&path).with_context(|| {
                    format!(
                        "cannot write {}: check the path and permissions",
                        path.display()
                    )
                })?;
                Some((path, file))
            }
        };
        Ok(())
    }

    /// Show one statement's messages: each result set in the format, or
    /// (as a table) the command tag; `title` heads meta-command output.
    /// `types` come from a Describe, for JSON.
    pub(super) fn show(
        &mut self,
        sql: &str,
        title: Option<&str>,
        messages: Vec<SimpleQueryMessage>,
        types: Option<Vec<tokio_postgres::types::Type>>,
        elapsed: Duration,
        interactive: bool,
    ) -> Result<()> {
        let mut sets = assemble(messages);
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
                        text.push_str(&render::expanded(set, &self.null));
                    } else {
                        text.push_str(&render::table(
                            set,
                            self.out.is_none() && std::io::stdout().is_terminal(),
                            &self.null,
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
        if interactive && self.format == SqlOutput::Table && !text.is_empty() {
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
    pub(super) fn emit(&mut self, text: &str) -> Result<()> {
        match &mut self.out {
            Some((path, file)) => file
                .write_all(text.as_bytes())
                .with_context(|| format!("writing to {}", path.display())),
            None => print(text),
        }
    }

    /// COPY data, as it comes, to the same place as results.
    pub(super) fn emit_bytes(&mut self, data: &[u8]) -> Result<()> {
        match &mut self.out {
            Some((path, file)) => file
                .write_all(data)
                .with_context(|| format!("writing to {}", path.display())),
            None => {
                let mut out = std::io::stdout().lock();
                out.write_all(data)?;
                out.flush()?;
                Ok(())
            }
        }
    }

    /// A command tag after COPY, in table format only (as other tags).
    pub(super) fn tag(&mut self, tag: &str) -> Result<()> {
        if self.format == SqlOutput::Table {
            self.emit(&format!("{tag}\n"))
        } else {
            Ok(())
        }
    }
}

/// A result set with these columns and no rows yet.
fn empty_set(columns: &[SimpleColumn]) -> ResultSet {
    ResultSet {
        columns: columns
            .iter()
            .map(|c| Column {
                name: c.name().to_owned(),
                ty: None,
            })
            .collect(),
        rows: Vec::new(),
    }
}

/// The result sets of one simple query, each with its row count; `None`
/// for a command without rows.
fn assemble(messages: Vec<SimpleQueryMessage>) -> Vec<(Option<ResultSet>, u64)> {
    let mut sets: Vec<(Option<ResultSet>, u64)> = Vec::new();
    let mut current: Option<ResultSet> = None;
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(columns) => {
                current = Some(empty_set(&columns));
            }
            SimpleQueryMessage::Row(row) => {
                let set = current.get_or_insert_with(|| empty_set(row.columns()));
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
    sets
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
    crate::output::escape_controls(&out).into_owned()
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

/// The statement's first word (its verb), or "" when there is none.
fn first_word(sql: &str) -> &str {
    sql.split(|c: char| !c.is_ascii_alphabetic())
        .find(|w| !w.is_empty())
        .unwrap_or("")
}

/// What a statement without a result set did, from its first word and the
/// row count (the simple protocol gives us the count, not the tag).
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
pub(super) fn returns_rows(sql: &str) -> bool {
    let lower = sql.to_lowercase();
    match first_word(&lower) {
        "select" | "with" | "values" | "table" | "show" | "explain" | "fetch" => true,
        "insert" | "update" | "delete" | "merge" => lower.contains("returning"),
        _ => false,
    }
}

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
}
