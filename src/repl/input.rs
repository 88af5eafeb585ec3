//! Where statements end: the splitter shared by `-c`, `-f`, stdin scripts and
//! the interactive prompt (issues 5 and 14), following psql's own lexer
//! (`psqlscan.l`, PostgreSQL 15) token class by token class, so a script
//! splits into the statements psql would send.
//!
//! A statement ends at `;` outside quotes, comments and parentheses:
//! single-quoted strings (`''` doubled; backslash escapes in `E''` strings,
//! and in plain ones too when the server says `standard_conforming_strings`
//! is off — the caller passes that in, as it is when the statement is read),
//! `B''`/`X''`/`U&''` strings, double-quoted identifiers, dollar quotes with tags
//! (`$fn$ … $fn$`, which may start right after a number: `1$$`), `--` line
//! comments and nested `/* */` comments. Identifiers (which may hold `$`),
//! numbers (with PostgreSQL 15's trailing-junk rule) and parameters (`$1`)
//! are whole tokens, so a quote or `$` inside one starts nothing.
//!
//! A line that starts with `\` where a statement would start is a
//! meta-command and ends at the end of that line, as in psql; whitespace and
//! comments before it are not part of it (`-- list tables` then `\dt`).
//! Inside a statement `\g` (to the end of its line) ends it like `;`, and
//! `\;` is a `;` that does not (both statements go in one message).
//! SQL-standard function bodies (`CREATE FUNCTION … BEGIN ATOMIC … END`)
//! keep their inner `;`, with psql's heuristic (see [`next_item`]).
//!
//! The splitter never fails: unbalanced input is simply "not finished yet".
//! Every byte of the input is in an item, in the unfinished rest, or in the
//! whitespace and comments skipped before a meta-command ([`split_spans`]).

use std::borrow::Cow;

/// One runnable piece of input, with its exact source text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// SQL up to and including its `;` or `\g` line (leading whitespace
    /// and comments too).
    Sql(String),
    /// A `\command args` line from its backslash, including its newline if
    /// it had one.
    Meta(String),
}

impl Item {
    /// The raw text, exactly as it appeared in the input (a meta-command
    /// without the whitespace and comments before it).
    pub fn raw(&self) -> &str {
        match self {
            Item::Sql(s) | Item::Meta(s) => s,
        }
    }
}

/// What the splitter must know beyond the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lexer {
    /// `standard_conforming_strings` as the server last reported it: when
    /// off, a backslash escapes the next character in every `'…'` string.
    pub std_strings: bool,
    /// The setting for the text's first line, when it differs: psql lexes
    /// a script a line at a time with the setting of the moment the line
    /// starts, so a statement after `SET standard_conforming_strings …;`
    /// on the same line still splits by the old one.
    pub first_line_std_strings: Option<bool>,
    /// More input may follow the text (a script still being read): a
    /// meta-command without its newline is not finished yet.
    pub more_to_come: bool,
}

impl Lexer {
    /// The setting in force at byte `i` of a text whose first line ends
    /// at `first_nl`.
    fn std_strings_at(&self, i: usize, first_nl: usize) -> bool {
        match self.first_line_std_strings {
            Some(first) if i < first_nl => first,
            _ => self.std_strings,
        }
    }
}

impl Default for Lexer {
    fn default() -> Lexer {
        Lexer {
            std_strings: true,
            first_line_std_strings: None,
            more_to_come: false,
        }
    }
}

/// The complete items at the front of `input`, and the unfinished rest.
pub fn split(input: &str) -> (Vec<Item>, &str) {
    let (spans, rest) = split_spans(input);
    (spans.into_iter().map(|(_, item)| item).collect(), rest)
}

/// Like [`split`], with the byte offset where each item's span starts: the
/// spans are back to back, each one is the item's raw text (for a
/// meta-command, after whitespace and comments), and the last one ends where
/// the rest begins. The prompt uses the offsets to give back, as typed, what
/// did not run.
pub fn split_spans(input: &str) -> (Vec<(usize, Item)>, &str) {
    split_spans_with(input, Lexer::default())
}

/// [`split_spans`] with the server's string setting.
pub fn split_spans_with(input: &str, lexer: Lexer) -> (Vec<(usize, Item)>, &str) {
    let mut items = Vec::new();
    let mut at = 0;
    while let Some((item, len)) = next_item(&input[at..], lexer) {
        items.push((at, item));
        at += len;
    }
    (items, &input[at..])
}

/// Split a whole script: like [`split`], and the unfinished rest, when it
/// holds anything but whitespace and comments, is the last statement (psql
/// runs a final statement without `;` at the end of a file or `-c`).
pub fn split_script(input: &str) -> Vec<Item> {
    let (mut items, rest) = split(input);
    if !is_blank(rest) {
        items.push(Item::Sql(rest.to_owned()));
    }
    items
}

/// True when `sql` holds only whitespace, comments and semicolons.
pub fn is_blank(sql: &str) -> bool {
    strip_comments(sql)
        .chars()
        .all(|c| c.is_whitespace() || c == ';')
}

