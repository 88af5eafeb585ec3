//! One client connection, start to end: the plain local handshake (`N` to
//! SSLRequest and GSSENCRequest), a CancelRequest forwarded or a
//! StartupMessage checked (connection limit, pinned user, parameters RDS
//! Proxy refuses), the upstream login, then the splice until either side
//! closes or the drain after SIGTERM runs out. One log line when it opens,
//! one when it closes.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;

use super::admit::{Refusal, Who};
use super::log::Value;
use super::metrics::Outcome;
use super::pool::{self, Key, Pool, Session, Track};
use super::upstream::{self, LoginError, Reply};
use super::wire::{self, ErrorReply, First, Startup};
use super::{Shared, Upstream};
use crate::endpoint::EndpointKind;

/// How long a client may take to send its startup packet (PostgreSQL's
/// `authentication_timeout` is 60 s, but it has no slot to protect: a
/// client here says its user in its first packet or not at all).
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(10);

/// Relay buffer per direction. Small enough that an idle connection stays
/// well under 64 KiB with TLS state, large enough for full-speed COPY.
pub(super) const RELAY_BUFFER: usize = 8 * 1024;

/// The answer when too many clients have yet to send a startup packet.
pub fn too_many_pending() -> ErrorReply {
    ErrorReply::too_many_connections(format!(
        "rdsiam proxy: too many connections: {} are still to send their startup packet",
        super::MAX_PENDING
    ))
    .hint("try again in a few seconds")
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
    // Who it is, before a byte of the startup is read.
    let uid = match shared.admission.check(who).await {
        Ok(uid) => uid,
        Err(refusal) => {
            drop(pending);
            return refuse_peer(client, &peer, refusal, &shared).await;
        }
    };

    let negotiated = tokio::time::timeout(STARTUP_DEADLINE, negotiate(&mut client)).await;
    drop(pending);
    let startup = match negotiated {
        Ok(Ok(Some(Negotiated::Startup(startup)))) => startup,
        Ok(Ok(Some(Negotiated::Cancel { pid, key }))) => {
            return cancel(pid, &key, uid, who, &peer, &up, &shared).await;
        }
        Ok(Ok(Some(Negotiated::Refused(reply)))) => {
            shared.metrics.refused("bad_startup");
            shared.metrics.closed(Outcome::ClientError);
            log_refused(&shared, &peer, uid, "bad_startup", &reply.message);
            let _ = send(&mut client, &reply.encode()).await;
            return;
        }
        Err(_) => {
            let reply = ErrorReply::protocol_violation(format!(
                "rdsiam proxy: no startup packet within {}s",
                STARTUP_DEADLINE.as_secs()
            ));
            shared.metrics.refused("startup_timeout");
            shared.metrics.closed(Outcome::ClientError);
            log_refused(&shared, &peer, uid, "startup_timeout", &reply.message);
            let _ =
                tokio::time::timeout(Duration::from_secs(1), send(&mut client, &reply.encode()))
                    .await;
            return;
        }
        // The client hung up or broke the connection before saying who it is.
        Ok(Ok(None)) | Ok(Err(_)) => {
            shared.metrics.closed(Outcome::ClientError);
            return;
        }
    };
    // A slot only now: a client that never says who it is holds none.
    let permit = shared.limits.admit();

    let id = shared.next_id();
    let user = startup.get("user").unwrap_or_default().to_owned();
    let database = startup.get("database").unwrap_or(&user).to_owned();
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
    let (outcome, relayed, reason) = serve(
        &mut client,
        &startup,
        &user,
        uid,
        &up,
        &shared,
        permit.is_some(),
    )
    .await;
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

/// A client the admission check turned away: a log line, a count, and,
/// so that psql shows why, its encryption requests answered and the FATAL
/// sent once its startup packet is in (contents unread), all bounded.
async fn refuse_peer<S>(mut client: S, peer: &str, refusal: Refusal, shared: &Shared)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    shared.metrics.refused(refusal.reason);
    shared.metrics.closed(Outcome::Rejected);
    log_refused(
        shared,
        peer,
        refusal.uid,
        refusal.reason,
        &refusal.reply.message,
    );
    let Ok(_slot) = shared.refusing.clone().try_acquire_owned() else {
        return;
    };
    let tell = async {
        if let Ok(Some(_)) = negotiate(&mut client).await {
            let _ = send(&mut client, &refusal.reply.encode()).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), tell).await;
}

