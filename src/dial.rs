//! One way to a database server (issue 18): the name resolved, TCP to the
//! endpoint or the `--via` tunnel, PostgreSQL's SSLRequest, a verified TLS
//! handshake; and, in one place, what each failure on that way means and
//! what to do next. Every failure is a [`Failure`] that says its [`Stage`],
//! so callers (the failover retry, the REPL's reconnect, the doctor) ask
//! the stage instead of reading the words.
//!
//! `connect` (check, sql, psql's pre-check), `mysql`, the proxy's upstream
//! logins and the doctor all dial through here. The proxy's logins go
//! through [`Dialer::stream`], which a [`Transport`] can serve instead of
//! TCP: the proxy's tests put an in-process database there (as
//! cloud-sql-proxy's tests do with their fake dialer).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use bytes::BytesMut;
use postgres_protocol::message::frontend;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::ca::Roots;
use crate::error::{Failure, Stage};
use crate::target::{Conn, Via};
use crate::tls::SslMode;

/// What to do when the database does not answer in time.
pub const TIMEOUT_HINT: &str = "from outside the VPC, tunnel in (SSM port forward, SSH -L) and pass --via 127.0.0.1:PORT; check security groups; raise --connect-timeout if the network is slow";

/// What a server that won't do TLS is told: RDS always offers it.
const NO_TLS_HINT: &str =
    "RDS and RDS Proxy always offer TLS: check that --port/--via point at the database";

/// A byte stream to a server, whatever carries it.
pub trait Link: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Link for T {}

/// A connection [`Dialer::stream`] opened: TCP, or a [`Transport`]'s.
pub type Stream = Box<dyn Link>;

/// What [`Transport::open`] returns.
pub type Opening = Pin<Box<dyn Future<Output = std::io::Result<Stream>> + Send>>;

/// Opens connections in place of DNS and TCP. TLS and everything after it
/// still run as they do over TCP.
pub trait Transport: Send + Sync {
    fn open(&self, host: &str, port: u16) -> Opening;
}

/// How to reach servers: the tunnel, how to trust them, how long to wait.
/// Built once, used for each connection.
#[derive(Clone)]
pub struct Dialer {
    pub via: Option<Via>,
    pub sslmode: SslMode,
    pub roots: Roots,
    /// TCP, TLS and login together.
    pub timeout: Duration,
    tls: Arc<rustls::ClientConfig>,
    transport: Option<Arc<dyn Transport>>,
}

impl Dialer {
    pub fn new(conn: &Conn) -> Result<Dialer> {
        Ok(Dialer {
            via: conn.via.clone(),
            sslmode: conn.sslmode,
            roots: conn.roots.clone(),
            timeout: conn.timeout,
            tls: Arc::new(crate::tls::client_config(conn.sslmode, &conn.roots)?),
            transport: None,
        })
    }

    /// Open [`Dialer::stream`]'s connections with `transport` instead of TCP.
    pub fn with_transport(mut self, transport: Arc<dyn Transport>) -> Dialer {
        self.transport = Some(transport);
        self
    }

    /// The rustls settings every handshake uses (verification per sslmode).
    pub fn tls_config(&self) -> Arc<rustls::ClientConfig> {
        self.tls.clone()
    }

    /// ` (via ADDR:PORT)` when tunnelled, for messages.
    pub fn via_note(&self) -> String {
        self.via
            .as_ref()
            .map(|v| format!(" (via {v})"))
            .unwrap_or_default()
    }

