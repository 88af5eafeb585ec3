//! One MySQL client connection, start to end (issue 22): the proxy greets
//! the local client itself (plain, no password), reads its handshake, logs
//! in upstream over verified TLS with a token for the user (the client's
//! capabilities, character set, database and connection attributes
//! carried over), tells the client the server's OK, then relays bytes
//! until either side closes or the drain after SIGTERM runs out. The same
//! admission, limits, token cache, metrics and log lines as PostgreSQL's.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;

use super::admit::Who;
use super::conn::{STARTUP_DEADLINE, log_refused, shell_arg};
use super::log::Value;
use super::metrics::Outcome;
use super::{Shared, Upstream, upstream};
use crate::error::Kind;
use crate::mysql::wire::{self, Hello, Login, Stage};

/// The largest handshake response we read: user, database, attributes.
const MAX_HELLO: usize = 64 * 1024;

/// The error code for "the database could not be reached": clients take
/// codes in their own range (2000–2999) as a malformed packet, so a server
/// code, ProxySQL's for the same thing.
const UPSTREAM_FAILED: u16 = 9001;

/// What the greeting says before the server's own version is known.
const DEFAULT_VERSION: &str = "8.0.99-rdsiam-proxy";

/// An error the client sees as the server's, then the connection closes.
struct Refuse {
    code: u16,
    state: &'static str,
    message: String,
    outcome: Outcome,
}

impl Refuse {
    fn new(code: u16, state: &'static str, message: String, outcome: Outcome) -> Refuse {
        Refuse {
            code,
            state,
            message,
            outcome,
        }
    }
}

pub async fn handle<S>(
    mut client: S,
    peer: String,
    who: Who,
    up: Arc<Upstream>,
    shared: Arc<Shared>,
    pending: OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Who it is, before it is greeted: a refused client gets the error
    // where the greeting would be, as a server that won't admit a host does.
    let uid = match shared.admission.check(who).await {
        Ok(uid) => uid,
        Err(refusal) => {
            drop(pending);
            shared.metrics.refused(refusal.reason);
            shared.metrics.closed(Outcome::Rejected);
            log_refused(
                &shared,
                &peer,
                refusal.uid,
                refusal.reason,
                &refusal.reply.message,
            );
            let text = with_hint(&refusal.reply.message, refusal.reply.hint.as_deref());
            let err = wire::frame(0, &wire::error_payload(1130, "28000", &text));
            let _ = tokio::time::timeout(Duration::from_secs(2), client.write_all(&err)).await;
            return;
        }
    };

    let id = shared.next_id();
    let hello = tokio::time::timeout(STARTUP_DEADLINE, greet(&mut client, &up, id)).await;
    drop(pending);
    let hello = match hello {
        Ok(Ok(Some(hello))) => hello,
        Ok(Ok(None)) => {
            let text = "rdsiam proxy: the local hop is plain (no TLS, no password); connect without --ssl / with --ssl-mode=DISABLED or PREFERRED";
            shared.metrics.refused("bad_startup");
            shared.metrics.closed(Outcome::ClientError);
            log_refused(&shared, &peer, uid, "bad_startup", text);
            let _ = client
                .write_all(&wire::frame(2, &wire::error_payload(1045, "08004", text)))
                .await;
            return;
        }
        Ok(Err(err)) => {
            let text = format!("rdsiam proxy: {}", wire::describe(&err));
            shared.metrics.closed(Outcome::ClientError);
            if !matches!(err, wire::WireError::Io(_)) {
                shared.metrics.refused("bad_startup");
                log_refused(&shared, &peer, uid, "bad_startup", &text);
                let _ = client
                    .write_all(&wire::frame(2, &wire::error_payload(1043, "08S01", &text)))
                    .await;
            }
            return;
        }
        Err(_) => {
            shared.metrics.refused("startup_timeout");
            shared.metrics.closed(Outcome::ClientError);
            let text = format!(
                "rdsiam proxy: no handshake within {}s",
                STARTUP_DEADLINE.as_secs()
            );
            log_refused(&shared, &peer, uid, "startup_timeout", &text);
            return;
        }
    };
    // A slot only now: a client that never answers the greeting holds none.
    let permit = shared.limits.admit();
    let user = match (&up.pinned_user, hello.user.as_str()) {
        // Clients send the login name when told no user: the pinned one it is.
        (Some(pinned), _) => pinned.clone(),
        (None, user) => user.to_owned(),
    };
    let database = hello.db.clone().unwrap_or_default();
    shared.log.line(
        "open",
        &[
            ("conn", Value::Num(id)),
            ("client", Value::Str(&peer)),
            ("target", Value::Str(&up.name)),
            ("user", Value::Str(&user)),
            ("database", Value::Str(&database)),
        ],
    );
    shared.metrics.open.inc();
    let started = Instant::now();
    let (outcome, relayed, reason) =
        serve(&mut client, &hello, &user, &up, &shared, permit.is_some()).await;
    drop(permit);
    shared.metrics.open.dec();
    shared.metrics.closed(outcome);
    shared.metrics.relayed(relayed.0, relayed.1);
    let mut fields = vec![
        ("conn", Value::Num(id)),
        ("duration", Value::Secs(started.elapsed().as_secs_f64())),
        ("bytes_to_server", Value::Num(relayed.0)),
        ("bytes_to_client", Value::Num(relayed.1)),
        ("outcome", Value::Str(outcome.as_str())),
    ];
    if let Some(reason) = &reason {
        fields.push(("reason", Value::Str(reason)));
    }
    shared.log.line("close", &fields);
}