pub(super) fn log_refused(
    shared: &Shared,
    peer: &str,
    uid: Option<u32>,
    reason: &str,
    message: &str,
) {
    let mut fields = vec![("client", Value::Str(peer))];
    if let Some(uid) = uid {
        fields.push(("uid", Value::Num(u64::from(uid))));
    }
    fields.push(("reason", Value::Str(reason)));
    let message = message.strip_prefix("rdsiam proxy: ").unwrap_or(message);
    fields.push(("error", Value::Str(message)));
    shared.log.line("refused", &fields);
}

/// A CancelRequest: forwarded only when it names one of our sessions, is
/// sent by that session's account, and fits the peer's cancel rate, the
/// connection cap and the login rate, like any other upstream dial.
async fn cancel(
    pid: i32,
    key: &[u8],
    uid: Option<u32>,
    who: Who,
    peer: &str,
    up: &Upstream,
    shared: &Shared,
) {
    let peer_id = match (uid, who) {
        (Some(uid), _) => format!("uid:{uid}"),
        (None, Who::Tcp { peer, .. }) => format!("ip:{}", peer.ip()),
        (None, Who::Unix(_)) => "unix".to_owned(),
    };
    let allowed = shared.cancels.allow(pid, key, uid, &peer_id);
    let permit = if allowed.is_ok() {
        shared.limits.admit()
    } else {
        None
    };
    let verdict = match (allowed, &permit) {
        (Err(dropped), _) => Err(dropped),
        (Ok(()), None) => Err(("cancel_max_connections", "the connection limit is reached")),
        (Ok(()), Some(_)) => Ok(()),
    };
    let result = match verdict {
        Err((reason, why)) => {
            shared.metrics.refused(reason);
            Err(format!("dropped, not sent: {why}"))
        }
        Ok(()) => {
            shared.limits.login_turn().await;
            upstream::cancel(up, pid, key).await.map_err(|f| f.message)
        }
    };
    drop(permit);
    shared.metrics.closed(Outcome::Cancel);
    let mut fields = vec![
        ("client", Value::Str(peer)),
        ("target", Value::Str(&up.name)),
    ];
    if let Err(reason) = &result {
        fields.push(("error", Value::Str(reason)));
    }
    shared.log.line("cancel", &fields);
}

enum Negotiated {
    Startup(Startup),
    Cancel { pid: i32, key: Vec<u8> },
    Refused(ErrorReply),
}

/// Answer encryption requests with `N` (the local hop is plain; libpq's
/// `sslmode=prefer` then goes on in plain) until the real first packet.
async fn negotiate<S>(client: &mut S) -> std::io::Result<Option<Negotiated>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    for _ in 0..3 {
        let first = match wire::read_first(client).await {
            Ok(first) => first,
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(err) => return Err(err),
        };
        match first {
            Ok(First::Ssl | First::GssEnc) => send(client, b"N").await?,
            Ok(First::Cancel { pid, key }) => return Ok(Some(Negotiated::Cancel { pid, key })),
            Ok(First::Startup(startup)) => return Ok(Some(Negotiated::Startup(startup))),
            Err(bad) => {
                return Ok(Some(Negotiated::Refused(ErrorReply::protocol_violation(
                    format!("rdsiam proxy: {}", bad.0),
                ))));
            }
        }
    }
    Ok(Some(Negotiated::Refused(ErrorReply::protocol_violation(
        "rdsiam proxy: too many encryption requests",
    ))))
}

async fn send<S: AsyncWrite + Unpin>(client: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    client.write_all(bytes).await?;
    client.flush().await
}

