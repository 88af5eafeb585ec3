//! The upstream hop: TCP to the endpoint (or `--via`), TLS verified as the
//! target's sslmode says, the client's StartupMessage, the cached IAM token
//! as the cleartext password, and the server's greeting up to
//! ReadyForQuery, buffered so a refusal reaches the client as one clean
//! ErrorResponse in rdsiam's words. Also the CancelRequest forwarder.
//!
//! Around one attempt, [`login`] does what a long-running proxy needs to
//! come through an Aurora failover (issue 19): a writer target that reaches
//! a read-only server, or nothing, retries with backoff (resolving the name
//! again each time) up to `--failover-timeout`; a refused token is dropped
//! and the login retried once with a fresh one; a user refused again and
//! again is answered from the count for a short while; and a timeout names
//! its stage (rdsiam's queue, TCP, TLS, the server's answer).

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;

use super::log::Value;
use super::metrics::Outcome;
use super::wire::{self, ErrorReply, MAX_LOGIN_MESSAGE};
use super::{Shared, Upstream};
use crate::error::Failure;
use crate::token::{self as iam_token, Token, TokenRequest};

/// A TLS session with the database, over TCP (or a test's transport).
pub type ServerStream = TlsStream<crate::dial::Stream>;

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
        LoginError::from_failure(
            &failure,
            wire::sqlstate::CONNECTION_FAILURE,
            Outcome::Failed,
        )
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

/// Why one attempt failed, for [`login`] to decide what comes next.
enum Failed {
    /// What a failover looks like from here: a read-only server, a refused
    /// or dropped connection, a server starting up or shutting down.
    Failover { why: String, error: LoginError },
    /// The database refused the token.
    Refused(LoginError),
    /// Anything else: passed on as it is.
    Other(LoginError),
}

/// The stages of one attempt, for a timeout message.
const STAGE_TCP: u8 = 0;
const STAGE_TLS: u8 = 1;
const STAGE_ANSWER: u8 = 2;

/// The first pause between retries during a failover, and the longest.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_millis(500);

