//! From flags, environment and the config file to a [`Target`] and a
//! [`Conn`]. Clap types end here. Precedence, resolved in [`layer`] alone:
//! built-in defaults < `[defaults]` < the named target < environment < flags.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::ca::Roots;
use crate::cli::{AwsArgs, ConnArgs, EngineArg, SslModeArg, TargetArgs};
use crate::config::{
    self, Config, ENDPOINT_VARS, EndpointRole, Entry, KEYS, REGION_VARS, first_env,
};
use crate::engine::Engine;
use crate::error::Failure;
use crate::target::{AwsSettings, Conn, DEFAULT_CONNECT_TIMEOUT, Selector, Target, Via};
use crate::tls::SslMode;

/// Where a setting's value came from (`rdsiam targets show`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// `[defaults]` in the config file.
    Defaults,
    /// The named target's table.
    Target,
    /// An environment variable (for AWS_* ones, the SDK reads it itself).
    Env,
    /// A command-line flag (or its env var, as shown in --help).
    Flag,
}

/// The merged settings and the source of each key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layered {
    pub entry: Entry,
    pub sources: BTreeMap<&'static str, Source>,
}

/// The keys `entry` sets that name an endpoint.
fn kinds_set(entry: &Entry) -> Vec<&'static str> {
    KEYS.iter()
        .filter(|k| k.endpoint == EndpointRole::Names && (k.is_set)(entry))
        .map(|k| k.name)
        .collect()
}

impl Layered {
    /// Put `upper` over what is here.
    fn overlay(&mut self, upper: &Entry, source: Source) {
        // Naming a kind of endpoint replaces the endpoint: a flag's --host
        // beats a target's proxy, and the port and tunnel the file gave that
        // endpoint go with it (RDSIAM_VIA and flags are not tied to one).
        if !kinds_set(upper).is_empty() {
            for key in KEYS {
                let file_given = matches!(
                    self.sources.get(key.name),
                    Some(Source::Defaults | Source::Target)
                );
                match key.endpoint {
                    EndpointRole::Names | EndpointRole::Qualifies => self.clear(key.name),
                    EndpointRole::FileTied if file_given => self.clear(key.name),
                    _ => {}
                }
            }
        }
        // A profile brings its own region; a lower layer's must not win.
        if upper.profile.is_some() && upper.region.is_none() {
            self.clear("region");
        }
        for key in KEYS {
            if (key.take)(&mut self.entry, upper) {
                self.sources.insert(key.name, source);
            }
        }
    }

    /// Put `rdsiam proxy`'s own flags (as an entry) over the layers.
    pub fn overlay_flags(&mut self, flags: &Entry) {
        self.overlay(flags, Source::Flag);
    }

    fn clear(&mut self, name: &str) {
        if let Some(key) = config::key(name) {
            (key.clear)(&mut self.entry);
            self.sources.remove(key.name);
        }
    }

    /// AWS variables beat the file but are read by the SDK itself, so a
    /// file value they cover is dropped rather than passed on as explicit.
    fn mask_aws_env(&mut self) {
        for key in KEYS.iter().filter(|k| k.env_by_sdk) {
            if first_env(key.env).is_some() {
                self.clear(key.name);
                // The SDK takes the region from that profile (unless a
                // region variable says otherwise, which its own key marks).
                if key.name == "profile" && first_env(REGION_VARS).is_none() {
                    self.clear("region");
                }
                self.sources.insert(key.name, Source::Env);
            }
        }
    }
}

/// The libpq and rdsiam variables that stand for flags, from the key table.
fn env_entry() -> Result<Entry> {
    let mut entry = Entry::default();
    for key in KEYS.iter().filter(|k| !k.env_by_sdk) {
        for var in key.env {
            if let Some(text) = env_text(var)? {
                (key.from_env)(&mut entry, var, text)?;
                break;
            }
        }
    }
    Ok(entry)
}

/// Variables other than AWS_* and RDSIAM_* that we or libpq read as text.
const TEXT_VARS: &[&str] = &[
    "PGUSER",
    "PGDATABASE",
    "PGSSLROOTCERT",
    "PGAPPNAME",
    "TMPDIR",
];