/// The statement to send: comments at the front and the final `;` (or `\g`
/// line) removed, surrounding whitespace trimmed, `\;` turned into the `;`
/// it stands for, and empty lines outside quotes left out, as psql does. Comments inside are kept (the server handles them,
/// and error positions stay meaningful). Total: any text gives a result.
pub fn statement_text(raw: &str) -> Cow<'_, str> {
    statement_text_with(raw, Lexer::default())
}

/// [`statement_text`] with the server's string setting (which decides
/// where `\;` is outside a string).
pub fn statement_text_with(raw: &str, mut lexer: Lexer) -> Cow<'_, str> {
    let mut s = raw;
    loop {
        let t = s.trim_start();
        if let Some(after) = t.strip_prefix("--") {
            s = after.find('\n').map_or("", |i| &after[i + 1..]);
        } else if t.starts_with("/*") {
            // An unclosed comment runs to the end: nothing is left.
            s = block_comment_end(t.as_bytes(), 0).map_or("", |end| &t[end..]);
        } else {
            s = t;
            break;
        }
    }
    if raw[..raw.len() - s.len()].contains('\n') {
        // The statement itself starts on a later line than `raw`.
        lexer.first_line_std_strings = None;
    }
    let s = s.trim_end();
    let s = match go_command_start(s, lexer) {
        Some(at) => &s[..at],
        None => s.strip_suffix(';').unwrap_or(s),
    };
    let s = s.trim_end();
    let cuts = psql_cuts(s, lexer);
    if cuts.is_empty() {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for at in cuts {
        out.push_str(&s[last..at]);
        last = at + 1;
    }
    out.push_str(&s[last..]);
    Cow::Owned(out)
}

/// The words of a statement outside quotes, comments and parentheses, in
/// order (for recognising `COPY … FROM STDIN` and the like).
pub fn top_level_words(sql: &str, lexer: Lexer) -> Vec<&str> {
    let b = sql.as_bytes();
    let scan = Scan::new(b, lexer);
    let mut words = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        let Some(token) = scan.token(i) else { break };
        match token {
            Token::Word(end) => {
                if depth == 0 {
                    words.push(&sql[i..end]);
                }
                i = end;
            }
            Token::Open => {
                depth += 1;
                i += 1;
            }
            Token::Close => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            Token::Semi => i += 1,
            Token::Backslash => i += backslash_len(b, i),
            Token::Other(end) => i = end,
        }
    }
    words
}

/// Where a `\g` command that ends `s` starts, if one does (outside quotes).
fn go_command_start(s: &str, lexer: Lexer) -> Option<usize> {
    let b = s.as_bytes();
    let scan = Scan::new(b, lexer);
    let mut i = 0;
    let mut last = None;
    while i < b.len() {
        match scan.token(i)? {
            Token::Backslash if is_go(&b[i..]) => {
                last = Some(i);
                i = line_end(b, i);
            }
            Token::Backslash => i += backslash_len(b, i),
            Token::Word(end) | Token::Other(end) => i = end,
            _ => i += 1,
        }
    }
    last.filter(|&at| !b[at..].contains(&b'\n') || b[at..].ends_with(b"\n"))
}

/// The single bytes psql leaves out of what it sends, in order: the
/// backslash of `\;` and `\:` (it forces the character in), and the line
/// end of each empty line outside quotes and comments (psql skips empty
/// lines there; it reads a script a line at a time).
fn psql_cuts(s: &str, lexer: Lexer) -> Vec<usize> {
    let b = s.as_bytes();
    if !b.contains(&b'\\') && !s.contains("\n\n") {
        return Vec::new();
    }
    let scan = Scan::new(b, lexer);
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match scan.token(i) {
            Some(Token::Other(end)) if b[i] == b'\n' && i > 0 && b[i - 1] == b'\n' => {
                out.push(i);
                i = end;
            }
            Some(Token::Backslash) => {
                if matches!(b.get(i + 1), Some(b';' | b':')) {
                    out.push(i);
                }
                i += backslash_len(b, i);
            }
            Some(Token::Word(end) | Token::Other(end)) => i = end,
            Some(_) => i += 1,
            None => break,
        }
    }
    out
}

/// How much of the input a `\` at `i` inside a statement takes: `\;` and
/// `\:` are one token (the character forced in), any other backslash is
/// itself alone.
fn backslash_len(b: &[u8], i: usize) -> usize {
    if matches!(b.get(i + 1), Some(b';' | b':')) {
        2
    } else {
        1
    }
}

/// `\g` or `\gx` (alone or with arguments) at the start of `b`.
fn is_go(b: &[u8]) -> bool {
    let name_end = b[1..]
        .iter()
        .position(|c| c.is_ascii_whitespace())
        .map_or(b.len(), |p| p + 1);
    matches!(&b[1..name_end], b"g" | b"gx")
}

