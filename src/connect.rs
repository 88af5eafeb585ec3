//! A PostgreSQL session the way RDS accepts it: tokio-postgres over TLS
//! (rustls, see `tls.rs`), a fresh token as the cleartext password for every new
//! connection, optionally through a tunnel (`--via`) while the token and the
//! certificate check still name the real endpoint. Each failure becomes a
//! message with its exit code: network/TLS (4) or login refused (5).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use anyhow::Result;
use tokio::net::TcpStream;
use tokio_postgres::Client;
use tokio_postgres::tls::MakeTlsConnect;

use crate::ca::Roots;
use crate::endpoint::EndpointKind;
use crate::engine::Engine;
use crate::error::{Failure, Kind};
use crate::output::quote_ident;
use crate::session::Resolved;
use crate::target::Conn;
use crate::tls::SslMode;

pub use crate::target::{DEFAULT_CONNECT_TIMEOUT, Via};

/// What to do when the database does not answer in time (shared with the proxy).
pub const TIMEOUT_HINT: &str = "from outside the VPC, tunnel in (SSM port forward, SSH -L) and pass --via 127.0.0.1:PORT; check security groups; raise --connect-timeout if the network is slow";

/// How to open connections; built once, used for each (re)connect.
#[derive(Clone)]
pub struct Connector {
    pub via: Option<Via>,
    pub sslmode: SslMode,
    pub roots: Roots,
    pub timeout: Duration,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
}

impl Connector {
    /// The connector for the typed settings target resolution produced.
    pub fn from_args(conn: &Conn) -> Result<Connector> {
        Connector::new(
            conn.via.clone(),
            conn.sslmode,
            conn.roots.clone(),
            conn.timeout,
        )
    }

    pub fn new(
        via: Option<Via>,
        sslmode: SslMode,
        roots: Roots,
        timeout: Duration,
    ) -> Result<Connector> {
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(crate::tls::client_config(
            sslmode, &roots,
        )?);
        Ok(Connector {
            via,
            sslmode,
            roots,
            timeout,
            tls,
        })
    }

    /// The TLS side of one connection, verified against `host`.
    fn tls_for(
        &self,
        host: &str,
    ) -> <tokio_postgres_rustls::MakeRustlsConnect as MakeTlsConnect<TcpStream>>::TlsConnect {
        let mut make = self.tls.clone();
        match MakeTlsConnect::<TcpStream>::make_tls_connect(&mut make, host) {
            Ok(connect) => connect,
            Err(never) => match never {},
        }
    }

