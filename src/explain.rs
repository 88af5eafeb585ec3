//! Why the database refused an IAM login, in one place (issue 18): the
//! known causes, most likely first, weighed against what is known — what
//! the RDS API said of the endpoint, the server's words, and what the
//! doctor's earlier steps measured. `check`, `sql`, `psql`, the proxy and
//! the doctor all render this one list (as a CLI error, a proxy
//! ErrorResponse, or a doctor step).

use crate::endpoint::{Endpoint, EndpointKind};
use crate::engine::{Engine, quote_account};
use crate::error::{Failure, Kind, Stage};
use crate::output::quote_ident;

/// The most a clock may be off AWS time before tokens are refused.
pub const SKEW_LIMIT_SECS: i64 = 300;

/// What is known beyond the endpoint. `None`: not checked.
#[derive(Clone, Debug, Default)]
pub struct Evidence {
    /// Name the doctor's steps that found each fact (`(step 2)`).
    pub steps: bool,
    /// PostgreSQL said "password authentication failed", not PAM's words:
    /// the token was checked as the role's own password (IAM off, or the
    /// role not in rds_iam), so IAM itself never saw it.
    pub checked_as_password: Option<bool>,
    /// Measured offset of this clock from AWS time, seconds.
    pub clock_skew: Option<i64>,
    /// The credentials are loaded and not about to expire.
    pub credentials_fresh: Option<bool>,
    /// STS accepted a request signed with the same key.
    pub signature_ok: Option<bool>,
    pub caller_arn: Option<String>,
    /// The exact `rds-db:connect` resource, when known.
    pub resource_arn: Option<String>,
    /// A proxy that logs in to its database with IAM: its role and the
    /// resource that role must be allowed.
    pub proxy_role: Option<(String, String)>,
}

/// The causes still possible, most likely first, and those ruled out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Causes {
    pub likely: Vec<String>,
    pub ruled_out: Vec<String>,
}

/// The refusal as a CLI/proxy failure: the server's words, then the causes.
pub fn refused_login(endpoint: &Endpoint, region: &str, user: &str, base: &str) -> Failure {
    let evidence = Evidence {
        checked_as_password: (endpoint.family == Engine::Postgres)
            .then(|| base.contains("password authentication failed")),
        ..Evidence::default()
    };
    let mut failure = Failure::new(
        Kind::Login,
        format!(
            "the database refused the IAM login for `{user}` at {}:{}: {base}",
            endpoint.host, endpoint.port
        ),
    )
    .hint("known causes, most likely first:")
    .at(Stage::Login);
    for (n, cause) in causes(endpoint, region, user, &evidence)
        .likely
        .into_iter()
        .enumerate()
    {
        failure = failure.hint(format!("{}. {cause}", n + 1));
    }
    failure
}

