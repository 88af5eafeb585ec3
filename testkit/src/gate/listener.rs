//! The gate's TLS listener: accepting clients, judging their token, splicing a good login to
//! PostgreSQL, and the faults it can inject on purpose.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::sigv4::{sign_token, token_signed_at, verify_token_bytes};
use super::wire::{
    CANCEL_REQUEST, GSSENC_REQUEST, PROTOCOL_MAJOR_3, SSL_REQUEST, error_fields, first_column,
    packet_code, param, parse_startup, push_message, read_message, read_startup_packet, send_error,
    send_pam_failure, send_password_failure, split_cstr,
};
use super::{TEST_ACCESS_KEY_ID, TEST_REGION, TEST_SECRET_ACCESS_KEY};
use crate::ca::TestCa;
use crate::pg::Postgres;

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
    /// Hosts that play a cluster's reader endpoint: a login whose token names one of them is
    /// spliced to [`GateConfig::reader_backend_port`] (everything else goes to the writer,
    /// [`GateConfig::backend_port`], which [`Gate::set_writer_backend`] moves in a failover).
    pub reader_hosts: Vec<String>,
    /// The reader's PostgreSQL port (a hot standby); `None`: readers reach the writer too.
    pub reader_backend_port: Option<u16>,
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
            reader_hosts: Vec::new(),
            reader_backend_port: None,
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
    /// Answer the password only after this long, as a busy server (or one starting a backend
    /// under load) does: TCP and TLS are quick, the login answer is slow.
    SlowLogin(Duration),
}

/// State shared between the [`Gate`] handle and its connection tasks.
struct Shared {
    /// Where writer-endpoint logins go; 0 while the writer is gone (a failover).
    writer_port: AtomicU16,
    /// Where reader-endpoint logins go.
    reader_port: AtomicU16,
    reader_hosts: Vec<String>,
    /// RDS Proxy's manners (see [`Gate::set_rds_proxy`]); while the writer is gone a login
    /// waits up to `hold` for it, as RDS Proxy holds new connections during a failover.
    rds_proxy: Mutex<Option<Duration>>,
    /// Tokens refused whatever their signature, as after revoked credentials: by exact value.
    revoked_tokens: Mutex<Vec<String>>,
    /// Tokens signed before this unix time are refused (0: none).
    revoked_before: AtomicI64,
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
            .chain(&self.reader_hosts)
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