/// Greet the client and read its handshake response; `None` for an SSLRequest.
async fn greet<S>(client: &mut S, up: &Upstream, id: u64) -> Result<Option<Hello>, wire::WireError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let version = up
        .mysql_version
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_else(|| DEFAULT_VERSION.to_owned());
    let mut scramble = [0u8; 20];
    let random = rustls::crypto::aws_lc_rs::default_provider().secure_random;
    if random.fill(&mut scramble).is_err() {
        scramble = [b'r'; 20];
    }
    // Printable and NUL-free, as servers make them.
    for b in &mut scramble {
        *b = b'!' + (*b % 90);
    }
    let greeting = wire::client_greeting(&version, id as u32, &scramble);
    client.write_all(&wire::frame(0, &greeting)).await?;
    let (_, payload) = wire::read_packet(client, MAX_HELLO).await?;
    wire::parse_hello(&payload)
}

async fn serve<S>(
    client: &mut S,
    hello: &Hello,
    user: &str,
    up: &Upstream,
    shared: &Shared,
    admitted: bool,
) -> (Outcome, (u64, u64), Option<String>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let login_started = Instant::now();
    let session = match check(hello, user, up, shared, admitted) {
        Err(refuse) => Err(refuse),
        Ok(()) => tokio::select! {
            r = login(hello, user, up, shared) => r,
            () = shared.hard_stop.cancelled() => {
                return (Outcome::Shutdown, (0, 0), Some("the proxy is shutting down".into()));
            }
        },
    };
    let session = match session {
        Ok(session) => session,
        Err(refuse) => {
            let err = wire::error_payload(refuse.code, refuse.state, &refuse.message);
            let _ = client.write_all(&wire::frame(2, &err)).await;
            return (refuse.outcome, (0, 0), Some(refuse.message));
        }
    };
    *up.mysql_version.lock().unwrap_or_else(|e| e.into_inner()) =
        Some(session.greeting.version.clone());
    // The client's handshake was packet 1: the server's OK is packet 2.
    if client
        .write_all(&wire::frame(2, &session.ok))
        .await
        .is_err()
    {
        return (
            Outcome::ClientError,
            (0, 0),
            Some("the client went away during login".into()),
        );
    }
    shared
        .metrics
        .login_seconds
        .observe(login_started.elapsed().as_secs_f64());

    // After COM_QUIT servers just close (no TLS close_notify) and clients
    // may reset: a clean end all the same.
    let watched = QuitWatch {
        inner: client,
        quit: false,
    };
    let (outcome, reason, relayed) =
        super::conn::splice(watched, session.into_stream(), shared, |c| c.quit).await;
    (outcome, relayed, reason)
}

