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

use crate::engine::Engine;
use crate::error::{Failure, suggestions};
use crate::files;
use crate::tls::SslMode;

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
    /// The engine of a `host` endpoint (others learn it from the RDS API).
    pub engine: Option<Engine>,
    pub user: Option<String>,
    pub dbname: Option<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
    pub endpoint_url: Option<String>,
    pub via: Option<String>,
    pub sslmode: Option<SslMode>,
    pub ca_bundle: Option<PathBuf>,
    pub connect_timeout: Option<u64>,
    pub api_timeout: Option<u64>,
    /// `rdsiam proxy`'s TCP listener for this target (ADDR:PORT or `none`).
    pub listen: Option<String>,
    // The proxy's own settings (`rdsiam proxy` flags of the same names).
    pub unix_socket: Option<PathBuf>,
    pub http_address: Option<String>,
    pub max_connections: Option<u32>,
    pub max_connection_rate: Option<u32>,
    pub min_sigterm_delay: Option<u64>,
    pub max_sigterm_delay: Option<u64>,
    pub log_format: Option<String>,
    pub quitquitquit: Option<bool>,
}

impl Entry {
    /// Make the path keys absolute against `dir`; `system` (libpq's word for
    /// the system store) is not a path.
    fn resolve_paths(&mut self, dir: &Path) {
        if let Some(path) = &self.ca_bundle
            && path.is_relative()
            && !path.as_os_str().is_empty()
            && path != Path::new("system")
        {
            self.ca_bundle = Some(dir.join(path));
        }
    }
}

/// The largest config file we read; real ones are a few KiB.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// How a key relates to the endpoint, for layering: naming a new endpoint
/// replaces the old one and what belonged to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointRole {
    /// Not about the endpoint.
    No,
    /// Names the endpoint (exactly one of these per layer).
    Names,
    /// Qualifies the endpoint named (`reader`): goes with it.
    Qualifies,
    /// Belongs to the endpoint when the config file gave it (`port`, `via`);
    /// from the environment or a flag it is not tied to one.
    FileTied,
}

/// One config key: its name (the long option's), the environment variables
/// that stand for it, and how layering treats it. The one table behind
/// parsing ("did you mean"), layering (`target.rs`), `targets show` and the
/// environment section of `--help`.
pub struct Key {
    pub name: &'static str,
    /// Variables that set it, in order of preference.
    pub env: &'static [&'static str],
    /// The variables are read by the AWS SDK itself, not by rdsiam.
    pub env_by_sdk: bool,
    pub endpoint: EndpointRole,
    /// For the environment section of the help.
    pub about: &'static str,
    /// Whether `entry` sets this key.
    pub is_set: fn(&Entry) -> bool,
    /// Copy this key's value from `upper` to `entry` when `upper` sets it.
    pub take: fn(&mut Entry, &Entry) -> bool,
    pub clear: fn(&mut Entry),
    /// Set it from a variable's text.
    pub from_env: fn(&mut Entry, &str, String) -> Result<()>,
}

/// The variables the SDK reads for what `--region`, `--profile` and
/// `--endpoint-url` set, in its order of preference.
pub const REGION_VARS: &[&str] = &["AWS_REGION", "AWS_DEFAULT_REGION"];
pub const PROFILE_VARS: &[&str] = &["AWS_PROFILE"];
pub const ENDPOINT_VARS: &[&str] = &["AWS_ENDPOINT_URL_RDS", "AWS_ENDPOINT_URL"];