/// The input with comments removed (string contents are left alone).
fn strip_comments(sql: &str) -> String {
    let b = sql.as_bytes();
    let scan = Scan::new(b, Lexer::default());
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        if b[i..].starts_with(b"--") {
            out.push_str(&sql[last..i]);
            i = line_end(b, i);
            last = i;
        } else if b[i..].starts_with(b"/*") {
            out.push_str(&sql[last..i]);
            out.push(' ');
            i = block_comment_end(b, i).unwrap_or(b.len());
            last = i;
        } else {
            i = match scan.token(i) {
                Some(Token::Word(end) | Token::Other(end)) => end,
                Some(_) => i + 1,
                None => b.len(),
            };
        }
    }
    out.push_str(&sql[last.min(sql.len())..]);
    out
}

/// The next complete item at the start of `input` and the byte length it
/// consumed (for a meta-command, with the whitespace and comments before it).
///
/// Function bodies in SQL-standard form (`BEGIN ATOMIC … END`) hold `;`s,
/// so this follows psql 15+ (`psqlscan.l`): when the statement starts with
/// `CREATE [OR REPLACE] FUNCTION|PROCEDURE`, at parenthesis depth 0, the word
/// `BEGIN` opens a block, `CASE` inside a block opens one too (it also ends
/// with `END`) and `END` closes one; `;` inside a block does not end the
/// statement. Words are matched case-insensitively and only outside quotes
/// and comments.
pub fn next_item(input: &str, lexer: Lexer) -> Option<(Item, usize)> {
    let b = input.as_bytes();
    // Skip whitespace and comments to see whether a meta-command starts here.
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if b[i..].starts_with(b"--") {
            i = line_end(b, i);
        } else if b[i..].starts_with(b"/*") {
            i = block_comment_end(b, i)?;
        } else {
            break;
        }
    }
    if i >= b.len() {
        return None;
    }
    if b[i] == b'\\' {
        // Meta-command: to the end of the line. Complete at end of input
        // too, unless more input may continue the line: a prompt line has
        // no newline.
        let end = match b[i..].iter().position(|&c| c == b'\n') {
            Some(p) => i + p + 1,
            None if lexer.more_to_come => return None,
            None => b.len(),
        };
        return Some((Item::Meta(input[i..end].to_owned()), end));
    }
    let scan = Scan::new(b, lexer);
    let mut depth = 0usize;
    // The first words, each reduced to its initial when it is one of
    // CREATE, OR, REPLACE, FUNCTION, PROCEDURE (else 0), as psql does.
    let mut head = [0u8; 4];
    let mut words = 0usize;
    let mut blocks = 0usize;
    while i < b.len() {
        match scan.token(i)? {
            Token::Open => {
                depth += 1;
                i += 1;
            }
            Token::Close => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            Token::Semi if depth == 0 && blocks == 0 => {
                return Some((Item::Sql(input[..=i].to_owned()), i + 1));
            }
            Token::Semi => i += 1,
            Token::Backslash => {
                if is_go(&b[i..]) {
                    // `\g`: the statement ends with this line.
                    let end = match b[i..].iter().position(|&c| c == b'\n') {
                        Some(p) => i + p + 1,
                        None if lexer.more_to_come => return None,
                        None => b.len(),
                    };
                    return Some((Item::Sql(input[..end].to_owned()), end));
                }
                if b.get(i + 1) == Some(&b';') {
                    // psql's identifier count restarts after `\;`.
                    head = [0; 4];
                    words = 0;
                }
                i += backslash_len(b, i);
            }
            Token::Word(end) => {
                let word = &b[i..end];
                if words < head.len() {
                    head[words] = ["create", "or", "replace", "function", "procedure"]
                        .iter()
                        .find(|k| word.eq_ignore_ascii_case(k.as_bytes()))
                        .map_or(0, |k| k.as_bytes()[0]);
                }
                words += 1;
                let routine = head[0] == b'c'
                    && (matches!(head[1], b'f' | b'p')
                        || (head[1] == b'o' && head[2] == b'r' && matches!(head[3], b'f' | b'p')));
                if routine && depth == 0 {
                    // CASE only counts inside a block, where its END would
                    // otherwise close the block.
                    if word.eq_ignore_ascii_case(b"begin")
                        || (word.eq_ignore_ascii_case(b"case") && blocks > 0)
                    {
                        blocks += 1;
                    } else if word.eq_ignore_ascii_case(b"end") {
                        blocks = blocks.saturating_sub(1);
                    }
                }
                i = end;
            }
            Token::Other(end) => i = end,
        }
    }
    None
}

/// One token of psql's INITIAL state, as far as splitting cares.
#[derive(Debug, PartialEq, Eq)]
enum Token {
    /// An identifier or keyword, ending at the index given.
    Word(usize),
    Open,
    Close,
    Semi,
    /// A `\` outside quotes (a psql command, `\;` or `\:`).
    Backslash,
    /// Anything else (whitespace, a comment, a string, a number, an
    /// operator), ending at the index given.
    Other(usize),
}

