//! From a [`Selector`] to an [`Endpoint`] through the RDS API
//! (DescribeDBProxies, DescribeDBClusters, DescribeDBInstances), following
//! `Marker` pages; also the listings behind `rdsiam list` and "did you mean".

use std::fmt;

use anyhow::Result;
use aws_sdk_rds::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_rds::types::{DbCluster, DbInstance, DbProxy};
use serde::Serialize;

use crate::engine::Engine;
use crate::error::{Failure, suggestions};
use crate::target::Selector;

/// PostgreSQL's port, and RDS Proxy's for the POSTGRESQL engine family (the
/// API does not report a proxy's port); MySQL's is [`Engine::default_port`].
pub const DEFAULT_PORT: u16 = 5432;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndpointKind {
    Proxy,
    ClusterWriter,
    ClusterReader,
    Instance,
    Host,
}

impl fmt::Display for EndpointKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EndpointKind::Proxy => "proxy",
            EndpointKind::ClusterWriter => "cluster",
            EndpointKind::ClusterReader => "cluster (reader)",
            EndpointKind::Instance => "instance",
            EndpointKind::Host => "host",
        })
    }
}

/// Where to connect and what the RDS API said about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub kind: EndpointKind,
    /// The proxy name, cluster or instance identifier, or the host.
    pub name: String,
    pub host: String,
    pub port: u16,
    /// The API's engine name (`aurora-mysql`) or proxy engine family (`MYSQL`).
    pub engine: Option<String>,
    /// The protocol it speaks: from `engine`, or `--engine` for a host.
    pub family: Engine,
    pub status: Option<String>,
    /// IAM database authentication on (`None`: unknown, as for `--host`).
    pub iam: Option<bool>,
    /// For a proxy: whether it requires TLS.
    pub require_tls: Option<bool>,
    /// `prx-…`, `cluster-…` or `db-…`: the id in the `rds-db:connect` ARN.
    pub resource_id: Option<String>,
    pub arn: Option<String>,
    /// For an instance in an Aurora cluster: the cluster, whose resource
    /// id (not the instance's) IAM policies name.
    pub cluster: Option<String>,
}

impl Endpoint {
    /// An endpoint named by `--host`: nothing known but host, port and
    /// the engine the user named.
    pub fn host(host: &str, port: Option<u16>, family: Engine) -> Endpoint {
        Endpoint {
            kind: EndpointKind::Host,
            name: host.to_owned(),
            host: host.to_owned(),
            port: port.unwrap_or(family.default_port()),
            engine: None,
            family,
            status: None,
            iam: None,
            require_tls: None,
            resource_id: None,
            arn: None,
            cluster: None,
        }
    }

    /// The resource the caller's policy must allow `rds-db:connect` on.
    pub fn policy_resource(&self, region: &str, user: &str) -> Option<String> {
        if self.cluster.is_some() && !self.resource_id.as_deref()?.starts_with("cluster-") {
            // Aurora: only the cluster's resource id will do.
            return None;
        }
        let arn = self.arn.as_deref()?;
        let mut parts = arn.split(':');
        let partition = parts.nth(1)?;
        let account = parts.nth(2)?;
        let resource_id = self.resource_id.as_deref()?;
        Some(format!(
            "arn:{partition}:rds-db:{region}:{account}:dbuser:{resource_id}/{user}"
        ))
    }

    /// The command that turns IAM auth on for this resource.
    pub fn enable_iam_hint(&self) -> String {
        match self.kind {
            EndpointKind::Proxy => format!(
                "aws rds modify-db-proxy --db-proxy-name {} --default-auth-scheme IAM_AUTH",
                self.name
            ),
            EndpointKind::ClusterWriter | EndpointKind::ClusterReader => format!(
                "aws rds modify-db-cluster --db-cluster-identifier {} --enable-iam-database-authentication --apply-immediately",
                self.name
            ),
            _ => format!(
                "aws rds modify-db-instance --db-instance-identifier {} --enable-iam-database-authentication --apply-immediately",
                self.name
            ),
        }
    }
}

/// Find the endpoint for `selector`. `port` overrides the API's port.
pub async fn resolve(
    rds: &aws_sdk_rds::Client,
    selector: &Selector,
    port: Option<u16>,
) -> Result<Endpoint> {
    let mut endpoint = match selector {
        Selector::Host(host) => return Ok(Endpoint::host(host, port, Engine::default())),
        Selector::Proxy(name) => resolve_proxy(rds, name).await?,
        Selector::Cluster { id, reader } => resolve_cluster(rds, id, *reader).await?,
        Selector::Instance(id) => resolve_instance(rds, id).await?,
    };
    if let Some(port) = port {
        endpoint.port = port;
    }
    Ok(endpoint)
}

