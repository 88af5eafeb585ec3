//! Steps 3 and 4: the target as the RDS API describes it (engine, status,
//! IAM auth, for a proxy its auth scheme, TLS requirement, role and the
//! database behind it), and the exact `rds-db:connect` resources a login
//! needs. `rdsiam policy` builds its documents from the same functions.

use anyhow::Result;
use aws_sdk_rds::types::TargetType;

use super::{Findings, Step};
use crate::aws::Aws;
use crate::endpoint::{self, Endpoint, EndpointKind, api_failure};
use crate::error::{Failure, Kind};
use crate::target::{Selector, Target};

/// What DescribeDBProxies and DescribeDBProxyTargets say beyond the endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyDetails {
    /// `IAM_AUTH` when the proxy reaches its database with IAM too.
    pub default_auth_scheme: Option<String>,
    /// `IAMAuth` of each secrets-based auth entry: REQUIRED, ENABLED, DISABLED.
    pub iam_auth: Vec<String>,
    pub require_tls: Option<bool>,
    /// The proxy's own IAM role.
    pub role_arn: Option<String>,
    /// The database behind the proxy, when the API said.
    pub backend: Option<Backend>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// `cluster` or `instance`.
    pub kind: &'static str,
    pub name: String,
    /// `cluster-…` or `db-…`: what the proxy role's policy must name.
    pub resource_id: Option<String>,
}

impl ProxyDetails {
    /// End-to-end IAM: the proxy logs in to its database with its role's
    /// own token, so that role needs `rds-db:connect` on the database too.
    pub fn iam_to_database(&self) -> bool {
        self.default_auth_scheme.as_deref() == Some("IAM_AUTH")
    }

    /// Whether clients must (or may) log in with IAM.
    pub fn client_iam(&self) -> Option<&'static str> {
        if self.iam_to_database() || self.iam_auth.iter().any(|m| m == "REQUIRED") {
            Some("required")
        } else if self.iam_auth.iter().any(|m| m == "ENABLED") {
            Some("enabled")
        } else {
            None
        }
    }
}

