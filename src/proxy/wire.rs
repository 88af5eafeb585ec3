//! The few PostgreSQL wire messages the proxy handles itself: the client's
//! first packet (SSLRequest, GSSENCRequest, CancelRequest, StartupMessage),
//! the messages it answers with (`N`, ErrorResponse, NegotiateProtocolVersion),
//! and bounded reads of the server's typed messages during login.
//!
//! `postgres-protocol` writes what a client sends upstream (startup,
//! password, SSL and cancel requests) and parses what the server answers; it
//! has no server-side half, so the answers to the client are framed here.

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// PostgreSQL's own cap on a startup packet (`MAX_STARTUP_PACKET_LENGTH`).
pub const MAX_STARTUP: usize = 10_000;
/// The cap on one server message during login (ParameterStatus, errors).
pub const MAX_LOGIN_MESSAGE: usize = 64 * 1024;

pub const SSL_REQUEST: i32 = 80_877_103;
pub const GSSENC_REQUEST: i32 = 80_877_104;
pub const CANCEL_REQUEST: i32 = 80_877_102;
const PROTOCOL_3_0: i32 = 0x0003_0000;

/// The client's first packet.
#[derive(Debug, PartialEq, Eq)]
pub enum First {
    Ssl,
    GssEnc,
    Cancel { pid: i32, key: Vec<u8> },
    Startup(Startup),
}

/// A v3 StartupMessage: the requested minor version and its parameters.
#[derive(Debug, PartialEq, Eq)]
pub struct Startup {
    pub minor: u16,
    pub params: Vec<(String, String)>,
}

impl Startup {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a client's first packet was refused (shown to the client as 08P01).
#[derive(Debug, PartialEq, Eq)]
pub struct BadPacket(pub String);

/// Read one length-prefixed packet without a type byte.
pub async fn read_first<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> std::io::Result<Result<First, BadPacket>> {
    let mut head = [0u8; 4];
    stream.read_exact(&mut head).await?;
    // A TLS record (handshake, 0x16 0x03): a client that goes on with TLS
    // after our `N`, or one that starts with it (sslnegotiation=direct).
    if head[0] == 0x16 && head[1] == 0x03 {
        return Ok(Err(BadPacket(
            "the client sent a TLS handshake, but the hop to the proxy is plain: connect with sslmode=disable (or prefer)".into(),
        )));
    }
    let len = i32::from_be_bytes(head);
    if !(8..=MAX_STARTUP as i32).contains(&len) {
        return Ok(Err(BadPacket(format!(
            "invalid startup packet length {len} (a startup packet is 8 to {MAX_STARTUP} bytes)"
        ))));
    }
    let mut body = vec![0; len as usize - 4];
    stream.read_exact(&mut body).await?;
    Ok(parse_first(&body))
}

fn parse_first(body: &[u8]) -> Result<First, BadPacket> {
    let code = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    let rest = &body[4..];
    match code {
        SSL_REQUEST => Ok(First::Ssl),
        GSSENC_REQUEST => Ok(First::GssEnc),
        CANCEL_REQUEST if rest.len() >= 8 && rest.len() <= 260 => Ok(First::Cancel {
            pid: i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]),
            key: rest[4..].to_vec(),
        }),
        CANCEL_REQUEST => Err(BadPacket(format!(
            "invalid CancelRequest: {} bytes of key data (a key is 4 to 256 bytes)",
            rest.len().saturating_sub(4)
        ))),
        code if code >> 16 == 3 => {
            let bad = || BadPacket("invalid startup packet layout".into());
            let mut params = Vec::new();
            let mut rest = rest;
            // key\0value\0 … \0: every string terminated, an empty key last.
            let mut cstr = || -> Result<String, BadPacket> {
                let end = rest.iter().position(|b| *b == 0).ok_or_else(bad)?;
                let text = String::from_utf8(rest[..end].to_vec())
                    .map_err(|_| BadPacket("startup parameters must be UTF-8".into()))?;
                rest = &rest[end + 1..];
                Ok(text)
            };
            loop {
                let key = cstr()?;
                if key.is_empty() {
                    break;
                }
                // PostgreSQL keeps the last of a repeated key, a reader of
                // the first would log and check another user or database.
                if params.iter().any(|(k, _)| *k == key) {
                    return Err(BadPacket(format!(
                        "the startup packet names `{}` twice",
                        key.escape_debug()
                    )));
                }
                params.push((key, cstr()?));
            }
            Ok(First::Startup(Startup {
                minor: (code & 0xffff) as u16,
                params,
            }))
        }
        code => Err(BadPacket(format!(
            "unsupported frontend protocol {}.{}: the proxy speaks 3.x",
            code >> 16,
            code & 0xffff
        ))),
    }
}