    /// Open a TCP connection to the endpoint or the tunnel, within `timeout`.
    pub(crate) async fn tcp(&self, host: &str, port: u16) -> Result<TcpStream> {
        let (dial_host, dial_port) = match &self.via {
            Some(via) => (via.host.as_str(), via.port),
            None => (host, port),
        };
        let addrs: Vec<_> = tokio::net::lookup_host((dial_host, dial_port))
            .await
            .map_err(|err| {
                Failure::network(format!("cannot resolve `{dial_host}`: {err}")).hint(if self.via.is_some() {
                    "check the --via address"
                } else {
                    "check the host name; private endpoints resolve only inside the VPC: tunnel in and pass --via 127.0.0.1:PORT"
                })
            })?
            .collect();
        let mut last = None;
        for addr in &addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
                Err(err) => last = Some((addr, err)),
            }
        }
        let Some((addr, err)) = last else {
            return Err(Failure::network(format!("`{dial_host}` resolved to no address")).into());
        };
        let hint = if self.via.is_some() {
            "is the tunnel (SSM port forward, SSH -L) running and listening there?"
        } else {
            "check the port and the security group; from outside the VPC, tunnel in and pass --via 127.0.0.1:PORT"
        };
        Err(Failure::network(format!("cannot connect to {addr}: {err}"))
            .hint(hint)
            .into())
    }

    /// Connect and log in to `dbname` with a token minted now.
    pub async fn connect(&self, resolved: &Resolved, dbname: Option<&str>) -> Result<Session> {
        let stage = Rc::new(Cell::new("connecting"));
        let attempt = self.attempt(resolved, dbname, stage.clone());
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => {
                let endpoint = &resolved.endpoint;
                Err(Failure::network(format!(
                    "timed out after {}s {} {}:{}{}",
                    self.timeout.as_secs(),
                    stage.get(),
                    endpoint.host,
                    endpoint.port,
                    self.via_note()
                ))
                .hint(TIMEOUT_HINT)
                .into())
            }
        }
    }

    /// Ask the server to cancel the query running on a session: a
    /// CancelRequest over a new TLS connection along the same route (the
    /// endpoint, or `--via`), as libpq does. No token is needed: the cancel
    /// key identifies the backend. RDS Proxy forwards it like PostgreSQL.
    pub async fn cancel(
        &self,
        resolved: &Resolved,
        token: &tokio_postgres::CancelToken,
    ) -> Result<()> {
        let endpoint = &resolved.endpoint;
        let attempt = async {
            let tcp = self.tcp(&endpoint.host, endpoint.port).await?;
            let tls = self.tls_for(&endpoint.host);
            token.cancel_query_raw(tcp, tls).await.map_err(|err| {
                anyhow::Error::from(Failure::network(format!(
                    "sending the cancel request failed: {}",
                    crate::aws::error_chain(&err)
                )))
            })
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(Failure::network(format!(
                "the cancel request timed out after {}s",
                self.timeout.as_secs()
            ))
            .into()),
        }
    }

    pub(crate) fn via_note(&self) -> String {
        self.via
            .as_ref()
            .map(|v| format!(" (via {v})"))
            .unwrap_or_default()
    }

    async fn attempt(
        &self,
        resolved: &Resolved,
        dbname: Option<&str>,
        stage: Rc<Cell<&'static str>>,
    ) -> Result<Session> {
        let endpoint = &resolved.endpoint;
        let tcp = self.tcp(&endpoint.host, endpoint.port).await?;
        stage.set("waiting for TLS and login at");
        let token = resolved.mint_renewed().await?;
        let mut config = tokio_postgres::Config::new();
        config
            .user(&resolved.target.user)
            .password(token.value.expose())
            .application_name("rdsiam")
            .ssl_mode(tokio_postgres::config::SslMode::Require);
        if let Some(db) = dbname {
            config.dbname(db);
        }
        let watch = std::sync::Arc::new(crate::tap::Watch::default());
        let tls = crate::tap::Tap::new(self.tls_for(&endpoint.host), watch.clone());
        let (client, connection) = config
            .connect_raw(tcp, tls)
            .await
            .map_err(|err| self.classify(resolved, dbname, &err))?;
        let task = tokio::spawn(connection);
        Ok(Session {
            client,
            task,
            watch,
        })
    }

    /// What a failed handshake means, and what to do about it.
    fn classify(
        &self,
        resolved: &Resolved,
        dbname: Option<&str>,
        err: &tokio_postgres::Error,
    ) -> anyhow::Error {
        let user = &resolved.target.user;
        if let Some(db) = err.as_db_error() {
            let code = db.code().code();
            let base = format!("{} (SQLSTATE {code})", db.message());
            return match code {
                "28P01" | "28000" => login_refused(resolved, &resolved.target.user, &base).into(),
                "3D000" => Failure::new(
                    Kind::Login,
                    format!("the server refused the login: {base}"),
                )
                .hint(format!(
                    "pass --dbname/-d with a database that exists (without it the server uses one named like the user, `{user}`)"
                ))
                .into(),
                // The login itself worked; the role may not use this database.
                "42501" => {
                    let db = dbname_for(resolved, dbname);
                    Failure::new(Kind::Login, format!("the server refused the login: {base}"))
                        .hint(format!(
                            "the role lacks CONNECT on database `{db}`: run `GRANT CONNECT ON DATABASE {} TO {};` as an admin, or pass --dbname/-d with another database",
                            quote_ident(&db),
                            quote_ident(user)
                        ))
                        .into()
                }
                // datallowconn is off (template0, or a database being set up).
                "55000" => Failure::new(Kind::Login, format!("the server refused the login: {base}"))
                    .hint(format!(
                        "database `{}` does not accept connections (datallowconn is off, as for template0); pass --dbname/-d with another database",
                        dbname_for(resolved, dbname)
                    ))
                    .into(),
                // Too many connections, starting up, shutting down, failover:
                // the server is not taking logins now, which is not an IAM problem.
                _ if code.starts_with("53") || code.starts_with("57") || code.starts_with("08") => Failure::network(
                    format!("the server is not accepting connections: {base}"),
                )
                .hint(db.hint().map_or_else(
                    || "try again shortly; during a failover or restart this clears within minutes (`rdsiam list` shows the status)".to_owned(),
                    str::to_owned,
                ))
                .into(),
                _ => Failure::new(Kind::Other, format!("the server ended the login: {base}"))
                    .hint(db.hint().map_or_else(|| "see the server's message; check --dbname and the role's settings".to_owned(), str::to_owned))
                    .into(),
            };
        }
        self.wire_failure(resolved, crate::aws::error_chain(err), rustls_error(err))
            .into()
    }

    /// A failure on the way to a login (TCP, TLS, a dropped connection),
    /// said in words: `chain` is the error's text, `tls` the rustls error
    /// behind it if any. Shared by the PostgreSQL and MySQL logins.
    pub(crate) fn wire_failure(
        &self,
        resolved: &Resolved,
        chain: String,
        tls: Option<&rustls::Error>,
    ) -> Failure {
        let endpoint = &resolved.endpoint;
        let lower = chain.to_lowercase();
        let at = format!("{}:{}{}", endpoint.host, endpoint.port, self.via_note());
        // rustls's own text shows Debug for some causes: say it in words.
        let chain = tls.map_or(chain, tls_words);
        let certificate = tls.and_then(|e| match e {
            rustls::Error::InvalidCertificate(cert) => Some(cert),
            _ => None,
        });
        let expired = certificate.and_then(|c| match c {
            rustls::CertificateError::ExpiredContext { not_after, .. } => {
                Some(format!(" on {}", utc(*not_after)))
            }
            rustls::CertificateError::Expired => Some(String::new()),
            _ => None,
        });
        if certificate.is_some_and(|c| {
            matches!(
                c,
                rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. }
            )
        }) {
            Failure::network(format!("TLS: the server's certificate does not name `{}` ({chain})", endpoint.host)).hint(
                "connect by the endpoint's real name; for a tunnel keep --host/--proxy/--cluster and add --via 127.0.0.1:PORT (or use --sslmode verify-ca)",
            )
        } else if let Some(when) = expired {
            Failure::network(format!("TLS: the server's certificate at {at} expired{when}")).hint(
                "the server must present a renewed certificate; if it is current, check this machine's clock (`timedatectl`)",
            )
        } else if certificate.is_some() {
            Failure::network(format!("TLS: the server's certificate is not trusted at {at} ({chain})")).hint(match self.roots {
                Roots::BuiltIn => "the built-in bundle holds the RDS CAs and Amazon roots; for another CA pass --ca-bundle FILE".to_owned(),
                Roots::File(ref path) => format!("the certificate does not chain to {}; drop --ca-bundle/PGSSLROOTCERT to use the built-in RDS bundle", path.display()),
            })
        } else if lower.contains("does not support tls") || lower.contains("does not support ssl") {
            Failure::network(format!("the server at {at} refused TLS")).hint(
                "RDS and RDS Proxy always offer TLS: check that --port/--via point at the database",
            )
        } else if lower.contains("handshake") || lower.contains("tls") || lower.contains("ssl") {
            Failure::network(format!("TLS handshake with {at} failed: {chain}")).hint(
                "check that --port/--via point at the database and that nothing intercepts TLS",
            )
        } else {
            Failure::network(format!("the connection to {at} failed during login: {chain}"))
                .hint("the server or a proxy closed the connection; check the endpoint's status (`rdsiam list`) and try again")
        }
    }
}

