//! Result sets as text: comfy-table tables (plain or expanded), RFC 4180 CSV,
//! and JSON with typed values.
//!
//! Values arrive in PostgreSQL's text format (simple query protocol), which is
//! exact for every type — `numeric` and `int8` included — and, for JSON, the
//! column types come from a Describe of the same statement. JSON turns the text into
//! typed values by type OID: numbers stay numbers digit for digit (we write
//! the server's text, never an f64), `t`/`f` become booleans, json/jsonb are
//! embedded as JSON, arrays become arrays, timestamps become ISO 8601 strings
//! and bytea stays `\x…` hex. Anything else is a string.

use std::fmt::Write as _;

use comfy_table::{Attribute, Cell, CellAlignment, ContentArrangement, Table};
use tokio_postgres::types::{Kind, Type};

/// One column: its name and, when the Describe succeeded, its type.
#[derive(Clone, Debug)]
pub struct Column {
    pub name: String,
    pub ty: Option<Type>,
}

/// A statement's rows in text form; `None` is SQL NULL.
#[derive(Clone, Debug, Default)]
pub struct ResultSet {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Option<String>>>,
}

/// How NULL looks in tables and expanded output unless `\pset null` says
/// otherwise: not an empty cell (the empty string looks like that) and not
/// `NULL` (the text 'NULL' looks like that).
pub const NULL: &str = "∅";

/// A table: a header, one row per row, numbers right-aligned; NULL as
/// `null` (in dim italics on a terminal). Tables are drawn without a
/// Describe (see `exec::Runner::run_sql`), so a column without a type is
/// right-aligned when every value in it reads as a number.
pub fn table(rs: &ResultSet, tty: bool, null: &str) -> String {
    let mut table = Table::new();
    table.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
    if tty {
        table.set_content_arrangement(ContentArrangement::Dynamic);
    } else {
        table.force_no_tty();
    }
    table.set_header(rs.columns.iter().map(|c| Cell::new(&c.name)));
    let numeric: Vec<bool> = rs
        .columns
        .iter()
        .enumerate()
        .map(|(i, col)| match &col.ty {
            Some(ty) => is_number(ty),
            None => {
                let mut values = rs.rows.iter().filter_map(|r| r.get(i)?.as_deref());
                let mut any = false;
                values.all(|v| {
                    any = true;
                    looks_numeric(v)
                }) && any
            }
        })
        .collect();
    for row in &rs.rows {
        table.add_row(row.iter().zip(&numeric).map(|(value, &numeric)| {
            match value {
                Some(v) => {
                    let cell = Cell::new(v);
                    if numeric {
                        cell.set_alignment(CellAlignment::Right)
                    } else {
                        cell
                    }
                }
                None => Cell::new(null)
                    .add_attribute(Attribute::Dim)
                    .add_attribute(Attribute::Italic),
            }
        }));
    }
    let mut out = table.to_string();
    out.push('\n');
    out
}

/// `\x`: one block per row, one line per field; NULL as `null`.
pub fn expanded(rs: &ResultSet, null: &str) -> String {
    let width = rs
        .columns
        .iter()
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (n, row) in rs.rows.iter().enumerate() {
        let _ = writeln!(out, "-[ RECORD {} ]{}", n + 1, "-".repeat(width.max(4)));
        for (col, value) in rs.columns.iter().zip(row) {
            let value = value.as_deref().unwrap_or(null);
            let mut lines = value.split('\n');
            let _ = writeln!(out, "{:<width$} | {}", col.name, lines.next().unwrap_or(""));
            for line in lines {
                let _ = writeln!(out, "{:<width$} | {line}", "");
            }
        }
    }
    if rs.rows.is_empty() {
        out.push_str("(no rows)\n");
    }
    out
}

/// RFC 4180: a header record, CRLF between records, fields quoted when they
/// hold a comma, a quote, CR or LF (quotes doubled). NULL is an empty
/// unquoted field and the empty string is `""`, so they stay apart.
pub fn csv(rs: &ResultSet) -> String {
    let mut out = String::new();
    let names: Vec<Option<&str>> = rs.columns.iter().map(|c| Some(c.name.as_str())).collect();
    csv_record(&mut out, &names);
    for row in &rs.rows {
        let fields: Vec<Option<&str>> = row.iter().map(Option::as_deref).collect();
        csv_record(&mut out, &fields);
    }
    out
}

