//! The libpq environment for an endpoint: what `rdsiam psql` hands psql and
//! what `rdsiam token -o env` prints for `eval`. One builder, so the two
//! never disagree.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::Result;

use crate::error::Failure;
use crate::session::Resolved;
use crate::target::{Conn, Via};

/// Variables that would fight the ones we set if inherited (a stray
/// PGHOSTADDR bypasses the endpoint; PGREQUIREAUTH or a client certificate
/// can refuse the password login). The TLS ones are rdsiam's to set: under
/// `rdsiam run` the hop is a private socket without TLS, and `rdsiam psql`
/// sets its own.
pub const MANAGED: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGAPPNAME",
    "PGCONNECT_TIMEOUT",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGGSSENCMODE",
    "PGSSLNEGOTIATION",
    "PGSSLCERT",
    "PGSSLKEY",
    "PGREQUIREAUTH",
    "PGTARGETSESSIONATTRS",
    // These fail every token login (or every login through the proxy's
    // plain local hop): channel binding needs SCRAM, a required client
    // certificate or peer name, protocol limits, SSL required (issue 24).
    "PGCHANNELBINDING",
    "PGSSLCERTMODE",
    "PGREQUIREPEER",
    "PGREQUIRESSL",
    "PGMINPROTOCOLVERSION",
    "PGMAXPROTOCOLVERSION",
    "PGLOADBALANCEHOSTS",
    "PGSSLMINPROTOCOLVERSION",
    "PGSSLMAXPROTOCOLVERSION",
    "PGSSLCRL",
    "PGSSLCRLDIR",
    "PGSSLSNI",
    "PGPASSFILE",
];

/// `PG…` variables for `resolved` with the merged connection settings,
/// without the password.
pub fn libpq_env(resolved: &Resolved, conn: &Conn) -> Result<Vec<(&'static str, String)>> {
    let endpoint = &resolved.endpoint;
    let via = &conn.via;
    let mut env = vec![("PGHOST", endpoint.host.clone())];
    match via {
        // libpq connects to hostaddr but verifies the certificate against PGHOST.
        Some(via) => {
            env.push(("PGHOSTADDR", numeric_addr(via)?));
            env.push(("PGPORT", via.port.to_string()));
        }
        None => env.push(("PGPORT", endpoint.port.to_string())),
    }
    env.push(("PGUSER", resolved.target.user.clone()));
    if let Some(db) = &resolved.target.dbname {
        env.push(("PGDATABASE", db.clone()));
    }
    env.push(("PGSSLMODE", conn.sslmode.as_str().to_owned()));
    env.push((
        "PGSSLROOTCERT",
        conn.roots.file()?.to_string_lossy().into_owned(),
    ));
    env.push(("PGAPPNAME", "rdsiam".to_owned()));
    env.push(("PGCONNECT_TIMEOUT", conn.timeout.as_secs().to_string()));
    Ok(env)
}

/// libpq's hostaddr must be numeric, and takes one address: resolve the
/// tunnel's name and pick the address that answers (`localhost` may be
/// ::1 first while an SSM forward listens on 127.0.0.1 only).
fn numeric_addr(via: &Via) -> Result<String> {
    let addrs: Vec<_> = (via.host.as_str(), via.port)
        .to_socket_addrs()
        .map_err(|err| {
            Failure::network(format!("cannot resolve --via host `{}`: {err}", via.host))
                .hint("pass the tunnel's address, e.g. --via 127.0.0.1:15432")
        })?
        .collect();
    let answering = addrs.iter().find(|addr| {
        addrs.len() == 1 || TcpStream::connect_timeout(addr, Duration::from_millis(500)).is_ok()
    });
    match answering.or(addrs.first()) {
        Some(addr) => Ok(addr.ip().to_string()),
        None => Err(
            Failure::network(format!("--via host `{}` has no address", via.host))
                .hint("pass the tunnel's address, e.g. --via 127.0.0.1:15432")
                .into(),
        ),
    }
}
