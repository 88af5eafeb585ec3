//! Who may use a proxy (issue 20): whoever connects logs in as the proxy's
//! owner, so by default only the owner's uid is admitted. A unix socket
//! peer is known from its credentials (SO_PEERCRED); a loopback TCP peer
//! from the kernel's socket table, which names the uid that owns the
//! client's end of the connection (/proc/net/tcp and tcp6).
//!
//! The kernel is asked first for the one socket by its address pair
//! (sock_diag netlink, `sockdiag.rs`): a hash look-up. Reading the text
//! tables walks every socket on the host (~20 ms of kernel time with 2,000
//! of them, and a connect-heavy client leaves thousands in TIME_WAIT), so
//! they are only the fallback: where netlink is not allowed, or the client's
//! socket is of the other family (IPv4 through an IPv6 socket). Checks run
//! on a thread of their own, and clients arriving together share one read.
//!
//! Root is not admitted unless it is the owner or named: root can read the
//! owner's credentials anyway, but a root daemon tricked into connecting
//! (a confused deputy) is what this check exists to stop; `--allow-user
//! root` says it on purpose.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::wire::ErrorReply;

/// The kernel's TCP socket tables.
const TABLES: [&str; 2] = ["/proc/net/tcp", "/proc/net/tcp6"];

/// Who is admitted.
#[derive(Clone, Debug)]
pub struct Admission {
    owner: u32,
    allowed: Vec<u32>,
    any: bool,
    /// Why TCP peers can't be known (no socket tables), when they can't.
    tables: Option<String>,
    /// `rdsiam run`: one private proxy, its hints don't talk about flags.
    pub private: bool,
}

/// What is known about a connecting client.
#[derive(Clone, Copy, Debug)]
pub enum Who {
    /// Our end's address and the client's.
    Tcp { local: SocketAddr, peer: SocketAddr },
    /// The peer's uid from SO_PEERCRED, if the kernel said.
    Unix(Option<u32>),
}

/// A refused client: the reason label for /metrics, its uid when known,
/// what it is told and a line for the log.
#[derive(Debug)]
pub struct Refusal {
    pub reason: &'static str,
    pub uid: Option<u32>,
    pub reply: ErrorReply,
}

impl Admission {
    /// Only the account running us (`rdsiam run`, and the default).
    pub fn owner_only() -> Admission {
        Admission::new(Vec::new(), false)
    }

    /// The owner plus `allowed`, or everyone when `any`.
    pub fn new(allowed: Vec<u32>, any: bool) -> Admission {
        Admission {
            owner: nix::unistd::geteuid().as_raw(),
            allowed,
            any,
            tables: tables_unreadable(),
            private: false,
        }
    }

    /// Everyone may connect.
    pub fn any(&self) -> bool {
        self.any
    }

    /// Why TCP clients will be refused whatever their uid, if they will be.
    pub fn tcp_blind(&self) -> Option<&str> {
        if self.any {
            return None;
        }
        self.tables.as_deref()
    }

    /// Admit or refuse; Ok carries the peer's uid when it was looked up.
    /// Reads the kernel's tables for TCP: call it off the runtime.
    pub fn check(&self, who: Who) -> Result<Option<u32>, Refusal> {
        self.check_with(who, &mut Tables::default())
    }

    /// [`Admission::check`] with tables read at most once for many checks.
    fn check_with(&self, who: Who, tables: &mut Tables) -> Result<Option<u32>, Refusal> {
        if self.any {
            return Ok(match who {
                Who::Unix(uid) => uid,
                Who::Tcp { .. } => None,
            });
        }
        let uid = match who {
            Who::Unix(Some(uid)) => uid,
            Who::Unix(None) => {
                return Err(
                    self.unknown("the kernel did not say who is on the other end of the socket")
                );
            }
            Who::Tcp { .. } if self.tables.is_some() => {
                let why = self.tables.clone().unwrap_or_default();
                return Err(self.unknown(&why));
            }
            Who::Tcp { local, peer } => match tables.owner(local, peer) {
                Ok(Some(uid)) => uid,
                Ok(None) => {
                    return Err(self.unknown(&format!(
                        "{peer} is not in the kernel's socket table (the client went away, or it is not on this machine)"
                    )));
                }
                Err(err) => return Err(self.unknown(&err)),
            },
        };
        if uid == self.owner || self.allowed.contains(&uid) {
            return Ok(Some(uid));
        }
        Err(self.refuse(uid))
    }

