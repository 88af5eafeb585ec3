//! Scripts read as they run (issue 14): `-c` text, a `-f` file, stdin, an
//! `\i` file. Items are split one at a time, just before each runs, so the
//! server's current `standard_conforming_strings` decides how the next one
//! splits (as in psql), and `COPY … FROM STDIN` reads its data lines from
//! the same input, up to `\.`. Memory stays bounded by the longest
//! statement (or data line) plus one read, whatever the script's size.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::Result;

use crate::error::Failure;

use super::input::{self, Item, Lexer};

/// How much is read at a time.
const CHUNK: usize = 64 * 1024;

/// Where `COPY … FROM STDIN` (and `\copy … from stdin`) data comes from.
pub trait CopyData {
    /// The next data line without its line end; `None` at the end of the
    /// input. `\.` ends the data and is the caller's to recognise.
    fn data_line(&mut self) -> Result<Option<String>>;

    /// Whether a person types the data (then we say how to end it).
    fn interactive(&self) -> bool {
        false
    }

    /// The COPY starts: in a script its data begins on the next line, and
    /// what follows the statement on its own line waits until the data
    /// ends, as in psql.
    fn start(&mut self) -> Result<()> {
        Ok(())
    }

    /// The data ended (at `\.`, the end of input, or an error).
    fn end(&mut self) {}
}

/// A script being read.
pub struct Script {
    /// How the script is named in messages (`-c`, `stdin`, a path).
    name: String,
    reader: Box<dyn Read>,
    /// Text read but not yet handed out, from `pos`.
    buf: String,
    pos: usize,
    /// Bytes of a UTF-8 character cut by the end of the last read.
    partial: Vec<u8>,
    /// Where reads land, kept between reads.
    readbuf: Vec<u8>,
    eof: bool,
    /// Buffer length at the last failed look for an item: the next look
    /// waits until the buffer has grown enough that rescanning stays
    /// linear overall.
    scanned: usize,
    /// `-c`: COPY data comes from stdin, as with psql, not from the text.
    data_from_stdin: bool,
    /// The rest of a COPY statement's line, set aside while its data is read.
    held: Option<String>,
    /// The string setting in force when the line at `pos` started: psql
    /// lexes a line with the setting of that moment (`None`: not known
    /// yet, the current one).
    line_std: Option<bool>,
}

impl Script {
    /// `-c` text; COPY data from stdin.
    pub fn command(text: &str) -> Script {
        let mut script = Script::new("-c".to_owned(), Box::new(std::io::empty()));
        script.buf = text.to_owned();
        script.eof = true;
        script.data_from_stdin = true;
        script
    }

    /// A script on stdin.
    pub fn stdin() -> Script {
        Script::new("stdin".to_owned(), Box::new(std::io::stdin()))
    }

    /// A script file, opened now so a bad path fails before connecting.
    pub fn open(path: &Path) -> Result<Script> {
        let file = File::open(path).map_err(|err| {
            anyhow::Error::from(
                Failure::usage(format!("cannot read {}: {err}", path.display()))
                    .hint("check the path; -f - reads the script from stdin"),
            )
        })?;
        Ok(Script::new(path.display().to_string(), Box::new(file)))
    }

    /// A script from any reader (tests, `\i`).
    pub fn from_reader(name: &str, reader: Box<dyn Read>) -> Script {
        Script::new(name.to_owned(), reader)
    }

