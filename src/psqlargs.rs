//! Which psql arguments `rdsiam psql` refuses (issue 10): anything that
//! would move the connection or turn TLS off. The token is a password sent
//! in cleartext, so `sslmode=disable`, a `postgresql://` URI, or
//! `host=`/`hostaddr=`/`-h` pointing elsewhere would hand it to whoever
//! listens. Connection settings belong to rdsiam's own flags.

use std::ffi::OsString;

use anyhow::Result;

use crate::error::Failure;

/// psql's short options that take a value (its getopt string
/// `aAbc:d:eEf:F:h:HlL:no:p:P:qR:sStT:U:v:VwWxXz?01`).
const SHORT_WITH_VALUE: &[u8] = b"cdfFhLopPRTUv";

/// How a long option takes its value, as in `struct option`.
#[derive(Clone, Copy, PartialEq)]
enum HasArg {
    No,
    Required,
    Optional,
}

/// psql's long options (`long_options[]` in src/bin/psql/startup.c) with the
/// short letter each stands for; getopt_long accepts any unique prefix of
/// these names, so `--db=` is `--dbname=` and `--ho` is `--host` (issue 24).
const LONG_OPTIONS: &[(&str, HasArg, char)] = &[
    ("echo-all", HasArg::No, 'a'),
    ("no-align", HasArg::No, 'A'),
    ("command", HasArg::Required, 'c'),
    ("dbname", HasArg::Required, 'd'),
    ("echo-queries", HasArg::No, 'e'),
    ("echo-errors", HasArg::No, 'b'),
    ("echo-hidden", HasArg::No, 'E'),
    ("file", HasArg::Required, 'f'),
    ("field-separator", HasArg::Required, 'F'),
    ("field-separator-zero", HasArg::No, 'z'),
    ("host", HasArg::Required, 'h'),
    ("html", HasArg::No, 'H'),
    ("list", HasArg::No, 'l'),
    ("log-file", HasArg::Required, 'L'),
    ("no-readline", HasArg::No, 'n'),
    ("single-transaction", HasArg::No, '1'),
    ("output", HasArg::Required, 'o'),
    ("port", HasArg::Required, 'p'),
    ("pset", HasArg::Required, 'P'),
    ("quiet", HasArg::No, 'q'),
    ("record-separator", HasArg::Required, 'R'),
    ("record-separator-zero", HasArg::No, '0'),
    ("single-step", HasArg::No, 's'),
    ("single-line", HasArg::No, 'S'),
    ("tuples-only", HasArg::No, 't'),
    ("table-attr", HasArg::Required, 'T'),
    ("username", HasArg::Required, 'U'),
    ("set", HasArg::Required, 'v'),
    ("variable", HasArg::Required, 'v'),
    ("version", HasArg::No, 'V'),
    ("no-password", HasArg::No, 'w'),
    ("password", HasArg::No, 'W'),
    ("expanded", HasArg::No, 'x'),
    ("no-psqlrc", HasArg::No, 'X'),
    ("help", HasArg::Optional, '?'),
    ("csv", HasArg::No, '2'),
];

/// The long option `name` names, by getopt_long's rule: an exact name wins,
/// else a prefix of exactly one option (or of several that mean the same).
fn long_option(name: &str) -> Option<(&'static str, HasArg, char)> {
    if let Some(exact) = LONG_OPTIONS.iter().find(|(n, ..)| *n == name) {
        return Some(*exact);
    }
    let mut found: Option<(&'static str, HasArg, char)> = None;
    for option in LONG_OPTIONS.iter().filter(|(n, ..)| n.starts_with(name)) {
        match found {
            None => found = Some(*option),
            Some((_, has_arg, letter)) if has_arg == option.1 && letter == option.2 => {}
            Some(_) => return None,
        }
    }
    found
}

/// Connection-string keys that move the connection or change its TLS.
const MANAGED_KEYS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "sslmode",
    "requiressl",
    "sslnegotiation",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "service",
    "servicefile",
];

/// Refuse arguments that would override the endpoint or TLS settings.
pub fn check(args: &[OsString]) -> Result<()> {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut i = 0;
    let mut options_done = false;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if options_done || arg == "-" || !arg.starts_with('-') {
            check_dbname(arg)?;
            continue;
        }
        if arg == "--" {
            options_done = true;
            continue;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (long, None),
            };
            // psql would stop at an unknown or ambiguous option; we can't
            // tell what a newer psql would do with it, so refuse it too.
            let Some((full, has_arg, letter)) = long_option(name) else {
                return Err(Failure::usage(format!(
                    "psql argument `{arg}` is not one of psql's options, or is an ambiguous abbreviation"
                ))
                .hint("spell psql's long options in full (see `psql --help`)")
                .into());
            };
            let value = match (has_arg, inline) {
                (_, Some(value)) => value,
                (HasArg::Required, None) => {
                    i += 1;
                    args.get(i - 1).cloned().unwrap_or_default()
                }
                (_, None) => continue,
            };
            match letter {
                'h' | 'p' => return Err(option_refused(arg, full)),
                'd' => check_dbname(&value)?,
                _ => {}
            }
            continue;
        }
        // A cluster of short options: `-tA`, `-qc SQL`, `-dapp`.
        let cluster = &arg.as_bytes()[1..];
        for (at, letter) in cluster.iter().enumerate() {
            if !SHORT_WITH_VALUE.contains(letter) {
                continue;
            }
            let rest = &arg[1 + at + 1..];
            let value = if rest.is_empty() {
                i += 1;
                args.get(i - 1).cloned().unwrap_or_default()
            } else {
                rest.to_owned()
            };
            match letter {
                b'h' => return Err(option_refused(arg, "host")),
                b'p' => return Err(option_refused(arg, "port")),
                b'd' => check_dbname(&value)?,
                _ => {}
            }
            break;
        }
    }
    Ok(())
}