/// The proxy's auth settings and the database it fronts. The targets are
/// best effort: without them only the proxy role's second ARN is unknown.
pub async fn proxy_details(rds: &aws_sdk_rds::Client, name: &str) -> Result<ProxyDetails> {
    let out = rds
        .describe_db_proxies()
        .db_proxy_name(name)
        .send()
        .await
        .map_err(|err| api_failure("DescribeDBProxies", err))?;
    let Some(proxy) = out.db_proxies().first() else {
        return Ok(ProxyDetails::default());
    };
    let mut details = ProxyDetails {
        default_auth_scheme: proxy.default_auth_scheme().map(str::to_owned),
        iam_auth: proxy
            .auth()
            .iter()
            .filter_map(|a| a.iam_auth().map(|m| m.as_str().to_owned()))
            .collect(),
        require_tls: proxy.require_tls(),
        role_arn: proxy.role_arn().map(str::to_owned),
        backend: None,
    };
    let Ok(targets) = rds
        .describe_db_proxy_targets()
        .db_proxy_name(name)
        .send()
        .await
    else {
        return Ok(details);
    };
    let tracked = targets
        .targets()
        .iter()
        .find(|t| t.r#type() == Some(&TargetType::TrackedCluster))
        .and_then(|t| t.rds_resource_id());
    let instance = targets
        .targets()
        .iter()
        .find(|t| t.r#type() == Some(&TargetType::RdsInstance))
        .and_then(|t| t.rds_resource_id());
    details.backend = match (tracked, instance) {
        (Some(cluster), _) => Some(Backend {
            kind: "cluster",
            name: cluster.to_owned(),
            resource_id: cluster_resource_id(rds, cluster).await,
        }),
        (None, Some(id)) => Some(instance_backend(rds, id).await),
        (None, None) => None,
    };
    Ok(details)
}

async fn cluster_resource_id(rds: &aws_sdk_rds::Client, id: &str) -> Option<String> {
    let out = rds
        .describe_db_clusters()
        .db_cluster_identifier(id)
        .send()
        .await
        .ok()?;
    out.db_clusters()
        .first()?
        .db_cluster_resource_id()
        .map(str::to_owned)
}

async fn instance_backend(rds: &aws_sdk_rds::Client, id: &str) -> Backend {
    let found = rds
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
        .ok()
        .and_then(|out| out.db_instances().first().cloned());
    match found {
        // An Aurora member: policies name its cluster.
        Some(i) if i.db_cluster_identifier().is_some() => {
            let cluster = i.db_cluster_identifier().unwrap_or_default().to_owned();
            Backend {
                kind: "cluster",
                resource_id: cluster_resource_id(rds, &cluster).await,
                name: cluster,
            }
        }
        found => Backend {
            kind: "instance",
            name: id.to_owned(),
            resource_id: found.and_then(|i| i.dbi_resource_id().map(str::to_owned)),
        },
    }
}

/// `arn:<partition>:rds-db:<region>:<account>:dbuser:<resource-id>/<user>`.
pub fn dbuser_arn(
    partition: &str,
    region: &str,
    account: &str,
    resource_id: &str,
    user: &str,
) -> String {
    format!("arn:{partition}:rds-db:{region}:{account}:dbuser:{resource_id}/{user}")
}

/// The partition and account of an ARN.
pub fn arn_partition_account(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.split(':');
    let partition = parts.nth(1)?;
    let account = parts.nth(2)?;
    Some((partition, account))
}

/// The partition a region belongs to, for ARNs built without one.
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else {
        "aws"
    }
}

fn is_postgres(engine: &str) -> bool {
    let e = engine.to_ascii_lowercase();
    e == "postgresql" || e == "postgres" || e == "aurora-postgresql"
}

/// Statuses in which an endpoint takes no logins at all.
fn unreachable_status(status: &str) -> bool {
    matches!(
        status,
        "stopped"
            | "stopping"
            | "starting"
            | "creating"
            | "deleting"
            | "failed"
            | "inaccessible-encryption-credentials"
            | "incompatible-network"
            | "incompatible-parameters"
            | "incompatible-restore"
            | "insufficient-capacity"
            | "restore-error"
            | "storage-full"
            | "suspended"
    )
}

/// Step 3.
pub async fn target(aws: &Aws, target: &Target, found: &mut Findings) -> (Step, Option<Endpoint>) {
    let step = Step::new(3, "target");
    let rds = match aws.rds() {
        Ok(rds) => rds,
        Err(err) => return (step.fail_with(&err), None),
    };
    // --api-timeout bounds each API step, as it does every other command's.
    let api_timeout = target.aws.timeout();
    let resolved = tokio::time::timeout(
        api_timeout,
        endpoint::resolve(&rds, &target.selector, target.port),
    )
    .await;
    let endpoint = match resolved {
        Err(_) => {
            return (
                step.fail(
                    Kind::Aws,
                    format!(
                        "the RDS API at {} did not answer within {}s",
                        aws.rds_endpoint(),
                        api_timeout.as_secs()
                    ),
                )
                .then("check the network and --endpoint-url / AWS_ENDPOINT_URL_RDS; raise --api-timeout (RDSIAM_API_TIMEOUT) if it is just slow"),
                None,
            );
        }
        Ok(Err(err)) => {
            let err = endpoint::naming_endpoint(err, &aws.rds_endpoint());
            return (step.fail_with(&err), None);
        }
        Ok(Ok(endpoint)) => endpoint,
    };
    let proxy = match &target.selector {
        Selector::Proxy(_) => {
            let details = tokio::time::timeout(api_timeout, proxy_details(&rds, &endpoint.name))
                .await
                .unwrap_or_else(|_| Err(Failure::aws("DescribeDBProxies timed out").into()));
            details.ok()
        }
        _ => None,
    };
    let step = describe(step, &endpoint, proxy.as_ref(), found);
    found.proxy = proxy;
    (step, Some(endpoint))
}

/// Judge what the API said.
fn describe(
    mut step: Step,
    endpoint: &Endpoint,
    proxy: Option<&ProxyDetails>,
    found: &mut Findings,
) -> Step {
    let engine = endpoint.engine.clone().unwrap_or_else(|| "unknown".into());
    let status = endpoint.status.clone().unwrap_or_else(|| "unknown".into());
    step = step
        .detail("kind", endpoint.kind)
        .detail("name", &endpoint.name)
        .detail("host", &endpoint.host)
        .detail("port", endpoint.port)
        .detail("engine", &endpoint.engine)
        .detail("status", &endpoint.status)
        .detail("iam_auth", endpoint.iam)
        .detail("resource_id", &endpoint.resource_id)
        .detail("arn", &endpoint.arn);
    let mut parts = vec![
        format!(
            "{} {} at {}:{}",
            endpoint.kind, endpoint.name, endpoint.host, endpoint.port
        ),
        engine.clone(),
        status.clone(),
    ];
    match proxy {
        Some(p) => {
            step = step
                .detail("auth_scheme", &p.default_auth_scheme)
                .detail("client_iam_auth", p.client_iam())
                .detail("require_tls", p.require_tls)
                .detail("role_arn", &p.role_arn)
                .detail(
                    "backend",
                    p.backend.as_ref().map(|b| {
                        serde_json::json!({"kind": b.kind, "name": b.name, "resource_id": b.resource_id})
                    }),
                );
            parts.push(match (&p.default_auth_scheme, p.client_iam()) {
                (Some(scheme), Some(iam)) => format!("IAM {iam} (auth scheme {scheme})"),
                (None, Some(iam)) => format!("IAM {iam} (secrets to the database)"),
                (_, None) => "IAM auth off".to_owned(),
            });
            parts.push(if p.require_tls == Some(true) {
                "TLS required".to_owned()
            } else {
                "TLS not required (rdsiam uses it anyway)".to_owned()
            });
        }
        None => parts.push(match endpoint.iam {
            Some(true) => "IAM auth on".to_owned(),
            Some(false) => "IAM auth OFF".to_owned(),
            None => "IAM auth unknown".to_owned(),
        }),
    }
    if let Some(id) = &endpoint.resource_id {
        parts.push(id.clone());
    }
    let summary = parts.join(", ");
    // PostgreSQL and MySQL/MariaDB have IAM logins here; others do not.
    let served = is_postgres(&engine)
        || endpoint.engine.is_none()
        || crate::engine::Engine::from_api(&engine) == Some(crate::engine::Engine::Mysql);
    found.postgres = Some(served);
    if !served {
        return step
            .fail(Kind::Aws, format!("{summary}: neither PostgreSQL nor MySQL"))
            .then(format!(
                "rdsiam speaks PostgreSQL and MySQL/MariaDB; for {engine} use its own client with `aws rds generate-db-auth-token`, or pick another target (`rdsiam list`)"
            ));
    }
    if endpoint.iam == Some(false) {
        return step
            .fail(
                Kind::Aws,
                format!("{summary}: the database will refuse every IAM token"),
            )
            .then(format!("turn IAM auth on: {}", endpoint.enable_iam_hint()));
    }
    if unreachable_status(&status) {
        let next = if status == "stopped" {
            match endpoint.kind {
                EndpointKind::ClusterWriter | EndpointKind::ClusterReader => format!(
                    "start it: aws rds start-db-cluster --db-cluster-identifier {}",
                    endpoint.name
                ),
                _ => format!(
                    "start it: aws rds start-db-instance --db-instance-identifier {}",
                    endpoint.name
                ),
            }
        } else {
            "wait until `rdsiam list` shows it available, or look at the RDS console's events"
                .to_owned()
        };
        return step
            .fail(
                Kind::Aws,
                format!("{summary}: it takes no connections while {status}"),
            )
            .then(next);
    }
    if status != "available" && status != "unknown" {
        return step.warn(
            format!("{summary}: connections may fail or drop while {status}"),
            "if the login fails, wait until `rdsiam list` shows it available",
        );
    }
    step.ok(summary)
}

/// Step 4: the resources the caller's policy (and a proxy's role) must allow.
pub fn policy(endpoint: &Endpoint, aws: &Aws, target: &Target, found: &mut Findings) -> Step {
    let step = Step::new(4, "policy");
    let user = &target.user;
    if endpoint.kind == EndpointKind::Host {
        return step.skip(
            "--host: the resource id is unknown (name the target with --proxy, --cluster or --instance, or see `rdsiam list -o json`)",
        );
    }
    let Some(arn) = endpoint.policy_resource(&aws.region, user) else {
        let why = match &endpoint.cluster {
            Some(cluster) => format!(
                "an Aurora instance's policy names its cluster's resource id, and DescribeDBClusters did not give `{cluster}`'s"
            ),
            None => "the RDS API gave no resource id or ARN".to_owned(),
        };
        return step.warn(
            format!("cannot name the rds-db:connect resource: {why}"),
            "look it up with `rdsiam list -o json` (resource_id) and allow arn:aws:rds-db:REGION:ACCOUNT:dbuser:RESOURCE-ID/USER",
        );
    };
    found.resource_arn = Some(arn.clone());
    let mut step = step
        .detail("resource_arn", &arn)
        .detail("caller_arn", &found.caller_arn);
    let mut summary = format!("the caller needs rds-db:connect on {arn}");
    if let Some(proxy) = found.proxy.as_ref().filter(|p| p.iam_to_database()) {
        let role = proxy.role_arn.clone();
        let second = proxy
            .backend
            .as_ref()
            .and_then(|b| b.resource_id.as_deref())
            .zip(endpoint.arn.as_deref().and_then(arn_partition_account))
            .map(|(rid, (partition, account))| {
                dbuser_arn(partition, &aws.region, account, rid, user)
            });
        step = step
            .detail("proxy_role_arn", &role)
            .detail("proxy_role_resource_arn", &second);
        found.proxy_role_arn = role.clone();
        found.proxy_role_resource_arn = second.clone();
        match second {
            Some(second) => {
                summary.push_str(&format!(
                    "; the proxy's role {} needs rds-db:connect on {second}",
                    role.as_deref().unwrap_or("(unknown)")
                ));
            }
            None => {
                return step.warn(
                    format!("{summary}; the proxy reaches its database with IAM, but DescribeDBProxyTargets did not say which database"),
                    "the proxy's role needs rds-db:connect on arn:aws:rds-db:REGION:ACCOUNT:dbuser:<its database's cluster-…/db-… id>/USER too",
                );
            }
        }
    }
    if found.caller_arn.is_some() {
        summary.push_str(" (`rdsiam policy` prints it as JSON or Terraform)");
    }
    step.ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_and_arns() {
        assert_eq!(partition_of("cn-north-1"), "aws-cn");
        assert_eq!(partition_of("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition_of("eu-west-1"), "aws");
        assert_eq!(
            arn_partition_account("arn:aws-cn:rds:cn-north-1:111122223333:db:x"),
            Some(("aws-cn", "111122223333"))
        );
        assert_eq!(
            dbuser_arn("aws", "us-east-1", "123456789012", "prx-0abc", "app"),
            "arn:aws:rds-db:us-east-1:123456789012:dbuser:prx-0abc/app"
        );
    }

    #[test]
    fn proxy_iam_modes() {
        let mut p = ProxyDetails {
            default_auth_scheme: Some("IAM_AUTH".into()),
            ..ProxyDetails::default()
        };
        assert!(p.iam_to_database());
        assert_eq!(p.client_iam(), Some("required"));
        p.default_auth_scheme = None;
        p.iam_auth = vec!["ENABLED".into()];
        assert!(!p.iam_to_database());
        assert_eq!(p.client_iam(), Some("enabled"));
        p.iam_auth = vec!["DISABLED".into()];
        assert_eq!(p.client_iam(), None);
    }

    #[test]
    fn engines() {
        for pg in ["postgres", "aurora-postgresql", "POSTGRESQL"] {
            assert!(is_postgres(pg), "{pg}");
        }
        for other in ["mysql", "aurora-mysql", "MYSQL", "SQLSERVER"] {
            assert!(!is_postgres(other), "{other}");
        }
    }
}