/// Every AWS_*, RDSIAM_* and other variable we read holds UTF-8 (issue 24):
/// the SDK silently skips one that doesn't, so a non-UTF-8 AWS_PROFILE meant
/// the `default` profile (another identity), a non-UTF-8
/// AWS_ENDPOINT_URL_RDS the public endpoint, a non-UTF-8 AWS_SESSION_TOKEN
/// a signature without it. Checked before anything else reads them.
pub fn check_env_encoding() -> Result<()> {
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        let ours =
            name.starts_with("AWS_") || name.starts_with("RDSIAM_") || TEXT_VARS.contains(&name);
        if ours && value.to_str().is_none() {
            return Err(Failure::usage(format!(
                "the environment variable {name} is not valid UTF-8"
            ))
            .hint(format!(
                "set {name} to a UTF-8 value, or unset it (`unset {name}`)"
            ))
            .into());
        }
    }
    Ok(())
}

/// A variable we read ourselves: unset or empty is `None`; a value that is
/// not UTF-8 is an error, never silently ignored (for PGSSLROOTCERT that
/// would widen trust to the built-in bundle).
fn env_text(name: &str) -> Result<Option<String>> {
    match std::env::var(name) {
        Ok(value) if value.trim().is_empty() => Ok(None),
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(Failure::usage(format!(
            "the environment variable {name} is not valid UTF-8"
        ))
        .hint(format!(
            "set {name} to a UTF-8 value, or unset it (`unset {name}`)"
        ))
        .into()),
    }
}

/// The flags as an [`Entry`], so they layer like everything else.
fn flags_entry(args: &TargetArgs, conn: Option<&ConnArgs>) -> Entry {
    Entry {
        proxy: args.proxy.clone(),
        cluster: args.cluster.clone(),
        reader: args.reader.then_some(true),
        instance: args.instance.clone(),
        host: args.host.clone(),
        port: args.port,
        engine: args.engine.map(|engine| match engine {
            EngineArg::Postgres => Engine::Postgres,
            EngineArg::Mysql => Engine::Mysql,
        }),
        user: args.user.clone(),
        dbname: args.dbname.clone(),
        region: args.aws.region.clone(),
        profile: args.aws.profile.clone(),
        endpoint_url: args.aws.endpoint_url.clone(),
        via: conn.and_then(|c| c.via.clone()),
        sslmode: conn.and_then(|c| c.sslmode).map(|mode| match mode {
            SslModeArg::VerifyFull => SslMode::VerifyFull,
            SslModeArg::VerifyCa => SslMode::VerifyCa,
            SslModeArg::Require => SslMode::Require,
        }),
        ca_bundle: conn.and_then(|c| c.ca_bundle.clone()),
        connect_timeout: conn.and_then(|c| c.connect_timeout),
        api_timeout: args.aws.api_timeout,
        ..Entry::default()
    }
}

/// Resolve config file, named target, environment and flags, in that order.
pub fn layer(args: &TargetArgs, conn: Option<&ConnArgs>) -> Result<Layered> {
    let config = if args.no_config {
        Config::default()
    } else {
        Config::load()?
    };
    layer_with(&config, args, conn)
}

/// [`layer`] with the config already loaded (tests, `targets show`).
pub fn layer_with(config: &Config, args: &TargetArgs, conn: Option<&ConnArgs>) -> Result<Layered> {
    let mut layered = Layered::default();
    for (entry, source, name) in [(&config.defaults, Source::Defaults, "[defaults]")]
        .into_iter()
        .chain(
            args.target
                .as_deref()
                .map(|n| Ok::<_, anyhow::Error>((config.target(n)?, Source::Target, n)))
                .transpose()?,
        )
    {
        let kinds = kinds_set(entry);
        if kinds.len() > 1 {
            return Err(Failure::usage(format!(
                "config {name} sets both {} and {}",
                kinds[0], kinds[1]
            ))
            .hint("keep one of proxy, cluster, instance, host")
            .into());
        }
        layered.overlay(entry, source);
    }
    layered.overlay(&env_entry()?, Source::Env);
    layered.mask_aws_env();
    layered.overlay(&flags_entry(args, conn), Source::Flag);
    Ok(layered)
}

impl Target {
    /// The target alone (commands that only sign: `token`).
    pub fn from_args(args: &TargetArgs) -> Result<Target> {
        Target::from_layered(&layer(args, None)?)
    }

