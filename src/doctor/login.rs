//! Steps 7 and 8: a login with a fresh token, and on refusal the causes
//! still possible once steps 1–6 have ruled some out; then, inside, who we
//! are, whether the role is in `rds_iam`, whether the database exists, the
//! server's version, and writer or reader.

use std::time::Duration;

use tokio_postgres::SimpleQueryMessage;

use super::creds::SKEW_FAIL;
use super::{Findings, Step};
use crate::connect::{Connector, Session, host_region};
use crate::endpoint::EndpointKind;
use crate::error::{Failure, Kind, suggestions};
use crate::session::Resolved;

/// A database every RDS PostgreSQL has, to tell "the login" from "the database".
const FALLBACK_DB: &str = "postgres";

const INSIDE: &str = "SELECT current_user, session_user, current_database(), \
current_setting('server_version'), pg_is_in_recovery(), \
CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_iam') \
THEN pg_has_role(current_user, 'rds_iam', 'MEMBER') END";

const DATABASES: &str =
    "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1";

/// What step 7 hands to step 8.
pub struct LoggedIn {
    pub session: Session,
    /// The database asked for, when it does not exist and the login was
    /// proven against [`FALLBACK_DB`] instead.
    pub missing_db: Option<String>,
}

/// Step 7.
pub async fn login(
    resolved: &Resolved,
    connector: &Connector,
    found: &Findings,
) -> (Step, Option<LoggedIn>) {
    let step = Step::new(7, "login");
    let user = &resolved.target.user;
    let dbname = resolved.target.dbname.as_deref();
    let err = match connector.connect(resolved, dbname).await {
        Ok(session) => {
            let db = dbname.unwrap_or(user.as_str());
            return (
                step.ok(format!("logged in as {user} to {db} with a fresh token")),
                Some(LoggedIn {
                    session,
                    missing_db: None,
                }),
            );
        }
        Err(err) => err,
    };
    let Some(failure) = err.downcast_ref::<Failure>() else {
        return (step.fail_with(&err), None);
    };
    let message = &failure.message;
    let step = step.detail("server_message", message);
    if failure.kind == Kind::Login && message.contains("SQLSTATE 3D000") {
        let wanted = dbname.unwrap_or(user.as_str()).to_owned();
        if let Ok(session) = connector.connect(resolved, Some(FALLBACK_DB)).await {
            return (
                step.ok(format!(
                    "logged in as {user} with a fresh token (to `{FALLBACK_DB}`: database `{wanted}` does not exist, see step 8)"
                )),
                Some(LoggedIn {
                    session,
                    missing_db: Some(wanted),
                }),
            );
        }
        return (step.fail_with(&err), None);
    }
    if failure.kind != Kind::Login {
        return (step.fail_with(&err), None);
    }
    let checked_as_password = message.contains("password authentication failed");
    let (causes, ruled_out) = if checked_as_password {
        password_causes(resolved)
    } else {
        pam_causes(resolved, found)
    };
    let mut step = step
        .detail("causes", &causes)
        .detail("ruled_out", &ruled_out)
        .fail(Kind::Login, message.clone());
    for (n, cause) in causes.iter().enumerate() {
        step = step.then(format!("{}. {cause}", n + 1));
    }
    if !ruled_out.is_empty() {
        step = step.then(format!("ruled out by steps 1–6: {}", ruled_out.join("; ")));
    }
    (step, None)
}

fn grant(user: &str) -> String {
    format!("GRANT rds_iam TO \"{}\";", user.replace('"', "\"\""))
}

/// `password authentication failed`: the server checked the token as the
/// role's own password, which RDS does when IAM auth is off, or when the
/// role is not a member of `rds_iam` (only members go to PAM).
fn password_causes(resolved: &Resolved) -> (Vec<String>, Vec<String>) {
    let endpoint = &resolved.endpoint;
    let user = &resolved.target.user;
    let grant = format!(
        "the role `{user}` is not a member of rds_iam (or does not exist), so the server checked the token as an ordinary password: as an admin run `{}` (create it first if needed: CREATE ROLE \"{user}\" LOGIN;)",
        grant(user)
    );
    let iam_off = format!(
        "IAM auth is off on the target, so the server checked the token as an ordinary password: {}",
        endpoint.enable_iam_hint()
    );
    match endpoint.iam {
        Some(true) => (
            vec![grant],
            vec!["IAM auth off (step 3: it is on)".to_owned()],
        ),
        Some(false) => (vec![iam_off], Vec::new()),
        None => (vec![grant, iam_off], Vec::new()),
    }
}

