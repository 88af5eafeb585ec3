//! The few PostgreSQL v3 wire messages the gate needs, framed by hand (no PostgreSQL crate)
//! so the gate can misbehave on purpose: startup-phase packets, typed messages, and the
//! ErrorResponse shapes RDS answers with.

use std::io;

use anyhow::{Result, anyhow, bail};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub(super) const SSL_REQUEST: u32 = 80877103;
pub(super) const GSSENC_REQUEST: u32 = 80877104;
pub(super) const CANCEL_REQUEST: u32 = 80877102;
/// Protocol major version 3; the minor version is passed through for PostgreSQL to negotiate.
pub(super) const PROTOCOL_MAJOR_3: u32 = 3;

/// Reads an untyped startup-phase packet (length-prefixed); `None` if the client closed first.
pub(super) async fn read_startup_packet<S: AsyncRead + Unpin>(
    s: &mut S,
) -> Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match s.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let n = u32::from_be_bytes(len) as usize;
    // PostgreSQL's own limit for startup packets is 10000 bytes.
    if !(8..=10_000).contains(&n) {
        bail!("startup packet length {n} out of range");
    }
    let mut pkt = vec![0u8; n];
    pkt[..4].copy_from_slice(&len);
    s.read_exact(&mut pkt[4..]).await?;
    Ok(Some(pkt))
}

pub(super) fn packet_code(pkt: &[u8]) -> u32 {
    pkt.get(4..8)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0)
}

/// Parses a StartupMessage's key/value pairs.
pub(super) fn parse_startup(pkt: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut rest = pkt
        .get(8..)
        .ok_or_else(|| anyhow!("short startup packet"))?;
    let mut out = Vec::new();
    loop {
        let (key, after) = split_cstr(rest).ok_or_else(|| anyhow!("unterminated key"))?;
        if key.is_empty() {
            return Ok(out);
        }
        let (value, after) = split_cstr(after).ok_or_else(|| anyhow!("unterminated value"))?;
        out.push((key.to_vec(), value.to_vec()));
        rest = after;
    }
}

pub(super) fn split_cstr(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let nul = b.iter().position(|&c| c == 0)?;
    Some((&b[..nul], &b[nul + 1..]))
}

pub(super) fn param<'a>(params: &'a [(Vec<u8>, Vec<u8>)], key: &str) -> Option<&'a [u8]> {
    params
        .iter()
        .find(|(k, _)| k == key.as_bytes())
        .map(|(_, v)| v.as_slice())
}

/// Reads one typed message (type byte, length, body); `max` bounds the body.
pub(super) async fn read_message<S: AsyncRead + Unpin>(
    s: &mut S,
    max: usize,
) -> io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    s.read_exact(&mut head).await?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len < 4 || len - 4 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("message {:?} with length {len}", head[0] as char),
        ));
    }
    let mut body = vec![0u8; len - 4];
    s.read_exact(&mut body).await?;
    Ok((head[0], body))
}

pub(super) fn push_message(out: &mut Vec<u8>, kind: u8, body: &[u8]) {
    out.push(kind);
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(body);
}

pub(super) fn error_fields(body: &[u8]) -> Vec<(u8, String)> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some((&kind, after)) = rest.split_first() {
        if kind == 0 {
            break;
        }
        let Some((value, after)) = split_cstr(after) else {
            break;
        };
        out.push((kind, String::from_utf8_lossy(value).into_owned()));
        rest = after;
    }
    out
}

/// The first column of a DataRow, `None` for NULL or a malformed row.
pub(super) fn first_column(body: &[u8]) -> Option<Vec<u8>> {
    let ncols = u16::from_be_bytes(body.get(..2)?.try_into().ok()?);
    if ncols == 0 {
        return None;
    }
    let len = i32::from_be_bytes(body.get(2..6)?.try_into().ok()?);
    let len = usize::try_from(len).ok()?;
    body.get(6..6 + len).map(<[u8]>::to_vec)
}

/// An ErrorResponse with only S, V, C and M, the shape RDS's own early errors have.
fn error_response(code: &str, message: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', code),
        (b'M', message),
    ] {
        body.push(k);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = Vec::new();
    push_message(&mut out, b'E', &body);
    out
}

/// Sends a FATAL error and closes our side; the client may already be gone, which is fine.
pub(super) async fn send_error<S: AsyncWrite + Unpin>(s: &mut S, code: &str, message: &str) {
    let _ = s.write_all(&error_response(code, message)).await;
    let _ = s.flush().await;
    let _ = s.shutdown().await;
}

pub(super) async fn send_pam_failure<S: AsyncWrite + Unpin>(s: &mut S, user: &str) {
    let msg = format!("PAM authentication failed for user \"{user}\"");
    send_error(s, "28P01", &msg).await;
}

/// What a direct RDS endpoint answers when it checked the token as the role's own password.
pub(super) async fn send_password_failure<S: AsyncWrite + Unpin>(s: &mut S, user: &str) {
    let msg = format!("password authentication failed for user \"{user}\"");
    send_error(s, "28P01", &msg).await;
}
