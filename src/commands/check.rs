//! `rdsiam check`: prove "this role can log in to this database as this
//! user, over verified TLS, right now", and say who we are on both sides.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cli::{CheckArgs, CheckOutput};
use crate::connect::Connector;
use crate::engine::Engine;
use crate::error::{Failure, Kind};
use crate::output::{print, print_json};
use crate::target::Target;

use super::{Resolved, runtime};

/// One round trip, simple protocol (no prepared statement for RDS Proxy to
/// pin the session on).
const WHOAMI: &str = "SELECT current_user, session_user, current_database(), \
host(inet_server_addr()), inet_server_port(), current_setting('server_version'), version(), \
pg_is_in_recovery(), s.ssl, s.version, s.cipher, s.bits \
FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()";

#[derive(Debug, Serialize)]
struct Report {
    engine: Engine,
    /// The user name (for MySQL, CURRENT_USER() without its `@host`).
    current_user: String,
    /// MySQL: the account matched, CURRENT_USER() as is (`iamuserapp@%`).
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<String>,
    session_user: String,
    database: String,
    server_addr: Option<String>,
    server_port: Option<u16>,
    server_version: String,
    version: String,
    /// PostgreSQL: pg_is_in_recovery(); MySQL: read-only (@@innodb_read_only or @@read_only).
    in_recovery: bool,
    tls: Tls,
    endpoint: EndpointReport,
    aws_identity: Option<Identity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aws_identity_error: Option<String>,
    elapsed_ms: u64,
}

#[derive(Debug, Serialize)]
struct Tls {
    in_use: bool,
    version: Option<String>,
    cipher: Option<String>,
    bits: Option<u32>,
    sslmode: String,
}

#[derive(Debug, Serialize)]
struct EndpointReport {
    kind: String,
    name: String,
    host: String,
    port: u16,
    via: Option<String>,
    region: String,
}

#[derive(Debug, Serialize)]
struct Identity {
    arn: String,
    account: String,
    user_id: String,
}

pub fn run(args: CheckArgs) -> Result<u8> {
    let started = Instant::now();
    let (target, conn) = Target::with_conn(&args.target, &args.conn)?;
    let connector = Connector::from_args(&conn)?;
    let mut report = runtime()?.block_on(async {
        let resolved = match Resolved::local(&target).filter(|_| args.no_aws_identity) {
            Some(resolved) => resolved,
            None => Resolved::load(&target).await?,
        };
        let identity = async {
            if args.no_aws_identity {
                return None;
            }
            Some(caller_identity(&resolved).await)
        };
        // Both at once, but a failed login must not wait for STS.
        tokio::pin!(identity);
        let dbname = target.dbname.as_deref();
        let who = async {
            match resolved.endpoint.family {
                Engine::Postgres => pg_whoami(&connector, &resolved, dbname).await,
                Engine::Mysql => mysql_whoami(&connector, &resolved, dbname).await,
            }
        };
        tokio::pin!(who);
        let mut early = None;
        let who = loop {
            tokio::select! {
                who = &mut who => break who?,
                done = &mut identity, if early.is_none() => early = Some(done),
            }
        };
        let identity = match early {
            Some(done) => done,
            None => identity.await,
        };
        let (aws_identity, aws_identity_error) = match identity {
            None => (None, None),
            Some(Ok(identity)) => (Some(identity), None),
            Some(Err(err)) => (
                None,
                Some(crate::output::escape_controls(&err).into_owned()),
            ),
        };
        let endpoint = &resolved.endpoint;
        anyhow::Ok(Report {
            engine: endpoint.family,
            current_user: who.current_user,
            account: who.account,
            session_user: who.session_user,
            database: who.database,
            server_addr: who.server_addr,
            server_port: who.server_port,
            server_version: who.server_version,
            version: who.version,
            in_recovery: who.in_recovery,
            tls: Tls {
                in_use: who.tls_in_use,
                version: who.tls_version,
                cipher: who.tls_cipher,
                bits: who.tls_bits,
                sslmode: connector.sslmode.as_str().to_owned(),
            },
            endpoint: EndpointReport {
                kind: endpoint.kind.to_string(),
                name: endpoint.name.clone(),
                host: endpoint.host.clone(),
                port: endpoint.port,
                via: connector.via.as_ref().map(ToString::to_string),
                region: resolved.aws.region.clone(),
            },
            aws_identity,
            aws_identity_error,
            elapsed_ms: 0,
        })
    })?;
    report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match args.output {
        CheckOutput::Json => print_json(&report)?,
        CheckOutput::Text => print(&render(&report))?,
    }
    if let Some(expected) = &args.expect_user
        && report.current_user != *expected
    {
        return Err(Failure::new(
            Kind::Expectation,
            format!(
                "logged in as `{}`, expected `{expected}`",
                report.current_user
            ),
        )
        .hint("check --user, or the role mapping behind the proxy")
        .into());
    }
    // Issue 19: a runbook asserts where it landed during maintenance or a failover.
    if let Some(wanted) = expected_role(&args)
        && report.in_recovery != (wanted == "reader")
    {
        let landed = if report.in_recovery {
            "reader (a read-only hot standby)"
        } else {
            "writer"
        };
        return Err(Failure::new(
            Kind::Expectation,
            format!("the session is on a {landed}, expected the {wanted}"),
        )
        .hint("during a failover the cluster endpoint can lead to the old writer for a few seconds (DNS); try again, or check the endpoint (`rdsiam list`)")
        .into());
    }
    Ok(0)
}