async fn resolve_proxy(rds: &aws_sdk_rds::Client, name: &str) -> Result<Endpoint> {
    match rds.describe_db_proxies().db_proxy_name(name).send().await {
        Ok(out) => {
            if let Some(proxy) = out.db_proxies().first() {
                return ready(proxy_endpoint(proxy));
            }
        }
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_db_proxy_not_found_fault()) => {}
        Err(err) => return Err(api_failure("DescribeDBProxies", err).into()),
    }
    // The CDK names proxies `PostgreSqlProxy`; people type what they see in
    // the lower-case endpoint. Accept a unique case-insensitive match.
    let proxies = list_proxies(rds).await?;
    let matches: Vec<&Endpoint> = proxies
        .iter()
        .filter(|p| p.name.eq_ignore_ascii_case(name))
        .collect();
    match matches.as_slice() {
        [one] => ready((*one).clone()),
        _ => Err(not_found("proxy", name, &proxies).into()),
    }
}

async fn resolve_cluster(rds: &aws_sdk_rds::Client, id: &str, reader: bool) -> Result<Endpoint> {
    match rds
        .describe_db_clusters()
        .db_cluster_identifier(id)
        .send()
        .await
    {
        Ok(out) => {
            if let Some(cluster) = out.db_clusters().first() {
                return ready(cluster_endpoint(cluster, reader));
            }
        }
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_db_cluster_not_found_fault()) => {}
        Err(err) => return Err(api_failure("DescribeDBClusters", err).into()),
    }
    let clusters = list_clusters(rds).await?;
    Err(not_found("cluster", id, &clusters).into())
}

async fn resolve_instance(rds: &aws_sdk_rds::Client, id: &str) -> Result<Endpoint> {
    match rds
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
    {
        Ok(out) => {
            if let Some(instance) = out.db_instances().first() {
                let mut endpoint = ready(instance_endpoint(instance))?;
                if let Some(cluster) = endpoint.cluster.clone() {
                    aurora_policy_id(rds, &mut endpoint, &cluster).await;
                }
                return Ok(endpoint);
            }
        }
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_db_instance_not_found_fault()) => {}
        Err(err) => return Err(api_failure("DescribeDBInstances", err).into()),
    }
    let instances = list_instances(rds).await?;
    Err(not_found("instance", id, &instances).into())
}

/// IAM policies for an Aurora instance name its cluster's resource id, not
/// the instance's: fetch it so a refused login can print the exact ARN.
/// Best effort: without it the hint names the cluster instead.
async fn aurora_policy_id(rds: &aws_sdk_rds::Client, endpoint: &mut Endpoint, cluster: &str) {
    endpoint.resource_id = None;
    if let Ok(out) = rds
        .describe_db_clusters()
        .db_cluster_identifier(cluster)
        .send()
        .await
        && let Some(found) = out.db_clusters().first()
    {
        endpoint.resource_id = found.db_cluster_resource_id().map(str::to_owned);
    }
}

fn not_found(what: &str, name: &str, existing: &[Endpoint]) -> Failure {
    let flag = match what {
        "proxy" => "--proxy",
        "cluster" => "--cluster",
        _ => "--instance",
    };
    let mut failure = Failure::aws(format!("no {what} named `{name}` in this region"));
    let close = suggestions(name, existing.iter().map(|e| e.name.as_str()));
    failure = if close.is_empty() {
        failure
    } else {
        failure.hint(format!(
            "did you mean {}?",
            close
                .iter()
                .map(|n| format!("`{flag} {n}`"))
                .collect::<Vec<_>>()
                .join(" or ")
        ))
    };
    failure.hint("check --region and --profile; `rdsiam list` shows what this region has")
}

/// Every proxy in the region, all pages.
pub async fn list_proxies(rds: &aws_sdk_rds::Client) -> Result<Vec<Endpoint>> {
    let mut pages = rds.describe_db_proxies().into_paginator().send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| api_failure("DescribeDBProxies", err))?;
        for proxy in page.db_proxies() {
            out.push(proxy_endpoint(proxy));
        }
    }
    Ok(out)
}

