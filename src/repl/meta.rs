//! Backslash meta-commands: one enum, parsed with `FromStr`, and `\?` built
//! from the same table so help and parser cannot drift apart.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::str::FromStr;

/// A parsed meta-command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Meta {
    Quit,
    Help,
    Expanded,
    Timing,
    ConnInfo,
    Tables(Option<String>),
    Describe(Option<String>),
    Databases,
    Roles,
    Include(PathBuf),
    Output(Option<PathBuf>),
    /// `\copy …`: its arguments as typed.
    Copy(String),
    /// `\pset OPTION [VALUE]`.
    Pset(String, Option<String>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Name {
    Quit,
    Help,
    Expanded,
    Timing,
    ConnInfo,
    Tables,
    Describe,
    Databases,
    Roles,
    Include,
    Output,
    Copy,
    Pset,
}

/// Whether a command takes an argument.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Arg {
    None,
    Optional,
    Required,
}

struct Spec {
    name: Name,
    command: &'static str,
    arg: Arg,
    usage: &'static str,
    help: &'static str,
}

/// Every meta-command, in the order `\?` lists them.
const COMMANDS: &[Spec] = &[
    Spec {
        name: Name::Quit,
        command: "q",
        arg: Arg::None,
        usage: "",
        help: "quit (also Ctrl-D)",
    },
    Spec {
        name: Name::Help,
        command: "?",
        arg: Arg::None,
        usage: "",
        help: "show this help",
    },
    Spec {
        name: Name::Expanded,
        command: "x",
        arg: Arg::None,
        usage: "",
        help: "toggle expanded display (one field per line)",
    },
    Spec {
        name: Name::Timing,
        command: "timing",
        arg: Arg::None,
        usage: "",
        help: "toggle showing how long each statement took",
    },
    Spec {
        name: Name::ConnInfo,
        command: "conninfo",
        arg: Arg::None,
        usage: "",
        help: "show the endpoint, user, database and TLS mode",
    },
    Spec {
        name: Name::Tables,
        command: "dt",
        arg: Arg::Optional,
        usage: " [PATTERN]",
        help: "list tables (PATTERN: LIKE-style with *)",
    },
    Spec {
        name: Name::Describe,
        command: "d",
        arg: Arg::Optional,
        usage: " [NAME]",
        help: "describe a table, view or sequence; without NAME list relations",
    },
    Spec {
        name: Name::Databases,
        command: "l",
        arg: Arg::None,
        usage: "",
        help: "list databases",
    },
    Spec {
        name: Name::Roles,
        command: "du",
        arg: Arg::None,
        usage: "",
        help: "list roles and their memberships (rds_iam among them)",
    },
    Spec {
        name: Name::Include,
        command: "i",
        arg: Arg::Required,
        usage: " FILE",
        help: "run the SQL and meta-commands in FILE",
    },
    Spec {
        name: Name::Output,
        command: "o",
        arg: Arg::Optional,
        usage: " [FILE]",
        help: "send results to FILE; without FILE back to the terminal",
    },
    Spec {
        name: Name::Copy,
        command: "copy",
        arg: Arg::Required,
        usage: " ARGS",
        help: "COPY with the file here: TABLE|(QUERY) FROM|TO 'FILE'|STDIN|STDOUT [WITH …]",
    },
    Spec {
        name: Name::Pset,
        command: "pset",
        arg: Arg::Required,
        usage: " null TEXT",
        help: "show NULL in tables as TEXT (default ∅)",
    },
];

/// `\?`: the help text, generated from [`COMMANDS`].
pub fn help() -> String {
    let width = COMMANDS
        .iter()
        .map(|s| s.command.len() + s.usage.len())
        .max()
        .unwrap_or(0);
    let mut out = String::from("Meta-commands:\n");
    for spec in COMMANDS {
        let left = format!("{}{}", spec.command, spec.usage);
        let _ = writeln!(out, "  \\{left:<width$}  {}", spec.help);
    }
    out.push_str(
        "\nStatements end with `;` and may span lines. Ctrl-C cancels a running query\n\
         and stops the rest of the line or \\i file (or clears the line), Ctrl-D quits.\n",
    );
    out
}

/// The names of every meta-command, for did-you-mean hints.
pub fn names() -> impl Iterator<Item = &'static str> {
    COMMANDS.iter().map(|s| s.command)
}

/// Why a meta-command line did not parse; the message says what to type.
#[derive(Debug, PartialEq, Eq)]
pub struct ParseMetaError(pub String);

impl std::fmt::Display for ParseMetaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseMetaError {}

impl FromStr for Meta {
    type Err = ParseMetaError;

