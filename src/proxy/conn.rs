//! One client connection, start to end: the plain local handshake (`N` to
//! SSLRequest and GSSENCRequest), a CancelRequest forwarded or a
//! StartupMessage checked (connection limit, pinned user, parameters RDS
//! Proxy refuses), the upstream login, then the splice until either side
//! closes or the drain after SIGTERM runs out. One log line when it opens,
//! one when it closes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::OwnedSemaphorePermit;

use super::log::Value;
use super::metrics::Outcome;
use super::upstream::{self, LoginError, Reply};
use super::wire::{self, ErrorReply, First, Startup};
use super::{Shared, Upstream};
use crate::endpoint::EndpointKind;

/// How long a client may take to send its startup packet.
const CLIENT_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Relay buffer per direction. Small enough that an idle connection stays
/// well under 64 KiB with TLS state, large enough for full-speed COPY.
const RELAY_BUFFER: usize = 8 * 1024;

pub async fn handle<S>(
    mut client: S,
    peer: String,
    up: Arc<Upstream>,
    shared: Arc<Shared>,
    permit: Option<OwnedSemaphorePermit>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let startup = match tokio::time::timeout(CLIENT_STARTUP_TIMEOUT, negotiate(&mut client)).await {
        Ok(Ok(Some(Negotiated::Startup(startup)))) => startup,
        Ok(Ok(Some(Negotiated::Cancel { pid, key }))) => {
            let result = upstream::cancel(&up, pid, &key).await;
            shared.metrics.closed(Outcome::Cancel);
            let mut fields = vec![
                ("client", Value::Str(&peer)),
                ("target", Value::Str(&up.name)),
            ];
            let reason;
            if let Err(failure) = &result {
                reason = failure.message.clone();
                fields.push(("error", Value::Str(&reason)));
            }
            shared.log.line("cancel", &fields);
            return;
        }
        Ok(Ok(Some(Negotiated::Refused(reply)))) => {
            let _ = send(&mut client, &reply.encode()).await;
            shared.metrics.closed(Outcome::ClientError);
            return;
        }
        // The client hung up, stalled or broke the protocol before saying who it is.
        Ok(Ok(None)) | Ok(Err(_)) | Err(_) => {
            shared.metrics.closed(Outcome::ClientError);
            return;
        }
    };

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
    let (outcome, relayed, reason) =
        serve(&mut client, &startup, &user, &up, &shared, permit.is_some()).await;
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
                return Ok(Some(Negotiated::Refused(ErrorReply::fatal(
                    "08P01",
                    format!("rdsiam proxy: {}", bad.0),
                ))));
            }
        }
    }
    Ok(Some(Negotiated::Refused(ErrorReply::fatal(
        "08P01",
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
    // upstream::login bounds its own stages (queue, TCP, TLS, answer, failover).
    let login = tokio::select! {
        r = upstream::login(up, shared, &params, user) => r,
        () = shared.hard_stop.cancelled() => {
            return (Outcome::Shutdown, (0, 0), Some("the proxy is shutting down".into()));
        }
    };
    let (mut server, greeting) = match login {
        Ok(ok) => ok,
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
    drop(hello);
    shared
        .metrics
        .login_seconds
        .observe(login_started.elapsed().as_secs_f64());

    let relay =
        tokio::io::copy_bidirectional_with_sizes(client, &mut server, RELAY_BUFFER, RELAY_BUFFER);
    tokio::select! {
        r = relay => match r {
            Ok(counts) => (Outcome::Ok, counts, None),
            // One side went away abruptly: over either way, but not a clean end.
            Err(err) => (Outcome::Broken, (0, 0), Some(err.to_string())),
        },
        () = shared.hard_stop.cancelled() => {
            (Outcome::Shutdown, (0, 0), Some("closed at the end of the drain".into()))
        }
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
            ErrorReply::fatal(
                "53300",
                format!(
                    "rdsiam proxy: too many connections: the limit is {max} (--max-connections)"
                ),
            )
            .hint("close idle clients, or restart the proxy with a higher --max-connections"),
        );
    }
    if user.is_empty() {
        return Some(ErrorReply::fatal(
            "28000",
            "rdsiam proxy: no PostgreSQL user name specified in startup packet",
        ));
    }
    if let Some(pinned) = &up.pinned_user
        && pinned != user
    {
        return Some(
            ErrorReply::fatal(
                "28000",
                format!("rdsiam proxy: this proxy logs in only as `{pinned}`, not `{user}`"),
            )
            .hint(format!(
                "connect with user={pinned} (psql -U {pinned}), or start another proxy with --user {user}"
            )),
        );
    }
    if up.resolved.endpoint.kind == EndpointKind::Proxy
        && startup.get("options").is_some_and(|o| !o.trim().is_empty())
    {
        return Some(
            ErrorReply::fatal(
                "0A000",
                "rdsiam proxy: RDS Proxy refuses the `options` startup parameter (PGOPTIONS, or options=… in the connection string)",
            )
            .hint("unset PGOPTIONS and run SET … after connecting, or have an admin run ALTER ROLE … SET …"),
        );
    }
    None
}