    /// TCP to `host:port`, or to the tunnel when there is one. The name is
    /// resolved anew each time: a failover's DNS change is seen at once.
    /// Unbounded: callers bound the whole way with [`Dialer::timeout`].
    pub async fn tcp(&self, host: &str, port: u16) -> Result<TcpStream, Failure> {
        let (dial_host, dial_port) = match &self.via {
            Some(via) => (via.host.as_str(), via.port),
            None => (host, port),
        };
        let addrs: Vec<_> = tokio::net::lookup_host((dial_host, dial_port))
            .await
            .map_err(|err| {
                Failure::network(format!("cannot resolve `{dial_host}`: {err}"))
                    .hint(if self.via.is_some() {
                        "check the --via address"
                    } else {
                        "check the host name; private endpoints resolve only inside the VPC: tunnel in and pass --via 127.0.0.1:PORT"
                    })
                    .at(Stage::Dns)
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
            return Err(
                Failure::network(format!("`{dial_host}` resolved to no address")).at(Stage::Dns),
            );
        };
        let hint = if self.via.is_some() {
            "is the tunnel (SSM port forward, SSH -L) running and listening there?"
        } else {
            "check the port and the security group; from outside the VPC, tunnel in and pass --via 127.0.0.1:PORT"
        };
        Err(Failure::network(format!("cannot connect to {addr}: {err}"))
            .hint(hint)
            .at(Stage::Tcp))
    }

    /// [`Dialer::tcp`], or the [`Transport`]'s connection when there is one.
    pub async fn stream(&self, host: &str, port: u16) -> Result<Stream, Failure> {
        let Some(transport) = &self.transport else {
            return Ok(Box::new(self.tcp(host, port).await?));
        };
        transport.open(host, port).await.map_err(|err| {
            Failure::network(format!(
                "cannot connect to {host}:{port}{}: {err}",
                self.via_note()
            ))
            .at(Stage::Tcp)
        })
    }

    /// TCP, PostgreSQL's SSLRequest and a verified TLS handshake with
    /// `host` (the endpoint's real name, also through a tunnel).
    pub async fn postgres_tls(
        &self,
        host: &str,
        port: u16,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Failure> {
        let tcp = self.tcp(host, port).await?;
        self.postgres_tls_on(tcp, host, port).await
    }

    /// SSLRequest and the verified handshake on a connection [`Dialer::tcp`]
    /// or [`Dialer::stream`] opened (for callers that time the stages apart).
    pub async fn postgres_tls_on<S>(
        &self,
        mut tcp: S,
        host: &str,
        port: u16,
    ) -> Result<tokio_rustls::client::TlsStream<S>, Failure>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let at = format!("{host}:{port}{}", self.via_note());
        ssl_request(&mut tcp, &at).await?;
        let name = ServerName::try_from(host.to_owned()).map_err(|_| {
            Failure::usage(format!("`{host}` is not a valid TLS server name")).at(Stage::Tls)
        })?;
        tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|err| {
                let chain = err.to_string();
                self.explain(host, port, chain, rustls_in(&err))
            })
    }

    /// What a failure on the way to a login (TLS, a dropped connection)
    /// means, said in words: `chain` is the error's text, `tls` the rustls
    /// error behind it if any. The one explainer for PostgreSQL, MySQL and
    /// the proxy.
    pub fn explain(
        &self,
        host: &str,
        port: u16,
        chain: String,
        tls: Option<&rustls::Error>,
    ) -> Failure {
        let at = format!("{host}:{port}{}", self.via_note());
        let Some(tls) = tls else {
            let lower = chain.to_lowercase();
            return if lower.contains("does not support tls")
                || lower.contains("does not support ssl")
            {
                Failure::network(format!("the server at {at} refused TLS"))
                    .hint(NO_TLS_HINT)
                    .at(Stage::TlsRequest)
            } else {
                Failure::network(format!(
                    "the connection to {at} failed during login: {chain}"
                ))
                .hint("the server or a proxy closed the connection; check the endpoint's status (`rdsiam list`) and try again")
                .at(Stage::Login)
            };
        };
        let words = tls_words(tls);
        let kind = TlsFailure::of(tls);
        let stage = if kind == TlsFailure::Handshake {
            Stage::Tls
        } else {
            Stage::Certificate
        };
        let failure = match kind {
            TlsFailure::NotForName => Failure::network(format!(
                "TLS: the server's certificate does not name `{host}` ({words})"
            ))
            .hint("connect by the endpoint's real name; for a tunnel keep --host/--proxy/--cluster and add --via 127.0.0.1:PORT (or use --sslmode verify-ca)"),
            TlsFailure::Expired(when) => {
                let when = when.map(|t| format!(" on {}", utc(t))).unwrap_or_default();
                Failure::network(format!("TLS: the server's certificate at {at} expired{when}")).hint(
                    "the server must present a renewed certificate; if it is current, check this machine's clock (`timedatectl`)",
                )
            }
            TlsFailure::Untrusted => Failure::network(format!(
                "TLS: the server's certificate is not trusted at {at} ({words})"
            ))
            .hint(match &self.roots {
                Roots::BuiltIn => "the built-in bundle holds the RDS CAs and Amazon roots; for another CA pass --ca-bundle FILE".to_owned(),
                Roots::File(path) => format!("the certificate does not chain to {}; drop --ca-bundle/PGSSLROOTCERT to use the built-in RDS bundle", path.display()),
            }),
            TlsFailure::Handshake => Failure::network(format!(
                "TLS handshake with {at} failed: {words}"
            ))
            .hint("check that --port/--via point at the database and that nothing intercepts TLS"),
        };
        failure.at(stage)
    }
}