/// `PAM authentication failed`: IAM checked the token and said no.
pub(super) fn pam_causes(resolved: &Resolved, found: &Findings) -> (Vec<String>, Vec<String>) {
    let endpoint = &resolved.endpoint;
    let user = &resolved.target.user;
    let region = &resolved.aws.region;
    let mut causes = Vec::new();
    let mut ruled_out = Vec::new();

    // What earlier steps already found comes first.
    match endpoint.iam {
        Some(false) => causes.push(format!(
            "IAM auth is OFF on this target (step 3): {}",
            endpoint.enable_iam_hint()
        )),
        Some(true) => ruled_out.push("IAM auth off (step 3: it is on)".to_owned()),
        None => {}
    }
    match found.clock_skew {
        Some(skew) if skew.abs() > SKEW_FAIL => causes.push(format!(
            "clock skew (step 2): this clock is {} s off AWS time, so the token is dated outside the 5 min AWS allows: sync the clock (`sudo timedatectl set-ntp true`)",
            -skew
        )),
        Some(_) => ruled_out.push("clock skew (step 2)".to_owned()),
        None => {}
    }
    if !found.credentials_fresh {
        causes.push("the credentials are expired or about to expire (step 1): refresh them and run this again".to_owned());
    }

    match host_region(&endpoint.host) {
        Some(host_region) if host_region != region.as_str() => causes.push(format!(
            "region mismatch: the token was signed for {region}, the endpoint is in {host_region}: pass --region {host_region}"
        )),
        Some(_) => ruled_out.push(format!("region mismatch (the endpoint is in {region})")),
        None => {
            if endpoint.host.parse::<std::net::IpAddr>().is_ok()
                || endpoint.host.eq_ignore_ascii_case("localhost")
            {
                causes.push(format!(
                    "the token names `{}`, but RDS checks it against its own endpoint name: name the real endpoint (--host NAME, --proxy, --cluster, --instance) and reach it with --via {}:{}",
                    endpoint.host, endpoint.host, endpoint.port
                ));
            }
        }
    }
    // A direct endpoint answers PAM only for members of rds_iam (pg_hba
    // sends everyone else to password checking), so there it is ruled out.
    match endpoint.kind {
        // MySQL: a user with another plugin gets an auth switch, which step 7
        // reports itself; a refusal here means no such IAM user, or a bad token.
        _ if endpoint.family == crate::engine::Engine::Mysql => causes.push(format!(
            "no user `{user}` identified with AWSAuthenticationPlugin: as an admin run `CREATE USER {} IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS';`",
            crate::mysql::quote_account(user)
        )),
        EndpointKind::Instance | EndpointKind::ClusterWriter | EndpointKind::ClusterReader => {
            ruled_out.push(
                "the role lacking rds_iam (a direct endpoint answers PAM only for rds_iam members)"
                    .to_owned(),
            );
        }
        EndpointKind::Proxy | EndpointKind::Host => causes.push(format!(
            "the role lacks rds_iam: as an admin run `{}`",
            grant(user)
        )),
    }
    let caller = found
        .caller_arn
        .as_deref()
        .map_or_else(|| "the caller".to_owned(), |arn| format!("`{arn}`"));
    causes.push(match &found.resource_arn {
        Some(arn) => format!(
            "the IAM policy of {caller} does not allow rds-db:connect on {arn} (a `db-…`/`cluster-…`/`prx-…` mix-up is the usual slip): `rdsiam policy` prints the right one"
        ),
        None => format!(
            "the IAM policy of {caller} does not allow rds-db:connect on arn:aws:rds-db:{region}:ACCOUNT:dbuser:RESOURCE-ID/{user} (prx-… for a proxy, cluster-… for a cluster, db-… for an instance; `rdsiam list -o json` shows resource ids)"
        ),
    });
    if found.proxy.as_ref().is_some_and(|p| p.iam_to_database()) {
        let role = found
            .proxy_role_arn
            .clone()
            .unwrap_or_else(|| "(unknown)".into());
        let resource = found.proxy_role_resource_arn.clone().unwrap_or_else(|| {
            format!("its database's arn:aws:rds-db:{region}:ACCOUNT:dbuser:RESOURCE-ID/{user}")
        });
        causes.push(format!(
            "the proxy reaches its database with IAM: its role {role} must allow rds-db:connect on {resource}, and the role must have rds_iam in that database"
        ));
    }
    if found.signature_ok {
        ruled_out.push("a wrong secret key (step 2: STS accepted the signature)".to_owned());
    } else {
        causes.push("a wrong or revoked secret key: the token's signature is checked with it (step 2 could not confirm it)".to_owned());
    }
    if found.clock_skew.is_none() {
        causes.push(
            "clock skew: this machine's clock must be within 5 minutes of AWS time (step 2 could not measure it; check `timedatectl`)".to_owned(),
        );
    }
    if endpoint.iam.is_none() {
        causes.push("IAM auth off on the target (`rdsiam list` shows it)".to_owned());
    }
    (causes, ruled_out)
}