/// The one list of causes of a refused IAM login.
pub fn causes(endpoint: &Endpoint, region: &str, user: &str, ev: &Evidence) -> Causes {
    let step = |n: u8| {
        if ev.steps {
            format!(" (step {n})")
        } else {
            String::new()
        }
    };
    if ev.checked_as_password == Some(true) {
        return checked_as_password(endpoint, user, &step(3));
    }
    let mut c = Causes::default();
    let grant = format!("GRANT rds_iam TO {};", quote_ident(user));

    // What the API and earlier checks found outranks what is merely common.
    match endpoint.iam {
        Some(false) => c.likely.push(format!(
            "IAM auth is OFF on this target{}: {}",
            step(3),
            endpoint.enable_iam_hint()
        )),
        Some(true) => c
            .ruled_out
            .push(format!("IAM auth off{}: it is on", step(3))),
        None => {}
    }
    match ev.clock_skew {
        Some(skew) if skew.abs() > SKEW_LIMIT_SECS => c.likely.push(format!(
            "clock skew{}: this clock is {} s off AWS time, so the token is dated outside the 5 min AWS allows: sync the clock (`sudo timedatectl set-ntp true`)",
            step(2),
            -skew
        )),
        Some(_) => c.ruled_out.push(format!("clock skew{}", step(2))),
        None => {}
    }
    if ev.credentials_fresh == Some(false) {
        c.likely.push(format!(
            "the credentials are expired or about to expire{}: refresh them and try again",
            step(1)
        ));
    }
    match crate::endpoint::host_region(&endpoint.host) {
        Some(host_region) if host_region != region => c.likely.push(format!(
            "region mismatch: the token was signed for {region}, the endpoint is in {host_region}; pass --region {host_region}"
        )),
        Some(_) => c
            .ruled_out
            .push(format!("region mismatch (the endpoint is in {region})")),
        None if endpoint.host.parse::<std::net::IpAddr>().is_ok()
            || endpoint.host.eq_ignore_ascii_case("localhost") =>
        {
            c.likely.push(format!(
                "the token names `{}`, but RDS checks it against its own endpoint name: name the real endpoint (--host NAME, --proxy, --cluster, --instance) and reach it with --via {}:{}",
                endpoint.host, endpoint.host, endpoint.port
            ));
        }
        None => {}
    }
    // A direct PostgreSQL endpoint answers PAM only for members of rds_iam
    // (pg_hba sends everyone else to password checking): PAM's refusal there
    // rules the grant out.
    let direct = matches!(
        endpoint.kind,
        EndpointKind::Instance | EndpointKind::ClusterWriter | EndpointKind::ClusterReader
    );
    match endpoint.family {
        Engine::Mysql => c.likely.push(format!(
            "no user `{user}` identified with AWSAuthenticationPlugin: as an admin run `CREATE USER {} IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS';` (`rdsiam doctor` shows how it is identified)",
            quote_account(user)
        )),
        Engine::Postgres if direct && ev.checked_as_password == Some(false) => c.ruled_out.push(
            "the role lacking rds_iam (a direct endpoint answers PAM only for rds_iam members)"
                .to_owned(),
        ),
        Engine::Postgres => c.likely.push(format!(
            "the role lacks rds_iam: run `{grant}` as an admin"
        )),
    }
    match ev.signature_ok {
        Some(true) => c.ruled_out.push(format!(
            "a wrong secret key{}: STS accepted the signature",
            step(2)
        )),
        _ => c.likely.push(
            "wrong or revoked AWS credentials (a wrong secret key, a rotated or deleted access key): `aws sts get-caller-identity` with the same profile tells".to_owned(),
        ),
    }
    c.likely.push(policy_cause(endpoint, region, user, ev));
    if let Some((role, resource)) = &ev.proxy_role {
        c.likely.push(format!(
            "the proxy reaches its database with IAM: its role {role} must allow rds-db:connect on {resource}, and the role must have rds_iam in that database"
        ));
    }
    if ev.clock_skew.is_none() {
        c.likely.push(
            "clock skew: this machine's clock must be within 5 minutes of AWS time (check `timedatectl`)".to_owned(),
        );
    }
    if endpoint.iam.is_none() {
        c.likely
            .push("IAM auth off on the target (`rdsiam list` shows it)".to_owned());
    }
    c
}

/// The server checked the token as the role's own password: IAM never saw
/// it, and only two things send it there.
fn checked_as_password(endpoint: &Endpoint, user: &str, step3: &str) -> Causes {
    let mut c = Causes::default();
    let not_member = format!(
        "the role `{user}` is not a member of rds_iam (or does not exist), so the server checked the token as an ordinary password: as an admin run `GRANT rds_iam TO {0};` (create it first if needed: CREATE ROLE {0} LOGIN;)",
        quote_ident(user)
    );
    let iam_off = format!(
        "IAM auth is off on the target, so the server checked the token as an ordinary password: {}",
        endpoint.enable_iam_hint()
    );
    match endpoint.iam {
        Some(true) => {
            c.likely.push(not_member);
            c.ruled_out.push(format!("IAM auth off{step3}: it is on"));
        }
        Some(false) => c.likely.push(iam_off),
        None => c.likely.extend([not_member, iam_off]),
    }
    c
}

