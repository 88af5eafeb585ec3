//! The IAM gate: a stand-in for RDS Proxy in front of the throwaway PostgreSQL.
//!
//! rdsiam's whole job is to produce a token that RDS accepts and to connect with it, so the
//! tests need something that checks tokens the way RDS does without reaching AWS. The gate
//! speaks the PostgreSQL v3 wire protocol (framed by hand, no PostgreSQL crate, so it can
//! misbehave on purpose), insists on TLS like RDS Proxy does, asks for a cleartext password,
//! and verifies that password as a SigV4 presigned `rds-db:connect` URL with its own
//! implementation ([`verify_token`], [`sign_token`]) — a second implementation independent of
//! any AWS library, so a shared misunderstanding can't make both sides agree on a wrong token.
//!
//! A good token gets a TLS session to the real PostgreSQL (which trusts the gate) and the two
//! streams are spliced, so everything after authentication is the real server's. A bad one gets
//! the exact answer RDS gives (`FATAL 28P01 PAM authentication failed for user "…"`). Like an
//! RDS instance with IAM auth, a login role that doesn't exist or isn't a member of `rds_iam`
//! gets that same answer (the gate asks with one `SELECT pg_has_role('rds_iam', 'MEMBER')` in
//! the fresh session before handing it over, so that query is the session's first). Each verdict is recorded as one line in [`Gate::events`] (never the
//! token) so tests can tell *why* the gate said no.
//!
//! The gate runs on its own thread with its own tokio runtime so plain synchronous `#[test]`s
//! (and the sandbox binary) can use it; it stops when dropped.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::ca::TestCa;
use crate::pg::Postgres;

/// A well-known fake access key id (from AWS's own documentation examples).
pub const TEST_ACCESS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
/// The fake secret that goes with [`TEST_ACCESS_KEY_ID`].
pub const TEST_SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
/// The region [`GateConfig::new`] uses.
pub const TEST_REGION: &str = "us-east-1";
/// An RDS Proxy-like endpoint name, for tests that want a realistic host in the token.
pub const PROXY_ENDPOINT_HOST: &str =
    "postgresqlproxy.proxy-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com";

/// How long a token may live at most, and the only value AWS SDKs sign with.
const MAX_EXPIRES: i64 = 900;
/// How far in the future X-Amz-Date may be (clock skew tolerance).
const MAX_FUTURE_SKEW: i64 = 300;

const SSL_REQUEST: u32 = 80877103;
const GSSENC_REQUEST: u32 = 80877104;
const CANCEL_REQUEST: u32 = 80877102;
/// Protocol major version 3; the minor version is passed through for PostgreSQL to negotiate.
const PROTOCOL_MAJOR_3: u32 = 3;

/// RFC 3986 unreserved characters stay; everything else is `%XX` (uppercase), as SigV4 wants.
const SIGV4_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// What the gate accepts and where it forwards.
#[derive(Clone)]
pub struct GateConfig {
    /// PostgreSQL's TCP port on 127.0.0.1.
    pub backend_port: u16,
    /// The CA to trust for PostgreSQL's certificate.
    pub backend_ca_pem: String,
    /// Issues the gate's own certificate; clients trust [`Gate::ca_pem`].
    pub ca: Arc<TestCa>,
    /// The host the token must be signed for (compared case-insensitively).
    pub endpoint_host: String,
    /// More hosts the token may be signed for, each also a SAN on the gate's certificate. One
    /// gate then stands in for several endpoints (the sandbox routes a proxy, a cluster's
    /// writer and reader and its instances to the same gate with `--via`).
    pub extra_hosts: Vec<String>,
    /// Hosts on the gate's certificate that play an instance with IAM auth off: whatever the
    /// password, a login whose token names one of them gets `FATAL 28P01 password
    /// authentication failed for user "…"`, as such an instance answers an IAM token (it
    /// checks the password against the role's own, which a token never is).
    pub iam_off_hosts: Vec<String>,
    /// The port named in the token; `None` means the gate's own listen port.
    pub endpoint_port: Option<u16>,
    /// The region the token's credential scope must name.
    pub region: String,
    /// Known credentials: (access key id, secret, session token required when `Some`).
    pub credentials: Vec<(String, String, Option<String>)>,
    /// Hosts on the gate's certificate that play a direct instance or cluster endpoint. There,
    /// as in RDS's pg_hba, only members of `rds_iam` are sent to PAM: a good token for a role
    /// outside `rds_iam` (or unknown) gets `FATAL 28P01 password authentication failed for user
    /// "…"`, the token having been checked as the role's own password. (Elsewhere the gate
    /// answers like RDS Proxy: PAM's message for every refusal.)
    pub direct_hosts: Vec<String>,
    /// When set, the gate's certificate expires this long after start-up (default: 2099), for
    /// certificate expiry warnings.
    pub cert_expires_in: Option<Duration>,
}

impl std::fmt::Debug for GateConfig {
    // Secrets stay out of test output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GateConfig")
            .field("backend_port", &self.backend_port)
            .field("endpoint_host", &self.endpoint_host)
            .field("extra_hosts", &self.extra_hosts)
            .field("iam_off_hosts", &self.iam_off_hosts)
            .field("endpoint_port", &self.endpoint_port)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl GateConfig {
    /// A gate in front of `pg`: its certificate from `pg`'s CA, tokens signed for
    /// `localhost:<gate port>` in [`TEST_REGION`] with [`TEST_ACCESS_KEY_ID`] (no session token).
    pub fn new(pg: &Postgres) -> GateConfig {
        GateConfig {
            backend_port: pg.port(),
            backend_ca_pem: pg.ca().ca_pem(),
            ca: pg.ca().clone(),
            endpoint_host: "localhost".to_string(),
            extra_hosts: Vec::new(),
            iam_off_hosts: Vec::new(),
            endpoint_port: None,
            direct_hosts: Vec::new(),
            cert_expires_in: None,
            region: TEST_REGION.to_string(),
            credentials: vec![(
                TEST_ACCESS_KEY_ID.to_string(),
                TEST_SECRET_ACCESS_KEY.to_string(),
                None,
            )],
        }
    }
}

/// Faults the gate can inject; they apply to connections accepted after [`Gate::set_fault`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Fault {
    /// Behave.
    #[default]
    None,
    /// Close the client connection (abruptly, no TLS close_notify) after relaying this many
    /// bytes from the server to the client, counting from the first byte after authentication.
    DropAfterBytes(usize),
    /// Accept TCP, read the first message, never answer.
    StallHandshake,
    /// Present a certificate from an unrelated CA.
    WrongCert,
    /// Present a certificate from the right CA, but only for `wrong.example.com`.
    WrongHostCert,
    /// Present a certificate from the right CA for the right names that expired in 2021.
    ExpiredCert,
    /// Log in, then never answer again: the client's queries go nowhere.
    SilentAfterLogin,
}

/// State shared between the [`Gate`] handle and its connection tasks.
struct Shared {
    backend_port: u16,
    backend_tls: TlsConnector,
    tls_good: TlsAcceptor,
    tls_wrong_ca: TlsAcceptor,
    tls_wrong_host: TlsAcceptor,
    tls_expired: TlsAcceptor,
    endpoint_host: String,
    extra_hosts: Vec<String>,
    iam_off_hosts: Vec<String>,
    direct_hosts: Vec<String>,
    expected_port: u16,
    region: String,
    credentials: Vec<(String, String, Option<String>)>,
    clock_offset: AtomicI64,
    fault: Mutex<Fault>,
    events: Mutex<Vec<String>>,
    /// Bumped by `drop_all_sessions`; every connection task watches it.
    kill: watch::Sender<u64>,
    /// Live connections: id → the kill generation current when they were accepted.
    live: Mutex<HashMap<u64, u64>>,
    next_id: AtomicU64,
    /// Drop every CancelRequest instead of forwarding it, as a pooling proxy may.
    drop_cancels: AtomicBool,
    /// Record what each spliced session sends (see [`Gate::record_statements`]).
    recording: AtomicBool,
    /// Per recorded session, in the order they ended: the SQL of each Query and Parse.
    statements: Mutex<Vec<Vec<String>>>,
}

impl Shared {
    fn event(&self, line: String) {
        lock(&self.events).push(line);
    }

    fn now(&self) -> i64 {
        unix_now() + self.clock_offset.load(Ordering::SeqCst)
    }

    /// The host to verify `token` against: the extra host it names if it names one, else the
    /// main endpoint host (so a token for an unknown host is judged `wrong-host` against it).
    fn host_for(&self, token: &str) -> &str {
        let named = token_host(token);
        self.extra_hosts
            .iter()
            .chain(&self.direct_hosts)
            .find(|h| h.eq_ignore_ascii_case(named))
            .unwrap_or(&self.endpoint_host)
    }

