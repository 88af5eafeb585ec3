//! Session pooling (`--pool`, issue 21): an upstream session whose client
//! ended cleanly is reset and kept for the next client with the same
//! target, user, database and startup parameters, saving a TCP + TLS + IAM
//! login (and a turn under RDS's limit on new IAM connections) per client.
//!
//! Session pooling only: a client owns its session from login to
//! disconnect, so every PostgreSQL feature works as without the pool. A
//! session goes back only when
//! - the client sent Terminate at a message boundary, with no query in
//!   flight and the server's last ReadyForQuery saying idle (`I`, not in a
//!   transaction), and
//! - `DISCARD ALL` then succeeded, still idle. DISCARD ALL is PostgreSQL's
//!   own "reset everything a session can set": it closes cursors, resets
//!   SET values and the role, deallocates prepared statements (also those
//!   made by the extended protocol), unlistens, releases advisory locks and
//!   drops temporary tables (pgbouncer's default `server_reset_query`). RDS
//!   Proxy accepts it like any statement.
//!
//! Anything else — a client that vanished, an open or failed transaction, a
//! reset that failed, a session past `--pool-max-lifetime` or idle past
//! `--pool-idle-timeout`, a server that sent anything while idle (a
//! termination, a failover's cut) — closes the session instead.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::upstream::ServerStream;
use super::wire::{self, MAX_LOGIN_MESSAGE};
use crate::frames::{self, Frame, Frames};

/// The pool's settings.
#[derive(Clone, Copy, Debug)]
pub struct PoolConfig {
    /// Idle sessions kept per (target, user, database, parameters).
    pub size: usize,
    pub idle_timeout: Duration,
    /// From the session's login: under the 15 minutes of the token it
    /// logged in with, so no session outlives what a fresh login would get.
    pub max_lifetime: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            size: 20,
            idle_timeout: Duration::from_secs(60),
            max_lifetime: Duration::from_secs(600),
        }
    }
}

/// What decides which sessions a client may take: a session's defaults
/// (what RESET ALL goes back to) come from its startup parameters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    target: String,
    user: String,
    database: String,
    /// Sorted; `application_name` left out (set per client instead).
    params: Vec<(String, String)>,
}

impl Key {
    pub fn new(target: &str, user: &str, database: &str, params: &[(String, String)]) -> Key {
        let mut params: Vec<(String, String)> = params
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "user" | "database" | "application_name"))
            .cloned()
            .collect();
        params.sort();
        Key {
            target: target.to_owned(),
            user: user.to_owned(),
            database: database.to_owned(),
            params,
        }
    }
}

/// An upstream session with what its client must be told about it.
pub struct Session {
    pub server: ServerStream,
    /// ParameterStatus values, as the server last reported them.
    status: Vec<(String, String)>,
    /// BackendKeyData: pid and secret key.
    backend: Option<(i32, Vec<u8>)>,
    born: Instant,
    /// Bytes of a server message the relay consumed only in part.
    pub(crate) unread: usize,
}

impl Session {
    /// A session just logged in, from its greeting (AuthenticationOk …
    /// ReadyForQuery).
    pub fn new(server: ServerStream, greeting: &[u8]) -> Session {
        let mut status = Vec::new();
        let mut backend = None;
        for (tag, body) in frames::messages(greeting) {
            match tag {
                b'S' => {
                    if let Some((name, value)) = parameter_status(body) {
                        set(&mut status, name, value);
                    }
                }
                b'K' if body.len() >= 4 => {
                    let pid = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                    backend = Some((pid, body[4..].to_vec()));
                }
                _ => {}
            }
        }
        Session {
            server,
            status,
            backend,
            born: Instant::now(),
            unread: 0,
        }
    }

    /// The greeting a new client of this reused session gets: the session's
    /// own parameters and cancel key, as if it had just logged in.
    pub fn greeting(&self) -> Vec<u8> {
        let mut out = BytesMut::new();
        // AuthenticationOk.
        out.extend_from_slice(&[b'R', 0, 0, 0, 8, 0, 0, 0, 0]);
        for (name, value) in &self.status {
            let len = 4 + name.len() + 1 + value.len() + 1;
            out.extend_from_slice(b"S");
            out.extend_from_slice(&(len as i32).to_be_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&[0]);
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(&[0]);
        }
        if let Some((pid, key)) = &self.backend {
            out.extend_from_slice(b"K");
            out.extend_from_slice(&((8 + key.len()) as i32).to_be_bytes());
            out.extend_from_slice(&pid.to_be_bytes());
            out.extend_from_slice(key);
        }
        out.extend_from_slice(&[b'Z', 0, 0, 0, 5, b'I']);
        out.to_vec()
    }