/// Every cluster in the region (writer endpoints), all pages.
pub async fn list_clusters(rds: &aws_sdk_rds::Client) -> Result<Vec<Endpoint>> {
    let mut pages = rds.describe_db_clusters().into_paginator().send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| api_failure("DescribeDBClusters", err))?;
        for cluster in page.db_clusters() {
            out.push(cluster_endpoint(cluster, false));
        }
    }
    Ok(out)
}

/// Every instance in the region, all pages.
pub async fn list_instances(rds: &aws_sdk_rds::Client) -> Result<Vec<Endpoint>> {
    let mut pages = rds.describe_db_instances().into_paginator().send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| api_failure("DescribeDBInstances", err))?;
        for instance in page.db_instances() {
            out.push(instance_endpoint(instance));
        }
    }
    Ok(out)
}

fn proxy_endpoint(proxy: &DbProxy) -> Endpoint {
    let name = proxy.db_proxy_name().unwrap_or_default().to_owned();
    let host = proxy.endpoint().unwrap_or_default().to_owned();
    // End-to-end IAM (the article's setup) shows as DefaultAuthScheme
    // IAM_AUTH; older proxies carry IAMAuth on each secret-based auth entry.
    let iam = proxy.default_auth_scheme() == Some("IAM_AUTH")
        || proxy.auth().iter().any(|auth| {
            matches!(
                auth.iam_auth().map(|m| m.as_str()),
                Some("REQUIRED" | "ENABLED")
            )
        });
    let arn = proxy.db_proxy_arn().map(str::to_owned);
    let family = family(proxy.engine_family());
    Endpoint {
        kind: EndpointKind::Proxy,
        host,
        port: family.default_port(),
        engine: proxy.engine_family().map(str::to_owned),
        family,
        status: proxy.status().map(|s| s.as_str().to_owned()),
        iam: Some(iam),
        require_tls: proxy.require_tls(),
        resource_id: arn
            .as_deref()
            .and_then(|a| a.rsplit(':').next())
            .map(str::to_owned),
        arn,
        cluster: None,
        name,
    }
}

fn cluster_endpoint(cluster: &DbCluster, reader: bool) -> Endpoint {
    let name = cluster
        .db_cluster_identifier()
        .unwrap_or_default()
        .to_owned();
    let (kind, host) = if reader {
        (EndpointKind::ClusterReader, cluster.reader_endpoint())
    } else {
        (EndpointKind::ClusterWriter, cluster.endpoint())
    };
    let family = family(cluster.engine());
    Endpoint {
        kind,
        host: host.unwrap_or_default().to_owned(),
        port: api_port(cluster.port(), family),
        engine: cluster.engine().map(str::to_owned),
        family,
        status: cluster.status().map(str::to_owned),
        iam: cluster.iam_database_authentication_enabled(),
        require_tls: None,
        resource_id: cluster.db_cluster_resource_id().map(str::to_owned),
        arn: cluster.db_cluster_arn().map(str::to_owned),
        cluster: None,
        name,
    }
}

fn instance_endpoint(instance: &DbInstance) -> Endpoint {
    let name = instance
        .db_instance_identifier()
        .unwrap_or_default()
        .to_owned();
    let address = instance.endpoint().and_then(|e| e.address());
    let family = family(instance.engine());
    Endpoint {
        kind: EndpointKind::Instance,
        host: address.unwrap_or_default().to_owned(),
        port: api_port(instance.endpoint().and_then(|e| e.port()), family),
        engine: instance.engine().map(str::to_owned),
        family,
        status: instance.db_instance_status().map(str::to_owned),
        iam: instance.iam_database_authentication_enabled(),
        require_tls: None,
        resource_id: instance.dbi_resource_id().map(str::to_owned),
        arn: instance.db_instance_arn().map(str::to_owned),
        cluster: instance.db_cluster_identifier().map(str::to_owned),
        name,
    }
}

fn api_port(port: Option<i32>, family: Engine) -> u16 {
    port.and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .unwrap_or(family.default_port())
}

/// The protocol behind an API engine name; unknown ones (none given, SQL
/// Server) are taken as PostgreSQL, as before engines were told apart.
fn family(engine: Option<&str>) -> Engine {
    engine.and_then(Engine::from_api).unwrap_or_default()
}

/// A resource still being created has no endpoint yet; only the one asked
/// for must have one (listings show it with an empty endpoint).
fn ready(endpoint: Endpoint) -> Result<Endpoint> {
    if endpoint.host.is_empty() {
        return Err(Failure::aws(format!(
            "{} `{}` has no endpoint yet (status: {})",
            endpoint.kind,
            endpoint.name,
            endpoint.status.as_deref().unwrap_or("unknown")
        ))
        .hint("wait until `rdsiam list` shows it available, then try again")
        .into());
    }
    Ok(endpoint)
}