/// Everything after the startup packet; returns the outcome, the bytes
/// relayed each way (to server, to client) and a reason for the log.
async fn serve<S>(
    client: &mut S,
    startup: &Startup,
    user: &str,
    uid: Option<u32>,
    up: &Upstream,
    shared: &Shared,
    admitted: bool,
) -> (Outcome, (u64, u64), Option<String>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if let Some(reply) = check(startup, user, up, shared, admitted) {
        let reason = reply.message.clone();
        let _ = send(client, &reply.encode()).await;
        return (Outcome::Rejected, (0, 0), Some(reason));
    }
    // `_pq_.` options are protocol extensions we don't speak: say so, as a
    // server would, and speak 3.0 upstream without them.
    let (extensions, params): (Vec<_>, Vec<_>) = startup
        .params
        .iter()
        .cloned()
        .partition(|(k, _)| k.starts_with("_pq_."));
    let login_started = Instant::now();
    let database = startup.get("database").unwrap_or(user);
    let app = startup.get("application_name").unwrap_or("");
    let kept = match pooled_key(&shared.pool, up, user, database, &params) {
        Some((pool, key)) => {
            let kept = pool.take(&key, app).await;
            shared.metrics.pool.idle.set(pool.idle() as i64);
            kept
        }
        None => None,
    };
    let (mut session, greeting) = match kept {
        Some(session) => {
            shared.metrics.pool.reuses.inc();
            let greeting = session.greeting();
            (session, greeting)
        }
        None => {
            // upstream::login bounds its own stages (queue, TCP, TLS, answer, failover).
            let login = tokio::select! {
                r = upstream::login(up, shared, &params, user) => r,
                () = shared.hard_stop.cancelled() => {
                    return (Outcome::Shutdown, (0, 0), Some("the proxy is shutting down".into()));
                }
            };
            match login {
                Ok((server, greeting)) => (Session::new(server, &greeting), greeting),
                Err(LoginError {
                    reply,
                    outcome,
                    reason,
                }) => {
                    let bytes = match reply {
                        Reply::Built(reply) => reply.encode(),
                        Reply::Raw(bytes) => bytes,
                    };
                    let _ = send(client, &bytes).await;
                    return (outcome, (0, 0), Some(reason));
                }
            }
        }
    };
    let mut hello = Vec::with_capacity(greeting.len() + 32);
    if startup.minor > 0 || !extensions.is_empty() {
        let names: Vec<&str> = extensions.iter().map(|(k, _)| k.as_str()).collect();
        hello.extend_from_slice(&wire::negotiate_protocol(&names));
    }
    hello.extend_from_slice(&greeting);
    drop(greeting);
    if send(client, &hello).await.is_err() {
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

    // The session's cancel key, so a CancelRequest for it can be told from a guess.
    let key = wire::backend_key(&hello);
    if let Some((pid, key)) = &key {
        shared.cancels.register(*pid, key.clone(), uid);
    }
    drop(hello);

    let (outcome, reason, relayed) = match pooled_key(&shared.pool, up, user, database, &params) {
        Some((pool, pool_key)) => relay_pooled(client, session, pool, pool_key, shared).await,
        None => relay_plain(client, &mut session, shared).await,
    };
    if let Some((pid, key)) = key {
        shared.cancels.forget(pid, key);
    }
    (outcome, relayed, reason)
}

/// Pooled: a relay that sees message boundaries, then the session reset
/// and kept, or closed. (outcome, reason, bytes to server and to client)
async fn relay_pooled<S>(
    client: &mut S,
    mut session: Session,
    pool: &Pool,
    pool_key: Key,
    shared: &Shared,
) -> (Outcome, Option<String>, (u64, u64))
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    shared.metrics.pool.in_use.inc();
    let track = Track::default();
    let relay = pool::relay(client, &mut session, &track, RELAY_BUFFER);
    let (outcome, reason, end) = tokio::select! {
        r = relay => match r {
            Ok(end) => (Outcome::Ok, None, Some(end)),
            Err(err) => (Outcome::Broken, Some(err.to_string()), None),
        },
        () = shared.hard_stop.cancelled() => {
            (Outcome::Shutdown, Some("closed at the end of the drain".into()), None)
        }
    };
    shared.metrics.pool.in_use.dec();
    let relayed = (
        track.to_server.load(std::sync::atomic::Ordering::Relaxed),
        track.to_client.load(std::sync::atomic::Ordering::Relaxed),
    );
    if let Some(end) = end
        && track.clean(&end)
        && !shared.stop.is_cancelled()
    {
        if !pool.give_back(pool_key, session).await {
            shared.metrics.pool.resets_failed.inc();
        }
        shared.metrics.pool.idle.set(pool.idle() as i64);
    }
    (outcome, reason, relayed)
}

/// Unpooled: the two streams spliced until either side ends.
async fn relay_plain<S>(
    client: &mut S,
    session: &mut Session,
    shared: &Shared,
) -> (Outcome, Option<String>, (u64, u64))
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    splice(client, &mut session.server, shared, |_| false).await
}

/// Copy both ways until either side ends or the drain runs out, counting
/// bytes as they go (so a relay that breaks still reports what it moved).
/// `clean_end` says whether an error still ends the session cleanly (a
/// MySQL client after COM_QUIT). (outcome, reason, bytes to server and to
/// client)
pub(super) async fn splice<C, S>(
    client: C,
    server: S,
    shared: &Shared,
    clean_end: impl Fn(&C) -> bool,
) -> (Outcome, Option<String>, (u64, u64))
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut client = Counted::new(client);
    let mut server = Counted::new(server);
    let relay = tokio::io::copy_bidirectional_with_sizes(
        &mut client,
        &mut server,
        RELAY_BUFFER,
        RELAY_BUFFER,
    );
    let (outcome, reason) = tokio::select! {
        r = relay => match r {
            Ok(_) => (Outcome::Ok, None),
            Err(_) if clean_end(client.inner()) => (Outcome::Ok, None),
            // One side went away abruptly: over either way, but not a clean end.
            Err(err) => (Outcome::Broken, Some(err.to_string())),
        },
        () = shared.hard_stop.cancelled() => {
            (Outcome::Shutdown, Some("closed at the end of the drain".into()))
        }
    };
    (outcome, reason, (server.written, client.written))
}

