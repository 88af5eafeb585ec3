//! An in-process PostgreSQL stand-in for the proxy's tests, reached through
//! a [`Transport`] instead of TCP: it answers the SSLRequest, does a real
//! TLS handshake with a certificate of a test CA, asks for the cleartext
//! password and checks the IAM token as RDS does (the testkit's verifier),
//! then plays the part its script gives each connection: a writer, a hot
//! standby, a server shutting down, one refusing the token, one that never
//! answers, or none at all. It records what each connection saw.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_rustls::TlsAcceptor;

use crate::dial::{Opening, Stream, Transport};

pub const HOST: &str = "db.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com";
pub const PORT: u16 = 5432;
pub const REGION: &str = "us-east-1";
pub const KEY_ID: &str = "AKIAFAKEDB0000000001";
pub const SECRET: &str = "fakedb/secret/key/0000000000000000000000";

/// What the server does with one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    /// A writer: logs in and answers queries.
    Serve,
    /// A hot standby: logs in and reports `in_hot_standby=on`.
    Standby,
    /// Ends the login with 57P01, as a server going down in a failover.
    Shutdown,
    /// Refuses the token with 28P01, as PAM says it.
    RefuseToken,
    /// TLS and the startup packet, then silence.
    Stall,
    /// Nothing listens: the connection is refused.
    Unreachable,
}

/// What one connection brought.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub user: String,
    pub database: String,
    /// The password sent (the IAM token).
    pub token: String,
    /// The verifier's verdict on it, as RDS would give it.
    pub token_ok: Option<Result<(), &'static str>>,
    /// A CancelRequest's process id and key, when that is what came.
    pub cancel: Option<(i32, Vec<u8>)>,
}

struct Inner {
    script: Mutex<VecDeque<Act>>,
    then: Act,
    acceptor: TlsAcceptor,
    opened: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
}

#[derive(Clone)]
pub struct FakeDb(Arc<Inner>);

/// The CA the proxy must trust, and the server's certificate from it.
pub struct Certs {
    pub ca_file: tempfile::NamedTempFile,
    acceptor: TlsAcceptor,
}

impl Certs {
    pub fn new() -> Certs {
        let ca = rdsiam_testkit::ca::TestCa::new().expect("test CA");
        let ca_file = tempfile::NamedTempFile::new().expect("temp file");
        ca.write_ca(ca_file.path()).expect("write CA");
        let (cert, key) = ca.issue(&[HOST]).expect("server certificate");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(cert.as_bytes()).expect("cert PEM")],
            PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key PEM"),
        )
        .expect("server config");
        Certs {
            ca_file,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        }
    }
}

impl FakeDb {
    /// A server whose connections play `script` in turn, then `then`.
    pub fn new(certs: &Certs, script: &[Act], then: Act) -> FakeDb {
        FakeDb(Arc::new(Inner {
            script: Mutex::new(script.iter().copied().collect()),
            then,
            acceptor: certs.acceptor.clone(),
            opened: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
        }))
    }

    /// Connections asked for, including refused ones.
    pub fn opened(&self) -> usize {
        self.0.opened.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.0.seen.lock().expect("seen").clone()
    }
}

impl Transport for FakeDb {
    fn open(&self, host: &str, port: u16) -> Opening {
        let inner = self.0.clone();
        let wrong = (host != HOST || port != PORT).then(|| format!("{host}:{port}"));
        Box::pin(async move {
            let n = inner.opened.fetch_add(1, Ordering::SeqCst);
            if let Some(wrong) = wrong {
                return Err(std::io::Error::other(format!(
                    "fakedb: no server at {wrong}"
                )));
            }
            let act = inner
                .script
                .lock()
                .expect("script")
                .pop_front()
                .unwrap_or(inner.then);
            if act == Act::Unreachable {
                return Err(std::io::ErrorKind::ConnectionRefused.into());
            }
            let (ours, theirs) = tokio::io::duplex(64 * 1024);
            let pid = i32::try_from(n).unwrap_or(i32::MAX) + 1000;
            tokio::spawn(async move {
                let _ = serve(inner, theirs, act, pid).await;
            });
            Ok(Box::new(ours) as Stream)
        })
    }
}

/// One backend message: tag, length, body.
pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(u32::try_from(body.len() + 4).unwrap_or(u32::MAX)).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn cstrs(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(part.as_bytes());
        out.push(0);
    }
    out
}

