//! The upstream hop: TCP to the endpoint (or `--via`), TLS verified as the
//! target's sslmode says, the client's StartupMessage, the cached IAM token
//! as the cleartext password, and the server's greeting up to
//! ReadyForQuery, buffered so a refusal reaches the client as one clean
//! ErrorResponse in rdsiam's words. Also the CancelRequest forwarder.

use std::time::SystemTime;

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::metrics::Outcome;
use super::wire::{self, ErrorReply, MAX_LOGIN_MESSAGE};
use super::{Shared, Upstream};
use crate::error::Failure;
use crate::token::{self as iam_token, Token, TokenRequest};

pub type ServerStream = TlsStream<TcpStream>;

/// All of the greeting (AuthenticationOk … ReadyForQuery) we buffer at most.
const MAX_GREETING: usize = 256 * 1024;

/// What the client gets when the login fails.
pub enum Reply {
    /// Ours, with the reason and what to do.
    Built(ErrorReply),
    /// The server's own ErrorResponse, passed on unchanged.
    Raw(Vec<u8>),
}

pub struct LoginError {
    pub reply: Reply,
    pub outcome: Outcome,
    /// One line for the log.
    pub reason: String,
}

impl LoginError {
    fn from_failure(failure: &Failure, code: &str, outcome: Outcome) -> LoginError {
        LoginError {
            reply: Reply::Built(
                ErrorReply::fatal(code, format!("rdsiam proxy: {}", failure.message))
                    .hint(failure.hints.join("\n")),
            ),
            outcome,
            reason: failure.message.clone(),
        }
    }

    fn network(failure: Failure) -> LoginError {
        // 08006: connection failure, what libpq shows for an unreachable server.
        LoginError::from_failure(&failure, "08006", Outcome::Failed)
    }
}

fn failure_of(err: anyhow::Error) -> Failure {
    match err.downcast::<Failure>() {
        Ok(failure) => failure,
        Err(other) => Failure::network(format!("{other:#}")),
    }
}

/// A token for `user`, from the cache or freshly signed.
pub async fn token_for(up: &Upstream, shared: &Shared, user: &str) -> anyhow::Result<Token> {
    let aws = &up.resolved.aws;
    let key_id = aws.credentials().access_key_id().to_owned();
    let endpoint = &up.resolved.endpoint;
    let (token, minted) = up
        .tokens
        .get(user, &key_id, |at: SystemTime| async move {
            aws.renew_if_expiring().await?;
            let credentials = aws.credentials();
            let token = iam_token::generate(
                &TokenRequest {
                    host: &endpoint.host,
                    port: endpoint.port,
                    user,
                    region: &aws.region,
                },
                &credentials,
                at,
            )?;
            Ok((token, credentials.access_key_id().to_owned()))
        })
        .await?;
    if minted {
        shared.metrics.tokens_minted.inc();
        shared.note_credentials(aws);
    }
    Ok(token)
}

/// Log in upstream as the client asked; on success the TLS stream and the
/// greeting to replay to the client.
pub async fn login(
    up: &Upstream,
    shared: &Shared,
    params: &[(String, String)],
    user: &str,
) -> Result<(ServerStream, Vec<u8>), LoginError> {
    shared.limits.login_turn().await;
    let token = token_for(up, shared, user)
        .await
        .map_err(|err| LoginError::from_failure(&failure_of(err), "08006", Outcome::Failed))?;
    let mut server = connect_tls(up).await.map_err(LoginError::network)?;

    let io = |err: std::io::Error| {
        LoginError::network(Failure::network(format!(
            "the connection to {} closed during login: {err}",
            up.at()
        )))
    };
    let startup = wire::startup_upstream(params).map_err(io)?;
    server.write_all(&startup).await.map_err(io)?;
    server.flush().await.map_err(io)?;

    let mut greeting = Vec::new();
    let mut authenticated = false;
    loop {
        let raw = wire::read_message(&mut server, MAX_LOGIN_MESSAGE)
            .await
            .map_err(io)?;
        let tag = raw[0];
        match tag {
            b'R' => {
                let message = Message::parse(&mut raw.clone()).map_err(io)?;
                match message {
                    Some(Message::AuthenticationCleartextPassword) if !authenticated => {
                        let mut buf = BytesMut::new();
                        frontend::password_message(token.value.expose().as_bytes(), &mut buf)
                            .map_err(io)?;
                        server.write_all(&buf).await.map_err(io)?;
                        server.flush().await.map_err(io)?;
                    }
                    Some(Message::AuthenticationOk) => {
                        authenticated = true;
                        greeting.extend_from_slice(&raw);
                    }
                    _ => {
                        let failure = crate::connect::login_refused(
                            &up.resolved,
                            user,
                            "the server asked for another kind of password (md5 or SCRAM), not the cleartext one an IAM token is sent as",
                        );
                        return Err(LoginError::from_failure(
                            &failure,
                            "28000",
                            Outcome::Refused,
                        ));
                    }
                }
            }
            b'E' => return Err(refusal(up, user, raw)),
            b'Z' => {
                greeting.extend_from_slice(&raw);
                return Ok((server, greeting));
            }
            // ParameterStatus, BackendKeyData, NoticeResponse: the client's.
            _ if authenticated => greeting.extend_from_slice(&raw),
            _ => {}
        }
        if greeting.len() > MAX_GREETING {
            return Err(io(std::io::Error::other(
                "the server's greeting is too long",
            )));
        }
    }
}