    /// Whether `token` names one of the hosts playing an instance with IAM auth off.
    fn iam_off(&self, token: &str) -> bool {
        let named = token_host(token);
        self.iam_off_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(named))
    }

    /// Whether `token` names one of the hosts playing a direct endpoint.
    fn direct(&self, token: &str) -> bool {
        let named = token_host(token);
        self.direct_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(named))
    }

    fn acceptor(&self, fault: &Fault) -> &TlsAcceptor {
        match fault {
            Fault::WrongCert => &self.tls_wrong_ca,
            Fault::WrongHostCert => &self.tls_wrong_host,
            Fault::ExpiredCert => &self.tls_expired,
            _ => &self.tls_good,
        }
    }
}

/// A running gate on 127.0.0.1; dropping it stops the listener and every session.
pub struct Gate {
    addr: SocketAddr,
    ca: Arc<TestCa>,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Gate {
    /// Starts the gate on 127.0.0.1 with a random port, on its own thread and runtime.
    pub fn start(cfg: GateConfig) -> Result<Gate> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut sans = vec!["localhost", "127.0.0.1"];
        let hosts = std::iter::once(&cfg.endpoint_host)
            .chain(&cfg.extra_hosts)
            .chain(&cfg.iam_off_hosts)
            .chain(&cfg.direct_hosts);
        for host in hosts {
            if !sans.iter().any(|s| s.eq_ignore_ascii_case(host)) {
                sans.push(host.as_str());
            }
        }
        let tls_good = match cfg.cert_expires_in {
            Some(valid_for) => acceptor(&provider, cfg.ca.issue_expiring_in(&sans, valid_for)?)?,
            None => acceptor(&provider, cfg.ca.issue(&sans)?)?,
        };
        let stranger = TestCa::new()?;
        let tls_wrong_ca = acceptor(&provider, stranger.issue(&sans)?)?;
        let tls_wrong_host = acceptor(&provider, cfg.ca.issue(&["wrong.example.com"])?)?;
        let tls_expired = acceptor(&provider, cfg.ca.issue_expired(&sans)?)?;

        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(cfg.backend_ca_pem.as_bytes()) {
            roots
                .add(cert.context("parsing backend_ca_pem")?)
                .context("adding the backend CA")?;
        }
        let client_cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();

        let std_listener = StdTcpListener::bind("127.0.0.1:0").context("binding the gate")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("rdsiam-gate")
            .build()
            .context("building the gate runtime")?;
        let listener = {
            let _guard = rt.enter();
            TcpListener::from_std(std_listener)?
        };

        let (kill, _) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            backend_port: cfg.backend_port,
            backend_tls: TlsConnector::from(Arc::new(client_cfg)),
            tls_good,
            tls_wrong_ca,
            tls_wrong_host,
            tls_expired,
            endpoint_host: cfg.endpoint_host.clone(),
            extra_hosts: cfg.extra_hosts.clone(),
            iam_off_hosts: cfg.iam_off_hosts.clone(),
            direct_hosts: cfg.direct_hosts.clone(),
            expected_port: cfg.endpoint_port.unwrap_or(addr.port()),
            region: cfg.region.clone(),
            credentials: cfg.credentials.clone(),
            clock_offset: AtomicI64::new(0),
            fault: Mutex::new(Fault::None),
            events: Mutex::new(Vec::new()),
            kill,
            live: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            drop_cancels: AtomicBool::new(false),
            recording: AtomicBool::new(false),
            statements: Mutex::new(Vec::new()),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name("rdsiam-gate".into())
            .spawn(move || {
                rt.block_on(accept_loop(listener, sh, shutdown_rx));
                // Dropping the runtime here cancels every connection task, closing its sockets.
            })
            .context("starting the gate thread")?;
        Ok(Gate {
            addr,
            ca: cfg.ca,
            shared,
            shutdown,
            thread: Some(thread),
        })
    }

    /// The gate's TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The gate's address (127.0.0.1:port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA that issued the gate's certificate, for clients to trust.
    pub fn ca_pem(&self) -> String {
        self.ca.ca_pem()
    }

    /// The host tokens must be signed for.
    pub fn endpoint_host(&self) -> &str {
        &self.shared.endpoint_host
    }

    /// The port tokens must name.
    pub fn endpoint_port(&self) -> u16 {
        self.shared.expected_port
    }

    /// The region tokens must be scoped to.
    pub fn region(&self) -> &str {
        &self.shared.region
    }

    /// A valid token for `user`, signed now (gate clock) with the first configured credential.
    pub fn token_for(&self, user: &str) -> String {
        let (akid, secret, session) = self.shared.credentials.first().cloned().unwrap_or_default();
        sign_token(
            &self.shared.endpoint_host,
            self.shared.expected_port,
            user,
            &self.shared.region,
            &akid,
            &secret,
            session.as_deref(),
            self.shared.now(),
        )
    }

    /// Moves the gate's clock by `secs` (positive = the gate lives in the future), for expiry
    /// and skew tests. TLS certificate validity is unaffected.
    pub fn set_clock_offset(&self, secs: i64) {
        self.shared.clock_offset.store(secs, Ordering::SeqCst);
    }

    /// Sets the fault for connections accepted from now on.
    pub fn set_fault(&self, fault: Fault) {
        *lock(&self.shared.fault) = fault;
    }

    /// Closes every connection open now (spliced sessions included) and waits (up to 5 s)
    /// until they are gone, so a test can then assert on the client's reaction.
    pub fn drop_all_sessions(&self) {
        let mut generation = 0;
        self.shared.kill.send_modify(|g| {
            *g += 1;
            generation = *g;
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if lock(&self.shared.live).values().all(|g| *g >= generation) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        eprintln!("rdsiam-gate: some sessions were still open 5 s after drop_all_sessions");
    }

    /// From now on, drop CancelRequests (each one logs `cancel dropped`) instead of forwarding
    /// them, as RDS Proxy and other pooling proxies may; `false` forwards them again.
    pub fn set_drop_cancels(&self, on: bool) {
        self.shared.drop_cancels.store(on, Ordering::SeqCst);
    }

    /// From now on, record the SQL text of every Query and Parse message that sessions
    /// accepted from now on send to PostgreSQL, for tests that compare what two clients sent.
    pub fn record_statements(&self, on: bool) {
        self.shared.recording.store(on, Ordering::SeqCst);
    }

    /// The recorded statements, one list per session that has ended, in the order they
    /// ended; taken, so the next call starts afresh.
    pub fn take_statements(&self) -> Vec<Vec<String>> {
        std::mem::take(&mut *lock(&self.shared.statements))
    }

    /// How many client connections are open now.
    pub fn open_connections(&self) -> usize {
        lock(&self.shared.live).len()
    }

    /// One line per connection verdict, oldest first, e.g. `accepted user=iamuserapp` or
    /// `rejected user=x reason=expired`. Never contains a token or signature.
    pub fn events(&self) -> Vec<String> {
        lock(&self.shared.events).clone()
    }

    /// Wait up to `timeout` for an event equal to `line`. Some verdicts are
    /// logged only when the gate notices the client hung up, which can be
    /// just after the client process has exited.
    pub fn wait_for_event(&self, line: &str, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.events().iter().any(|e| e == line) {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The host part of a token (`host:port/?…`), or "" when it has none.
fn token_host(token: &str) -> &str {
    token
        .split_once("/?")
        .and_then(|(prefix, _)| prefix.rsplit_once(':'))
        .map(|(host, _)| host)
        .unwrap_or("")
}

/// Locks a mutex, ignoring poisoning: the data (events, fault, live set) stays meaningful even
/// if a test thread panicked while holding it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn acceptor(
    provider: &Arc<rustls::crypto::CryptoProvider>,
    (cert_pem, key_pem): (String, String),
) -> Result<TlsAcceptor> {
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes())?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())?;
    let cfg = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)?;
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

async fn accept_loop(listener: TcpListener, sh: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.changed() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // e.g. EMFILE: keep serving rather than dying mid-test.
                    eprintln!("rdsiam-gate: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let fault = lock(&sh.fault).clone();
        let id = sh.next_id.fetch_add(1, Ordering::SeqCst);
        let mut kill_rx = sh.kill.subscribe();
        let generation = *kill_rx.borrow_and_update();
        lock(&sh.live).insert(id, generation);
        let guard = LiveGuard { sh: sh.clone(), id };
        let sh = sh.clone();
        tokio::spawn(async move {
            let _guard = guard;
            tokio::select! {
                r = serve(tcp, sh.clone(), fault) => {
                    if let Err(e) = r {
                        eprintln!("rdsiam-gate: {peer}: {e:#}");
                    }
                }
                _ = kill_rx.changed() => {}
            }
        });
    }
}

/// Removes a connection from the live set however its task ends (finished, killed, or
/// cancelled by the runtime shutting down).
struct LiveGuard {
    sh: Arc<Shared>,
    id: u64,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        lock(&self.sh.live).remove(&self.id);
    }
}

/// Handles one client connection from its first byte.
async fn serve(mut tcp: TcpStream, sh: Arc<Shared>, fault: Fault) -> Result<()> {
    let mut gss_answered = false;
    let first = loop {
        let Some(pkt) = patiently(read_startup_packet(&mut tcp)).await?? else {
            return Ok(());
        };
        if fault == Fault::StallHandshake {
            sh.event("stalled".to_string());
            drain(&mut tcp).await;
            return Ok(());
        }
        // libpq asks for GSS encryption first when it has a Kerberos cache; RDS says no.
        if packet_code(&pkt) == GSSENC_REQUEST && !gss_answered {
            gss_answered = true;
            tcp.write_all(b"N").await?;
            continue;
        }
        break pkt;
    };
    match packet_code(&first) {
        SSL_REQUEST => {
            tcp.write_all(b"S").await?;
            let mut tls = match patiently(sh.acceptor(&fault).accept(tcp)).await? {
                Ok(t) => t,
                Err(e) => {
                    sh.event("rejected reason=tls-handshake".to_string());
                    return Err(anyhow!(e).context("TLS handshake with the client"));
                }
            };
            let Some(pkt) = patiently(read_startup_packet(&mut tls)).await?? else {
                return Ok(());
            };
            match packet_code(&pkt) {
                CANCEL_REQUEST => forward_cancel(&sh, &pkt).await,
                code if code >> 16 == PROTOCOL_MAJOR_3 => session(tls, pkt, &sh, &fault).await,
                code => {
                    send_error(&mut tls, "08P01", "unsupported frontend protocol").await;
                    sh.event("rejected reason=bad-startup".to_string());
                    bail!("unsupported startup code {code} inside TLS")
                }
            }
        }
        CANCEL_REQUEST => forward_cancel(&sh, &first).await,
        code if code >> 16 == PROTOCOL_MAJOR_3 => {
            let user = parse_startup(&first)
                .ok()
                .and_then(|p| param(&p, "user").map(show))
                .unwrap_or_default();
            sh.event(format!("rejected user={user} reason=no-tls"));
            send_error(&mut tcp, "28000", "This RDS Proxy requires TLS connections").await;
            Ok(())
        }
        code => {
            send_error(&mut tcp, "08P01", "unsupported frontend protocol").await;
            sh.event("rejected reason=bad-startup".to_string());
            bail!("unsupported startup code {code}")
        }
    }
}

/// Authenticates one TLS client and, if the token is good, splices it to PostgreSQL.
async fn session<S>(mut client: S, startup: Vec<u8>, sh: &Shared, fault: &Fault) -> Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let params = match parse_startup(&startup) {
        Ok(p) => p,
        Err(e) => {
            send_error(&mut client, "08P01", "invalid startup packet layout").await;
            sh.event("rejected reason=bad-startup".to_string());
            return Err(e);
        }
    };
    let Some(user) = param(&params, "user").map(<[u8]>::to_vec) else {
        send_error(
            &mut client,
            "28000",
            "no PostgreSQL user name specified in startup packet",
        )
        .await;
        sh.event("rejected reason=no-user".to_string());
        return Ok(());
    };
    let shown = show(&user);