/// Name the API endpoint in an RDS API failure (`url` as called), so a
/// user sees which endpoint failed or hung.
pub fn naming_endpoint(err: anyhow::Error, url: &str) -> anyhow::Error {
    match err.downcast::<Failure>() {
        Ok(mut failure) => {
            if failure.message.contains("RDS API ") && !failure.message.contains(" at http") {
                failure.message =
                    failure
                        .message
                        .replacen("RDS API ", &format!("RDS API at {url} "), 1);
            }
            failure.into()
        }
        Err(err) => err,
    }
}

/// An HTTP answer that is not an AWS one, for messages: the status and the
/// start of the body (truncated; control characters are escaped on output).
pub fn http_summary(raw: &aws_smithy_runtime_api::client::orchestrator::HttpResponse) -> String {
    const SHOWN: usize = 200;
    let status = raw.status().as_u16();
    let body = raw.body().bytes().map(String::from_utf8_lossy);
    match body.as_deref().map(str::trim) {
        None | Some("") => format!("HTTP {status} with an empty body"),
        Some(text) if text.chars().count() > SHOWN => format!(
            "HTTP {status}: {}…",
            text.chars().take(SHOWN).collect::<String>()
        ),
        Some(text) => format!("HTTP {status}: {text}"),
    }
}

/// An RDS API error as its AWS code and message, never a Rust debug dump.
pub fn api_failure<E>(
    operation: &str,
    err: SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match &err {
        SdkError::ServiceError(service) if service.err().code().is_none() => {
            // Not an AWS error document: say what came back instead.
            Failure::aws(format!(
                "RDS API {operation} failed: {}",
                http_summary(service.raw())
            ))
            .hint("that is not an AWS answer: check --endpoint-url / AWS_ENDPOINT_URL_RDS and any proxy in between")
        }
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = e.code().unwrap_or("UnknownError");
            let message = e.message().unwrap_or("no message");
            let failure = Failure::aws(format!("RDS API {operation} failed: {code}: {message}"));
            match code {
                "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" => failure.hint(format!(
                    "the caller needs `rds:{operation}`; or skip the API with --host ENDPOINT"
                )),
                "InvalidClientTokenId" | "SignatureDoesNotMatch" | "ExpiredToken" | "ExpiredTokenException" => {
                    failure.hint("refresh your AWS credentials (aws sso login, or new keys) and try again")
                }
                _ => failure.hint("check --region, --profile and --endpoint-url"),
            }
        }
        SdkError::TimeoutError(_) => Failure::aws(format!(
            "the RDS API did not answer {operation} in time"
        ))
        .hint("check the network and --endpoint-url / AWS_ENDPOINT_URL_RDS; raise --api-timeout (RDSIAM_API_TIMEOUT) if it is just slow"),
        SdkError::DispatchFailure(_) => Failure::aws(format!(
            "could not reach the RDS API for {operation}: {}",
            crate::aws::error_chain(&err)
        ))
        .hint("check the network and --endpoint-url / AWS_ENDPOINT_URL_RDS"),
        SdkError::ResponseError(response) => Failure::aws(format!(
            "the RDS API sent an answer to {operation} that could not be read: {} ({})",
            crate::aws::error_chain(&err),
            http_summary(response.raw())
        ))
        .hint("check --endpoint-url / AWS_ENDPOINT_URL_RDS and any proxy in between"),
        _ => Failure::aws(format!("RDS API {operation} failed: {}", crate::aws::error_chain(&err)))
            .hint("check --region and --endpoint-url; run again with RUST_LOG unset and report it if it persists"),
    }
}

