//! From flags, environment and the config file to a [`Target`]: what to
//! reach, as whom, with which AWS settings, and how to connect. Clap types
//! end here. Precedence, resolved in [`layer`] alone: built-in defaults <
//! `[defaults]` < the named target < environment < flags.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use crate::aws::{self, AwsSettings};
use crate::cli::{AwsArgs, ConnArgs, TargetArgs};
use crate::config::{Config, Entry};
use crate::error::Failure;

/// Which RDS resource names the endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    Proxy(String),
    Cluster {
        id: String,
        reader: bool,
    },
    Instance(String),
    /// A host used as is: no RDS API call.
    Host(String),
}

/// Everything needed to find the endpoint and sign for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub selector: Selector,
    pub port: Option<u16>,
    pub user: String,
    pub dbname: Option<String>,
    pub aws: AwsSettings,
}

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

const KINDS: [&str; 4] = ["proxy", "cluster", "instance", "host"];

fn kinds_set(entry: &Entry) -> Vec<&'static str> {
    let set = [&entry.proxy, &entry.cluster, &entry.instance, &entry.host];
    KINDS
        .iter()
        .zip(set)
        .filter(|(_, v)| v.is_some())
        .map(|(k, _)| *k)
        .collect()
}

impl Layered {
    /// Put `upper` over what is here.
    fn overlay(&mut self, upper: &Entry, source: Source) {
        // Naming a kind of endpoint replaces the endpoint: a flag's --host
        // beats a target's proxy, and the port and tunnel the file gave that
        // endpoint go with it (RDSIAM_VIA and flags are not tied to one).
        if !kinds_set(upper).is_empty() {
            self.clear(&["proxy", "cluster", "instance", "host", "reader"]);
            for key in ["port", "via"] {
                if matches!(
                    self.sources.get(key),
                    Some(Source::Defaults | Source::Target)
                ) {
                    self.clear(&[key]);
                }
            }
        }
        // A profile brings its own region; a lower layer's must not win.
        if upper.profile.is_some() && upper.region.is_none() {
            self.clear(&["region"]);
        }
        let dst = &mut self.entry;
        macro_rules! take {
            ($($field:ident => $key:literal),* $(,)?) => {$(
                if let Some(value) = &upper.$field {
                    dst.$field = Some(value.clone());
                    self.sources.insert($key, source);
                }
            )*};
        }
        take!(
            proxy => "proxy", cluster => "cluster", reader => "reader", instance => "instance",
            host => "host", port => "port", user => "user", dbname => "dbname", region => "region",
            profile => "profile", endpoint_url => "endpoint-url", via => "via", sslmode => "sslmode",
            ca_bundle => "ca-bundle", connect_timeout => "connect-timeout", listen => "listen",
        );
    }

    fn clear(&mut self, keys: &[&'static str]) {
        for key in keys {
            let e = &mut self.entry;
            match *key {
                "proxy" => e.proxy = None,
                "cluster" => e.cluster = None,
                "instance" => e.instance = None,
                "host" => e.host = None,
                "reader" => e.reader = None,
                "port" => e.port = None,
                "via" => e.via = None,
                "region" => e.region = None,
                "profile" => e.profile = None,
                "endpoint-url" => e.endpoint_url = None,
                _ => unreachable!("not a layered key: {key}"),
            }
            self.sources.remove(key);
        }
    }

    /// AWS variables beat the file but are read by the SDK itself, so a
    /// file value they cover is dropped rather than passed on as explicit.
    fn mask_aws_env(&mut self) {
        for (key, names) in [
            ("profile", aws::PROFILE_VARS),
            ("region", aws::REGION_VARS),
            ("endpoint-url", aws::ENDPOINT_VARS),
        ] {
            if aws::first_env(names).is_some() {
                self.clear(&[key]);
                if key == "profile" {
                    // The SDK takes the region from that profile.
                    self.clear(&["region"]);
                }
                self.sources.insert(key, Source::Env);
            }
        }
    }
}

/// The libpq and rdsiam variables that stand for flags.
fn env_entry() -> Entry {
    Entry {
        user: aws::env_var("PGUSER"),
        dbname: aws::env_var("PGDATABASE"),
        ca_bundle: aws::env_var("PGSSLROOTCERT").map(Into::into),
        via: aws::env_var("RDSIAM_VIA"),
        ..Entry::default()
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
        user: args.user.clone(),
        dbname: args.dbname.clone(),
        region: args.aws.region.clone(),
        profile: args.aws.profile.clone(),
        endpoint_url: args.aws.endpoint_url.clone(),
        via: conn.and_then(|c| c.via.clone()),
        sslmode: conn.and_then(|c| c.sslmode),
        ca_bundle: conn.and_then(|c| c.ca_bundle.clone()),
        connect_timeout: conn.and_then(|c| c.connect_timeout),
        listen: None,
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
    layered.overlay(&env_entry(), Source::Env);
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
    pub fn with_conn(args: &TargetArgs, conn: &ConnArgs) -> Result<(Target, ConnArgs)> {
        let layered = layer(args, Some(conn))?;
        let e = &layered.entry;
        let merged = ConnArgs {
            via: e.via.clone(),
            sslmode: e.sslmode,
            ca_bundle: e.ca_bundle.clone(),
            connect_timeout: e.connect_timeout,
        };
        Ok((Target::from_layered(&layered)?, merged))
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
        Ok(Target {
            selector,
            port: e.port,
            user,
            dbname: e.dbname.clone().filter(|db| !db.is_empty()),
            aws: aws_settings(e),
        })
    }
}

fn aws_settings(e: &Entry) -> AwsSettings {
    let set = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
    AwsSettings {
        region: set(&e.region),
        profile: set(&e.profile),
        endpoint_url: set(&e.endpoint_url),
    }
}

/// AWS settings for a command without a target (`list`): flags over the
/// environment and the config file's `[defaults]`.
pub fn aws_only(aws: &AwsArgs) -> Result<AwsSettings> {
    let args = TargetArgs {
        aws: aws.clone(),
        ..TargetArgs::default()
    };
    Ok(aws_settings(&layer(&args, None)?.entry))
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
    use crate::cli::SslMode;
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
            sslmode: Some(SslMode::Require),
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