/// A rustls failure in words; its Display shows Debug text for several
/// certificate errors (`UnknownIssuer`, `Other(OtherError(…))`).
fn tls_words(err: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(cert) = err else {
        return match err {
            rustls::Error::Other(other) => other.to_string(),
            other => other.to_string(),
        };
    };
    match cert {
        C::UnknownIssuer => "issued by a CA that is not in the trust store".to_owned(),
        C::ExpiredContext { not_after, .. } => format!("expired on {}", utc(*not_after)),
        C::Expired => "expired".to_owned(),
        C::NotValidYetContext { not_before, .. } => {
            format!("not valid before {}", utc(*not_before))
        }
        C::NotValidYet => "not valid yet".to_owned(),
        C::NotValidForName => "issued for another host name".to_owned(),
        C::BadSignature => "its signature does not verify".to_owned(),
        C::BadEncoding => "it cannot be parsed".to_owned(),
        C::Revoked => "revoked".to_owned(),
        C::UnhandledCriticalExtension => "it has an unsupported critical extension".to_owned(),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "it is not issued for TLS servers".to_owned()
        }
        C::Other(other) => format!("certificate rejected: {other}"),
        other => other.to_string(),
    }
}

/// A certificate time as an RFC 3339 UTC date.
fn utc(time: rustls::pki_types::UnixTime) -> String {
    let secs = i64::try_from(time.as_secs()).unwrap_or(i64::MAX);
    aws_smithy_types::DateTime::from_secs(secs)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_else(|_| format!("{secs} (Unix time)"))
}

/// The rustls error behind a failed handshake, if that is what failed. It
/// sits inside an `io::Error`, whose `source()` skips the wrapped error.
fn rustls_error(err: &tokio_postgres::Error) -> Option<&rustls::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(e) = cause {
        if let Some(found) = e.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        if let Some(found) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(found);
        }
        cause = e.source();
    }
    None
}

/// The database a login asked for: `--dbname`, else the user's name, as the
/// server picks.
fn dbname_for(resolved: &Resolved, dbname: Option<&str>) -> String {
    dbname.unwrap_or(&resolved.target.user).to_owned()
}