/// The pool and this client's key in it, when pooling is on.
fn pooled_key<'a>(
    pool: &'a Option<Pool>,
    up: &Upstream,
    user: &str,
    database: &str,
    params: &[(String, String)],
) -> Option<(&'a Pool, Key)> {
    pool.as_ref()
        .map(|pool| (pool, Key::new(&up.name, user, database, params)))
}

/// A stream that counts the bytes written to it.
pub(super) struct Counted<S> {
    inner: S,
    pub(super) written: u64,
}

impl<S> Counted<S> {
    pub(super) fn new(inner: S) -> Counted<S> {
        Counted { inner, written: 0 }
    }

    pub(super) fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &polled {
            self.written += *n as u64;
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// `value` as one shell word: bare when that is safe, else single-quoted.
pub(super) fn shell_arg(value: &str) -> String {
    if !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@' | '+' | '/'))
    {
        value.to_owned()
    } else {
        crate::output::shell_quote(value)
    }
}

/// The proxy's own refusals, before any upstream work.
fn check(
    startup: &Startup,
    user: &str,
    up: &Upstream,
    shared: &Shared,
    admitted: bool,
) -> Option<ErrorReply> {
    if !admitted {
        let max = shared.limits.max_connections;
        return Some(
            ErrorReply::too_many_connections(format!(
                "rdsiam proxy: too many connections: the limit is {max} (--max-connections)"
            ))
            .hint("close idle clients, or restart the proxy with a higher --max-connections"),
        );
    }
    if user.is_empty() {
        return Some(ErrorReply::not_admitted(
            "rdsiam proxy: no PostgreSQL user name specified in startup packet",
        ));
    }
    // PostgreSQL cuts longer names to 63 bytes, so the token (signed for the
    // whole name) would meet another user and fail as a PAM error (issue 24).
    for (what, name) in [
        ("user", user),
        ("database", startup.get("database").unwrap_or(user)),
    ] {
        if name.len() > 63 {
            return Some(
                ErrorReply::fatal(
                    wire::sqlstate::NAME_TOO_LONG,
                    format!(
                        "rdsiam proxy: the {what} name is {} bytes long; PostgreSQL names are at most 63 bytes",
                        name.len()
                    ),
                )
                .hint(format!("connect with a {what} name of at most 63 bytes")),
            );
        }
    }
    if let Some(pinned) = &up.pinned_user
        && pinned != user
    {
        // The user name is the client's text: quoted for a shell, never raw.
        let (shown, sh) = (user.escape_debug(), shell_arg(pinned));
        let hint = if shared.admission.admission().private {
            format!(
                "connect with user={pinned} (psql -U {sh}): `rdsiam run` logs in only as its target's user"
            )
        } else {
            format!(
                "connect with user={pinned} (psql -U {sh}), or start another proxy with --user {}",
                shell_arg(user)
            )
        };
        return Some(
            ErrorReply::not_admitted(format!(
                "rdsiam proxy: this proxy logs in only as `{pinned}`, not `{shown}`"
            ))
            .hint(hint),
        );
    }
    // A replication connection is a walsender, not a session the proxy can
    // vouch for; PostgreSQL takes true/on/yes/1 and `database`.
    if let Some(replication) = startup.get("replication")
        && !matches!(
            replication.to_ascii_lowercase().as_str(),
            "false" | "off" | "no" | "0"
        )
    {
        return Some(
            ErrorReply::not_supported("rdsiam proxy: replication connections are not relayed (the startup packet asks for replication)",
            )
            .hint("connect without replication=…; for logical replication use a direct connection with its own credentials"),
        );
    }
    if up.resolved.endpoint.kind == EndpointKind::Proxy
        && startup.get("options").is_some_and(|o| !o.trim().is_empty())
    {
        return Some(
            ErrorReply::not_supported("rdsiam proxy: RDS Proxy refuses the `options` startup parameter (PGOPTIONS, or options=… in the connection string)",
            )
            .hint("unset PGOPTIONS and run SET … after connecting, or have an admin run ALTER ROLE … SET …"),
        );
    }
    None
}