    fn refuse(&self, uid: u32) -> Refusal {
        let name = user_name(uid);
        let shown = |uid: u32, name: &Option<String>| match name {
            Some(name) => format!("uid {uid} ({name})"),
            None => format!("uid {uid}"),
        };
        let owner = shown(self.owner, &user_name(self.owner));
        let reply = if self.private {
            ErrorReply::not_admitted(format!(
                    "rdsiam proxy: {} may not use this connection: `rdsiam run` admits only {owner}, who started it",
                    shown(uid, &name)
                ),
            )
            .hint("run the command as the account that runs `rdsiam run`")
        } else {
            let flag = name.clone().unwrap_or_else(|| uid.to_string());
            ErrorReply::not_admitted(format!(
                    "rdsiam proxy: {} may not use this proxy: it admits only its owner, {owner}",
                    shown(uid, &name)
                ),
            )
            .hint(format!(
                "whoever connects logs in as the proxy's owner; to share it on purpose, the owner restarts it with --allow-user {} (or --allow-any-local-user for every local account)",
                crate::output::shell_quote(&flag)
            ))
        };
        Refusal {
            reason: "uid",
            uid: Some(uid),
            reply,
        }
    }

    fn unknown(&self, why: &str) -> Refusal {
        let hint = if self.private {
            String::new()
        } else {
            "connect through the proxy's unix socket (--unix-socket DIR), or restart the proxy with --allow-any-local-user to admit every local account".to_owned()
        };
        Refusal {
            reason: "uid_unknown",
            uid: None,
            reply: ErrorReply::not_admitted(format!(
                    "rdsiam proxy: the account behind this connection can't be known, so it is refused: {why}"
                ),
            )
            .hint(hint),
        }
    }
}

/// A user name from the password database, for messages.
fn user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// `NAME` or `UID` from `--allow-user`, as a uid.
pub fn resolve_user(value: &str) -> Result<u32, String> {
    if let Ok(uid) = value.parse::<u32>() {
        return Ok(uid);
    }
    match nix::unistd::User::from_name(value) {
        Ok(Some(user)) => Ok(user.uid.as_raw()),
        Ok(None) => Err(format!("--allow-user: no account is named `{value}`")),
        Err(err) => Err(format!("--allow-user `{value}`: {err}")),
    }
}

/// Why the socket tables can't be read, or None when they can.
fn tables_unreadable() -> Option<String> {
    match std::fs::read_to_string(TABLES[0]) {
        Ok(text) if text.starts_with("  sl") => None,
        Ok(_) => Some(format!("{} is not the kernel's socket table", TABLES[0])),
        Err(err) => Some(format!("{} can't be read ({err})", TABLES[0])),
    }
}

/// The kernel's TCP tables, each read when first needed and kept for a
/// batch of checks: a read walks every socket of the host (about 20 ms
/// with 2,000 sockets here), so the IPv6 table is read only when the
/// IPv4 one doesn't have the peer.
#[derive(Default)]
struct Tables {
    read: [Option<Result<String, String>>; 2],
}

impl Tables {
    /// The uid owning the client's end of the TCP connection `peer` → `local`.
    fn owner(&mut self, local: SocketAddr, peer: SocketAddr) -> Result<Option<u32>, String> {
        let (local, peer) = (canonical(local), canonical(peer));
        // The client's end: its own address is `peer`, its remote `local`.
        #[cfg(target_os = "linux")]
        if let Ok(Some(uid)) = super::sockdiag::owner(peer, local) {
            return Ok(Some(uid));
        }
        for (i, table) in TABLES.iter().enumerate() {
            let text = self.read[i].get_or_insert_with(|| match std::fs::read_to_string(table) {
                Ok(text) => Ok(text),
                // No IPv6 in this kernel: only tcp is there.
                Err(err) if err.kind() == std::io::ErrorKind::NotFound && i > 0 => {
                    Ok(String::new())
                }
                Err(err) => Err(format!("{table} can't be read ({err})")),
            });
            let text = text.as_ref().map_err(Clone::clone)?;
            if let Some(uid) = find_owner(text, local, peer) {
                return Ok(Some(uid));
            }
        }
        Ok(None)
    }
}

/// One job for the checker thread: who, and where to send the verdict.
type Job = (
    Who,
    tokio::sync::oneshot::Sender<Result<Option<u32>, Refusal>>,
);

/// Checks run on one thread of their own, off the runtime (the tables and
/// the password database are file reads), each batch of waiting clients
/// served by one read of the tables: a crowd of 300 costs a few reads, not
/// 300 threads.
pub struct Checker {
    admission: Arc<Admission>,
    jobs: std::sync::Mutex<Option<std::sync::mpsc::Sender<Job>>>,
}

impl Checker {
    pub fn new(admission: Admission) -> Checker {
        Checker {
            admission: Arc::new(admission),
            jobs: std::sync::Mutex::new(None),
        }
    }

    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    pub async fn check(&self, who: Who) -> Result<Option<u32>, Refusal> {
        if self.admission.any {
            return self.admission.check(who);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = match self.jobs.lock() {
            Ok(mut jobs) => {
                let jobs = jobs.get_or_insert_with(|| self.start());
                jobs.send((who, tx)).is_ok()
            }
            Err(_) => false,
        };
        let verdict = if sent { rx.await.ok() } else { None };
        verdict.unwrap_or_else(|| Err(self.admission.unknown("the admission check is not running")))
    }

    fn start(&self) -> std::sync::mpsc::Sender<Job> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let admission = self.admission.clone();
        // The thread ends when the proxy (the sender) is gone.
        let _ = std::thread::Builder::new()
            .name("rdsiam-admit".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut tables = Tables::default();
                    let mut batch = vec![first];
                    batch.extend(rx.try_iter());
                    for (who, reply) in batch {
                        let _ = reply.send(admission.check_with(who, &mut tables));
                    }
                }
            });
        tx
    }
}