/// A variable's value, treating empty as unset (as the SDK does).
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The first of `names` that is set, with its name.
pub fn first_env(names: &[&'static str]) -> Option<(&'static str, String)> {
    names.iter().find_map(|n| env_var(n).map(|v| (*n, v)))
}

macro_rules! key {
    ($field:ident, $name:literal, $env:expr, $sdk:literal, $role:ident, $about:literal) => {
        Key {
            name: $name,
            env: $env,
            env_by_sdk: $sdk,
            endpoint: EndpointRole::$role,
            about: $about,
            is_set: |e| e.$field.is_some(),
            take: |dst, upper| match &upper.$field {
                Some(value) => {
                    dst.$field = Some(value.clone());
                    true
                }
                None => false,
            },
            clear: |e| e.$field = None,
            from_env: |e, var, text| {
                e.$field = Some(FromEnv::from_env(var, text)?);
                Ok(())
            },
        }
    };
}

/// Every key, in the order `targets show` lists them.
pub const KEYS: &[Key] = &[
    key!(proxy, "proxy", &[], false, Names, ""),
    key!(cluster, "cluster", &[], false, Names, ""),
    key!(reader, "reader", &[], false, Qualifies, ""),
    key!(instance, "instance", &[], false, Names, ""),
    key!(host, "host", &[], false, Names, ""),
    key!(port, "port", &[], false, FileTied, ""),
    key!(engine, "engine", &[], false, FileTied, ""),
    key!(user, "user", &["PGUSER"], false, No, "--user"),
    key!(dbname, "dbname", &["PGDATABASE"], false, No, "--dbname"),
    key!(region, "region", REGION_VARS, true, No, "--region"),
    key!(profile, "profile", PROFILE_VARS, true, No, "--profile"),
    key!(
        endpoint_url,
        "endpoint-url",
        ENDPOINT_VARS,
        true,
        No,
        "--endpoint-url (the RDS API endpoint)"
    ),
    key!(via, "via", &["RDSIAM_VIA"], false, FileTied, "--via"),
    key!(sslmode, "sslmode", &[], false, No, ""),
    key!(
        ca_bundle,
        "ca-bundle",
        &["PGSSLROOTCERT"],
        false,
        No,
        "--ca-bundle"
    ),
    key!(connect_timeout, "connect-timeout", &[], false, No, ""),
    key!(
        api_timeout,
        "api-timeout",
        &["RDSIAM_API_TIMEOUT"],
        false,
        No,
        "--api-timeout"
    ),
    // In the file, a target's own listener; RDSIAM_LISTEN is `--listen`
    // (the first target's, ports counting up), which a target's own beats.
    key!(listen, "listen", &["RDSIAM_LISTEN"], false, No, "--listen"),
    // The proxy's own: from [defaults] and the (first) target's table.
    key!(
        unix_socket,
        "unix-socket",
        &["RDSIAM_UNIX_SOCKET"],
        false,
        No,
        "--unix-socket"
    ),
    key!(
        http_address,
        "http-address",
        &["RDSIAM_HTTP_ADDRESS"],
        false,
        No,
        "--http-address"
    ),
    key!(
        max_connections,
        "max-connections",
        &["RDSIAM_MAX_CONNECTIONS"],
        false,
        No,
        "--max-connections"
    ),
    key!(
        max_connection_rate,
        "max-connection-rate",
        &["RDSIAM_MAX_CONNECTION_RATE"],
        false,
        No,
        "--max-connection-rate"
    ),
    key!(
        min_sigterm_delay,
        "min-sigterm-delay",
        &["RDSIAM_MIN_SIGTERM_DELAY"],
        false,
        No,
        "--min-sigterm-delay"
    ),
    key!(
        max_sigterm_delay,
        "max-sigterm-delay",
        &["RDSIAM_MAX_SIGTERM_DELAY"],
        false,
        No,
        "--max-sigterm-delay"
    ),
    key!(
        log_format,
        "log-format",
        &["RDSIAM_LOG_FORMAT"],
        false,
        No,
        "--log-format"
    ),
    key!(
        quitquitquit,
        "quitquitquit",
        &["RDSIAM_QUITQUITQUIT"],
        false,
        No,
        "--quitquitquit"
    ),
];

/// The key named `name`.
pub fn key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// The key names, for messages.
pub fn key_names() -> Vec<&'static str> {
    KEYS.iter().map(|k| k.name).collect()
}

/// The variables that stand for keys, one line each, for `--help`.
pub fn env_help() -> String {
    let mut lines = Vec::new();
    for k in KEYS.iter().filter(|k| !k.env.is_empty()) {
        let vars = k.env.join(", ");
        lines.push(format!("  {vars:<40} default for {}", k.about));
    }
    lines.join("\n")
}

/// Values a variable's text can become.
trait FromEnv: Sized {
    fn from_env(var: &str, text: String) -> Result<Self>;
}

impl FromEnv for String {
    fn from_env(_var: &str, text: String) -> Result<String> {
        Ok(text)
    }
}

impl FromEnv for PathBuf {
    fn from_env(_var: &str, text: String) -> Result<PathBuf> {
        Ok(PathBuf::from(text))
    }
}

fn bad_env(var: &str, text: &str, want: &str) -> anyhow::Error {
    Failure::usage(format!("{var} `{}` is not {want}", text.escape_debug()))
        .hint(format!("set {var} to {want}, or unset it"))
        .into()
}

impl FromEnv for u64 {
    fn from_env(var: &str, text: String) -> Result<u64> {
        text.trim()
            .parse()
            .map_err(|_| bad_env(var, &text, "a number of seconds (1 to 3600)"))
    }
}

