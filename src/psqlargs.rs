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

/// psql's long options that take a value.
const LONG_WITH_VALUE: &[&str] = &[
    "command",
    "dbname",
    "file",
    "field-separator",
    "host",
    "log-file",
    "output",
    "port",
    "pset",
    "record-separator",
    "table-attr",
    "username",
    "set",
    "variable",
];

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
            if !LONG_WITH_VALUE.contains(&name) {
                continue;
            }
            let value = match inline {
                Some(value) => value,
                None => {
                    i += 1;
                    args.get(i - 1).cloned().unwrap_or_default()
                }
            };
            match name {
                "host" | "port" => return Err(option_refused(arg, name)),
                "dbname" => check_dbname(&value)?,
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