    /// The target and the merged connection options (check, psql, sql).
    pub fn with_conn(args: &TargetArgs, conn: &ConnArgs) -> Result<(Target, Conn)> {
        let layered = layer(args, Some(conn))?;
        let target = Target::from_layered(&layered)?;
        Ok((target, Conn::from_entry(&layered.entry)?))
    }

    pub fn from_layered(layered: &Layered) -> Result<Target> {
        let e = &layered.entry;
        let selector = if let Some(name) = &e.proxy {
            Selector::Proxy(non_empty(name, "--proxy")?)
        } else if let Some(id) = &e.cluster {
            Selector::Cluster {
                id: non_empty(id, "--cluster")?,
                reader: e.reader.unwrap_or(false),
            }
        } else if let Some(id) = &e.instance {
            Selector::Instance(non_empty(id, "--instance")?)
        } else if let Some(host) = &e.host {
            Selector::Host(non_empty(host, "--host")?)
        } else {
            return Err(Failure::usage("no target given")
                .hint("name one with --proxy NAME, --cluster ID, --instance ID or --host HOST, or a named target from the config file (`rdsiam list` shows what the region has)")
                .into());
        };
        if e.reader == Some(true) && !matches!(selector, Selector::Cluster { .. }) {
            return Err(Failure::usage("--reader applies only to a cluster")
                .hint("use --cluster ID --reader, or drop --reader")
                .into());
        }
        if e.port == Some(0) {
            return Err(Failure::usage("port 0 is not a port")
                .hint("use a number from 1 to 65535 (--port, or port = … in the config file)")
                .into());
        }
        if let Some(secs) = e.connect_timeout.filter(|s| !(1..=3600).contains(s)) {
            return Err(Failure::usage(format!("connect-timeout {secs} is out of range"))
                .hint("use 1 to 3600 seconds (--connect-timeout, or connect-timeout = … in the config file)")
                .into());
        }
        check_aws(e)?;
        if let Selector::Host(host) = &selector {
            check_host(host)?;
        }
        let user = match e.user.as_deref() {
            None => {
                return Err(Failure::usage("no database user given")
                    .hint("pass --user/-U with the role granted rds_iam, set PGUSER, or add user = … to the target")
                    .into());
            }
            Some(user) if user.trim().is_empty() => {
                return Err(Failure::usage("the database user name is empty")
                    .hint("pass --user/-U with the role granted rds_iam, or set PGUSER")
                    .into());
            }
            Some(user) => user.to_owned(),
        };
        check_name(&user, "user name", "--user/-U (or PGUSER)")?;
        if let Some(db) = &e.dbname {
            check_name(db, "database name", "--dbname/-d (or PGDATABASE)")?;
        }
        Ok(Target {
            selector,
            port: e.port,
            engine: e.engine,
            user,
            dbname: e.dbname.clone().filter(|db| !db.is_empty()),
            aws: aws_settings(e),
        })
    }
}

impl Conn {
    /// From the merged settings; every usage error here comes before any
    /// network call, whichever command asks.
    pub fn from_entry(e: &Entry) -> Result<Conn> {
        let via = e.via.as_deref().map(Via::parse).transpose()?;
        let roots = Roots::from_setting(e.ca_bundle.as_deref());
        if let Roots::File(_) = &roots {
            // Loaded now, so a bad bundle is a usage error before any
            // network, whether we or psql would have used it.
            roots.certificates()?;
        }
        Ok(Conn {
            via,
            sslmode: e.sslmode.unwrap_or_default(),
            roots,
            timeout: Duration::from_secs(e.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT)),
        })
    }
}

fn aws_settings(e: &Entry) -> AwsSettings {
    let set = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
    AwsSettings {
        region: set(&e.region),
        profile: set(&e.profile),
        endpoint_url: set(&e.endpoint_url),
        api_timeout: e.api_timeout.map(std::time::Duration::from_secs),
    }
}

/// PostgreSQL's limit on names (NAMEDATALEN - 1).
const MAX_NAME_BYTES: usize = 63;

