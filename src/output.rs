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

/// Warnings go to stderr with our prefix; stdout stays machine-readable.
pub fn warn(message: &str) {
    eprintln!("rdsiam: warning: {message}");
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
}