/// What the session says about itself, whatever the engine.
struct Who {
    current_user: String,
    account: Option<String>,
    session_user: String,
    database: String,
    server_addr: Option<String>,
    server_port: Option<u16>,
    server_version: String,
    version: String,
    in_recovery: bool,
    tls_in_use: bool,
    tls_version: Option<String>,
    tls_cipher: Option<String>,
    tls_bits: Option<u32>,
}

fn silent_after_login(connector: &Connector) -> Failure {
    Failure::network(format!(
        "the server went silent after login: no answer to the whoami query within {}s",
        connector.timeout.as_secs()
    ))
    .hint("the login worked; the server or a proxy stopped answering. Check the endpoint's status (`rdsiam list`) and try again, or raise --connect-timeout")
}

async fn pg_whoami(
    connector: &Connector,
    resolved: &Resolved,
    dbname: Option<&str>,
) -> Result<Who> {
    let session = connector.connect(resolved, dbname).await?;
    // The connect timeout bounds the query too: a server that goes
    // silent after login must not hold a runbook forever.
    let messages = tokio::time::timeout(connector.timeout, session.client.simple_query(WHOAMI))
        .await
        .map_err(|_| silent_after_login(connector))?
        .map_err(|err| {
            Failure::network(format!("the whoami query failed after login: {err}"))
                .hint("the login worked; the connection dropped or the server refused the query (check the role's privileges on pg_stat_ssl)")
        })?;
    let row = messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .context("the whoami query returned no row")?;
    let text = |i: usize| row.get(i).map(str::to_owned);
    let flag = |i: usize| row.get(i) == Some("t");
    Ok(Who {
        current_user: text(0).unwrap_or_default(),
        account: None,
        session_user: text(1).unwrap_or_default(),
        database: text(2).unwrap_or_default(),
        server_addr: text(3),
        server_port: text(4).and_then(|p| p.parse().ok()),
        server_version: text(5).unwrap_or_default(),
        version: text(6).unwrap_or_default(),
        in_recovery: flag(7),
        tls_in_use: flag(8),
        tls_version: text(9),
        tls_cipher: text(10),
        tls_bits: text(11).and_then(|b| b.parse().ok()),
    })
}

/// One round trip; the same on MySQL, Aurora MySQL, MariaDB and RDS Proxy.
const MYSQL_WHOAMI: &str = "SELECT CURRENT_USER(), USER(), DATABASE(), VERSION(), @@port, \
@@version_comment, @@read_only, @@innodb_read_only";

async fn mysql_whoami(
    connector: &Connector,
    resolved: &Resolved,
    dbname: Option<&str>,
) -> Result<Who> {
    let mut session = crate::mysql::wire::connect(connector, resolved, dbname).await?;
    let rows = tokio::time::timeout(connector.timeout, session.query(MYSQL_WHOAMI))
        .await
        .map_err(|_| silent_after_login(connector))?
        .map_err(|err| {
            Failure::network(format!(
                "the whoami query failed after login: {}",
                crate::mysql::wire::describe(&err)
            ))
            .hint("the login worked; the connection dropped or the server refused the query")
        })?;
    let row = rows
        .rows
        .first()
        .context("the whoami query returned no row")?;
    let text = |i: usize| row.get(i).cloned().flatten();
    let on = |i: usize| text(i).is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("off"));
    let account = text(0).unwrap_or_default();
    let who = Who {
        // `user@host`: the user is everything before the last `@`.
        current_user: account
            .rsplit_once('@')
            .map_or(account.as_str(), |(user, _)| user)
            .to_owned(),
        account: Some(account.clone()),
        session_user: text(1).unwrap_or_default(),
        database: text(2).unwrap_or_default(),
        server_addr: None,
        server_port: text(4).and_then(|p| p.parse().ok()),
        server_version: text(3).unwrap_or_default(),
        version: text(5).unwrap_or_default(),
        in_recovery: on(6) || on(7),
        tls_in_use: true,
        tls_version: Some(session.tls_version.clone()),
        tls_cipher: Some(session.tls_cipher.clone()),
        tls_bits: None,
    };
    session.quit().await;
    Ok(who)
}

