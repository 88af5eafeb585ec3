//! `rdsiam policy`: the least-privilege identity policy allowing
//! `rds-db:connect` for some users on one target, as an IAM policy document
//! or a Terraform `aws_iam_policy_document`; for an end-to-end IAM proxy,
//! also the policy its own role needs.

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::aws;
use crate::cli::{PolicyArgs, PolicyOutput};
use crate::doctor::API_TIMEOUT;
use crate::doctor::target::{
    ProxyDetails, arn_partition_account, dbuser_arn, partition_of, proxy_details,
};
use crate::endpoint::{self, Endpoint};
use crate::error::Failure;
use crate::output::{print, print_json};
use crate::target::{Selector, Target};

use super::runtime;

const STS_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Serialize)]
struct Document {
    #[serde(rename = "Version")]
    version: &'static str,
    #[serde(rename = "Statement")]
    statement: Vec<Statement>,
}

#[derive(Serialize)]
struct Statement {
    #[serde(rename = "Sid")]
    sid: &'static str,
    #[serde(rename = "Effect")]
    effect: &'static str,
    #[serde(rename = "Action")]
    action: &'static str,
    #[serde(rename = "Resource")]
    resource: Vec<String>,
}

fn document(sid: &'static str, resources: Vec<String>) -> Document {
    Document {
        version: "2012-10-17",
        statement: vec![Statement {
            sid,
            effect: "Allow",
            action: "rds-db:connect",
            resource: resources,
        }],
    }
}

/// One policy to print: who it is for and what it allows.
struct Policy {
    /// Terraform data source name.
    name: String,
    /// Who attaches it, for the Terraform comment.
    for_whom: String,
    sid: &'static str,
    resources: Vec<String>,
}

pub fn run(args: PolicyArgs) -> Result<u8> {
    let target = Target::from_args(&args.target_args())?;
    if let Selector::Host(host) = &target.selector {
        return Err(Failure::usage(format!(
            "`{host}` is a host: its resource id (the `db-…`, `cluster-…` or `prx-…` in the ARN) is unknown"
        ))
        .hint("name the target with --proxy, --cluster or --instance")
        .into());
    }
    let mut users: Vec<String> = if args.users.is_empty() {
        vec![target.user.clone()]
    } else {
        args.users.clone()
    };
    if let Some(bad) = users
        .iter()
        .find(|u| u.trim().is_empty() || u.contains('*') || u.contains('?'))
    {
        return Err(
            Failure::usage(format!("`{bad}` is not a database user name"))
                .hint("pass --user with exact role names (the policy allows no wildcards)")
                .into(),
        );
    }
    // IAM expands `${aws:username}` and friends inside a Resource: the
    // policy would allow a user per caller, not the one named (issue 24).
    if !args.allow_policy_variables
        && let Some(variable) = users.iter().find(|u| u.contains("${"))
    {
        return Err(Failure::usage(format!(
            "user `{}` holds an IAM policy variable (`${{…}}`), which IAM expands per caller",
            crate::output::one_line(variable)
        ))
        .hint("pass the database user name itself, or add --allow-policy-variables if a per-caller user is what you mean")
        .into());
    }
    let mut seen = std::collections::HashSet::new();
    users.retain(|u| seen.insert(u.clone()));
    if let Some(account) = &args.account
        && (account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(
            Failure::usage(format!("--account `{account}` is not an AWS account id"))
                .hint("pass the 12-digit account id, e.g. --account 123456789012")
                .into(),
        );
    }
    let policies = runtime()?.block_on(policies(&target, &users, &args))?;
    match args.output {
        PolicyOutput::Json => {
            // One document: the one the caller asked for.
            if let Some(policy) = policies.first() {
                print_json(&document(policy.sid, policy.resources.clone()))?;
            }
        }
        PolicyOutput::Terraform => print(&terraform(&policies))?,
    }
    Ok(0)
}