impl FromEnv for u32 {
    fn from_env(var: &str, text: String) -> Result<u32> {
        text.trim()
            .parse()
            .map_err(|_| bad_env(var, &text, "a whole number"))
    }
}

impl FromEnv for u16 {
    fn from_env(var: &str, text: String) -> Result<u16> {
        text.trim()
            .parse()
            .map_err(|_| bad_env(var, &text, "a port (1 to 65535)"))
    }
}

impl FromEnv for bool {
    fn from_env(var: &str, text: String) -> Result<bool> {
        text.trim()
            .parse()
            .map_err(|_| bad_env(var, &text, "true or false"))
    }
}

impl FromEnv for Engine {
    fn from_env(var: &str, text: String) -> Result<Engine> {
        match text.trim() {
            "postgres" => Ok(Engine::Postgres),
            "mysql" => Ok(Engine::Mysql),
            _ => Err(bad_env(var, &text, "postgres or mysql")),
        }
    }
}

impl FromEnv for SslMode {
    fn from_env(var: &str, text: String) -> Result<SslMode> {
        match text.trim() {
            "verify-full" => Ok(SslMode::VerifyFull),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "require" => Ok(SslMode::Require),
            _ => Err(bad_env(var, &text, "verify-full, verify-ca or require")),
        }
    }
}

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
        // Relative paths in the file resolve against its directory, so a
        // relative RDSIAM_CONFIG is made absolute while the cwd is known.
        let path = std::path::absolute(&path).unwrap_or(path);
        let cannot = |why: String| -> anyhow::Error {
            Failure::usage(format!("cannot read config file {}: {why}", path.display()))
                .hint("point RDSIAM_CONFIG at a regular TOML file, or pass --no-config")
                .into()
        };
        match files::read_regular(&path, MAX_CONFIG_BYTES) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => Config::parse(&text, &path),
                Err(_) => Err(cannot("it is not UTF-8 text".to_owned())),
            },
            Err(files::ReadError::Missing) => Ok(Config::default()),
            Err(err) => Err(cannot(err.to_string())),
        }
    }

    /// Parse `text`, the content of the file at `path`. Relative paths in it
    /// (`ca-bundle`) are taken relative to the file's directory, never to
    /// wherever the user happens to be.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        match toml::from_str::<Config>(text) {
            Ok(mut config) => {
                config.path = Some(path.to_owned());
                let dir = path.parent().unwrap_or(Path::new(""));
                for entry in
                    std::iter::once(&mut config.defaults).chain(config.targets.values_mut())
                {
                    entry.resolve_paths(dir);
                }
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
                key_names().join(", ")
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
        let names = key_names();
        let close = suggestions(key, names.iter().copied());
        failure = failure.hint(if close.is_empty() {
            format!("valid keys: {}", names.join(", "))
        } else {
            format!(
                "did you mean `{}`? valid keys: {}",
                close.join("` or `"),
                names.join(", ")
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
    fn relative_paths_follow_the_file_not_the_cwd() {
        let config = Config::parse(
            "[defaults]\nca-bundle = \"certs/ca.pem\"\n[targets.a]\nca-bundle = \"system\"\n[targets.b]\nca-bundle = \"/abs/ca.pem\"\n",
            Path::new("/etc/rdsiam/config.toml"),
        )
        .unwrap();
        assert_eq!(
            config.defaults.ca_bundle.as_deref(),
            Some(Path::new("/etc/rdsiam/certs/ca.pem"))
        );
        assert_eq!(
            config.targets["a"].ca_bundle.as_deref(),
            Some(Path::new("system"))
        );
        assert_eq!(
            config.targets["b"].ca_bundle.as_deref(),
            Some(Path::new("/abs/ca.pem"))
        );
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
            engine: Some(Engine::Mysql),
            user: Some(String::new()),
            dbname: Some(String::new()),
            region: Some(String::new()),
            profile: Some(String::new()),
            endpoint_url: Some(String::new()),
            via: Some(String::new()),
            sslmode: Some(SslMode::Require),
            ca_bundle: Some(PathBuf::new()),
            connect_timeout: Some(1),
            api_timeout: Some(1),
            listen: Some(String::new()),
            unix_socket: Some(PathBuf::new()),
            http_address: Some(String::new()),
            max_connections: Some(1),
            max_connection_rate: Some(1),
            min_sigterm_delay: Some(1),
            max_sigterm_delay: Some(1),
            log_format: Some(String::new()),
            quitquitquit: Some(true),
        };
        let value = toml::Value::try_from(&all).unwrap();
        let keys: Vec<&str> = value
            .as_table()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut sorted = key_names();
        sorted.sort_unstable();
        assert_eq!(keys, sorted);
    }
}
