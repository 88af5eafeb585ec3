//! From flags (and later the config file) to a [`Target`]: what to reach, as
//! whom, and with which AWS settings. Clap types end here.

use anyhow::Result;

use crate::aws::AwsSettings;
use crate::cli::TargetArgs;
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

impl Target {
    pub fn from_args(args: &TargetArgs) -> Result<Target> {
        let selector = if let Some(name) = &args.proxy {
            Selector::Proxy(non_empty(name, "--proxy")?)
        } else if let Some(id) = &args.cluster {
            Selector::Cluster {
                id: non_empty(id, "--cluster")?,
                reader: args.reader,
            }
        } else if let Some(id) = &args.instance {
            Selector::Instance(non_empty(id, "--instance")?)
        } else if let Some(host) = &args.host {
            Selector::Host(non_empty(host, "--host")?)
        } else {
            return Err(Failure::usage("no target given")
                .hint("name one with --proxy NAME, --cluster ID, --instance ID or --host HOST (`rdsiam list` shows what the region has)")
                .into());
        };
        let user = match args.user.as_deref() {
            None => {
                return Err(Failure::usage("no database user given")
                    .hint("pass --user/-U with the role granted rds_iam, or set PGUSER")
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
            port: args.port,
            user,
            dbname: args.dbname.clone().filter(|db| !db.is_empty()),
            aws: AwsSettings {
                region: args.aws.region.clone().filter(|r| !r.is_empty()),
                profile: args.aws.profile.clone().filter(|p| !p.is_empty()),
                endpoint_url: args.aws.endpoint_url.clone().filter(|u| !u.is_empty()),
            },
        })
    }
}

fn non_empty(value: &str, flag: &str) -> Result<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        Err(Failure::usage(format!("{flag} needs a non-empty value")).into())
    } else {
        Ok(trimmed.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Kind, exit_code};

    fn args() -> TargetArgs {
        TargetArgs {
            user: Some("iamuserapp".into()),
            ..TargetArgs::default()
        }
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
}