/// The SQLSTATEs the proxy answers with itself.
pub mod sqlstate {
    pub const INVALID_AUTHORIZATION: &str = "28000";
    pub const INVALID_PASSWORD: &str = "28P01";
    pub const TOO_MANY_CONNECTIONS: &str = "53300";
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    pub const CONNECTION_FAILURE: &str = "08006";
    pub const NAME_TOO_LONG: &str = "42622";
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
}

/// An ErrorResponse as PostgreSQL frames it.
#[derive(Clone, Debug)]
pub struct ErrorReply {
    pub severity: &'static str,
    pub code: String,
    pub message: String,
    pub hint: Option<String>,
}

impl ErrorReply {
    pub fn fatal(code: &str, message: impl Into<String>) -> ErrorReply {
        ErrorReply {
            severity: "FATAL",
            code: code.to_owned(),
            message: message.into(),
            hint: None,
        }
    }

    /// No slot for this client (53300, as PostgreSQL says it).
    pub fn too_many_connections(message: impl Into<String>) -> ErrorReply {
        ErrorReply::fatal(sqlstate::TOO_MANY_CONNECTIONS, message)
    }

    /// The client broke the protocol (08P01).
    pub fn protocol_violation(message: impl Into<String>) -> ErrorReply {
        ErrorReply::fatal(sqlstate::PROTOCOL_VIOLATION, message)
    }

    /// Not admitted: another account, another user than the pinned one,
    /// no user at all (28000).
    pub fn not_admitted(message: impl Into<String>) -> ErrorReply {
        ErrorReply::fatal(sqlstate::INVALID_AUTHORIZATION, message)
    }

    /// Something the proxy does not relay (0A000).
    pub fn not_supported(message: impl Into<String>) -> ErrorReply {
        ErrorReply::fatal(sqlstate::FEATURE_NOT_SUPPORTED, message)
    }

    /// The upstream could not be reached or logged in to (08006).
    pub fn upstream_failed(message: impl Into<String>) -> ErrorReply {
        ErrorReply::fatal(sqlstate::CONNECTION_FAILURE, message)
    }

    pub fn hint(mut self, hint: impl Into<String>) -> ErrorReply {
        let hint = hint.into();
        if !hint.is_empty() {
            self.hint = Some(hint);
        }
        self
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut body = BytesMut::new();
        for (field, value) in [
            (b'S', Some(self.severity)),
            (b'V', Some(self.severity)),
            (b'C', Some(self.code.as_str())),
            (b'M', Some(self.message.as_str())),
            (b'H', self.hint.as_deref()),
        ] {
            if let Some(value) = value {
                body.put_u8(field);
                body.put_slice(&value.replace('\0', " ").into_bytes());
                body.put_u8(0);
            }
        }
        body.put_u8(0);
        frame(b'E', &body)
    }
}

/// NegotiateProtocolVersion: we speak 3.0 and none of the `_pq_.` options.
pub fn negotiate_protocol(unrecognized: &[&str]) -> Vec<u8> {
    let mut body = BytesMut::new();
    body.put_i32(0);
    body.put_i32(unrecognized.len() as i32);
    for name in unrecognized {
        body.put_slice(name.as_bytes());
        body.put_u8(0);
    }
    frame(b'v', &body)
}

fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(tag);
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// The StartupMessage to send upstream (protocol 3.0, the client's parameters).
pub fn startup_upstream(params: &[(String, String)]) -> std::io::Result<BytesMut> {
    let mut buf = BytesMut::new();
    postgres_protocol::message::frontend::startup_message(
        params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &mut buf,
    )?;
    Ok(buf)
}

/// A CancelRequest with the client's key data, for the upstream hop.
pub fn cancel_upstream(pid: i32, key: &[u8]) -> Vec<u8> {
    if let Ok(secret) = <[u8; 4]>::try_from(key) {
        let mut buf = BytesMut::new();
        postgres_protocol::message::frontend::cancel_request(
            pid,
            i32::from_be_bytes(secret),
            &mut buf,
        );
        return buf.to_vec();
    }
    // A 3.2 client's longer key: the same layout, framed as it came.
    let mut out = Vec::with_capacity(12 + key.len());
    out.extend_from_slice(&((12 + key.len()) as i32).to_be_bytes());
    out.extend_from_slice(&CANCEL_REQUEST.to_be_bytes());
    out.extend_from_slice(&pid.to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// One typed server message, whole (tag, length and body), at most `limit` bytes.
pub async fn read_message<S: AsyncRead + Unpin>(
    stream: &mut S,
    limit: usize,
) -> std::io::Result<BytesMut> {
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).await?;
    let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    if len < 4 || len as usize > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "the server sent a {}-byte `{}` message during login; the limit is {limit}",
                len,
                head[0].escape_ascii()
            ),
        ));
    }
    let mut msg = BytesMut::with_capacity(len as usize + 1);
    msg.put_slice(&head);
    msg.resize(len as usize + 1, 0);
    stream.read_exact(&mut msg[5..]).await?;
    Ok(msg)
}