async fn policies(target: &Target, users: &[String], args: &PolicyArgs) -> Result<Vec<Policy>> {
    let aws = aws::load(&target.aws).await?;
    let rds = aws.rds()?;
    let endpoint =
        tokio::time::timeout(API_TIMEOUT, endpoint::resolve(&rds, &target.selector, None))
            .await
            .map_err(|_| {
                Failure::aws("the RDS API did not answer in time")
                    .hint("check --endpoint-url and the network")
            })??;
    let proxy = match target.selector {
        Selector::Proxy(_) => Some(
            tokio::time::timeout(API_TIMEOUT, proxy_details(&rds, &endpoint.name))
                .await
                .map_err(|_| Failure::aws("DescribeDBProxies did not answer in time"))??,
        ),
        _ => None,
    };
    let account = account(&aws, &endpoint, args.account.as_deref()).await?;
    let partition = endpoint
        .arn
        .as_deref()
        .and_then(arn_partition_account)
        .map_or_else(
            || partition_of(&aws.region).to_owned(),
            |(p, _)| p.to_owned(),
        );
    let arns = |resource_id: &str| -> Vec<String> {
        users
            .iter()
            .map(|u| dbuser_arn(&partition, &aws.region, &account, resource_id, u))
            .collect()
    };
    let slug = slug(&endpoint.name);
    let caller = match caller_resource_id(&endpoint) {
        Some(rid) => Policy {
            name: format!("rdsiam_connect_{slug}"),
            for_whom: "the IAM users or roles that log in".to_owned(),
            sid: "RdsIamConnect",
            resources: arns(rid),
        },
        None => {
            return Err(Failure::aws(format!(
                "the RDS API gave no resource id for {} `{}`",
                endpoint.kind, endpoint.name
            ))
            .hint("for an Aurora instance, name its cluster with --cluster (policies name the cluster's resource id)")
            .into());
        }
    };
    let role = proxy
        .as_ref()
        .filter(|p| p.iam_to_database())
        .map(|p| role_policy(p, &slug, &arns));
    match (args.proxy_role, role, args.output) {
        (true, None, _) => Err(Failure::usage(format!(
            "{} `{}` does not reach its database with IAM (its default auth scheme is not IAM_AUTH), so its role needs no rds-db:connect",
            endpoint.kind, endpoint.name
        ))
        .hint("drop --proxy-role")
        .into()),
        (true, Some(role), _) => Ok(vec![role?]),
        (false, Some(role), PolicyOutput::Terraform) => Ok(vec![caller, role?]),
        (false, Some(role), PolicyOutput::Json) => {
            if let Ok(role) = role {
                eprintln!(
                    "rdsiam: note: proxy `{}` reaches its database with IAM: its role {} also needs rds-db:connect on {}; `--proxy-role` prints that policy",
                    endpoint.name,
                    role.for_whom,
                    role.resources.join(", ")
                );
            }
            Ok(vec![caller])
        }
        (false, None, _) => Ok(vec![caller]),
    }
}

/// The id a caller's policy names: an Aurora instance's is its cluster's
/// (endpoint.rs fetched that, or left none).
fn caller_resource_id(endpoint: &Endpoint) -> Option<&str> {
    let rid = endpoint.resource_id.as_deref()?;
    if endpoint.cluster.is_some() && !rid.starts_with("cluster-") {
        return None;
    }
    Some(rid)
}

fn role_policy(
    proxy: &ProxyDetails,
    slug: &str,
    arns: &dyn Fn(&str) -> Vec<String>,
) -> Result<Policy> {
    let role = proxy
        .role_arn
        .clone()
        .unwrap_or_else(|| "(the proxy's role)".into());
    let Some(rid) = proxy
        .backend
        .as_ref()
        .and_then(|b| b.resource_id.as_deref())
    else {
        return Err(Failure::aws(
            "DescribeDBProxyTargets did not say which database the proxy reaches",
        )
        .hint("the caller needs rds:DescribeDBProxyTargets and rds:DescribeDBClusters; or write the role's policy by hand with the database's cluster-…/db-… id")
        .into());
    };
    Ok(Policy {
        name: format!("rdsiam_proxy_role_{slug}"),
        for_whom: role,
        sid: "RdsProxyIamToDatabase",
        resources: arns(rid),
    })
}

