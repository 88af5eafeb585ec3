//! A thin MySQL-protocol client for `check` and `doctor`: the handshake,
//! TLS (rustls, the same verifier and CA bundle as for PostgreSQL), the
//! login with `mysql_clear_password` and text queries. Nothing more: the
//! token is the only password we ever send, and only inside TLS.
//!
//! Why not `mysql_async`: it brings a pool, URL parsing, compression,
//! every auth plugin and a second copy of much of what we build already;
//! this subset is a few hundred lines over tokio and rustls, which are here.

use std::sync::Arc;

use anyhow::Result;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::connect::{Connector, TIMEOUT_HINT};
use crate::error::{Failure, Kind};
use crate::session::Resolved;

// Capability flags (https://dev.mysql.com/doc/dev/mysql-server/latest/group__group__cs__capabilities__flags.html).
const LONG_PASSWORD: u32 = 1;
const LONG_FLAG: u32 = 1 << 2;
/// COM_INIT_DB: choose the default database.
const COM_INIT_DB: u8 = 0x02;
const PROTOCOL_41: u32 = 1 << 9;
const SSL: u32 = 1 << 11;
const TRANSACTIONS: u32 = 1 << 13;
const SECURE_CONNECTION: u32 = 1 << 15;
const PLUGIN_AUTH: u32 = 1 << 19;
const CONNECT_ATTRS: u32 = 1 << 20;
const PLUGIN_AUTH_LENENC_DATA: u32 = 1 << 21;
const CONNECT_WITH_DB: u32 = 1 << 3;
const COMPRESS: u32 = 1 << 5;

/// What the proxy offers its local clients: what every MySQL since 5.7,
/// MariaDB since 10.2 and RDS Proxy speak after the login, so the session
/// the client thinks it has is the one upstream. No TLS (the local hop is
/// plain, like PostgreSQL's), no compression (we relay bytes as they are).
pub const PROXY_CAPS: u32 = LONG_PASSWORD
    | 1 << 1 // FOUND_ROWS
    | LONG_FLAG
    | CONNECT_WITH_DB
    | 1 << 4 // NO_SCHEMA
    | 1 << 6 // ODBC
    | 1 << 7 // LOCAL_FILES
    | 1 << 8 // IGNORE_SPACE
    | PROTOCOL_41
    | 1 << 10 // INTERACTIVE
    | 1 << 12 // IGNORE_SIGPIPE
    | TRANSACTIONS
    | SECURE_CONNECTION
    | 1 << 16 // MULTI_STATEMENTS
    | 1 << 17 // MULTI_RESULTS
    | 1 << 18 // PS_MULTI_RESULTS
    | PLUGIN_AUTH
    | CONNECT_ATTRS
    | PLUGIN_AUTH_LENENC_DATA
    | 1 << 23 // SESSION_TRACK
    | 1 << 24; // DEPRECATE_EOF

/// utf8mb4_general_ci: every server since 5.5.3 knows it.
const CHARSET: u8 = 45;
const MAX_PACKET: u32 = 16 * 1024 * 1024;
/// The one plugin an IAM token goes with (RDS's AWSAuthenticationPlugin
/// asks for it; so does MariaDB's PAM plugin with pam_use_cleartext_plugin).
pub const CLEAR_PASSWORD: &str = "mysql_clear_password";

/// An error packet from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    pub code: u16,
    pub state: String,
    pub message: String,
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ERROR {} ({}): {}", self.code, self.state, self.message)
    }
}

/// A query failure in words, for messages after the login.
pub fn describe(err: &WireError) -> String {
    match err {
        WireError::Server(e) => e.to_string(),
        WireError::Io(io) => io.to_string(),
        WireError::Protocol(what) => what.clone(),
    }
}

/// What went wrong below the login: the server's error packet, or the
/// connection (with the rustls error if TLS failed).
#[derive(Debug)]
pub enum WireError {
    Server(ServerError),
    Io(std::io::Error),
    Protocol(String),
}

impl From<std::io::Error> for WireError {
    fn from(err: std::io::Error) -> WireError {
        WireError::Io(err)
    }
}

pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Framing: 3-byte little-endian length, sequence number, payload.
struct Packets<S> {
    stream: S,
    seq: u8,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Packets<S> {
    async fn read(&mut self) -> Result<Vec<u8>, WireError> {
        let mut head = [0u8; 4];
        self.stream.read_exact(&mut head).await?;
        let len = u32::from_le_bytes([head[0], head[1], head[2], 0]) as usize;
        // A payload of 0xFFFFFF continues in the next packet; nothing we
        // read is that large, so that is a protocol error, not a buffer.
        if len == 0xFF_FFFF {
            return Err(WireError::Protocol("a packet larger than 16 MiB".into()));
        }
        self.seq = head[3].wrapping_add(1);
        let mut payload = vec![0u8; len];
        self.stream.read_exact(&mut payload).await?;
        Ok(payload)
    }

    async fn write(&mut self, payload: &[u8]) -> Result<(), WireError> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l < 0xFF_FFFF)
            .ok_or_else(|| WireError::Protocol("a packet too large to send".into()))?;
        let mut out = Vec::with_capacity(payload.len() + 4);
        out.extend_from_slice(&len.to_le_bytes()[..3]);
        out.push(self.seq);
        out.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        self.stream.write_all(&out).await?;
        self.stream.flush().await?;
        Ok(())
    }
}

/// A reader over one payload.
struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.data.len() < n {
            return Err(WireError::Protocol("a truncated packet".into()));
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn nul_str(&mut self) -> Result<&'a [u8], WireError> {
        let end = self
            .data
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| WireError::Protocol("a string without its NUL".into()))?;
        let s = self.take(end)?;
        self.take(1)?;
        Ok(s)
    }

    /// A length-encoded integer; `None` for the NULL marker 0xFB.
    fn lenenc(&mut self) -> Result<Option<u64>, WireError> {
        Ok(Some(match self.u8()? {
            0xFB => return Ok(None),
            0xFC => u64::from(self.u16()?),
            0xFD => {
                let b = self.take(3)?;
                u64::from(u32::from_le_bytes([b[0], b[1], b[2], 0]))
            }
            0xFE => {
                let b = self.take(8)?;
                u64::from_le_bytes(b.try_into().unwrap_or_default())
            }
            n => u64::from(n),
        }))
    }

    fn lenenc_str(&mut self) -> Result<Option<&'a [u8]>, WireError> {
        match self.lenenc()? {
            None => Ok(None),
            Some(n) => {
                let n = usize::try_from(n)
                    .map_err(|_| WireError::Protocol("a value too long".into()))?;
                Ok(Some(self.take(n)?))
            }
        }
    }
}