    fn status(&self, name: &str) -> Option<&str> {
        self.status
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Runs `sql` (a simple query) and reads to its ReadyForQuery: `Ok`
    /// only when no error came and the session is idle again.
    async fn simple(&mut self, sql: &str, limit: Duration) -> std::io::Result<()> {
        let run = async {
            // What the relay left of a message the server was sending.
            let mut skip = std::mem::take(&mut self.unread);
            let mut sink = [0u8; 1024];
            while skip > 0 {
                let n = self.server.read(&mut sink[..skip.min(1024)]).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                skip -= n;
            }
            let mut buf = BytesMut::new();
            frontend::query(sql, &mut buf)?;
            self.server.write_all(&buf).await?;
            self.server.flush().await?;
            let mut failed = false;
            loop {
                let msg = wire::read_message(&mut self.server, MAX_LOGIN_MESSAGE).await?;
                match msg[0] {
                    b'E' => failed = true,
                    b'S' => {
                        if let Some((name, value)) = parameter_status(&msg[5..]) {
                            set(&mut self.status, name, value);
                        }
                    }
                    b'Z' => {
                        return if failed || msg.get(5) != Some(&b'I') {
                            Err(std::io::Error::other(format!(
                                "`{sql}` did not leave the session idle"
                            )))
                        } else {
                            Ok(())
                        };
                    }
                    _ => {}
                }
            }
        };
        tokio::time::timeout(limit, run)
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
    }
}

/// How long a reset or a SET for a new client may take.
const RESET_TIMEOUT: Duration = Duration::from_secs(5);

struct Idle {
    session: Session,
    since: Instant,
}

/// Idle sessions by key.
pub struct Pool {
    pub config: PoolConfig,
    idle: Mutex<HashMap<Key, Vec<Idle>>>,
}

impl Pool {
    pub fn new(config: PoolConfig) -> Pool {
        Pool {
            config,
            idle: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Vec<Idle>>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn usable(&self, idle: &Idle, now: Instant) -> bool {
        now.duration_since(idle.session.born) < self.config.max_lifetime
            && now.duration_since(idle.since) < self.config.idle_timeout
    }

    /// An idle session for `key`, ready for a client whose application name
    /// is `app`; `None` when there is none that is still sound.
    pub async fn take(&self, key: &Key, app: &str) -> Option<Session> {
        loop {
            let idle = {
                let mut map = self.lock();
                let list = map.get_mut(key)?;
                let now = Instant::now();
                list.retain(|idle| self.usable(idle, now));
                let idle = list.pop();
                if list.is_empty() {
                    map.remove(key);
                }
                idle?
            };
            let mut session = idle.session;
            // Anything the server sent while the session sat idle (a
            // FATAL from pg_terminate_backend, a failover's cut, EOF) means
            // it is not the session it was.
            if quiet(&mut session.server).await
                && (session.status("application_name") == Some(app)
                    || session
                        .simple(
                            &format!(
                                "SET application_name = {}",
                                crate::output::quote_literal(app)
                            ),
                            RESET_TIMEOUT,
                        )
                        .await
                        .is_ok())
            {
                return Some(session);
            }
        }
    }

    /// Reset `session` and keep it, or close it; `true` when kept.
    pub async fn give_back(&self, key: Key, mut session: Session) -> bool {
        if Instant::now().duration_since(session.born) >= self.config.max_lifetime {
            return false;
        }
        if session.simple("DISCARD ALL", RESET_TIMEOUT).await.is_err() {
            return false;
        }
        let mut map = self.lock();
        let list = map.entry(key).or_default();
        if list.len() >= self.config.size {
            return false;
        }
        list.push(Idle {
            session,
            since: Instant::now(),
        });
        true
    }

    /// Closes idle sessions past their idle timeout or lifetime; the number
    /// still idle.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut map = self.lock();
        map.retain(|_, list| {
            list.retain(|idle| self.usable(idle, now));
            !list.is_empty()
        });
        map.values().map(Vec::len).sum()
    }

    /// Sessions idle now.
    pub fn idle(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    /// Every idle session closed (the drain).
    pub fn clear(&self) {
        self.lock().clear();
    }
}

fn lock(framer: &Mutex<Framer>) -> std::sync::MutexGuard<'_, Framer> {
    framer.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether nothing is waiting to be read (no message, no EOF).
async fn quiet(server: &mut ServerStream) -> bool {
    let mut probe = [0u8; 1];
    // Polled once: a read that is not ready at once means nothing came.
    tokio::time::timeout(Duration::ZERO, server.read(&mut probe))
        .await
        .is_err()
}

fn set(status: &mut Vec<(String, String)>, name: String, value: String) {
    match status.iter_mut().find(|(k, _)| *k == name) {
        Some(slot) => slot.1 = value,
        None => status.push((name, value)),
    }
}

fn parameter_status(body: &[u8]) -> Option<(String, String)> {
    let mut parts = body.split(|b| *b == 0);
    let name = String::from_utf8(parts.next()?.to_vec()).ok()?;
    let value = String::from_utf8(parts.next()?.to_vec()).ok()?;
    Some((name, value))
}

/// The relay's view of the server's stream: where its messages are, and
/// the first body byte of the current one (ReadyForQuery's status).
#[derive(Default)]
struct Framer {
    frames: Frames,
    first_body: Option<u8>,
}

/// What the relay learned of the session.
#[derive(Default)]
pub struct Track {
    /// Queries and Syncs sent whose ReadyForQuery hasn't come back.
    pending: AtomicU64,
    /// Extended-protocol messages sent since the last Sync: the server may
    /// hold an implicit transaction that a reset would commit.
    unsynced: AtomicU8,
    /// The last ReadyForQuery's status.
    status: AtomicU8,
    /// Bytes each way.
    pub to_server: AtomicU64,
    pub to_client: AtomicU64,
}

/// How a tracked relay ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// The client sent Terminate (not forwarded).
    Terminate,
    /// The client closed without Terminate.
    ClientClosed,
    /// The server closed.
    ServerClosed,
}

impl Track {
    /// Whether the session can be reset for another client.
    pub fn clean(&self, end: &End) -> bool {
        *end == End::Terminate
            && self.pending.load(Relaxed) == 0
            && self.unsynced.load(Relaxed) == 0
            && self.status.load(Relaxed) == b'I'
    }
}

/// Relays until either side ends, watching message boundaries: on the
/// client's Terminate it stops without forwarding it. `session.unread`
/// says how much of a server message was left unrelayed.
pub async fn relay<C>(
    client: &mut C,
    session: &mut Session,
    track: &Track,
    buffer: usize,
) -> std::io::Result<End>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    track.status.store(b'I', Relaxed);
    // Shared by both directions' futures in this one task: never contended.
    let from_server = Mutex::new(Framer::default());
    let end = {
        let (mut client_read, mut client_write) = tokio::io::split(client);
        let (mut server_read, mut server_write) = tokio::io::split(&mut session.server);
        let to_server = async {
            let mut framer = Frames::default();
            let mut buf = vec![0u8; buffer];
            loop {
                let n = client_read.read(&mut buf).await?;
                if n == 0 {
                    return Ok::<End, std::io::Error>(End::ClientClosed);
                }
                let (forward, terminated) = client_bytes(&mut framer, &buf[..n], track);
                server_write.write_all(&buf[..forward]).await?;
                server_write.flush().await?;
                track.to_server.fetch_add(forward as u64, Relaxed);
                if terminated {
                    return Ok(End::Terminate);
                }
            }
        };
        let to_client = async {
            let mut buf = vec![0u8; buffer];
            loop {
                let n = server_read.read(&mut buf).await?;
                if n == 0 {
                    return Ok::<End, std::io::Error>(End::ServerClosed);
                }
                server_bytes(&mut lock(&from_server), &buf[..n], track);
                client_write.write_all(&buf[..n]).await?;
                client_write.flush().await?;
                track.to_client.fetch_add(n as u64, Relaxed);
            }
        };
        tokio::select! {
            r = to_server => r,
            r = to_client => r,
        }
    };
    let framer = from_server.into_inner().unwrap_or_else(|e| e.into_inner());
    session.unread = framer.frames.unread();
    // A header cut in two can't be skipped by count: not reusable.
    if framer.frames.mid_header() {
        track.status.store(b'?', Relaxed);
    }
    end
}

/// Walks client bytes: counts Query/Sync/FunctionCall; stops at Terminate.
/// Returns how many bytes to forward and whether Terminate was found.
fn client_bytes(frames: &mut Frames, bytes: &[u8], track: &Track) -> (usize, bool) {
    let mut terminated = false;
    let forward = frames.feed(bytes, |frame| {
        if let Frame::Begin(tag) = frame {
            match tag {
                b'X' => {
                    terminated = true;
                    return ControlFlow::Break(());
                }
                b'Q' | b'F' => {
                    track.pending.fetch_add(1, Relaxed);
                }
                b'S' => {
                    track.pending.fetch_add(1, Relaxed);
                    track.unsynced.store(0, Relaxed);
                }
                b'P' | b'B' | b'E' | b'D' | b'C' | b'H' => track.unsynced.store(1, Relaxed),
                _ => {}
            }
        }
        ControlFlow::Continue(())
    });
    (forward, terminated)
}

/// Walks server bytes: each ReadyForQuery's status.
fn server_bytes(f: &mut Framer, bytes: &[u8], track: &Track) {
    let Framer { frames, first_body } = f;
    frames.feed(bytes, |frame| {
        match frame {
            Frame::Begin(_) => *first_body = None,
            Frame::Body(part) if first_body.is_none() => *first_body = part.first().copied(),
            Frame::Body(_) => {}
            Frame::End(b'Z') => {
                track.status.store(first_body.unwrap_or(b'?'), Relaxed);
                let _ = track
                    .pending
                    .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
            }
            Frame::End(_) => {}
        }
        ControlFlow::Continue(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn client_terminate_is_found_at_a_boundary_only_and_queries_counted() {
        let track = Track::default();
        let mut f = Frames::default();
        // A query whose text holds an `X`, split mid-header, then Terminate.
        let mut bytes = msg(b'Q', b"select 'X'\0");
        bytes.extend(msg(b'X', b""));
        let (a, b) = bytes.split_at(3);
        assert_eq!(client_bytes(&mut f, a, &track), (3, false));
        let (forward, terminated) = client_bytes(&mut f, b, &track);
        assert!(terminated);
        assert_eq!(3 + forward, bytes.len() - 5);
        assert_eq!(track.pending.load(Relaxed), 1);
    }

    #[test]
    fn an_unsynced_extended_query_is_not_a_clean_end() {
        let track = Track::default();
        track.status.store(b'I', Relaxed);
        let mut f = Frames::default();
        // Parse, Bind, Execute without Sync, then Terminate.
        let mut bytes = msg(b'P', b"\0select 1\0\0\0");
        bytes.extend(msg(b'B', b"\0\0\0\0\0\0\0\0"));
        bytes.extend(msg(b'E', b"\0\0\0\0\0"));
        bytes.extend(msg(b'X', b""));
        let (_, terminated) = client_bytes(&mut f, &bytes, &track);
        assert!(terminated);
        assert!(!track.clean(&End::Terminate));
        // With its Sync answered, it is.
        let track = Track::default();
        let mut f = Frames::default();
        let mut bytes = msg(b'P', b"\0select 1\0\0\0");
        bytes.extend(msg(b'S', b""));
        client_bytes(&mut f, &bytes, &track);
        server_bytes(&mut Framer::default(), &msg(b'Z', b"I"), &track);
        assert!(track.clean(&End::Terminate));
    }

    #[test]
    fn ready_for_query_status_is_read_across_splits() {
        let track = Track::default();
        track.pending.store(1, Relaxed);
        let mut f = Framer::default();
        let mut bytes = msg(b'C', b"SELECT 1\0");
        bytes.extend(msg(b'Z', b"T"));
        for byte in &bytes {
            server_bytes(&mut f, std::slice::from_ref(byte), &track);
        }
        assert_eq!(track.status.load(Relaxed), b'T');
        assert_eq!(track.pending.load(Relaxed), 0);
        assert!(!track.clean(&End::Terminate));
        server_bytes(&mut f, &msg(b'Z', b"I"), &track);
        assert!(track.clean(&End::Terminate));
        assert!(!track.clean(&End::ClientClosed));
    }

    #[test]
    fn keys_ignore_the_application_name_and_parameter_order() {
        let a = Key::new(
            "t",
            "u",
            "d",
            &[
                ("application_name".into(), "a".into()),
                ("DateStyle".into(), "ISO".into()),
                ("TimeZone".into(), "UTC".into()),
            ],
        );
        let b = Key::new(
            "t",
            "u",
            "d",
            &[
                ("TimeZone".into(), "UTC".into()),
                ("DateStyle".into(), "ISO".into()),
            ],
        );
        assert_eq!(a, b);
        assert_ne!(a, Key::new("t", "u", "other", &[]));
    }
}