/// In one table, the socket whose own address is `peer` and whose remote is
/// `local`: the client's end. Sockets no process holds (inode 0: closed,
/// TIME_WAIT) name no owner and are skipped.
fn find_owner(table: &str, local: SocketAddr, peer: SocketAddr) -> Option<u32> {
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 10 {
            continue;
        }
        let (Some(own), Some(remote)) = (parse_addr(fields[1]), parse_addr(fields[2])) else {
            continue;
        };
        if own != peer || remote != local || fields[9] == "0" {
            continue;
        }
        return fields[7].parse().ok();
    }
    None
}

/// `0100007F:1538` (IPv4) or 32 hex digits and a port (IPv6): each 32-bit
/// word is printed as the host-order number the kernel stores.
fn parse_addr(text: &str) -> Option<SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        Some(
            u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16)
                .ok()?
                .to_ne_bytes(),
        )
    };
    let ip = match addr.len() {
        8 => IpAddr::from(word(0)?),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::from(bytes)
        }
        _ => return None,
    };
    Some(canonical(SocketAddr::new(ip, port)))
}

/// IPv4-mapped IPv6 (a dual-stack listener's view) as plain IPv4.
fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), addr.port()),
            None => addr,
        },
        IpAddr::V4(_) => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_clients_end_from_the_table() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 100 1 0 100 0 0 10 0
   1: 0100007F:1538 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 101 1 0 20 4 30 10 -1
   2: 0100007F:D431 0100007F:1538 01 00000000:00000000 00:00000000 00000000 65534        0 102 1 0 20 4 30 10 -1
   3: 0100007F:D432 0100007F:1538 06 00000000:00000000 03:00000000 00000000     0        0 0 3 0
";
        let local: SocketAddr = "127.0.0.1:5432".parse().unwrap();
        let peer: SocketAddr = "127.0.0.1:54321".parse().unwrap();
        // Not our own end (uid 0, local 5432), the client's: 65534.
        assert_eq!(find_owner(v4, local, peer), Some(65534));
        // A TIME_WAIT socket names nobody.
        let gone: SocketAddr = "127.0.0.1:54322".parse().unwrap();
        assert_eq!(find_owner(v4, local, gone), None);
        let v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:D431 00000000000000000000000001000000:1538 01 00000000:00000000 00:00000000 00000000  1000        0 200 1 0 20 4 30 10 -1
   1: 0000000000000000FFFF00000100007F:D433 0000000000000000FFFF00000100007F:1538 01 00000000:00000000 00:00000000 00000000  1001        0 201 1 0 20 4 30 10 -1
";
        let local6: SocketAddr = "[::1]:5432".parse().unwrap();
        let peer6: SocketAddr = "[::1]:54321".parse().unwrap();
        assert_eq!(find_owner(v6, local6, peer6), Some(1000));
        // A dual-stack listener sees ::ffff:127.0.0.1; the table may too.
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:54323".parse().unwrap();
        assert_eq!(
            find_owner(v6, canonical(local), canonical(mapped)),
            Some(1001)
        );
    }

    #[test]
    fn finds_a_real_connection_of_ours() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, peer) = listener.accept().unwrap();
        let owner = Tables::default()
            .owner(server.local_addr().unwrap(), peer)
            .unwrap();
        assert_eq!(owner, Some(nix::unistd::geteuid().as_raw()));
        drop(client);
    }

    #[test]
    fn only_the_owner_and_the_named_are_admitted() {
        let me = nix::unistd::geteuid().as_raw();
        let other = if me == 65534 { 65533 } else { 65534 };
        let only = Admission::owner_only();
        assert_eq!(only.check(Who::Unix(Some(me))).unwrap(), Some(me));
        let refused = only.check(Who::Unix(Some(other))).unwrap_err();
        assert_eq!((refused.reason, refused.uid), ("uid", Some(other)));
        assert_eq!(refused.reply.code, "28000");
        assert!(refused.reply.message.contains(&format!("uid {other}")));
        assert!(refused.reply.hint.unwrap().contains("--allow-user"));
        assert!(only.check(Who::Unix(None)).is_err());
        let named = Admission::new(vec![other], false);
        assert!(named.check(Who::Unix(Some(other))).is_ok());
        let any = Admission::new(Vec::new(), true);
        assert!(any.check(Who::Unix(Some(other))).is_ok());
        assert!(
            any.check(Who::Tcp {
                local: "10.0.0.1:5432".parse().unwrap(),
                peer: "10.0.0.2:40000".parse().unwrap()
            })
            .is_ok()
        );
        assert_eq!(resolve_user("12345"), Ok(12345));
        assert_eq!(resolve_user("root"), Ok(0));
        assert!(resolve_user("no-such-account-here").is_err());
    }
}
