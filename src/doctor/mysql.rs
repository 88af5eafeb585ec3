//! Steps 7 and 8 for MySQL and MariaDB targets: a login with a fresh token
//! over the thin client, the same known causes on refusal as PostgreSQL's
//! (step 7's list, with what steps 1–6 ruled out), then inside: who we are,
//! how the user is identified (`AWSAuthenticationPlugin` on RDS), the
//! server's version, and writer or reader.

use std::time::Duration;

use super::{Findings, Step};
use crate::connect::Connector;
use crate::endpoint::EndpointKind;
use crate::error::{Failure, Kind};
use crate::mysql::wire::{self, Session};
use crate::session::Resolved;

const INSIDE: &str = "SELECT CURRENT_USER(), USER(), DATABASE(), VERSION(), \
@@read_only, @@innodb_read_only";

/// Step 7.
pub async fn login(
    resolved: &Resolved,
    connector: &Connector,
    found: &Findings,
) -> (Step, Option<Session>) {
    let step = Step::new(7, "login");
    let user = &resolved.target.user;
    let dbname = resolved.target.dbname.as_deref();
    let err = match wire::connect(connector, resolved, dbname).await {
        Ok(session) => {
            let db = dbname.map_or_else(|| "no database".to_owned(), |d| format!("database {d}"));
            return (
                step.ok(format!("logged in as {user} ({db}) with a fresh token")),
                Some(session),
            );
        }
        Err(err) => err,
    };
    let Some(failure) = err.downcast_ref::<Failure>() else {
        return (step.fail_with(&err), None);
    };
    let step = step.detail("server_message", &failure.message);
    // Refusals of the token itself (ERROR 1045): the causes still possible.
    if !failure.is_refused_login() {
        return (step.fail_with(&err), None);
    }
    let (causes, ruled_out) = super::login::causes(resolved, found, None);
    let mut step = step
        .detail("causes", &causes)
        .detail("ruled_out", &ruled_out)
        .fail(Kind::Login, failure.message.clone());
    for (n, cause) in causes.iter().enumerate() {
        step = step.then(format!("{}. {cause}", n + 1));
    }
    if !ruled_out.is_empty() {
        step = step.then(format!("ruled out by steps 1–6: {}", ruled_out.join("; ")));
    }
    (step, None)
}

/// How an account authenticates, from `SHOW CREATE USER`: the plugin name.
fn plugin_of(create_user: &str) -> Option<String> {
    let lower = create_user.to_ascii_lowercase();
    let at = lower
        .find("identified with ")
        .map(|i| i + "identified with ".len())
        .or_else(|| {
            lower
                .find("identified via ")
                .map(|i| i + "identified via ".len())
        })?;
    let name: String = create_user[at..]
        .trim_start_matches(['\'', '`', '"'])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Step 8. `limit` bounds each query.
pub async fn inside(resolved: &Resolved, mut session: Session, limit: Duration) -> Step {
    let step = Step::new(8, "inside");
    let rows = match tokio::time::timeout(limit, session.query(INSIDE)).await {
        Ok(Ok(rows)) => rows,
        Ok(Err(err)) => {
            return step
                .fail(
                    Kind::Other,
                    format!(
                        "the inside checks failed after login: {}",
                        wire::describe(&err)
                    ),
                )
                .then("the login worked; check the user's privileges");
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
    let Some(row) = rows.rows.first() else {
        return step.fail(Kind::Other, "the inside checks returned no row");
    };
    let text = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
    let on = |i: usize| {
        let v = text(i);
        !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("off")
    };
    let account = text(0);
    let current_user = account
        .rsplit_once('@')
        .map_or(account.as_str(), |(u, _)| u)
        .to_owned();
    let database = text(2);
    let version = text(3);
    let read_only = on(4) || on(5);
    // Own account: allowed without privileges on the mysql schema.
    let identified =
        match tokio::time::timeout(limit, session.query("SHOW CREATE USER CURRENT_USER()")).await {
            Ok(Ok(r)) => r
                .rows
                .first()
                .and_then(|row| row.first().cloned().flatten())
                .and_then(|text| plugin_of(&text)),
            _ => None,
        };
    session.quit().await;
    let mut step = step
        .detail("current_user", &current_user)
        .detail("account", &account)
        .detail("session_user", text(1))
        .detail("database", &database)
        .detail("server_version", &version)
        .detail("role", if read_only { "reader" } else { "writer" })
        .detail("identified_with", &identified);
    let how = match identified.as_deref() {
        Some(p) if p.eq_ignore_ascii_case("AWSAuthenticationPlugin") => {
            "identified with AWSAuthenticationPlugin".to_owned()
        }
        // The test server's stand-in: MariaDB's PAM plugin handing the
        // token to a SigV4 verifier.
        Some(p) if p.eq_ignore_ascii_case("pam") => {
            "identified via pam (cleartext, as AWSAuthenticationPlugin)".to_owned()
        }
        Some(p) => format!("identified with {p}"),
        None => "plugin not readable".to_owned(),
    };
    let db = if database.is_empty() {
        "no database".to_owned()
    } else {
        format!("database {database}")
    };
    let role = if read_only {
        "reader (read-only)"
    } else {
        "writer"
    };
    let summary = format!("current_user {account}, {how}, {version}, {role}, {db}");
    let user = &resolved.target.user;
    if current_user != *user {
        return step.warn(
            format!("{summary}: logged in as `{current_user}`, not `{user}`"),
            "check --user, or the user mapping behind the proxy",
        );
    }
    if let Some(p) = identified.as_deref()
        && !p.eq_ignore_ascii_case("AWSAuthenticationPlugin")
        && !p.eq_ignore_ascii_case("pam")
    {
        step = step.warn(
            summary.clone(),
            format!(
                "the account is identified with {p}: for IAM logins run `ALTER USER {} IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS';`",
                crate::mysql::quote_account(user)
            ),
        );
        return step;
    }
    match (resolved.endpoint.kind, read_only) {
        (EndpointKind::ClusterWriter, true) => step.warn(
            format!("{summary}: the writer endpoint reached a read-only server (a failover in progress?)"),
            "wait a minute and run this again; writes fail until the writer endpoint moves",
        ),
        _ => step.ok(summary),
    }
}

#[cfg(test)]
mod tests {
    use super::plugin_of;

    #[test]
    fn plugins_from_show_create_user() {
        for (text, want) in [
            (
                "CREATE USER `jane`@`%` IDENTIFIED WITH 'AWSAuthenticationPlugin' AS 'RDS' REQUIRE NONE",
                Some("AWSAuthenticationPlugin"),
            ),
            (
                "CREATE USER `iamuserapp`@`%` IDENTIFIED VIA pam USING 'rdsiam-test-x'",
                Some("pam"),
            ),
            ("CREATE USER `n`@`%` IDENTIFIED BY PASSWORD '*D52'", None),
        ] {
            assert_eq!(plugin_of(text).as_deref(), want, "{text}");
        }
    }
}
