//! Writing results: stdout that tolerates a closed pipe, tables sized to the
//! terminal, JSON, and shell quoting for `eval`.

use std::io::{IsTerminal, Write};

use anyhow::Result;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};

/// Write `text` to stdout in one go. A closed pipe surfaces as an
/// `io::Error` that `main` treats as success.
pub fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Pretty JSON plus a newline.
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    print(&text)
}

/// A table with the house style, fitted to the terminal when there is one.
pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED);
    if std::io::stdout().is_terminal() {
        table.set_content_arrangement(ContentArrangement::Dynamic);
    }
    table.set_header(header.iter().copied());
    table
}

/// Quote `value` for a POSIX shell: single quotes, with `'` written `'\''`.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// A SQL identifier quoted as PostgreSQL's `quote_ident` does: in double
/// quotes, with `"` doubled, so any name is one identifier in SQL we print.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A SQL string literal as PostgreSQL's `quote_literal` does: `'` doubled,
/// and with a backslash present, backslashes doubled in an `E''` string, so
/// it means the same whatever `standard_conforming_strings` says.
pub fn quote_literal(value: &str) -> String {
    let quoted = value.replace('\'', "''");
    if value.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

/// Text that came from a server (error messages, notices, hints) made safe
/// for a terminal: control characters other than newline and tab are shown
/// escaped (`\u{1b}`), so a hostile server can't drive the terminal.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Text shown on one line (a table cell, a report line), from a config file
/// or a server: every control character escaped, newline and tab too, so it
/// can neither drive the terminal nor break the layout (issue 24).
pub fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// Warnings go to stderr with our prefix; stdout stays machine-readable.
pub fn warn(message: &str) {
    eprintln!("rdsiam: warning: {message}");
}

/// `rdsiam sql --output`: how result sets are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SqlOutput {
    /// Tables sized to the terminal
    Table,
    /// One array of objects per statement, typed values
    Json,
    /// RFC 4180
    Csv,
}

/// `rdsiam proxy --log-format`: how connection log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `rdsiam: proxy: open conn=1 client=… user=…`
    Text,
    /// One JSON object per line
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_survives_every_character() {
        assert_eq!(shell_quote("plain"), "'plain'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(
            shell_quote("$(rm -rf /) `x` \"y\" \\"),
            "'$(rm -rf /) `x` \"y\" \\'"
        );
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn sql_quoting_keeps_hostile_names_one_token() {
        assert_eq!(quote_ident("iamuserapp"), "\"iamuserapp\"");
        assert_eq!(
            quote_ident("x\"; DROP DATABASE app; --"),
            "\"x\"\"; DROP DATABASE app; --\""
        );
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\'; drop"), "E'a\\\\''; drop'");
    }

    #[test]
    fn control_characters_from_servers_are_escaped() {
        assert_eq!(escape_controls("plain\nline\ttab"), "plain\nline\ttab");
        assert_eq!(
            escape_controls("\u{1b}]0;pwned\u{7}red\u{9b}"),
            "\\u{1b}]0;pwned\\u{7}red\\u{9b}"
        );
    }
}