/// The policy that must allow `rds-db:connect`, as exactly as known.
fn policy_cause(endpoint: &Endpoint, region: &str, user: &str, ev: &Evidence) -> String {
    let caller = ev
        .caller_arn
        .as_deref()
        .map_or_else(|| "the caller".to_owned(), |arn| format!("`{arn}`"));
    let id_kind = match (&endpoint.kind, &endpoint.cluster) {
        (EndpointKind::Instance, Some(cluster)) => format!(
            "an Aurora instance's policy names its cluster's resource id: cluster-… of `{cluster}`"
        ),
        (EndpointKind::Proxy, _) => "prx-… for a proxy".to_owned(),
        (EndpointKind::ClusterWriter | EndpointKind::ClusterReader, _) => {
            "cluster-… for a cluster".to_owned()
        }
        (EndpointKind::Instance, None) => "db-… for an instance".to_owned(),
        (EndpointKind::Host, _) => {
            "prx-… for a proxy, cluster-… for a cluster, db-… for an instance".to_owned()
        }
    };
    let resource = ev
        .resource_arn
        .clone()
        .or_else(|| endpoint.policy_resource(region, user));
    match resource {
        Some(arn) => format!(
            "the IAM policy of {caller} must allow rds-db:connect on {arn} (the resource id is {id_kind}; a `db-…`/`cluster-…`/`prx-…` mix-up is the usual slip: `rdsiam policy` prints the right one)"
        ),
        None => format!(
            "the IAM policy of {caller} must allow rds-db:connect on arn:aws:rds-db:{region}:ACCOUNT:dbuser:RESOURCE-ID/{user} ({id_kind}; `rdsiam list -o json` shows resource ids)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(iam: Option<bool>) -> Endpoint {
        Endpoint {
            kind: EndpointKind::Instance,
            name: "orders".into(),
            iam,
            resource_id: Some("db-ABC".into()),
            ..Endpoint::host(
                "orders.c1.us-east-1.rds.amazonaws.com",
                Some(5432),
                Engine::Postgres,
            )
        }
    }

    #[test]
    fn a_token_checked_as_a_password_has_only_its_two_causes() {
        let ev = Evidence {
            checked_as_password: Some(true),
            ..Evidence::default()
        };
        let c = causes(&instance(Some(true)), "us-east-1", "app", &ev);
        assert_eq!(c.likely.len(), 1, "{c:?}");
        assert!(c.likely[0].contains("not a member of rds_iam"), "{c:?}");
        let c = causes(&instance(None), "us-east-1", "app", &ev);
        assert_eq!(c.likely.len(), 2, "{c:?}");
    }

    #[test]
    fn the_cli_and_the_doctor_give_one_list() {
        // The same evidence gives the same causes; the doctor only adds
        // which step found what.
        let cli = causes(
            &instance(Some(true)),
            "eu-west-1",
            "app",
            &Evidence::default(),
        );
        let doctor = causes(
            &instance(Some(true)),
            "eu-west-1",
            "app",
            &Evidence {
                steps: true,
                ..Evidence::default()
            },
        );
        let strip = |v: &[String]| -> Vec<String> {
            v.iter()
                .map(|s| s.replace(" (step 3)", "").replace(" (step 2)", ""))
                .collect()
        };
        assert_eq!(strip(&cli.likely), strip(&doctor.likely));
        assert_eq!(strip(&cli.ruled_out), strip(&doctor.ruled_out));
        assert!(cli.likely[0].starts_with("region mismatch"), "{cli:?}");
        assert!(
            cli.likely
                .iter()
                .any(|l| l.contains("rds-db:connect on arn:aws:rds-db:eu-west-1:")),
            "{cli:?}"
        );
    }

    #[test]
    fn what_earlier_checks_found_moves_causes_in_and_out() {
        let ev = Evidence {
            steps: true,
            checked_as_password: Some(false),
            clock_skew: Some(-900),
            signature_ok: Some(true),
            ..Evidence::default()
        };
        let c = causes(&instance(Some(true)), "us-east-1", "app", &ev);
        assert!(c.likely[0].starts_with("clock skew (step 2)"), "{c:?}");
        assert!(
            c.ruled_out
                .iter()
                .any(|r| r.starts_with("a wrong secret key")),
            "{c:?}"
        );
        // A direct endpoint answers PAM only for rds_iam members.
        assert!(
            c.ruled_out.iter().any(|r| r.contains("lacking rds_iam")),
            "{c:?}"
        );
        assert!(
            !c.likely.iter().any(|l| l.contains("lacks rds_iam")),
            "{c:?}"
        );
    }
}