fn csv_record(out: &mut String, fields: &[Option<&str>]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match field {
            None => {}
            Some(f) if f.is_empty() || f.contains([',', '"', '\n', '\r']) => {
                out.push('"');
                out.push_str(&f.replace('"', "\"\""));
                out.push('"');
            }
            Some(f) => out.push_str(f),
        }
    }
    out.push_str("\r\n");
}

/// A JSON array with one object per row, on one line: several result sets
/// make JSON Lines, one array per line, and one result set is a JSON
/// document. Duplicate column names (`select 1, 1`) get `_2`, `_3` … so no
/// value is lost.
pub fn json(rs: &ResultSet) -> String {
    let keys = unique_names(&rs.columns);
    let mut out = String::from("[");
    for (n, row) in rs.rows.iter().enumerate() {
        out.push_str(if n == 0 { "{" } else { ", {" });
        for (i, ((key, col), value)) in keys.iter().zip(&rs.columns).zip(row).enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&json_string(key));
            out.push_str(": ");
            match value {
                None => out.push_str("null"),
                Some(text) => out.push_str(&typed(text, col.ty.as_ref())),
            }
        }
        out.push('}');
    }
    out.push_str("]\n");
    out
}

fn unique_names(columns: &[Column]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::with_capacity(columns.len());
    for col in columns {
        let mut name = col.name.clone();
        let mut n = 1;
        while seen.contains(&name) {
            n += 1;
            name = format!("{}_{n}", col.name);
        }
        seen.push(name);
    }
    seen
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

fn is_number(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::INT2
            | Type::INT4
            | Type::INT8
            | Type::OID
            | Type::FLOAT4
            | Type::FLOAT8
            | Type::NUMERIC
    )
}

/// The JSON for one non-NULL value in text form.
fn typed(text: &str, ty: Option<&Type>) -> String {
    let Some(ty) = ty else {
        return json_string(text);
    };
    if let Kind::Array(elem) = ty.kind()
        && let Some(array) = parse_array(text)
    {
        return array_json(&array, elem);
    }
    if is_number(ty) {
        // NaN and ±Infinity have no JSON number: keep them as strings.
        return if is_json_number(text) {
            text.to_owned()
        } else {
            json_string(text)
        };
    }
    match *ty {
        Type::BOOL => match text {
            "t" => "true".to_owned(),
            "f" => "false".to_owned(),
            other => json_string(other),
        },
        Type::JSON | Type::JSONB if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() => {
            // The server's own JSON text, embedded verbatim: no float rounding.
            // Raw line breaks in valid JSON are whitespace: spaces keep the
            // result set on one line.
            text.trim().replace(['\n', '\r'], " ")
        }
        Type::TIMESTAMPTZ | Type::TIMESTAMP => json_string(&iso_timestamp(text)),
        _ => json_string(text),
    }
}

/// A value as PostgreSQL prints numbers: JSON's grammar plus `NaN` and
/// `±Infinity`.
fn looks_numeric(text: &str) -> bool {
    is_json_number(text) || matches!(text, "NaN" | "Infinity" | "-Infinity")
}

