//! `rdsiam targets`: the named targets in the config file, and for one of
//! them every resolved setting with where it came from.

use anyhow::Result;
use serde::Serialize;

use crate::cli::{TableOutput, TargetArgs, TargetsAction, TargetsArgs};
use crate::config::{self, Config};
use crate::flags::{Source, layer_with};
use crate::output::{one_line, print, print_json, table};

#[derive(Serialize)]
struct Listed<'a> {
    name: &'a str,
    kind: &'static str,
    resource: &'a str,
    user: Option<&'a str>,
    dbname: Option<&'a str>,
    region: Option<&'a str>,
}

#[derive(Serialize)]
struct Shown {
    key: &'static str,
    value: String,
    source: Source,
}

pub fn run(args: TargetsArgs) -> Result<u8> {
    let config = Config::load()?;
    match args.action {
        None => list(&config, args.output),
        Some(TargetsAction::Names) => {
            let names: String = config
                .targets
                .keys()
                .filter(|n| completable(n))
                .map(|n| format!("{n}\n"))
                .collect();
            print(&names)?;
            Ok(0)
        }
        Some(TargetsAction::Show { name }) => show(&config, &name, args.output),
    }
}

fn list(config: &Config, output: TableOutput) -> Result<u8> {
    let rows: Vec<Listed<'_>> = config
        .targets
        .iter()
        .map(|(name, e)| {
            let (kind, resource) = [
                ("proxy", &e.proxy),
                ("cluster", &e.cluster),
                ("instance", &e.instance),
                ("host", &e.host),
            ]
            .into_iter()
            .find_map(|(k, v)| v.as_deref().map(|v| (k, v)))
            .unwrap_or(("-", ""));
            Listed {
                name,
                kind,
                resource,
                user: e.user.as_deref().or(config.defaults.user.as_deref()),
                dbname: e.dbname.as_deref().or(config.defaults.dbname.as_deref()),
                region: e.region.as_deref().or(config.defaults.region.as_deref()),
            }
        })
        .collect();
    match output {
        TableOutput::Json => print_json(&rows)?,
        TableOutput::Table if rows.is_empty() => print(&format!(
            "no named targets; add [targets.NAME] tables to {}\n",
            config::path()
                .map_or_else(|| "the config file".to_owned(), |p| p.display().to_string())
        ))?,
        TableOutput::Table => {
            let mut t = table(&["name", "kind", "resource", "user", "dbname", "region"]);
            for r in &rows {
                // Names from the config file may hold ESC or newlines.
                t.add_row(
                    [
                        r.name,
                        r.kind,
                        r.resource,
                        r.user.unwrap_or("-"),
                        r.dbname.unwrap_or("-"),
                        r.region.unwrap_or("-"),
                    ]
                    .map(|cell| one_line(cell).into_owned()),
                );
            }
            print(&format!("{t}\n"))?;
        }
    }
    Ok(0)
}

fn show(config: &Config, name: &str, output: TableOutput) -> Result<u8> {
    let args = TargetArgs {
        target: Some(name.to_owned()),
        ..TargetArgs::default()
    };
    let layered = layer_with(config, &args, None)?;
    let value = toml::Value::try_from(&layered.entry)?;
    let mut rows: Vec<Shown> = Vec::new();
    for key in config::KEYS {
        let Some(source) = layered.sources.get(key.name) else {
            continue;
        };
        let value = match value.get(key.name) {
            Some(toml::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            // Covered by an AWS_* variable: the SDK reads it.
            None => crate::config::first_env(key.env)
                .map(|(n, v)| format!("{v} (${n})"))
                .unwrap_or_default(),
        };
        rows.push(Shown {
            key: key.name,
            value,
            source: *source,
        });
    }
    match output {
        TableOutput::Json => print_json(&rows)?,
        TableOutput::Table => {
            let mut t = table(&["key", "value", "from"]);
            for r in &rows {
                let from = match r.source {
                    Source::Defaults => "[defaults]".to_owned(),
                    Source::Target => format!("[targets.{name}]"),
                    Source::Env => "env".to_owned(),
                    Source::Flag => "flag".to_owned(),
                };
                t.add_row([r.key, &r.value, &from].map(|cell| one_line(cell).into_owned()));
            }
            print(&format!("{t}\n"))?;
        }
    }
    Ok(0)
}

/// Names that a shell takes as one word without quoting, so completion can
/// offer them as they are; others (`$(…)`, spaces, quotes) are left out.
fn completable(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | '+' | ',' | '%'))
}

#[cfg(test)]
mod tests {
    use super::completable;

    #[test]
    fn only_plain_names_are_offered_to_shells() {
        for ok in ["prod-orders", "eu_west.1", "ops@team", "ユーザー"] {
            assert!(completable(ok), "{ok}");
        }
        for bad in [
            "`touch pwned`",
            "$(id)",
            "a b",
            "a'b",
            "a\"b",
            "a;b",
            "-x",
            "",
            "a\nb",
            "x*",
        ] {
            assert!(!completable(bad), "{bad}");
        }
    }
}