fn put_lenenc(out: &mut Vec<u8>, n: usize) {
    match n {
        0..=250 => out.push(n as u8),
        251..=0xFFFF => {
            out.push(0xFC);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xFF_FFFF => {
            out.push(0xFD);
            out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.push(0xFE);
            out.extend_from_slice(&(n as u64).to_le_bytes());
        }
    }
}

fn server_error(payload: &[u8]) -> WireError {
    let mut c = Cursor {
        data: payload.get(1..).unwrap_or_default(),
    };
    let code = c.u16().unwrap_or(0);
    let rest = c.data;
    let (state, message) = match rest.strip_prefix(b"#") {
        Some(r) if r.len() >= 5 => (String::from_utf8_lossy(&r[..5]).into_owned(), &r[5..]),
        _ => (String::from("HY000"), rest),
    };
    WireError::Server(ServerError {
        code,
        state,
        message: String::from_utf8_lossy(message).into_owned(),
    })
}

/// The server's first packet, as far as we use it.
#[derive(Debug)]
pub struct Greeting {
    pub version: String,
    pub capabilities: u32,
    pub plugin: String,
}

fn parse_greeting(payload: &[u8]) -> Result<Greeting, WireError> {
    if payload.first() == Some(&0xFF) {
        return Err(server_error(payload));
    }
    let mut c = Cursor { data: payload };
    let protocol = c.u8()?;
    if protocol != 10 {
        return Err(WireError::Protocol(format!(
            "protocol version {protocol}, not MySQL's 10 (is this a MySQL server?)"
        )));
    }
    let version = String::from_utf8_lossy(c.nul_str()?).into_owned();
    c.u32()?; // connection id
    c.take(8)?; // scramble, part 1
    c.u8()?;
    let low = c.u16()?;
    let mut capabilities = u32::from(low);
    let mut plugin = String::new();
    if !c.data.is_empty() {
        c.u8()?; // character set
        c.u16()?; // status
        capabilities |= u32::from(c.u16()?) << 16;
        let scramble_len = c.u8()?;
        c.take(10)?;
        if capabilities & SECURE_CONNECTION != 0 {
            c.take(usize::from(scramble_len.saturating_sub(8)).max(13))?;
        }
        if capabilities & PLUGIN_AUTH != 0 {
            plugin = String::from_utf8_lossy(c.nul_str().unwrap_or_default()).into_owned();
        }
    }
    Ok(Greeting {
        version,
        capabilities,
        plugin,
    })
}

impl Greeting {
    pub fn offers_tls(&self) -> bool {
        self.capabilities & SSL != 0
    }
}

/// Read the server's greeting and, if it offers TLS, ask for it: what
/// precedes the TLS handshake (doctor's TLS step examines what follows).
pub async fn request_tls(stream: &mut TcpStream) -> Result<Greeting, WireError> {
    let mut packets = Packets { stream, seq: 0 };
    let greeting = parse_greeting(&packets.read().await?)?;
    if greeting.offers_tls() {
        let caps = LONG_PASSWORD | PROTOCOL_41 | SSL | SECURE_CONNECTION | PLUGIN_AUTH;
        packets.write(&ssl_request(caps)).await?;
    }
    Ok(greeting)
}

/// The SSLRequest payload: the first 32 bytes of a handshake response.
fn ssl_request(caps: u32) -> Vec<u8> {
    let mut head = Vec::with_capacity(32);
    head.extend_from_slice(&caps.to_le_bytes());
    head.extend_from_slice(&MAX_PACKET.to_le_bytes());
    head.push(CHARSET);
    head.extend_from_slice(&[0u8; 23]);
    head
}

/// A proxied client's handshake response, as far as the proxy carries it
/// (its password, if any, is ignored: the local hop has none).
#[derive(Debug)]
pub struct Hello {
    pub caps: u32,
    pub charset: u8,
    pub user: String,
    pub db: Option<String>,
    /// The connection attributes' key-value block, as sent.
    pub attrs: Vec<u8>,
}

/// Parse a client's HandshakeResponse41; `Ok(None)` for an SSLRequest
/// (the client wants TLS, which the local hop does not offer).
pub fn parse_hello(payload: &[u8]) -> Result<Option<Hello>, WireError> {
    let mut c = Cursor { data: payload };
    let caps = c.u32()?;
    if caps & PROTOCOL_41 == 0 {
        return Err(WireError::Protocol(
            "a pre-4.1 handshake (the client is too old)".into(),
        ));
    }
    c.u32()?; // max packet
    let charset = c.u8()?;
    c.take(23)?;
    if c.data.is_empty() && caps & SSL != 0 {
        return Ok(None);
    }
    let user = String::from_utf8_lossy(c.nul_str()?).into_owned();
    if caps & PLUGIN_AUTH_LENENC_DATA != 0 {
        c.lenenc_str()?;
    } else if caps & SECURE_CONNECTION != 0 {
        let n = c.u8()?;
        c.take(usize::from(n))?;
    } else {
        c.nul_str()?;
    }
    let db = if caps & CONNECT_WITH_DB != 0 && !c.data.is_empty() {
        Some(String::from_utf8_lossy(c.nul_str()?).into_owned()).filter(|d| !d.is_empty())
    } else {
        None
    };
    if caps & PLUGIN_AUTH != 0 && !c.data.is_empty() {
        c.nul_str()?;
    }
    let attrs = if caps & CONNECT_ATTRS != 0 && !c.data.is_empty() {
        c.lenenc_str()?.unwrap_or_default().to_vec()
    } else {
        Vec::new()
    };
    Ok(Some(Hello {
        caps,
        charset,
        user,
        db,
        attrs,
    }))
}

/// The greeting the proxy sends a local client: `version` (the server's
/// when known), [`PROXY_CAPS`], and `mysql_native_password` with a fresh
/// scramble, which a client without a password answers with nothing.
pub fn client_greeting(version: &str, id: u32, scramble: &[u8; 20]) -> Vec<u8> {
    let mut g = vec![10];
    g.extend_from_slice(version.as_bytes());
    g.push(0);
    g.extend_from_slice(&id.to_le_bytes());
    g.extend_from_slice(&scramble[..8]);
    g.push(0);
    g.extend_from_slice(&(PROXY_CAPS as u16).to_le_bytes());
    g.push(CHARSET);
    g.extend_from_slice(&2u16.to_le_bytes()); // autocommit
    g.extend_from_slice(&((PROXY_CAPS >> 16) as u16).to_le_bytes());
    g.push(21);
    g.extend_from_slice(&[0; 10]);
    g.extend_from_slice(&scramble[8..]);
    g.push(0);
    g.extend_from_slice(b"mysql_native_password\0");
    g
}

/// An ERR packet's payload.
pub fn error_payload(code: u16, state: &str, message: &str) -> Vec<u8> {
    let mut e = vec![0xFF];
    e.extend_from_slice(&code.to_le_bytes());
    e.push(b'#');
    e.extend_from_slice(state.as_bytes());
    e.extend_from_slice(message.as_bytes());
    e
}

/// One packet on the wire: length, sequence number, payload.
pub fn frame(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes()[..3]);
    out.push(seq);
    out.extend_from_slice(payload);
    out
}