/// A role or database name the server can take: no NUL (the wire protocol
/// ends strings with one) and at most 63 bytes.
fn check_name(value: &str, what: &str, flag: &str) -> Result<()> {
    if value.contains('\0') {
        return Err(Failure::usage(format!("the {what} contains a NUL byte"))
            .hint(format!("PostgreSQL names cannot hold NUL; fix {flag}"))
            .into());
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(Failure::usage(format!(
            "the {what} is {} bytes long; PostgreSQL names are at most {MAX_NAME_BYTES} bytes",
            value.len()
        ))
        .hint(format!("fix {flag}"))
        .into());
    }
    Ok(())
}

/// The AWS settings we pass on, checked before any network: a region is
/// lower-case letters, digits and `-` (`us-east-1`); an endpoint URL is
/// http(s), with a host and without a password.
fn check_aws(e: &Entry) -> Result<()> {
    if let Some(region) = &e.region {
        check_region(region, "--region")?;
    }
    if let Some((name, region)) = first_env(REGION_VARS) {
        check_region(&region, name)?;
    }
    if let Some(url) = &e.endpoint_url {
        check_endpoint_url(url, "--endpoint-url")?;
    }
    if let Some((name, url)) = first_env(ENDPOINT_VARS) {
        check_endpoint_url(&url, name)?;
    }
    if let Some(secs) = e.api_timeout.filter(|s| !(1..=3600).contains(s)) {
        return Err(Failure::usage(format!("api-timeout {secs} is out of range"))
            .hint("use 1 to 3600 seconds (--api-timeout, RDSIAM_API_TIMEOUT, or api-timeout = … in the config file)")
            .into());
    }
    Ok(())
}

fn check_region(region: &str, from: &str) -> Result<()> {
    let ok = !region.is_empty()
        && region.len() <= 32
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        return Ok(());
    }
    let shown = if region.is_empty() {
        "an empty value".to_owned()
    } else {
        format!("`{}`", region.escape_debug())
    };
    Err(Failure::usage(format!("{from} {shown} is not an AWS region"))
        .hint("a region is lower-case letters, digits and `-`, e.g. --region us-east-1 (or leave --region out to use AWS_REGION or the profile's)")
        .into())
}

/// The URL with any `user:password@` replaced, for messages.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://…@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

fn check_endpoint_url(url: &str, from: &str) -> Result<()> {
    let shown = redact_url(url).escape_debug().to_string();
    let bad = |why: &str| -> anyhow::Error {
        Failure::usage(format!("{from} `{shown}` {why}"))
            .hint("pass the endpoint as http(s)://HOST[:PORT], e.g. --endpoint-url https://rds.us-east-1.amazonaws.com")
            .into()
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(bad("is not a URL (no scheme)"));
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(bad("is not an http or https URL"));
    }
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.contains('@') {
        return Err(bad(
            "holds a user name or password, which AWS endpoints never take (drop the `…@` part)",
        ));
    }
    if authority.is_empty() || url.parse::<http::Uri>().is_err() {
        return Err(bad("is not a valid URL"));
    }
    Ok(())
}

/// AWS settings for a command without a target (`list`): flags over the
/// environment and the config file's `[defaults]`.
pub fn aws_only(aws: &AwsArgs) -> Result<AwsSettings> {
    let args = TargetArgs {
        aws: aws.clone(),
        ..TargetArgs::default()
    };
    let layered = layer(&args, None)?;
    check_aws(&layered.entry)?;
    Ok(aws_settings(&layered.entry))
}

/// A host name or IPv4 address, as RDS endpoints are; anything else would
/// sign a URL no server can match.
fn check_host(host: &str) -> Result<()> {
    let ok = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Failure::usage(format!("`{host}` is not a host name"))
            .hint("pass the endpoint's DNS name (letters, digits, `-`, `.`) or an IPv4 address, e.g. --host mydb.abc123.us-east-1.rds.amazonaws.com")
            .into())
    }
}