/// The server said no: an IAM refusal gets the known causes; anything
/// else (no such database, too many connections) is passed on as it is.
fn refusal(up: &Upstream, user: &str, raw: BytesMut) -> LoginError {
    let (mut code, mut message) = (String::new(), String::new());
    if let Ok(Some(Message::ErrorResponse(body))) = Message::parse(&mut raw.clone()) {
        let mut fields = body.fields();
        while let Ok(Some(field)) = fields.next() {
            let value = String::from_utf8_lossy(field.value_bytes()).into_owned();
            match field.type_() {
                b'C' => code = value,
                b'M' => message = value,
                _ => {}
            }
        }
    }
    if code == "28P01" || code == "28000" {
        let base = format!("{message} (SQLSTATE {code})");
        let failure = crate::connect::login_refused(&up.resolved, user, &base);
        return LoginError::from_failure(&failure, &code, Outcome::Refused);
    }
    LoginError {
        reply: Reply::Raw(raw.to_vec()),
        outcome: Outcome::Refused,
        reason: format!("{message} (SQLSTATE {code})"),
    }
}

/// TCP (to the endpoint or `--via`), SSLRequest, and a verified TLS handshake.
async fn connect_tls(up: &Upstream) -> Result<ServerStream, Failure> {
    let endpoint = &up.resolved.endpoint;
    let mut tcp = up
        .connector
        .tcp(&endpoint.host, endpoint.port)
        .await
        .map_err(failure_of)?;
    let mut buf = BytesMut::new();
    frontend::ssl_request(&mut buf);
    let answer = async {
        tcp.write_all(&buf).await?;
        tcp.read_u8().await
    }
    .await
    .map_err(|err| {
        Failure::network(format!("the connection to {} failed: {err}", up.at()))
            .hint("check that --port/--via point at the database")
    })?;
    if answer != b'S' {
        return Err(
            Failure::network(format!("the server at {} refused TLS", up.at())).hint(
                "RDS and RDS Proxy always offer TLS: check that --port/--via point at the database",
            ),
        );
    }
    up.tls
        .connect(up.server_name.clone(), tcp)
        .await
        .map_err(|err| tls_failure(up, &err))
}

fn tls_failure(up: &Upstream, err: &std::io::Error) -> Failure {
    use rustls::{CertificateError, Error as TlsError};
    let endpoint = &up.resolved.endpoint;
    let cause = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<TlsError>());
    match cause {
        Some(TlsError::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        )) => Failure::network(format!(
            "TLS: the server's certificate does not name `{}` ({err})",
            endpoint.host
        ))
        .hint("connect by the endpoint's real name; for a tunnel keep the target and add --via 127.0.0.1:PORT (or use --sslmode verify-ca)"),
        Some(TlsError::InvalidCertificate(_)) => Failure::network(format!(
            "TLS: the server's certificate is not trusted at {} ({err})",
            up.at()
        ))
        .hint(match &up.connector.roots {
            crate::ca::Roots::BuiltIn => "the built-in bundle holds the RDS CAs and Amazon roots; for another CA pass --ca-bundle FILE".to_owned(),
            crate::ca::Roots::File(path) => format!("the certificate does not chain to {}; drop --ca-bundle/PGSSLROOTCERT to use the built-in RDS bundle", path.display()),
        }),
        _ => Failure::network(format!("TLS handshake with {} failed: {err}", up.at()))
            .hint("check that --port/--via point at the database and that nothing intercepts TLS"),
    }
}

/// Forward a client's CancelRequest over a new TLS connection; the server
/// answers nothing, so wait until it closes (or a short while).
pub async fn cancel(up: &Upstream, pid: i32, key: &[u8]) -> Result<(), Failure> {
    // The cancel path runs outside the client's start-up timeout, so the
    // SSL answer and the handshake are bounded here too: the whole forward
    // gets one --connect-timeout.
    let deadline = tokio::time::Instant::now() + up.connector.timeout;
    let mut server = tokio::time::timeout_at(deadline, connect_tls(up))
        .await
        .map_err(|_| {
            Failure::network(format!(
                "sending the cancel request to {} timed out during the TLS handshake",
                up.at()
            ))
            .hint("check that --port/--via point at the database")
        })??;
    let request = wire::cancel_upstream(pid, key);
    let sent = async {
        server.write_all(&request).await?;
        server.flush().await?;
        let mut sink = [0u8; 64];
        while server.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    };
    match tokio::time::timeout_at(deadline, sent).await {
        Ok(Ok(())) | Err(_) => Ok(()),
        Ok(Err(err)) if err.kind() == std::io::ErrorKind::UnexpectedEof => Ok(()),
        Ok(Err(err)) => Err(Failure::network(format!(
            "sending the cancel request to {} failed: {err}",
            up.at()
        ))),
    }
}