/// A scanner over one piece of input.
struct Scan<'a> {
    b: &'a [u8],
    lexer: Lexer,
    /// Where the first line ends (see [`Lexer::first_line_std_strings`]).
    first_nl: usize,
}

impl Scan<'_> {
    fn new(b: &[u8], lexer: Lexer) -> Scan<'_> {
        let first_nl = match lexer.first_line_std_strings {
            Some(_) => b.iter().position(|&c| c == b'\n').unwrap_or(b.len()),
            None => 0,
        };
        Scan { b, lexer, first_nl }
    }

    /// The token starting at `i` (`i < len`); `None` when it runs past the
    /// end of the input (an unclosed quote or comment): not finished yet.
    fn token(&self, i: usize) -> Option<Token> {
        let b = self.b;
        let next = b.get(i + 1).copied();
        let after = b.get(i + 2).copied();
        Some(match b[i] {
            b'-' if next == Some(b'-') => Token::Other(line_end(b, i)),
            b'/' if next == Some(b'*') => Token::Other(block_comment_end(b, i)?),
            b'\'' => Token::Other(string_end(
                b,
                i + 1,
                !self.lexer.std_strings_at(i, self.first_nl),
            )?),
            b'e' | b'E' if next == Some(b'\'') => Token::Other(string_end(b, i + 2, true)?),
            b'b' | b'B' | b'x' | b'X' if next == Some(b'\'') => {
                Token::Other(string_end(b, i + 2, false)?)
            }
            // `N'…'`: the N alone, then an ordinary string.
            b'n' | b'N' if next == Some(b'\'') => Token::Other(i + 1),
            b'u' | b'U' if next == Some(b'&') && after == Some(b'\'') => {
                Token::Other(string_end(b, i + 3, false)?)
            }
            b'u' | b'U' if next == Some(b'&') && after == Some(b'"') => {
                Token::Other(ident_quote_end(b, i + 3)?)
            }
            // `U&` without a quote: the U alone (then `&` is an operator).
            b'u' | b'U' if next == Some(b'&') => Token::Other(i + 1),
            b'"' => Token::Other(ident_quote_end(b, i + 1)?),
            b'$' => match dollar(b, i) {
                Dollar::Quote(tag_end) => Token::Other(dollar_quote_end(b, i, tag_end)?),
                Dollar::Param(end) => Token::Other(end),
                Dollar::Lone => Token::Other(i + 1),
            },
            b'0'..=b'9' => Token::Other(number_end(b, i)),
            b'.' if next.is_some_and(|c| c.is_ascii_digit()) => Token::Other(number_end(b, i)),
            c if is_ident_start(c) => Token::Word(
                b[i..]
                    .iter()
                    .position(|&c| !is_ident_cont(c))
                    .map_or(b.len(), |p| i + p),
            ),
            b'(' => Token::Open,
            b')' => Token::Close,
            b';' => Token::Semi,
            b'\\' => Token::Backslash,
            _ => Token::Other(i + 1),
        })
    }
}