/// The region in an RDS host name: `x.proxy-abc.us-east-1.rds.amazonaws.com`.
pub fn host_region(host: &str) -> Option<&str> {
    let labels: Vec<&str> = host.split('.').collect();
    let rds = labels.iter().position(|l| l.eq_ignore_ascii_case("rds"))?;
    if labels
        .get(rds + 1)
        .is_some_and(|l| l.eq_ignore_ascii_case("amazonaws"))
        && rds > 0
    {
        Some(labels[rds - 1])
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_from_rds_host_names() {
        assert_eq!(
            host_region("postgresqlproxy.proxy-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com"),
            Some("us-east-1")
        );
        assert_eq!(
            host_region("db.cluster-ro-abc.cn-north-1.rds.amazonaws.com.cn"),
            Some("cn-north-1")
        );
        assert_eq!(host_region("localhost"), None);
        assert_eq!(host_region("rds.example.com"), None);
    }

    fn proxy() -> Endpoint {
        Endpoint {
            kind: EndpointKind::Proxy,
            name: "PostgreSqlProxy".into(),
            host: "postgresqlproxy.proxy-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com".into(),
            port: 5432,
            engine: Some("POSTGRESQL".into()),
            family: Engine::Postgres,
            status: Some("available".into()),
            iam: Some(true),
            require_tls: Some(true),
            resource_id: Some("prx-0123456789abcdef0".into()),
            arn: Some("arn:aws:rds:us-east-1:123456789012:db-proxy:prx-0123456789abcdef0".into()),
            cluster: None,
        }
    }

    #[test]
    fn policy_resource_uses_the_resource_id() {
        assert_eq!(
            proxy().policy_resource("us-east-1", "iamuserapp").unwrap(),
            "arn:aws:rds-db:us-east-1:123456789012:dbuser:prx-0123456789abcdef0/iamuserapp"
        );
        let mut cn = proxy();
        cn.arn = Some("arn:aws-cn:rds:cn-north-1:111122223333:cluster:c".into());
        cn.resource_id = Some("cluster-ABC".into());
        assert_eq!(
            cn.policy_resource("cn-north-1", "u").unwrap(),
            "arn:aws-cn:rds-db:cn-north-1:111122223333:dbuser:cluster-ABC/u"
        );
        assert_eq!(
            Endpoint::host("h", None, Engine::Postgres).policy_resource("us-east-1", "u"),
            None
        );
    }

    #[test]
    fn proxy_from_api_shape() {
        let api = DbProxy::builder()
            .db_proxy_name("PostgreSqlProxy")
            .db_proxy_arn("arn:aws:rds:us-east-1:123456789012:db-proxy:prx-0123456789abcdef0")
            .endpoint("postgresqlproxy.proxy-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com")
            .engine_family("POSTGRESQL")
            .status(aws_sdk_rds::types::DbProxyStatus::Available)
            .require_tls(true)
            .default_auth_scheme("IAM_AUTH")
            .build();
        assert_eq!(proxy_endpoint(&api), proxy());
    }

    #[test]
    fn not_found_suggests_close_names() {
        let failure = not_found("proxy", "PostgresProxy", &[proxy()]);
        let text = failure.to_string();
        assert!(text.contains("no proxy named `PostgresProxy`"), "{text}");
        assert!(
            text.contains("did you mean `--proxy PostgreSqlProxy`?"),
            "{text}"
        );
    }

    #[test]
    fn listings_keep_resources_without_an_endpoint_but_resolving_one_fails() {
        let creating = DbInstance::builder()
            .db_instance_identifier("new-db")
            .db_instance_status("creating")
            .build();
        let listed = instance_endpoint(&creating);
        assert_eq!(listed.host, "");
        let err = ready(listed).unwrap_err();
        assert!(
            err.to_string()
                .contains("instance `new-db` has no endpoint yet (status: creating)"),
            "{err}"
        );
    }

    #[test]
    fn host_endpoint_defaults_to_the_engines_port() {
        assert_eq!(Endpoint::host("h", None, Engine::Postgres).port, 5432);
        assert_eq!(Endpoint::host("h", Some(6543), Engine::Postgres).port, 6543);
        assert_eq!(Endpoint::host("h", None, Engine::Mysql).port, 3306);
    }

    #[test]
    fn mysql_resources_get_3306_and_their_family() {
        let api = DbProxy::builder()
            .db_proxy_name("MySqlProxy")
            .endpoint("mysqlproxy.proxy-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com")
            .engine_family("MYSQL")
            .build();
        let e = proxy_endpoint(&api);
        assert_eq!((e.port, e.family), (3306, Engine::Mysql));
        let cluster = DbCluster::builder()
            .db_cluster_identifier("orders")
            .engine("aurora-mysql")
            .endpoint("orders.cluster-abc.us-east-1.rds.amazonaws.com")
            .build();
        let e = cluster_endpoint(&cluster, false);
        assert_eq!((e.port, e.family), (3306, Engine::Mysql));
        let maria = DbInstance::builder()
            .db_instance_identifier("maria")
            .engine("mariadb")
            .build();
        assert_eq!(instance_endpoint(&maria).family, Engine::Mysql);
    }
}