fn non_empty(value: &str, flag: &str) -> Result<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        Err(Failure::usage(format!("{flag} needs a non-empty value"))
            .hint(format!("pass {flag} with a name, or leave it out"))
            .into())
    } else {
        Ok(trimmed.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Kind, exit_code};
    use std::path::Path;

    fn args() -> TargetArgs {
        TargetArgs {
            user: Some("iamuserapp".into()),
            no_config: true,
            ..TargetArgs::default()
        }
    }

    fn config(text: &str) -> Config {
        Config::parse(text, Path::new("config.toml")).unwrap()
    }

    #[test]
    fn each_flag_gives_its_selector() {
        let mut a = args();
        a.proxy = Some("PostgreSqlProxy".into());
        assert_eq!(
            Target::from_args(&a).unwrap().selector,
            Selector::Proxy("PostgreSqlProxy".into())
        );

        let mut a = args();
        a.cluster = Some("databasecluster".into());
        a.reader = true;
        assert_eq!(
            Target::from_args(&a).unwrap().selector,
            Selector::Cluster {
                id: "databasecluster".into(),
                reader: true
            }
        );

        let mut a = args();
        a.instance = Some("db1".into());
        assert_eq!(
            Target::from_args(&a).unwrap().selector,
            Selector::Instance("db1".into())
        );

        let mut a = args();
        a.host = Some("h.example".into());
        a.port = Some(6543);
        let t = Target::from_args(&a).unwrap();
        assert_eq!(t.selector, Selector::Host("h.example".into()));
        assert_eq!(t.port, Some(6543));
    }

    #[test]
    fn missing_pieces_are_usage_errors() {
        let err = Target::from_args(&args()).unwrap_err();
        assert_eq!(exit_code(&err), Kind::Usage.code());
        assert!(err.to_string().contains("no target"));

        let mut a = args();
        a.host = Some("h".into());
        a.user = Some(" ".into());
        let err = Target::from_args(&a).unwrap_err();
        assert_eq!(exit_code(&err), 2);
        assert!(err.to_string().contains("empty"));

        let mut a = args();
        a.host = Some("h".into());
        a.user = None;
        assert_eq!(exit_code(&Target::from_args(&a).unwrap_err()), 2);

        let mut a = args();
        a.proxy = Some("".into());
        assert_eq!(exit_code(&Target::from_args(&a).unwrap_err()), 2);
    }

    const FILE: &str = r#"
[defaults]
user = "defaultuser"
dbname = "postgres"
connect-timeout = 3
sslmode = "verify-ca"

[targets.prod-orders]
proxy = "PostgreSqlProxy"
user = "iamuserapp"
dbname = "app"
via = "127.0.0.1:15432"

[targets.reporting]
cluster = "databasecluster"
reader = true
"#;

    #[test]
    fn precedence_defaults_target_flags() {
        let cfg = config(FILE);
        let mut a = TargetArgs {
            target: Some("prod-orders".into()),
            ..TargetArgs::default()
        };
        let l = layer_with(&cfg, &a, None).unwrap();
        let t = Target::from_layered(&l).unwrap();
        assert_eq!(t.selector, Selector::Proxy("PostgreSqlProxy".into()));
        assert_eq!(t.user, "iamuserapp");
        assert_eq!(t.dbname.as_deref(), Some("app"));
        assert_eq!(l.sources["user"], Source::Target);
        assert_eq!(l.sources["connect-timeout"], Source::Defaults);
        assert_eq!(l.entry.via.as_deref(), Some("127.0.0.1:15432"));

        // Flags beat the target; a flag's kind replaces the target's kind.
        a.user = Some("flaguser".into());
        a.host = Some("h.example".into());
        let conn = ConnArgs {
            sslmode: Some(SslModeArg::Require),
            ..ConnArgs::default()
        };
        let l = layer_with(&cfg, &a, Some(&conn)).unwrap();
        let t = Target::from_layered(&l).unwrap();
        assert_eq!(t.selector, Selector::Host("h.example".into()));
        assert_eq!(t.user, "flaguser");
        assert_eq!(l.sources["user"], Source::Flag);
        assert_eq!(l.entry.sslmode, Some(SslMode::Require));
        assert!(!l.sources.contains_key("proxy"));
    }

    #[test]
    fn reader_comes_with_the_cluster_and_flags_can_add_it() {
        let cfg = config(FILE);
        let a = TargetArgs {
            target: Some("reporting".into()),
            user: Some("u".into()),
            ..TargetArgs::default()
        };
        let t = Target::from_layered(&layer_with(&cfg, &a, None).unwrap()).unwrap();
        assert_eq!(
            t.selector,
            Selector::Cluster {
                id: "databasecluster".into(),
                reader: true
            }
        );

        let a = TargetArgs {
            target: Some("reporting".into()),
            user: Some("u".into()),
            cluster: Some("other".into()),
            ..TargetArgs::default()
        };
        let t = Target::from_layered(&layer_with(&cfg, &a, None).unwrap()).unwrap();
        assert_eq!(
            t.selector,
            Selector::Cluster {
                id: "other".into(),
                reader: false
            }
        );
    }

    #[test]
    fn unknown_target_and_two_kinds_are_usage_errors() {
        let cfg = config(FILE);
        let a = TargetArgs {
            target: Some("prod-order".into()),
            ..TargetArgs::default()
        };
        let err = layer_with(&cfg, &a, None).unwrap_err();
        assert_eq!(exit_code(&err), 2);
        assert!(
            err.to_string().contains("did you mean `prod-orders`?"),
            "{err}"
        );

        let cfg = config("[targets.bad]\nproxy = \"p\"\nhost = \"h\"\n");
        let a = TargetArgs {
            target: Some("bad".into()),
            ..TargetArgs::default()
        };
        let err = layer_with(&cfg, &a, None).unwrap_err();
        assert!(
            err.to_string().contains("sets both proxy and host"),
            "{err}"
        );
    }

    #[test]
    fn a_new_kind_drops_the_old_endpoints_port_and_tunnel() {
        let cfg = config(
            "[targets.t]\nproxy = \"p\"\nport = 6543\nvia = \"127.0.0.1:1\"\nuser = \"u\"\n",
        );
        let a = TargetArgs {
            target: Some("t".into()),
            cluster: Some("c".into()),
            ..TargetArgs::default()
        };
        let l = layer_with(&cfg, &a, None).unwrap();
        assert_eq!(l.entry.port, None);
        assert_eq!(l.entry.via, None);
        assert_eq!(l.entry.user.as_deref(), Some("u"));
    }

    #[test]
    fn a_targets_profile_beats_a_default_region() {
        let cfg = config(
            "[defaults]\nregion = \"us-east-1\"\n[targets.eu]\nhost = \"h\"\nprofile = \"eu\"\n",
        );
        let a = TargetArgs {
            target: Some("eu".into()),
            ..TargetArgs::default()
        };
        let l = layer_with(&cfg, &a, None).unwrap();
        assert_eq!(l.entry.profile.as_deref(), Some("eu"));
        assert_eq!(l.entry.region, None, "the profile's own region applies");
    }

    #[test]
    fn reader_flag_completes_a_named_cluster_and_is_refused_elsewhere() {
        let cfg = config(
            "[targets.c]\ncluster = \"db\"\nuser = \"u\"\n[targets.p]\nproxy = \"p\"\nuser = \"u\"\n",
        );
        let a = TargetArgs {
            target: Some("c".into()),
            reader: true,
            ..TargetArgs::default()
        };
        let t = Target::from_layered(&layer_with(&cfg, &a, None).unwrap()).unwrap();
        assert_eq!(
            t.selector,
            Selector::Cluster {
                id: "db".into(),
                reader: true
            }
        );
        let a = TargetArgs {
            target: Some("p".into()),
            reader: true,
            ..TargetArgs::default()
        };
        let err = Target::from_layered(&layer_with(&cfg, &a, None).unwrap()).unwrap_err();
        assert_eq!(exit_code(&err), 2);
    }

    #[test]
    fn hosts_and_timeouts_are_checked() {
        for bad in ["db example", "ユーザー.example", "::1", "h/x"] {
            let mut a = args();
            a.host = Some(bad.into());
            assert_eq!(exit_code(&Target::from_args(&a).unwrap_err()), 2, "{bad}");
        }
        let cfg = config("[targets.t]\nhost = \"h\"\nuser = \"u\"\nconnect-timeout = 0\n");
        let a = TargetArgs {
            target: Some("t".into()),
            ..TargetArgs::default()
        };
        let err = Target::from_layered(&layer_with(&cfg, &a, None).unwrap()).unwrap_err();
        assert!(err.to_string().contains("connect-timeout 0"), "{err}");
    }

    #[test]
    fn merged_connection_options() {
        let cfg = config(FILE);
        let a = TargetArgs {
            target: Some("prod-orders".into()),
            ..TargetArgs::default()
        };
        let l = layer_with(&cfg, &a, Some(&ConnArgs::default())).unwrap();
        assert_eq!(l.entry.connect_timeout, Some(3));
        assert_eq!(l.entry.sslmode, Some(SslMode::VerifyCa));
    }
}