/// Why a TLS handshake failed, as the explainer and the retry rules see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsFailure {
    /// The certificate is for another name.
    NotForName,
    /// It expired (when, if known).
    Expired(Option<rustls::pki_types::UnixTime>),
    /// It does not chain to a trusted root, or is otherwise refused.
    Untrusted,
    /// The handshake itself failed (not a certificate matter).
    Handshake,
}

impl TlsFailure {
    pub fn of(err: &rustls::Error) -> TlsFailure {
        use rustls::CertificateError as C;
        match err {
            rustls::Error::InvalidCertificate(
                C::NotValidForName | C::NotValidForNameContext { .. },
            ) => TlsFailure::NotForName,
            rustls::Error::InvalidCertificate(C::ExpiredContext { not_after, .. }) => {
                TlsFailure::Expired(Some(*not_after))
            }
            rustls::Error::InvalidCertificate(C::Expired) => TlsFailure::Expired(None),
            rustls::Error::InvalidCertificate(_) => TlsFailure::Untrusted,
            _ => TlsFailure::Handshake,
        }
    }
}

/// PostgreSQL's SSLRequest (postgres-protocol's encoding), answered `S`.
/// `at` names the server in messages.
pub async fn ssl_request<S>(stream: &mut S, at: &str) -> Result<(), Failure>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = BytesMut::new();
    frontend::ssl_request(&mut buf);
    let sent = async {
        stream.write_all(&buf).await?;
        stream.flush().await?;
        let mut answer = [0u8; 1];
        let n = stream.read(&mut answer).await?;
        Ok::<_, std::io::Error>((n, answer[0]))
    };
    match sent.await {
        Ok((1, b'S')) => Ok(()),
        Ok((1, b'N')) => Err(
            Failure::network(format!("the server at {at} does not offer TLS"))
                .hint(NO_TLS_HINT)
                .at(Stage::TlsRequest),
        ),
        other => {
            let what = match other {
                Ok((1, byte)) => format!("answered {:?} to the TLS request", byte as char),
                Ok(_) => "closed the connection at the TLS request".to_owned(),
                Err(err) => format!("failed at the TLS request: {err}"),
            };
            Err(Failure::network(format!("the server at {at} {what}: not PostgreSQL?"))
                .hint("check that --port/--via point at the database (`--engine mysql` for a MySQL --host target)")
                .at(Stage::TlsRequest))
        }
    }
}

/// The rustls error behind an error, if that is what failed. It often sits
/// inside an `io::Error`, whose `source()` skips the wrapped error.
pub fn rustls_in<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
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

/// A rustls failure in words; its Display shows Debug text for several
/// certificate errors (`UnknownIssuer`, `Other(OtherError(…))`).
pub fn tls_words(err: &rustls::Error) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn tls_failures_are_typed() {
        use rustls::CertificateError as C;
        assert_eq!(
            TlsFailure::of(&rustls::Error::InvalidCertificate(C::NotValidForName)),
            TlsFailure::NotForName
        );
        assert_eq!(
            TlsFailure::of(&rustls::Error::InvalidCertificate(C::Expired)),
            TlsFailure::Expired(None)
        );
        assert_eq!(
            TlsFailure::of(&rustls::Error::InvalidCertificate(C::UnknownIssuer)),
            TlsFailure::Untrusted
        );
        assert_eq!(
            TlsFailure::of(&rustls::Error::HandshakeNotComplete),
            TlsFailure::Handshake
        );
    }

    #[test]
    fn the_rustls_error_is_found_inside_io_errors() {
        let io = std::io::Error::other(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        assert!(matches!(
            rustls_in(&io),
            Some(rustls::Error::InvalidCertificate(_))
        ));
        assert!(rustls_in(&std::io::Error::other("plain")).is_none());
    }

    #[tokio::test]
    async fn ssl_request_is_postgres_encoding_and_answers_are_typed() {
        for (answer, stage_ok) in [
            (&b"S"[..], true),
            (b"N", false),
            (b"E", false),
            (b"", false),
        ] {
            let (mut ours, mut theirs) = tokio::io::duplex(64);
            let reply = answer.to_vec();
            let server = tokio::spawn(async move {
                let mut got = [0u8; 8];
                theirs.read_exact(&mut got).await.unwrap();
                theirs.write_all(&reply).await.unwrap();
                got
            });
            let result = ssl_request(&mut ours, "db:5432").await;
            let sent = server.await.unwrap();
            assert_eq!(sent, [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
            match result {
                Ok(()) => assert!(stage_ok),
                Err(failure) => {
                    assert!(!stage_ok);
                    assert_eq!(failure.stage, Some(Stage::TlsRequest));
                    assert_eq!(failure.kind, crate::error::Kind::Network);
                }
            }
        }
    }
}