/// The BackendKeyData (pid, secret key) among whole server messages: the
/// key a cancel for this session must carry.
pub fn backend_key(messages: &[u8]) -> Option<(i32, Vec<u8>)> {
    let (_, body) =
        crate::frames::messages(messages).find(|(tag, body)| *tag == b'K' && body.len() >= 4)?;
    let pid = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    Some((pid, body[4..].to_vec()))
}

/// The protocol 3.0 code, for tests and the upstream startup.
pub const fn protocol_3_0() -> i32 {
    PROTOCOL_3_0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(code: i32, rest: &[u8]) -> Vec<u8> {
        let mut out = ((rest.len() + 8) as i32).to_be_bytes().to_vec();
        out.extend_from_slice(&code.to_be_bytes());
        out.extend_from_slice(rest);
        out
    }

    async fn first(bytes: Vec<u8>) -> Result<First, BadPacket> {
        read_first(&mut bytes.as_slice()).await.unwrap()
    }

    #[tokio::test]
    async fn reads_each_kind_of_first_packet() {
        assert_eq!(first(packet(SSL_REQUEST, b"")).await, Ok(First::Ssl));
        assert_eq!(first(packet(GSSENC_REQUEST, b"")).await, Ok(First::GssEnc));
        let mut cancel = 42i32.to_be_bytes().to_vec();
        cancel.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(
            first(packet(CANCEL_REQUEST, &cancel)).await,
            Ok(First::Cancel {
                pid: 42,
                key: vec![1, 2, 3, 4]
            })
        );
        assert_eq!(
            cancel_upstream(42, &[1, 2, 3, 4]),
            packet(CANCEL_REQUEST, &cancel)
        );
        let startup = first(packet(
            protocol_3_0() | 2,
            b"user\0iamuserapp\0database\0app\0\0",
        ))
        .await
        .unwrap();
        let First::Startup(s) = startup else {
            panic!("not a startup")
        };
        assert_eq!(s.minor, 2);
        assert_eq!(s.get("user"), Some("iamuserapp"));
        assert_eq!(s.get("database"), Some("app"));
    }

    #[tokio::test]
    async fn refuses_bad_packets() {
        assert!(first(packet(1234, b"")).await.is_err());
        assert!(first(packet(protocol_3_0(), b"user\0")).await.is_err());
        let huge = (MAX_STARTUP as i32 + 1).to_be_bytes().to_vec();
        assert!(first(huge).await.is_err());
    }

    #[tokio::test]
    async fn names_what_is_wrong_with_odd_first_packets() {
        // A CancelRequest with too little key data is a CancelRequest, not "protocol 1234.5678".
        let short = first(packet(CANCEL_REQUEST, &42i32.to_be_bytes())).await;
        let Err(BadPacket(why)) = short else {
            panic!("{short:?}")
        };
        assert!(why.contains("CancelRequest"), "{why}");
        // Every repeated key is refused: PostgreSQL would take the last one.
        for body in [
            &b"user\0a\0user\0b\0\0"[..],
            b"user\0a\0database\0x\0database\0postgres\0\0",
            b"user\0a\0application_name\0x\0application_name\0y\0\0",
        ] {
            let dup = first(packet(protocol_3_0(), body)).await;
            let Err(BadPacket(why)) = dup else {
                panic!("{dup:?}")
            };
            assert!(why.contains("twice"), "{why}");
        }
        // A TLS ClientHello where a startup packet belongs.
        let hello = first(vec![0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await;
        let Err(BadPacket(why)) = hello else {
            panic!("{hello:?}")
        };
        assert!(why.contains("TLS") && why.contains("sslmode"), "{why}");
    }

    #[test]
    fn finds_the_backend_key_among_the_greeting() {
        let mut greeting = frame(b'R', &0i32.to_be_bytes());
        greeting.extend(frame(b'S', b"a\0b\0"));
        let mut key = 77i32.to_be_bytes().to_vec();
        key.extend_from_slice(&[9, 8, 7, 6]);
        greeting.extend(frame(b'K', &key));
        greeting.extend(frame(b'Z', b"I"));
        assert_eq!(backend_key(&greeting), Some((77, vec![9, 8, 7, 6])));
        assert_eq!(backend_key(&greeting[..12]), None);
    }

    #[test]
    fn error_reply_frames_fields() {
        let bytes = ErrorReply::fatal("28000", "no").hint("do this").encode();
        assert_eq!(bytes[0], b'E');
        assert_eq!(
            i32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize,
            bytes.len() - 1
        );
        assert!(bytes.ends_with(b"Hdo this\0\0"));
    }
}
