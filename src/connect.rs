//! A PostgreSQL session the way RDS accepts it: tokio-postgres over TLS
//! (rustls, see `tls.rs`), a fresh token as the cleartext password for every new
//! connection, optionally through a tunnel (`--via`) while the token and the
//! certificate check still name the real endpoint. Each failure becomes a
//! message with its exit code: network/TLS (4) or login refused (5).

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use anyhow::Result;
use tokio::net::TcpStream;
use tokio_postgres::Client;
use tokio_postgres::tls::MakeTlsConnect;

use crate::dial::Dialer;
use crate::error::{Failure, Kind, Stage};
use crate::output::quote_ident;
use crate::session::Resolved;
use crate::target::Conn;

pub use crate::target::{DEFAULT_CONNECT_TIMEOUT, Via};

pub use crate::dial::TIMEOUT_HINT;

/// How to open PostgreSQL sessions: the [`Dialer`] (route, trust, time)
/// plus tokio-postgres's TLS maker on the same rustls settings. Built once,
/// used for each (re)connect. It reads as its dialer (`connector.via`,
/// `connector.tcp(…)`): a connector is a dialer that also logs in.
#[derive(Clone)]
pub struct Connector {
    dialer: Dialer,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
}

impl std::ops::Deref for Connector {
    type Target = Dialer;
    fn deref(&self) -> &Dialer {
        &self.dialer
    }
}

impl Connector {
    /// The connector for the typed settings target resolution produced.
    pub fn from_args(conn: &Conn) -> Result<Connector> {
        let dialer = Dialer::new(conn)?;
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new((*dialer.tls_config()).clone());
        Ok(Connector { dialer, tls })
    }

    /// The same, its connections opened by `transport` (in-process tests).
    pub fn with_transport(mut self, transport: Arc<dyn crate::dial::Transport>) -> Connector {
        self.dialer = self.dialer.with_transport(transport);
        self
    }

    /// The dialer alone (the proxy's upstream logins).
    pub fn dialer(&self) -> &Dialer {
        &self.dialer
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
                .at(Stage::Tcp)
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
            let tcp = self.dialer.tcp(&endpoint.host, endpoint.port).await?;
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

    async fn attempt(
        &self,
        resolved: &Resolved,
        dbname: Option<&str>,
        stage: Rc<Cell<&'static str>>,
    ) -> Result<Session> {
        let endpoint = &resolved.endpoint;
        let tcp = self.dialer.tcp(&endpoint.host, endpoint.port).await?;
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
            let failure: Failure = match code {
                "28P01" | "28000" => login_refused(resolved, &resolved.target.user, &base),
                "3D000" => Failure::new(
                    Kind::Login,
                    format!("the server refused the login: {base}"),
                )
                .hint(format!(
                    "pass --dbname/-d with a database that exists (without it the server uses one named like the user, `{user}`)"
                ))
                ,
                // The login itself worked; the role may not use this database.
                "42501" => {
                    let db = dbname_for(resolved, dbname);
                    Failure::new(Kind::Login, format!("the server refused the login: {base}"))
                        .hint(format!(
                            "the role lacks CONNECT on database `{db}`: run `GRANT CONNECT ON DATABASE {} TO {};` as an admin, or pass --dbname/-d with another database",
                            quote_ident(&db),
                            quote_ident(user)
                        ))
                }
                // datallowconn is off (template0, or a database being set up).
                "55000" => Failure::new(Kind::Login, format!("the server refused the login: {base}"))
                    .hint(format!(
                        "database `{}` does not accept connections (datallowconn is off, as for template0); pass --dbname/-d with another database",
                        dbname_for(resolved, dbname)
                    ))
                    ,
                // Too many connections, starting up, shutting down, failover:
                // the server is not taking logins now, which is not an IAM problem.
                _ if code.starts_with("53") || code.starts_with("57") || code.starts_with("08") => Failure::network(
                    format!("the server is not accepting connections: {base}"),
                )
                .hint(db.hint().map_or_else(
                    || "try again shortly; during a failover or restart this clears within minutes (`rdsiam list` shows the status)".to_owned(),
                    str::to_owned,
                ))
                ,
                _ => Failure::new(Kind::Other, format!("the server ended the login: {base}"))
                    .hint(db.hint().map_or_else(|| "see the server's message; check --dbname and the role's settings".to_owned(), str::to_owned)),
            };
            return failure.at(Stage::Login).code(code).into();
        }
        let endpoint = &resolved.endpoint;
        self.dialer
            .explain(
                &endpoint.host,
                endpoint.port,
                crate::aws::error_chain(err),
                crate::dial::rustls_in(err),
            )
            .into()
    }
}

/// The database a login asked for: `--dbname`, else the user's name, as the
/// server picks.
fn dbname_for(resolved: &Resolved, dbname: Option<&str>) -> String {
    dbname.unwrap_or(&resolved.target.user).to_owned()
}

/// The refusal RDS gives for any bad token, with the known causes in
/// order (the one list, `explain.rs`).
pub(crate) fn login_refused(resolved: &Resolved, user: &str, base: &str) -> Failure {
    crate::explain::refused_login(&resolved.endpoint, &resolved.aws.region, user, base)
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
}