/// `--account`, else STS's; the resource's own account (from its ARN)
/// wins when STS names another, since rds-db resources live with the database.
async fn account(aws: &aws::Aws, endpoint: &Endpoint, flag: Option<&str>) -> Result<String> {
    if let Some(account) = flag {
        return Ok(account.to_owned());
    }
    let of_resource = endpoint
        .arn
        .as_deref()
        .and_then(arn_partition_account)
        .map(|(_, a)| a.to_owned());
    let call = aws.sts()?.get_caller_identity().send();
    let from_sts = match tokio::time::timeout(STS_TIMEOUT, call).await {
        Ok(Ok(out)) => out.account().map(str::to_owned),
        Ok(Err(err)) => {
            if of_resource.is_none() {
                return Err(Failure::aws(format!(
                    "STS GetCallerIdentity failed: {}",
                    aws::error_chain(&err)
                ))
                .hint("pass --account ID")
                .into());
            }
            None
        }
        Err(_) => None,
    };
    match (from_sts, of_resource) {
        (Some(sts), Some(resource)) if sts != resource => {
            eprintln!(
                "rdsiam: warning: you are in account {sts}, the database in {resource}; the policy names the database's account (pass --account to choose)"
            );
            Ok(resource)
        }
        (Some(sts), _) => Ok(sts),
        (None, Some(resource)) => Ok(resource),
        (None, None) => Err(Failure::aws("cannot tell the account: STS did not answer")
            .hint("pass --account ID")
            .into()),
    }
}

/// A Terraform identifier from a resource name.
fn slug(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    s.trim_matches('_').to_owned()
}

fn terraform(policies: &[Policy]) -> String {
    let mut out = String::new();
    for (n, p) in policies.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        out.push_str(&format!("# Attach to {}.\n", p.for_whom));
        out.push_str(&format!(
            "data \"aws_iam_policy_document\" \"{}\" {{\n",
            p.name
        ));
        out.push_str("  statement {\n");
        out.push_str(&format!("    sid       = \"{}\"\n", p.sid));
        out.push_str("    effect    = \"Allow\"\n");
        out.push_str("    actions   = [\"rds-db:connect\"]\n");
        out.push_str("    resources = [\n");
        for r in &p.resources {
            out.push_str(&format!("      {},\n", hcl_string(r)));
        }
        out.push_str("    ]\n  }\n}\n");
    }
    out
}

/// `text` as an HCL string literal: quotes, backslashes and control
/// characters escaped, and `${` / `%{` doubled so Terraform reads them as
/// text, not as a template (a user name may hold any of them).
fn hcl_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_document_is_what_iam_takes() {
        let doc = serde_json::to_value(document(
            "RdsIamConnect",
            vec!["arn:aws:rds-db:us-east-1:1:dbuser:prx-1/u".into()],
        ))
        .unwrap();
        assert_eq!(doc["Version"], "2012-10-17");
        assert_eq!(doc["Statement"][0]["Effect"], "Allow");
        assert_eq!(doc["Statement"][0]["Action"], "rds-db:connect");
        assert_eq!(
            doc["Statement"][0]["Resource"][0],
            "arn:aws:rds-db:us-east-1:1:dbuser:prx-1/u"
        );
    }

    #[test]
    fn terraform_blocks() {
        let text = terraform(&[Policy {
            name: "rdsiam_connect_postgresqlproxy".into(),
            for_whom: "callers".into(),
            sid: "RdsIamConnect",
            resources: vec!["arn:aws:rds-db:us-east-1:1:dbuser:prx-1/u".into()],
        }]);
        assert!(
            text.contains("data \"aws_iam_policy_document\" \"rdsiam_connect_postgresqlproxy\" {"),
            "{text}"
        );
        assert!(text.contains("actions   = [\"rds-db:connect\"]"), "{text}");
        assert!(
            text.contains("\"arn:aws:rds-db:us-east-1:1:dbuser:prx-1/u\","),
            "{text}"
        );
        // A user name is the ARN's tail: whatever it holds stays text.
        assert_eq!(
            hcl_string("dbuser:prx-1/a\"b\\c${x}%{y}$z%w\nq\u{1}"),
            r#""dbuser:prx-1/a\"b\\c$${x}%%{y}$z%w\nq\u0001""#
        );
        assert_eq!(slug("PostgreSqlProxy"), "postgresqlproxy");
        assert_eq!(slug("my-db.1"), "my_db_1");
    }
}