/// JSON's number grammar (RFC 8259 §6).
fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let int_start = i;
    let n = digits(&mut i);
    if n == 0 || (n > 1 && b[int_start] == b'0') {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// `2024-05-01 12:34:56.5+02` (DateStyle ISO) → `2024-05-01T12:34:56.5+02:00`.
/// Any other DateStyle, `infinity` and BC dates pass through unchanged.
pub fn iso_timestamp(text: &str) -> String {
    let b = text.as_bytes();
    let shaped = b.len() >= 19
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':'
        && !text.ends_with(" BC");
    if !shaped {
        return text.to_owned();
    }
    let mut out = format!("{}T{}", &text[..10], &text[11..]);
    // A zone offset of `+HH` or `+HH:MM[:SS]` after the seconds.
    // `get`: byte 19 need not be a character boundary in odd text.
    if let Some(pos) = out
        .get(19..)
        .and_then(|t| t.find(['+', '-']))
        .map(|p| p + 19)
    {
        let zone = &out[pos + 1..];
        if zone.len() == 2 && zone.bytes().all(|c| c.is_ascii_digit()) {
            out.push_str(":00");
        }
    }
    out
}

/// A parsed array literal: nested lists of text elements, NULL as `None`.
#[derive(Debug, PartialEq)]
pub enum ArrayValue {
    List(Vec<ArrayValue>),
    Item(Option<String>),
}

/// Parse PostgreSQL's array output (`{1,2}`, `{{"a,b",NULL}}`, with an
/// optional `[1:2]=` dimension prefix). `None` when it is not one.
pub fn parse_array(text: &str) -> Option<ArrayValue> {
    let text = match text.find("={") {
        Some(p) if text.starts_with('[') => &text[p + 1..],
        _ => text,
    };
    let b = text.as_bytes();
    let mut i = 0;
    let value = parse_list(text, b, &mut i)?;
    (i == b.len()).then_some(value)
}

fn parse_list(text: &str, b: &[u8], i: &mut usize) -> Option<ArrayValue> {
    if b.get(*i) != Some(&b'{') {
        return None;
    }
    *i += 1;
    let mut items = Vec::new();
    if b.get(*i) == Some(&b'}') {
        *i += 1;
        return Some(ArrayValue::List(items));
    }
    loop {
        match b.get(*i)? {
            b'{' => items.push(parse_list(text, b, i)?),
            b'"' => {
                *i += 1;
                let mut s = String::new();
                loop {
                    match b.get(*i)? {
                        b'\\' => {
                            let c = text[*i + 1..].chars().next()?;
                            s.push(c);
                            *i += 1 + c.len_utf8();
                        }
                        b'"' => {
                            *i += 1;
                            break;
                        }
                        _ => {
                            let c = text[*i..].chars().next()?;
                            s.push(c);
                            *i += c.len_utf8();
                        }
                    }
                }
                items.push(ArrayValue::Item(Some(s)));
            }
            _ => {
                let start = *i;
                while !matches!(b.get(*i)?, b',' | b'}' | b';') {
                    *i += 1;
                }
                let raw = text[start..*i].trim();
                items.push(ArrayValue::Item(
                    (!raw.eq_ignore_ascii_case("NULL")).then(|| raw.to_owned()),
                ));
            }
        }
        match b.get(*i)? {
            b',' | b';' => *i += 1,
            b'}' => {
                *i += 1;
                return Some(ArrayValue::List(items));
            }
            _ => return None,
        }
    }
}

fn array_json(value: &ArrayValue, elem: &Type) -> String {
    match value {
        ArrayValue::Item(None) => "null".to_owned(),
        ArrayValue::Item(Some(text)) => typed(text, Some(elem)),
        ArrayValue::List(items) => {
            let parts: Vec<String> = items.iter().map(|v| array_json(v, elem)).collect();
            format!("[{}]", parts.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(cols: &[(&str, Type)], rows: &[&[Option<&str>]]) -> ResultSet {
        ResultSet {
            columns: cols
                .iter()
                .map(|(n, t)| Column {
                    name: (*n).to_owned(),
                    ty: Some(t.clone()),
                })
                .collect(),
            rows: rows
                .iter()
                .map(|r| r.iter().map(|v| v.map(str::to_owned)).collect())
                .collect(),
        }
    }

    #[test]
    fn json_values_are_typed() {
        let r = rs(
            &[
                ("i", Type::INT8),
                ("n", Type::NUMERIC),
                ("b", Type::BOOL),
                ("j", Type::JSONB),
                ("a", Type::INT4_ARRAY),
                ("t", Type::TEXT_ARRAY),
                ("ts", Type::TIMESTAMPTZ),
                ("x", Type::BYTEA),
                ("f", Type::FLOAT8),
                ("z", Type::TEXT),
            ],
            &[&[
                Some("9223372036854775807"),
                Some("12345678901234567890.000000000001"),
                Some("t"),
                Some(r#"{"a": [1, 2.5]}"#),
                Some("{{1,2},{NULL,4}}"),
                Some(r#"{"a,b","c\"d",NULL,plain}"#),
                Some("2024-05-01 12:34:56.5+02"),
                Some(r"\xdead"),
                Some("NaN"),
                None,
            ]],
        );
        let out = json(&r);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let row = &v[0];
        assert_eq!(row["b"], true);
        assert_eq!(row["j"]["a"][1], 2.5);
        assert_eq!(row["a"], serde_json::json!([[1, 2], [null, 4]]));
        assert_eq!(row["t"], serde_json::json!(["a,b", "c\"d", null, "plain"]));
        assert_eq!(row["ts"], "2024-05-01T12:34:56.5+02:00");
        assert_eq!(row["x"], r"\xdead");
        assert_eq!(row["f"], "NaN");
        assert_eq!(row["z"], serde_json::Value::Null);
        // Digits are the server's, not an f64's.
        assert!(out.contains(r#""i": 9223372036854775807"#), "{out}");
        assert!(
            out.contains(r#""n": 12345678901234567890.000000000001"#),
            "{out}"
        );
    }

    #[test]
    fn json_of_no_rows_and_duplicate_names() {
        assert_eq!(json(&rs(&[("a", Type::INT4)], &[])), "[]\n");
        let out = json(&rs(
            &[("a", Type::INT4), ("a", Type::INT4)],
            &[&[Some("1"), Some("2")]],
        ));
        assert_eq!(out, "[{\"a\": 1, \"a_2\": 2}]\n");
    }

    #[test]
    fn csv_quotes_what_rfc_4180_requires() {
        let r = rs(
            &[("a", Type::TEXT), ("b", Type::TEXT)],
            &[&[Some("x,y"), Some("say \"hi\"\nbye")], &[None, Some("")]],
        );
        assert_eq!(
            csv(&r),
            "a,b\r\n\"x,y\",\"say \"\"hi\"\"\nbye\"\r\n,\"\"\r\n"
        );
    }

    #[test]
    fn json_numbers_follow_the_grammar() {
        for ok in ["0", "-1", "1.5", "1e10", "-0.5E-3", "12345678901234567890"] {
            assert!(is_json_number(ok), "{ok}");
        }
        for bad in ["", "-", "01", "1.", ".5", "NaN", "Infinity", "1e", "+1"] {
            assert!(!is_json_number(bad), "{bad}");
        }
    }

    #[test]
    fn timestamps_become_iso() {
        assert_eq!(
            iso_timestamp("2024-01-02 03:04:05+00"),
            "2024-01-02T03:04:05+00:00"
        );
        assert_eq!(
            iso_timestamp("2024-01-02 03:04:05.123-05:30"),
            "2024-01-02T03:04:05.123-05:30"
        );
        assert_eq!(iso_timestamp("2024-01-02 03:04:05"), "2024-01-02T03:04:05");
        assert_eq!(iso_timestamp("infinity"), "infinity");
        // Shaped like a timestamp up to byte 16, with non-ASCII after it
        // (across byte 19 in the first): no panic.
        assert_eq!(
            iso_timestamp("2024-01-02 03:04:5ü+01"),
            "2024-01-02T03:04:5ü+01"
        );
        assert_eq!(
            iso_timestamp("2024-01-02 03:04:ü日+01"),
            "2024-01-02T03:04:ü日+01:00"
        );
    }

    #[test]
    fn array_literals() {
        assert_eq!(parse_array("{}"), Some(ArrayValue::List(vec![])));
        assert_eq!(
            parse_array("[0:1]={a,b}"),
            Some(ArrayValue::List(vec![
                ArrayValue::Item(Some("a".into())),
                ArrayValue::Item(Some("b".into()))
            ]))
        );
        assert_eq!(
            parse_array("{\"NULL\"}"),
            Some(ArrayValue::List(vec![ArrayValue::Item(Some(
                "NULL".into()
            ))]))
        );
        assert_eq!(parse_array("{1,2"), None);
        assert_eq!(parse_array("nope"), None);
        assert_eq!(
            parse_array("{\"ü\\\"\"}"),
            Some(ArrayValue::List(vec![ArrayValue::Item(Some("ü\"".into()))]))
        );
    }

    #[test]
    fn untyped_tables_right_align_numeric_columns() {
        let r = ResultSet {
            columns: ["n", "t", "none"]
                .iter()
                .map(|n| Column {
                    name: (*n).to_owned(),
                    ty: None,
                })
                .collect(),
            rows: vec![
                vec![Some("1".into()), Some("abc".into()), None],
                vec![Some("12345.5".into()), Some("7".into()), None],
                vec![None, Some("x".into()), None],
            ],
        };
        let out = table(&r, false, "NULL");
        // `n` right-aligned, `t` (text in it) and the all-NULL column not.
        assert!(out.contains("│       1 ┆ abc ┆ NULL │"), "{out}");
        assert!(out.contains("│ 12345.5 ┆ 7   ┆ NULL │"), "{out}");
        assert!(looks_numeric("-Infinity") && !looks_numeric("1,5"));
    }

    #[test]
    fn tables_show_null_distinctly() {
        let r = rs(
            &[("a", Type::TEXT)],
            &[&[None], &[Some("")], &[Some("NULL")]],
        );
        let out = table(&r, false, NULL);
        assert!(out.contains("│ ∅    │"), "{out}");
        assert!(out.contains("│      │"), "{out}");
        assert!(out.contains("│ NULL │"), "{out}");
        let out = expanded(&r, "(null)");
        assert!(
            out.contains("-[ RECORD 1 ]") && out.contains("a | (null)"),
            "{out}"
        );
    }
}