    // AuthenticationCleartextPassword, as RDS asks for the IAM token.
    client.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]).await?;
    client.flush().await?;
    let (kind, body) = match patiently(read_message(&mut client, 64 * 1024)).await? {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            // psql does this when it has no password yet: it hangs up, prompts, reconnects.
            sh.event(format!("closed user={shown} reason=no-password"));
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    if kind != b'p' {
        send_error(&mut client, "08P01", "expected password response").await;
        sh.event(format!("rejected user={shown} reason=bad-password-message"));
        bail!("expected a PasswordMessage, got {:?}", kind as char);
    }
    let password = body.strip_suffix(&[0]).unwrap_or(&body);
    if std::str::from_utf8(password).is_ok_and(|t| sh.iam_off(t)) {
        sh.event(format!("rejected user={shown} reason=iam-off"));
        let msg = format!("password authentication failed for user \"{shown}\"");
        send_error(&mut client, "28P01", &msg).await;
        return Ok(());
    }
    let direct = std::str::from_utf8(password).is_ok_and(|t| sh.direct(t));
    let verdict = match std::str::from_utf8(password) {
        Ok(token) => verify_token_bytes(
            token,
            &user,
            sh.host_for(token),
            sh.expected_port,
            &sh.region,
            &sh.credentials,
            sh.now(),
        ),
        Err(_) => Err("bad-format"),
    };
    if let Err(reason) = verdict {
        sh.event(format!("rejected user={shown} reason={reason}"));
        send_pam_failure(&mut client, &shown).await;
        return Ok(());
    }

    let mut backend = match patiently(connect_backend(sh, &startup))
        .await
        .and_then(|r| r)
    {
        Ok(b) => b,
        Err(e) => {
            sh.event(format!("failed user={shown} reason=backend-unreachable"));
            send_error(
                &mut client,
                "08006",
                "rdsiam gate: could not connect to the database",
            )
            .await;
            return Err(e);
        }
    };
    let greeting = match patiently(read_backend_greeting(&mut backend)).await?? {
        Greeting::Ready(bytes) => bytes,
        Greeting::Refused {
            bytes,
            code,
            message,
        } => {
            // RDS doesn't tell a stranger whether a role exists: same answer as a bad token.
            if code == "28000" && message.contains("does not exist") {
                sh.event(format!("rejected user={shown} reason=unknown-user"));
                if direct {
                    send_password_failure(&mut client, &shown).await;
                } else {
                    send_pam_failure(&mut client, &shown).await;
                }
            } else {
                sh.event(format!("backend-refused user={shown} code={code}"));
                client.write_all(&bytes).await?;
                client.flush().await?;
                let _ = client.shutdown().await;
            }
            return Ok(());
        }
    };
    // As on an RDS instance, IAM login needs membership in rds_iam.
    if !patiently(is_rds_iam_member(&mut backend)).await?? {
        sh.event(format!("rejected user={shown} reason=no-rds-iam"));
        let _ = backend.write_all(&[b'X', 0, 0, 0, 4]).await;
        let _ = backend.flush().await;
        if direct {
            send_password_failure(&mut client, &shown).await;
        } else {
            send_pam_failure(&mut client, &shown).await;
        }
        return Ok(());
    }
    sh.event(format!("accepted user={shown}"));

    if *fault == Fault::SilentAfterLogin {
        client.write_all(&greeting).await?;
        client.flush().await?;
        // Swallow whatever the client sends until it gives up.
        let _ = tokio::io::copy(&mut client, &mut tokio::io::sink()).await;
        sh.event(format!("silent user={shown}"));
        return Ok(());
    }
    let limit = match fault {
        Fault::DropAfterBytes(n) => Some(*n),
        _ => None,
    };
    let client = Recorder {
        inner: client,
        on: sh.recording.load(Ordering::SeqCst),
        frame: Vec::new(),
        statements: Vec::new(),
    };
    let mut client = Budget {
        inner: client,
        left: limit,
    };
    let relayed = async {
        client.write_all(&greeting).await?;
        client.flush().await?;
        tokio::io::copy_bidirectional(&mut client, &mut backend).await
    }
    .await;
    // Any other error just means one side went away abruptly (client killed, server
    // terminated), which is how sessions end.
    if let Err(e) = relayed
        && e.kind() == io::ErrorKind::ConnectionAborted
        && client.left == Some(0)
    {
        // The fault fired: deliver what was budgeted, then vanish without close_notify.
        let _ = client.inner.flush().await;
        sh.event(format!(
            "dropped user={shown} after={} bytes",
            limit.unwrap_or(0)
        ));
    }
    if client.inner.on {
        lock(&sh.statements).push(std::mem::take(&mut client.inner.statements));
    }
    Ok(())
}

/// A client stream that notes the SQL of each Query and Parse message the client sends, when
/// [`Gate::record_statements`] was on as the session started.
struct Recorder<S> {
    inner: S,
    on: bool,
    /// Bytes of the message being read (header, then body).
    frame: Vec<u8>,
    statements: Vec<String>,
}