/// Read one packet of at most `max` bytes from a client: (sequence, payload).
pub async fn read_packet<S: AsyncRead + Unpin>(
    stream: &mut S,
    max: usize,
) -> Result<(u8, Vec<u8>), WireError> {
    let mut head = [0u8; 4];
    stream.read_exact(&mut head).await?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], 0]) as usize;
    if len > max {
        return Err(WireError::Protocol(format!(
            "a {len}-byte handshake (at most {max})"
        )));
    }
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await?;
    Ok((head[3], payload))
}

/// A logged-in session.
pub struct Session {
    packets: Packets<Box<dyn Stream>>,
    pub greeting: Greeting,
    /// The server's OK to the login (status, session state): what a proxied
    /// client is told.
    pub ok: Vec<u8>,
    /// What TLS negotiated, from our side: `TLSv1.3`, the cipher suite.
    pub tls_version: String,
    pub tls_cipher: String,
}

/// One text result: column names and rows (`None` is SQL NULL).
#[derive(Debug, Default)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl Session {
    /// Run `sql` and read its text result set (or an OK for statements).
    pub async fn query(&mut self, sql: &str) -> Result<Rows, WireError> {
        self.packets.seq = 0;
        let mut out = vec![0x03];
        out.extend_from_slice(sql.as_bytes());
        self.packets.write(&out).await?;
        let first = self.packets.read().await?;
        match first.first() {
            Some(0xFF) => return Err(server_error(&first)),
            Some(0x00) => return Ok(Rows::default()),
            _ => {}
        }
        let count = Cursor { data: &first }
            .lenenc()?
            .ok_or_else(|| WireError::Protocol("a NULL column count".into()))?;
        let mut result = Rows::default();
        for _ in 0..count {
            let def = self.packets.read().await?;
            let mut c = Cursor { data: &def };
            for _ in 0..4 {
                c.lenenc_str()?; // catalog, schema, table, org_table
            }
            let name = c.lenenc_str()?.unwrap_or_default();
            result
                .columns
                .push(String::from_utf8_lossy(name).into_owned());
        }
        self.expect_eof().await?;
        loop {
            let row = self.packets.read().await?;
            match row.first() {
                Some(0xFE) if row.len() < 9 => break,
                Some(0xFF) => return Err(server_error(&row)),
                _ => {}
            }
            let mut c = Cursor { data: &row };
            let mut values = Vec::with_capacity(result.columns.len());
            for _ in 0..result.columns.len() {
                values.push(
                    c.lenenc_str()?
                        .map(|v| String::from_utf8_lossy(v).into_owned()),
                );
            }
            result.rows.push(values);
        }
        Ok(result)
    }

    async fn expect_eof(&mut self) -> Result<(), WireError> {
        let eof = self.packets.read().await?;
        match eof.first() {
            Some(0xFE) if eof.len() < 9 => Ok(()),
            Some(0xFF) => Err(server_error(&eof)),
            _ => Err(WireError::Protocol(
                "no EOF after the column definitions".into(),
            )),
        }
    }

    /// The TLS stream, for a relay: between commands, so nothing is buffered.
    pub fn into_stream(self) -> Box<dyn Stream> {
        self.packets.stream
    }

    /// COM_QUIT, best effort.
    pub async fn quit(mut self) {
        self.packets.seq = 0;
        let _ = self.packets.write(&[0x01]).await;
        let _ = self.packets.stream.shutdown().await;
    }
}

