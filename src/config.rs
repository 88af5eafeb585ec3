//! The config file: named targets and defaults, in TOML at `$RDSIAM_CONFIG`
//! or `<config dir>/rdsiam/config.toml`. Never created unasked.
//!
//! ```toml
//! [defaults]
//! region = "us-east-1"
//!
//! [targets.prod-orders]
//! proxy = "PostgreSqlProxy"
//! user = "iamuserapp"
//! dbname = "app"
//! via = "127.0.0.1:15432"
//! ```
//!
//! Keys are the long option names. Layering (built-in < `[defaults]` <
//! target < environment < flags) happens in `target.rs`, in one place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::cli::SslMode;
use crate::error::{Failure, suggestions};

/// One `[defaults]` or `[targets.NAME]` table; every key optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Entry {
    pub proxy: Option<String>,
    pub cluster: Option<String>,
    pub reader: Option<bool>,
    pub instance: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub dbname: Option<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
    pub endpoint_url: Option<String>,
    pub via: Option<String>,
    pub sslmode: Option<SslMode>,
    pub ca_bundle: Option<PathBuf>,
    pub connect_timeout: Option<u64>,
    /// `rdsiam proxy`'s TCP listener for this target (ADDR:PORT or `none`).
    pub listen: Option<String>,
}

/// The valid keys, for "did you mean" on an unknown one.
pub const KEYS: &[&str] = &[
    "proxy",
    "cluster",
    "reader",
    "instance",
    "host",
    "port",
    "user",
    "dbname",
    "region",
    "profile",
    "endpoint-url",
    "via",
    "sslmode",
    "ca-bundle",
    "connect-timeout",
    "listen",
];

/// The whole file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub defaults: Entry,
    #[serde(default)]
    pub targets: BTreeMap<String, Entry>,
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

/// Where the config file is looked for.
pub fn path() -> Option<PathBuf> {
    match std::env::var_os("RDSIAM_CONFIG") {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => dirs::config_dir().map(|dir| dir.join("rdsiam").join("config.toml")),
    }
}

impl Config {
    /// Load the file if it exists; a missing file is an empty config.
    pub fn load() -> Result<Config> {
        let Some(path) = path() else {
            return Ok(Config::default());
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Config::parse(&text, &path),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(err) => Err(Failure::usage(format!(
                "cannot read config file {}: {err}",
                path.display()
            ))
            .hint("fix its permissions, point RDSIAM_CONFIG elsewhere, or pass --no-config")
            .into()),
        }
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        match toml::from_str::<Config>(text) {
            Ok(mut config) => {
                config.path = Some(path.to_owned());
                Ok(config)
            }
            Err(err) => Err(parse_failure(&err, text, path).into()),
        }
    }

    /// The named target, or an error listing the known ones.
    pub fn target(&self, name: &str) -> Result<&Entry> {
        if let Some(entry) = self.targets.get(name) {
            return Ok(entry);
        }
        let where_ = self
            .path
            .as_ref()
            .map_or_else(|| "no config file".to_owned(), |p| p.display().to_string());
        let mut failure = Failure::usage(format!("no target named `{name}` in {where_}"));
        let close = suggestions(name, self.targets.keys().map(String::as_str));
        if !close.is_empty() {
            failure = failure.hint(format!("did you mean `{}`?", close.join("` or `")));
        }
        failure = if self.targets.is_empty() {
            failure.hint(format!(
                "add a [targets.{name}] table to {} (keys: {}), or name the endpoint with --proxy/--cluster/--instance/--host",
                path().map_or_else(|| "the config file".to_owned(), |p| p.display().to_string()),
                KEYS.join(", ")
            ))
        } else {
            failure.hint(format!(
                "known targets: {}",
                self.targets.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        };
        Err(failure.into())
    }
}

/// A TOML error with path, line and column, and "did you mean" for keys.
fn parse_failure(err: &toml::de::Error, text: &str, path: &Path) -> Failure {
    let (line, column) = err.span().map_or((1, 1), |span| line_col(text, span.start));
    let message = err.message().trim().to_owned();
    let mut failure = Failure::usage(format!(
        "config file {}:{line}:{column}: {}",
        path.display(),
        first_line(&message)
    ));
    if let Some(key) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
    {
        let close = suggestions(key, KEYS.iter().copied());
        failure = failure.hint(if close.is_empty() {
            format!("valid keys: {}", KEYS.join(", "))
        } else {
            format!(
                "did you mean `{}`? valid keys: {}",
                close.join("` or `"),
                KEYS.join(", ")
            )
        });
    }
    failure.hint("fix the file, point RDSIAM_CONFIG elsewhere, or pass --no-config")
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("/etc/rdsiam.toml"))
    }

    #[test]
    fn parses_defaults_and_targets() {
        let config = parse(
            "[defaults]\nregion = \"eu-west-1\"\nconnect-timeout = 3\n\n[targets.prod-orders]\nproxy = \"PostgreSqlProxy\"\nuser = \"iamuserapp\"\nsslmode = \"verify-ca\"\nca-bundle = \"/etc/ca.pem\"\n",
        )
        .unwrap();
        assert_eq!(config.defaults.region.as_deref(), Some("eu-west-1"));
        assert_eq!(config.defaults.connect_timeout, Some(3));
        let t = config.target("prod-orders").unwrap();
        assert_eq!(t.proxy.as_deref(), Some("PostgreSqlProxy"));
        assert_eq!(t.sslmode, Some(SslMode::VerifyCa));
        assert_eq!(t.ca_bundle.as_deref(), Some(Path::new("/etc/ca.pem")));
    }

    #[test]
    fn unknown_key_names_it_with_close_valid_ones_and_position() {
        let err = parse("[targets.a]\nproxy = \"p\"\nregoin = \"x\"\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/etc/rdsiam.toml:3:1"), "{text}");
        assert!(text.contains("unknown field `regoin`"), "{text}");
        assert!(text.contains("did you mean `region`?"), "{text}");
        assert_eq!(crate::error::exit_code(&err), 2);
    }

    #[test]
    fn malformed_toml_has_line_and_column() {
        let err = parse("[defaults]\nregion = eu-west-1\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/etc/rdsiam.toml:2:10"), "{text}");
        let err = parse("[defaults]\nport = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains(":2:8"), "{err}");
    }

    #[test]
    fn unknown_target_lists_known_ones() {
        let config =
            parse("[targets.prod-orders]\nhost = \"h\"\n[targets.stage-orders]\nhost = \"s\"\n")
                .unwrap();
        let text = config.target("prod-ordrs").unwrap_err().to_string();
        assert!(text.contains("did you mean `prod-orders`?"), "{text}");
        assert!(
            text.contains("known targets: prod-orders, stage-orders"),
            "{text}"
        );
    }

    #[test]
    fn keys_list_matches_the_struct() {
        let all = Entry {
            proxy: Some(String::new()),
            cluster: Some(String::new()),
            reader: Some(true),
            instance: Some(String::new()),
            host: Some(String::new()),
            port: Some(1),
            user: Some(String::new()),
            dbname: Some(String::new()),
            region: Some(String::new()),
            profile: Some(String::new()),
            endpoint_url: Some(String::new()),
            via: Some(String::new()),
            sslmode: Some(SslMode::Require),
            ca_bundle: Some(PathBuf::new()),
            connect_timeout: Some(1),
            listen: Some(String::new()),
        };
        let value = toml::Value::try_from(&all).unwrap();
        let keys: Vec<&str> = value
            .as_table()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut sorted = KEYS.to_vec();
        sorted.sort_unstable();
        assert_eq!(keys, sorted);
    }
}