/// Index of the newline ending the line comment (or line) at `i`, plus one
/// (or input end).
fn line_end(b: &[u8], i: usize) -> usize {
    b[i..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(b.len(), |p| i + p + 1)
}

/// Index just past the `*/` closing the (nested) comment opened at `i`;
/// `None` when it never closes.
fn block_comment_end(b: &[u8], i: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut j = i;
    while j + 1 < b.len() {
        if b[j] == b'/' && b[j + 1] == b'*' {
            depth += 1;
            j += 2;
        } else if b[j] == b'*' && b[j + 1] == b'/' {
            depth = depth.saturating_sub(1);
            j += 2;
            if depth == 0 {
                return Some(j);
            }
        } else {
            j += 1;
        }
    }
    None
}

/// A byte that can start an identifier or keyword (`[A-Za-z_]`, non-ASCII).
fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident_cont(c: u8) -> bool {
    is_ident_start(c) || c.is_ascii_digit() || c == b'$'
}

/// Index just past the quote closing the string whose body starts at
/// `body` (`''` doubled; `\` escapes when `escapes`). `None`: it is not
/// closed yet. A string continued over a newline (`E'a'` newline `'b'`) is
/// two strings here, the second of the plain kind: psql lexes a script a
/// line at a time, so its lexer never sees the continuation either.
fn string_end(b: &[u8], body: usize, escapes: bool) -> Option<usize> {
    let mut j = body;
    loop {
        match *b.get(j)? {
            b'\\' if escapes => j += 2,
            b'\'' if b.get(j + 1) == Some(&b'\'') => j += 2,
            b'\'' => return Some(j + 1),
            _ => j += 1,
        }
    }
}

/// Index just past the `"` closing the identifier whose body starts at
/// `body` (`""` doubled).
fn ident_quote_end(b: &[u8], body: usize) -> Option<usize> {
    let mut j = body;
    loop {
        match *b.get(j)? {
            b'"' if b.get(j + 1) == Some(&b'"') => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
}

/// What a `$` starts.
enum Dollar {
    /// A dollar-quote delimiter `$tag$` (or `$$`) ending just before
    /// this index.
    Quote(usize),
    /// `$1` (with one trailing identifier character, PostgreSQL 15's junk
    /// rule), ending here.
    Param(usize),
    /// A `$` on its own (`$abc` without a closing `$`: psql takes the `$`
    /// alone and goes on with `abc`).
    Lone,
}

fn dollar(b: &[u8], i: usize) -> Dollar {
    let mut j = i + 1;
    if b.get(j).is_some_and(|c| c.is_ascii_digit()) {
        while b.get(j).is_some_and(|c| c.is_ascii_digit()) {
            j += 1;
        }
        return Dollar::Param(junk_end(b, j));
    }
    if b.get(j).is_some_and(|&c| is_ident_start(c)) {
        while b
            .get(j)
            .is_some_and(|&c| is_ident_start(c) || c.is_ascii_digit())
        {
            j += 1;
        }
    }
    if b.get(j) == Some(&b'$') {
        Dollar::Quote(j + 1)
    } else {
        Dollar::Lone
    }
}

/// Index just past the delimiter closing the dollar quote `b[i..tag_end]`.
fn dollar_quote_end(b: &[u8], i: usize, tag_end: usize) -> Option<usize> {
    let tag = &b[i..tag_end];
    b[tag_end..]
        .windows(tag.len())
        .position(|w| w == tag)
        .map(|p| tag_end + p + tag.len())
}

/// Index just past the number starting at `i` (a digit, or `.` before a
/// digit): digits, a fraction (not `..`), an exponent, and — PostgreSQL
/// 15's trailing-junk rule — one identifier character stuck to it.
fn number_end(b: &[u8], i: usize) -> usize {
    let digits = |mut j: usize| {
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        j
    };
    let mut j = digits(i);
    if b.get(j) == Some(&b'.') && b.get(j + 1) != Some(&b'.') {
        j = digits(j + 1);
    }
    if matches!(b.get(j), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(b.get(j + 1), Some(b'+' | b'-')));
        if b.get(j + 1 + sign).is_some_and(u8::is_ascii_digit) {
            j = digits(j + 1 + sign);
        } else if sign == 1 {
            // `1e+` without digits: one (bad) token, as the server sees it.
            return j + 2;
        }
    }
    junk_end(b, j)
}

/// Past one identifier character (a whole UTF-8 character) at `j`, if
/// one is there: PostgreSQL 15 lexes `1a` and `$1a` as one (bad) token.
fn junk_end(b: &[u8], mut j: usize) -> usize {
    if b.get(j).is_some_and(|&c| is_ident_start(c)) {
        j += 1;
        while b.get(j).is_some_and(|&c| (0x80..0xc0).contains(&c)) {
            j += 1;
        }
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .map(|i| statement_text(i.raw()).into_owned())
            .collect()
    }

    #[test]
    fn splits_plain_statements() {
        let (items, rest) = split("select 1; select 2;\nselect 3");
        assert_eq!(sql(&items), ["select 1", "select 2"]);
        assert_eq!(rest, "\nselect 3");
        assert_eq!(
            sql(&split_script("select 1;select 2")),
            ["select 1", "select 2"]
        );
    }

    #[test]
    fn semicolons_inside_quotes_do_not_end_statements() {
        let cases = [
            ("select ';';", "select ';'"),
            ("select 'it''s; ok';", "select 'it''s; ok'"),
            (r"select E'a\';b';", r"select E'a\';b'"),
            (r"select e'\\';", r"select e'\\'"),
            ("select \"a;b\" from t;", "select \"a;b\" from t"),
            ("select $$a;b$$;", "select $$a;b$$"),
            ("select $fn$ $$; $x$ ; $fn$;", "select $fn$ $$; $x$ ; $fn$"),
            ("select 1 -- ; no\n + 1;", "select 1 -- ; no\n + 1"),
            ("select /* ; /* ; */ ; */ 1;", "select /* ; /* ; */ ; */ 1"),
            (
                "create rule r as on insert to t do (insert into u values (1); select 1);",
                "create rule r as on insert to t do (insert into u values (1); select 1)",
            ),
        ];
        for (input, want) in cases {
            let (items, rest) = split(input);
            assert_eq!(sql(&items), [want], "{input}");
            assert_eq!(rest, "", "{input}");
        }
    }

    #[test]
    fn standard_strings_keep_backslashes_literal() {
        // In a standard string a backslash is a character, so `'\'` is closed.
        let (items, _) = split(r"select 'C:\'; select 2;");
        assert_eq!(sql(&items), [r"select 'C:\'", "select 2"]);
        // But `xe'…` is an identifier followed by a string, not an E string.
        let (items, _) = split(r"select 1 as xe'\'; select 2;");
        assert_eq!(items.len(), 2);
    }

    #[test]
    fn dollar_signs_that_are_not_quotes() {
        let (items, rest) = split("select $1; select a$b$ from t; select 2;");
        assert_eq!(sql(&items), ["select $1", "select a$b$ from t", "select 2"]);
        assert_eq!(rest, "");
    }

    #[test]
    fn unfinished_input_stays_in_rest() {
        for input in [
            "select 'abc;",
            "select $$ ;",
            "select /* /* */ ;",
            "select (1;",
            "select \"x;",
            "select 1",
            "select $tag$ $other$; $tag",
        ] {
            let (items, rest) = split(input);
            assert!(items.is_empty(), "{input}");
            assert_eq!(rest, input);
        }
    }

    #[test]
    fn meta_commands_take_their_line() {
        let (items, rest) = split("\\x\nselect 1;\n  \\d foo\n\\q");
        assert_eq!(
            items,
            [
                Item::Meta("\\x\n".into()),
                Item::Sql("select 1;".into()),
                Item::Meta("\\d foo\n".into()),
                Item::Meta("\\q".into()),
            ]
        );
        assert_eq!(rest, "");
        // A backslash inside a statement is not a meta-command.
        let (items, _) = split("select E'\\n';");
        assert_eq!(items.len(), 1);
        assert!(matches!(items[0], Item::Sql(_)));
    }

    #[test]
    fn comments_before_a_meta_command_are_not_part_of_it() {
        // A commented script: `-f` on this once failed with `unknown
        // meta-command \--`.
        let input = "-- list tables\n\\dt\n/* a /* nested */ note */ \\x\n  -- more\n  \\q";
        let (spans, rest) = split_spans(input);
        assert_eq!(
            spans,
            [
                (0, Item::Meta("\\dt\n".into())),
                (19, Item::Meta("\\x\n".into())),
                (48, Item::Meta("\\q".into())),
            ]
        );
        assert_eq!(rest, "");
        for (_, item) in &spans {
            assert!(
                item.raw().parse::<super::super::meta::Meta>().is_ok(),
                "{item:?}"
            );
        }
        assert_eq!(
            split_script("-- list tables\n\\dt"),
            [Item::Meta("\\dt".into())]
        );
        // SQL keeps its leading comments (they are sent with it).
        let (spans, _) = split_spans("\\x\n-- why\nselect 1;");
        assert_eq!(spans[1], (3, Item::Sql("-- why\nselect 1;".into())));
    }

    #[test]
    fn begin_atomic_bodies_keep_their_semicolons() {
        let body =
            "create function f() returns int language sql begin atomic select 1; select 2; end;";
        let input = format!("{body} select 3;");
        let (items, rest) = split(&input);
        assert_eq!(
            sql(&items),
            [
                "create function f() returns int language sql begin atomic select 1; select 2; end",
                "select 3"
            ]
        );
        assert_eq!(rest, "");
        for input in [
            // Any case, OR REPLACE, procedures, CASE … END inside the body.
            "CREATE OR REPLACE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC insert into t values (1); end;",
            "Create Function f(x int) returns text language sql\nBegin Atomic\n  select case when x > 0 then 'p' else 'n' end;\n  select case x when 1 then 'one' end;\nEnd;",
            // Quotes, comments and parentheses hide the words.
            "create function f() returns text language sql begin atomic select 'end;'; select \"end\"; -- end;\n select /* end; */ (select 1); end;",
        ] {
            let (items, rest) = split(input);
            assert_eq!(sql(&items), [statement_text(input)], "{input}");
            assert_eq!(rest, "", "{input}");
        }
        // Unfinished until its END, like psql.
        let open = "create function f() returns int language sql begin atomic select 1;";
        assert_eq!(split(open), (vec![], open));
        // Only CREATE [OR REPLACE] FUNCTION|PROCEDURE counts BEGIN and END.
        let (items, _) =
            split("begin; select 1; end; create table begin_t (a int); do $$ begin end $$;");
        assert_eq!(
            sql(&items),
            [
                "begin",
                "select 1",
                "end",
                "create table begin_t (a int)",
                "do $$ begin end $$"
            ]
        );
        // Dollar-quoted bodies are one string, whatever they hold.
        let (items, _) = split(
            "create function g() returns void language plpgsql as $$ begin perform 1; end $$; select 2;",
        );
        assert_eq!(items.len(), 2);
        // A parenthesised BEGIN (an argument name) is not a block.
        let (items, _) =
            split("create function h(begin int) returns int language sql return 1; select 2;");
        assert_eq!(items.len(), 2);
    }

    #[test]
    fn blank_and_comment_only_input() {
        assert!(is_blank("  \n -- hi\n /* x /* y */ */ ;"));
        assert!(!is_blank("-- hi\nselect"));
        assert!(!is_blank("select '--'"));
        assert!(split_script("-- only a comment\n").is_empty());
        assert_eq!(statement_text("-- c\n/* d */ select 1 ;  "), "select 1");
    }

    /// SQL-ish fragments that stress every lexer state, glued at random.
    fn fragment() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            Just(";".to_owned()),
            Just("'".to_owned()),
            Just("''".to_owned()),
            Just("E'\\'".to_owned()),
            Just("e'\\".to_owned()),
            Just("\"".to_owned()),
            Just("$$".to_owned()),
            Just("$tag$".to_owned()),
            Just("$1".to_owned()),
            Just("--".to_owned()),
            Just("\n".to_owned()),
            Just("/*".to_owned()),
            Just("*/".to_owned()),
            Just("(".to_owned()),
            Just(")".to_owned()),
            Just("\\x".to_owned()),
            Just("create function f() ".to_owned()),
            Just(" begin ".to_owned()),
            Just(" case ".to_owned()),
            Just(" END ".to_owned()),
            Just(" select 1 ".to_owned()),
            Just("ü日".to_owned()),
            any::<char>().prop_map(String::from),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(2000))]

        /// Never panics, and the pieces always give back the input: each
        /// span is its item's text, after only whitespace and comments for a
        /// meta-command, and the spans and the rest cover the input.
        #[test]
        fn split_round_trips(parts in proptest::collection::vec(fragment(), 0..40)) {
            let input = parts.concat();
            let (spans, rest) = split_spans(&input);
            let end = input.len() - rest.len();
            proptest::prop_assert_eq!(&input[end..], rest);
            let mut at = 0;
            for (n, (start, item)) in spans.iter().enumerate() {
                proptest::prop_assert_eq!(*start, at);
                let next = spans.get(n + 1).map_or(end, |(s, _)| *s);
                let span = &input[*start..next];
                let raw = item.raw();
                proptest::prop_assert!(span.ends_with(raw), "{span:?} {raw:?}");
                let skipped = &span[..span.len() - raw.len()];
                match item {
                    Item::Sql(raw) => {
                        let go = raw.lines().last().is_some_and(|l| l.contains("\\g"));
                        proptest::prop_assert!(raw.ends_with(';') || go, "{raw:?}");
                        proptest::prop_assert_eq!(skipped, "");
                    }
                    Item::Meta(raw) => {
                        proptest::prop_assert!(raw.starts_with('\\'));
                        proptest::prop_assert!(is_blank(skipped), "{skipped:?}");
                    }
                }
                let _ = statement_text(raw);
                at = next;
            }
            proptest::prop_assert_eq!(at, end);
            let (items, split_rest) = split(&input);
            proptest::prop_assert_eq!(items.len(), spans.len());
            proptest::prop_assert_eq!(split_rest, rest);
            let _ = is_blank(&input);
            let script = split_script(&input);
            proptest::prop_assert_eq!(&script[..spans.len()], &items[..]);
            proptest::prop_assert_eq!(script.len(), spans.len() + usize::from(!is_blank(rest)));
        }

        /// Arbitrary text, with either string setting: nothing panics, and
        /// every piece the splitter hands out gives a statement text.
        #[test]
        fn arbitrary_text_never_panics(input in ".{0,200}", std_strings: bool, more: bool) {
            let lexer = Lexer { std_strings, first_line_std_strings: Some(!std_strings), more_to_come: more };
            let _ = statement_text_with(&input, lexer);
            let _ = is_blank(&input);
            let _ = top_level_words(&input, lexer);
            let (spans, rest) = split_spans_with(&input, lexer);
            for (_, item) in &spans {
                let _ = statement_text_with(item.raw(), lexer);
                let _ = top_level_words(item.raw(), lexer);
            }
            let _ = statement_text_with(rest, lexer);
        }

        /// Splitting a statement list that is known to be well-formed finds
        /// exactly its statements, whatever the quotes hold.
        #[test]
        fn finds_each_generated_statement(bodies in proptest::collection::vec("[a-z; '$()/*-]{0,12}", 1..6)) {
            let statements: Vec<String> = bodies
                .iter()
                .enumerate()
                .map(|(n, body)| format!("select $q{n}$ {body} $q{n}$, E'{}', \"{}\"", body.replace('\'', "\\'"), body.replace('"', "\"\"")))
                .collect();
            let input = statements.iter().map(|s| format!("{s};\n")).collect::<String>();
            let (items, rest) = split(&input);
            proptest::prop_assert_eq!(rest, "\n");
            let got: Vec<String> = items.iter().map(|i| statement_text(i.raw()).into_owned()).collect();
            proptest::prop_assert_eq!(got, statements.iter().map(String::as_str).collect::<Vec<_>>());
        }
    }

    #[test]
    fn statement_text_is_total() {
        // Once a panic: an unclosed comment at the front.
        assert_eq!(statement_text("/*end*aaend;-BEGIN ATOMIC$$"), "");
        assert_eq!(statement_text("/* a */ /* b"), "");
        assert_eq!(statement_text(""), "");
        assert_eq!(statement_text(";"), "");
        assert_eq!(statement_text("select 1 \\g\n"), "select 1");
        assert_eq!(
            statement_text("select 1\\; select 2;"),
            "select 1; select 2"
        );
        assert_eq!(statement_text("select ':a\\;'\\:x;"), "select ':a\\;':x");
        assert_eq!(
            statement_text("select 1,\n\n\n  'a\n\nb' -- c\n\n/* \n\n */ from t;"),
            "select 1,\n  'a\n\nb' -- c\n/* \n\n */ from t"
        );
    }

    #[test]
    fn backslash_strings_when_standard_conforming_strings_is_off() {
        let input = "select 'a\\';b';\nselect 2;\n";
        let off = Lexer {
            std_strings: false,
            first_line_std_strings: None,
            more_to_come: false,
        };
        let (spans, rest) = split_spans_with(input, off);
        let items: Vec<_> = spans.into_iter().map(|(_, i)| i).collect();
        assert_eq!(sql(&items), ["select 'a\\';b'", "select 2"]);
        assert_eq!(rest, "\n");
        // With it on (the default) the backslash is a character.
        let (items, _) = split(input);
        assert_eq!(sql(&items)[0], "select 'a\\'");
        // The first line goes by the setting its line started with, later
        // lines by the current one.
        let lexer = Lexer {
            std_strings: false,
            first_line_std_strings: Some(true),
            more_to_come: false,
        };
        let (item, _) = next_item(" select 'a\\'; select 'b';", lexer).unwrap();
        assert_eq!(item.raw(), " select 'a\\';");
        let (item, _) = next_item(" \nselect 'a\\';b'; select 3;", lexer).unwrap();
        assert_eq!(item.raw(), " \nselect 'a\\';b';");
    }

    #[test]
    fn dollar_quotes_start_where_psql_starts_them() {
        // After a number, a parameter or an operator: a quote.
        let (items, rest) = split("select 1$$;$$; select 2;");
        assert_eq!(sql(&items), ["select 1$$;$$", "select 2"]);
        assert_eq!(rest, "");
        let (items, _) = split("select $1$$;$$; select 2;");
        assert_eq!(sql(&items), ["select $1$$;$$", "select 2"]);
        let (items, _) = split("select 1+$q$;$q$; select 2;");
        assert_eq!(items.len(), 2);
        // Inside an identifier: part of it.
        let (items, _) = split("select a$$; select 2;");
        assert_eq!(sql(&items), ["select a$$", "select 2"]);
        // `$abc` without a closing `$`: `$`, then an identifier.
        let (items, _) = split("select $abc; select 2;");
        assert_eq!(items.len(), 2);
    }

    #[test]
    fn prefixed_and_continued_strings() {
        // A string continued over a newline is a new plain string to psql,
        // which lexes line by line.
        let (items, rest) = split("select E'a'\n  '\\';'; select 2;");
        assert_eq!(sql(&items), ["select E'a'\n  '\\'"]);
        assert_eq!(rest, "'; select 2;");
        // Without the newline it is a new, plain string.
        let (items, _) = split("select E'a' '\\'; select 2;");
        assert_eq!(sql(&items), ["select E'a' '\\'", "select 2"]);
        // B'' X'' N'' U&'' strings and U&"" identifiers.
        let (items, _) = split("select B'1;', X'f;', N'n;', U&'u\\;', U&\"i;\"; select 2;");
        assert_eq!(items.len(), 2);
        // `1e'…'` is the junk token `1e` then a plain string (PostgreSQL 15).
        let (items, _) = split("select 1e'\\'; select 2;");
        assert_eq!(items.len(), 2);
    }

    #[test]
    fn psql_backslash_forms_inside_statements() {
        let (items, rest) = split("select 1 \\; select 2;\nselect 3 \\g\nselect 4\\gx\n");
        assert_eq!(sql(&items), ["select 1 ; select 2", "select 3", "select 4"]);
        assert_eq!(rest, "");
        // Streaming: a `\g` or meta-command line without its newline waits.
        let more = Lexer {
            std_strings: true,
            first_line_std_strings: None,
            more_to_come: true,
        };
        assert_eq!(next_item("select 1 \\g", more), None);
        assert_eq!(next_item("\\i fi", more), None);
        assert!(next_item("\\i file\n", more).is_some());
    }

    #[test]
    fn words_at_the_top_level() {
        let lexer = Lexer::default();
        assert_eq!(
            top_level_words(
                "COPY (select 'to stdout') TO STDOUT with (format csv)",
                lexer
            ),
            ["COPY", "TO", "STDOUT", "with"]
        );
        assert_eq!(
            top_level_words("copy t(a, b) from stdin -- to stdout\n", lexer),
            ["copy", "t", "from", "stdin"]
        );
    }

    #[test]
    fn non_ascii_text_is_kept_whole() {
        let (items, rest) = split("select 'ü;ß'; select \"日本\";");
        assert_eq!(sql(&items), ["select 'ü;ß'", "select \"日本\""]);
        assert_eq!(rest, "");
    }
}