fn option_refused(arg: &str, what: &str) -> anyhow::Error {
    let what = match what {
        "host" | "h" => "host",
        _ => "port",
    };
    Failure::usage(format!(
        "psql argument `{arg}` sets the {what}, which rdsiam manages"
    ))
    .hint("name the endpoint with rdsiam's own flags (--host/--proxy/--cluster/--instance, --port, --via for a tunnel); the token must reach only that endpoint")
    .into()
}

/// A database argument psql would read as a connection string (a URI, or
/// text with `=`) must not carry connection or TLS keys.
fn check_dbname(value: &str) -> Result<()> {
    let lower = value.trim_start().to_ascii_lowercase();
    if lower.starts_with("postgresql://") || lower.starts_with("postgres://") {
        return Err(Failure::usage(
            "psql argument is a connection URI, which can move the connection or turn TLS off",
        )
        .hint("pass the database name alone (`-- -d NAME`, or rdsiam's --dbname) and the endpoint and TLS with rdsiam's own flags")
        .into());
    }
    if !value.contains('=') {
        return Ok(());
    }
    for key in conninfo_keys(value) {
        if MANAGED_KEYS.contains(&key.to_ascii_lowercase().as_str()) {
            let why = if key.to_ascii_lowercase().contains("ssl") {
                "it would change TLS, and the token is a password psql sends in cleartext without it"
            } else {
                "it would send the token somewhere other than the endpoint rdsiam signed it for"
            };
            return Err(Failure::usage(format!(
                "psql connection string sets `{key}`, which rdsiam manages: {why}"
            ))
            .hint("use rdsiam's --sslmode, --ca-bundle, --via and --port instead, and pass psql only `dbname=…` or other session options")
            .into());
        }
    }
    Ok(())
}

/// The keys of a libpq `key=value` string (spaces around `=` allowed,
/// values bare or in single quotes with backslash escapes).
fn conninfo_keys(text: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        if key.is_empty() {
            break;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            break;
        }
        keys.push(key);
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next_if_eq(&'\'').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        chars.next();
                    }
                    '\'' => break,
                    _ => {}
                }
            }
        } else {
            while chars.next_if(|c| !c.is_whitespace()).is_some() {}
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<()> {
        check(&args.iter().map(OsString::from).collect::<Vec<_>>())
    }

    #[test]
    fn session_arguments_pass() {
        for args in [
            &[
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                "select 'host=x sslmode=disable'",
            ][..],
            &["-tAc", "select 1", "--", "-tA", "  spaced  "],
            &["-d", "app"],
            &["dbname=app application_name=x"],
            &["--set=sslmode=disable", "--pset", "format=csv"],
            &["-X", "-f", "host=x.sql"],
            &[
                "--tuples",
                "--no-a",
                "--var",
                "x=1",
                "--csv",
                "--help=variables",
            ],
            &["--comm=select 1", "--echo-q", "--set", "sslmode=disable"],
        ] {
            run(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
    }

    #[test]
    fn tls_and_endpoint_overrides_are_usage_errors() {
        for args in [
            &["sslmode=disable"][..],
            &["dbname=app  sslmode = 'disable'"],
            &["postgresql://u@evil.example/app?sslmode=disable"],
            &["-d", "host=evil.example"],
            &["-dhostaddr=10.0.0.1"],
            &["--dbname=port=1"],
            &["--dbname", "service=x"],
            &["-h", "evil.example"],
            &["-qh", "evil.example"],
            &["--host=evil.example"],
            &["-p", "1"],
            &["--", "requiressl=0"],
            // getopt_long's unique prefixes (issue 24): psql reads these as
            // --dbname, --host and --port.
            &["--d=host=127.0.0.1 sslmode=disable"],
            &["--db=host=127.0.0.1 port=1 sslmode=disable"],
            &["--dbn", "sslmode=disable"],
            &["--ho=evil.example"],
            &["--ho", "evil.example"],
            &["--po=1"],
            &["--por", "1"],
            &["-XAd", "sslmode=disable"],
            // Unknown and ambiguous long options (psql refuses them too).
            &["--s=x"],
            &["--hostaddr=10.0.0.1"],
            &["--sslmode=disable"],
        ] {
            let err = run(args).expect_err(&format!("{args:?} accepted"));
            assert_eq!(crate::error::exit_code(&err), 2, "{args:?}");
        }
    }

    #[test]
    fn conninfo_keys_follow_libpq() {
        assert_eq!(
            conninfo_keys("a=1 b = 'x y\\' z' c='' d=e"),
            ["a", "b", "c", "d"]
        );
    }
}