impl<S> Recorder<S> {
    /// The whole length of the message being read (type byte included), once its header is in.
    fn frame_len(&self) -> Option<usize> {
        let head = self.frame.get(1..5)?;
        Some(u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize + 1)
    }

    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let want = match self.frame_len() {
                Some(len) => len.saturating_sub(self.frame.len()),
                None => 5 - self.frame.len(),
            };
            let n = want.min(data.len());
            self.frame.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.frame_len().is_some_and(|len| self.frame.len() >= len) {
                let body = &self.frame[5..];
                let sql = match self.frame[0] {
                    b'Q' => split_cstr(body).map(|(q, _)| q),
                    b'P' => split_cstr(body)
                        .and_then(|(_, rest)| split_cstr(rest))
                        .map(|(q, _)| q),
                    _ => None,
                };
                if let Some(sql) = sql {
                    self.statements
                        .push(String::from_utf8_lossy(sql).into_owned());
                }
                self.frame.clear();
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Recorder<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.on
            && let Poll::Ready(Ok(())) = polled
        {
            let this = &mut *self;
            this.feed(&buf.filled()[before..]);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recorder<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// How long any one step before the splice may take; a client that opens a connection and
/// goes quiet (or a wedged backend) must not hold a task forever in a long-running sandbox.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

async fn patiently<F: std::future::Future>(f: F) -> Result<F::Output> {
    tokio::time::timeout(STEP_TIMEOUT, f)
        .await
        .map_err(|_| anyhow!("timed out after {STEP_TIMEOUT:?}"))
}

/// A client stream that refuses to carry more than `left` bytes towards the client, which is
/// how [`Fault::DropAfterBytes`] cuts a session at an exact byte.
struct Budget<S> {
    inner: S,
    left: Option<usize>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Budget<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Budget<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = match self.left {
            Some(0) if !buf.is_empty() => {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "fault: drop after bytes",
                )));
            }
            Some(left) => buf.len().min(left),
            None => buf.len(),
        };
        let r = Pin::new(&mut self.inner).poll_write(cx, &buf[..n]);
        if let (Poll::Ready(Ok(written)), Some(left)) = (&r, self.left.as_mut()) {
            *left -= *written;
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

type BackendStream = tokio_rustls::client::TlsStream<TcpStream>;

/// Opens a TLS session to PostgreSQL and sends the client's startup packet (same protocol
/// version, user, database and other parameters); PostgreSQL trusts the gate.
async fn connect_backend(sh: &Shared, startup: &[u8]) -> Result<BackendStream> {
    let mut tcp = TcpStream::connect(("127.0.0.1", sh.backend_port))
        .await
        .context("connecting to PostgreSQL")?;
    let _ = tcp.set_nodelay(true);
    let mut req = Vec::with_capacity(8);
    req.extend_from_slice(&8u32.to_be_bytes());
    req.extend_from_slice(&SSL_REQUEST.to_be_bytes());
    tcp.write_all(&req).await?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await?;
    if answer[0] != b'S' {
        bail!("PostgreSQL declined TLS (answered {:?})", answer[0] as char);
    }
    // pg.rs issues the server certificate for localhost and 127.0.0.1.
    let name = ServerName::try_from("localhost")?;
    let mut tls = sh
        .backend_tls
        .connect(name, tcp)
        .await
        .context("TLS handshake with PostgreSQL")?;
    tls.write_all(startup).await?;
    tls.flush().await?;
    Ok(tls)
}

enum Greeting {
    /// Everything from AuthenticationOk to ReadyForQuery, to replay to the client.
    Ready(Vec<u8>),
    /// PostgreSQL refused the login; `bytes` is everything it sent, ErrorResponse included.
    Refused {
        bytes: Vec<u8>,
        code: String,
        message: String,
    },
}

/// Reads PostgreSQL's answer to the startup packet up to ReadyForQuery or ErrorResponse,
/// keeping the raw bytes so the client gets them unchanged.
async fn read_backend_greeting(backend: &mut BackendStream) -> Result<Greeting> {
    let mut bytes = Vec::new();
    loop {
        let (kind, body) = read_message(backend, 1 << 20)
            .await
            .context("reading PostgreSQL's greeting")?;
        push_message(&mut bytes, kind, &body);
        match kind {
            b'Z' => return Ok(Greeting::Ready(bytes)),
            b'E' => {
                let fields = error_fields(&body);
                let get = |f: u8| {
                    fields
                        .iter()
                        .find(|(k, _)| *k == f)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                return Ok(Greeting::Refused {
                    code: get(b'C'),
                    message: get(b'M'),
                    bytes,
                });
            }
            b'R' if body.get(..4) != Some(&[0, 0, 0, 0]) => {
                bail!("PostgreSQL asked the gate for a password; pg_hba should trust it")
            }
            _ => {}
        }
    }
}

/// Asks, inside the user's own fresh session, whether the user is a member of rds_iam.
async fn is_rds_iam_member(backend: &mut BackendStream) -> Result<bool> {
    let sql = b"SELECT pg_has_role('rds_iam', 'MEMBER')\0";
    let mut q = Vec::new();
    push_message(&mut q, b'Q', sql);
    backend.write_all(&q).await?;
    backend.flush().await?;
    let mut member = false;
    loop {
        let (kind, body) = read_message(backend, 1 << 20)
            .await
            .context("checking rds_iam membership")?;
        match kind {
            b'D' => member = first_column(&body).as_deref() == Some(b"t".as_slice()),
            // An error (e.g. no rds_iam role at all) means "not a member".
            b'E' => member = false,
            b'Z' => return Ok(member),
            _ => {}
        }
    }
}

/// Forwards a CancelRequest's 16 bytes unchanged to PostgreSQL over plain TCP (PostgreSQL
/// processes cancel requests before any authentication or TLS requirement).
async fn forward_cancel(sh: &Shared, pkt: &[u8]) -> Result<()> {
    if sh.drop_cancels.load(Ordering::SeqCst) {
        sh.event("cancel dropped".to_string());
        return Ok(());
    }
    if pkt.len() != 16 {
        sh.event("rejected reason=bad-cancel".to_string());
        bail!("CancelRequest of {} bytes", pkt.len());
    }
    let mut tcp = TcpStream::connect(("127.0.0.1", sh.backend_port))
        .await
        .context("connecting to PostgreSQL to cancel")?;
    tcp.write_all(pkt).await?;
    tcp.flush().await?;
    // Wait for PostgreSQL to close its end, so the cancel has been read before we return.
    let mut sink = [0u8; 64];
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut sink)).await;
    sh.event("cancel forwarded".to_string());
    Ok(())
}

/// Reads an untyped startup-phase packet (length-prefixed); `None` if the client closed first.
async fn read_startup_packet<S: AsyncRead + Unpin>(s: &mut S) -> Result<Option<Vec<u8>>> {
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

fn packet_code(pkt: &[u8]) -> u32 {
    pkt.get(4..8)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0)
}

/// Parses a StartupMessage's key/value pairs.
fn parse_startup(pkt: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
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

fn split_cstr(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let nul = b.iter().position(|&c| c == 0)?;
    Some((&b[..nul], &b[nul + 1..]))
}

fn param<'a>(params: &'a [(Vec<u8>, Vec<u8>)], key: &str) -> Option<&'a [u8]> {
    params
        .iter()
        .find(|(k, _)| k == key.as_bytes())
        .map(|(_, v)| v.as_slice())
}

