//! Where statements end: the splitter shared by `-c`, `-f`, stdin scripts and
//! the interactive prompt (issue 5).
//!
//! A statement ends at `;` outside single quotes (`''` doubled), `E''`
//! strings (backslash escapes), double-quoted identifiers, dollar quotes with
//! tags (`$fn$ … $fn$`), `--` line comments, nested `/* */` comments and
//! parentheses. A line that starts with `\` where a statement would start is a
//! meta-command and ends at the end of that line, as in psql; whitespace and
//! comments before it are not part of it (`-- list tables` then `\dt`).
//! SQL-standard function bodies (`CREATE FUNCTION … BEGIN ATOMIC … END`)
//! keep their inner `;`, with psql's heuristic (see [`next_item`]).
//!
//! The splitter never fails: unbalanced input is simply "not finished yet".
//! Every byte of the input is in an item, in the unfinished rest, or in the
//! whitespace and comments skipped before a meta-command ([`split_spans`]).

/// One runnable piece of input, with its exact source text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// SQL up to and including its `;` (leading whitespace and comments too).
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
    let mut items = Vec::new();
    let mut at = 0;
    while let Some((item, len)) = next_item(&input[at..]) {
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

/// The statement to send: comments at the front and the final `;` removed,
/// surrounding whitespace trimmed. Comments inside are kept (the server
/// handles them, and error positions stay meaningful).
pub fn statement_text(raw: &str) -> &str {
    let mut s = raw;
    loop {
        let t = s.trim_start();
        if let Some(after) = t.strip_prefix("--") {
            s = after.find('\n').map_or("", |i| &after[i + 1..]);
        } else if t.starts_with("/*") {
            let end = block_comment_end(t.as_bytes(), 0);
            s = &t[end..];
        } else {
            s = t;
            break;
        }
    }
    let s = s.trim_end();
    s.strip_suffix(';').unwrap_or(s).trim_end()
}

/// The input with comments removed (string contents are left alone).
fn strip_comments(sql: &str) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        match b[i] {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                out.push_str(&sql[last..i]);
                i = line_end(b, i);
                last = i;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                out.push_str(&sql[last..i]);
                out.push(' ');
                i = block_comment_end(b, i);
                last = i;
            }
            b'\'' => i = single_quote_end(b, i, is_escape_string(b, i)),
            b'"' => i = double_quote_end(b, i),
            b'$' => i = dollar_quote_end(b, i).unwrap_or(i + 1),
            _ => i += 1,
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
fn next_item(input: &str) -> Option<(Item, usize)> {
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
            i = block_comment_end(b, i);
            if i > b.len() {
                return None;
            }
        } else {
            break;
        }
    }
    if i >= b.len() {
        return None;
    }
    if b[i] == b'\\' {
        // Meta-command: to the end of the line. Complete at end of input too:
        // a prompt line has no newline.
        let end = b[i..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(b.len(), |p| i + p + 1);
        return Some((Item::Meta(input[i..end].to_owned()), end));
    }
    let mut depth = 0usize;
    // The first words, each reduced to its initial when it is one of
    // CREATE, OR, REPLACE, FUNCTION, PROCEDURE (else 0), as psql does.
    let mut head = [0u8; 4];
    let mut words = 0usize;
    let mut blocks = 0usize;
    while i < b.len() {
        match b[i] {
            b'-' if b.get(i + 1) == Some(&b'-') => i = line_end(b, i),
            b'/' if b.get(i + 1) == Some(&b'*') => i = block_comment_end(b, i),
            b'\'' => i = single_quote_end(b, i, is_escape_string(b, i)),
            b'"' => i = double_quote_end(b, i),
            b'$' => i = dollar_quote_end(b, i).unwrap_or(i + 1),
            b'(' => {
                depth += 1;
                i += 1;
            }
            b')' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b';' if depth == 0 && blocks == 0 => {
                return Some((Item::Sql(input[..=i].to_owned()), i + 1));
            }
            c if is_ident_start(c) && (i == 0 || !is_ident_byte(b[i - 1])) => {
                let end = b[i..]
                    .iter()
                    .position(|&c| !is_ident_byte(c))
                    .map_or(b.len(), |p| i + p);
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
            _ => i += 1,
        }
    }
    None
}

/// Index just past the `\n` ending the line comment at `i` (or input end).
fn line_end(b: &[u8], i: usize) -> usize {
    b[i..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(b.len(), |p| i + p + 1)
}

/// Index just past the `*/` closing the (nested) comment opened at `i`;
/// `b.len() + 1` when it never closes, so callers can tell.
fn block_comment_end(b: &[u8], i: usize) -> usize {
    let mut depth = 0usize;
    let mut j = i;
    while j + 1 < b.len() {
        if b[j] == b'/' && b[j + 1] == b'*' {
            depth += 1;
            j += 2;
        } else if b[j] == b'*' && b[j + 1] == b'/' {
            depth -= 1;
            j += 2;
            if depth == 0 {
                return j;
            }
        } else {
            j += 1;
        }
    }
    b.len() + 1
}

/// A byte that can start an identifier or keyword (`[A-Za-z_]`, non-ASCII).
fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// `'` at `i` opens an E'' string when preceded by a lone `E`/`e`.
fn is_escape_string(b: &[u8], i: usize) -> bool {
    i >= 1 && matches!(b[i - 1], b'e' | b'E') && (i == 1 || !is_ident_byte(b[i - 2]))
}

/// Index just past the quote closing the string opened at `i` (or input end).
fn single_quote_end(b: &[u8], i: usize, escapes: bool) -> usize {
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' if escapes => j += 2,
            b'\'' if b.get(j + 1) == Some(&b'\'') => j += 2,
            b'\'' => return j + 1,
            _ => j += 1,
        }
    }
    b.len()
}

fn double_quote_end(b: &[u8], i: usize) -> usize {
    b[i + 1..]
        .iter()
        .position(|&c| c == b'"')
        .map_or(b.len(), |p| i + 1 + p + 1)
}

/// When `$` at `i` opens a dollar quote (`$$` or `$tag$`), the index just past
/// its closing delimiter (or input end); `None` when it is not a dollar quote
/// (`$1`, or part of an identifier like `a$b`).
fn dollar_quote_end(b: &[u8], i: usize) -> Option<usize> {
    if i > 0 && is_ident_byte(b[i - 1]) {
        return None;
    }
    let mut j = i + 1;
    if j < b.len() && (b[j].is_ascii_alphabetic() || b[j] == b'_' || b[j] >= 0x80) {
        while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] >= 0x80) {
            j += 1;
        }
    }
    if b.get(j) != Some(&b'$') {
        return None;
    }
    let tag = &b[i..=j];
    let body = j + 1;
    Some(
        b[body..]
            .windows(tag.len())
            .position(|w| w == tag)
            .map_or(b.len(), |p| body + p + tag.len()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(items: &[Item]) -> Vec<&str> {
        items.iter().map(|i| statement_text(i.raw())).collect()
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
                        proptest::prop_assert!(raw.ends_with(';'));
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
            let got: Vec<&str> = items.iter().map(|i| statement_text(i.raw())).collect();
            proptest::prop_assert_eq!(got, statements.iter().map(String::as_str).collect::<Vec<_>>());
        }
    }

    #[test]
    fn non_ascii_text_is_kept_whole() {
        let (items, rest) = split("select 'ü;ß'; select \"日本\";");
        assert_eq!(sql(&items), ["select 'ü;ß'", "select \"日本\""]);
        assert_eq!(rest, "");
    }
}