    /// `\d foo`, with or without the backslash and surrounding whitespace.
    fn from_str(line: &str) -> Result<Meta, ParseMetaError> {
        let line = line.trim();
        let line = line.strip_prefix('\\').unwrap_or(line);
        let (command, arg) = match line.split_once(char::is_whitespace) {
            Some((c, a)) => (c, a.trim()),
            None => (line, ""),
        };
        let Some(spec) = COMMANDS.iter().find(|s| s.command == command) else {
            let close = crate::error::suggestions(command, names());
            let hint = match close.first() {
                Some(name) => format!("did you mean \\{name}? "),
                None => String::new(),
            };
            return Err(ParseMetaError(format!(
                "unknown meta-command \\{command}; {hint}type \\? for the list"
            )));
        };
        let raw = arg;
        let arg = unquote(arg);
        match (spec.arg, arg.is_empty()) {
            (Arg::None, false) => {
                return Err(ParseMetaError(format!(
                    "\\{command} takes no argument; type \\{command} alone"
                )));
            }
            (Arg::Required, true) => {
                return Err(ParseMetaError(format!(
                    "\\{command} needs an argument: \\{command}{}",
                    spec.usage
                )));
            }
            _ => {}
        }
        let opt = (!arg.is_empty()).then(|| arg.clone());
        Ok(match spec.name {
            Name::Quit => Meta::Quit,
            Name::Help => Meta::Help,
            Name::Expanded => Meta::Expanded,
            Name::Timing => Meta::Timing,
            Name::ConnInfo => Meta::ConnInfo,
            Name::Tables => Meta::Tables(opt),
            Name::Describe => Meta::Describe(opt),
            Name::Databases => Meta::Databases,
            Name::Roles => Meta::Roles,
            Name::Include => Meta::Include(PathBuf::from(arg)),
            Name::Output => Meta::Output(opt.map(PathBuf::from)),
            Name::Copy => Meta::Copy(raw.to_owned()),
            Name::Pset => {
                let (option, value) = match raw.split_once(char::is_whitespace) {
                    Some((o, v)) => (o, Some(unquote(v.trim()))),
                    None => (raw, None),
                };
                Meta::Pset(option.to_owned(), value)
            }
        })
    }
}

/// An argument in single quotes loses them (`\i 'my file.sql'`).
fn unquote(arg: &str) -> String {
    match arg.strip_prefix('\'').and_then(|a| a.strip_suffix('\'')) {
        Some(inner) => inner.replace("''", "'"),
        None => arg.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command() {
        assert_eq!("\\q".parse(), Ok(Meta::Quit));
        assert_eq!("\\?".parse(), Ok(Meta::Help));
        assert_eq!(" \\x \n".parse(), Ok(Meta::Expanded));
        assert_eq!("\\timing".parse(), Ok(Meta::Timing));
        assert_eq!("\\conninfo".parse(), Ok(Meta::ConnInfo));
        assert_eq!("\\dt".parse(), Ok(Meta::Tables(None)));
        assert_eq!(
            "\\dt public.*".parse(),
            Ok(Meta::Tables(Some("public.*".into())))
        );
        assert_eq!("\\d".parse(), Ok(Meta::Describe(None)));
        assert_eq!(
            "\\d  orders ".parse(),
            Ok(Meta::Describe(Some("orders".into())))
        );
        assert_eq!("\\l".parse(), Ok(Meta::Databases));
        assert_eq!("\\du".parse(), Ok(Meta::Roles));
        assert_eq!(
            "\\i 'my file.sql'".parse(),
            Ok(Meta::Include("my file.sql".into()))
        );
        assert_eq!(
            "\\o out.txt".parse(),
            Ok(Meta::Output(Some("out.txt".into())))
        );
        assert_eq!("\\o".parse(), Ok(Meta::Output(None)));
        assert_eq!(
            "\\copy t from 'a b.csv' with csv".parse(),
            Ok(Meta::Copy("t from 'a b.csv' with csv".into()))
        );
        assert_eq!(
            "\\pset null '(null)'".parse(),
            Ok(Meta::Pset("null".into(), Some("(null)".into())))
        );
    }

    #[test]
    fn errors_say_what_to_type() {
        let err = "\\timng".parse::<Meta>().unwrap_err();
        assert!(err.0.contains("did you mean \\timing?"), "{err}");
        assert!("\\zzz".parse::<Meta>().unwrap_err().0.contains("\\?"));
        assert!("\\i".parse::<Meta>().unwrap_err().0.contains("\\i FILE"));
        assert!(
            "\\q now"
                .parse::<Meta>()
                .unwrap_err()
                .0
                .contains("no argument")
        );
    }

    #[test]
    fn help_lists_every_command_it_parses() {
        let help = help();
        for name in names() {
            assert!(help.contains(&format!("\\{name}")), "{name}");
            let line = match COMMANDS.iter().find(|s| s.command == name).unwrap().arg {
                Arg::Required => format!("\\{name} x"),
                _ => format!("\\{name}"),
            };
            assert!(line.parse::<Meta>().is_ok(), "{line}");
        }
    }
}