/// What the proxy itself refuses: over the connection cap, no user, another user.
fn check(
    hello: &Hello,
    user: &str,
    up: &Upstream,
    shared: &Shared,
    admitted: bool,
) -> Result<(), Refuse> {
    if !admitted {
        return Err(Refuse::new(
            1040,
            "08004",
            format!(
                "rdsiam proxy: too many connections: the limit is {} (--max-connections)",
                shared.limits.max_connections
            ),
            Outcome::Rejected,
        ));
    }
    if user.is_empty() {
        return Err(Refuse::new(
            1045,
            "28000",
            "rdsiam proxy: no user name in the handshake: connect with --user".into(),
            Outcome::Rejected,
        ));
    }
    // A client that names another user than the pinned one (not just the
    // login name it sends by default) is told, as PostgreSQL's is.
    if let Some(pinned) = &up.pinned_user
        && !hello.user.is_empty()
        && hello.user != *pinned
        && !is_login_name(&hello.user)
    {
        return Err(Refuse::new(
            1045,
            "28000",
            format!(
                "rdsiam proxy: this proxy logs in only as `{pinned}`, not `{}`: connect with --user {}",
                hello.user.escape_debug(),
                shell_arg(pinned)
            ),
            Outcome::Rejected,
        ));
    }
    Ok(())
}

/// The name a MySQL client sends when given none: the OS login name.
fn is_login_name(user: &str) -> bool {
    let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.name);
    let env = std::env::var("USER").ok();
    me.as_deref() == Some(user) || env.as_deref() == Some(user)
}

/// Upstream: the rate turn, then TCP, TLS and the login with a cached
/// token, within `--connect-timeout` + `--login-timeout`.
async fn login(
    hello: &Hello,
    user: &str,
    up: &Upstream,
    shared: &Shared,
) -> Result<wire::Session, Refuse> {
    shared.limits.login_turn().await;
    let token = upstream::token_for(up, shared, user).await.map_err(|err| {
        Refuse::new(
            1045,
            "28000",
            format!("rdsiam proxy: no IAM token: {}", one_line(&err)),
            Outcome::Failed,
        )
    })?;
    let how = Login {
        as_user: Some((user, token.value.expose())),
        client: Some((hello.caps & wire::PROXY_CAPS, hello.charset, &hello.attrs)),
    };
    let stage = Stage::default();
    stage.set("connecting to");
    let bound = up.connector.timeout + up.login_timeout;
    let attempt = wire::login(
        &up.connector,
        &up.resolved,
        hello.db.as_deref(),
        &how,
        stage.clone(),
    );
    match tokio::time::timeout(bound, attempt).await {
        Ok(Ok(session)) => Ok(session),
        Ok(Err(err)) => {
            let refused = err
                .downcast_ref::<crate::error::Failure>()
                .is_some_and(|f| f.kind == Kind::Login);
            if refused {
                shared.metrics.refused("login_refused");
            }
            let (code, state, outcome) = if refused {
                (1045, "28000", Outcome::Refused)
            } else {
                (UPSTREAM_FAILED, "HY000", Outcome::Failed)
            };
            Err(Refuse::new(
                code,
                state,
                format!("rdsiam proxy: {}", one_line(&err)),
                outcome,
            ))
        }
        Err(_) => Err(Refuse::new(
            UPSTREAM_FAILED,
            "HY000",
            format!(
                "rdsiam proxy: timed out after {}s {} {}:{}",
                bound.as_secs(),
                stage.get(),
                up.resolved.endpoint.host,
                up.resolved.endpoint.port
            ),
            Outcome::Failed,
        )),
    }
}

/// An error with its hint, on one line (a MySQL error has no hint field).
fn one_line(err: &anyhow::Error) -> String {
    match err.downcast_ref::<crate::error::Failure>() {
        Some(f) if f.hints.is_empty() => f.message.clone(),
        Some(f) => with_hint(&f.message, Some(&f.hints.join(" "))),
        None => format!("{err:#}"),
    }
}

fn with_hint(message: &str, hint: Option<&str>) -> String {
    match hint {
        Some(hint) => format!("{message} ({hint})"),
        None => message.to_owned(),
    }
}

/// The client's side of the relay, noticing a COM_QUIT (sequence 0,
/// command 0x01, alone in its packet) on its way to the server, or the
/// client closing its end: what the server does after that is no fault.
struct QuitWatch<S> {
    inner: S,
    quit: bool,
}

impl<S: AsyncRead + Unpin> AsyncRead for QuitWatch<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) {
            let read = &buf.filled()[before..];
            if read.is_empty() {
                // The client hung up (after COM_QUIT, or without one, as a
                // driver closing its socket at exit does): its end is clean.
                self.quit = true;
            } else {
                self.quit = read == [1, 0, 0, 0, 1];
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for QuitWatch<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