    /// Whether `token` names one of the hosts playing the reader endpoint.
    fn reader(&self, token: &str) -> bool {
        let named = token_host(token);
        self.reader_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(named))
    }

    /// Whether the token was revoked by [`Gate::revoke_token`] or [`Gate::revoke_signed_before`].
    fn revoked(&self, token: &str) -> bool {
        let before = self.revoked_before.load(Ordering::SeqCst);
        (before > 0 && token_signed_at(token).is_some_and(|t| t < before))
            || lock(&self.revoked_tokens).iter().any(|t| t == token)
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
            .chain(&cfg.reader_hosts)
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
            writer_port: AtomicU16::new(cfg.backend_port),
            reader_port: AtomicU16::new(cfg.reader_backend_port.unwrap_or(cfg.backend_port)),
            reader_hosts: cfg.reader_hosts.clone(),
            rds_proxy: Mutex::new(None),
            revoked_tokens: Mutex::new(Vec::new()),
            revoked_before: AtomicI64::new(0),
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

    /// Where writer-endpoint logins go from now on: a PostgreSQL port, or `None` while the
    /// writer is gone (then a login is refused the way a gone instance refuses it, or held in
    /// RDS Proxy mode). Sessions already spliced stay where they are.
    pub fn set_writer_backend(&self, port: Option<u16>) {
        self.shared
            .writer_port
            .store(port.unwrap_or(0), Ordering::SeqCst);
        self.shared
            .event(format!("writer-endpoint port={}", port.unwrap_or(0)));
    }

    /// Where reader-endpoint logins go from now on.
    pub fn set_reader_backend(&self, port: u16) {
        self.shared.reader_port.store(port, Ordering::SeqCst);
    }

    /// RDS Proxy's manners from now on (`None`: off). A startup packet with `options` is
    /// refused with RDS Proxy's own FATAL 0A000 text, and while the writer is gone a new
    /// login waits up to `hold` for it instead of failing (RDS Proxy queues connections
    /// during a failover; its connection borrow timeout bounds the wait).
    pub fn set_rds_proxy(&self, hold: Option<Duration>) {
        *lock(&self.shared.rds_proxy) = hold;
    }

    /// Refuse this exact token from now on, whatever its signature says (credentials
    /// revoked or rotated under a cached token).
    pub fn revoke_token(&self, token: &str) {
        lock(&self.shared.revoked_tokens).push(token.to_owned());
    }

    /// Refuse every token signed before `unix_secs` (gate clock); 0 turns it off.
    pub fn revoke_signed_before(&self, unix_secs: i64) {
        self.shared
            .revoked_before
            .store(unix_secs, Ordering::SeqCst);
    }

    /// The gate's clock now, as unix seconds.
    pub fn now(&self) -> i64 {
        self.shared.now()
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
    let rds_proxy = *lock(&sh.rds_proxy);
    if rds_proxy.is_some()
        && let Some(name) = params
            .iter()
            .map(|(k, _)| k.as_slice())
            .find(|k| *k == b"options".as_slice())
    {
        // RDS Proxy refuses startup parameters it doesn't support with this FATAL, SQLSTATE
        // 0A000 (AWS RDS User Guide, "Troubleshooting for RDS Proxy", PostgreSQL errors:
        // "Feature not supported: RDS Proxy currently doesn't support the option
        // option_name."). It passes user, database, application_name, client_encoding and
        // the like on, and `options` (PGOPTIONS) is the one every libpq client can send.
        let name = String::from_utf8_lossy(name).into_owned();
        sh.event(format!("rejected user={shown} reason=unsupported-option"));
        send_error(
            &mut client,
            "0A000",
            &format!(
                "Feature not supported: RDS Proxy currently doesn't support the option {name}."
            ),
        )
        .await;
        return Ok(());
    }

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
    let token = std::str::from_utf8(password).unwrap_or_default();
    if sh.revoked(token) {
        // A revoked key's token still verifies here; RDS refuses it all the same.
        sh.event(format!("rejected user={shown} reason=revoked"));
        send_pam_failure(&mut client, &shown).await;
        return Ok(());
    }
    let backend_port = if sh.reader(token) {
        sh.reader_port.load(Ordering::SeqCst)
    } else {
        match writer_port(sh, rds_proxy).await {
            Some(port) => port,
            None if rds_proxy.is_some() => {
                sh.event(format!("failed user={shown} reason=writer-down-held"));
                send_error(
                    &mut client,
                    "08006",
                    "Timed-out waiting to acquire database connection",
                )
                .await;
                return Ok(());
            }
            None => {
                // The instance behind the name is gone: the connection just ends, as one to
                // an address nobody listens on any more does.
                sh.event(format!("failed user={shown} reason=writer-down"));
                return Ok(());
            }
        }
    };
    if let Fault::SlowLogin(delay) = fault {
        tokio::time::sleep(*delay).await;
    }

    let mut backend = match patiently(connect_backend(sh, backend_port, &startup))
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
async fn connect_backend(sh: &Shared, port: u16, startup: &[u8]) -> Result<BackendStream> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port))
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
    // A cancel names no host: offer it to each live server; only the one that knows the key
    // acts on it.
    let mut ports = vec![
        sh.writer_port.load(Ordering::SeqCst),
        sh.reader_port.load(Ordering::SeqCst),
    ];
    ports.retain(|p| *p != 0);
    ports.dedup();
    let mut last = Err(anyhow!("no server to cancel on: the writer is gone"));
    for port in ports {
        last = async {
            let mut tcp = TcpStream::connect(("127.0.0.1", port))
                .await
                .context("connecting to PostgreSQL to cancel")?;
            tcp.write_all(pkt).await?;
            tcp.flush().await?;
            // Wait for PostgreSQL to close its end, so the cancel has been read before we return.
            let mut sink = [0u8; 64];
            let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut sink)).await;
            anyhow::Ok(())
        }
        .await;
    }
    last?;
    sh.event("cancel forwarded".to_string());
    Ok(())
}

/// The writer's port, or `None` while it is gone; in RDS Proxy mode a login waits up to
/// `hold` for a writer to come back.
async fn writer_port(sh: &Shared, hold: Option<Duration>) -> Option<u16> {
    let deadline = Instant::now() + hold.unwrap_or_default();
    loop {
        match sh.writer_port.load(Ordering::SeqCst) {
            0 if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(20)).await,
            0 => return None,
            port => return Some(port),
        }
    }
}

/// A user name as it may appear in an event line: lossy UTF-8, control characters replaced so
/// one connection is always one line.
fn show(user: &[u8]) -> String {
    String::from_utf8_lossy(user)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
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

pub(super) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