/// The refusal RDS gives for any bad token, with the known causes in order.
pub(crate) fn login_refused(resolved: &Resolved, user: &str, base: &str) -> Failure {
    let endpoint = &resolved.endpoint;
    let region = &resolved.aws.region;
    let mut failure = Failure::new(
        Kind::Login,
        format!(
            "the database refused the IAM login for `{user}` at {}:{}: {base}",
            endpoint.host, endpoint.port
        ),
    )
    .hint("known causes, most likely first:");
    let mut causes = Vec::new();
    // What the API told us outranks what is merely common.
    if endpoint.iam == Some(false) {
        causes.push(format!(
            "IAM auth is OFF on this target: {}",
            endpoint.enable_iam_hint()
        ));
    }
    if let Some(host_region) = host_region(&endpoint.host).filter(|r| *r != region.as_str()) {
        causes.push(format!(
            "region mismatch: the token was signed for {region}, the endpoint is in {host_region}; pass --region {host_region}"
        ));
    }
    causes.push(match endpoint.family {
        Engine::Postgres => format!(
            "the role lacks rds_iam: run `GRANT rds_iam TO {};` as an admin",
            quote_ident(user)
        ),
        Engine::Mysql => format!(
            "the user is not IDENTIFIED WITH AWSAuthenticationPlugin: run `CREATE USER {} IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS';` as an admin (`rdsiam doctor` shows how it is identified)",
            crate::engine::quote_account(user)
        ),
    });
    // Issue 24: a wrong secret or a revoked key signs tokens RDS refuses
    // just the same.
    causes.push("wrong or revoked AWS credentials (a wrong secret, a rotated or deleted access key): `aws sts get-caller-identity` with the same profile tells".to_owned());
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
    causes.push(match endpoint.policy_resource(region, user) {
        Some(arn) => format!("the IAM policy must allow rds-db:connect on {arn} (the resource id is {id_kind})"),
        None => format!(
            "the IAM policy must allow rds-db:connect on arn:aws:rds-db:{region}:ACCOUNT:dbuser:RESOURCE-ID/{user} ({id_kind}; `rdsiam list -o json` shows resource ids)"
        ),
    });
    causes.push("clock skew: this machine's clock must be within 5 minutes of AWS time (check `timedatectl`)".to_owned());
    if endpoint.iam.is_none() {
        causes.push("IAM auth off on the target (`rdsiam list` shows it)".to_owned());
    }
    for (n, cause) in causes.into_iter().enumerate() {
        failure = failure.hint(format!("{}. {cause}", n + 1));
    }
    failure
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

/// A logged-in session; the connection task ends when the client drops.
pub struct Session {
    pub client: Client,
    pub task: tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
    /// Transaction status, parameter changes and notices, off the wire.
    pub watch: std::sync::Arc<crate::tap::Watch>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_parses_host_port_and_v6() {
        assert_eq!(
            Via::parse("127.0.0.1:15432").unwrap(),
            Via {
                host: "127.0.0.1".into(),
                port: 15432
            }
        );
        assert_eq!(
            Via::parse("[::1]:5432").unwrap(),
            Via {
                host: "::1".into(),
                port: 5432
            }
        );
        assert_eq!(
            Via::parse("bastion.internal:6000").unwrap().host,
            "bastion.internal"
        );
        for bad in ["127.0.0.1", ":5432", "h:0", "h:99999", "h:x"] {
            assert_eq!(
                crate::error::exit_code(&Via::parse(bad).unwrap_err()),
                2,
                "{bad}"
            );
        }
    }

    #[test]
    fn tls_failures_are_said_in_words() {
        use rustls::CertificateError as C;
        let other = rustls::OtherError(std::sync::Arc::new(std::io::Error::other(
            "unsupported extension",
        )));
        for (err, want) in [
            (
                rustls::Error::InvalidCertificate(C::Other(other.clone())),
                "certificate rejected: unsupported extension",
            ),
            (rustls::Error::Other(other), "unsupported extension"),
            (
                rustls::Error::InvalidCertificate(C::UnknownIssuer),
                "issued by a CA that is not in the trust store",
            ),
            (
                rustls::Error::InvalidCertificate(C::ExpiredContext {
                    time: rustls::pki_types::UnixTime::since_unix_epoch(
                        std::time::Duration::from_secs(1_700_000_000),
                    ),
                    not_after: rustls::pki_types::UnixTime::since_unix_epoch(
                        std::time::Duration::from_secs(1_640_908_800),
                    ),
                }),
                "expired on 2021-12-31T00:00:00Z",
            ),
        ] {
            let words = tls_words(&err);
            assert_eq!(words, want);
            assert!(
                !words.contains("Other(") && !words.contains("Context"),
                "{words}"
            );
        }
    }

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
}