/// A user name as it may appear in an event line: lossy UTF-8, control characters replaced so
/// one connection is always one line.
fn show(user: &[u8]) -> String {
    String::from_utf8_lossy(user)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Reads one typed message (type byte, length, body); `max` bounds the body.
async fn read_message<S: AsyncRead + Unpin>(s: &mut S, max: usize) -> io::Result<(u8, Vec<u8>)> {
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

fn push_message(out: &mut Vec<u8>, kind: u8, body: &[u8]) {
    out.push(kind);
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(body);
}

fn error_fields(body: &[u8]) -> Vec<(u8, String)> {
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
fn first_column(body: &[u8]) -> Option<Vec<u8>> {
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
async fn send_error<S: AsyncWrite + Unpin>(s: &mut S, code: &str, message: &str) {
    let _ = s.write_all(&error_response(code, message)).await;
    let _ = s.flush().await;
    let _ = s.shutdown().await;
}

async fn send_pam_failure<S: AsyncWrite + Unpin>(s: &mut S, user: &str) {
    let msg = format!("PAM authentication failed for user \"{user}\"");
    send_error(s, "28P01", &msg).await;
}

/// What a direct RDS endpoint answers when it checked the token as the role's own password.
async fn send_password_failure<S: AsyncWrite + Unpin>(s: &mut S, user: &str) {
    let msg = format!("password authentication failed for user \"{user}\"");
    send_error(s, "28P01", &msg).await;
}

/// Reads until the client hangs up (for the stalled handshake).
async fn drain<S: AsyncRead + Unpin>(s: &mut S) {
    let mut buf = [0u8; 1024];
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Tokens: a hand-written SigV4 presign for `rds-db:connect`, and its verifier.

/// Signs an RDS IAM auth token the way AWS SDKs do (query parameters in the SDKs' order,
/// `X-Amz-Expires=900`), without the `https://` scheme: `host:port/?Action=connect&…`.
#[allow(clippy::too_many_arguments)] // mirrors the inputs of the SDKs' generate_db_auth_token
pub fn sign_token(
    host: &str,
    port: u16,
    user: &str,
    region: &str,
    akid: &str,
    secret: &str,
    session_token: Option<&str>,
    unix_time: i64,
) -> String {
    let amz_date = format_amz_date(unix_time);
    let date = &amz_date[..8];
    let credential = format!("{akid}/{date}/{region}/rds-db/aws4_request");
    let mut params: Vec<(&str, String)> = vec![
        ("Action", "connect".to_string()),
        ("DBUser", encode(user)),
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256".to_string()),
        ("X-Amz-Credential", encode(&credential)),
        ("X-Amz-Date", amz_date.clone()),
        ("X-Amz-Expires", MAX_EXPIRES.to_string()),
        ("X-Amz-SignedHeaders", "host".to_string()),
    ];
    if let Some(t) = session_token {
        params.push(("X-Amz-Security-Token", encode(t)));
    }
    let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let signature = signature(host, port, &pairs, secret, &amz_date, region);
    let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "{host}:{port}/?{}&X-Amz-Signature={signature}",
        query.join("&")
    )
}

/// Verifies `token` as RDS would for a login as `user` to `host:port` in `region`, at unix
/// time `now`. `Err` carries the reason (as used in [`Gate::events`]): `bad-format`,
/// `bad-encoding`, `wrong-host`, `wrong-port`, `wrong-action`, `wrong-user`, `bad-algorithm`,
/// `bad-signed-headers`, `bad-credential`, `unknown-key`, `wrong-service`, `wrong-region`,
/// `bad-date`, `wrong-date`, `missing-session-token`, `wrong-session-token`,
/// `unexpected-session-token`, `bad-expires`, `expired`, `not-yet-valid`, `bad-signature`.
pub fn verify_token(
    token: &str,
    user: &str,
    host: &str,
    port: u16,
    region: &str,
    credentials: &[(String, String, Option<String>)],
    now: i64,
) -> std::result::Result<(), &'static str> {
    verify_token_bytes(token, user.as_bytes(), host, port, region, credentials, now)
}

fn verify_token_bytes(
    token: &str,
    user: &[u8],
    host: &str,
    port: u16,
    region: &str,
    credentials: &[(String, String, Option<String>)],
    now: i64,
) -> std::result::Result<(), &'static str> {
    let (prefix, query) = token.split_once("/?").ok_or("bad-format")?;
    let (tok_host, tok_port) = prefix.rsplit_once(':').ok_or("bad-format")?;
    let tok_port: u16 = tok_port.parse().map_err(|_| "bad-format")?;
    if tok_host.is_empty() || tok_host.contains('/') {
        return Err("bad-format");
    }

    let mut params: Vec<(&str, &str)> = Vec::new();
    for part in query.split('&') {
        let (k, v) = part.split_once('=').ok_or("bad-format")?;
        if params.iter().any(|(seen, _)| *seen == k) {
            return Err("bad-format");
        }
        params.push((k, v));
    }
    // SigV4 signs the canonical encoding; an SDK that encodes differently (lowercase hex, a
    // raw '+', an escaped '~') produces a signature for a string RDS never builds.
    for (k, v) in &params {
        for s in [k, v] {
            let decoded = percent_decode_str(s).collect::<Vec<u8>>();
            let canon = percent_encoding::percent_encode(&decoded, SIGV4_ENCODE).to_string();
            if canon != *s {
                return Err("bad-encoding");
            }
        }
    }
    let get = |name: &str| params.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    let decode = |v: &str| percent_decode_str(v).collect::<Vec<u8>>();
    let required = |name: &str| get(name).ok_or("bad-format");

    if !tok_host.eq_ignore_ascii_case(host) {
        return Err("wrong-host");
    }
    if tok_port != port {
        return Err("wrong-port");
    }
    if required("Action")? != "connect" {
        return Err("wrong-action");
    }
    let db_user = decode(required("DBUser")?);
    if std::str::from_utf8(&db_user).is_err() {
        return Err("bad-encoding");
    }
    if db_user != user {
        return Err("wrong-user");
    }
    if required("X-Amz-Algorithm")? != "AWS4-HMAC-SHA256" {
        return Err("bad-algorithm");
    }
    if required("X-Amz-SignedHeaders")? != "host" {
        return Err("bad-signed-headers");
    }
    let credential =
        String::from_utf8(decode(required("X-Amz-Credential")?)).map_err(|_| "bad-credential")?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [akid, scope_date, scope_region, service, terminator] = scope[..] else {
        return Err("bad-credential");
    };
    if terminator != "aws4_request" {
        return Err("bad-credential");
    }
    let (_, secret, session) = credentials
        .iter()
        .find(|(id, _, _)| id == akid)
        .ok_or("unknown-key")?;
    if service != "rds-db" {
        return Err("wrong-service");
    }
    if scope_region != region {
        return Err("wrong-region");
    }
    let amz_date = required("X-Amz-Date")?;
    let signed_at = parse_amz_date(amz_date).ok_or("bad-date")?;
    if scope_date != &amz_date[..8] {
        return Err("wrong-date");
    }
    match (session, get("X-Amz-Security-Token")) {
        (Some(_), None) => return Err("missing-session-token"),
        (Some(want), Some(got)) if decode(got) != want.as_bytes() => {
            return Err("wrong-session-token");
        }
        (None, Some(_)) => return Err("unexpected-session-token"),
        _ => {}
    }
    let expires: i64 = required("X-Amz-Expires")?
        .parse()
        .map_err(|_| "bad-expires")?;
    if !(1..=MAX_EXPIRES).contains(&expires) {
        return Err("bad-expires");
    }
    if now > signed_at + expires {
        return Err("expired");
    }
    if signed_at > now + MAX_FUTURE_SKEW {
        return Err("not-yet-valid");
    }
    let given = required("X-Amz-Signature")?;
    let unsigned: Vec<(&str, &str)> = params
        .iter()
        .copied()
        .filter(|(k, _)| *k != "X-Amz-Signature")
        .collect();
    let want = signature(tok_host, tok_port, &unsigned, secret, amz_date, region);
    if !constant_time_eq(given.as_bytes(), want.as_bytes()) {
        return Err("bad-signature");
    }
    Ok(())
}

/// The SigV4 signature (lowercase hex) over already-encoded query parameters.
fn signature(
    host: &str,
    port: u16,
    params: &[(&str, &str)],
    secret: &str,
    amz_date: &str,
    region: &str,
) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let canonical_query: Vec<String> = sorted.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let host_header = if port == 443 {
        host.to_ascii_lowercase()
    } else {
        format!("{}:{port}", host.to_ascii_lowercase())
    };
    // The payload hash is that of the empty body: botocore and aws-sdk-rds both sign
    // `SignableBody::empty()`, not `UNSIGNED-PAYLOAD`.
    let canonical_request = format!(
        "GET\n/\n{}\nhost:{host_header}\n\nhost\n{}",
        canonical_query.join("&"),
        hex::encode(Sha256::digest(b""))
    );
    let date = amz_date.get(..8).unwrap_or_default();
    let scope = format!("{date}/{region}/rds-db/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    for part in [region, "rds-db", "aws4_request"] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    hex::encode(hmac_sha256(&key, string_to_sign.as_bytes()))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn encode(s: &str) -> String {
    utf8_percent_encode(s, SIGV4_ENCODE).to_string()
}

/// `yyyymmddThhmmssZ` for a unix time (UTC).
fn format_amz_date(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Parses `yyyymmddThhmmssZ` strictly into a unix time.
fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    // Reject dates like Feb 31 that would silently roll over.
    if civil_from_days(days) != (y, mo, d) {
        return None;
    }
    Some(days * 86_400 + h * 3600 + mi * 60 + se)
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::{IAM_ROLES, NO_RIGHTS_ROLE};
    use std::sync::OnceLock;
    use tokio_rustls::client::TlsStream;

    /// One PostgreSQL for all gate tests; never dropped, so pg.rs's watchdog stops it when the
    /// test binary exits.
    fn pg() -> &'static Postgres {
        static PG: OnceLock<Postgres> = OnceLock::new();
        PG.get_or_init(|| Postgres::start().expect("starting PostgreSQL"))
    }

    fn gate() -> Gate {
        Gate::start(GateConfig::new(pg())).unwrap()
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn ssl_request() -> Vec<u8> {
        [8u32.to_be_bytes(), SSL_REQUEST.to_be_bytes()].concat()
    }

    fn startup_packet(user: &str, db: &str) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&(3u32 << 16).to_be_bytes());
        for (k, v) in [
            ("user", user),
            ("database", db),
            ("application_name", "gate-test"),
        ] {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut out = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        out
    }

    fn client_config(ca_pem: &str) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
            .unwrap();
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
    }

    async fn tls_to(port: u16, ca_pem: &str, name: &str) -> io::Result<TlsStream<TcpStream>> {
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).await?;
        tcp.write_all(&ssl_request()).await?;
        let mut answer = [0u8; 1];
        tcp.read_exact(&mut answer).await?;
        assert_eq!(answer[0], b'S', "the gate accepts TLS");
        let connector = TlsConnector::from(Arc::new(client_config(ca_pem)));
        connector
            .connect(ServerName::try_from(name.to_string()).unwrap(), tcp)
            .await
    }

    /// The fields of an ErrorResponse as `X=value` joined by spaces, in wire order.
    fn fields_line(body: &[u8]) -> String {
        error_fields(body)
            .iter()
            .map(|(k, v)| format!("{}={v}", *k as char))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn field(body: &[u8], f: u8) -> String {
        error_fields(body)
            .into_iter()
            .find(|(k, _)| *k == f)
            .map(|(_, v)| v)
            .unwrap_or_default()
    }

    struct Session {
        s: TlsStream<TcpStream>,
        pid: u32,
        key: u32,
    }

    /// Logs in through the gate; `Err` is the ErrorResponse body.
    async fn login(gate: &Gate, user: &str, db: &str, password: &str) -> Result<Session, Vec<u8>> {
        let mut s = tls_to(gate.port(), &gate.ca_pem(), "localhost")
            .await
            .unwrap();
        s.write_all(&startup_packet(user, db)).await.unwrap();
        s.flush().await.unwrap();
        let (kind, body) = read_message(&mut s, 1 << 20).await.unwrap();
        if kind == b'E' {
            return Err(body);
        }
        assert_eq!((kind, body.as_slice()), (b'R', [0, 0, 0, 3].as_slice()));
        let mut pw = password.as_bytes().to_vec();
        pw.push(0);
        let mut msg = Vec::new();
        push_message(&mut msg, b'p', &pw);
        s.write_all(&msg).await.unwrap();
        s.flush().await.unwrap();
        let (mut pid, mut key) = (0, 0);
        let mut saw_auth_ok = false;
        loop {
            let (kind, body) = read_message(&mut s, 1 << 20).await.unwrap();
            match kind {
                b'E' => return Err(body),
                b'R' => {
                    assert_eq!(body, [0, 0, 0, 0], "AuthenticationOk");
                    saw_auth_ok = true;
                }
                b'K' => {
                    pid = u32::from_be_bytes(body[..4].try_into().unwrap());
                    key = u32::from_be_bytes(body[4..8].try_into().unwrap());
                }
                b'Z' => break,
                _ => {}
            }
        }
        assert!(saw_auth_ok);
        Ok(Session { s, pid, key })
    }

    /// Runs a simple query; returns the first column of each row, or the ErrorResponse body.
    async fn query(s: &mut Session, sql: &str) -> Result<Vec<String>, Vec<u8>> {
        let mut q = Vec::new();
        push_message(&mut q, b'Q', format!("{sql}\0").as_bytes());
        s.s.write_all(&q).await.unwrap();
        s.s.flush().await.unwrap();
        let mut rows = Vec::new();
        let mut err = None;
        loop {
            let (kind, body) = read_message(&mut s.s, 1 << 20).await.unwrap();
            match kind {
                b'D' => rows.push(String::from_utf8(first_column(&body).unwrap()).unwrap()),
                b'E' => err = Some(body),
                b'Z' => break,
                _ => {}
            }
        }
        match err {
            Some(e) => Err(e),
            None => Ok(rows),
        }
    }

    fn pam_line(user: &str) -> String {
        format!("S=FATAL V=FATAL C=28P01 M=PAM authentication failed for user \"{user}\"")
    }

    #[test]
    fn good_token_reaches_postgres_over_tls() {
        let gate = gate();
        block_on(async {
            let token = gate.token_for("iamuserapp");
            let mut s = login(&gate, "iamuserapp", "app", &token)
                .await
                .unwrap_or_else(|e| panic!("{}", fields_line(&e)));
            assert!(s.pid != 0);
            assert_eq!(
                query(&mut s, "select current_user").await.unwrap(),
                ["iamuserapp"]
            );
            assert_eq!(
                query(
                    &mut s,
                    "select ssl::text from pg_stat_ssl where pid = pg_backend_pid()"
                )
                .await
                .unwrap(),
                ["true"],
                "the gate's session to PostgreSQL is TLS, as behind RDS Proxy"
            );
            assert_eq!(
                query(&mut s, "select current_setting('application_name')")
                    .await
                    .unwrap(),
                ["gate-test"],
                "startup parameters are passed on"
            );
            let events = gate.events();
            assert_eq!(events, ["accepted user=iamuserapp"]);
            let sig = token.rsplit_once('=').unwrap().1;
            assert!(!events.iter().any(|e| e.contains(sig)));
        });
    }

    #[test]
    fn bad_tokens_get_rds_answer_and_a_reason() {
        let gate = gate();
        block_on(async {
            let good = gate.token_for("iamuserapp");
            let mut bad_sig = good.clone();
            let last = bad_sig.pop().unwrap();
            bad_sig.push(if last == '0' { '1' } else { '0' });
            let other_host = sign_token(
                "elsewhere.example.com",
                gate.endpoint_port(),
                "iamuserapp",
                TEST_REGION,
                TEST_ACCESS_KEY_ID,
                TEST_SECRET_ACCESS_KEY,
                None,
                unix_now(),
            );
            let cases: Vec<(&str, String, &str)> = vec![
                ("iamuserapp", bad_sig, "bad-signature"),
                (
                    "iamuserapp",
                    gate.token_for("jane@example.com"),
                    "wrong-user",
                ),
                ("iamuserapp", other_host, "wrong-host"),
                ("iamuserapp", "not a token".to_string(), "bad-format"),
                ("ghost", gate.token_for("ghost"), "unknown-user"),
                (NO_RIGHTS_ROLE, gate.token_for(NO_RIGHTS_ROLE), "no-rds-iam"),
            ];
            for (user, token, reason) in &cases {
                let err = login(&gate, user, "app", token).await.err().unwrap();
                assert_eq!(fields_line(&err), pam_line(user), "{reason}");
                let want = format!("rejected user={user} reason={reason}");
                assert_eq!(gate.events().last(), Some(&want));
            }

            // Fifteen minutes and a second later, the same token has expired.
            let token = gate.token_for("iamuserapp");
            gate.set_clock_offset(16 * 60);
            let err = login(&gate, "iamuserapp", "app", &token)
                .await
                .err()
                .unwrap();
            assert_eq!(fields_line(&err), pam_line("iamuserapp"));
            assert_eq!(
                gate.events().last().unwrap(),
                "rejected user=iamuserapp reason=expired"
            );
            gate.set_clock_offset(0);

            // No TLS at all.
            let mut tcp = TcpStream::connect(gate.addr()).await.unwrap();
            tcp.write_all(&startup_packet("iamuserapp", "app"))
                .await
                .unwrap();
            let (kind, body) = read_message(&mut tcp, 4096).await.unwrap();
            assert_eq!(kind, b'E');
            assert_eq!(
                fields_line(&body),
                "S=FATAL V=FATAL C=28000 M=This RDS Proxy requires TLS connections"
            );
            let mut rest = Vec::new();
            tcp.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty(), "the gate closes after the error");
            assert_eq!(
                gate.events().last().unwrap(),
                "rejected user=iamuserapp reason=no-tls"
            );
            assert!(!gate.events().iter().any(|e| e.starts_with("accepted")));
        });
    }

    #[test]
    fn reserved_names_and_session_tokens_on_an_rds_like_host() {
        let mut cfg = GateConfig::new(pg());
        cfg.endpoint_host = PROXY_ENDPOINT_HOST.to_string();
        cfg.endpoint_port = Some(5432);
        cfg.credentials = vec![(
            "ASIAEXAMPLESESSION01".to_string(),
            "session/secret+key=".to_string(),
            Some("FQoGZXIvYXdzE+/token==".to_string()),
        )];
        let gate = Gate::start(cfg).unwrap();
        block_on(async {
            for user in IAM_ROLES {
                let token = gate.token_for(user);
                assert!(token.starts_with(&format!("{PROXY_ENDPOINT_HOST}:5432/?Action=connect&")));
                let mut s = login(&gate, user, "app", &token)
                    .await
                    .unwrap_or_else(|e| panic!("{user}: {}", fields_line(&e)));
                assert_eq!(query(&mut s, "select current_user").await.unwrap(), [*user]);
            }
            // The same key without its session token is refused.
            let bare = sign_token(
                PROXY_ENDPOINT_HOST,
                5432,
                "iamuserapp",
                TEST_REGION,
                "ASIAEXAMPLESESSION01",
                "session/secret+key=",
                None,
                unix_now(),
            );
            assert!(login(&gate, "iamuserapp", "app", &bare).await.is_err());
            assert_eq!(
                gate.events().last().unwrap(),
                "rejected user=iamuserapp reason=missing-session-token"
            );
        });
    }

    #[test]
    fn extra_hosts_are_accepted_and_iam_off_hosts_refused() {
        const WRITER: &str = "databasecluster.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com";
        const READER: &str = "databasecluster.cluster-ro-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com";
        const LEGACY: &str = "legacy-reporting.c1a2b3c4d5e6.us-east-1.rds.amazonaws.com";
        let mut cfg = GateConfig::new(pg());
        cfg.endpoint_host = PROXY_ENDPOINT_HOST.to_string();
        cfg.extra_hosts = vec![WRITER.to_string(), READER.to_ascii_uppercase()];
        cfg.iam_off_hosts = vec![LEGACY.to_string()];
        cfg.endpoint_port = Some(5432);
        let gate = Gate::start(cfg).unwrap();
        let sign = |host: &str| {
            sign_token(
                host,
                5432,
                "iamuserapp",
                TEST_REGION,
                TEST_ACCESS_KEY_ID,
                TEST_SECRET_ACCESS_KEY,
                None,
                unix_now(),
            )
        };
        block_on(async {
            for host in [PROXY_ENDPOINT_HOST, WRITER, READER] {
                // The certificate names every endpoint, so verify-full passes for each.
                tls_to(gate.port(), &gate.ca_pem(), host)
                    .await
                    .unwrap_or_else(|e| panic!("TLS as {host}: {e}"));
                let mut s = login(&gate, "iamuserapp", "app", &sign(host))
                    .await
                    .unwrap_or_else(|e| panic!("{host}: {}", fields_line(&e)));
                assert_eq!(
                    query(&mut s, "select current_user").await.unwrap(),
                    ["iamuserapp"]
                );
            }
            let stranger = "other.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com";
            assert!(tls_to(gate.port(), &gate.ca_pem(), stranger).await.is_err());
            let err = login(&gate, "iamuserapp", "app", &sign(stranger))
                .await
                .err()
                .unwrap();
            assert_eq!(fields_line(&err), pam_line("iamuserapp"));
            assert_eq!(
                gate.events().last().unwrap(),
                "rejected user=iamuserapp reason=wrong-host"
            );
            // On the certificate, but IAM auth is off there: even a well-signed token fails
            // as a password.
            tls_to(gate.port(), &gate.ca_pem(), LEGACY).await.unwrap();
            let err = login(&gate, "iamuserapp", "app", &sign(LEGACY))
                .await
                .err()
                .unwrap();
            assert_eq!(
                fields_line(&err),
                "S=FATAL V=FATAL C=28P01 M=password authentication failed for user \"iamuserapp\""
            );
            assert_eq!(
                gate.events().last().unwrap(),
                "rejected user=iamuserapp reason=iam-off"
            );
        });
    }

    #[test]
    fn backend_refusals_reach_the_client_unchanged() {
        let gate = gate();
        block_on(async {
            let err = login(&gate, "iamuserapp", "nope", &gate.token_for("iamuserapp"))
                .await
                .err()
                .unwrap();
            assert_eq!(field(&err, b'C'), "3D000");
            assert_eq!(field(&err, b'M'), "database \"nope\" does not exist");
            assert_eq!(
                gate.events().last().unwrap(),
                "backend-refused user=iamuserapp code=3D000"
            );
        });
    }

    #[test]
    fn real_psql_connects_with_verify_full() {
        let mut cfg = GateConfig::new(pg());
        cfg.endpoint_host = PROXY_ENDPOINT_HOST.to_string();
        let gate = Gate::start(cfg).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, gate.ca_pem()).unwrap();
        let psql = |user: &str, password: Option<&str>| {
            let conninfo = format!(
                "host={PROXY_ENDPOINT_HOST} hostaddr=127.0.0.1 port={} user='{}' dbname=app \
                 sslmode=verify-full sslrootcert={}",
                gate.port(),
                user.replace('\'', "\\'"),
                ca.display()
            );
            let mut cmd = Command::new(pg().psql_path());
            cmd.args(["-w", "-tAX", "-c", "select current_user", &conninfo]);
            for (k, _) in std::env::vars_os() {
                if k.to_string_lossy().starts_with("PG") {
                    cmd.env_remove(k);
                }
            }
            cmd.env("PGCLIENTENCODING", "UTF8");
            if let Some(p) = password {
                cmd.env("PGPASSWORD", p);
            }
            cmd.output().unwrap()
        };
        for user in ["iamuserapp", "with space", "ユーザー"] {
            let out = psql(user, Some(&gate.token_for(user)));
            assert!(
                out.status.success(),
                "{user}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), user);
        }
        let out = psql("iamuserapp", Some("garbage"));
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains("PAM authentication failed for user \"iamuserapp\""),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = psql("iamuserapp", None);
        assert!(!out.status.success());
        assert!(
            gate.wait_for_event(
                "closed user=iamuserapp reason=no-password",
                std::time::Duration::from_secs(5)
            ),
            "{:?}",
            gate.events()
        );
    }

    use std::process::Command;

    #[test]
    fn sign_token_matches_botocore() {
        // Generated with botocore 1.43.11's generate_db_auth_token, clock frozen at
        // 2024-02-29T23:59:58Z (unix 1709251198), keys TEST_ACCESS_KEY_ID/TEST_SECRET_ACCESS_KEY.
        let t = 1_709_251_198;
        let cases: [(&str, u16, &str, Option<&str>, &str); 4] = [
            (
                PROXY_ENDPOINT_HOST,
                5432,
                "iamuserapp",
                None,
                "postgresqlproxy.proxy-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com:5432/?Action=connect&DBUser=iamuserapp&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20240229%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20240229T235958Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=c246fe2aa78df7c72cb0ee131b526e645093d9b55776aa57b74cdba4f80f7c40",
            ),
            (
                PROXY_ENDPOINT_HOST,
                5432,
                "jane@example.com",
                Some("FQoGZXIvYXdzE+/abc=="),
                "postgresqlproxy.proxy-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com:5432/?Action=connect&DBUser=jane%40example.com&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20240229%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20240229T235958Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Security-Token=FQoGZXIvYXdzE%2B%2Fabc%3D%3D&X-Amz-Signature=d81948ec9986549e5b0ca611f9c414b8bc7bd7b3964e2ca8c0368c737326964e",
            ),
            (
                "localhost",
                443,
                "ユーザー",
                None,
                "localhost:443/?Action=connect&DBUser=%E3%83%A6%E3%83%BC%E3%82%B6%E3%83%BC&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20240229%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20240229T235958Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=07faf0e6e4b4178722344cea202401bc583027586a086a6e222e62434e5da2d6",
            ),
            (
                "LocalHost",
                15432,
                "a&b=c with space~ops+oncall",
                None,
                "LocalHost:15432/?Action=connect&DBUser=a%26b%3Dc%20with%20space~ops%2Boncall&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20240229%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20240229T235958Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=0c076820481983894b203e1c93da94aab1aa204d294d8fafc4b2a16b659308df",
            ),
        ];
        for (host, port, user, session, want) in cases {
            let got = sign_token(
                host,
                port,
                user,
                TEST_REGION,
                TEST_ACCESS_KEY_ID,
                TEST_SECRET_ACCESS_KEY,
                session,
                t,
            );
            assert_eq!(got, want);
            let creds = [(
                TEST_ACCESS_KEY_ID.to_string(),
                TEST_SECRET_ACCESS_KEY.to_string(),
                session.map(str::to_string),
            )];
            assert_eq!(
                verify_token(want, user, host, port, TEST_REGION, &creds, t),
                Ok(())
            );
            assert_eq!(
                verify_token(want, user, host, port, TEST_REGION, &creds, t + 900),
                Ok(())
            );
        }
    }

    #[test]
    fn verify_token_names_each_failure() {
        let t = 1_709_251_198;
        let creds = vec![
            ("AKIDPLAIN".to_string(), "s1".to_string(), None),
            (
                "ASIASESSION".to_string(),
                "s2".to_string(),
                Some("tok/en+=".to_string()),
            ),
        ];
        let sign = |user: &str, akid: &str, secret: &str, session: Option<&str>, at: i64| {
            sign_token(
                "db.example.com",
                5432,
                user,
                "eu-west-1",
                akid,
                secret,
                session,
                at,
            )
        };
        let check = |token: &str, user: &str, now: i64| {
            verify_token(
                token,
                user,
                "DB.example.com",
                5432,
                "eu-west-1",
                &creds,
                now,
            )
        };
        let good = sign("jane@example.com", "AKIDPLAIN", "s1", None, t);
        assert_eq!(check(&good, "jane@example.com", t), Ok(()));
        assert_eq!(check(&good, "jane@example.com", t + 900), Ok(()));
        assert_eq!(check(&good, "jane@example.com", t + 901), Err("expired"));
        assert_eq!(check(&good, "jane@example.com", t - 300), Ok(()));
        assert_eq!(
            check(&good, "jane@example.com", t - 301),
            Err("not-yet-valid")
        );
        assert_eq!(check(&good, "Jane@example.com", t), Err("wrong-user"));
        assert_eq!(
            verify_token(
                &good,
                "jane@example.com",
                "db.example.com",
                5433,
                "eu-west-1",
                &creds,
                t
            ),
            Err("wrong-port")
        );
        assert_eq!(
            verify_token(
                &good,
                "jane@example.com",
                "db.example.com",
                5432,
                "us-east-1",
                &creds,
                t
            ),
            Err("wrong-region")
        );
        let lower = good.replacen("%2F", "%2f", 1);
        assert_eq!(check(&lower, "jane@example.com", t), Err("bad-encoding"));
        let plus = sign("ops+oncall", "AKIDPLAIN", "s1", None, t).replace("%2B", "+");
        assert_eq!(check(&plus, "ops+oncall", t), Err("bad-encoding"));
        let tilde = sign("a~b", "AKIDPLAIN", "s1", None, t).replace("a~b", "a%7Eb");
        assert_eq!(check(&tilde, "a~b", t), Err("bad-encoding"));
        assert_eq!(
            check(
                &good.replace("X-Amz-Expires=900", "X-Amz-Expires=901"),
                "jane@example.com",
                t
            ),
            Err("bad-expires")
        );
        assert_eq!(
            check(
                &good.replace("Action=connect", "Action=Connect"),
                "jane@example.com",
                t
            ),
            Err("wrong-action")
        );
        assert_eq!(
            check(&good.replace("rds-db", "rds"), "jane@example.com", t),
            Err("wrong-service")
        );
        assert_eq!(
            check(&sign("x", "AKIDOTHER", "s1", None, t), "x", t),
            Err("unknown-key")
        );
        assert_eq!(
            check(&sign("x", "AKIDPLAIN", "wrong", None, t), "x", t),
            Err("bad-signature")
        );
        assert_eq!(
            check(&sign("x", "ASIASESSION", "s2", Some("tok/en+="), t), "x", t),
            Ok(())
        );
        assert_eq!(
            check(&sign("x", "ASIASESSION", "s2", None, t), "x", t),
            Err("missing-session-token")
        );
        assert_eq!(
            check(&sign("x", "ASIASESSION", "s2", Some("other"), t), "x", t),
            Err("wrong-session-token")
        );
        assert_eq!(
            check(&sign("x", "AKIDPLAIN", "s1", Some("tok"), t), "x", t),
            Err("unexpected-session-token")
        );
        let dup = format!("{good}&Action=connect");
        assert_eq!(check(&dup, "jane@example.com", t), Err("bad-format"));
        assert_eq!(check("", "x", t), Err("bad-format"));
        assert_eq!(check("db.example.com:5432/?", "x", t), Err("bad-format"));
        let wrong_date = good.replace("%2F20240229%2F", "%2F20240228%2F");
        assert_eq!(check(&wrong_date, "jane@example.com", t), Err("wrong-date"));
    }

    #[test]
    fn amz_dates_round_trip() {
        for t in [0, 951_782_400, 1_709_251_198, 4_102_444_799] {
            assert_eq!(parse_amz_date(&format_amz_date(t)), Some(t));
        }
        assert_eq!(format_amz_date(1_709_251_198), "20240229T235958Z");
        assert_eq!(parse_amz_date("20230229T000000Z"), None);
        assert_eq!(parse_amz_date("20240229T235958"), None);
        assert_eq!(parse_amz_date("2024022+T235958Z"), None);
    }

    #[test]
    fn certificate_faults() {
        let gate = gate();
        block_on(async {
            gate.set_fault(Fault::WrongCert);
            let err = tls_to(gate.port(), &gate.ca_pem(), "localhost")
                .await
                .err()
                .unwrap();
            assert!(format!("{err}").contains("UnknownIssuer"), "{err}");

            gate.set_fault(Fault::WrongHostCert);
            let err = tls_to(gate.port(), &gate.ca_pem(), "localhost")
                .await
                .err()
                .unwrap();
            assert!(format!("{err}").contains("not valid for name"), "{err}");

            gate.set_fault(Fault::None);
            tls_to(gate.port(), &gate.ca_pem(), "localhost")
                .await
                .unwrap();
        });
    }

    #[test]
    fn stalled_handshake_never_answers() {
        let gate = gate();
        gate.set_fault(Fault::StallHandshake);
        block_on(async {
            let mut tcp = TcpStream::connect(gate.addr()).await.unwrap();
            tcp.write_all(&ssl_request()).await.unwrap();
            let mut b = [0u8; 1];
            let r = tokio::time::timeout(Duration::from_millis(500), tcp.read(&mut b)).await;
            assert!(r.is_err(), "no answer: {r:?}");
            assert_eq!(gate.events(), ["stalled"]);
            assert_eq!(gate.open_connections(), 1);
        });
    }

    #[test]
    fn drop_after_bytes_cuts_at_that_byte() {
        let gate = gate();
        gate.set_fault(Fault::DropAfterBytes(20));
        block_on(async {
            let mut s = tls_to(gate.port(), &gate.ca_pem(), "localhost")
                .await
                .unwrap();
            s.write_all(&startup_packet("iamuserapp", "app"))
                .await
                .unwrap();
            s.flush().await.unwrap();
            let (kind, _) = read_message(&mut s, 64).await.unwrap();
            assert_eq!(kind, b'R');
            let mut msg = Vec::new();
            push_message(
                &mut msg,
                b'p',
                format!("{}\0", gate.token_for("iamuserapp")).as_bytes(),
            );
            s.write_all(&msg).await.unwrap();
            s.flush().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 256];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            assert_eq!(got.len(), 20);
            assert_eq!(
                &got[..9],
                &[b'R', 0, 0, 0, 8, 0, 0, 0, 0],
                "starts with AuthenticationOk"
            );
            assert_eq!(
                gate.events(),
                [
                    "accepted user=iamuserapp",
                    "dropped user=iamuserapp after=20 bytes"
                ]
            );
        });
    }

    #[test]
    fn cancel_requests_are_forwarded_plain_and_over_tls() {
        let gate = gate();
        block_on(async {
            for over_tls in [false, true] {
                let mut s = login(&gate, "iamuserapp", "app", &gate.token_for("iamuserapp"))
                    .await
                    .unwrap();
                let mut q = Vec::new();
                push_message(&mut q, b'Q', b"select pg_sleep(30)\0");
                s.s.write_all(&q).await.unwrap();
                s.s.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(200)).await;

                let mut cancel = Vec::new();
                cancel.extend_from_slice(&16u32.to_be_bytes());
                cancel.extend_from_slice(&CANCEL_REQUEST.to_be_bytes());
                cancel.extend_from_slice(&s.pid.to_be_bytes());
                cancel.extend_from_slice(&s.key.to_be_bytes());
                let started = Instant::now();
                if over_tls {
                    let mut c = tls_to(gate.port(), &gate.ca_pem(), "localhost")
                        .await
                        .unwrap();
                    c.write_all(&cancel).await.unwrap();
                    c.flush().await.unwrap();
                    let _ = c.read(&mut [0u8; 8]).await;
                } else {
                    let mut c = TcpStream::connect(gate.addr()).await.unwrap();
                    c.write_all(&cancel).await.unwrap();
                    let _ = c.read(&mut [0u8; 8]).await;
                }
                let mut code = String::new();
                loop {
                    let (kind, body) = read_message(&mut s.s, 1 << 20).await.unwrap();
                    if kind == b'E' {
                        code = field(&body, b'C');
                    }
                    if kind == b'Z' {
                        break;
                    }
                }
                assert_eq!(code, "57014", "query_canceled (over_tls={over_tls})");
                assert!(started.elapsed() < Duration::from_secs(10));
            }
            assert_eq!(
                gate.events()
                    .iter()
                    .filter(|e| *e == "cancel forwarded")
                    .count(),
                2
            );
        });
    }

    #[test]
    fn drop_all_sessions_closes_spliced_sessions() {
        let gate = gate();
        block_on(async {
            let mut s = login(&gate, "iamuserapp", "app", &gate.token_for("iamuserapp"))
                .await
                .unwrap();
            assert_eq!(gate.open_connections(), 1);
            gate.drop_all_sessions();
            assert_eq!(gate.open_connections(), 0);
            let mut buf = [0u8; 16];
            let r = tokio::time::timeout(Duration::from_secs(5), s.s.read(&mut buf))
                .await
                .expect("the session ends promptly");
            assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
            // New sessions still work afterwards.
            login(&gate, "iamuserapp", "app", &gate.token_for("iamuserapp"))
                .await
                .unwrap();
        });
    }

    #[test]
    fn garbage_from_clients_is_survived() {
        let gate = gate();
        block_on(async {
            let inputs: [&[u8]; 5] = [
                b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                &[0xff, 0xff, 0xff, 0xff],
                &[0, 0, 0, 8, 0, 0, 0, 0],
                &[0, 0, 0, 9, 0, 3, 0, 0, b'u'],
                b"",
            ];
            for input in inputs {
                let mut tcp = TcpStream::connect(gate.addr()).await.unwrap();
                tcp.write_all(input).await.unwrap();
                tcp.shutdown().await.unwrap();
                let mut rest = Vec::new();
                let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut rest))
                    .await
                    .expect("the gate closes");
            }
            // Inside TLS: a startup with no user, and a password message of the wrong type.
            let mut s = tls_to(gate.port(), &gate.ca_pem(), "localhost")
                .await
                .unwrap();
            s.write_all(&[0, 0, 0, 9, 0, 3, 0, 0, 0]).await.unwrap();
            s.flush().await.unwrap();
            let (kind, body) = read_message(&mut s, 4096).await.unwrap();
            assert_eq!((kind, field(&body, b'C')), (b'E', "28000".to_string()));

            let mut s = tls_to(gate.port(), &gate.ca_pem(), "localhost")
                .await
                .unwrap();
            s.write_all(&startup_packet("iamuserapp", "app"))
                .await
                .unwrap();
            s.write_all(&[b'Q', 0, 0, 0, 5, 0]).await.unwrap();
            s.flush().await.unwrap();
            let (kind, _) = read_message(&mut s, 4096).await.unwrap();
            assert_eq!(kind, b'R');
            let (kind, body) = read_message(&mut s, 4096).await.unwrap();
            assert_eq!((kind, field(&body, b'C')), (b'E', "08P01".to_string()));

            login(&gate, "iamuserapp", "app", &gate.token_for("iamuserapp"))
                .await
                .unwrap();
        });
    }
}