    fn new(name: String, reader: Box<dyn Read>) -> Script {
        Script {
            name,
            reader,
            buf: String::new(),
            pos: 0,
            partial: Vec::new(),
            readbuf: Vec::new(),
            eof: false,
            scanned: 0,
            data_from_stdin: false,
            held: None,
            line_std: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next item, split with the server's current string setting (on
    /// the item's first line, the setting that line started with, as psql
    /// does); `None` at the end. At the end of input an unfinished rest
    /// that is not blank is the last statement, as psql runs it.
    pub fn next_item(&mut self, std_strings: bool) -> Result<Option<Item>> {
        let first = self.line_std.unwrap_or(std_strings);
        loop {
            let rest = &self.buf[self.pos..];
            if self.eof || rest.len() < CHUNK || rest.len() >= 2 * self.scanned {
                let lexer = Lexer {
                    std_strings,
                    first_line_std_strings: (first != std_strings).then_some(first),
                    more_to_come: !self.eof,
                };
                if let Some((item, len)) = input::next_item(rest, lexer) {
                    self.pos += len;
                    self.scanned = 0;
                    // The line this item ends on started before it ran.
                    self.line_std = Some(if item.raw().contains('\n') {
                        std_strings
                    } else {
                        first
                    });
                    return Ok(Some(item));
                }
                self.scanned = rest.len();
            }
            if self.eof {
                let rest = &self.buf[self.pos..];
                let item = (!input::is_blank(rest)).then(|| Item::Sql(rest.to_owned()));
                self.pos = self.buf.len();
                return Ok(item);
            }
            self.fill()?;
        }
    }

    /// Read once more (up to a chunk, or as much as is buffered when that
    /// is more), keeping what is not handed out.
    fn fill(&mut self) -> Result<()> {
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let want = CHUNK.max(self.buf.len() - self.pos);
        if self.readbuf.len() < want {
            self.readbuf.resize(want, 0);
        }
        let n = loop {
            match self.reader.read(&mut self.readbuf[..want]) {
                Ok(n) => break n,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(self.unreadable(&err.to_string())),
            }
        };
        if n == 0 {
            self.eof = true;
            if !self.partial.is_empty() {
                return Err(self.unreadable("it is not UTF-8 text"));
            }
            return Ok(());
        }
        let joined;
        let bytes: &[u8] = if self.partial.is_empty() {
            &self.readbuf[..n]
        } else {
            let mut v = std::mem::take(&mut self.partial);
            v.extend_from_slice(&self.readbuf[..n]);
            joined = v;
            &joined
        };
        let valid = match std::str::from_utf8(bytes) {
            Ok(text) => text.len(),
            // A character cut by the read ends it: keep its bytes for next time.
            Err(err) if err.error_len().is_none() => err.valid_up_to(),
            Err(_) => return Err(self.unreadable("it is not UTF-8 text")),
        };
        let text = std::str::from_utf8(&bytes[..valid]).expect("checked above");
        self.buf.push_str(text);
        let rest = bytes[valid..].to_vec();
        self.partial = rest;
        Ok(())
    }

    fn unreadable(&self, why: &str) -> anyhow::Error {
        Failure::usage(format!("cannot read the script from {}: {why}", self.name))
            .hint("pass SQL text in UTF-8 with -c SQL, -f FILE or on stdin")
            .into()
    }
}

impl CopyData for Script {
    fn start(&mut self) -> Result<()> {
        if self.data_from_stdin {
            return Ok(());
        }
        let rest = self.line()?.unwrap_or_default();
        if !rest.trim().is_empty() {
            self.held = Some(rest);
        }
        Ok(())
    }

    fn end(&mut self) {
        if let Some(held) = self.held.take() {
            self.buf.replace_range(..self.pos, "");
            self.buf.insert_str(0, &held);
            self.buf.insert(held.len(), '\n');
            self.pos = 0;
        }
    }

    fn data_line(&mut self) -> Result<Option<String>> {
        if self.data_from_stdin {
            return StdinData.data_line();
        }
        self.line()
    }
}

impl Script {
    /// The next line of the input, without its line end.
    fn line(&mut self) -> Result<Option<String>> {
        loop {
            let rest = &self.buf[self.pos..];
            if let Some(p) = rest.find('\n') {
                let line = rest[..p]
                    .strip_suffix('\r')
                    .unwrap_or(&rest[..p])
                    .to_owned();
                self.pos += p + 1;
                return Ok(Some(line));
            }
            if self.eof {
                if rest.is_empty() {
                    return Ok(None);
                }
                let line = rest.to_owned();
                self.pos = self.buf.len();
                return Ok(Some(line));
            }
            self.fill()?;
        }
    }
}

/// COPY data from this process's stdin (`-c`, `\copy … from pstdin`).
pub struct StdinData;

impl CopyData for StdinData {
    fn data_line(&mut self) -> Result<Option<String>> {
        let mut line = String::new();
        let n = std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|err| Failure::usage(format!("cannot read COPY data from stdin: {err}")))?;
        if n == 0 {
            return Ok(None);
        }
        if line.ends_with('\n') {
            line.pop();
            if line.ends_with('\r') {
                line.pop();
            }
        }
        Ok(Some(line))
    }
}

/// COPY data from a file (`\copy … from 'file'`).
pub struct FileData {
    reader: BufReader<File>,
    name: String,
}

impl FileData {
    pub fn open(path: &Path) -> Result<FileData> {
        let file = File::open(path).map_err(|err| {
            Failure::usage(format!("cannot read {}: {err}", path.display()))
                .hint("\\copy reads the file on this machine; check the path")
        })?;
        Ok(FileData {
            reader: BufReader::with_capacity(CHUNK, file),
            name: path.display().to_string(),
        })
    }
}

impl CopyData for FileData {
    fn data_line(&mut self) -> Result<Option<String>> {
        let mut line = Vec::new();
        let n = self
            .reader
            .read_until(b'\n', &mut line)
            .map_err(|err| Failure::usage(format!("cannot read {}: {err}", self.name)))?;
        if n == 0 {
            return Ok(None);
        }
        if line.ends_with(b"\n") {
            line.pop();
            if line.ends_with(b"\r") {
                line.pop();
            }
        }
        String::from_utf8(line).map(Some).map_err(|_| {
            Failure::usage(format!("cannot read {}: it is not UTF-8", self.name)).into()
        })
    }
}

/// No COPY data at all (the prompt hands out its own reader instead).
pub struct NoData;

impl CopyData for NoData {
    fn data_line(&mut self) -> Result<Option<String>> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `n` bytes a read.
    struct Trickle(std::io::Cursor<Vec<u8>>, usize);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.1);
            self.0.read(&mut buf[..n])
        }
    }

    fn script(text: &str, step: usize) -> Script {
        Script::from_reader(
            "test",
            Box::new(Trickle(
                std::io::Cursor::new(text.as_bytes().to_vec()),
                step,
            )),
        )
    }

    #[test]
    fn reads_items_and_copy_data_in_any_pieces() {
        let text = "select 'ü;'; copy t from stdin;\n1\tü\n\\.\nselect 2\n";
        for step in [1, 2, 3, 5, 100] {
            let mut s = script(text, step);
            assert_eq!(
                s.next_item(true).unwrap(),
                Some(Item::Sql("select 'ü;';".into()))
            );
            assert_eq!(
                s.next_item(true).unwrap(),
                Some(Item::Sql(" copy t from stdin;".into()))
            );
            s.start().unwrap();
            assert_eq!(s.data_line().unwrap().as_deref(), Some("1\tü"));
            assert_eq!(s.data_line().unwrap().as_deref(), Some("\\."));
            s.end();
            assert_eq!(
                s.next_item(true).unwrap(),
                Some(Item::Sql("select 2\n".into()))
            );
            assert_eq!(s.next_item(true).unwrap(), None);
        }
        // What follows the COPY on its line runs after the data, as in psql.
        let mut s = script("copy t from stdin; select 3;\n1\n\\.\nselect 4;", 3);
        s.next_item(true).unwrap();
        s.start().unwrap();
        assert_eq!(s.data_line().unwrap().as_deref(), Some("1"));
        assert_eq!(s.data_line().unwrap().as_deref(), Some("\\."));
        s.end();
        assert_eq!(s.next_item(true).unwrap().unwrap().raw(), " select 3;");
        assert_eq!(s.next_item(true).unwrap().unwrap().raw(), "\nselect 4;");
    }

    #[test]
    fn splits_with_the_setting_of_the_moment() {
        let mut s = script("select 'a\\';b';\nselect 2;\n", 4);
        let first = s.next_item(false).unwrap().unwrap();
        assert_eq!(first.raw(), "select 'a\\';b';");
        let mut s = script("select 'a\\';b';\nselect 2;\n", 4);
        assert_eq!(s.next_item(true).unwrap().unwrap().raw(), "select 'a\\';");
        // A change takes effect from the next line, as psql reads a line
        // with the setting it started with.
        let text = "set x; select 'a\\'; select 1;\nselect 'b\\';c';\n";
        let mut s = script(text, 5);
        assert_eq!(s.next_item(true).unwrap().unwrap().raw(), "set x;");
        assert_eq!(s.next_item(false).unwrap().unwrap().raw(), " select 'a\\';");
        assert_eq!(s.next_item(false).unwrap().unwrap().raw(), " select 1;");
        assert_eq!(
            s.next_item(false).unwrap().unwrap().raw(),
            "\nselect 'b\\';c';"
        );
    }

    #[test]
    fn bad_utf8_is_an_error_not_a_panic() {
        let mut s =
            Script::from_reader("x", Box::new(std::io::Cursor::new(vec![b's', 0xff, b';'])));
        assert!(s.next_item(true).is_err());
        let mut s = Script::from_reader("x", Box::new(std::io::Cursor::new(vec![b's', 0xc3])));
        assert!(s.next_item(true).is_err());
    }

    #[test]
    fn many_statements_in_bounded_memory() {
        // 200,000 statements through a script that never holds them all.
        struct Many(usize, Vec<u8>);
        impl Read for Many {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.1.is_empty() {
                    if self.0 == 0 {
                        return Ok(0);
                    }
                    self.0 -= 1;
                    self.1 = b"select 1;\n".to_vec();
                }
                let n = buf.len().min(self.1.len());
                buf[..n].copy_from_slice(&self.1[..n]);
                self.1.drain(..n);
                Ok(n)
            }
        }
        let mut s = Script::from_reader("many", Box::new(Many(200_000, Vec::new())));
        let mut count = 0;
        let mut biggest = 0;
        while let Some(item) = s.next_item(true).unwrap() {
            count += usize::from(item.raw().trim() == "select 1;");
            biggest = biggest.max(s.buf.capacity());
        }
        assert_eq!(count, 200_000);
        assert!(biggest < 4 * CHUNK, "{biggest}");
    }
}
