//! The gate end to end: a real PostgreSQL behind it, clients speaking the wire by hand, and
//! the faults. The token maths has its own unit tests in `sigv4`.

use std::io;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Result;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::listener::unix_now;
use super::wire::{
    CANCEL_REQUEST, SSL_REQUEST, error_fields, first_column, push_message, read_message,
};
use super::*;
use crate::pg::{IAM_ROLES, NO_RIGHTS_ROLE, Postgres};

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

const WRITER: &str = "app.cluster-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com";
const READER: &str = "app.cluster-ro-c1a2b3c4d5e6.us-east-1.rds.amazonaws.com";

fn cluster_token(gate: &Gate, host: &str, at: i64) -> String {
    sign_token(
        host,
        gate.endpoint_port(),
        "iamuserapp",
        TEST_REGION,
        TEST_ACCESS_KEY_ID,
        TEST_SECRET_ACCESS_KEY,
        None,
        at,
    )
}

async fn in_recovery(gate: &Gate, host: &str) -> String {
    let token = cluster_token(gate, host, gate.now());
    let mut s = login(gate, "iamuserapp", "app", &token).await.unwrap();
    query(&mut s, "select pg_is_in_recovery()").await.unwrap()[0].clone()
}

#[test]
fn a_cluster_has_a_writer_and_a_reader_and_fails_over() {
    let cluster = Cluster::start(WRITER, READER, &[], None).unwrap();
    let gate = cluster.gate();
    // One runtime: the session kept open across the failover belongs to it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(in_recovery(gate, WRITER).await, "f");
        assert_eq!(in_recovery(gate, READER).await, "t");
    });
    // Written on the writer, read on the reader: real streaming replication.
    cluster
        .psql_writer("app", "create table t(x int); insert into t values (7)")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while cluster
        .psql_reader("app", "select x from t")
        .ok()
        .as_deref()
        != Some("7")
    {
        assert!(Instant::now() < deadline, "the reader never saw the write");
        std::thread::sleep(Duration::from_millis(50));
    }

    // A session open on the writer is cut by the failover.
    let mut open = rt.block_on(async {
        let token = cluster_token(gate, WRITER, gate.now());
        login(gate, "iamuserapp", "app", &token).await.unwrap()
    });
    let how = Failover {
        dns_lag: Duration::from_millis(1500),
        ..Failover::default()
    };
    std::thread::scope(|scope| {
        let failing = scope.spawn(|| cluster.failover(how).unwrap());
        // During the DNS lag the writer endpoint leads nowhere: the login just ends.
        assert!(gate.wait_for_event("writer-endpoint port=0", Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(300));
        let ended = rt.block_on(async {
            let token = cluster_token(gate, WRITER, gate.now());
            let mut s = tls_to(gate.port(), &gate.ca_pem(), "localhost")
                .await
                .unwrap();
            s.write_all(&startup_packet("iamuserapp", "app"))
                .await
                .unwrap();
            let _ = read_message(&mut s, 1 << 20).await.unwrap();
            let mut msg = Vec::new();
            push_message(&mut msg, b'p', format!("{token}\0").as_bytes());
            s.write_all(&msg).await.unwrap();
            read_message(&mut s, 1 << 20).await.is_err()
        });
        assert!(ended, "a login during the lag ends without an answer");
        let times = failing.join().unwrap();
        assert!(times.spliced >= times.promoted);
        assert!(times.spliced - times.promoted >= Duration::from_millis(1400));
    });
    // The server's FATAL came as it stopped, unasked; then the connection ends.
    let cut = rt.block_on(async {
        let (kind, body) = read_message(&mut open.s, 1 << 20).await.unwrap();
        assert_eq!(kind, b'E');
        field(&body, b'C')
    });
    assert_eq!(cut, "57P01", "a fast stop ends the session with 57P01");
    rt.block_on(async {
        assert_eq!(in_recovery(gate, WRITER).await, "f", "the new writer");
        assert_eq!(in_recovery(gate, READER).await, "t", "a new reader");
    });
    assert_eq!(cluster.psql_writer("app", "select x from t").unwrap(), "7");
}

#[test]
fn revoked_tokens_and_rds_proxy_manners() {
    let gate = gate();
    let token = gate.token_for("iamuserapp");
    block_on(async {
        assert!(login(&gate, "iamuserapp", "app", &token).await.is_ok());
        gate.revoke_token(&token);
        let err = login(&gate, "iamuserapp", "app", &token)
            .await
            .err()
            .unwrap();
        assert_eq!(fields_line(&err), pam_line("iamuserapp"));
        assert!(
            gate.events()
                .contains(&"rejected user=iamuserapp reason=revoked".to_string())
        );
        // Every token signed before a moment, as after rotated keys.
        let old = gate.token_for("iamuserapp");
        gate.revoke_signed_before(gate.now() + 1);
        assert!(login(&gate, "iamuserapp", "app", &old).await.is_err());
        gate.set_clock_offset(2);
        let fresh = gate.token_for("iamuserapp");
        assert!(login(&gate, "iamuserapp", "app", &fresh).await.is_ok());

        // RDS Proxy refuses `options` with its own words.
        gate.set_rds_proxy(Some(Duration::from_secs(1)));
        let mut s = tls_to(gate.port(), &gate.ca_pem(), "localhost")
            .await
            .unwrap();
        let mut body = (3u32 << 16).to_be_bytes().to_vec();
        body.extend_from_slice(b"user\0iamuserapp\0options\0-c work_mem=1MB\0\0");
        let mut pkt = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        pkt.extend_from_slice(&body);
        s.write_all(&pkt).await.unwrap();
        let (kind, body) = read_message(&mut s, 1 << 20).await.unwrap();
        assert_eq!(kind, b'E');
        assert_eq!(
            fields_line(&body),
            "S=FATAL V=FATAL C=0A000 M=Feature not supported: RDS Proxy currently doesn't support the option options."
        );
        // A slow login answers late but answers.
        gate.set_fault(Fault::SlowLogin(Duration::from_millis(700)));
        let t0 = Instant::now();
        let fresh = gate.token_for("iamuserapp");
        assert!(login(&gate, "iamuserapp", "app", &fresh).await.is_ok());
        assert!(t0.elapsed() >= Duration::from_millis(700));
    });
}

#[test]
fn rds_proxy_mode_holds_logins_while_the_writer_is_gone() {
    let gate = gate();
    let writer = pg().port();
    gate.set_rds_proxy(Some(Duration::from_secs(3)));
    gate.set_writer_backend(None);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(500));
            gate.set_writer_backend(Some(writer));
        });
        let t0 = Instant::now();
        let token = gate.token_for("iamuserapp");
        assert!(block_on(login(&gate, "iamuserapp", "app", &token)).is_ok());
        assert!(
            t0.elapsed() >= Duration::from_millis(400),
            "the login was held"
        );
    });
    // Gone for longer than RDS Proxy holds a login: it gives up with an error.
    gate.set_rds_proxy(Some(Duration::from_millis(300)));
    gate.set_writer_backend(None);
    let token = gate.token_for("iamuserapp");
    let err = block_on(login(&gate, "iamuserapp", "app", &token))
        .err()
        .unwrap();
    assert_eq!(field(&err, b'C'), "08006");
    assert!(
        gate.events()
            .contains(&"failed user=iamuserapp reason=writer-down-held".to_string())
    );
    gate.set_writer_backend(Some(writer));
}