/// Where a login stands, for the timeout message.
#[derive(Clone, Default)]
pub struct Stage(Arc<std::sync::Mutex<&'static str>>);

impl Stage {
    pub fn set(&self, what: &'static str) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = what;
    }

    pub fn get(&self) -> &'static str {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How to log in: as the target's user with a token minted now (`check`,
/// `doctor`), or as the proxy says, carrying its client's handshake.
#[derive(Default)]
pub struct Login<'a> {
    /// The user and the token for it; `None`: the target's, minted now.
    pub as_user: Option<(&'a str, &'a str)>,
    /// The client's capabilities (within [`PROXY_CAPS`]), character set and
    /// connection attributes (the raw key-value block).
    pub client: Option<(u32, u8, &'a [u8])>,
}

/// Connect, upgrade to TLS and log in as the target's user with a token
/// minted now, within the connector's timeout. Failures carry the
/// documented exit codes: 4 network/TLS, 5 refused, with the known causes.
pub async fn connect(
    connector: &Connector,
    resolved: &Resolved,
    dbname: Option<&str>,
) -> Result<Session> {
    let stage: Stage = Default::default();
    stage.set("connecting to");
    let how = Login::default();
    let attempt = login(connector, resolved, dbname, &how, stage.clone());
    match tokio::time::timeout(connector.timeout, attempt).await {
        Ok(result) => result,
        Err(_) => {
            let endpoint = &resolved.endpoint;
            Err(Failure::network(format!(
                "timed out after {}s {} {}:{}{}",
                connector.timeout.as_secs(),
                stage.get(),
                endpoint.host,
                endpoint.port,
                connector.via_note()
            ))
            .hint(TIMEOUT_HINT)
            .into())
        }
    }
}

/// Connect, TLS and log in per `how`, unbounded: the caller bounds it.
pub async fn login(
    connector: &Connector,
    resolved: &Resolved,
    dbname: Option<&str>,
    how: &Login<'_>,
    stage: Stage,
) -> Result<Session> {
    let endpoint = &resolved.endpoint;
    let tcp = connector.tcp(&endpoint.host, endpoint.port).await?;
    stage.set("waiting for the MySQL greeting from");
    let login_user = how
        .as_user
        .map_or(resolved.target.user.as_str(), |(u, _)| u);
    let wire = |err: WireError| classify(connector, resolved, login_user, dbname, err);
    let mut plain = Packets {
        stream: tcp,
        seq: 0,
    };
    let greeting = parse_greeting(&plain.read().await.map_err(wire)?).map_err(wire)?;
    if !greeting.offers_tls() {
        return Err(Failure::network(format!(
            "the server at {}:{}{} does not offer TLS (MySQL {}); the IAM token is a cleartext password and is never sent without it",
            endpoint.host,
            endpoint.port,
            connector.via_note(),
            greeting.version
        ))
        .hint("RDS, Aurora and RDS Proxy always offer TLS: check that --port/--via point at the database")
        .into());
    }
    if greeting.capabilities & PLUGIN_AUTH_LENENC_DATA == 0 {
        return Err(Failure::new(
            Kind::Other,
            format!(
                "the server at {}:{} (MySQL {}) cannot take a password as long as an IAM token",
                endpoint.host, endpoint.port, greeting.version
            ),
        )
        .hint("IAM logins need MySQL 5.6 or later, or MariaDB 10.2 or later")
        .into());
    }
    let (caps, charset) = capabilities(how, &greeting, resolved)?;
    // No CONNECT_WITH_DB: MariaDB servers (10.11 at least) look for the
    // database two bytes early when the auth data's length takes three bytes,
    // as a token's always does, and answer "Bad handshake". COM_INIT_DB after
    // the login names it instead (one more round trip, every server).
    let mut head = ssl_request(caps);
    head[8] = charset;
    plain.write(&head).await.map_err(wire)?;
    let seq = plain.seq;

    stage.set("waiting for TLS at");
    let name = rustls::pki_types::ServerName::try_from(endpoint.host.clone()).map_err(|_| {
        Failure::usage(format!(
            "`{}` is not a host name TLS can verify",
            endpoint.host
        ))
    })?;
    let (tls, tls_version, tls_cipher) =
        upgrade(connector, name, plain.stream).await.map_err(wire)?;
    let mut packets: Packets<Box<dyn Stream>> = Packets {
        stream: Box::new(tls),
        seq,
    };

    stage.set("waiting for the login at");
    let minted;
    let (user, token) = match how.as_user {
        Some((user, token)) => (user, token),
        None => {
            minted = resolved.mint_renewed().await?;
            (
                resolved.target.user.as_str(),
                minted.value.expose().as_str(),
            )
        }
    };
    let mut out = handshake_response(head, user, token, caps, how);
    packets.write(&out).await.map_err(wire)?;
    // Wipe our copy of the token once sent.
    out.fill(0);
    let ok = loop {
        let reply = packets.read().await.map_err(wire)?;
        match reply.first() {
            Some(0x00) => break reply,
            Some(0xFF) => return Err(wire(server_error(&reply))),
            // Auth switch: the server wants the password for another plugin.
            Some(0xFE) => {
                let mut c = Cursor { data: &reply[1..] };
                let plugin = String::from_utf8_lossy(c.nul_str().unwrap_or(c.data)).into_owned();
                if plugin != CLEAR_PASSWORD {
                    return Err(not_iam_user(login_user, &plugin).into());
                }
                let mut again = token.as_bytes().to_vec();
                again.push(0);
                packets.write(&again).await.map_err(wire)?;
                again.fill(0);
            }
            _ => {
                return Err(not_iam_user(login_user, "an unknown plugin").into());
            }
        }
    };
    if let Some(db) = dbname {
        packets.seq = 0;
        let mut init = vec![COM_INIT_DB];
        init.extend_from_slice(db.as_bytes());
        packets.write(&init).await.map_err(wire)?;
        let reply = packets.read().await.map_err(wire)?;
        if reply.first() == Some(&0xFF) {
            return Err(wire(server_error(&reply)));
        }
    }
    Ok(Session {
        packets,
        greeting,
        ok,
        tls_version,
        tls_cipher,
    })
}

/// The capabilities and character set rdsiam logs in with: its own, or a
/// proxied client's as far as the server has them.
fn capabilities(how: &Login<'_>, greeting: &Greeting, resolved: &Resolved) -> Result<(u32, u8)> {
    let endpoint = &resolved.endpoint;
    let ours = LONG_PASSWORD
        | LONG_FLAG
        | PROTOCOL_41
        | SSL
        | TRANSACTIONS
        | SECURE_CONNECTION
        | PLUGIN_AUTH
        | PLUGIN_AUTH_LENENC_DATA;
    Ok(match how.client {
        None => (ours | (greeting.capabilities & CONNECT_ATTRS), CHARSET),
        // A proxied client: its capabilities, as far as the server has them.
        Some((client, charset, _)) => {
            // Only what changes the protocol after the login must match.
            let after_login = PROTOCOL_41
                | 1 << 16 // MULTI_STATEMENTS
                | 1 << 17 // MULTI_RESULTS
                | 1 << 18 // PS_MULTI_RESULTS
                | 1 << 23 // SESSION_TRACK
                | 1 << 24; // DEPRECATE_EOF
            let missing = client & !greeting.capabilities & after_login;
            if missing != 0 {
                return Err(Failure::network(format!(
                    "the server at {}:{} (MySQL {}) lacks capabilities the client was offered (flags {missing:#x})",
                    endpoint.host, endpoint.port, greeting.version
                ))
                .hint("the server is older than MySQL 5.7 / MariaDB 10.2: connect to it directly")
                .into());
            }
            let carried = client & greeting.capabilities & !(CONNECT_WITH_DB | COMPRESS);
            (ours | carried, charset)
        }
    })
}

/// TLS on the connection the SSLRequest went over, verified with the one
/// dialer's settings; the version and cipher agreed, for `check`.
async fn upgrade(
    connector: &Connector,
    name: rustls::pki_types::ServerName<'static>,
    tcp: TcpStream,
) -> std::result::Result<(TlsStream<TcpStream>, String, String), WireError> {
    let tls = tokio_rustls::TlsConnector::from(connector.tls_config())
        .connect(name, tcp)
        .await
        .map_err(WireError::Io)?;
    let (_, state) = tls.get_ref();
    let version = state
        .protocol_version()
        .and_then(|v| v.as_str())
        .unwrap_or("TLS")
        .replace("TLSv1_", "TLSv1.");
    let cipher = state
        .negotiated_cipher_suite()
        .and_then(|s| s.suite().as_str())
        .unwrap_or("?")
        .to_owned();
    Ok((tls, version, cipher))
}

/// The HandshakeResponse after the SSLRequest `head`: the user, the token
/// as `mysql_clear_password`'s data, and the connection attributes.
fn handshake_response(
    mut out: Vec<u8>,
    user: &str,
    token: &str,
    caps: u32,
    how: &Login<'_>,
) -> Vec<u8> {
    out.extend_from_slice(user.as_bytes());
    out.push(0);
    put_lenenc(&mut out, token.len() + 1);
    out.extend_from_slice(token.as_bytes());
    out.push(0);
    out.extend_from_slice(CLEAR_PASSWORD.as_bytes());
    out.push(0);
    if caps & CONNECT_ATTRS != 0 {
        let mut attrs = Vec::new();
        match how.client {
            Some((_, _, theirs)) => attrs.extend_from_slice(theirs),
            None => {
                for (k, v) in [("program_name", "rdsiam"), ("_client_name", "rdsiam")] {
                    put_lenenc(&mut attrs, k.len());
                    attrs.extend_from_slice(k.as_bytes());
                    put_lenenc(&mut attrs, v.len());
                    attrs.extend_from_slice(v.as_bytes());
                }
            }
        }
        put_lenenc(&mut out, attrs.len());
        out.extend_from_slice(&attrs);
    }
    out
}

/// The server asked for a plugin other than the cleartext one: the user is
/// not an IAM user (native or caching_sha2 passwords), so no token can work.
fn not_iam_user(user: &str, plugin: &str) -> Failure {
    Failure::new(
        Kind::Login,
        format!(
            "the server wants `{plugin}` for `{user}`, not {CLEAR_PASSWORD}: the user does not log in with IAM tokens"
        ),
    )
    .hint(format!(
        "create the user for IAM: `CREATE USER {} IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS';` as an admin (or ALTER USER for an existing one)",
        super::quote_account(user)
    ))
}

/// A failed login or connection in words, with its exit code.
fn classify(
    connector: &Connector,
    resolved: &Resolved,
    user: &str,
    dbname: Option<&str>,
    err: WireError,
) -> anyhow::Error {
    let endpoint = &resolved.endpoint;
    match err {
        WireError::Server(e) => {
            let base = format!("{} (ERROR {}, SQLSTATE {})", e.message, e.code, e.state);
            let failure: Failure = match e.code {
                // Access denied: a bad token, a user without the plugin.
                1045 | 1698 | 1251 => {
                    crate::connect::login_refused(resolved, user, &base)
                }
                1044 => Failure::new(Kind::Login, format!("the server refused the login: {base}"))
                    .hint(format!(
                        "the user may not use database `{}`: run `GRANT ALL ON {}.* TO {};` (or narrower) as an admin, or pass --dbname/-d with another database",
                        dbname.unwrap_or_default(),
                        super::quote_ident(dbname.unwrap_or_default()),
                        super::quote_account(user)
                    ))
                    ,
                1049 => Failure::new(Kind::Login, format!("the server refused the login: {base}"))
                    .hint("pass --dbname/-d with a database that exists, or leave it out (MySQL needs none)")
                    ,
                // Too many connections, host blocked, shutting down.
                1040 | 1129 | 1130 | 1053 | 1203 => Failure::network(format!(
                    "the server is not accepting connections: {base}"
                ))
                .hint("try again shortly; during a failover or restart this clears within minutes (`rdsiam list` shows the status)")
                ,
                _ => Failure::new(Kind::Other, format!("the server ended the login: {base}"))
                    .hint("see the server's message; check --dbname and the user's settings")
                    ,
            };
            failure
                .at(crate::error::Stage::Login)
                .code(e.code.to_string())
                .into()
        }
        WireError::Protocol(what) => Failure::network(format!(
            "the server at {}:{}{} did not speak MySQL as expected: {what}",
            endpoint.host,
            endpoint.port,
            connector.via_note()
        ))
        .hint("check that --port/--via point at a MySQL or MariaDB database (`--engine` for a --host target)")
        .into(),
        WireError::Io(io) => {
            let tls = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .cloned();
            let chain = match &tls {
                Some(t) => t.to_string(),
                None if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                    "the server closed the connection".to_owned()
                }
                None => io.to_string(),
            };
            let _ = dbname;
            let endpoint = &resolved.endpoint;
            connector
                .explain(&endpoint.host, endpoint.port, chain, tls.as_ref())
                .into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenenc_round_trips() {
        for n in [0usize, 250, 251, 0xFFFF, 0x1_0000, 0xFF_FFFF, 0x100_0000] {
            let mut out = Vec::new();
            put_lenenc(&mut out, n);
            assert_eq!(
                Cursor { data: &out }.lenenc().unwrap(),
                Some(n as u64),
                "{n}"
            );
        }
        assert_eq!(Cursor { data: &[0xFB] }.lenenc().unwrap(), None);
    }

    #[test]
    fn greeting_and_error_packets_parse() {
        let mut g = vec![10];
        g.extend_from_slice(b"10.11.9-MariaDB\0");
        g.extend_from_slice(&7u32.to_le_bytes());
        g.extend_from_slice(b"abcdefgh\0");
        g.extend_from_slice(&((SSL | PROTOCOL_41 | SECURE_CONNECTION) as u16).to_le_bytes());
        g.push(45);
        g.extend_from_slice(&2u16.to_le_bytes());
        g.extend_from_slice(
            &(((PLUGIN_AUTH | PLUGIN_AUTH_LENENC_DATA) >> 16) as u16).to_le_bytes(),
        );
        g.push(21);
        g.extend_from_slice(&[0; 10]);
        g.extend_from_slice(b"ijklmnopqrst\0");
        g.extend_from_slice(b"mysql_native_password\0");
        let greeting = parse_greeting(&g).unwrap();
        assert_eq!(greeting.version, "10.11.9-MariaDB");
        assert_ne!(greeting.capabilities & SSL, 0);
        assert_ne!(greeting.capabilities & PLUGIN_AUTH_LENENC_DATA, 0);
        assert_eq!(greeting.plugin, "mysql_native_password");

        let mut e = vec![0xFF];
        e.extend_from_slice(&1045u16.to_le_bytes());
        e.extend_from_slice(b"#28000Access denied for user 'u'@'h' (using password: YES)");
        let WireError::Server(err) = server_error(&e) else {
            panic!()
        };
        assert_eq!((err.code, err.state.as_str()), (1045, "28000"));
        assert!(err.message.starts_with("Access denied"));
        // A greeting that is an error (too many connections) is the error.
        assert!(matches!(parse_greeting(&e), Err(WireError::Server(_))));
        assert!(matches!(
            parse_greeting(&[9, 0]),
            Err(WireError::Protocol(_))
        ));
    }
}