fn expected_role(args: &CheckArgs) -> Option<&'static str> {
    match (args.expect_writer, args.expect_reader) {
        (true, _) => Some("writer"),
        (_, true) => Some("reader"),
        _ => None,
    }
}

/// STS GetCallerIdentity, best effort: a bastion without an STS route must
/// still be able to prove the database login.
async fn caller_identity(resolved: &Resolved) -> Result<Identity, String> {
    let call = resolved
        .aws
        .sts()
        .map_err(|e| e.to_string())?
        .get_caller_identity()
        .send();
    match tokio::time::timeout(Duration::from_secs(5), call).await {
        Err(_) => Err("STS did not answer within 5s".to_owned()),
        Ok(Err(err)) => Err(match &err {
            aws_sdk_sts::error::SdkError::ServiceError(service) => {
                use aws_sdk_sts::error::ProvideErrorMetadata;
                match service.err().code() {
                    Some(code) => format!(
                        "{code}: {}",
                        service.err().message().unwrap_or("no message")
                    ),
                    None => crate::endpoint::http_summary(service.raw()),
                }
            }
            _ => crate::aws::error_chain(&err),
        }),
        Ok(Ok(out)) => Ok(Identity {
            arn: out.arn().unwrap_or_default().to_owned(),
            account: out.account().unwrap_or_default().to_owned(),
            user_id: out.user_id().unwrap_or_default().to_owned(),
        }),
    }
}

/// MariaDB says so in its version; MySQL does not.
fn mysql_product(version: &str, comment: &str) -> &'static str {
    if version.contains("MariaDB") || comment.contains("MariaDB") {
        "MariaDB"
    } else {
        "MySQL"
    }
}

fn render(r: &Report) -> String {
    let server = match (&r.server_addr, r.server_port) {
        (Some(addr), Some(port)) => format!("{addr}:{port}, PostgreSQL {}", r.server_version),
        (None, Some(port)) if r.engine == Engine::Mysql => {
            format!(
                "port {port}, {} {}",
                mysql_product(&r.server_version, &r.version),
                r.server_version
            )
        }
        _ => format!("PostgreSQL {}", r.server_version),
    };
    let tls = if r.tls.in_use {
        format!(
            "{} {}{} (sslmode {})",
            r.tls.version.as_deref().unwrap_or("?"),
            r.tls.cipher.as_deref().unwrap_or("?"),
            r.tls
                .bits
                .map(|b| format!(", {b} bits"))
                .unwrap_or_default(),
            r.tls.sslmode
        )
    } else {
        format!(
            "client side verified (sslmode {}); server reports no TLS on its side",
            r.tls.sslmode
        )
    };
    let endpoint = format!(
        "{} {} at {}:{}{}",
        r.endpoint.kind,
        r.endpoint.name,
        r.endpoint.host,
        r.endpoint.port,
        r.endpoint
            .via
            .as_ref()
            .map(|v| format!(" via {v}"))
            .unwrap_or_default()
    );
    let identity = match (&r.aws_identity, &r.aws_identity_error) {
        (Some(id), _) => id.arn.clone(),
        (None, Some(err)) => format!("unknown ({err})"),
        (None, None) => "not asked (--no-aws-identity)".to_owned(),
    };
    let user = match &r.account {
        Some(account) => format!("{} (account {account})", r.current_user),
        None => r.current_user.clone(),
    };
    let rows = [
        ("user", user),
        ("session user", r.session_user.clone()),
        ("database", r.database.clone()),
        ("server", server),
        (
            "role",
            match (r.engine, r.in_recovery) {
                (Engine::Postgres, true) => "replica (in recovery)".to_owned(),
                (Engine::Postgres, false) => "primary (writable)".to_owned(),
                (Engine::Mysql, true) => "read-only (reader)".to_owned(),
                (Engine::Mysql, false) => "writer (read-write)".to_owned(),
            },
        ),
        ("tls", tls),
        ("endpoint", endpoint),
        ("region", r.endpoint.region.clone()),
        ("aws identity", identity),
        ("time", format!("{} ms", r.elapsed_ms)),
    ];
    let database = if r.database.is_empty() {
        "no database".to_owned()
    } else {
        r.database.clone()
    };
    let mut out = format!("ok: logged in as {} to {database}\n", r.current_user);
    for (label, value) in rows {
        out.push_str(&format!("  {label:<13} {value}\n"));
    }
    out
}
