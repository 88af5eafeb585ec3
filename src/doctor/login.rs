//! Steps 7 and 8: a login with a fresh token, and on refusal the causes
//! still possible once steps 1–6 have ruled some out; then, inside, who we
//! are, whether the role is in `rds_iam`, whether the database exists, the
//! server's version, and writer or reader.

use std::time::Duration;

use tokio_postgres::SimpleQueryMessage;

use super::{Findings, Step};
use crate::connect::{Connector, Session};
use crate::endpoint::EndpointKind;
use crate::error::{Failure, Kind, suggestions};
use crate::explain::Evidence;
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
    if failure.kind == Kind::Login && failure.has_code("3D000") {
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
    // Both are 28P01; only the server's words tell "checked as an ordinary
    // password" (IAM off, or not in rds_iam) from "IAM said no" (PAM).
    let checked_as_password = message.contains("password authentication failed");
    let (causes, ruled_out) = causes(resolved, found, Some(checked_as_password));
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

/// The causes of a refused login (the one list, `explain.rs`), weighed
/// against what steps 1–6 found.
pub(super) fn causes(
    resolved: &Resolved,
    found: &Findings,
    checked_as_password: Option<bool>,
) -> (Vec<String>, Vec<String>) {
    let proxy_role = found
        .proxy
        .as_ref()
        .is_some_and(|p| p.iam_to_database())
        .then(|| {
            let region = &resolved.aws.region;
            let user = &resolved.target.user;
            (
                found
                    .proxy_role_arn
                    .clone()
                    .unwrap_or_else(|| "(unknown)".into()),
                found.proxy_role_resource_arn.clone().unwrap_or_else(|| {
                    format!(
                        "its database's arn:aws:rds-db:{region}:ACCOUNT:dbuser:RESOURCE-ID/{user}"
                    )
                }),
            )
        });
    let evidence = Evidence {
        steps: true,
        checked_as_password,
        clock_skew: found.clock_skew,
        credentials_fresh: Some(found.credentials_fresh),
        signature_ok: Some(found.signature_ok),
        caller_arn: found.caller_arn.clone(),
        resource_arn: found.resource_arn.clone(),
        proxy_role,
    };
    let c = crate::explain::causes(
        &resolved.endpoint,
        &resolved.aws.region,
        &resolved.target.user,
        &evidence,
    );
    (c.likely, c.ruled_out)
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
            format!(
                "as an admin run `GRANT rds_iam TO {};`",
                crate::output::quote_ident(user)
            ),
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