/// Step 8.
/// `limit` bounds each query: a server that took the login may still never
/// answer (a lock, a stuck backend), and doctor must finish.
pub async fn inside(resolved: &Resolved, logged_in: LoggedIn, limit: Duration) -> Step {
    let step = Step::new(8, "inside");
    let client = &logged_in.session.client;
    let rows = match tokio::time::timeout(limit, client.simple_query(INSIDE)).await {
        Ok(Ok(messages)) => text_rows(messages),
        Ok(Err(err)) => {
            return step
                .fail(Kind::Other, format!("the inside checks failed after login: {err}"))
                .then("the login worked; check the role's privileges (it must be able to read pg_roles)");
        }
        Err(_) => {
            return step
                .fail(
                    Kind::Network,
                    format!("the inside checks got no answer within {}s after login", limit.as_secs()),
                )
                .then("the login worked; check the server's load and locks, or raise --connect-timeout on a slow link");
        }
    };
    let Some(row) = rows.first() else {
        return step.fail(Kind::Other, "the inside checks returned no row");
    };
    let text = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
    let current_user = text(0);
    let database = text(2);
    let version = text(3);
    let in_recovery = text(4) == "t";
    let rds_iam = row.get(5).cloned().flatten().map(|v| v == "t");
    let mut step = step
        .detail("current_user", &current_user)
        .detail("session_user", text(1))
        .detail("database", &database)
        .detail("server_version", &version)
        .detail("role", if in_recovery { "reader" } else { "writer" })
        .detail("rds_iam_member", rds_iam);
    let role = if in_recovery {
        "reader (in recovery)"
    } else {
        "writer"
    };
    let iam = match rds_iam {
        Some(true) => "member of rds_iam",
        Some(false) => "NOT a member of rds_iam",
        None => "no rds_iam role here (not RDS)",
    };
    let mut summary = format!("current_user {current_user}, {iam}, PostgreSQL {version}, {role}");

    if let Some(missing) = &logged_in.missing_db {
        step = step.detail("database_exists", false);
        let names: Vec<String> =
            match tokio::time::timeout(limit, client.simple_query(DATABASES)).await {
                Ok(Ok(messages)) => text_rows(messages)
                    .into_iter()
                    .filter_map(|r| r.first().cloned().flatten())
                    .collect(),
                _ => Vec::new(),
            };
        let close = suggestions(missing, names.iter().map(String::as_str));
        let next = if close.is_empty() {
            format!(
                "pass --dbname/-d with one that exists ({}), or create it: CREATE DATABASE \"{missing}\";",
                names.join(", ")
            )
        } else {
            format!(
                "did you mean {}? pass it with --dbname/-d (databases here: {})",
                close
                    .iter()
                    .map(|n| format!("`-d {n}`"))
                    .collect::<Vec<_>>()
                    .join(" or "),
                names.join(", ")
            )
        };
        return step
            .detail("databases", &names)
            .fail(
                Kind::Login,
                format!("database `{missing}` does not exist ({summary})"),
            )
            .then(next);
    }
    step = step.detail("database_exists", true);
    summary = format!("{summary}, database {database}");
    let user = &resolved.target.user;
    if current_user != *user {
        return step.warn(
            format!("{summary}: logged in as `{current_user}`, not `{user}`"),
            "check --user, or the role mapping behind the proxy",
        );
    }
    if rds_iam == Some(false) && resolved.endpoint.kind != EndpointKind::Proxy {
        return step.warn(
            format!("{summary}: direct IAM logins need rds_iam"),
            format!("as an admin run `{}`", grant(user)),
        );
    }
    match (resolved.endpoint.kind, in_recovery) {
        (EndpointKind::ClusterWriter, true) => step.warn(
            format!("{summary}: the writer endpoint reached a replica (a failover in progress?)"),
            "wait a minute and run this again; writes fail until the writer endpoint moves",
        ),
        _ => step.ok(summary),
    }
}

/// The rows of a simple query, each column as text or NULL.
fn text_rows(messages: Vec<SimpleQueryMessage>) -> Vec<Vec<Option<String>>> {
    messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_owned))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}