fn error(code: &str, text: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (field, value) in [(b'S', "FATAL"), (b'V', "FATAL"), (b'C', code), (b'M', text)] {
        body.push(field);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    message(b'E', &body)
}

async fn read_packet<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> std::io::Result<Vec<u8>> {
    let len = s.read_u32().await? as usize;
    let mut body = vec![0; len.saturating_sub(4)];
    s.read_exact(&mut body).await?;
    Ok(body)
}

async fn read_typed<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> std::io::Result<(u8, Vec<u8>)> {
    let tag = s.read_u8().await?;
    Ok((tag, read_packet(s).await?))
}

async fn serve(
    inner: Arc<Inner>,
    mut plain: DuplexStream,
    act: Act,
    pid: i32,
) -> std::io::Result<()> {
    let request = read_packet(&mut plain).await?;
    if request != 80_877_103i32.to_be_bytes() {
        return Ok(());
    }
    plain.write_all(b"S").await?;
    let mut tls = inner.acceptor.accept(plain).await?;
    let first = read_packet(&mut tls).await?;
    let mut seen = Seen::default();
    if first.get(..4) == Some(&80_877_102i32.to_be_bytes()[..]) && first.len() >= 8 {
        let pid = i32::from_be_bytes([first[4], first[5], first[6], first[7]]);
        seen.cancel = Some((pid, first[8..].to_vec()));
        inner.seen.lock().expect("seen").push(seen);
        return Ok(());
    }
    let mut fields = first.get(4..).unwrap_or_default().split(|b| *b == 0);
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        let value = String::from_utf8_lossy(value).into_owned();
        match name {
            b"user" => seen.user = value,
            b"database" => seen.database = value,
            _ => {}
        }
    }
    if act == Act::Stall {
        inner.seen.lock().expect("seen").push(seen);
        // Holds the connection open, answering nothing, until it is dropped.
        let mut sink = [0u8; 256];
        while tls.read(&mut sink).await? > 0 {}
        return Ok(());
    }
    tls.write_all(&message(b'R', &3u32.to_be_bytes())).await?;
    let (tag, password) = read_typed(&mut tls).await?;
    if tag != b'p' {
        return Ok(());
    }
    seen.token =
        String::from_utf8_lossy(password.strip_suffix(&[0]).unwrap_or(&password)).into_owned();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    let keys = [(KEY_ID.to_owned(), SECRET.to_owned(), None)];
    let verdict =
        rdsiam_testkit::gate::verify_token(&seen.token, &seen.user, HOST, PORT, REGION, &keys, now);
    seen.token_ok = Some(verdict);
    inner.seen.lock().expect("seen").push(seen.clone());
    let refusal = match (act, verdict) {
        (_, Err(why)) => Some(error(
            "28P01",
            &format!(
                "PAM authentication failed for user \"{}\" ({why})",
                seen.user
            ),
        )),
        (Act::RefuseToken, _) => Some(error(
            "28P01",
            &format!("PAM authentication failed for user \"{}\"", seen.user),
        )),
        (Act::Shutdown, _) => Some(error(
            "57P01",
            "terminating connection due to administrator command",
        )),
        _ => None,
    };
    if let Some(refusal) = refusal {
        tls.write_all(&refusal).await?;
        tls.shutdown().await?;
        return Ok(());
    }
    let standby = if act == Act::Standby { "on" } else { "off" };
    let mut greeting = message(b'R', &0u32.to_be_bytes());
    for (name, value) in [
        ("server_version", "16.4"),
        ("in_hot_standby", standby),
        ("client_encoding", "UTF8"),
    ] {
        greeting.extend(message(b'S', &cstrs(&[name, value])));
    }
    let mut key = pid.to_be_bytes().to_vec();
    key.extend_from_slice(&(pid ^ 0x5a5a).to_be_bytes());
    greeting.extend(message(b'K', &key));
    greeting.extend(message(b'Z', b"I"));
    tls.write_all(&greeting).await?;
    // Queries are echoed back as one row: enough to see bytes go both ways.
    loop {
        let (tag, body) = match read_typed(&mut tls).await {
            Ok(m) => m,
            Err(_) => return Ok(()),
        };
        match tag {
            b'Q' => {
                let sql =
                    String::from_utf8_lossy(body.strip_suffix(&[0]).unwrap_or(&body)).into_owned();
                let mut out = Vec::new();
                let mut column = cstrs(&["echo"]);
                column
                    .extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 25, 255, 255, 255, 255, 0, 0]);
                let mut desc = 1u16.to_be_bytes().to_vec();
                desc.extend(column);
                out.extend(message(b'T', &desc));
                let mut row = 1u16.to_be_bytes().to_vec();
                row.extend_from_slice(&u32::try_from(sql.len()).unwrap_or(0).to_be_bytes());
                row.extend_from_slice(sql.as_bytes());
                out.extend(message(b'D', &row));
                out.extend(message(b'C', &cstrs(&["SELECT 1"])));
                out.extend(message(b'Z', b"I"));
                tls.write_all(&out).await?;
            }
            b'X' => return Ok(()),
            _ => {}
        }
    }
}