/// Log in upstream as the client asked; on success the TLS stream and the
/// greeting to replay to the client. Bounds its own time: the wait in
/// rdsiam's queue, TCP and TLS (`--connect-timeout`), the server's answer
/// (`--login-timeout`) and, for a writer target, the failover
/// (`--failover-timeout`).
pub async fn login(
    up: &Upstream,
    shared: &Shared,
    params: &[(String, String)],
    user: &str,
) -> Result<(ServerStream, Vec<u8>), LoginError> {
    if let Some((count, left)) = up.refusals.answer_from_count(user) {
        let message = format!(
            "the database refused the IAM login for `{user}` {count} times in a row; answered from that count, without asking the database, for {}s more",
            left.as_secs().max(1)
        );
        return Err(LoginError {
            reply: Reply::Built(
                ErrorReply::fatal(wire::sqlstate::INVALID_PASSWORD, format!("rdsiam proxy: {message}"))
                    .hint("the proxy's log has the database's refusal and its known causes (wrong or revoked AWS credentials, the role lacks rds_iam, the IAM policy); fix the cause and connect again"),
            ),
            outcome: Outcome::Refused,
            reason: message,
        });
    }
    // Time in our own queue is not the server's: it has its own bound and
    // its own message (issue 24), and the upstream clock starts after it.
    let queued = Instant::now();
    if tokio::time::timeout(up.login_timeout, shared.limits.login_turn())
        .await
        .is_err()
    {
        let message = format!(
            "waited {}s in rdsiam's own queue for a login turn (--max-connection-rate) without reaching {}: the server was never contacted",
            queued.elapsed().as_secs(),
            up.at()
        );
        return Err(LoginError {
            reply: Reply::Built(
                ErrorReply::too_many_connections(format!("rdsiam proxy: {message}"))
                    .hint("too many logins at once for the rate cap: raise --max-connection-rate (RDS allows 200 IAM logins/s per instance) or --login-timeout, or open fewer connections at once"),
            ),
            outcome: Outcome::Failed,
            reason: message,
        });
    }
    let deadline = Instant::now() + up.failover_timeout;
    let mut backoff = BACKOFF_FIRST;
    let mut dropped_token = false;
    loop {
        let tried = Instant::now();
        match attempt(up, shared, params, user).await {
            Ok(ok) => {
                up.refusals.clear(user);
                lock(&up.credentials_refused).take();
                up.failover_over(shared, tried);
                return Ok(ok);
            }
            Err(Failed::Failover { why, error }) if up.writer_only => {
                up.failover_seen(shared, &why);
                if Instant::now() + backoff > deadline {
                    return Err(failover_fatal(up, &why));
                }
                shared.metrics.logins_retried.inc();
                shared.log.line(
                    "login-retry",
                    &[
                        ("target", Value::Str(&up.name)),
                        ("user", Value::Str(user)),
                        ("reason", Value::Str(&why)),
                        ("in", Value::Secs(backoff.as_secs_f64())),
                    ],
                );
                drop(error);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            Err(Failed::Failover { error, .. } | Failed::Other(error)) => return Err(error),
            Err(Failed::Refused(error)) if !dropped_token => {
                // A cached token can be refused after the credentials that
                // signed it were rotated or revoked: drop it, renew the
                // credentials from their source, and try once more fresh.
                dropped_token = true;
                up.tokens.forget(user).await;
                shared.metrics.tokens_dropped.inc();
                let renewed = up.resolved.aws.renew_now().await;
                shared.log.line(
                    "token-dropped",
                    &[
                        ("target", Value::Str(&up.name)),
                        ("user", Value::Str(user)),
                        ("reason", Value::Str(&error.reason)),
                        (
                            "credentials",
                            Value::Str(match &renewed {
                                Ok(true) => "renewed",
                                Ok(false) => "static",
                                Err(_) => "renewal-failed",
                            }),
                        ),
                    ],
                );
                if let Err(err) = renewed {
                    let failure = failure_of(err);
                    return Err(LoginError::from_failure(
                        &failure,
                        wire::sqlstate::INVALID_AUTHORIZATION,
                        Outcome::Refused,
                    ));
                }
            }
            Err(Failed::Refused(error)) => {
                up.refusals.note(user);
                if let Some(why) = credentials_rejected(up).await {
                    shared.log.line(
                        "credentials-refused",
                        &[("target", Value::Str(&up.name)), ("sts", Value::Str(&why))],
                    );
                    *lock(&up.credentials_refused) = Some(why);
                }
                return Err(error);
            }
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether STS says the AWS credentials themselves are wrong or revoked
/// (the cause of a refusal that is no role's or policy's fault). Best
/// effort: no answer within 5 s, or no SDK on this path, says nothing.
async fn credentials_rejected(up: &Upstream) -> Option<String> {
    use aws_sdk_sts::error::ProvideErrorMetadata;
    let sts = up.resolved.aws.sts().ok()?;
    let call = sts.get_caller_identity().send();
    let err = match tokio::time::timeout(Duration::from_secs(5), call).await {
        Ok(Err(err)) => err,
        _ => return None,
    };
    let code = err.as_service_error().and_then(|e| e.code())?.to_owned();
    matches!(
        code.as_str(),
        "InvalidClientTokenId"
            | "SignatureDoesNotMatch"
            | "ExpiredToken"
            | "UnrecognizedClientException"
    )
    .then(|| {
        format!("STS says the AWS credentials are wrong or revoked ({code}); fix or renew them")
    })
}

/// The FATAL a client gets when no writer answered within `--failover-timeout`.
fn failover_fatal(up: &Upstream, why: &str) -> LoginError {
    let message = format!(
        "no writer at {} for {}s: the cluster seems to be failing over (last attempt: {why})",
        up.at(),
        up.failover_timeout.as_secs()
    );
    LoginError {
        reply: Reply::Built(
            ErrorReply::upstream_failed(format!("rdsiam proxy: {message}"))
                .hint("connect again in a moment; an Aurora failover usually ends within a minute (`rdsiam list` shows the cluster's status); raise --failover-timeout to wait longer"),
        ),
        outcome: Outcome::Failed,
        reason: message,
    }
}

/// One login: TCP and TLS within `--connect-timeout`, the server's answer
/// within `--login-timeout`, each timeout saying which stage it was.
async fn attempt(
    up: &Upstream,
    shared: &Shared,
    params: &[(String, String)],
    user: &str,
) -> Result<(ServerStream, Vec<u8>), Failed> {
    let stage = AtomicU8::new(STAGE_TCP);
    let limit = up.connector.timeout + up.login_timeout;
    match tokio::time::timeout(limit, attempt_staged(up, shared, params, user, &stage)).await {
        Ok(result) => result,
        Err(_) => Err(Failed::Other(timed_out(up, stage.load(Ordering::SeqCst)))),
    }
}

fn timed_out(up: &Upstream, stage: u8) -> LoginError {
    let (message, hint) = match stage {
        STAGE_TCP => (
            format!(
                "timed out after {}s opening a TCP connection to {}",
                up.connector.timeout.as_secs(),
                up.at()
            ),
            crate::connect::TIMEOUT_HINT.to_owned(),
        ),
        STAGE_TLS => (
            format!(
                "timed out after {}s in the TLS handshake with {} (TCP worked)",
                up.connector.timeout.as_secs(),
                up.at()
            ),
            "something on the way accepts TCP but does not speak TLS: check that --port/--via point at the database".to_owned(),
        ),
        _ => (
            format!(
                "the server at {} did not answer the login within {}s (TCP and TLS worked)",
                up.at(),
                up.login_timeout.as_secs()
            ),
            "the network is fine: the server is slow to let this login in (busy, many logins at once, starting up); try again, or raise --login-timeout".to_owned(),
        ),
    };
    LoginError {
        reply: Reply::Built(
            ErrorReply::upstream_failed(format!("rdsiam proxy: {message}")).hint(hint),
        ),
        outcome: Outcome::Failed,
        reason: message,
    }
}

async fn attempt_staged(
    up: &Upstream,
    shared: &Shared,
    params: &[(String, String)],
    user: &str,
    stage: &AtomicU8,
) -> Result<(ServerStream, Vec<u8>), Failed> {
    let token = token_for(up, shared, user).await.map_err(|err| {
        Failed::Other(LoginError::from_failure(
            &failure_of(err),
            wire::sqlstate::CONNECTION_FAILURE,
            Outcome::Failed,
        ))
    })?;
    let connect_deadline = tokio::time::Instant::now() + up.connector.timeout;
    let mut server = match tokio::time::timeout_at(connect_deadline, connect_tls(up, stage)).await {
        Ok(Ok(server)) => server,
        // A refused or dropped connection is what a failover looks like.
        Ok(Err(failure)) => {
            return Err(Failed::Failover {
                why: failure.message.clone(),
                error: LoginError::network(failure),
            });
        }
        Err(_) => return Err(Failed::Other(timed_out(up, stage.load(Ordering::SeqCst)))),
    };
    stage.store(STAGE_ANSWER, Ordering::SeqCst);
    let answer = tokio::time::timeout(
        up.login_timeout,
        greeting(up, &mut server, params, user, &token),
    )
    .await
    .map_err(|_| Failed::Other(timed_out(up, STAGE_ANSWER)))??;
    if up.writer_only
        && let Some(why) = read_only(&mut server, &answer).await
    {
        // Not a writer: close it (Terminate) and let the caller retry.
        let _ = server.write_all(&[b'X', 0, 0, 0, 4]).await;
        let _ = server.shutdown().await;
        return Err(Failed::Failover {
            error: LoginError::network(Failure::network(format!(
                "{} is a read-only server: {why}",
                up.at()
            ))),
            why: format!("reached a read-only server ({why})"),
        });
    }
    Ok((server, answer))
}

/// Whether the session just opened is on a read-only server: from the
/// greeting's ParameterStatus (PostgreSQL 14+ reports `in_hot_standby`,
/// and `default_transaction_read_only`, at no extra round trip), else one
/// `SELECT pg_is_in_recovery()`. `Some(why)` when it is.
async fn read_only(server: &mut ServerStream, greeting: &[u8]) -> Option<String> {
    let mut reported = false;
    for (tag, body) in crate::frames::messages(greeting) {
        if tag != b'S' {
            continue;
        }
        let mut parts = body.split(|b| *b == 0);
        let (name, value) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        match (name, value) {
            (b"in_hot_standby", b"on") => return Some("in_hot_standby=on".into()),
            (b"default_transaction_read_only", b"on") => {
                return Some("default_transaction_read_only=on".into());
            }
            (b"in_hot_standby", _) => reported = true,
            _ => {}
        }
    }
    if reported {
        return None;
    }
    // An older server: ask once, before the client's first byte.
    let mut buf = BytesMut::new();
    frontend::query("SELECT pg_is_in_recovery()", &mut buf).ok()?;
    server.write_all(&buf).await.ok()?;
    server.flush().await.ok()?;
    let mut recovery = false;
    loop {
        let raw = wire::read_message(server, MAX_LOGIN_MESSAGE).await.ok()?;
        match Message::parse(&mut raw.clone()).ok()? {
            Some(Message::DataRow(row)) => {
                let mut ranges = row.ranges();
                if let Ok(Some(Some(range))) = ranges.next() {
                    recovery = row.buffer().get(range) == Some(b"t".as_slice());
                }
            }
            Some(Message::ReadyForQuery(_)) => break,
            _ => {}
        }
    }
    recovery.then(|| "pg_is_in_recovery() is true".into())
}

/// The startup message, the token, and the server's answer up to
/// ReadyForQuery (the greeting the client gets).
async fn greeting(
    up: &Upstream,
    server: &mut ServerStream,
    params: &[(String, String)],
    user: &str,
    token: &Token,
) -> Result<Vec<u8>, Failed> {
    // The connection ending during login is what a failover looks like.
    let io = |err: std::io::Error| {
        let why = format!("the connection to {} closed during login: {err}", up.at());
        Failed::Failover {
            error: LoginError::network(Failure::network(why.clone())),
            why,
        }
    };
    let startup = wire::startup_upstream(params).map_err(io)?;
    server.write_all(&startup).await.map_err(io)?;
    server.flush().await.map_err(io)?;

    let mut greeting = Vec::new();
    let mut authenticated = false;
    loop {
        let raw = wire::read_message(server, MAX_LOGIN_MESSAGE)
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
                        return Err(Failed::Other(LoginError::from_failure(
                            &failure,
                            wire::sqlstate::INVALID_AUTHORIZATION,
                            Outcome::Refused,
                        )));
                    }
                }
            }
            b'E' => return Err(refusal(up, user, raw)),
            b'Z' => {
                greeting.extend_from_slice(&raw);
                return Ok(greeting);
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

/// The server said no: an IAM refusal gets the known causes; a server
/// starting up or shutting down is a failover; anything else (no such
/// database, too many connections) is passed on as it is.
fn refusal(up: &Upstream, user: &str, raw: BytesMut) -> Failed {
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
    if code == wire::sqlstate::INVALID_PASSWORD || code == wire::sqlstate::INVALID_AUTHORIZATION {
        let base = format!("{message} (SQLSTATE {code})");
        let failure = crate::connect::login_refused(&up.resolved, user, &base);
        return Failed::Refused(LoginError::from_failure(&failure, &code, Outcome::Refused));
    }
    let error = LoginError {
        reply: Reply::Raw(raw.to_vec()),
        outcome: Outcome::Refused,
        reason: format!("{message} (SQLSTATE {code})"),
    };
    // 57P01-03: shutting down, starting up, in recovery; 08xxx: RDS Proxy
    // could not reach a database (it holds logins during a failover, then
    // gives up with one of these).
    if code.starts_with("57P") || code.starts_with("08") {
        return Failed::Failover {
            why: error.reason.clone(),
            error,
        };
    }
    Failed::Other(error)
}

/// TCP (to the endpoint or `--via`, the name resolved anew each time: no
/// address is kept, so a failover's DNS change is seen at the next login),
/// SSLRequest, and a verified TLS handshake: the one dialer's way.
async fn connect_tls(up: &Upstream, stage: &AtomicU8) -> Result<ServerStream, Failure> {
    let endpoint = &up.resolved.endpoint;
    let dialer = up.connector.dialer();
    let tcp = dialer.stream(&endpoint.host, endpoint.port).await?;
    stage.store(STAGE_TLS, Ordering::SeqCst);
    dialer
        .postgres_tls_on(tcp, &endpoint.host, endpoint.port)
        .await
}

/// Forward a client's CancelRequest over a new TLS connection; the server
/// answers nothing, so wait until it closes (or a short while).
pub async fn cancel(up: &Upstream, pid: i32, key: &[u8]) -> Result<(), Failure> {
    // The cancel path runs outside the client's start-up timeout, so the
    // SSL answer and the handshake are bounded here too: the whole forward
    // gets one --connect-timeout.
    let deadline = tokio::time::Instant::now() + up.connector.timeout;
    let mut server = tokio::time::timeout_at(deadline, connect_tls(up, &AtomicU8::new(0)))
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
